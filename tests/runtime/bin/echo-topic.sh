#!/bin/sh
# A command-line "model" that answers with the line of its prompt naming the topic.
printf '%s\n' "$1" | grep 'Topic:' | sed 's/Topic: /Notes on /'
