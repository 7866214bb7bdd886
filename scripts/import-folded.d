#!/usr/sbin/dtrace -s
/*
 * import-folded.d  DTrace twin of import-folded.bt: folded import stacks weighted by self time (32 frames: D has no loops).
 *
 * Same output format (the printf format strings are identical, checked by
 * tests/dtrace_twins.rs); see import-folded.bt for what the columns mean. Uses
 * CPython's DTrace conventions: python$target:::import-find-load-start,
 * copyinstr(arg0), self-> thread-locals.
 *
 * USAGE (DTrace finds the provider through $target, so $1 is ignored; it is
 * kept so both twins take the same arguments):
 *   simulator:   importprobe run --workload demo --wait-for-tracer
 *                dtrace -q -s import-folded.d -p PID
 *   new python:  dtrace -q -s import-folded.d -c 'python3.11 -S prog.py'
 *   running pid: dtrace -q -s import-folded.d -p PID
 * Names longer than strsize (1024 here) are cut and flagged (cut=1).
 * Not run here (no DTrace on this Linux host); the .bt twin is tested.
 */

#pragma D option quiet
#pragma D option defaultargs
#pragma D option strsize=1024
#pragma D option dynvarsize=16m

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
/self->ok && self->d > 0 && self->cut[0]/
{
	printf("%s(cut);", self->name[0]);
}

python$target:::import-find-load-done
/self->ok && self->d > 0 && !self->cut[0]/
{
	printf("%s;", self->name[0]);
}

python$target:::import-find-load-done
/self->ok && self->d > 1 && self->cut[1]/
{
	printf("%s(cut);", self->name[1]);
}

python$target:::import-find-load-done
/self->ok && self->d > 1 && !self->cut[1]/
{
	printf("%s;", self->name[1]);
}

python$target:::import-find-load-done
/self->ok && self->d > 2 && self->cut[2]/
{
	printf("%s(cut);", self->name[2]);
}

python$target:::import-find-load-done
/self->ok && self->d > 2 && !self->cut[2]/
{
	printf("%s;", self->name[2]);
}

python$target:::import-find-load-done
/self->ok && self->d > 3 && self->cut[3]/
{
	printf("%s(cut);", self->name[3]);
}

python$target:::import-find-load-done
/self->ok && self->d > 3 && !self->cut[3]/
{
	printf("%s;", self->name[3]);
}

python$target:::import-find-load-done
/self->ok && self->d > 4 && self->cut[4]/
{
	printf("%s(cut);", self->name[4]);
}

python$target:::import-find-load-done
/self->ok && self->d > 4 && !self->cut[4]/
{
	printf("%s;", self->name[4]);
}

python$target:::import-find-load-done
/self->ok && self->d > 5 && self->cut[5]/
{
	printf("%s(cut);", self->name[5]);
}

python$target:::import-find-load-done
/self->ok && self->d > 5 && !self->cut[5]/
{
	printf("%s;", self->name[5]);
}

python$target:::import-find-load-done
/self->ok && self->d > 6 && self->cut[6]/
{
	printf("%s(cut);", self->name[6]);
}

python$target:::import-find-load-done
/self->ok && self->d > 6 && !self->cut[6]/
{
	printf("%s;", self->name[6]);
}

python$target:::import-find-load-done
/self->ok && self->d > 7 && self->cut[7]/
{
	printf("%s(cut);", self->name[7]);
}

python$target:::import-find-load-done
/self->ok && self->d > 7 && !self->cut[7]/
{
	printf("%s;", self->name[7]);
}

python$target:::import-find-load-done
/self->ok && self->d > 8 && self->cut[8]/
{
	printf("%s(cut);", self->name[8]);
}

python$target:::import-find-load-done
/self->ok && self->d > 8 && !self->cut[8]/
{
	printf("%s;", self->name[8]);
}

python$target:::import-find-load-done
/self->ok && self->d > 9 && self->cut[9]/
{
	printf("%s(cut);", self->name[9]);
}

python$target:::import-find-load-done
/self->ok && self->d > 9 && !self->cut[9]/
{
	printf("%s;", self->name[9]);
}

python$target:::import-find-load-done
/self->ok && self->d > 10 && self->cut[10]/
{
	printf("%s(cut);", self->name[10]);
}

python$target:::import-find-load-done
/self->ok && self->d > 10 && !self->cut[10]/
{
	printf("%s;", self->name[10]);
}

python$target:::import-find-load-done
/self->ok && self->d > 11 && self->cut[11]/
{
	printf("%s(cut);", self->name[11]);
}

python$target:::import-find-load-done
/self->ok && self->d > 11 && !self->cut[11]/
{
	printf("%s;", self->name[11]);
}

python$target:::import-find-load-done
/self->ok && self->d > 12 && self->cut[12]/
{
	printf("%s(cut);", self->name[12]);
}

python$target:::import-find-load-done
/self->ok && self->d > 12 && !self->cut[12]/
{
	printf("%s;", self->name[12]);
}

python$target:::import-find-load-done
/self->ok && self->d > 13 && self->cut[13]/
{
	printf("%s(cut);", self->name[13]);
}

python$target:::import-find-load-done
/self->ok && self->d > 13 && !self->cut[13]/
{
	printf("%s;", self->name[13]);
}

python$target:::import-find-load-done
/self->ok && self->d > 14 && self->cut[14]/
{
	printf("%s(cut);", self->name[14]);
}

python$target:::import-find-load-done
/self->ok && self->d > 14 && !self->cut[14]/
{
	printf("%s;", self->name[14]);
}

python$target:::import-find-load-done
/self->ok && self->d > 15 && self->cut[15]/
{
	printf("%s(cut);", self->name[15]);
}

python$target:::import-find-load-done
/self->ok && self->d > 15 && !self->cut[15]/
{
	printf("%s;", self->name[15]);
}

python$target:::import-find-load-done
/self->ok && self->d > 16 && self->cut[16]/
{
	printf("%s(cut);", self->name[16]);
}

python$target:::import-find-load-done
/self->ok && self->d > 16 && !self->cut[16]/
{
	printf("%s;", self->name[16]);
}

python$target:::import-find-load-done
/self->ok && self->d > 17 && self->cut[17]/
{
	printf("%s(cut);", self->name[17]);
}

python$target:::import-find-load-done
/self->ok && self->d > 17 && !self->cut[17]/
{
	printf("%s;", self->name[17]);
}

python$target:::import-find-load-done
/self->ok && self->d > 18 && self->cut[18]/
{
	printf("%s(cut);", self->name[18]);
}

python$target:::import-find-load-done
/self->ok && self->d > 18 && !self->cut[18]/
{
	printf("%s;", self->name[18]);
}

python$target:::import-find-load-done
/self->ok && self->d > 19 && self->cut[19]/
{
	printf("%s(cut);", self->name[19]);
}

python$target:::import-find-load-done
/self->ok && self->d > 19 && !self->cut[19]/
{
	printf("%s;", self->name[19]);
}

python$target:::import-find-load-done
/self->ok && self->d > 20 && self->cut[20]/
{
	printf("%s(cut);", self->name[20]);
}

python$target:::import-find-load-done
/self->ok && self->d > 20 && !self->cut[20]/
{
	printf("%s;", self->name[20]);
}

python$target:::import-find-load-done
/self->ok && self->d > 21 && self->cut[21]/
{
	printf("%s(cut);", self->name[21]);
}

python$target:::import-find-load-done
/self->ok && self->d > 21 && !self->cut[21]/
{
	printf("%s;", self->name[21]);
}

python$target:::import-find-load-done
/self->ok && self->d > 22 && self->cut[22]/
{
	printf("%s(cut);", self->name[22]);
}

python$target:::import-find-load-done
/self->ok && self->d > 22 && !self->cut[22]/
{
	printf("%s;", self->name[22]);
}

python$target:::import-find-load-done
/self->ok && self->d > 23 && self->cut[23]/
{
	printf("%s(cut);", self->name[23]);
}

python$target:::import-find-load-done
/self->ok && self->d > 23 && !self->cut[23]/
{
	printf("%s;", self->name[23]);
}

python$target:::import-find-load-done
/self->ok && self->d > 24 && self->cut[24]/
{
	printf("%s(cut);", self->name[24]);
}

python$target:::import-find-load-done
/self->ok && self->d > 24 && !self->cut[24]/
{
	printf("%s;", self->name[24]);
}

python$target:::import-find-load-done
/self->ok && self->d > 25 && self->cut[25]/
{
	printf("%s(cut);", self->name[25]);
}

python$target:::import-find-load-done
/self->ok && self->d > 25 && !self->cut[25]/
{
	printf("%s;", self->name[25]);
}

python$target:::import-find-load-done
/self->ok && self->d > 26 && self->cut[26]/
{
	printf("%s(cut);", self->name[26]);
}

python$target:::import-find-load-done
/self->ok && self->d > 26 && !self->cut[26]/
{
	printf("%s;", self->name[26]);
}

python$target:::import-find-load-done
/self->ok && self->d > 27 && self->cut[27]/
{
	printf("%s(cut);", self->name[27]);
}

python$target:::import-find-load-done
/self->ok && self->d > 27 && !self->cut[27]/
{
	printf("%s;", self->name[27]);
}

python$target:::import-find-load-done
/self->ok && self->d > 28 && self->cut[28]/
{
	printf("%s(cut);", self->name[28]);
}

python$target:::import-find-load-done
/self->ok && self->d > 28 && !self->cut[28]/
{
	printf("%s;", self->name[28]);
}

python$target:::import-find-load-done
/self->ok && self->d > 29 && self->cut[29]/
{
	printf("%s(cut);", self->name[29]);
}

python$target:::import-find-load-done
/self->ok && self->d > 29 && !self->cut[29]/
{
	printf("%s;", self->name[29]);
}

python$target:::import-find-load-done
/self->ok && self->d > 30 && self->cut[30]/
{
	printf("%s(cut);", self->name[30]);
}

python$target:::import-find-load-done
/self->ok && self->d > 30 && !self->cut[30]/
{
	printf("%s;", self->name[30]);
}

python$target:::import-find-load-done
/self->ok && self->d > 31 && self->cut[31]/
{
	printf("%s(cut);", self->name[31]);
}

python$target:::import-find-load-done
/self->ok && self->d > 31 && !self->cut[31]/
{
	printf("%s;", self->name[31]);
}

python$target:::import-find-load-done
/self->ok && self->c/
{
	printf("%s(cut) %llu\n", self->n, (self->own + 500) / 1000);
}

python$target:::import-find-load-done
/self->ok && !self->c/
{
	printf("%s %llu\n", self->n, (self->own + 500) / 1000);
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
