#!/usr/bin/env bash
# The compatibility matrix: the tracing tests, `importprobe smoke` and every
# bundled script, run for real on this machine and in Debian chroots with
# other bpftrace, DTrace and CPython versions (the table in matrix.sh).
#
#   bash tests/compat/run.sh [--rebuild] [ENV...]     (no ENV: all of them)
#   bash tests/compat/run.sh --list
#
# Needs root, cargo, and network access to a Debian mirror the first time a
# chroot is built. Chroots live in $IMPORTPROBE_COMPAT_DIR (default
# /var/lib/importprobe/compat), outside the checkout, and are reused while
# their stamp matches matrix.sh; logs go to $IMPORTPROBE_COMPAT_OUT (default
# target/compat). IMPORTPROBE_BENCH=quick|full|off: the benchmark step's
# mode (quick); IMPORTPROBE_BENCH_ONLY=1: only that step. Exit status: 0
# everything passed, 1 something failed, 2 the run could not start.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# Physical path: the one cargo compiled into the test executables.
CHECKOUT=$(cd "$HERE/../.." && pwd -P)
# shellcheck source=tests/compat/matrix.sh
source "$HERE/matrix.sh"
# shellcheck source=tests/compat/lib.sh
source "$HERE/lib.sh"

COMPAT_DIR=${IMPORTPROBE_COMPAT_DIR:-/var/lib/importprobe/compat}
OUT=${IMPORTPROBE_COMPAT_OUT:-$CHECKOUT/target/compat}
MIRROR=${IMPORTPROBE_COMPAT_MIRROR:-http://deb.debian.org/debian}
COMPAT_RESULTS=$OUT/results.tsv
REBUILD=0
SELECTED=()
# Background chroot builds: env name -> pid.
declare -A BUILD_PIDS=()
# Chroot builds that failed: env name -> 1.
declare -A BUILD_FAILED=()

# Prints the usage.
usage() {
    sed -n '2,15s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
    printf '\nEnvironments:\n'
    list_envs
}

# Prints the environment table.
list_envs() {
    local e
    for e in "${ENV_NAMES[@]}"; do
        printf '  %-8s %-14s %-22s tracers: %s\n' "$e" "$(is_chroot_env "$e" && echo "chroot ${ENV_SUITE[$e]}" || echo 'this machine')" "${ENV_PYTHON[$e]}" "${ENV_TRACERS[$e]}"
    done
}

# Reads the command line into SELECTED and REBUILD.
parse_args() {
    local a e known
    for a in "$@"; do
        case $a in
            -h | --help) usage; exit 0 ;;
            --list) list_envs; exit 0 ;;
            --rebuild) REBUILD=1 ;;
            -*) die "unknown option $a (see --help)" ;;
            *)
                known=0
                for e in "${ENV_NAMES[@]}"; do
                    [[ $e == "$a" ]] && known=1
                done
                [[ $known -eq 1 ]] || die "unknown environment '$a'; known: ${ENV_NAMES[*]}"
                SELECTED+=("$a")
                ;;
        esac
    done
    if [[ ${#SELECTED[@]} -eq 0 ]]; then
        SELECTED=("${ENV_NAMES[@]}")
    fi
}

# True if a selected environment is a chroot.
any_chroot_selected() {
    local e
    for e in "${SELECTED[@]}"; do
        is_chroot_env "$e" && return 0
    done
    return 1
}

# Checks what the run needs before anything starts, takes the lock on
# COMPAT_DIR (one run at a time uses the chroots) and empties OUT.
preflight() {
    local c real_dir
    [[ $(id -u) -eq 0 ]] || die "must run as root (tracing, chroot and mounts need it)"
    for c in cargo python3 timeout unshare setpriv flock findmnt chroot mountpoint; do
        command -v "$c" >/dev/null || die "$c is not installed"
    done
    mkdir -p "$COMPAT_DIR"
    real_dir=$(realpath "$COMPAT_DIR")
    if [[ $real_dir == "$CHECKOUT" || $real_dir == "$CHECKOUT"/* ]]; then
        die "IMPORTPROBE_COMPAT_DIR=$COMPAT_DIR is inside the checkout; chroots must live outside it"
    fi
    COMPAT_DIR=$real_dir
    exec 9>"$COMPAT_DIR/.lock"
    if ! flock -n 9; then
        say "another run holds $COMPAT_DIR/.lock; waiting for it"
        flock 9
    fi
    # Only what an earlier run wrote: OUT may be any directory.
    mkdir -p "$OUT"
    rm -f -- "$OUT"/{results.tsv,artifacts.tsv,build.json,build.log,setup.log}
    for c in "${ENV_NAMES[@]}"; do
        rm -rf -- "${OUT:?}/$c"
    done
    : >"$COMPAT_RESULTS"
}

# The `setup` row: prepares this machine with tests/setup-host.sh (bpftrace,
# tracefs, debugfs) and installs debootstrap when a chroot may be built.
host_setup() {
    local start log=$OUT/setup.log rc=0
    start=$(now_ms)
    say "setup: bash tests/setup-host.sh"
    run_bounded 600 "$log" "$log" bash "$CHECKOUT/tests/setup-host.sh" || rc=$?
    if [[ $rc -eq 0 ]] && any_chroot_selected && ! command -v debootstrap >/dev/null; then
        say "setup: apt-get install -y debootstrap"
        {
            run_bounded 600 - - apt-get update -q && run_bounded 600 - - env DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap
        } >>"$log" 2>&1 || rc=$?
    fi
    if [[ $rc -eq 0 ]]; then
        record all setup PASS "$start" "$(grep -E '^setup-host: ready' "$log" | tail -n1)"
    else
        show_tail "$log" 30
        record all setup FAIL "$start" "$(describe_status "$rc"); log: $log"
    fi
    return "$rc"
}

# The `build` row: `cargo test --release --no-run` once on this machine, and
# OUT/artifacts.tsv from its JSON messages: the importprobe binary, every test
# executable (by target name) and the target directory.
build_artifacts() {
    local start log=$OUT/build.log json=$OUT/build.json rc=0 missing=() name
    start=$(now_ms)
    say "build: cargo test --release --no-run --message-format=json (log: $log)"
    run_bounded 3600 "$json" "$log" env -C "$CHECKOUT" cargo test --release --no-run --message-format=json || rc=$?
    if [[ $rc -ne 0 ]]; then
        show_tail "$log" 40
        record all build FAIL "$start" "cargo test --release --no-run: $(describe_status "$rc"); log: $log"
        return 1
    fi
    if ! python3 - "$json" >"$OUT/artifacts.tsv" <<'EOF'
import json, sys
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m.get("reason") != "compiler-artifact" or not m.get("executable"):
        continue
    kind, name = m["target"]["kind"], m["target"]["name"]
    if kind == ["test"]:
        print(f"test\t{name}\t{m['executable']}")
    elif kind == ["bin"] and name == "importprobe" and not m["profile"]["test"]:
        print(f"bin\t{name}\t{m['executable']}")
EOF
    then
        record all build FAIL "$start" "could not read cargo's JSON messages in $json"
        return 1
    fi
    env -C "$CHECKOUT" cargo metadata --format-version 1 --no-deps |
        python3 -c 'import json, sys; print("target\t-\t" + json.load(sys.stdin)["target_directory"])' >>"$OUT/artifacts.tsv" || true
    if ! grep -q '^bin' "$OUT/artifacts.tsv"; then
        record all build FAIL "$start" "cargo reported no importprobe binary"
        return 1
    fi
    for name in "${TEST_EXECUTABLES[@]}"; do
        grep -q "^test"$'\t'"$name"$'\t' "$OUT/artifacts.tsv" || missing+=("$name")
    done
    if [[ ${#missing[@]} -gt 0 ]]; then
        record all build FAIL "$start" "no test executable for: ${missing[*]} (TEST_EXECUTABLES in tests/compat/matrix.sh)"
        return 0
    fi
    record all build PASS "$start" "$(grep -c '^test' "$OUT/artifacts.tsv") test executables"
}

# Prints what a chroot of environment $1 is made of; a stamp records it.
chroot_spec() {
    local env=$1 post=none
    env_has_tracer "$env" dtrace && post=dtrace-io.d-aside
    printf 'suite=%s variant=minbase include=%s post=%s recipe=%s\n' \
        "${ENV_SUITE[$env]}" "${ENV_PACKAGES[$env]}" "$post" "$CHROOT_RECIPE"
}

# True if environment $1's chroot was completed by an earlier run with the
# same spec (its stamp is written last, so a half-built chroot has none).
chroot_is_complete() {
    local env=$1 dir=$COMPAT_DIR/$1
    [[ -f $dir/stamp && -x $dir/root${ENV_PYTHON[$env]} ]] &&
        [[ $(head -n1 "$dir/stamp") == "spec: $(chroot_spec "$env")" ]]
}

# Fails if anything is mounted at or under directory $1 in this mount
# namespace (so rm -rf cannot walk into a mounted /dev or /proc).
refuse_mounted() {
    local t
    while read -r t; do
        t=$(printf '%b' "$t")
        if [[ $t == "$1" || $t == "$1"/* ]]; then
            say "$t is mounted: refusing to delete $1 (unmount it first)"
            return 1
        fi
    done < <(findmnt -rn -o TARGET)
}

# After debootstrap: moves DTrace's io.d library aside where there is dtrace
# (on this kernel it fails to load: "failed to resolve vmlinux'major_names"),
# drops the downloaded packages, and checks that the interpreter and the
# tracers are there.
post_install() {
    local env=$1 root=$2 f
    if env_has_tracer "$env" dtrace; then
        while IFS= read -r f; do
            mv -- "$f" "$f.disabled"
        done < <(find "$root/usr/lib" -path '*/dtrace/*/io.d' -type f)
        [[ -x $root$DTRACE_PATH ]] || { say "$env: no $DTRACE_PATH in the chroot"; return 1; }
    fi
    find "$root/var/cache/apt/archives" -name '*.deb' -type f -delete
    [[ -x $root${ENV_PYTHON[$env]} ]] || { say "$env: no ${ENV_PYTHON[$env]} in the chroot"; return 1; }
    [[ -x $root/usr/bin/bpftrace || -x $root/usr/sbin/bpftrace ]] || { say "$env: no bpftrace in the chroot"; return 1; }
}

# Prints the installed versions of environment $1's packages, one line.
installed_versions() {
    local env=$1 root=$COMPAT_DIR/$1/root
    local IFS=,
    # shellcheck disable=SC2016,SC2086 # a dpkg-query format; the package list is split on commas
    chroot "$root" dpkg-query -W -f '${Package} ${Version}, ' ${ENV_PACKAGES[$env]} | sed 's/, $//'
}

# The `chroot` row of environment $1: reuses its chroot when complete, else
# builds it afresh with debootstrap inside a private mount namespace (the
# mounts debootstrap makes die with it). A failure names the command and
# shows the end of its log.
ensure_chroot() {
    local env=$1 start dir=$COMPAT_DIR/$1 root=$COMPAT_DIR/$1/root rc=0 cmd
    local log=$COMPAT_DIR/$1/debootstrap.log
    start=$(now_ms)
    if [[ $REBUILD -eq 0 ]] && chroot_is_complete "$env"; then
        record "$env" chroot PASS "$start" "reused $root ($(sed -n 's/^installed: //p' "$dir/stamp"))"
        return 0
    fi
    cmd=(debootstrap --variant=minbase "--include=${ENV_PACKAGES[$env]}" "${ENV_SUITE[$env]}" "$root" "$MIRROR")
    say "$env: building the chroot: ${cmd[*]} (log: $log)"
    if ! refuse_mounted "$dir"; then
        record "$env" chroot FAIL "$start" "something is mounted under $dir"
        return 1
    fi
    rm -f -- "$dir/stamp"
    rm -rf --one-file-system -- "$root"
    mkdir -p "$dir"
    run_bounded "$TIMEOUT_DEBOOTSTRAP" "$log" "$log" unshare --mount --propagation private "${cmd[@]}" || rc=$?
    if [[ $rc -ne 0 ]]; then
        say "$env: debootstrap FAILED ($(describe_status "$rc")): ${cmd[*]}"
        say "$env: last lines of $log:"
        show_tail "$log" 25
        record "$env" chroot FAIL "$start" "debootstrap failed ($(describe_status "$rc")): ${cmd[*]}; log: $log"
        return 1
    fi
    if ! post_install "$env" "$root" >>"$log" 2>&1; then
        show_tail "$log" 10
        record "$env" chroot FAIL "$start" "the chroot lacks what matrix.sh names; log: $log"
        return 1
    fi
    {
        printf 'spec: %s\n' "$(chroot_spec "$env")"
        printf 'built: %s from %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$MIRROR"
        printf 'installed: %s\n' "$(installed_versions "$env")"
    } >"$dir/stamp.new"
    mv -- "$dir/stamp.new" "$dir/stamp"
    record "$env" chroot PASS "$start" "built $root ($(sed -n 's/^installed: //p' "$dir/stamp"))"
}

# Starts ensure_chroot in the background for every selected chroot (they
# download and unpack in parallel, while cargo builds).
start_chroot_builds() {
    local env
    for env in "${SELECTED[@]}"; do
        if is_chroot_env "$env"; then
            (
                trap 'stop_current; exit 143' TERM INT HUP
                ensure_chroot "$env"
            ) &
            BUILD_PIDS[$env]=$!
        fi
    done
}

# Waits for every background chroot build; BUILD_FAILED[env] is set for
# those that failed.
wait_chroot_builds() {
    local env
    for env in "${!BUILD_PIDS[@]}"; do
        wait "${BUILD_PIDS[$env]}" || BUILD_FAILED[$env]=1
        unset "BUILD_PIDS[$env]"
    done
}

# Stops the background chroot builds and the running command (signal trap).
on_signal() {
    local pid
    for pid in "${BUILD_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    stop_current
    say "interrupted"
    exit 143
}

# Runs the steps of environment $1 (in-env.sh): directly on this machine, or
# in a private mount namespace for a chroot (ended if this script dies).
run_env() {
    local env=$1 start rc=0
    start=$(now_ms)
    say "=== $env: ${ENV_PYTHON[$env]}, tracers: ${ENV_TRACERS[$env]}"
    if [[ -n ${BUILD_FAILED[$env]:-} ]]; then
        record "$env" steps FAIL "$start" "not run: the chroot could not be built (see its chroot row)"
        return
    fi
    if is_chroot_env "$env"; then
        run_bounded 7200 - - unshare --mount --propagation private --fork --kill-child=TERM \
            bash "$HERE/in-env.sh" "$env" "$COMPAT_DIR/$env/root" "$OUT" || rc=$?
    else
        run_bounded 7200 - - bash "$HERE/in-env.sh" "$env" / "$OUT" || rc=$?
    fi
    if [[ $rc -ne 0 ]] && ! grep -q "^$env"$'\t'".*"$'\t'FAIL$'\t' "$COMPAT_RESULTS"; then
        record "$env" steps FAIL "$start" "in-env.sh ended with $(describe_status "$rc") and no failed step"
    fi
}

# Prints the summary table (environments in run order) and the totals;
# returns 1 if any row failed.
print_summary() {
    local start=$1 env e step status ms note passed=0 failed=0
    printf '\n=== compatibility matrix summary (logs: %s)\n' "$OUT"
    printf '%-8s %-26s %-6s %9s  %s\n' ENV STEP RESULT TIME NOTE
    for env in all "${SELECTED[@]}"; do
        while IFS=$'\t' read -r e step status ms note; do
            [[ $e == "$env" ]] || continue
            printf '%-8s %-26s %-6s %9s  %s\n' "$e" "$step" "$status" "$(fmt_ms "$ms")" "$note"
            if [[ $status == PASS ]]; then
                passed=$((passed + 1))
            else
                failed=$((failed + 1))
            fi
        done <"$COMPAT_RESULTS"
    done
    printf 'wall time: %s for %s\n' "$(fmt_ms $(($(now_ms) - start)))" "${SELECTED[*]}"
    printf 'compat: %d passed, %d failed\n' "$passed" "$failed"
    [[ $failed -eq 0 ]]
}

# Runs the matrix.
main() {
    local start env
    start=$(now_ms)
    load_env_table
    parse_args "$@"
    preflight
    trap on_signal TERM INT HUP
    if host_setup; then
        start_chroot_builds
        if build_artifacts; then
            # Tracing tests are timing-sensitive: no environment runs while
            # debootstrap still unpacks (2 cores).
            wait_chroot_builds
            for env in "${SELECTED[@]}"; do
                run_env "$env"
            done
        fi
    fi
    wait_chroot_builds
    print_summary "$start"
}

main "$@"
