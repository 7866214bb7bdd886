//! How processes and threads are named in every report that shows them
//! apart (a block per thread in `tree`, a track in `chrome`, a profile in
//! `speedscope`, a root frame in flame graphs).

use crate::events::forest::Forest;

/// `thread 4321 (main)` or `thread 4330`: the main thread is the one whose
/// id is the process id.
pub fn thread(pid: u32, tid: u32) -> String {
    if pid == tid {
        format!("thread {tid} (main)")
    } else {
        format!("thread {tid}")
    }
}

/// `pid 4321: python3 -c import json`, or `pid 4321` when the command is not
/// known. The command is escaped: it comes from the traced program.
pub fn process(forest: &Forest, pid: u32) -> String {
    if forest.is_laid_out() {
        // An -X importtime log has no pids: its one "process" is the log.
        return "-X importtime log".to_owned();
    }
    match forest.process(pid).map(|p| p.info.command.as_str()) {
        Some(cmd) if !cmd.is_empty() => format!("pid {pid}: {}", crate::events::escape(cmd)),
        _ => format!("pid {pid}"),
    }
}

/// Whether a forest has more than one thread (over all processes): then
/// formats without tracks of their own label each thread's stacks.
pub fn several(forest: &Forest) -> bool {
    forest.processes.iter().map(|p| p.threads.len()).sum::<usize>() > 1
}

/// `pid 4321 thread 4330`, one label for a thread of one of several
/// processes (a frame name in folded stacks and flame graphs).
pub fn frame(forest: &Forest, pid: u32, tid: u32) -> String {
    if forest.processes.len() > 1 {
        format!("pid {pid} {}", thread(pid, tid))
    } else {
        thread(pid, tid)
    }
}
