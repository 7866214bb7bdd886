#!/usr/sbin/dtrace -qs
/*
 * import-hist.d  Log2 histograms of CPython import latency, found vs not found.
 *                DTrace twin of import-hist.bt (same lines, DTrace's histogram layout).
 *
 * Cumulative time of every import (microseconds, floored, nested imports
 * included), aggregated in two power-of-two histograms (quantize): imports
 * that succeeded (found = 1) and imports that failed (found = 0: not found
 * or the body raised). Nothing is printed until the end. The header lines
 * are the bpftrace twin's; the histogram is DTrace's own layout (a `value`
 * row is the bucket [value, 2 * value), with an empty bucket on each side).
 * A histogram that got no imports prints nothing, not even its `@name:`
 * line, as in bpftrace. Output ends with a newline dtrace(8) itself prints.
 *
 * COST: aggregating, printed at END: per import a start time per (thread,
 * depth) in a thread-local associative array and one histogram update; no
 * strings are read.
 * Measured per import pair (simulator `flat --count 10000 --scale 0`, 2-core
 * VM, dtrace -c, 4-6 runs; untraced 0.6 us): 3.3-4.5 us.
 *
 * USAGE, Linux (Oracle DTrace 2.0.7, e.g. Debian's `dtrace` package), root.
 * $1 (the probed object of the bpftrace twin) may be given and is ignored:
 * DTrace finds the provider through $target.
 *   simulator:   dtrace -q -s import-hist.d -c 'importprobe run --workload demo'
 *   a CPython:   dtrace -q -s import-hist.d -c '/usr/bin/python3.14 -S prog.py'
 *   running pid: dtrace -q -s import-hist.d -p PID   (Ctrl-C, or the process
 *                exiting, prints the histograms)
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
 *
 * EXAMPLE (real output, simulator workload refpkg; dtrace pads the count column
 * with blanks, trimmed here):
 *   Tracing CPython imports... Hit Ctrl-C to end.
 *
 *   Import latency (cumulative us), found = 1:
 *   @found_us:
 *              value  ------------- Distribution ------------- count
 *                 32 |                                         0
 *                 64 |@@@@@@@@@@@@@@@@@@@@@@@@                 3
 *                128 |@@@@@@@@@@@@@@@@                         2
 *                256 |                                         0
 *
 *
 *   Import latency (cumulative us), found = 0:
 *   @not_found_us:
 *              value  ------------- Distribution ------------- count
 *                 32 |                                         0
 *                 64 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@ 2
 *                128 |                                         0
 *
 */

#pragma D option quiet
#pragma D option argref

self int depth;
self uint64_t ts[int];

dtrace:::BEGIN
{
	printf("Tracing CPython imports... Hit Ctrl-C to end.\n");
}

python$target:::import-find-load-start
{
	this->ts = timestamp;
	self->ts[self->depth] = this->ts;
	self->depth++;
}

python$target:::import-find-load-done
{
	this->now = timestamp;
	/* a done whose start was not seen (-p attached mid-import) is skipped */
	this->ok = self->depth > 0;
}

python$target:::import-find-load-done
/this->ok/
{
	self->depth--;
	this->d = self->depth;
	this->cum = this->now - self->ts[this->d];
	self->ts[this->d] = 0;
}

python$target:::import-find-load-done
/this->ok && (int)arg1 != 0/
{
	@found_us = quantize(this->cum / 1000);
}

python$target:::import-find-load-done
/this->ok && (int)arg1 == 0/
{
	@not_found_us = quantize(this->cum / 1000);
}

dtrace:::END
{
	printf("\nImport latency (cumulative us), found = 1:\n");
	printa("@found_us:%@d\n", @found_us);
	printf("\nImport latency (cumulative us), found = 0:\n");
	printa("@not_found_us:%@d\n", @not_found_us);
}
