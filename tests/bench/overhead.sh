#!/usr/bin/env bash
# Measures what tracing costs the traced program, as ratios from one run:
#   1. probes compiled in but untraced vs compiled out (--no-default-features);
#   2. untraced vs traced by bpftrace scripts of increasing per-event work.
# The simulator reports its own run time (-v: "workload done ... elapsed=");
# start-up and workload construction are excluded. Needs root + bpftrace for 2.
# Usage: bash tests/bench/overhead.sh [MODULES] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${1:-100000}
rounds=${2:-3}
here=tests/bench

cargo build --release -q
cargo build --release -q --no-default-features --target-dir target/noprobes
with=target/release/importprobe
without=target/noprobes/release/importprobe

# Prints the simulator's elapsed time in ns for one run.
elapsed_ns() {
    sed -n 's/.*elapsed=\([0-9.]*\)\([a-zµ]*\).*/\1 \2/p' | awk '{
        f = ($2 == "s") ? 1e9 : ($2 == "ms") ? 1e6 : ($2 == "µs" || $2 == "us") ? 1e3 : 1;
        printf "%d\n", $1 * f }'
}
run_plain() { NO_COLOR=1 "$1" -v run -w flat -n "$n" --scale 0 2>&1 | elapsed_ns; }
run_traced() {
    local err; err=$(mktemp)
    NO_COLOR=1 "$with" -v run -w flat -n "$n" --scale 0 --wait-for-tracer=30 --exit-grace-ms 300 2>"$err" &
    local pid=$!
    sleep 0.2
    bpftrace -p "$pid" "$1" >/dev/null 2>&1 || true
    wait "$pid"
    elapsed_ns <"$err"; rm -f "$err"
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

declare -A t
t[compiled-out]=$(for _ in $(seq "$rounds"); do run_plain "$without"; done | median)
t[untraced]=$(for _ in $(seq "$rounds"); do run_plain "$with"; done | median)
if [ "$(id -u)" -eq 0 ] && command -v bpftrace >/dev/null; then
    for s in count agg printf; do
        t[$s]=$(for _ in $(seq "$rounds"); do run_traced "$here/$s.bt"; done | median)
    done
fi

base=${t[untraced]}
printf '%-14s %12s %14s %10s\n' case "run (ms)" "per pair (ns)" "x untraced"
for k in compiled-out untraced count agg printf; do
    [ -n "${t[$k]:-}" ] || continue
    awk -v k="$k" -v v="${t[$k]}" -v n="$n" -v b="$base" \
        'BEGIN { printf "%-14s %12.1f %14.0f %10.2f\n", k, v/1e6, v/n, v/b }'
done
