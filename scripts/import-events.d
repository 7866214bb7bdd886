#!/usr/sbin/dtrace -qs
/*
 * import-events.d  Stream every CPython import probe firing, raw, in the
 *                  machine-parsable `importprobe-events v2` format.
 *                  DTrace twin of import-events.bt (same lines).
 *
 * FORMAT (parsed by importprobe):
 *   # importprobe-events v2
 *   E <ts_ns> <pid> <tid> <seq> <depth> start - <N> <len> <name>\n
 *   E <ts_ns> <pid> <tid> <seq> <depth> done <found> <N> <len> <name>\n
 *   # end
 * ts_ns = timestamp (CLOCK_MONOTONIC on Linux, the clock of bpftrace's
 * nsecs); seq = per-thread event number from 0; depth = open import pairs on
 * the thread when the event fired (a done has its start's depth); found =
 * 0/1; N = 0 full name, 1 name cut at the string limit (strsize 200: the
 * first 199 bytes are shown), 2 no name (CPython passed NULL: a name it
 * could not encode; shown empty); len = exact byte count of the name that
 * follows, so the name may hold spaces, tabs, newlines or text that looks
 * like an event.
 *
 * DTrace prints each CPU's buffer in turn, so lines of events that fired on
 * different CPUs come out of order: the reader sorts each thread's lines by
 * seq. Output ends with `# end` and a newline dtrace(8) itself prints.
 *
 * COST: streaming, one printf per event (one copyinstr, strlen and a
 * 1-byte copyin per event).
 * Measured per import pair (simulator `flat --count 10000 --scale 0`, 2-core
 * VM, dtrace -c, 4-6 runs; untraced 0.6 us): 17.5-23.6 us. Streaming
 * is dear on DTrace for Linux: dtrace-utils opens its per-CPU perf buffers
 * with wakeup_events = 1, so the consumer wakes for every record and
 * competes with the traced program (the aggregating scripts cost 3-7 us).
 *
 * USAGE, Linux (Oracle DTrace 2.0.7, e.g. Debian's `dtrace` package), root.
 * $1 (the probed object of the bpftrace twin) may be given and is ignored:
 * DTrace finds the provider through $target. Use -o FILE so the traced
 * program's own output cannot mix into the stream.
 *   simulator:   dtrace -q -o ev.txt -s import-events.d -c 'importprobe run --workload demo'
 *   a CPython:   dtrace -q -o ev.txt -s import-events.d -c '/usr/bin/python3.14 -S prog.py'
 *   running pid: dtrace -q -o ev.txt -s import-events.d -p PID
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
 * appends to FILE. The default 4 MB per-CPU buffer showed no drops with
 * 200,000 events in 2.5 s; raise it with -x bufsize=16m if dtrace reports
 * drops.
 *
 * NOTE: the exact length comes from strlen(). On DTrace 2.0.7 strlen()
 * leaves the string in the zero block later tuple keys are cleared with,
 * so associative-array lookups can miss (see import-tree.d). This script
 * keeps no associative arrays (only thread-local scalars); its output
 * matched the simulator's ground truth event for event.
 *
 * EXAMPLE (real output, simulator workload odd-names; `new\nline` is a
 * module name holding a newline):
 *   # importprobe-events v2
 *   E 1356559061005 32041 32041 0 0 start - 0 10 with space
 *   E 1356559157989 32041 32041 1 0 done 1 0 10 with space
 *   E 1356559169206 32041 32041 2 0 start - 0 8 tab	here
 *   E 1356559265981 32041 32041 3 0 done 1 0 8 tab	here
 *   E 1356559274754 32041 32041 4 0 start - 0 8 new
 *   line
 *   E 1356559362144 32041 32041 5 0 done 1 0 8 new
 *   line
 *   E 1356559370907 32041 32041 6 0 start - 0 13 0 done fake 1
 *   E 1356559479509 32041 32041 7 0 done 1 0 13 0 done fake 1
 *   E 1356559488403 32041 32041 8 0 start - 0 16 quote"back\slash
 *   E 1356559567491 32041 32041 9 0 done 1 0 16 quote"back\slash
 *   ...
 *   # end
 * and `/usr/bin/python3.14 -S null.py` (__import__('a\udcff'): CPython passes NULL;
 * the line ends with the space before the empty name):
 *   E 1358381270462 32062 32062 24 0 start - 2 0
 *   E 1358381301498 32062 32062 25 0 done 0 2 0
 */

#pragma D option quiet
#pragma D option argref
#pragma D option strsize=200

self int depth;
self uint64_t seq;

dtrace:::BEGIN
{
	printf("# importprobe-events v2\n");
}

python$target:::import-find-load-start
{
	this->ts = timestamp;
	/* copyinstr(NULL) would be an error: a NULL name is shown empty, N = 2 */
	this->name = arg0 != 0 ? copyinstr(arg0) : "";
	this->len = strlen(this->name);
	/* cut iff the byte after the copied bytes is not the terminating NUL */
	this->cut = arg0 != 0 ? *(char *)copyin(arg0 + this->len, 1) != 0 : 2;
	printf("E %llu %d %d %llu %d start - %d %llu %s\n", this->ts, pid, tid, self->seq, self->depth, this->cut, this->len, this->name);
	self->seq++;
	self->depth++;
}

python$target:::import-find-load-done
{
	this->ts = timestamp;
	self->depth -= self->depth > 0 ? 1 : 0;
	this->name = arg0 != 0 ? copyinstr(arg0) : "";
	this->len = strlen(this->name);
	this->cut = arg0 != 0 ? *(char *)copyin(arg0 + this->len, 1) != 0 : 2;
	printf("E %llu %d %d %llu %d done %d %d %llu %s\n", this->ts, pid, tid, self->seq, self->depth, (int)arg1, this->cut, this->len, this->name);
	self->seq++;
}

dtrace:::END
{
	printf("# end\n");
}
