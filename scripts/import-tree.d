#!/usr/sbin/dtrace -s
/*
 * import-tree.d  DTrace twin of import-tree.bt: the import tree per thread, like python -X importtime.
 *
 * Same output format (the printf format strings are identical, checked by
 * tests/dtrace_twins.rs); see import-tree.bt for what the columns mean. Uses
 * CPython's DTrace conventions: python$target:::import-find-load-start,
 * copyinstr(arg0), self-> thread-locals.
 *
 * USAGE (DTrace finds the provider through $target, so $1 is ignored; it is
 * kept so both twins take the same arguments):
 *   simulator:   importprobe run --workload demo --wait-for-tracer
 *                dtrace -q -s import-tree.d -p PID
 *   new python:  dtrace -q -s import-tree.d -c 'python3.11 -S prog.py'
 *   running pid: dtrace -q -s import-tree.d -p PID
 * Names longer than strsize (1024 here) are cut and flagged (cut=1).
 * Not run here (no DTrace on this Linux host); the .bt twin is tested.
 */

#pragma D option quiet
#pragma D option defaultargs
#pragma D option strsize=1024
#pragma D option dynvarsize=16m

dtrace:::BEGIN
{
	printf("%-8s %9s | %10s | %3s %s %s | %s\n", "TID", "self [us]", "cumulative", "DEP", "F", "C", "imported package");
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
/self->ok && self->d == 0/
{
	printf("%-8d %9llu | %10llu | %3d %d %d | %s\n", tid, (self->own + 500) / 1000, (self->cum + 500) / 1000, self->d, self->found, self->c, self->n);
}

python$target:::import-find-load-done
/self->ok && self->d == 1/
{
	printf("%-8d %9llu | %10llu | %3d %d %d |   %s\n", tid, (self->own + 500) / 1000, (self->cum + 500) / 1000, self->d, self->found, self->c, self->n);
}

python$target:::import-find-load-done
/self->ok && self->d == 2/
{
	printf("%-8d %9llu | %10llu | %3d %d %d |     %s\n", tid, (self->own + 500) / 1000, (self->cum + 500) / 1000, self->d, self->found, self->c, self->n);
}

python$target:::import-find-load-done
/self->ok && self->d == 3/
{
	printf("%-8d %9llu | %10llu | %3d %d %d |       %s\n", tid, (self->own + 500) / 1000, (self->cum + 500) / 1000, self->d, self->found, self->c, self->n);
}

python$target:::import-find-load-done
/self->ok && self->d == 4/
{
	printf("%-8d %9llu | %10llu | %3d %d %d |         %s\n", tid, (self->own + 500) / 1000, (self->cum + 500) / 1000, self->d, self->found, self->c, self->n);
}

python$target:::import-find-load-done
/self->ok && self->d == 5/
{
	printf("%-8d %9llu | %10llu | %3d %d %d |           %s\n", tid, (self->own + 500) / 1000, (self->cum + 500) / 1000, self->d, self->found, self->c, self->n);
}

python$target:::import-find-load-done
/self->ok && self->d == 6/
{
	printf("%-8d %9llu | %10llu | %3d %d %d |             %s\n", tid, (self->own + 500) / 1000, (self->cum + 500) / 1000, self->d, self->found, self->c, self->n);
}

python$target:::import-find-load-done
/self->ok && self->d == 7/
{
	printf("%-8d %9llu | %10llu | %3d %d %d |               %s\n", tid, (self->own + 500) / 1000, (self->cum + 500) / 1000, self->d, self->found, self->c, self->n);
}

python$target:::import-find-load-done
/self->ok && self->d == 8/
{
	printf("%-8d %9llu | %10llu | %3d %d %d |                 %s\n", tid, (self->own + 500) / 1000, (self->cum + 500) / 1000, self->d, self->found, self->c, self->n);
}

python$target:::import-find-load-done
/self->ok && self->d == 9/
{
	printf("%-8d %9llu | %10llu | %3d %d %d |                   %s\n", tid, (self->own + 500) / 1000, (self->cum + 500) / 1000, self->d, self->found, self->c, self->n);
}

python$target:::import-find-load-done
/self->ok && self->d == 10/
{
	printf("%-8d %9llu | %10llu | %3d %d %d |                     %s\n", tid, (self->own + 500) / 1000, (self->cum + 500) / 1000, self->d, self->found, self->c, self->n);
}

python$target:::import-find-load-done
/self->ok && self->d == 11/
{
	printf("%-8d %9llu | %10llu | %3d %d %d |                       %s\n", tid, (self->own + 500) / 1000, (self->cum + 500) / 1000, self->d, self->found, self->c, self->n);
}

python$target:::import-find-load-done
/self->ok && self->d == 12/
{
	printf("%-8d %9llu | %10llu | %3d %d %d |                         %s\n", tid, (self->own + 500) / 1000, (self->cum + 500) / 1000, self->d, self->found, self->c, self->n);
}

python$target:::import-find-load-done
/self->ok && self->d == 13/
{
	printf("%-8d %9llu | %10llu | %3d %d %d |                           %s\n", tid, (self->own + 500) / 1000, (self->cum + 500) / 1000, self->d, self->found, self->c, self->n);
}

python$target:::import-find-load-done
/self->ok && self->d == 14/
{
	printf("%-8d %9llu | %10llu | %3d %d %d |                             %s\n", tid, (self->own + 500) / 1000, (self->cum + 500) / 1000, self->d, self->found, self->c, self->n);
}

python$target:::import-find-load-done
/self->ok && self->d == 15/
{
	printf("%-8d %9llu | %10llu | %3d %d %d |                               %s\n", tid, (self->own + 500) / 1000, (self->cum + 500) / 1000, self->d, self->found, self->c, self->n);
}

python$target:::import-find-load-done
/self->ok && self->d == 16/
{
	printf("%-8d %9llu | %10llu | %3d %d %d |                                 %s\n", tid, (self->own + 500) / 1000, (self->cum + 500) / 1000, self->d, self->found, self->c, self->n);
}

python$target:::import-find-load-done
/self->ok && self->d == 17/
{
	printf("%-8d %9llu | %10llu | %3d %d %d |                                   %s\n", tid, (self->own + 500) / 1000, (self->cum + 500) / 1000, self->d, self->found, self->c, self->n);
}

python$target:::import-find-load-done
/self->ok && self->d == 18/
{
	printf("%-8d %9llu | %10llu | %3d %d %d |                                     %s\n", tid, (self->own + 500) / 1000, (self->cum + 500) / 1000, self->d, self->found, self->c, self->n);
}

python$target:::import-find-load-done
/self->ok && self->d == 19/
{
	printf("%-8d %9llu | %10llu | %3d %d %d |                                       %s\n", tid, (self->own + 500) / 1000, (self->cum + 500) / 1000, self->d, self->found, self->c, self->n);
}

python$target:::import-find-load-done
/self->ok && self->d == 20/
{
	printf("%-8d %9llu | %10llu | %3d %d %d |                                         %s\n", tid, (self->own + 500) / 1000, (self->cum + 500) / 1000, self->d, self->found, self->c, self->n);
}

python$target:::import-find-load-done
/self->ok && self->d == 21/
{
	printf("%-8d %9llu | %10llu | %3d %d %d |                                           %s\n", tid, (self->own + 500) / 1000, (self->cum + 500) / 1000, self->d, self->found, self->c, self->n);
}

python$target:::import-find-load-done
/self->ok && self->d == 22/
{
	printf("%-8d %9llu | %10llu | %3d %d %d |                                             %s\n", tid, (self->own + 500) / 1000, (self->cum + 500) / 1000, self->d, self->found, self->c, self->n);
}

python$target:::import-find-load-done
/self->ok && self->d == 23/
{
	printf("%-8d %9llu | %10llu | %3d %d %d |                                               %s\n", tid, (self->own + 500) / 1000, (self->cum + 500) / 1000, self->d, self->found, self->c, self->n);
}

python$target:::import-find-load-done
/self->ok && self->d == 24/
{
	printf("%-8d %9llu | %10llu | %3d %d %d |                                                 %s\n", tid, (self->own + 500) / 1000, (self->cum + 500) / 1000, self->d, self->found, self->c, self->n);
}

python$target:::import-find-load-done
/self->ok && self->d == 25/
{
	printf("%-8d %9llu | %10llu | %3d %d %d |                                                   %s\n", tid, (self->own + 500) / 1000, (self->cum + 500) / 1000, self->d, self->found, self->c, self->n);
}

python$target:::import-find-load-done
/self->ok && self->d == 26/
{
	printf("%-8d %9llu | %10llu | %3d %d %d |                                                     %s\n", tid, (self->own + 500) / 1000, (self->cum + 500) / 1000, self->d, self->found, self->c, self->n);
}

python$target:::import-find-load-done
/self->ok && self->d == 27/
{
	printf("%-8d %9llu | %10llu | %3d %d %d |                                                       %s\n", tid, (self->own + 500) / 1000, (self->cum + 500) / 1000, self->d, self->found, self->c, self->n);
}

python$target:::import-find-load-done
/self->ok && self->d == 28/
{
	printf("%-8d %9llu | %10llu | %3d %d %d |                                                         %s\n", tid, (self->own + 500) / 1000, (self->cum + 500) / 1000, self->d, self->found, self->c, self->n);
}

python$target:::import-find-load-done
/self->ok && self->d == 29/
{
	printf("%-8d %9llu | %10llu | %3d %d %d |                                                           %s\n", tid, (self->own + 500) / 1000, (self->cum + 500) / 1000, self->d, self->found, self->c, self->n);
}

python$target:::import-find-load-done
/self->ok && self->d == 30/
{
	printf("%-8d %9llu | %10llu | %3d %d %d |                                                             %s\n", tid, (self->own + 500) / 1000, (self->cum + 500) / 1000, self->d, self->found, self->c, self->n);
}

python$target:::import-find-load-done
/self->ok && self->d == 31/
{
	printf("%-8d %9llu | %10llu | %3d %d %d |                                                               %s\n", tid, (self->own + 500) / 1000, (self->cum + 500) / 1000, self->d, self->found, self->c, self->n);
}

python$target:::import-find-load-done
/self->ok && self->d >= 32/
{
	printf("%-8d %9llu | %10llu | %3d %d %d |                                                                 [%d] %s\n", tid, (self->own + 500) / 1000, (self->cum + 500) / 1000, self->d, self->found, self->c, self->d, self->n);
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
