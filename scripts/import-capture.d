#!/usr/sbin/dtrace -qs
/*
 * import-capture.d  Every CPython import probe firing, kept in two
 *                   aggregations and printed at END as `importprobe-capture v1`.
 *                   DTrace twin of import-capture.bt (same lines).
 *
 * The cheap collector: one aggregation update per event and nothing else
 * (no thread-local state, no per-event output). Depth, pairing and order are
 * rebuilt by the reader from the timestamps.
 *
 * FORMAT:
 *   # importprobe-capture v1
 *   @s[<tid>, <ts_ns>]: (<pid>, <N>, <len>, <name>)
 *   ...
 *   @d[<tid>, <ts_ns>]: (<pid>, <found>)
 *   ...
 *   # end
 * ts_ns = timestamp (CLOCK_MONOTONIC on Linux, the clock of bpftrace's
 * nsecs); (tid, ts_ns) is unique per event on a thread. N = 0 full name, 1
 * name cut at the string limit (strsize 200: the first 199 bytes are
 * shown), 2 no name (CPython passed NULL for a name it could not encode;
 * shown empty); len = exact byte count of the name shown; found = 0/1.
 * Lines are sorted by (tid, ts_ns) (aggsortkey). A name holding a newline
 * spans lines: read it by len. Output ends with `# end` and a newline
 * dtrace(8) itself prints.
 *
 * COST: aggregating, printed at END: per event one aggregation update (and
 * on start a copyinstr, strlen and a 1-byte copyin for the exact length).
 * Each event is one entry of about 270 bytes in the hash of the CPU it fired
 * on, aggsize bytes per CPU: the default 4 MB holds about 15,500 events per
 * CPU (measured: 40,000 events of one thread, 23,680 dropped on CPU 0). For
 * more, add -x aggsize=32m (about 124,000 per CPU; each CPU's hash is
 * allocated in full). When a hash is full, dtrace(8) prints
 * `dtrace: N aggregation drops on CPU C` on stderr at the end, and those
 * events are missing from the capture (the rest is printed).
 * Measured per import pair (simulator `flat --count 10000 --scale 0`, 2-core
 * VM, dtrace -c, 6 runs each, medians; untraced 0.6 us): this script
 * 3.6 us (5 of 6 runs 3.55-3.82); the same without the exact length (no
 * strlen, no copyin) 3.4 us (4 of 6 runs 3.29-3.55); the count-only floor
 * (both probes, one count()) 2.0 us (4 of 6 runs 1.92-2.14).
 *
 * USAGE, Linux (Oracle DTrace 2.0.7, e.g. Debian's `dtrace` package), root.
 * $1 (the probed object of the bpftrace twin) may be given and is ignored:
 * DTrace finds the provider through $target.
 *   simulator:   dtrace -q -o cap.txt -s import-capture.d -c 'importprobe run --workload demo'
 *   a CPython:   dtrace -q -o cap.txt -s import-capture.d -c '/usr/bin/python3.14 -S prog.py'
 *   running pid: dtrace -q -o cap.txt -s import-capture.d -p PID    (Ctrl-C, or the
 *                process exiting, prints the capture)
 *                (the simulator waits for it with
 *                `importprobe run --workload demo --wait-for-tracer`, which prints its pid)
 * DTrace 2.0.7's -c now and then hangs on a threaded command (a new thread
 * left in ptrace stop; about 1 run in 10 of a threaded Python program):
 * kill dtrace and its command and run again, or attach with -p.
 * If every script fails with `"/usr/lib/x86_64-linux-gnu/dtrace/6.10/io.d",
 * line 134: failed to resolve vmlinux`major_names: Unknown symbol name`,
 * move that library file aside (`mv io.d io.d.disabled` in each version
 * directory): the kernel lacks a symbol io.d needs; no script here uses io.
 * USAGE, illumos / FreeBSD / macOS: the same dtrace command lines, on a
 * CPython built --with-dtrace (FreeBSD: kldload dtraceall; macOS: System
 * Integrity Protection must allow dtrace).
 * The string limit is the strsize pragma below (a -x strsize=N on the
 * command line does not override a pragma); 200 matches the limit
 * importprobe gives bpftrace, so both twins cut at the same byte. -o
 * appends to FILE.
 *
 * NOTE: the exact length comes from strlen(). On DTrace 2.0.7 strlen()
 * leaves the string in the zero block later tuple keys are cleared with,
 * so associative-array lookups can miss (see import-tree.d). This script
 * keeps no associative arrays (only thread-local scalars and
 * aggregations whose keys are unique per event); its output matched the
 * simulator's ground truth event for event.
 *
 * EXAMPLE (real output, simulator workload refpkg):
 *   # importprobe-capture v1
 *   @s[1403, 2011740123416]: (1403, 0, 5, pkg.a)
 *   @s[1403, 2011740144107]: (1403, 0, 3, pkg)
 *   @s[1403, 2011740269514]: (1403, 0, 5, pkg.b)
 *   @s[1403, 2011740371747]: (1403, 0, 10, pkg.broken)
 *   @s[1403, 2011740445987]: (1403, 0, 7, pkg.sub)
 *   @s[1403, 2011740493578]: (1403, 0, 12, pkg.sub.leaf)
 *   @s[1403, 2011740595330]: (1403, 0, 10, pkg.broken)
 *
 *   @d[1403, 2011740221362]: (1403, 1)
 *   @d[1403, 2011740342543]: (1403, 1)
 *   @d[1403, 2011740369734]: (1403, 1)
 *   @d[1403, 2011740444315]: (1403, 0)
 *   @d[1403, 2011740566067]: (1403, 1)
 *   @d[1403, 2011740593497]: (1403, 1)
 *   @d[1403, 2011740667808]: (1403, 0)
 *   # end
 *
 * and `/usr/bin/python3.14 -S null.py` (__import__('a\udcff'): CPython passes NULL):
 *   @s[1333, 2009852674911]: (1333, 2, 0, )
 */

#pragma D option quiet
#pragma D option argref
#pragma D option strsize=200
#pragma D option aggsortkey

dtrace:::BEGIN
{
	printf("# importprobe-capture v1\n");
}

python$target:::import-find-load-start
{
	this->ts = timestamp;
	/* copyinstr(NULL) would be an error: a NULL name is shown empty, N = 2 */
	this->name = arg0 != 0 ? copyinstr(arg0) : "";
	this->len = strlen(this->name);
	/* cut iff the byte after the copied bytes is not the terminating NUL */
	this->cut = arg0 != 0 ? *(char *)copyin(arg0 + this->len, 1) != 0 : 2;
	@s[tid, this->ts, pid, this->cut, this->len, this->name] = count();
}

python$target:::import-find-load-done
{
	@d[tid, timestamp, pid, (int)arg1] = count();
}

dtrace:::END
{
	printa("@s[%d, %llu]: (%d, %d, %llu, %s)\n", @s);
	printf("\n");
	printa("@d[%d, %llu]: (%d, %d)\n", @d);
	printf("# end\n");
}
