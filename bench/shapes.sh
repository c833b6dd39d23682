#!/usr/bin/env bash
# The LangGraph reference shapes on orchestra (see ../shared/bench/README.md).
# Usage, from the project root:  bench/shapes.sh chain N | fanout W L | loop K
# Writes the shape as a pipeline on the `scripted` provider (fixed ~230-byte answers), runs
# `orchestra run` on a fresh database and prints one JSON line:
# {"impl","shape","args","wall_s","messages","checkpoints","db_bytes"}.
# No python here on purpose: compare.sh measures the peak memory of this whole process tree.
set -euo pipefail
shape=${1:-}; shift || true
usage() { echo "usage: bench/shapes.sh chain N | fanout W L | loop K" >&2; exit 2; }
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${ORCHESTRA_BIN:-$root/target/release/orchestra}
if [[ -z ${ORCHESTRA_BIN:-} ]]; then
  if [[ ! -x $bin ]] || [[ -n $(find "$root/crates" "$root/Cargo.toml" -newer "$bin" \( -name '*.rs' -o -name Cargo.toml \) 2>/dev/null | head -1) ]]; then
    echo "bench: building the release binary first; the build counts in the peak memory compare.sh" >&2
    echo "       reports for this run (build with \`cargo build --release -p orchestra-cli\` beforehand)" >&2
    (cd "$root" && cargo build --release -q -p orchestra-cli) >&2
  fi
fi
t=$(mktemp -d); [[ -n ${BENCH_KEEP:-} ]] || trap 'rm -rf "$t"' EXIT; [[ -n ${BENCH_KEEP:-} ]] && echo "bench dir: $t" >&2
payload="output of step $(printf 'x%.0s' $(seq 1 200))"

# Agents answer from this file: every agent, every run, the same ~230-byte text.
responses() { # $1 = latency of workers ("*"), $2.. = agents with no latency
  local lat=$1; shift
  echo "agents:"
  echo "  \"*\":"
  echo "    latency_ms: $lat"
  echo "    runs: [ { turns: [ { text: \"$payload\" } ] } ]"
  for a in "$@"; do
    echo "  $a:"
    echo "    latency_ms: 0"
    echo "    runs: [ { turns: [ { text: \"$payload\" } ] } ]"
  done
}

header() { # $1 = name, $2 = max_steps
  cat <<YAML
name: $1
defaults: { provider: bench, model: m }
providers:
  bench: { kind: scripted, responses: responses.yaml }
limits: { max_steps: $2, max_parallel: 4096, max_failures: 1 }
agents:
YAML
}

case $shape in
  chain)
    n=${1:-}; [[ $n =~ ^[0-9]+$ && $n -gt 0 ]] || usage; args="[$n]"
    responses 0 > "$t/responses.yaml"
    {
      header chain $((n + 5))
      for ((i = 0; i < n; i++)); do echo "  a$i: { task: { text: \"Append one message.\" } }"; done
      echo "graph:"
      echo "  - { from: START, to: a0 }"
      for ((i = 1; i < n; i++)); do echo "  - { from: a$((i - 1)), to: a$i }"; done
      echo "  - { from: a$((n - 1)), to: END }"
    } > "$t/p.yaml" ;;
  fanout)
    w=${1:-}; l=${2:-}; [[ $w =~ ^[0-9]+$ && $l =~ ^[0-9]+$ && $w -gt 0 ]] || usage; args="[$w, $l]"
    responses "$l" split join > "$t/responses.yaml"
    {
      header fanout 10
      echo "  split: { task: { text: \"Split.\" } }"
      for ((i = 0; i < w; i++)); do echo "  w$i: { task: { text: \"Work.\" } }"; done
      echo "  join: { task: { text: \"Join.\" } }"
      echo "graph:"
      echo "  - { from: START, to: split }"
      printf '  - { from: split, to: ['; for ((i = 0; i < w; i++)); do printf '%sw%d' "$([[ $i -gt 0 ]] && echo ', ')" $i; done; echo '] }'
      printf '  - { from: ['; for ((i = 0; i < w; i++)); do printf '%sw%d' "$([[ $i -gt 0 ]] && echo ', ')" $i; done; echo '], to: join, join: all }'
      echo "  - { from: join, to: END }"
    } > "$t/p.yaml" ;;
  loop)
    k=${1:-}; [[ $k =~ ^[0-9]+$ && $k -gt 0 ]] || usage; args="[$k]"
    responses 0 > "$t/responses.yaml"
    mkdir -p "$t/conditions"
    printf 'description: always back to the writer; max_loops ends it\ndefault: writer\n' > "$t/conditions/again.yaml"
    {
      header loop $((2 * k + 5))
      echo "  writer: { task: { text: \"Write.\" } }"
      echo "  critic: { task: { text: \"Critique.\" } }"
      echo "graph:"
      echo "  - { from: START, to: writer }"
      echo "  - { from: writer, to: critic }"
      echo "  - { from: critic, condition: again, to: [writer, END], max_loops: $((k - 1)), on_max_loops: END }"
    } > "$t/p.yaml" ;;
  *) usage ;;
esac

cd "$t"
start=$(date +%s%N)
out=$("$bin" run p.yaml --db "$t/o.db" --json) || { echo "$out" >&2; echo "bench: orchestra run failed" >&2; exit 1; }
end=$(date +%s%N)
field() { printf '%s' "$out" | grep -o "\"$1\":[0-9]*" | head -1 | cut -d: -f2; }
bytes=0
for f in "$t/o.db" "$t/o.db-wal"; do [[ -f $f ]] && bytes=$((bytes + $(stat -c %s "$f"))); done
wall=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.4f", (b - a) / 1e9 }')
echo "{\"impl\": \"orchestra\", \"shape\": \"$shape\", \"args\": $args, \"wall_s\": $wall, \"messages\": $(field messages), \"checkpoints\": $(field checkpoints), \"db_bytes\": $bytes}"
