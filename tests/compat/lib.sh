# shellcheck shell=bash
# Helpers shared by run.sh and in-env.sh: the environment table, messages,
# wall-clock timing, result rows and deadline-bounded commands.

# Prints a message of the runner (stdout, so it stays in order with the
# output it introduces).
say() {
    printf 'compat: %s\n' "$*"
}

# Prints a message and exits with status 2 (a usage or set-up error: nothing
# was tested).
die() {
    printf 'compat: error: %s\n' "$*" >&2
    exit 2
}

# Reads COMPAT_ENV_TABLE into ENV_NAMES and the ENV_* maps.
# shellcheck disable=SC2034 # the maps are used by the scripts that source this file
load_env_table() {
    ENV_NAMES=()
    declare -gA ENV_SUITE=() ENV_PYTHON=() ENV_TRACERS=() ENV_PACKAGES=()
    local name suite python tracers packages extra
    while read -r name suite python tracers packages extra; do
        [[ -z $name || $name == \#* ]] && continue
        [[ -n $packages && -z $extra ]] || die "matrix.sh: environment line '$name' needs exactly 5 fields"
        ENV_NAMES+=("$name")
        ENV_SUITE[$name]=$suite
        ENV_PYTHON[$name]=$python
        ENV_TRACERS[$name]=${tracers//,/ }
        ENV_PACKAGES[$name]=$packages
    done <<<"$COMPAT_ENV_TABLE"
}

# True if environment $1 is a chroot (not this machine itself).
is_chroot_env() {
    [[ ${ENV_SUITE[$1]} != - ]]
}

# True if environment $1 has tracer $2.
env_has_tracer() {
    [[ " ${ENV_TRACERS[$1]} " == *" $2 "* ]]
}

# Prints the wall clock in milliseconds.
now_ms() {
    local t=${EPOCHREALTIME/./}
    printf '%s\n' "$((t / 1000))"
}

# Prints a duration given in milliseconds as seconds with one decimal.
fmt_ms() {
    printf '%d.%d s' "$(($1 / 1000))" "$(($1 % 1000 / 100))"
}

# Appends one result row to $COMPAT_RESULTS: env, step, PASS|FAIL, start
# time (ms, from now_ms), note. Also prints it.
record() {
    local env=$1 step=$2 status=$3 start=$4 note=${5:-}
    local ms=$(($(now_ms) - start))
    note=${note//$'\t'/ }
    note=${note//$'\n'/ }
    printf '%s\t%s\t%s\t%s\t%s\n' "$env" "$step" "$status" "$ms" "$note" >>"$COMPAT_RESULTS"
    printf '%s %s %s (%s)%s\n' "$status" "$env" "$step" "$(fmt_ms "$ms")" "${note:+: $note}"
}

# The pid of the deadline-bounded command running now, for the signal trap.
CURRENT_PID=

# Runs a command with a deadline of $1 seconds, stdout to file $2 and stderr
# to file $3 (the same file is fine; "-" for both: left as they are), stdin
# from /dev/null; returns its status (124: the deadline passed). It runs in
# the background and is waited for, so a signal trap can forward a signal to
# it, and timeout passes a signal on to the command's whole process group.
# timeout itself gets SIGTERM when this shell dies, even by SIGKILL
# (setpriv --pdeathsig), so nothing outlives the runner.
run_bounded() {
    local secs=$1 out=$2 err=$3 rc=0
    shift 3
    local cmd=(setpriv --pdeathsig TERM timeout --kill-after=10 "$secs" "$@")
    if [[ $out == - ]]; then
        "${cmd[@]}" </dev/null &
    elif [[ $out == "$err" ]]; then
        "${cmd[@]}" >"$out" 2>&1 </dev/null &
    else
        "${cmd[@]}" >"$out" 2>"$err" </dev/null &
    fi
    CURRENT_PID=$!
    wait "$CURRENT_PID" || rc=$?
    CURRENT_PID=
    return "$rc"
}

# Forwards SIGTERM to the running bounded command, if any (signal traps).
stop_current() {
    if [[ -n $CURRENT_PID ]]; then
        kill -TERM "$CURRENT_PID" 2>/dev/null || true
    fi
}

# Describes an exit status for a result note.
describe_status() {
    case $1 in
        0) echo "exit 0" ;;
        124) echo "timed out" ;;
        137) echo "killed after its deadline" ;;
        *) echo "exit $1" ;;
    esac
}

# Prints the last $2 lines of file $1, indented.
show_tail() {
    tail -n "$2" "$1" | sed 's/^/    | /'
}
