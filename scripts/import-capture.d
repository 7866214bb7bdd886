#!/usr/sbin/dtrace -s
/*
 * import-capture.d  DTrace twin of import-capture.bt (interim version, being rewritten).
 */
#pragma D option quiet
dtrace:::BEGIN { printf("# importprobe-capture v1\n"); }
python$target:::import-find-load-start { @s[tid, timestamp, pid, copyinstr(arg0)] = count(); }
python$target:::import-find-load-done { @d[tid, timestamp, pid, (int)arg1] = count(); }
dtrace:::END { printf("# end\n"); }
