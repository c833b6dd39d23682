#!/bin/sh
# A command-line "model" for the crash tests. $1 is the model name (each agent's `model:` is its
# own name), $2 the prompt. Logs the call, waits a little (the agent's latency), then answers
# with a note that depends on the whole prompt, so the final state shows what each agent saw.
echo "$1" >> calls.log
case "$1" in
  a) sleep 0.01 ;;
  b) sleep 0.02 ;;
  c) sleep 0.04 ;;
  *) sleep 0.02 ;;
esac
sum=$(printf '%s' "$2" | cksum | cut -d' ' -f1)
printf '{"note": "%s saw %s"}\n' "$1" "$sum"
