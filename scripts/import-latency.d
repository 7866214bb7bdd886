#!/usr/sbin/dtrace -s
/*
 * import-latency.d  DTrace twin of import-latency.bt: every import with cumulative and self time.
 *
 * Same output format (the printf format strings are identical, checked by
 * tests/dtrace_twins.rs); see import-latency.bt for what the columns mean. Uses
 * CPython's DTrace conventions: python$target:::import-find-load-start,
 * copyinstr(arg0), self-> thread-locals.
 *
 * USAGE (DTrace finds the provider through $target, so $1 is ignored; it is
 * kept so both twins take the same arguments):
 *   simulator:   importprobe run --workload demo --wait-for-tracer
 *                dtrace -q -s import-latency.d -p PID
 *   new python:  dtrace -q -s import-latency.d -c 'python3.11 -S prog.py'
 *   running pid: dtrace -q -s import-latency.d -p PID
 * Names longer than strsize (1024 here) are cut and flagged (cut=1).
 * Not run here (no DTrace on this Linux host); the .bt twin is tested.
 */

#pragma D option quiet
#pragma D option defaultargs
#pragma D option strsize=1024
#pragma D option dynvarsize=16m

dtrace:::BEGIN
{
	printf("Tracing CPython imports... Hit Ctrl-C to end.\n");
}

python$target:::import-find-load-start
{
	self->ts[self->depth] = timestamp;
	self->child[self->depth] = 0;
	self->name[self->depth] = copyinstr(arg0);
	self->cut[self->depth] = strlen(self->name[self->depth]) >= 1023 ? 1 : 0;
	self->depth++;
}

python$target:::import-find-load-done
/self->depth > 0/
{
	self->now = timestamp;
	self->depth--;
	self->d = self->depth;
	self->cum = self->now - self->ts[self->d];
	self->own = self->cum - self->child[self->d];
	self->found = (int)arg1;
	self->c = self->cut[self->d];
	self->n = self->name[self->d];
	self->ok = 1;
}

python$target:::import-find-load-done
/self->ok/
{
	@import_cumulative_us[self->n, self->found, self->c, tid, self->seq, self->d, self->own / 1000] = max(self->cum / 1000);
	self->seq++;
}

python$target:::import-find-load-done
/self->ok && self->d > 0/
{
	self->child[self->d - 1] += self->cum;
}

python$target:::import-find-load-done
/self->ok/
{
	self->ts[self->d] = 0;
	self->child[self->d] = 0;
	self->cut[self->d] = 0;
	self->ok = 0;
}

dtrace:::END
{
	printf("\nImports [module, found, cut, tid, #, depth, self_us]: cumulative_us, slowest last:\n");
	printa("@import_cumulative_us[%s, %d, %d, %d, %d, %d, %d]: %@d\n", @import_cumulative_us);
}
