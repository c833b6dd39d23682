#!/usr/bin/env bash
# The queue and its workers (not a timed test): sessions per second for 1, 2 and 4 `orchestra
# worker` processes on sessions of 5 steps x 50 ms model latency (scripted provider), and the
# time from a worker's death (SIGKILL) to its sessions running again on another worker.
#
# The database is $QUEUE_DB (a postgres:// URL, or a SQLite file for comparison) if set; otherwise a PostgreSQL server of its own
# is started on loopback from Debian's postgresql package (initdb + pg_ctl in a temp dir, as
# `nobody` when run as root) and stopped at the end.
# $QUEUE_PG_OPTS adds server options (e.g. "-c synchronous_commit=off" to see what WAL flushes cost).
# Usage, from the project root:  bench/queue.sh [SESSIONS (40)] [CONCURRENCY per worker (8)]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${ORCHESTRA_BIN:-$root/target/release/orchestra}
sessions=${1:-40}
per_worker=${2:-8}
ttl=${QUEUE_TTL:-2s}
[[ -x $bin ]] || { echo "queue: no binary at $bin (cargo build --release, or set ORCHESTRA_BIN)" >&2; exit 2; }
work=$(mktemp -d)
pg=""
cleanup() {
  [[ -n $pg ]] && as_pg "$pg/pg_ctl" -D "$work/data" -m immediate stop >/dev/null 2>&1 || true
  left=$(jobs -p); [[ -n $left ]] && kill $left 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
as_pg() { if [[ $(id -u) == 0 ]]; then runuser -u nobody -- "$@"; else "$@"; fi; }

if [[ -n ${QUEUE_DB:-} ]]; then
  db=$QUEUE_DB
else
  pg=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  [[ -n $pg ]] || { echo "queue: no PostgreSQL (apt-get install postgresql, or set QUEUE_DB)" >&2; exit 2; }
  chmod 755 "$work"; mkdir "$work/data"; [[ $(id -u) == 0 ]] && chown nobody "$work/data"
  as_pg "$pg/initdb" -D "$work/data" -A trust -U orchestra >/dev/null
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  as_pg "$pg/pg_ctl" -D "$work/data" -l "$work/data/log" -w \
    -o "-p $port -k $work/data -c listen_addresses=127.0.0.1 -c max_connections=200 ${QUEUE_PG_OPTS:-}" start >/dev/null
  db="postgres://orchestra@127.0.0.1:$port/postgres"
fi

# The project: 5 agents in a chain, each answering after 50 ms.
proj=$work/project
mkdir -p "$proj/pipelines" "$proj/fixtures"
cat >"$proj/pipelines/five.yaml" <<'EOF'
name: five
defaults: { provider: scripted, model: worker }
providers:
  scripted: { kind: scripted, responses: ../fixtures/five.responses.yaml, latency_ms: 50 }
agents:
  s1: { task: { text: step one } }
  s2: { task: { text: step two } }
  s3: { task: { text: step three } }
  s4: { task: { text: step four } }
  s5: { task: { text: step five } }
graph:
  - { from: START, to: s1 }
  - { from: s1, to: s2 }
  - { from: s2, to: s3 }
  - { from: s3, to: s4 }
  - { from: s4, to: s5 }
  - { from: s5, to: END }
EOF
printf 'agents:\n  "*":\n    runs:\n      - turns:\n          - text: done\n' >"$proj/fixtures/five.responses.yaml"
# The same with 1 s steps, for the takeover (the sessions must still run when the worker dies).
sed 's/latency_ms: 50/latency_ms: 1000/; s/^name: five/name: slow/' "$proj/pipelines/five.yaml" >"$proj/pipelines/slow.yaml"
cd "$proj"

enqueue() { for ((i = 0; i < $1; i++)); do "$bin" run "pipelines/${2:-five}.yaml" --queue -q --db "$db" >/dev/null; done; }
now() { date +%s.%N; }

for workers in 1 2 4; do
  enqueue "$sessions"
  start=$(now)
  pids=()
  for ((w = 0; w < workers; w++)); do
    "$bin" worker --db "$db" -j "$per_worker" --poll 50ms --until-idle -q &
    pids+=($!)
  done
  wait "${pids[@]}"
  end=$(now)
  python3 -c "s=$sessions; t=$end-$start; print(f'{{\"workers\": $workers, \"per_worker\": $per_worker, \"sessions\": {s}, \"seconds\": {t:.2f}, \"sessions_per_s\": {s/t:.1f}}}')"
done

# Takeover: a worker drives 8 sessions and is killed; another worker (already polling) claims
# them once their leases ran out. Measured: death -> first claim, death -> all claimed.
enqueue 8 slow
"$bin" worker --db "$db" -j 8 --lease-ttl "$ttl" --poll 50ms 2>"$work/a.err" &
a=$!
while [[ $(grep -c '^claimed ' "$work/a.err" || true) -lt 8 ]]; do sleep 0.01; done
"$bin" worker --db "$db" -j 8 --lease-ttl "$ttl" --poll 50ms 2>"$work/b.err" &
b=$!
sleep 0.2
kill -KILL "$a"; died=$(now)
first=""
while [[ $(grep -c '^claimed ' "$work/b.err" || true) -lt 8 ]]; do
  [[ -z $first && $(grep -c '^claimed ' "$work/b.err" || true) -gt 0 ]] && first=$(now)
  sleep 0.01
done
all=$(now); [[ -n $first ]] || first=$all
kill -TERM "$b"; wait "$b" || true
python3 -c "print(f'{{\"takeover\": {{\"lease_ttl\": \"$ttl\", \"first_claim_s\": {$first-$died:.2f}, \"all_claimed_s\": {$all-$died:.2f}}}}}')"
