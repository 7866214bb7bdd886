#!/usr/sbin/dtrace -qs
/*
 * import-failed.d  Every failed CPython import, with the importers above it.
 *                  DTrace twin of import-failed.bt (same lines).
 *
 * Reports each import that ended with found = 0 (module not found, or its
 * body raised; a missing parent fails every pending child too): one FAILED
 * line with thread, depth, the time the failed attempt cost (cumulative,
 * us.fff), N and the module, then one `importer` line per enclosing import
 * on that thread, innermost first, at most 32; when there are more, one
 * `  ... K more importers` line. N = 0 full name, 1 name cut at the string
 * limit, 2 no name (CPython passed NULL for a name it could not encode;
 * shown empty). D has no loops: the 32 importer lines are 32 clauses.
 * A block is printed by one probe firing, so it is never split; blocks of
 * failures on different CPUs can come out of time order (per-CPU buffers),
 * as with the bpftrace twin. Output ends with a newline dtrace(8) prints.
 *
 * COST: streaming, printing only failures (one record per line of the
 * block, at the failed import's done: that time lands in the enclosing
 * imports). Per import: start time, name (copyinstr, 200 bytes) and N per
 * (thread, depth) in thread-local associative arrays (the default 1 MB
 * dynvarsize held a 2,000-deep chain; deeper: -x dynvarsize=32m, or dtrace
 * reports `dynamic variable drops`).
 * Measured per import pair (simulator `flat --count 10000 --scale 0`, 2-core
 * VM, dtrace -c, 4-6 runs; untraced 0.6 us): 5.4-8.0 us
 * (no failures: the cost of keeping the names).
 *
 * USAGE, Linux (Oracle DTrace 2.0.7, e.g. Debian's `dtrace` package), root.
 * $1 (the probed object of the bpftrace twin) may be given and is ignored:
 * DTrace finds the provider through $target.
 *   simulator:   dtrace -q -s import-failed.d -c 'importprobe run --workload demo'
 *   a CPython:   dtrace -q -s import-failed.d -c '/usr/bin/python3.14 -S prog.py'
 *   running pid: dtrace -q -s import-failed.d -p PID
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
 * EXAMPLE (real output, simulator workload demo):
 *   Tracing failed CPython imports... Hit Ctrl-C to end.
 *   FAILED tid=14083 depth=3 cost_us=49.434 name=0 module=yaml._yaml
 *     importer tid=14083 depth=2 name=0 module=yaml
 *     importer tid=14083 depth=1 name=0 module=shopapp.config
 *     importer tid=14083 depth=0 name=0 module=shopapp.cli
 *   FAILED tid=14083 depth=4 cost_us=21.502 name=0 module=org.python.core
 *     importer tid=14083 depth=3 name=0 module=copy
 *     importer tid=14083 depth=2 name=0 module=dataclasses
 *     importer tid=14083 depth=1 name=0 module=shopapp.config
 *     importer tid=14083 depth=0 name=0 module=shopapp.cli
 *   FAILED tid=14083 depth=3 cost_us=59.810 name=0 module=ujson
 *     importer tid=14083 depth=2 name=0 module=shopapp.serialize
 *     importer tid=14083 depth=1 name=0 module=shopapp.api
 *     importer tid=14083 depth=0 name=0 module=shopapp.cli
 *   FAILED tid=14083 depth=0 cost_us=919.042 name=0 module=shopapp.plugins.legacy
 * `/usr/bin/python3.14 -S mix.py` (bodies that raise, missing modules, a NULL name):
 *   FAILED tid=14828 depth=0 cost_us=103.815 name=0 module=pkg.broken
 *   FAILED tid=14828 depth=0 cost_us=91.306 name=0 module=pkg.broken
 *   FAILED tid=14828 depth=1 cost_us=132.507 name=0 module=nonexistent_mod
 *     importer tid=14828 depth=0 name=0 module=nonexistent_mod.sub
 *   FAILED tid=14828 depth=0 cost_us=195.162 name=0 module=nonexistent_mod.sub
 *   FAILED tid=14828 depth=0 cost_us=17604.820 name=0 module=json.nope
 *   FAILED tid=14828 depth=0 cost_us=30.796 name=2 module=
 * and a 40-deep chain (manifest workload; importer lines cut):
 *   FAILED tid=11674 depth=40 cost_us=38.438 name=0 module=gone_deep
 *     importer tid=11674 depth=39 name=0 module=c39
 *     importer tid=11674 depth=38 name=0 module=c38
 *     ...
 *     importer tid=11674 depth=8 name=0 module=c08
 *     ... 8 more importers
 */

#pragma D option quiet
#pragma D option argref
#pragma D option strsize=200

self int depth;
self uint64_t ts[int];
self string name[int];
self int cut[int];

dtrace:::BEGIN
{
	printf("Tracing failed CPython imports... Hit Ctrl-C to end.\n");
}

python$target:::import-find-load-start
{
	this->ts = timestamp;
	this->d = self->depth;
	self->ts[this->d] = this->ts;
	/* copyinstr(NULL) would be an error: a NULL name is shown empty, N = 2 */
	this->name = arg0 != 0 ? copyinstr(arg0) : "";
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
	this->fail = 0;
}

python$target:::import-find-load-done
/this->ok/
{
	self->depth--;
	this->d = self->depth;
	this->cum = this->now - self->ts[this->d];
	this->fail = (int)arg1 == 0;
}

python$target:::import-find-load-done
/this->fail/
{
	printf("FAILED tid=%d depth=%d cost_us=%llu.%03llu name=%d module=%s\n", tid, this->d, this->cum / 1000, this->cum % 1000, self->cut[this->d], self->name[this->d]);
}

python$target:::import-find-load-done
/this->fail && this->d > 0/
{
	printf("  importer tid=%d depth=%d name=%d module=%s\n", tid, this->d - 1, self->cut[this->d - 1], self->name[this->d - 1]);
}

python$target:::import-find-load-done
/this->fail && this->d > 1/
{
	printf("  importer tid=%d depth=%d name=%d module=%s\n", tid, this->d - 2, self->cut[this->d - 2], self->name[this->d - 2]);
}

python$target:::import-find-load-done
/this->fail && this->d > 2/
{
	printf("  importer tid=%d depth=%d name=%d module=%s\n", tid, this->d - 3, self->cut[this->d - 3], self->name[this->d - 3]);
}

python$target:::import-find-load-done
/this->fail && this->d > 3/
{
	printf("  importer tid=%d depth=%d name=%d module=%s\n", tid, this->d - 4, self->cut[this->d - 4], self->name[this->d - 4]);
}

python$target:::import-find-load-done
/this->fail && this->d > 4/
{
	printf("  importer tid=%d depth=%d name=%d module=%s\n", tid, this->d - 5, self->cut[this->d - 5], self->name[this->d - 5]);
}

python$target:::import-find-load-done
/this->fail && this->d > 5/
{
	printf("  importer tid=%d depth=%d name=%d module=%s\n", tid, this->d - 6, self->cut[this->d - 6], self->name[this->d - 6]);
}

python$target:::import-find-load-done
/this->fail && this->d > 6/
{
	printf("  importer tid=%d depth=%d name=%d module=%s\n", tid, this->d - 7, self->cut[this->d - 7], self->name[this->d - 7]);
}

python$target:::import-find-load-done
/this->fail && this->d > 7/
{
	printf("  importer tid=%d depth=%d name=%d module=%s\n", tid, this->d - 8, self->cut[this->d - 8], self->name[this->d - 8]);
}

python$target:::import-find-load-done
/this->fail && this->d > 8/
{
	printf("  importer tid=%d depth=%d name=%d module=%s\n", tid, this->d - 9, self->cut[this->d - 9], self->name[this->d - 9]);
}

python$target:::import-find-load-done
/this->fail && this->d > 9/
{
	printf("  importer tid=%d depth=%d name=%d module=%s\n", tid, this->d - 10, self->cut[this->d - 10], self->name[this->d - 10]);
}

python$target:::import-find-load-done
/this->fail && this->d > 10/
{
	printf("  importer tid=%d depth=%d name=%d module=%s\n", tid, this->d - 11, self->cut[this->d - 11], self->name[this->d - 11]);
}

python$target:::import-find-load-done
/this->fail && this->d > 11/
{
	printf("  importer tid=%d depth=%d name=%d module=%s\n", tid, this->d - 12, self->cut[this->d - 12], self->name[this->d - 12]);
}

python$target:::import-find-load-done
/this->fail && this->d > 12/
{
	printf("  importer tid=%d depth=%d name=%d module=%s\n", tid, this->d - 13, self->cut[this->d - 13], self->name[this->d - 13]);
}

python$target:::import-find-load-done
/this->fail && this->d > 13/
{
	printf("  importer tid=%d depth=%d name=%d module=%s\n", tid, this->d - 14, self->cut[this->d - 14], self->name[this->d - 14]);
}

python$target:::import-find-load-done
/this->fail && this->d > 14/
{
	printf("  importer tid=%d depth=%d name=%d module=%s\n", tid, this->d - 15, self->cut[this->d - 15], self->name[this->d - 15]);
}

python$target:::import-find-load-done
/this->fail && this->d > 15/
{
	printf("  importer tid=%d depth=%d name=%d module=%s\n", tid, this->d - 16, self->cut[this->d - 16], self->name[this->d - 16]);
}

python$target:::import-find-load-done
/this->fail && this->d > 16/
{
	printf("  importer tid=%d depth=%d name=%d module=%s\n", tid, this->d - 17, self->cut[this->d - 17], self->name[this->d - 17]);
}

python$target:::import-find-load-done
/this->fail && this->d > 17/
{
	printf("  importer tid=%d depth=%d name=%d module=%s\n", tid, this->d - 18, self->cut[this->d - 18], self->name[this->d - 18]);
}

python$target:::import-find-load-done
/this->fail && this->d > 18/
{
	printf("  importer tid=%d depth=%d name=%d module=%s\n", tid, this->d - 19, self->cut[this->d - 19], self->name[this->d - 19]);
}

python$target:::import-find-load-done
/this->fail && this->d > 19/
{
	printf("  importer tid=%d depth=%d name=%d module=%s\n", tid, this->d - 20, self->cut[this->d - 20], self->name[this->d - 20]);
}

python$target:::import-find-load-done
/this->fail && this->d > 20/
{
	printf("  importer tid=%d depth=%d name=%d module=%s\n", tid, this->d - 21, self->cut[this->d - 21], self->name[this->d - 21]);
}

python$target:::import-find-load-done
/this->fail && this->d > 21/
{
	printf("  importer tid=%d depth=%d name=%d module=%s\n", tid, this->d - 22, self->cut[this->d - 22], self->name[this->d - 22]);
}

python$target:::import-find-load-done
/this->fail && this->d > 22/
{
	printf("  importer tid=%d depth=%d name=%d module=%s\n", tid, this->d - 23, self->cut[this->d - 23], self->name[this->d - 23]);
}

python$target:::import-find-load-done
/this->fail && this->d > 23/
{
	printf("  importer tid=%d depth=%d name=%d module=%s\n", tid, this->d - 24, self->cut[this->d - 24], self->name[this->d - 24]);
}

python$target:::import-find-load-done
/this->fail && this->d > 24/
{
	printf("  importer tid=%d depth=%d name=%d module=%s\n", tid, this->d - 25, self->cut[this->d - 25], self->name[this->d - 25]);
}

python$target:::import-find-load-done
/this->fail && this->d > 25/
{
	printf("  importer tid=%d depth=%d name=%d module=%s\n", tid, this->d - 26, self->cut[this->d - 26], self->name[this->d - 26]);
}

python$target:::import-find-load-done
/this->fail && this->d > 26/
{
	printf("  importer tid=%d depth=%d name=%d module=%s\n", tid, this->d - 27, self->cut[this->d - 27], self->name[this->d - 27]);
}

python$target:::import-find-load-done
/this->fail && this->d > 27/
{
	printf("  importer tid=%d depth=%d name=%d module=%s\n", tid, this->d - 28, self->cut[this->d - 28], self->name[this->d - 28]);
}

python$target:::import-find-load-done
/this->fail && this->d > 28/
{
	printf("  importer tid=%d depth=%d name=%d module=%s\n", tid, this->d - 29, self->cut[this->d - 29], self->name[this->d - 29]);
}

python$target:::import-find-load-done
/this->fail && this->d > 29/
{
	printf("  importer tid=%d depth=%d name=%d module=%s\n", tid, this->d - 30, self->cut[this->d - 30], self->name[this->d - 30]);
}

python$target:::import-find-load-done
/this->fail && this->d > 30/
{
	printf("  importer tid=%d depth=%d name=%d module=%s\n", tid, this->d - 31, self->cut[this->d - 31], self->name[this->d - 31]);
}

python$target:::import-find-load-done
/this->fail && this->d > 31/
{
	printf("  importer tid=%d depth=%d name=%d module=%s\n", tid, this->d - 32, self->cut[this->d - 32], self->name[this->d - 32]);
}

python$target:::import-find-load-done
/this->fail && this->d > 32/
{
	printf("  ... %d more importers\n", this->d - 32);
}

python$target:::import-find-load-done
/this->ok/
{
	self->ts[this->d] = 0;
	self->name[this->d] = 0;
	self->cut[this->d] = 0;
}
