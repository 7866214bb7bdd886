# shellcheck shell=bash
# shellcheck disable=SC2034 # every variable here is used by the scripts that source it
# The compatibility matrix: which environments exist, what is installed in
# them, and what runs in each. Sourced by run.sh and in-env.sh; the one place
# to edit when an environment, a test executable or a variable changes.

# One environment per line, in the order a full run takes them:
#   name  suite   interpreter (a CPython with the import probes)  tracers  packages
# suite "-" is this machine itself (nothing is built); any other suite is a
# Debian chroot made with `debootstrap --variant=minbase --include=PACKAGES`.
# Tracers: bpftrace (from PATH), dtrace (at $DTRACE_PATH).
COMPAT_ENV_TABLE='
host    -       /usr/bin/python3.11   bpftrace         -
trixie  trixie  /usr/bin/python3.13   bpftrace         bpftrace,python3.13,binutils
sid     sid     /usr/bin/python3.14   bpftrace,dtrace  bpftrace,python3.14,binutils,dtrace
'

# Where DTrace (Debian package `dtrace`, Oracle's DTrace for Linux) lives.
DTRACE_PATH=/usr/sbin/dtrace

# Bump when the way a chroot is made changes (the packages and suite are
# compared already): every chroot is then rebuilt on its next use.
CHROOT_RECIPE=1

# The tracing test executables (cargo test targets, tests/NAME.rs) run in every
# environment, and the variables they get. @python@ and @dtrace@ are replaced
# by the environment's interpreter and DTrace; TEST_DTRACE_ENV is added only in
# environments that have dtrace.
TEST_EXECUTABLES=(scripts trace_cli smoke_cli tracing_simulator follow)
TEST_ARGS=()
TEST_ENV=(IMPORTPROBE_REQUIRE_TRACING=1 IMPORTPROBE_PYTHON=@python@)
TEST_DTRACE_ENV=(IMPORTPROBE_DTRACE=@dtrace@ IMPORTPROBE_REQUIRE_DTRACE=1)

# The environment every command in an environment starts from (env -i).
BASE_ENV=(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 TERM=dumb)

# What a traced run may print on stderr besides nothing (extended regular
# expressions, one whole line each): bpftrace's attach line, and notices
# about the host that are not the script's fault.
ALLOWED_STDERR=(
    '^Attach(ing|ed) [0-9]+ probes?(\.\.\.)?$'
    # bpftrace 0.27: the kernel refuses to list traceable functions, even on the host.
    '^WARNING: Could not read (functions|symbols) from /sys/kernel/(debug/)?tracing/available_filter_functions([.:] .*)?$'
    # bpftrace: the locked-memory limit (0.17 run by hand on this host says ERROR).
    '^(WARNING|ERROR): .*couldn.t set RLIMIT_MEMLOCK for bpftrace\..*$'
)

# Deadlines in seconds.
TIMEOUT_DEBOOTSTRAP=1200
TIMEOUT_TEST_EXECUTABLE=900
TIMEOUT_BENCH=3600
TIMEOUT_SMOKE=300
TIMEOUT_TRACE=180
# One `dtrace -c` run of the app (5-10 s here); longer is DTrace's -c hang,
# retried up to DTRACE_HANG_ATTEMPTS runs in all.
TIMEOUT_DTRACE_RUN=60
DTRACE_HANG_ATTEMPTS=3

# Kernel file systems bind-mounted into a chroot, in this order (sources on
# the host must be mounted: tests/setup-host.sh mounts tracefs and debugfs).
CHROOT_MOUNTS=(proc sys dev sys/kernel/tracing sys/kernel/debug sys/kernel/debug/tracing)
