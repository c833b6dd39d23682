#!/usr/bin/env bash
# Regenerates crates/orchestra-cli/hot-functions.txt: the functions the release binary executes
# in typical runs, which the link of a release build places next to each other (see
# crates/orchestra-cli/build.rs). Most of a run's resident memory is code, and a page fault maps
# 64 KiB of the binary around the faulting address: with the code a run needs scattered over the
# binary's 10 MB, almost all of it ends up resident; packed together, only that code does.
#
# The runs: the three benchmark shapes as compare.sh runs them (sizes, `--json`), the PR-review pipeline
# on a clone of this project, `compile`, `status` and `status <session>`. Each runs under
# callgrind, which records every instruction address executed; the functions holding them are
# written so that each benchmark shape's code is one contiguous block: fanout-only, fanout+chain,
# all three shapes, fanout+loop, loop-only, loop+chain, chain-only (fanout and loop, whose peak
# is mostly code, are contiguous; chain's is mostly its state), then what only the other runs
# execute, those that more runs execute first.
# Symbol names do not depend on function bodies, so the file stays right while code changes;
# new functions are simply not packed until it is regenerated (after a dependency or toolchain
# upgrade, say). Needs valgrind and python3. Run from the project root.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=$root/crates/orchestra-cli/hot-functions.txt
# The compiler that made the list (build.rs warns when another one builds with it).
made_by=$root/crates/orchestra-cli/hot-functions.rustc
command -v valgrind >/dev/null || { echo "hot-functions: valgrind is needed" >&2; exit 2; }
(cd "$root" && cargo build --release -q -p orchestra-cli)
bin=$root/target/release/orchestra
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
n=0
trace() { # $1 = trace name (run-SHAPE for the benchmark runs), $2 = directory, rest = orchestra arguments
  local name=$1 dir=$2; shift 2
  n=$((n + 1))
  (cd "$dir" && valgrind -q --tool=callgrind --dump-instr=yes --compress-pos=no --compress-strings=no \
    --callgrind-out-file="$t/cg.$n.$name" "$bin" "$@" >/dev/null 2>>"$t/log") ||
    { cat "$t/log" >&2; echo "hot-functions: orchestra $* failed" >&2; exit 1; }
}
for shape in "chain 1600" "fanout 1000 100" "loop 400"; do
  # shellcheck disable=SC2086
  dir=$(BENCH_KEEP=1 "$root/bench/shapes.sh" $shape 2>&1 >/dev/null | sed -n 's/^bench dir: //p')
  [[ -d $dir ]] || { echo "hot-functions: bench/shapes.sh $shape failed" >&2; exit 1; }
  rm -f "$dir"/o.db*
  trace "run-${shape%% *}" "$dir" run p.yaml --db o.db --json
  trace status "$dir" status --db o.db
  session=$("$bin" status --db "$dir/o.db" --json | grep -o '"id": *"[^"]*"' | head -1 | cut -d'"' -f4)
  trace status-session "$dir" status "$session" --db o.db
  rm -rf "$dir"
done
git clone -q "$root" "$t/project"
trace compile "$t/project" compile pipelines/pr-review.yaml
trace pr-review "$t/project" run pipelines/pr-review.yaml

(cd "$root" && rustc --version) > "$made_by"
python3 - "$bin" "$out" "$t"/cg.* <<'PY'
import bisect, subprocess, sys
binary, out, traces = sys.argv[1], sys.argv[2], sys.argv[3:]
# callgrind reports the binary's instructions at their file addresses, as `nm` lists symbols.
syms = []
for line in subprocess.run(["nm", "-S", binary], capture_output=True, text=True, check=True).stdout.splitlines():
    p = line.split()
    if len(p) == 4 and p[2] in "tTwW":
        syms.append((int(p[0], 16), int(p[1], 16), p[3]))
syms.sort()
starts = [s[0] for s in syms]
hot, runs, shapes = {}, {}, {}
for path in traces:
    kind = path.rsplit(".", 1)[-1]
    ours, seen = False, set()
    for line in open(path, errors="replace"):
        if line.startswith("ob="):
            ours = line[3:].strip() == binary
        elif ours and line.startswith("0x"):
            a = int(line.split()[0], 16)
            i = bisect.bisect_right(starts, a) - 1
            if i >= 0 and a < syms[i][0] + syms[i][1]:
                seen.add(i)
    for i in seen:
        name = syms[i][2]
        hot[name] = syms[i]
        runs[name] = runs.get(name, 0) + 1
        if kind.startswith("run-"):
            shapes.setdefault(name, set()).add(kind[4])
# Each benchmark shape's functions in one block (see the top of this script); then the rest,
# what most runs execute first.
blocks = ["f", "cf", "cfl", "fl", "l", "cl", "c"]
def key(s):
    group = "".join(sorted(shapes.get(s[2], ())))
    if group:
        return (blocks.index(group), 0, s[0])
    return (len(blocks), -runs[s[2]], s[0])
with open(out, "w") as f:
    for s in sorted(hot.values(), key=key):
        f.write(s[2] + "\n")
print(f"hot-functions: {len(hot)} functions, {sum(s[1] for s in hot.values()) // 1024} KiB of code -> {out}")
PY
