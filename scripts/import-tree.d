#!/usr/sbin/dtrace -qs
/*
 * import-tree.d  The import tree per thread, like python -X importtime.
 *                DTrace twin of import-tree.bt (same lines, same order).
 *
 * One line per import, children before their parent and indented two
 * spaces per nesting level, in the order and nesting of CPython's
 * `-X importtime`: thread, self and cumulative time in microseconds (rounded
 * to nearest), depth, found (0 = not found or its body raised), N (0 full
 * name, 1 name cut at the string limit, 2 no name: CPython passed NULL for a
 * name it could not encode, shown empty), then the indented module name.
 * Below depth 31 the indent stops growing and the line shows `[depth]`.
 *
 * The bpftrace twin prints each line at the import's done; DTrace would
 * print them per CPU buffer, out of order. So each finished import is one
 * entry of an aggregation keyed by the line's fields and its done timestamp,
 * with that timestamp as value: printa at END prints them sorted by value,
 * i.e. in done order, which is each thread's -X importtime order. Output
 * ends with a newline dtrace(8) itself prints.
 *
 * COST: aggregating, printed at END (unlike the streaming bpftrace twin):
 * per import, a start time and a child-time sum per (thread, depth) in
 * thread-local associative arrays, at done one copyinstr, a substr compare
 * and one aggregation update. Each import is one aggregation entry of about
 * 480 bytes in the hash of the CPU its done fired on: the default aggsize
 * of 4 MB per CPU holds about 8,800 imports per CPU. Full maps are not
 * silent: `dtrace: N aggregation drops on CPU C` (add -x aggsize=16m), and
 * for very deep nesting `dtrace: N dynamic variable drops` (the default
 * 1 MB dynvarsize held a 2,000-deep chain; 10,000 deep needed
 * -x dynvarsize=32m -x aggsize=16m).
 * Measured per import pair (simulator `flat --count 10000 --scale 0`, 2-core
 * VM, dtrace -c, 4-6 runs; untraced 0.6 us): 6.0-6.5 us.
 *
 * USAGE, Linux (Oracle DTrace 2.0.7, e.g. Debian's `dtrace` package), root.
 * $1 (the probed object of the bpftrace twin) may be given and is ignored:
 * DTrace finds the provider through $target.
 *   simulator:   dtrace -q -s import-tree.d -c 'importprobe run --workload demo'
 *   a CPython:   dtrace -q -s import-tree.d -c '/usr/bin/python3.14 -S prog.py'
 *   running pid: dtrace -q -s import-tree.d -p PID   (Ctrl-C, or the process
 *                exiting, prints the tree)
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
 * NOTE: strlen() is avoided on purpose. On DTrace 2.0.7 (kernel 6.18), after
 * a strlen() of a string longer than about 30 bytes, associative-array
 * elements stored earlier can read back as 0 (seen: 12 start times of 0,
 * i.e. cumulative times of ~uptime, per run of workload demo; none without
 * strlen()). dtrace-utils' strlen() copies the string to the end of its
 * string-table map, which is also the zero block that clears tuple keys,
 * so later keys carry bytes of that string. substr() and string compares
 * do not write there.
 *
 * EXAMPLE (real output, simulator workload refpkg):
 *   TID      self [us] | cumulative | DEP F N | imported package
 *   9046            76 |         76 |   1 1 0 |   pkg
 *   9046            73 |         73 |   1 1 0 |   pkg.b
 *   9046           100 |        248 |   0 1 0 | pkg.a
 *   9046            73 |         73 |   0 0 0 | pkg.broken
 *   9046            73 |         73 |   1 1 0 |   pkg.sub.leaf
 *   9046            79 |        151 |   0 1 0 | pkg.sub
 *   9046            73 |         73 |   0 0 0 | pkg.broken
 * workload `deep --count 40` (the indent stops at depth 31):
 *   9375            80 |       1245 |  32 1 0 |                                                                 [32] chain_000032
 *   9375            79 |       1324 |  31 1 0 |                                                               chain_000031
 * and `/usr/bin/python3.14 -S stdlib_and_missing.py` (last lines):
 *   9482           156 |        156 |   2 1 0 |     pyexpat
 *   9482           125 |        459 |   1 1 0 |   _elementtree
 *   9482           699 |      27715 |   0 1 0 | xml.etree.ElementTree
 *   9482            50 |         50 |   3 1 0 |       _json
 *   9482           266 |        317 |   2 1 0 |     json.scanner
 *   9482           382 |        698 |   1 1 0 |   json.decoder
 *   9482           514 |        514 |   1 1 0 |   json.encoder
 *   9482           167 |       1379 |   0 1 0 | json
 *   9482           162 |        162 |   1 0 0 |   nonexistent_mod
 *   9482            26 |        188 |   0 0 0 | nonexistent_mod.sub
 *   9482            30 |         30 |   0 0 0 | json.nope
 */

#pragma D option quiet
#pragma D option argref
#pragma D option strsize=200

self int depth;
self uint64_t ts[int];
self uint64_t child[int];

inline string SPACES64 = "                                                                ";

dtrace:::BEGIN
{
	printf("%-8s %9s | %10s | %3s %s %s | %s\n", "TID", "self [us]", "cumulative", "DEP", "F", "N", "imported package");
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
	/*
	 * The copy holds at most strsize - 1 = 199 bytes. Only a copy of 199
	 * bytes can be a cut name: then it is cut iff byte 199 of the name is
	 * not its NUL. (strlen() is not used: on DTrace 2.0.7 it makes later
	 * associative-array lookups miss, see NOTE above.)
	 */
	this->cut = arg0 == 0 ? 2 : substr(this->name, 0, 198) == this->name ? 0 :
	    *(char *)copyin(arg0 + 199, 1) != 0;
	this->indent = this->d < 32 ? substr(SPACES64, 0, 2 * this->d) :
	    strjoin(SPACES64, strjoin(strjoin("[", lltostr(this->d)), "] "));
	@tree[tid, (this->own + 500) / 1000, (this->cum + 500) / 1000, this->d, (int)arg1, this->cut, this->indent, this->name, this->now] = min(this->now);
}

python$target:::import-find-load-done
/this->ok && this->d > 0/
{
	self->child[this->d - 1] += this->cum;
}

dtrace:::END
{
	printa("%-8d %9llu | %10llu | %3d %d %d | %s%s\n", @tree);
}
