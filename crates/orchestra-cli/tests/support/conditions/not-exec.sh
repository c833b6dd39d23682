#!/bin/sh
echo writer
