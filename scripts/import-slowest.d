#!/usr/sbin/dtrace -qs
/*
 * import-slowest.d  The N slowest CPython imports, by cumulative and by self time.
 *                   DTrace twin of import-slowest.bt (same lines).
 *
 * Every import is kept in two aggregations (cumulative and self time, in
 * microseconds, floored) keyed by module name, N, thread and the import's
 * number on that thread in done order (a module imported twice, e.g. one
 * whose body raised, appears twice); nothing is printed until the end,
 * when each is cut to its N largest (trunc) and printed ascending: the
 * slowest import is the last line. N is the second positional parameter
 * (default 10); $1 is the probed object of the bpftrace twin (ignored, may
 * be ''). N (the flag) = 0 full name, 1 name cut at the string limit, 2 no
 * name (CPython passed NULL for a name it could not encode; shown empty).
 * Equal values are sorted by key (bpftrace leaves their order to its
 * hash), so with ties at the cut the two twins may keep different imports.
 * Output ends with a newline dtrace(8) itself prints.
 *
 * COST: aggregating, printed at END: per import a start time and a
 * child-time sum per (thread, depth) in thread-local associative arrays, a
 * per-thread counter, at done one copyinstr, a substr compare and two
 * aggregation updates (about 270 bytes each in the hash of the CPU the done
 * fired on; the default aggsize of 4 MB per CPU holds about 7,500 imports
 * per CPU; when full, dtrace(8) prints `dtrace: N aggregation drops on CPU
 * C`: add -x aggsize=16m).
 * Measured per import pair (simulator `flat --count 10000 --scale 0`, 2-core
 * VM, dtrace -c, 4-6 runs; untraced 0.6 us): 5.8-13 us.
 *
 * USAGE, Linux (Oracle DTrace 2.0.7, e.g. Debian's `dtrace` package), root.
 * $1 (the probed object of the bpftrace twin) may be given and is ignored:
 * DTrace finds the provider through $target. $2 = N (default 10).
 *   simulator:   dtrace -q -s import-slowest.d -c 'importprobe run --workload demo' '' 5
 *   a CPython:   dtrace -q -s import-slowest.d -c '/usr/bin/python3.14 -S prog.py' '' 20
 *   running pid: dtrace -q -s import-slowest.d -p PID '' 20   (Ctrl-C, or the process
 *                exiting, prints the lists)
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
 * EXAMPLE (real output, simulator workload demo, N = 5: `... -c 'importprobe run --workload demo' '' 5`):
 *   Tracing CPython imports... Hit Ctrl-C to end.
 *
 *   Slowest imports by cumulative time [module, N, tid, #], in us:
 *   @slowest_cumulative_us[sqlalchemy, 0, 32159, 249]: 33064
 *   @slowest_cumulative_us[shopapp.db, 0, 32159, 250]: 33393
 *   @slowest_cumulative_us[shopapp.models, 0, 32159, 251]: 35373
 *   @slowest_cumulative_us[shopapp.api, 0, 32159, 252]: 49570
 *   @slowest_cumulative_us[shopapp.cli, 0, 32159, 255]: 65562
 *
 *   Slowest imports by self time [module, N, tid, #], in us:
 *   @slowest_self_us[shopapp.plugins.cache, 0, 32167, 0]: 3148
 *   @slowest_self_us[shopapp.plugins.metrics, 0, 32167, 1]: 3189
 *   @slowest_self_us[shopapp.plugins.email, 0, 32165, 4]: 3928
 *   @slowest_self_us[shopapp.plugins.reports, 0, 32166, 0]: 4799
 *   @slowest_self_us[concurrent.futures, 0, 32164, 0]: 12551
 * and `/usr/bin/python3.14 -S mix.py` (packages, a cycle, failures, threads), N = 3:
 *   Tracing CPython imports... Hit Ctrl-C to end.
 *
 *   Slowest imports by cumulative time [module, N, tid, #], in us:
 *   @slowest_cumulative_us[json.decoder, 0, 1845, 54]: 33784
 *   @slowest_cumulative_us[json, 0, 1845, 56]: 36413
 *   @slowest_cumulative_us[json.nope, 0, 1845, 57]: 36455
 *
 *   Slowest imports by self time [module, N, tid, #], in us:
 *   @slowest_self_us[email.policy, 0, 1892, 7]: 7404
 *   @slowest_self_us[pkg.a, 0, 1845, 30]: 7826
 *   @slowest_self_us[collections, 0, 1845, 47]: 11380
 */

#pragma D option quiet
#pragma D option argref
#pragma D option defaultargs
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
	@slowest_cumulative_us[this->name, this->cut, tid, self->seq] = sum(this->cum / 1000);
	@slowest_self_us[this->name, this->cut, tid, self->seq] = sum(this->own / 1000);
	self->seq++;
}

python$target:::import-find-load-done
/this->ok && this->d > 0/
{
	self->child[this->d - 1] += this->cum;
}

dtrace:::END
{
	trunc(@slowest_cumulative_us, $2 != 0 ? $2 : 10);
	trunc(@slowest_self_us, $2 != 0 ? $2 : 10);
	printf("\nSlowest imports by cumulative time [module, N, tid, #], in us:\n");
	printa("@slowest_cumulative_us[%s, %d, %d, %llu]: %@d\n", @slowest_cumulative_us);
	printf("\nSlowest imports by self time [module, N, tid, #], in us:\n");
	printa("@slowest_self_us[%s, %d, %d, %llu]: %@d\n", @slowest_self_us);
}
