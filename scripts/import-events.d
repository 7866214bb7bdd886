#!/usr/sbin/dtrace -s
/*
 * import-events.d  DTrace twin of import-events.bt: the raw event stream (importprobe-events v1).
 *
 * Same output format (the printf format strings are identical, checked by
 * tests/dtrace_twins.rs); see import-events.bt for what the columns mean. Uses
 * CPython's DTrace conventions: python$target:::import-find-load-start,
 * copyinstr(arg0), self-> thread-locals.
 *
 * USAGE (DTrace finds the provider through $target, so $1 is ignored; it is
 * kept so both twins take the same arguments):
 *   simulator:   importprobe run --workload demo --wait-for-tracer
 *                dtrace -q -s import-events.d -p PID
 *   new python:  dtrace -q -s import-events.d -c 'python3.11 -S prog.py'
 *   running pid: dtrace -q -s import-events.d -p PID
 * Names longer than strsize (1024 here) are cut and flagged (cut=1).
 * Not run here (no DTrace on this Linux host); the .bt twin is tested.
 */

#pragma D option quiet
#pragma D option defaultargs
#pragma D option strsize=1024
#pragma D option dynvarsize=16m

dtrace:::BEGIN
{
	printf("# importprobe-events v1\n");
}

python$target:::import-find-load-start
{
	this->ts = timestamp;
	this->s = copyinstr(arg0);
	this->n = strlen(this->s);
	printf("E %llu %d %d %llu %d start - %d %llu %s\n", this->ts, pid, tid, self->seq, self->depth, this->n >= 1023 ? 1 : 0, this->n, this->s);
	self->seq++;
	self->depth++;
}

python$target:::import-find-load-done
{
	this->ts = timestamp;
	self->depth -= self->depth > 0 ? 1 : 0;
	this->s = copyinstr(arg0);
	this->n = strlen(this->s);
	printf("E %llu %d %d %llu %d done %d %d %llu %s\n", this->ts, pid, tid, self->seq, self->depth, (int)arg1, this->n >= 1023 ? 1 : 0, this->n, this->s);
	self->seq++;
}

dtrace:::END
{
	printf("# end\n");
}
