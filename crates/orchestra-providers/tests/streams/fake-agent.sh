#!/bin/sh
# A stand-in for a command-line agent (Claude Code, Codex): prints a recorded event stream on
# stdout the way the tool does, so the `command` provider's readers are tested on a real process.
#
#   fake-agent.sh [--delay SECONDS] [--write FILE] [--done FILE] [--exit CODE] STREAM [PROMPT]
#
# --delay  waits before each line (a slow agent);
# --write  writes the prompt into FILE in the working directory (an edit the agent made);
# --done   creates FILE once the whole stream is printed (so a test sees it was not cut short);
# --exit   exits with CODE after printing (the tools exit 1 after reporting an error).
# The prompt is the last argument, or stdin when there is none.
delay=0
write=
done_file=
code=0
while [ $# -gt 0 ]; do
  case "$1" in
    --delay) delay=$2; shift 2 ;;
    --write) write=$2; shift 2 ;;
    --done) done_file=$2; shift 2 ;;
    --exit) code=$2; shift 2 ;;
    *) break ;;
  esac
done
stream=$1
if [ $# -ge 2 ]; then prompt=$2; else prompt=$(cat); fi
if [ -n "$write" ]; then
  mkdir -p "$(dirname "$write")"
  printf '%s\n' "$prompt" > "$write"
fi
if [ "$delay" = 0 ]; then
  cat "$stream"
else
  while IFS= read -r line || [ -n "$line" ]; do
    sleep "$delay"
    printf '%s\n' "$line"
  done < "$stream"
fi
if [ -n "$done_file" ]; then : > "$done_file"; fi
exit "$code"
