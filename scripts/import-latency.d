#!/usr/sbin/dtrace -qs
/*
 * import-latency.d  Every CPython import with cumulative and self time.
 *                   DTrace twin of import-latency.bt (same lines).
 *
 * Every import is one entry of one aggregation, nothing is printed per
 * event: key [module, found, N, tid, #, depth, self_us], value cumulative
 * time in microseconds (both floored). At the end it is printed sorted by
 * cumulative time, ascending (the slowest import last): that listing is
 * both the record of every import and the summary. found = 0: not found or
 * its body raised; N = 0 full name, 1 name cut at the string limit, 2 no
 * name (CPython passed NULL for a name it could not encode; shown empty);
 * # = the import's number on its thread in done order, from 0 (a module
 * imported twice appears twice); depth = nesting level on that thread;
 * self = cumulative minus the imports nested in it on the same thread.
 * Equal values are sorted by key (bpftrace leaves their order to its
 * hash). Output ends with a newline dtrace(8) itself prints.
 *
 * COST: aggregating, printed at END: per import a start time and a
 * child-time sum per (thread, depth) in thread-local associative arrays, a
 * per-thread counter, at done one copyinstr, a substr compare and one
 * aggregation update. Each import is one entry of about 280 bytes in the
 * hash of the CPU its done fired on: the default aggsize of 4 MB per CPU
 * holds about 15,000 imports per CPU; when full, dtrace(8) prints
 * `dtrace: N aggregation drops on CPU C` (add -x aggsize=16m).
 * Measured per import pair (simulator `flat --count 10000 --scale 0`, 2-core
 * VM, dtrace -c, 4-6 runs; untraced 0.6 us): 5.2-6.9 us.
 *
 * USAGE, Linux (Oracle DTrace 2.0.7, e.g. Debian's `dtrace` package), root.
 * $1 (the probed object of the bpftrace twin) may be given and is ignored:
 * DTrace finds the provider through $target.
 *   simulator:   dtrace -q -s import-latency.d -c 'importprobe run --workload demo'
 *   a CPython:   dtrace -q -s import-latency.d -c '/usr/bin/python3.14 -S prog.py'
 *   running pid: dtrace -q -s import-latency.d -p PID   (Ctrl-C, or the process
 *                exiting, prints the list)
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
 * importprobe gives bpftrace, so both twins cut at the same byte. The cut
 * test below hard-codes 199 = strsize - 1: change both together.
 *
 * NOTE: strlen() is avoided on purpose (see import-tree.d): on DTrace 2.0.7
 * it can make later associative-array lookups miss.
 *
 * EXAMPLE (real output, simulator workload refpkg):
 *   Tracing CPython imports... Hit Ctrl-C to end.
 *
 *   Imports [module, found, N, tid, #, depth, self_us]: cumulative_us, slowest last:
 *   @import_cumulative_us[pkg.broken, 0, 0, 30811, 3, 0, 72]: 72
 *   @import_cumulative_us[pkg.broken, 0, 0, 30811, 6, 0, 72]: 72
 *   @import_cumulative_us[pkg.sub.leaf, 1, 0, 30811, 4, 1, 72]: 72
 *   @import_cumulative_us[pkg.b, 1, 0, 30811, 1, 1, 73]: 73
 *   @import_cumulative_us[pkg, 1, 0, 30811, 0, 1, 75]: 75
 *   @import_cumulative_us[pkg.sub, 1, 0, 30811, 5, 0, 77]: 149
 *   @import_cumulative_us[pkg.a, 1, 0, 30811, 2, 0, 104]: 253
 * and `/usr/bin/python3.14 -S mix.py` (packages, a cycle, failures, threads, a NULL name; some lines):
 *   @import_cumulative_us[, 0, 2, 14945, 58, 0, 24]: 24
 *   @import_cumulative_us[nonexistent_mod, 0, 0, 14945, 35, 1, 97]: 97
 *   @import_cumulative_us[nonexistent_mod.sub, 0, 0, 14945, 36, 0, 17]: 114
 *   @import_cumulative_us[pkg.a, 1, 0, 14945, 30, 0, 312]: 1709
 *   @import_cumulative_us[http.client, 1, 0, 14957, 11, 0, 2617]: 24391
 */

#pragma D option quiet
#pragma D option argref
#pragma D option strsize=200

self int depth;
self uint64_t seq;
self uint64_t ts[int];
self uint64_t child[int];

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
	this->own = this->cum - self->child[this->d];
	self->ts[this->d] = 0;
	self->child[this->d] = 0;
	/* copyinstr(NULL) would be an error: a NULL name is shown empty, N = 2 */
	this->name = arg0 != 0 ? copyinstr(arg0) : "";
	/* only a copy of strsize - 1 = 199 bytes can be cut: then byte 199 is not NUL */
	this->cut = arg0 == 0 ? 2 : substr(this->name, 0, 198) == this->name ? 0 :
	    *(char *)copyin(arg0 + 199, 1) != 0;
	@import_cumulative_us[this->name, (int)arg1, this->cut, tid, self->seq, this->d, this->own / 1000] = sum(this->cum / 1000);
	self->seq++;
}

python$target:::import-find-load-done
/this->ok && this->d > 0/
{
	self->child[this->d - 1] += this->cum;
}

dtrace:::END
{
	printf("\nImports [module, found, N, tid, #, depth, self_us]: cumulative_us, slowest last:\n");
	printa("@import_cumulative_us[%s, %d, %d, %d, %llu, %d, %llu]: %@d\n", @import_cumulative_us);
}
