#!/usr/sbin/dtrace -s
/*
 * import-failed.d  DTrace twin of import-failed.bt: every failed import with the importers above it (16 levels: D has no loops).
 *
 * Same output format (the printf format strings are identical, checked by
 * tests/dtrace_twins.rs); see import-failed.bt for what the columns mean. Uses
 * CPython's DTrace conventions: python$target:::import-find-load-start,
 * copyinstr(arg0), self-> thread-locals.
 *
 * USAGE (DTrace finds the provider through $target, so $1 is ignored; it is
 * kept so both twins take the same arguments):
 *   simulator:   importprobe run --workload demo --wait-for-tracer
 *                dtrace -q -s import-failed.d -p PID
 *   new python:  dtrace -q -s import-failed.d -c 'python3.11 -S prog.py'
 *   running pid: dtrace -q -s import-failed.d -p PID
 * Names longer than strsize (1024 here) are cut and flagged (cut=1).
 * Not run here (no DTrace on this Linux host); the .bt twin is tested.
 */

#pragma D option quiet
#pragma D option defaultargs
#pragma D option strsize=1024
#pragma D option dynvarsize=16m

dtrace:::BEGIN
{
	printf("Tracing failed CPython imports... Hit Ctrl-C to end.\n");
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
/self->ok && self->found == 0/
{
	printf("FAILED tid=%d depth=%d cost_us=%llu.%03llu cut=%d module=%s\n", tid, self->d, self->cum / 1000, self->cum % 1000, self->c, self->n);
}

python$target:::import-find-load-done
/self->ok && self->found == 0 && self->d > 15/
{
	printf("  importer tid=%d depth=%d cut=%d module=%s\n", tid, 15, self->cut[15], self->name[15]);
}

python$target:::import-find-load-done
/self->ok && self->found == 0 && self->d > 14/
{
	printf("  importer tid=%d depth=%d cut=%d module=%s\n", tid, 14, self->cut[14], self->name[14]);
}

python$target:::import-find-load-done
/self->ok && self->found == 0 && self->d > 13/
{
	printf("  importer tid=%d depth=%d cut=%d module=%s\n", tid, 13, self->cut[13], self->name[13]);
}

python$target:::import-find-load-done
/self->ok && self->found == 0 && self->d > 12/
{
	printf("  importer tid=%d depth=%d cut=%d module=%s\n", tid, 12, self->cut[12], self->name[12]);
}

python$target:::import-find-load-done
/self->ok && self->found == 0 && self->d > 11/
{
	printf("  importer tid=%d depth=%d cut=%d module=%s\n", tid, 11, self->cut[11], self->name[11]);
}

python$target:::import-find-load-done
/self->ok && self->found == 0 && self->d > 10/
{
	printf("  importer tid=%d depth=%d cut=%d module=%s\n", tid, 10, self->cut[10], self->name[10]);
}

python$target:::import-find-load-done
/self->ok && self->found == 0 && self->d > 9/
{
	printf("  importer tid=%d depth=%d cut=%d module=%s\n", tid, 9, self->cut[9], self->name[9]);
}

python$target:::import-find-load-done
/self->ok && self->found == 0 && self->d > 8/
{
	printf("  importer tid=%d depth=%d cut=%d module=%s\n", tid, 8, self->cut[8], self->name[8]);
}

python$target:::import-find-load-done
/self->ok && self->found == 0 && self->d > 7/
{
	printf("  importer tid=%d depth=%d cut=%d module=%s\n", tid, 7, self->cut[7], self->name[7]);
}

python$target:::import-find-load-done
/self->ok && self->found == 0 && self->d > 6/
{
	printf("  importer tid=%d depth=%d cut=%d module=%s\n", tid, 6, self->cut[6], self->name[6]);
}

python$target:::import-find-load-done
/self->ok && self->found == 0 && self->d > 5/
{
	printf("  importer tid=%d depth=%d cut=%d module=%s\n", tid, 5, self->cut[5], self->name[5]);
}

python$target:::import-find-load-done
/self->ok && self->found == 0 && self->d > 4/
{
	printf("  importer tid=%d depth=%d cut=%d module=%s\n", tid, 4, self->cut[4], self->name[4]);
}

python$target:::import-find-load-done
/self->ok && self->found == 0 && self->d > 3/
{
	printf("  importer tid=%d depth=%d cut=%d module=%s\n", tid, 3, self->cut[3], self->name[3]);
}

python$target:::import-find-load-done
/self->ok && self->found == 0 && self->d > 2/
{
	printf("  importer tid=%d depth=%d cut=%d module=%s\n", tid, 2, self->cut[2], self->name[2]);
}

python$target:::import-find-load-done
/self->ok && self->found == 0 && self->d > 1/
{
	printf("  importer tid=%d depth=%d cut=%d module=%s\n", tid, 1, self->cut[1], self->name[1]);
}

python$target:::import-find-load-done
/self->ok && self->found == 0 && self->d > 0/
{
	printf("  importer tid=%d depth=%d cut=%d module=%s\n", tid, 0, self->cut[0], self->name[0]);
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
