#!/bin/sh
# The program of the `for_each` command-node tests: $1 is a file (the item), $2 its index. Logs
# its start and end to count.log (so a test sees how many ran at once and which ran again),
# waits for the gate file `open` on a name containing "wait", hangs on one containing "hang"
# (until the node's timeout kills it), then prints the file's size in bytes.
echo "start $2 $1" >> count.log
case "$1" in
  *wait*) while [ ! -e open ]; do sleep 0.02; done ;;
  *hang*) sleep 60 ;;
esac
sleep 0.3
size=$(wc -c < "$1") || exit 1
echo "end $2 $1" >> count.log
printf "%s: %s" "$1" "$size"
