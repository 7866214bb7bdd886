/*
 * The import subset of CPython's `python` USDT provider (CPython:
 * Include/pydtrace.d). importprobe's simulator fires exactly these probes.
 *
 * On Linux the SystemTap SDT notes keep the double underscores
 * (`python:import__find__load__start`); DTrace spells them with dashes
 * (`python$target:::import-find-load-start`).
 *
 * Room is left for the rest of CPython's provider (function__entry/return,
 * line, gc__start/done, audit): importprobe does not fire those yet.
 */
provider python {
    probe import__find__load__start(char *);
    probe import__find__load__done(char *, int32_t);
};
