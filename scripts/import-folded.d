#!/usr/sbin/dtrace -qs
/*
 * import-folded.d  Folded import stacks weighted by self time, for flame graphs.
 *                  DTrace twin of import-folded.bt (same lines; order may differ).
 *
 * One line per import when it finishes: the chain of imports open on its
 * thread, outermost first, joined by `;`, then a space and the import's
 * self time in microseconds (rounded to nearest): `a;a.b;a.b.c 42`. Feed it
 * to flamegraph.pl or inferno-flamegraph (they sum equal stacks, so line
 * order does not matter: lines of imports that finished on different CPUs
 * come out in per-CPU buffer order). A frame whose name was cut at the
 * string limit gets `(cut)`, a frame whose name CPython passed as NULL (a
 * name it could not encode) is `(null)`. At most 32 frames: the outermost
 * 31 enclosing imports, then `[+K]` when K enclosing imports were left
 * out, then the import itself. D has no loops: the enclosing frames are
 * printed by clauses of 16, 8, 4, 2 and 1 frames (the bits of their
 * count), so a line is at most 7 records. A line is printed by one probe
 * firing, so it is never split. Output ends with a newline dtrace(8)
 * itself prints.
 *
 * COST: streaming, one line per finished import at its done (up to 7
 * records; that time lands in the enclosing imports). Each frame is two
 * strsize (200-byte) strings in the output, so deep stacks are expensive:
 * measured per import pair on the simulator's `deep --count 200 --scale 0`
 * on a loaded 2-core VM, about 80-150 us (one record per frame: 230-580
 * us; import-tree.d: 10-25 us). Per import: start time, child-time sum,
 * name (copyinstr) and N per (thread, depth) in thread-local associative
 * arrays (the default 1 MB dynvarsize held a 2,000-deep chain).
 * Measured per import pair (simulator `flat --count 10000 --scale 0`, 2-core
 * VM, dtrace -c, 4-6 runs; untraced 0.6 us): 14.6-28 us
 * (one-frame lines).
 *
 * USAGE, Linux (Oracle DTrace 2.0.7, e.g. Debian's `dtrace` package), root.
 * $1 (the probed object of the bpftrace twin) may be given and is ignored:
 * DTrace finds the provider through $target.
 *   simulator:   dtrace -q -o demo.folded -s import-folded.d -c 'importprobe run --workload demo'
 *   a CPython:   dtrace -q -s import-folded.d -c '/usr/bin/python3.14 -S prog.py'
 *   running pid: dtrace -q -s import-folded.d -p PID
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
 *   pkg.a;pkg 102
 *   pkg.a;pkg.b 74
 *   pkg.a 139
 *   pkg.broken 74
 *   pkg.sub;pkg.sub.leaf 74
 *   pkg.sub 107
 *   pkg.broken 74
 * `/usr/bin/python3.14 -S mix.py` (some lines; the printing of pkg's and pkg.b's lines
 * lands in pkg.a's self time):
 *   pkg.a;pkg 2730
 *   pkg.a;pkg.b 127
 *   pkg.a 547
 *   pkg.broken 110
 *   pkg.broken 98
 *   pkg.sub;pkg.sub.leaf 361
 *   pkg.sub 173
 *   nonexistent_mod.sub;nonexistent_mod 258
 *   nonexistent_mod.sub 59
 *   (null) 26
 * and workload `deep --count 40`, the import at depth 35 (middle cut here):
 *   chain_000000;chain_000001;...;chain_000030;[+4];chain_000035 139
 */

#pragma D option quiet
#pragma D option argref
#pragma D option strsize=200

self int depth;
self uint64_t ts[int];
self uint64_t child[int];
self string name[int];
self int cut[int];

python$target:::import-find-load-start
{
	this->ts = timestamp;
	this->d = self->depth;
	self->ts[this->d] = this->ts;
	/* copyinstr(NULL) would be an error: a NULL name is the frame (null) */
	this->name = arg0 != 0 ? copyinstr(arg0) : "(null)";
	/* only a copy of strsize - 1 = 199 bytes can be cut: then byte 199 is not NUL */
	self->cut[this->d] = arg0 == 0 ? 2 : substr(this->name, 0, 198) == this->name ? 0 :
	    *(char *)copyin(arg0 + 199, 1) != 0;
	self->name[this->d] = this->name;
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
	/* frames 0 .. m-1 are printed in blocks of 16, 8, 4, 2, 1 (the bits of m) */
	this->m = this->d < 31 ? this->d : 31;
}

python$target:::import-find-load-done
/this->ok && (this->m & 16) && (this->m & ~31) == 0/
{
	printf("%s%s;%s%s;%s%s;%s%s;%s%s;%s%s;%s%s;%s%s;%s%s;%s%s;%s%s;%s%s;%s%s;%s%s;%s%s;%s%s;", self->name[0], self->cut[0] == 1 ? "(cut)" : "", self->name[1], self->cut[1] == 1 ? "(cut)" : "", self->name[2], self->cut[2] == 1 ? "(cut)" : "", self->name[3], self->cut[3] == 1 ? "(cut)" : "", self->name[4], self->cut[4] == 1 ? "(cut)" : "", self->name[5], self->cut[5] == 1 ? "(cut)" : "", self->name[6], self->cut[6] == 1 ? "(cut)" : "", self->name[7], self->cut[7] == 1 ? "(cut)" : "", self->name[8], self->cut[8] == 1 ? "(cut)" : "", self->name[9], self->cut[9] == 1 ? "(cut)" : "", self->name[10], self->cut[10] == 1 ? "(cut)" : "", self->name[11], self->cut[11] == 1 ? "(cut)" : "", self->name[12], self->cut[12] == 1 ? "(cut)" : "", self->name[13], self->cut[13] == 1 ? "(cut)" : "", self->name[14], self->cut[14] == 1 ? "(cut)" : "", self->name[15], self->cut[15] == 1 ? "(cut)" : "");
}

python$target:::import-find-load-done
/this->ok && (this->m & 8) && (this->m & ~15) == 0/
{
	printf("%s%s;%s%s;%s%s;%s%s;%s%s;%s%s;%s%s;%s%s;", self->name[0], self->cut[0] == 1 ? "(cut)" : "", self->name[1], self->cut[1] == 1 ? "(cut)" : "", self->name[2], self->cut[2] == 1 ? "(cut)" : "", self->name[3], self->cut[3] == 1 ? "(cut)" : "", self->name[4], self->cut[4] == 1 ? "(cut)" : "", self->name[5], self->cut[5] == 1 ? "(cut)" : "", self->name[6], self->cut[6] == 1 ? "(cut)" : "", self->name[7], self->cut[7] == 1 ? "(cut)" : "");
}

python$target:::import-find-load-done
/this->ok && (this->m & 8) && (this->m & ~15) == 16/
{
	printf("%s%s;%s%s;%s%s;%s%s;%s%s;%s%s;%s%s;%s%s;", self->name[16], self->cut[16] == 1 ? "(cut)" : "", self->name[17], self->cut[17] == 1 ? "(cut)" : "", self->name[18], self->cut[18] == 1 ? "(cut)" : "", self->name[19], self->cut[19] == 1 ? "(cut)" : "", self->name[20], self->cut[20] == 1 ? "(cut)" : "", self->name[21], self->cut[21] == 1 ? "(cut)" : "", self->name[22], self->cut[22] == 1 ? "(cut)" : "", self->name[23], self->cut[23] == 1 ? "(cut)" : "");
}

python$target:::import-find-load-done
/this->ok && (this->m & 4) && (this->m & ~7) == 0/
{
	printf("%s%s;%s%s;%s%s;%s%s;", self->name[0], self->cut[0] == 1 ? "(cut)" : "", self->name[1], self->cut[1] == 1 ? "(cut)" : "", self->name[2], self->cut[2] == 1 ? "(cut)" : "", self->name[3], self->cut[3] == 1 ? "(cut)" : "");
}

python$target:::import-find-load-done
/this->ok && (this->m & 4) && (this->m & ~7) == 8/
{
	printf("%s%s;%s%s;%s%s;%s%s;", self->name[8], self->cut[8] == 1 ? "(cut)" : "", self->name[9], self->cut[9] == 1 ? "(cut)" : "", self->name[10], self->cut[10] == 1 ? "(cut)" : "", self->name[11], self->cut[11] == 1 ? "(cut)" : "");
}

python$target:::import-find-load-done
/this->ok && (this->m & 4) && (this->m & ~7) == 16/
{
	printf("%s%s;%s%s;%s%s;%s%s;", self->name[16], self->cut[16] == 1 ? "(cut)" : "", self->name[17], self->cut[17] == 1 ? "(cut)" : "", self->name[18], self->cut[18] == 1 ? "(cut)" : "", self->name[19], self->cut[19] == 1 ? "(cut)" : "");
}

python$target:::import-find-load-done
/this->ok && (this->m & 4) && (this->m & ~7) == 24/
{
	printf("%s%s;%s%s;%s%s;%s%s;", self->name[24], self->cut[24] == 1 ? "(cut)" : "", self->name[25], self->cut[25] == 1 ? "(cut)" : "", self->name[26], self->cut[26] == 1 ? "(cut)" : "", self->name[27], self->cut[27] == 1 ? "(cut)" : "");
}

python$target:::import-find-load-done
/this->ok && (this->m & 2) && (this->m & ~3) == 0/
{
	printf("%s%s;%s%s;", self->name[0], self->cut[0] == 1 ? "(cut)" : "", self->name[1], self->cut[1] == 1 ? "(cut)" : "");
}

python$target:::import-find-load-done
/this->ok && (this->m & 2) && (this->m & ~3) == 4/
{
	printf("%s%s;%s%s;", self->name[4], self->cut[4] == 1 ? "(cut)" : "", self->name[5], self->cut[5] == 1 ? "(cut)" : "");
}

python$target:::import-find-load-done
/this->ok && (this->m & 2) && (this->m & ~3) == 8/
{
	printf("%s%s;%s%s;", self->name[8], self->cut[8] == 1 ? "(cut)" : "", self->name[9], self->cut[9] == 1 ? "(cut)" : "");
}

python$target:::import-find-load-done
/this->ok && (this->m & 2) && (this->m & ~3) == 12/
{
	printf("%s%s;%s%s;", self->name[12], self->cut[12] == 1 ? "(cut)" : "", self->name[13], self->cut[13] == 1 ? "(cut)" : "");
}

python$target:::import-find-load-done
/this->ok && (this->m & 2) && (this->m & ~3) == 16/
{
	printf("%s%s;%s%s;", self->name[16], self->cut[16] == 1 ? "(cut)" : "", self->name[17], self->cut[17] == 1 ? "(cut)" : "");
}

python$target:::import-find-load-done
/this->ok && (this->m & 2) && (this->m & ~3) == 20/
{
	printf("%s%s;%s%s;", self->name[20], self->cut[20] == 1 ? "(cut)" : "", self->name[21], self->cut[21] == 1 ? "(cut)" : "");
}

python$target:::import-find-load-done
/this->ok && (this->m & 2) && (this->m & ~3) == 24/
{
	printf("%s%s;%s%s;", self->name[24], self->cut[24] == 1 ? "(cut)" : "", self->name[25], self->cut[25] == 1 ? "(cut)" : "");
}

python$target:::import-find-load-done
/this->ok && (this->m & 2) && (this->m & ~3) == 28/
{
	printf("%s%s;%s%s;", self->name[28], self->cut[28] == 1 ? "(cut)" : "", self->name[29], self->cut[29] == 1 ? "(cut)" : "");
}

python$target:::import-find-load-done
/this->ok && (this->m & 1) && (this->m & ~1) == 0/
{
	printf("%s%s;", self->name[0], self->cut[0] == 1 ? "(cut)" : "");
}

python$target:::import-find-load-done
/this->ok && (this->m & 1) && (this->m & ~1) == 2/
{
	printf("%s%s;", self->name[2], self->cut[2] == 1 ? "(cut)" : "");
}

python$target:::import-find-load-done
/this->ok && (this->m & 1) && (this->m & ~1) == 4/
{
	printf("%s%s;", self->name[4], self->cut[4] == 1 ? "(cut)" : "");
}

python$target:::import-find-load-done
/this->ok && (this->m & 1) && (this->m & ~1) == 6/
{
	printf("%s%s;", self->name[6], self->cut[6] == 1 ? "(cut)" : "");
}

python$target:::import-find-load-done
/this->ok && (this->m & 1) && (this->m & ~1) == 8/
{
	printf("%s%s;", self->name[8], self->cut[8] == 1 ? "(cut)" : "");
}

python$target:::import-find-load-done
/this->ok && (this->m & 1) && (this->m & ~1) == 10/
{
	printf("%s%s;", self->name[10], self->cut[10] == 1 ? "(cut)" : "");
}

python$target:::import-find-load-done
/this->ok && (this->m & 1) && (this->m & ~1) == 12/
{
	printf("%s%s;", self->name[12], self->cut[12] == 1 ? "(cut)" : "");
}

python$target:::import-find-load-done
/this->ok && (this->m & 1) && (this->m & ~1) == 14/
{
	printf("%s%s;", self->name[14], self->cut[14] == 1 ? "(cut)" : "");
}

python$target:::import-find-load-done
/this->ok && (this->m & 1) && (this->m & ~1) == 16/
{
	printf("%s%s;", self->name[16], self->cut[16] == 1 ? "(cut)" : "");
}

python$target:::import-find-load-done
/this->ok && (this->m & 1) && (this->m & ~1) == 18/
{
	printf("%s%s;", self->name[18], self->cut[18] == 1 ? "(cut)" : "");
}

python$target:::import-find-load-done
/this->ok && (this->m & 1) && (this->m & ~1) == 20/
{
	printf("%s%s;", self->name[20], self->cut[20] == 1 ? "(cut)" : "");
}

python$target:::import-find-load-done
/this->ok && (this->m & 1) && (this->m & ~1) == 22/
{
	printf("%s%s;", self->name[22], self->cut[22] == 1 ? "(cut)" : "");
}

python$target:::import-find-load-done
/this->ok && (this->m & 1) && (this->m & ~1) == 24/
{
	printf("%s%s;", self->name[24], self->cut[24] == 1 ? "(cut)" : "");
}

python$target:::import-find-load-done
/this->ok && (this->m & 1) && (this->m & ~1) == 26/
{
	printf("%s%s;", self->name[26], self->cut[26] == 1 ? "(cut)" : "");
}

python$target:::import-find-load-done
/this->ok && (this->m & 1) && (this->m & ~1) == 28/
{
	printf("%s%s;", self->name[28], self->cut[28] == 1 ? "(cut)" : "");
}

python$target:::import-find-load-done
/this->ok && (this->m & 1) && (this->m & ~1) == 30/
{
	printf("%s%s;", self->name[30], self->cut[30] == 1 ? "(cut)" : "");
}

python$target:::import-find-load-done
/this->ok && this->d > 31/
{
	printf("[+%d];", this->d - 31);
}

python$target:::import-find-load-done
/this->ok/
{
	printf("%s%s %llu\n", self->name[this->d], self->cut[this->d] == 1 ? "(cut)" : "", (this->own + 500) / 1000);
}

python$target:::import-find-load-done
/this->ok && this->d > 0/
{
	self->child[this->d - 1] += this->cum;
}

python$target:::import-find-load-done
/this->ok/
{
	self->ts[this->d] = 0;
	self->child[this->d] = 0;
	self->name[this->d] = 0;
	self->cut[this->d] = 0;
}
