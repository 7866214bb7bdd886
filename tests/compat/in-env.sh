#!/usr/bin/env bash
# in-env.sh ENV ROOT OUT: the steps of the matrix for one environment, started
# by run.sh (not meant to be run by hand). ROOT is / for this machine; for a
# chroot this script must run in a private mount namespace (run.sh starts it
# under `unshare --mount --propagation private`), where it bind-mounts the
# kernel file systems and the checkout into ROOT, so that every mount goes
# away with the namespace. Commands run chrooted; this script and its logs
# stay on the host. Results are rows appended to OUT/results.tsv, logs are
# in OUT/ENV/.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# Physical path: the one cargo compiled into the test executables.
CHECKOUT=$(cd "$HERE/../.." && pwd -P)
# shellcheck source=tests/compat/matrix.sh
source "$HERE/matrix.sh"
# shellcheck source=tests/compat/lib.sh
source "$HERE/lib.sh"

ENV=$1
ROOT=$2
OUT=$3
COMPAT_RESULTS=$OUT/results.tsv
LOGS=$OUT/$ENV
load_env_table
PYTHON=${ENV_PYTHON[$ENV]}
BIN=
TARGET_DIR=
declare -A TEST_PATHS=()
# The command env_command composed.
CMD=()
# Scratch directories (host paths) removed at exit.
SCRATCH=()
# The traced program's directory inside the environment (make_app).
APP=

# Removes the scratch directories (EXIT trap).
cleanup() {
    local d
    for d in "${SCRATCH[@]}"; do
        rm -rf -- "$d"
    done
}

# Stops the running command and exits (signal trap).
on_signal() {
    stop_current
    say "$ENV: interrupted"
    exit 143
}

# Prints the host's view of a path inside the environment.
host_path() {
    printf '%s%s\n' "${ROOT%/}" "$1"
}

# Sets CMD to run a command in the environment, chrooted unless it is the
# host, in directory $1, from an empty environment plus BASE_ENV and the
# VAR=value words before `--`. Usage: env_command DIR [VAR=value...] -- CMD...
env_command() {
    local dir=$1
    shift
    local vars=()
    while [[ $1 != -- ]]; do
        vars+=("$1")
        shift
    done
    shift
    CMD=()
    if [[ $ROOT != / ]]; then
        CMD=(chroot "$ROOT")
    fi
    CMD+=(/usr/bin/env -i -C "$dir" "${BASE_ENV[@]}" "${vars[@]}" "$@")
}

# Reads OUT/artifacts.tsv (written by run.sh from cargo's messages): the
# importprobe binary, the test executables, the target directory.
read_artifacts() {
    local kind name path
    while IFS=$'\t' read -r kind name path; do
        case $kind in
            bin) BIN=$path ;;
            test) TEST_PATHS[$name]=$path ;;
            target) TARGET_DIR=$path ;;
        esac
    done <"$OUT/artifacts.tsv"
}

# Bind-mounts CHROOT_MOUNTS, the checkout and (when outside it) cargo's
# target directory into ROOT at their own paths. Refuses to run outside a
# private mount namespace, where the mounts would outlive this script.
mount_chroot() {
    local start m
    start=$(now_ms)
    if [[ $(readlink /proc/self/ns/mnt) == "$(readlink /proc/1/ns/mnt)" ]]; then
        record "$ENV" mounts FAIL "$start" "not in a private mount namespace: refusing to mount into $ROOT"
        return 1
    fi
    for m in "${CHROOT_MOUNTS[@]}"; do
        if ! mountpoint -q "/$m"; then
            record "$ENV" mounts FAIL "$start" "/$m is not mounted on this machine (bash tests/setup-host.sh mounts tracefs and debugfs)"
            return 1
        fi
        if ! { mkdir -p "$ROOT/$m" && mount --bind "/$m" "$ROOT/$m"; }; then
            record "$ENV" mounts FAIL "$start" "mount --bind /$m $ROOT/$m failed"
            return 1
        fi
    done
    for m in "$CHECKOUT" "$TARGET_DIR"; do
        if [[ -n $m && ($m == "$CHECKOUT" || $m != "$CHECKOUT"/*) ]]; then
            if ! { mkdir -p "$ROOT$m" && mount --bind "$m" "$ROOT$m"; }; then
                record "$ENV" mounts FAIL "$start" "mount --bind $m $ROOT$m failed"
                return 1
            fi
        fi
    done
}

# Prints the versions of the environment's tracers and interpreter, and
# records them as the `versions` row.
show_versions() {
    local start versions=() v log=$LOGS/versions.log
    start=$(now_ms)
    env_command / -- bpftrace --version
    v=$(run_bounded 60 - - "${CMD[@]}" 2>&1 | head -n1) || true
    versions+=("${v:-bpftrace: not found}")
    env_command / -- "$PYTHON" --version
    v=$(run_bounded 60 - - "${CMD[@]}" 2>&1 | head -n1) || true
    versions+=("${v:-$PYTHON: not found}")
    if env_has_tracer "$ENV" dtrace; then
        env_command / -- "$DTRACE_PATH" -V
        v=$(run_bounded 60 - - "${CMD[@]}" 2>&1 | head -n1) || true
        versions+=("${v:-$DTRACE_PATH: not found}")
    fi
    printf '%s\n' "${versions[@]}" >"$log"
    v=$(paste -sd '|' "$log")
    record "$ENV" versions PASS "$start" "${v//|/, }"
}

# Prints the interesting part of a failed test executable's output: each
# failed test's header and first lines, the list of failures and the result.
show_test_failures() {
    local log=$1
    if grep -q '^failures:$' "$log"; then
        awk '
            /^failures:$/ { inside = 1 }
            !inside { next }
            /^---- .* ----$/ { shown = 0 }
            /^failures:$/ && seen_list++ { listing = 1 }
            listing || shown++ < 25 { print }
        ' "$log" | head -n 400 | sed 's/^/    | /'
    else
        show_tail "$log" 40
    fi
}

# Prints " (A, B, ...)" from a test executable's closing list of
# failures (at most 6 names), or nothing.
failed_tests() {
    local names n
    names=$(awk '/^failures:$/ { n++; next } n == 2 && /^    [^ ]/ { print $1 }' "$1")
    [[ -n $names ]] || return 0
    n=$(grep -c '' <<<"$names")
    printf ' (%s' "$(head -n 6 <<<"$names" | paste -sd ' ' | sed 's/ /, /g')"
    [[ $n -le 6 ]] || printf ' and %d more' "$((n - 6))"
    printf ')'
}

# Step a: runs each tracing test executable in the environment with TEST_ENV
# (and TEST_DTRACE_ENV where there is dtrace); one row per executable.
step_tests() {
    local name start log rc vars=() v result
    for v in "${TEST_ENV[@]}"; do
        vars+=("$v")
    done
    if env_has_tracer "$ENV" dtrace; then
        for v in "${TEST_DTRACE_ENV[@]}"; do
            vars+=("$v")
        done
    fi
    vars=("${vars[@]//@python@/$PYTHON}")
    vars=("${vars[@]//@dtrace@/$DTRACE_PATH}")
    for name in "${TEST_EXECUTABLES[@]}"; do
        start=$(now_ms)
        log=$LOGS/test-$name.log
        if [[ -z ${TEST_PATHS[$name]:-} ]]; then
            record "$ENV" "tests:$name" FAIL "$start" "cargo built no test executable named $name (see TEST_EXECUTABLES in tests/compat/matrix.sh)"
            continue
        fi
        say "$ENV: tests:$name: ${vars[*]} ${TEST_PATHS[$name]} ${TEST_ARGS[*]}"
        env_command "$CHECKOUT" "${vars[@]}" -- "${TEST_PATHS[$name]}" "${TEST_ARGS[@]}"
        rc=0
        run_bounded "$TIMEOUT_TEST_EXECUTABLE" "$log" "$log" "${CMD[@]}" || rc=$?
        result=$(grep -E '^test result: ' "$log" | tail -n1 | sed -E 's/^test result: [A-Za-z]+\. //; s/(failed);.*/\1/') || true
        if [[ $rc -eq 0 ]]; then
            record "$ENV" "tests:$name" PASS "$start" "$result"
        else
            show_test_failures "$log"
            record "$ENV" "tests:$name" FAIL "$start" "$(describe_status "$rc")${result:+, $result}$(failed_tests "$log"); log: $log"
        fi
    done
}

# Step b: `importprobe smoke --python PYTHON`, its report shown.
step_smoke() {
    local start log=$LOGS/smoke.log rc=0 result
    start=$(now_ms)
    say "$ENV: smoke: importprobe smoke --python $PYTHON"
    env_command "$CHECKOUT" -- "$BIN" smoke --python "$PYTHON"
    run_bounded "$TIMEOUT_SMOKE" "$log" "$log" "${CMD[@]}" || rc=$?
    sed 's/^/    | /' "$log"
    result=$(grep -E '^result: ' "$log" | tail -n1) || true
    if [[ $rc -eq 0 ]]; then
        record "$ENV" smoke PASS "$start" "$result"
    else
        record "$ENV" smoke FAIL "$start" "$(describe_status "$rc")${result:+, $result}"
    fi
}

# Step e: the benchmarks that depend on the tracer and the interpreter
# (tests/bench/run.sh scripts loss cpython), in mode IMPORTPROBE_BENCH: quick (default:
# they only have to run), full (the figures of BENCHMARKS.md) or off;
# IMPORTPROBE_BENCH_ONLY=1 runs this step alone.
step_bench() {
    local start log=$LOGS/bench.log rc=0 mode=${IMPORTPROBE_BENCH:-quick} quick=()
    [[ $mode == off ]] && return
    [[ $mode == quick ]] && quick=(--quick)
    start=$(now_ms)
    say "$ENV: bench ($mode): tests/bench/run.sh scripts loss cpython"
    env_command "$CHECKOUT" -- bash tests/bench/run.sh "${quick[@]}" --bin "$BIN" --python "$PYTHON" scripts loss cpython
    run_bounded "$TIMEOUT_BENCH" "$log" "$log" "${CMD[@]}" || rc=$?
    sed 's/^/    | /' "$log"
    if [[ $rc -eq 0 ]]; then
        record "$ENV" "bench ($mode)" PASS "$start" "tables in $LOGS/bench.log"
    else
        record "$ENV" "bench ($mode)" FAIL "$start" "$(describe_status "$rc"); log: $log"
    fi
}

# Copies tests/compat/app (the traced program) into a fresh directory under
# the environment's /tmp (each run starts without bytecode caches); sets APP
# to its path inside the environment.
make_app() {
    local dir
    dir=$(mktemp -d "$(host_path /tmp)/importprobe-compat.XXXXXX")
    SCRATCH+=("$dir")
    cp -R "$HERE/app/." "$dir/"
    chmod 755 "$dir"
    APP=${dir#"${ROOT%/}"}
}

# Checks one traced run of the app: exit status $2, stdout file $3, stderr
# file $4, report file $5 (host paths); records row $1. It passes when the
# tracer exited 0, the program printed its last line, the report is not
# empty and stderr holds nothing but ALLOWED_STDERR lines; otherwise the
# lines that were not allowed are shown.
judge_traced_run() {
    local step=$1 rc=$2 stdout=$3 stderr=$4 report=$5 start=$6 also=${7:-}
    local problems=() bad pattern_args=() p n errors warnings first counts
    for p in "${ALLOWED_STDERR[@]}"; do
        pattern_args+=(-e "$p")
    done
    bad=$(grep -v -E "${pattern_args[@]}" "$stderr") || true
    [[ $rc -eq 0 ]] || problems+=("$(describe_status "$rc")")
    grep -q '^compat-app: done' "$stdout" || problems+=("the program did not run to its end (no 'compat-app: done' on stdout)")
    [[ -s $report ]] || problems+=("empty report")
    if [[ -n $bad ]]; then
        n=$(grep -c '' <<<"$bad")
        errors=$(grep -c 'ERROR' <<<"$bad") || true
        warnings=$(grep -c 'WARNING' <<<"$bad") || true
        # The first error tells why a script failed; else the first warning.
        first=$(grep -m1 'ERROR' <<<"$bad") || first=$(grep -m1 'WARNING' <<<"$bad") || first=$(head -n1 <<<"$bad")
        counts=
        [[ $errors -eq 0 ]] || counts+=", $errors with ERROR"
        [[ $warnings -eq 0 ]] || counts+=", $warnings with WARNING"
        # Directories out of the way: the file, line and message matter.
        first=$(sed -E 's#(^|[ (])/([^/ :]+/)+#\1#g' <<<"$first" | cut -c1-200)
        problems+=("$n stderr line(s) not allowed${counts:+ (${counts#, })}, first: $first")
        say "$ENV: $step: stderr lines not allowed ($n):"
        head -n 60 <<<"$bad" | sed 's/^/    | /'
        [[ $n -le 60 ]] || say "$ENV: $step: ... $((n - 60)) more in $stderr"
    fi
    if [[ ${#problems[@]} -eq 0 ]]; then
        record "$ENV" "$step" PASS "$start" "$(grep -c '' "$report") report lines${also:+, $also}"
    else
        [[ $rc -eq 0 ]] || { [[ -n $bad ]] || show_tail "$stderr" 20; }
        p=$(printf '%s; ' "${problems[@]}")
        record "$ENV" "$step" FAIL "$start" "${p%; }${also:+; $also}"
    fi
}

# Prints the bundled scripts' names (`importprobe trace --list`), or fails.
list_scripts() {
    local log=$LOGS/trace-list.log rc=0
    env_command / -- "$BIN" trace --list
    run_bounded 60 "$log" "$log" "${CMD[@]}" || rc=$?
    if [[ $rc -ne 0 ]]; then
        show_tail "$log" 20
        return 1
    fi
    awk '$1 ~ /^[A-Za-z0-9_.-]+$/ { print $1 }' "$log"
}

# Step c: `importprobe trace --script S -- PYTHON app/main.py` for every
# bundled script S; one row per script.
step_traces() {
    local start s app base rc names
    start=$(now_ms)
    if ! names=$(list_scripts) || [[ -z $names ]]; then
        record "$ENV" trace:list FAIL "$start" "importprobe trace --list failed or listed nothing"
        return
    fi
    for s in $names; do
        start=$(now_ms)
        make_app
        app=$APP
        base=$LOGS/trace-$s
        say "$ENV: trace:$s: importprobe trace --script $s -o $app/report -- $PYTHON $app/main.py"
        env_command "$app" -- "$BIN" trace --script "$s" -o "$app/report" -- "$PYTHON" "$app/main.py"
        rc=0
        run_bounded "$TIMEOUT_TRACE" "$base.stdout" "$base.stderr" "${CMD[@]}" || rc=$?
        cp "$(host_path "$app/report")" "$base.report" 2>/dev/null || : >"$base.report"
        judge_traced_run "trace:$s" "$rc" "$base.stdout" "$base.stderr" "$base.report" "$start"
    done
}

# Step d (environments with dtrace): every bundled script's DTrace twin,
# `dtrace -q -s scripts/S.d -c 'PYTHON app/main.py'`; one row per script.
step_dtrace() {
    local start s d app base rc names hangs
    start=$(now_ms)
    if ! names=$(list_scripts) || [[ -z $names ]]; then
        record "$ENV" dtrace:list FAIL "$start" "importprobe trace --list failed or listed nothing"
        return
    fi
    for s in $names; do
        start=$(now_ms)
        d=$CHECKOUT/scripts/$s.d
        if [[ ! -f $d ]]; then
            record "$ENV" "dtrace:$s" FAIL "$start" "no DTrace twin $d"
            continue
        fi
        make_app
        app=$APP
        base=$LOGS/dtrace-$s
        say "$ENV: dtrace:$s: dtrace -q -o $app/report -s $d -c '$PYTHON $app/main.py'"
        env_command "$app" -- "$DTRACE_PATH" -q -o "$app/report" -s "$d" -c "$PYTHON $app/main.py"
        # DTrace 2.0.7's -c now and then leaves a new thread of its command
        # in ptrace stop for good (1 run in 10 of this threaded app): a run
        # that outlives TIMEOUT_DTRACE_RUN is that hang, and is run again.
        hangs=0
        while :; do
            rc=0
            rm -f "$(host_path "$app/report")" # dtrace -o appends
            run_bounded "$TIMEOUT_DTRACE_RUN" "$base.stdout" "$base.stderr" "${CMD[@]}" || rc=$?
            [[ $rc -eq 124 && $((++hangs)) -lt $DTRACE_HANG_ATTEMPTS ]] || break
            say "$ENV: dtrace:$s: no end after ${TIMEOUT_DTRACE_RUN} s (DTrace's -c hang); running it again"
        done
        cp "$(host_path "$app/report")" "$base.report" 2>/dev/null || : >"$base.report"
        judge_traced_run "dtrace:$s" "$rc" "$base.stdout" "$base.stderr" "$base.report" "$start" \
            "$([[ $hangs -eq 0 ]] || echo "after $hangs run(s) DTrace's -c left hanging")"
    done
}

# Runs every step for the environment.
main() {
    trap on_signal TERM INT HUP
    trap cleanup EXIT
    mkdir -p "$LOGS"
    read_artifacts
    if [[ $ROOT != / ]]; then
        mount_chroot || return 1
    fi
    show_versions
    if [[ ${IMPORTPROBE_BENCH_ONLY:-0} == 1 ]]; then
        step_bench
        return
    fi
    step_tests
    step_smoke
    step_traces
    if env_has_tracer "$ENV" dtrace; then
        step_dtrace
    fi
    step_bench
}

main
