#!/usr/bin/env bash
# Times `orchestra compile` on a generated pipeline of N agents (default 1000): segments of ten
# agents (one fans out to eight in parallel, which join into the tenth), chained one after the
# other, with a bounded loop from the last agent back to the last segment. Every agent has
# named prompt layers, a templated task, tools and an output schema, so resolution and every
# check run at full size. Prints one JSON line:
#   {"impl":"orchestra","shape":"compile","args":[N],"wall_s":...}
# wall_s is the best of RUNS runs (default 5). Run from the project root.
set -euo pipefail

n="${1:-1000}"
runs="${RUNS:-5}"
if (( n < 10 || n % 10 != 0 )); then
  echo "usage: bench/compile.sh [N]   (N a multiple of 10, at least 10)" >&2
  exit 2
fi

root="$(cd "$(dirname "$0")/.." && pwd)"
bin="$root/target/release/orchestra"
if [[ ! -x "$bin" || -n "$(find "$root/crates" -newer "$bin" -name '*.rs' -print -quit)" ]]; then
  cargo build --quiet --release -p orchestra-cli --manifest-path "$root/Cargo.toml" >&2
fi

dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
mkdir -p "$dir/prompts/roles" "$dir/prompts/tasks" "$dir/conditions" "$dir/fixtures"
cat > "$dir/orchestra.yaml" <<'YAML'
search_paths: ["."]
defaults: { provider: scripted }
providers:
  scripted: { kind: scripted, responses: fixtures/responses.yaml }
YAML
printf 'agents:\n  "*":\n    runs:\n      - turns:\n          - text: "{\\"note\\": \\"ok\\"}"\n' > "$dir/fixtures/responses.yaml"
printf 'text: You are one worker of a large pipeline.\n' > "$dir/prompts/roles/worker.yaml"
printf 'text: You combine the work of others.\n' > "$dir/prompts/roles/joiner.yaml"
cat > "$dir/prompts/tasks/step.yaml" <<'YAML'
text: |
  You are {{ agent.name }}, step {{ state.messages | length }} of the run on {{ inputs.topic }}.
  {% for n in state.notes %}- {{ n }}
  {% endfor %}
YAML
cat > "$dir/conditions/again.yaml" <<'YAML'
rules:
  - when: state.notes | length < 3 and loops < 2
    to: s_last_first
default: END
YAML

segments=$(( n / 10 ))
last_first="a$(( (segments - 1) * 10 ))"
sed -i "s/s_last_first/$last_first/" "$dir/conditions/again.yaml"
{
  echo "name: compile-bench"
  echo "inputs: { topic: { default: benchmarks } }"
  echo "workspace: { repos: { app: { path: . } } }"
  echo "state:"
  echo "  notes: { type: array, reducer: append }"
  echo "agents:"
  for (( i = 0; i < n; i++ )); do
    role=worker
    (( i % 10 == 9 )) && role=joiner
    echo "  a$i:"
    echo "    role: $role"
    echo "    task: step"
    echo "    tools: [app:read-file, app:search-code]"
    echo "    output: { schema: { type: object, required: [note], properties: { note: { type: string } } } }"
    echo "    writes: { notes: /note }"
  done
  echo "graph:"
  echo "  - { from: START, to: a0 }"
  for (( s = 0; s < segments; s++ )); do
    b=$(( s * 10 ))
    fan="a$(( b + 1 ))"
    for (( k = 2; k <= 8; k++ )); do fan="$fan, a$(( b + k ))"; done
    echo "  - { from: a$b, to: [$fan] }"
    echo "  - { from: [$fan], to: a$(( b + 9 )), join: all }"
    if (( s + 1 < segments )); then
      echo "  - { from: a$(( b + 9 )), to: a$(( b + 10 )) }"
    fi
  done
  echo "  - { from: a$(( n - 1 )), condition: again, to: [$last_first, END], max_loops: 3, on_max_loops: END }"
} > "$dir/pipeline.yaml"

# The pipeline must compile; then time it.
(cd "$dir" && "$bin" compile pipeline.yaml > /dev/null)
best=""
for (( r = 0; r < runs; r++ )); do
  start=$EPOCHREALTIME
  (cd "$dir" && "$bin" compile pipeline.yaml > /dev/null)
  end=$EPOCHREALTIME
  t=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.4f", b - a }')
  if [[ -z "$best" ]] || awk -v t="$t" -v b="$best" 'BEGIN { exit !(t < b) }'; then best=$t; fi
done
printf '{"impl":"orchestra","shape":"compile","args":[%d],"wall_s":%s}\n' "$n" "$best"
