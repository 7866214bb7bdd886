//! The few ptrace(2) and wait(2) requests the follower makes, as safe
//! functions with `io::Error`s: the rest of the follower never touches
//! `libc` for them.
//!
//! Every request on a tracee must come from the thread that attached it;
//! these functions do not check that, the follower's single thread does.

use std::io;

/// `PTRACE_EVENT_STOP` (linux/ptrace.h; not in the libc crate for glibc):
/// the stop of a seized tracee that is not an event or a signal: a new
/// child's first stop, `PTRACE_INTERRUPT`, or a group-stop.
pub const EVENT_STOP: i32 = 128;

/// What `waitpid` reported for one task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Exited(i32),
    Signaled {
        signal: i32,
        core_dumped: bool,
    },
    /// A ptrace-stop: `event` is `PTRACE_EVENT_*` (0 for a
    /// signal-delivery-stop), `signal` is `WSTOPSIG`.
    Stopped {
        signal: i32,
        event: i32,
    },
}

impl Status {
    fn from_raw(status: i32) -> Status {
        if libc::WIFEXITED(status) {
            Status::Exited(libc::WEXITSTATUS(status))
        } else if libc::WIFSIGNALED(status) {
            Status::Signaled { signal: libc::WTERMSIG(status), core_dumped: libc::WCOREDUMP(status) }
        } else {
            Status::Stopped { signal: libc::WSTOPSIG(status), event: (status >> 16) & 0xffff }
        }
    }
}

fn check(rc: libc::c_long) -> io::Result<()> {
    if rc == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn request(req: libc::c_uint, tid: u32, addr: usize, data: usize) -> io::Result<()> {
    // SAFETY: none of the requests made through here (SEIZE, CONT, LISTEN,
    // INTERRUPT, DETACH) read or write our memory: addr and data are
    // integers (options, a signal number) or 0.
    check(unsafe { libc::ptrace(req, tid as libc::pid_t, addr as *mut libc::c_void, data as *mut libc::c_void) })
}

/// Attaches without stopping the task, with these `PTRACE_O_*` options.
pub fn seize(tid: u32, options: i32) -> io::Result<()> {
    request(libc::PTRACE_SEIZE, tid, 0, options as usize)
}

/// Restarts a stopped tracee, delivering `signal` (0 for none).
pub fn cont(tid: u32, signal: i32) -> io::Result<()> {
    request(libc::PTRACE_CONT, tid, 0, signal as usize)
}

/// Leaves a tracee in group-stop stopped, but tells us when it ends.
pub fn listen(tid: u32) -> io::Result<()> {
    request(libc::PTRACE_LISTEN, tid, 0, 0)
}

/// Makes a running seized tracee stop (`PTRACE_EVENT_STOP`).
pub fn interrupt(tid: u32) -> io::Result<()> {
    request(libc::PTRACE_INTERRUPT, tid, 0, 0)
}

/// Lets a stopped tracee go, delivering `signal` (0 for none).
pub fn detach(tid: u32, signal: i32) -> io::Result<()> {
    request(libc::PTRACE_DETACH, tid, 0, signal as usize)
}

/// The event's message: the new task's id after a fork/clone event, the
/// former thread id after an exec event, the wait status after an exit event.
pub fn event_message(tid: u32) -> io::Result<u64> {
    let mut msg: libc::c_ulong = 0;
    // SAFETY: GETEVENTMSG writes one unsigned long into `msg`, which we own.
    check(unsafe { libc::ptrace(libc::PTRACE_GETEVENTMSG, tid as libc::pid_t, 0, &mut msg as *mut libc::c_ulong) })?;
    Ok(msg as u64)
}

/// Waits for the next report from a tracee or child of the calling thread
/// only (`__WNOTHREAD`), threads included (`__WALL`): children of other
/// threads, such as the bpftrace the caller runs, are never reaped here.
pub fn wait_any() -> io::Result<(u32, Status)> {
    wait(-1)
}

/// The next report if one is there already (`WNOHANG`), like [`wait_any`].
pub fn try_wait_any() -> io::Result<Option<(u32, Status)>> {
    let mut status = 0;
    // SAFETY: waitpid writes the status into the integer we own.
    let pid = unsafe { libc::waitpid(-1, &mut status, libc::__WALL | libc::__WNOTHREAD | libc::WNOHANG) };
    match pid {
        0 => Ok(None),
        p if p > 0 => Ok(Some((p as u32, Status::from_raw(status)))),
        _ => Err(io::Error::last_os_error()),
    }
}

/// Waits for the next report from one task.
pub fn wait_for(tid: u32) -> io::Result<(u32, Status)> {
    wait(tid as libc::pid_t)
}

fn wait(which: libc::pid_t) -> io::Result<(u32, Status)> {
    loop {
        let mut status = 0;
        // SAFETY: waitpid writes the status into the integer we own.
        let pid = unsafe { libc::waitpid(which, &mut status, libc::__WALL | libc::__WNOTHREAD) };
        if pid > 0 {
            return Ok((pid as u32, Status::from_raw(status)));
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// True for the signals whose default action is a group-stop.
pub fn is_stop_signal(signal: i32) -> bool {
    matches!(signal, libc::SIGSTOP | libc::SIGTSTP | libc::SIGTTIN | libc::SIGTTOU)
}

/// Sends `signal` to a whole process (`kill(2)`).
pub fn kill(pid: u32, signal: i32) -> io::Result<()> {
    // SAFETY: kill(2) has no memory-safety preconditions.
    check(unsafe { libc::kill(pid as libc::pid_t, signal) } as libc::c_long)
}

/// The calling thread's id.
pub fn gettid() -> u32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() as u32 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_wait_statuses() {
        assert_eq!(Status::from_raw(3 << 8), Status::Exited(3));
        assert_eq!(Status::from_raw(libc::SIGKILL), Status::Signaled { signal: libc::SIGKILL, core_dumped: false });
        assert_eq!(
            Status::from_raw(0x80 | libc::SIGSEGV),
            Status::Signaled { signal: libc::SIGSEGV, core_dumped: true }
        );
        // A fork event: SIGTRAP | PTRACE_EVENT_FORK << 8, in the stop format.
        let raw = ((libc::SIGTRAP | (libc::PTRACE_EVENT_FORK << 8)) << 8) | 0x7f;
        assert_eq!(Status::from_raw(raw), Status::Stopped { signal: libc::SIGTRAP, event: libc::PTRACE_EVENT_FORK });
        let group_stop = ((libc::SIGTSTP | (EVENT_STOP << 8)) << 8) | 0x7f;
        assert_eq!(Status::from_raw(group_stop), Status::Stopped { signal: libc::SIGTSTP, event: EVENT_STOP });
    }

    #[test]
    fn stop_signals() {
        assert!(is_stop_signal(libc::SIGTSTP) && is_stop_signal(libc::SIGSTOP));
        assert!(!is_stop_signal(libc::SIGCONT) && !is_stop_signal(libc::SIGTRAP));
    }
}
