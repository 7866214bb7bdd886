#!/usr/bin/env bash
# The benchmarks of BENCHMARKS.md, each figure a set of ratios measured in
# one invocation (the machine is shared and noisy: never compare across runs).
#
#   bash tests/bench/run.sh [--quick] [--bin FILE] [--python FILE] [FIGURE...]
#
# Figures (default: all that this host can run):
#   probes     disabled probes: instructions (callgrind) and ns per pair, with
#              the probes compiled in vs out (needs cargo and valgrind)
#   simulator  untraced pairs/s, construction time and peak RSS by size
#   scripts    every bundled script's and `trace`'s cost per pair, as a factor
#              of the uprobe floor (a script that only counts)
#   loss       the highest pair rate each collector takes with no lost event
#   accuracy   script and `trace` times against the simulator's known costs,
#              before and after subtracting the probe cost (needs cargo)
#   cpython    tracing vs -X importtime overhead on a real interpreter start-up
#   follow     what --follow-children's ptrace follower costs, without and per
#              fork (needs cargo)
#   reports    `report` in every format on a large recording (ground truth and
#              -X importtime log): wall time, peak RSS, bytes per event
#
# --quick: small sizes and one round, only to prove every figure still runs
# (CI). --bin: a prebuilt importprobe (default: cargo builds one); --python: a
# CPython with the probes (default /usr/bin/python3.11). Inside a chroot of
# the compatibility matrix, which has no cargo: pass --bin (see BENCHMARKS.md).
# Tables go to stdout and to target/bench/FIGURE.txt. Tracing needs root.
set -euo pipefail
cd "$(dirname "$0")/../.."
HERE=tests/bench

QUICK=0
BIN=
PYTHON=/usr/bin/python3.11
FIGURES=()
while [[ $# -gt 0 ]]; do
    case $1 in
        --quick) QUICK=1 ;;
        --bin) BIN=$2; shift ;;
        --python) PYTHON=$2; shift ;;
        -h | --help) sed -n '2,26s/^# \{0,1\}//p' "$0"; exit 0 ;;
        -*) echo "run.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
        *) FIGURES+=("$1") ;;
    esac
    shift
done
OUT=target/bench
mkdir -p "$OUT"
export NO_COLOR=1

say() { printf '%s\n' "$*" >&2; }
has() { command -v "$1" >/dev/null 2>&1; }
can_trace() { [[ $(id -u) -eq 0 ]] && has bpftrace; }
# Sizes: the first argument in full mode, the second with --quick.
pick() { if [[ $QUICK -eq 1 ]]; then echo "$2"; else echo "$1"; fi; }
ROUNDS=$(pick 5 1)

if [[ -z $BIN ]]; then
    has cargo || { echo "run.sh: no cargo here: pass --bin FILE" >&2; exit 2; }
    cargo build --release -q
    BIN=target/release/importprobe
fi
[[ -x $BIN ]] || { echo "run.sh: $BIN is not an executable" >&2; exit 2; }

# The header of every table: what was measured where.
machine() {
    printf '# %s, %s cores, kernel %s, %s' "$(date -u +%F)" "$(nproc)" "$(uname -r)" "$($BIN --version)"
    if has bpftrace; then printf ', %s' "$(bpftrace --version 2>/dev/null)"; fi
    printf '\n'
}

median() { sort -g | awk '{a[NR] = $1} END {if (NR) print a[int((NR + 1) / 2)]}'; }
minimum() { sort -g | head -1; }

# Prints in ns the duration field $2 (`elapsed`, `build`) of the simulator's
# log line matching $1, as in `elapsed=12.5ms`.
duration_ns() {
    sed -n "s/.*$1.* $2=\\([0-9.]*\\)\\([a-zµ]*\\).*/\\1 \\2/p" | awk '{
        f = ($2 == "s") ? 1e9 : ($2 == "ms") ? 1e6 : ($2 == "µs" || $2 == "us") ? 1e3 : 1
        printf "%d\n", $1 * f }'
}
elapsed_ns() { duration_ns "workload done" elapsed; }

# Runs `importprobe run ARGS` untraced; prints the simulation's ns.
run_plain() { "$BIN" -v run "$@" 2>&1 >/dev/null | elapsed_ns; }

# Runs `importprobe run ARGS` waiting for a tracer and attaches
# `importprobe trace --pid` with TRACE_ARGS (the one bpftrace runner) once the
# simulator waits. Prints the simulation's ns; the report goes to $TRACE_OUT
# and the tracer's stderr to $TRACE_ERR.
TRACE_OUT=$OUT/last-report
TRACE_ERR=$OUT/last-tracer-stderr
run_traced() {
    local trace_args=() err pid
    while [[ $1 != -- ]]; do trace_args+=("$1"); shift; done
    shift
    err=$(mktemp)
    "$BIN" -v run "$@" --wait-for-tracer=60 --exit-grace-ms 300 >/dev/null 2>"$err" &
    pid=$!
    until grep -q "waiting up to" "$err"; do
        kill -0 "$pid" 2>/dev/null || { cat "$err" >&2; return 1; }
        sleep 0.05
    done
    "$BIN" trace --pid "$pid" "${trace_args[@]}" -o "$TRACE_OUT" 2>"$TRACE_ERR" || {
        say "trace ${trace_args[*]} failed:"; cat "$TRACE_ERR" >&2; }
    wait "$pid"
    elapsed_ns <"$err"
    rm -f "$err"
}

# Shows a figure's table and keeps it in target/bench/FIGURE.txt.
table() { tee "$OUT/$1.txt"; }

# ---------------------------------------------------------------- probes
fig_probes() {
    has cargo && has valgrind || { say "probes: needs cargo and valgrind; skipped"; return; }
    local pairs ir_pairs
    pairs=$(pick 10000000 1000000)
    ir_pairs=$(pick 200000 20000)
    cargo build --release -q --example probe_pairs
    cargo build --release -q --example probe_pairs --no-default-features --target-dir target/noprobes
    {
        machine
        echo "# probe pairs fired with no tracer attached: examples/probe_pairs.rs"
        printf '%-14s %14s %14s %16s\n' build "instr/pair" "ns/pair min" "ns/pair median"
        local b exe ir line
        for b in compiled-in compiled-out; do
            exe=target/release/examples/probe_pairs
            [[ $b == compiled-out ]] && exe=target/noprobes/release/examples/probe_pairs
            # 15 rounds of ir_pairs pairs, only the measured loop collected.
            valgrind --tool=callgrind --toggle-collect=importprobe_bench_fire_pairs \
                --callgrind-out-file="$OUT/callgrind.$b" "$exe" "$ir_pairs" >/dev/null 2>&1
            ir=$(sed -n 's/^totals: \([0-9]*\).*/\1/p' "$OUT/callgrind.$b")
            line=$("$exe" "$pairs")
            awk -v b="$b" -v ir="$ir" -v n=$((15 * ir_pairs)) -v l="$line" 'BEGIN {
                nf = split(l, f, " "); for (i = 2; i <= nf; i++) { if (f[i] == "ns/pair") { v[++k] = f[i - 1] } }
                printf "%-14s %14.2f %14.3f %16.3f\n", b, ir / n, v[1], v[2] }'
        done
    } | table probes
}

# ---------------------------------------------------------------- simulator
fig_simulator() {
    local sizes
    sizes=$(pick "1000 100000 1000000" "1000 10000")
    {
        machine
        echo "# untraced, zero-cost modules, probes compiled in; median of $ROUNDS runs (by simulation time)"
        echo "# build = the workload's construction (-v build=); RSS = peak of the whole process"
        printf '%-8s %9s %12s %10s %10s %10s %10s %12s\n' workload modules "pairs/s" "ns/pair" "build ms" "sim ms" "RSS MB" "RSS B/module"
        local w n r log
        for w in flat stress deep; do
            for n in $sizes; do
                [[ $w == deep ]] && n=$(pick 10000 1000)
                for r in $(seq "$ROUNDS"); do
                    log=$(/usr/bin/time -f 'rss_kb=%M' "$BIN" -v run -w "$w" -n "$n" --scale 0 2>&1 >/dev/null)
                    printf '%s %s %s\n' "$(elapsed_ns <<<"$log")" \
                        "$(sed -n 's/.*rss_kb=\([0-9]*\).*/\1/p' <<<"$log")" \
                        "$(duration_ns "loaded workload" build <<<"$log")"
                done | sort -g | awk -v w="$w" -v n="$n" '{ s[NR] = $1; m[NR] = $2; b[NR] = $3 }
                    END { i = int((NR + 1) / 2)
                        printf "%-8s %9d %12.0f %10.1f %10.1f %10.1f %10.1f %12.0f\n", w, n, n / (s[i] / 1e9),
                            s[i] / n, b[i] / 1e6, s[i] / 1e6, m[i] / 1024, m[i] * 1024 / n }'
                [[ $w == deep ]] && break
            done
        done
    } | table simulator
}

# ---------------------------------------------------------------- scripts
# The cases of the scripts figure: a label and the `trace` arguments.
script_cases() {
    echo "floor --script-file $HERE/count.bt"
    # What keeping every event costs, with and without the name.
    echo "map --script-file $HERE/map.bt"
    echo "map+name --script-file $HERE/name.bt"
    echo "trace-default"
    local s
    for s in $("$BIN" trace --list | awk '{print $1}'); do
        echo "$s --script $s"
    done
}

fig_scripts() {
    can_trace || { say "scripts: needs root and bpftrace; skipped"; return; }
    local n case_line label args r
    n=$(pick 100000 5000)
    local -A t=()
    local sim=(-w flat -n "$n" --scale 0)
    t[untraced]=$(for r in $(seq "$ROUNDS"); do run_plain "${sim[@]}"; done | median)
    while read -r label args; do
        # shellcheck disable=SC2086 # args are words
        t[$label]=$(for r in $(seq "$ROUNDS"); do
            run_traced $args --max-imports $((2 * n)) -- "${sim[@]}"; done | median)
    done < <(script_cases)
    {
        machine
        echo "# flat workload, $n zero-cost imports, median of $ROUNDS; cost = traced - untraced"
        printf '%-16s %10s %12s %12s %12s\n' case "run ms" "x untraced" "cost ns/pair" "x floor"
        for label in untraced $(script_cases | awk '{print $1}'); do
            awk -v k="$label" -v v="${t[$label]}" -v b="${t[untraced]}" -v f="${t[floor]}" -v n="$n" 'BEGIN {
                c = (v - b) / n; fl = (f - b) / n
                printf "%-16s %10.1f %12.2f %12.0f %12s\n", k, v / 1e6, v / b, c,
                    (k == "untraced") ? "-" : sprintf("%.2f", c / fl) }'
        done
    } | table scripts
}

# ---------------------------------------------------------------- loss
# Each collector against the stress workload (a tree, zero cost) at rising
# rates (--scale of the flat workload's 70 µs a module gives the rate), and
# two threads at once (the `threads` workload): lost events as reported.
fig_loss() {
    can_trace || { say "loss: needs root and bpftrace; skipped"; return; }
    local n scales s label args rate lost ns
    n=$(pick 100000 5000)
    scales=$(pick "0.2 0.1 0.05 0 " "0")
    {
        machine
        echo "# flat workload, $n imports; rate = pairs / simulation time; lost = what the report says"
        printf '%-16s %8s %12s %10s %s\n' collector scale "pairs/s" lost "report"
        while read -r label args; do
            for s in $scales; do
                # shellcheck disable=SC2086 # args are words
                ns=$(run_traced $args --max-imports $((2 * n)) -- -w flat -n "$n" --scale "$s")
                lost=$(grep -ohE '(Lost|lost|dropped) [0-9]+|[0-9]+ (lost|dropped)' "$TRACE_OUT" "$TRACE_ERR" | grep -oE '[0-9]+' | head -1 || true)
                rate=$(awk -v n="$n" -v ns="$ns" 'BEGIN { printf "%.0f", n / (ns / 1e9) }')
                printf '%-16s %8s %12s %10s %s\n' "$label" "$s" "$rate" "${lost:-0}" \
                    "$(grep -hE 'Lost|lost|dropped' "$TRACE_OUT" "$TRACE_ERR" | head -1 | cut -c1-60)"
            done
        done < <(script_cases | grep -E '^(trace-default|import-events|import-latency|import-tree)( |$)')
    } | table loss
}

# ---------------------------------------------------------------- accuracy
fig_accuracy() {
    can_trace && has cargo || { say "accuracy: needs root, bpftrace and cargo; skipped"; return; }
    {
        machine
        IMPORTPROBE_BENCH_QUICK=$QUICK cargo test --release -q --test accuracy -- --ignored --nocapture --test-threads 1 2>&1 |
            grep -vE '^(running|test result|$)|^test .* ok$'
    } | table accuracy
}

# ---------------------------------------------------------------- cpython
# A real start-up importing what issue 10 names, timed inside the process
# (the tracer's own start-up is not in it): untraced, -X importtime, and
# traced by `trace`'s default collection and by import-latency, alternating.
CPY_PROG='import time; t = time.perf_counter_ns()
import asyncio, json, email.mime.multipart, http.client, xml.etree.ElementTree, decimal, logging.handlers, argparse, unittest
print(time.perf_counter_ns() - t)'

fig_cpython() {
    [[ -x $PYTHON ]] || { say "cpython: no $PYTHON; skipped"; return; }
    local runs r mode out
    runs=$(pick 60 2)
    local modes=(untraced importtime)
    can_trace && modes+=(trace-default import-latency)
    local -A ns=()
    for r in $(seq "$runs"); do
        for mode in "${modes[@]}"; do
            case $mode in
                untraced) out=$("$PYTHON" -c "$CPY_PROG") ;;
                importtime) out=$("$PYTHON" -X importtime -c "$CPY_PROG" 2>/dev/null) ;;
                trace-default) out=$("$BIN" trace -o /dev/null -- "$PYTHON" -c "$CPY_PROG" 2>/dev/null) ;;
                import-latency) out=$("$BIN" trace --script import-latency -o /dev/null -- "$PYTHON" -c "$CPY_PROG" 2>/dev/null) ;;
            esac
            ns[$mode]+="$out "
        done
    done
    {
        machine
        echo "# $("$PYTHON" --version) importing asyncio json email.mime.multipart http.client xml.etree.ElementTree"
        echo "# decimal logging.handlers argparse unittest: in-process ns, median of $runs alternating runs"
        printf '%-16s %10s %10s %10s %12s %12s\n' mode "p25 ms" "median ms" "p75 ms" "x untraced" "overhead %"
        local base
        base=$(tr ' ' '\n' <<<"${ns[untraced]}" | grep . | median)
        for mode in "${modes[@]}"; do
            tr ' ' '\n' <<<"${ns[$mode]}" | grep . | sort -g | awk -v k="$mode" -v b="$base" '{ a[NR] = $1 }
                END { m = a[int((NR + 1) / 2)]
                    printf "%-16s %10.2f %10.2f %10.2f %12.3f %12.1f\n", k, a[int((NR + 3) / 4)] / 1e6, m / 1e6,
                        a[int((3 * NR + 1) / 4)] / 1e6, m / b, (m / b - 1) * 100 }'
        done
    } | table cpython
}

# ---------------------------------------------------------------- follow
fig_follow() {
    [[ $(id -u) -eq 0 ]] && has cargo && [[ -x $PYTHON ]] || { say "follow: needs root, cargo and $PYTHON; skipped"; return; }
    {
        machine
        echo "# the follower alone (no tracer), on $("$PYTHON" --version): tests/follow.rs cost_of_following"
        IMPORTPROBE_PYTHON=$PYTHON cargo test --release -q --test follow -- --ignored --nocapture cost_of_following 2>&1 |
            grep -vE '^(running|test result|$)|^test .* ok$|^\.$'
    } | table follow
}

# ---------------------------------------------------------------- reports
# A stress workload's ground truth (a tree, 8 children a module) and its -X
# importtime rendering, read and rendered in every format by one `report`
# process each: the whole path a user waits for (reading, pairing into the
# forest, rendering, writing). RSS B/event = peak RSS above a 1,000-module
# report of the same input kind and format, per event (2 a module).
fig_reports() {
    local sizes formats n input f r line
    sizes=$(pick "1000 100000 1000000" "1000 5000")
    formats=$("$BIN" report --help | sed -n 's/^ *- \([a-z]*\): .*/\1/p')
    local -A base=()
    {
        machine
        echo "# report --format F INPUT -o FILE, one process each; median of $ROUNDS by wall time"
        echo "# input: a stress workload's --truth (JSON lines) and its -X importtime log (report --format importtime)"
        printf '%-10s %9s %-11s %10s %12s %10s %10s %12s\n' input modules format "wall ms" "events/s" "RSS MB" "out MB" "RSS B/event"
        for n in $sizes; do
            "$BIN" run -w stress -n "$n" --scale 0 --truth "$OUT/reports-$n.jsonl" >/dev/null
            "$BIN" report -f importtime "$OUT/reports-$n.jsonl" -o "$OUT/reports-$n.log"
            for input in truth importtime; do
                local file=$OUT/reports-$n.jsonl
                [[ $input == importtime ]] && file=$OUT/reports-$n.log
                for f in $formats; do
                    line=$(for r in $(seq "$ROUNDS"); do
                        local t0 kb
                        t0=$(date +%s%N)
                        kb=$(/usr/bin/time -f '%M' "$BIN" report -f "$f" "$file" -o "$OUT/reports.out" 2>&1 >/dev/null | tail -1)
                        echo "$(($(date +%s%N) - t0)) $kb"
                    done | sort -g | awk '{ a[NR] = $0 } END { print a[int((NR + 1) / 2)] }')
                    [[ -n ${base[$input.$f]:-} ]] || base[$input.$f]=${line#* }
                    awk -v i="$input" -v n="$n" -v f="$f" -v l="$line" -v b="${base[$input.$f]}" \
                        -v o="$(stat -c %s "$OUT/reports.out")" 'BEGIN {
                        split(l, x, " "); s = x[1] / 1e9; kb = x[2]; ev = 2 * n
                        printf "%-10s %9d %-11s %10.1f %12s %10.1f %10.1f %12s\n", i, n, f, s * 1000,
                            (s > 0 ? sprintf("%.0f", ev / s) : "-"), kb / 1024, o / 1e6,
                            (kb > b ? sprintf("%.0f", (kb - b) * 1024 / ev) : "-") }'
                done
            done
        done
    } | table reports
}

[[ ${#FIGURES[@]} -gt 0 ]] || FIGURES=(probes simulator scripts loss accuracy cpython follow reports)
for f in "${FIGURES[@]}"; do
    case $f in
        probes | simulator | scripts | loss | accuracy | cpython | follow | reports) say "=== $f"; "fig_$f" ;;
        *) echo "run.sh: unknown figure $f (see --help)" >&2; exit 2 ;;
    esac
done
