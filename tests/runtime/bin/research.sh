#!/bin/sh
# A command-line "model" for the `for_each` tests: $1 is the prompt. Logs the prompt's topic line
# to research.log, waits for the gate file `open` when the topic contains "wait" and a little
# when it contains "slow" (so that instance finishes last), then answers with notes on it.
line=$(printf '%s\n' "$1" | grep 'Topic:')
echo "$line" >> research.log
case "$line" in
  *wait*) while [ ! -e open ]; do sleep 0.02; done ;;
  *slow*) sleep 0.5 ;;
esac
printf '%s\n' "$line" | sed 's/Topic: /Notes on /'
