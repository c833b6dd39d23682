#!/usr/bin/env bash
# Where a shape's peak memory goes. Runs the shape like bench/shapes.sh, then runs it again
# while sampling /proc/PID/status every few milliseconds, and prints the peak resident set
# (what compare.sh measures) next to the largest file-backed part (the binary's code and data,
# shared libraries: one page fault maps 64 KiB of code around it) and the largest anonymous
# part (heap, stacks) seen. Use heaptrack for the heap itself.
# Usage, from the project root:  bench/memory.sh chain N | fanout W L | loop K
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${ORCHESTRA_BIN:-$root/target/release/orchestra}
[[ $# -gt 0 ]] || { echo "usage: bench/memory.sh chain N | fanout W L | loop K" >&2; exit 2; }
dir=$(BENCH_KEEP=1 "$root/bench/shapes.sh" "$@" 2>&1 >/dev/null | sed -n 's/^bench dir: //p')
[[ -n $dir && -d $dir ]] || { echo "memory: bench/shapes.sh $* failed" >&2; exit 1; }
trap 'rm -rf "$dir"' EXIT
cd "$dir"
rm -f o.db o.db-wal o.db-shm
"$bin" run p.yaml --db o.db --json >/dev/null &
pid=$!
hwm=0 file=0 anon=0
kb() { awk -v k="$1:" '$1 == k { print $2 }' "$2"; }
while [[ -r /proc/$pid/status ]] && cp "/proc/$pid/status" status 2>/dev/null && [[ -s status ]]; do
  h=$(kb VmHWM status); f=$(kb RssFile status); a=$(kb RssAnon status)
  [[ -n $h ]] || break
  ((h > hwm)) && hwm=$h
  ((f > file)) && file=$f
  ((a > anon)) && anon=$a
  sleep 0.002
done
wait "$pid"
echo "{\"shape\": \"$1\", \"args\": \"${*:2}\", \"peak_kb\": $hwm, \"max_file_kb\": $file, \"max_anon_kb\": $anon}"
