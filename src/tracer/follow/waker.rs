//! Waking the follower's thread out of `waitpid(2)`.
//!
//! The follower blocks in `waitpid` for its tracees, and a request from
//! another thread (detach, kill) must end that wait. `waitpid` cannot watch
//! a file descriptor, and interrupting it with a signal would need a
//! process-wide handler installed by a library, racing with the check
//! before the call. Instead the follower keeps a *sentinel*: a child process
//! of its own thread that does nothing but read a pipe. Closing the pipe's
//! write end ([`Waker::wake`]) makes the sentinel exit, and its exit is a
//! report `waitpid` returns. It is level-triggered (a dead sentinel stays
//! reportable until reaped), so a wake-up between the follower's last look
//! at its requests and its `waitpid` is never lost, and no pid is ever
//! signalled, so a recycled pid cannot be hit.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Mutex;

/// The caller's side: the write end of the current sentinel's pipe.
#[derive(Debug, Default)]
pub struct Waker {
    pipe: Mutex<Option<OwnedFd>>,
}

impl Waker {
    /// Ends the current sentinel, if one is armed (a no-op otherwise: the
    /// follower is awake then, and looks at its requests before it sleeps).
    pub fn wake(&self) {
        let fd = self.pipe.lock().unwrap_or_else(|p| p.into_inner()).take();
        drop(fd);
    }
}

/// A running sentinel process, child of the thread that armed it.
#[derive(Debug)]
pub struct Sentinel {
    pub pid: u32,
}

/// Starts a sentinel and hands its pipe's write end to `waker`.
///
/// Must run on the follower's thread: the sentinel is that thread's child,
/// so only that thread's `waitpid` (with `__WNOTHREAD`) sees it end, and it
/// is killed if that thread dies (`PR_SET_PDEATHSIG`).
pub fn arm(waker: &Waker) -> io::Result<Sentinel> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into the array we own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 just created both descriptors; nothing else owns them.
    let (read_end, write_end) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let (r, w) = (read_end.as_raw_fd(), write_end.as_raw_fd());
    // SAFETY: fork in a multi-threaded process: the child calls only
    // async-signal-safe functions (sigprocmask, prctl, close, close_range,
    // read, _exit) and never returns into Rust code.
    let pid = unsafe { libc::fork() };
    if pid == -1 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        // SAFETY: see above; every call here is async-signal-safe.
        unsafe { sentinel_main(r, w) }
    }
    drop(read_end);
    *waker.pipe.lock().unwrap_or_else(|p| p.into_inner()) = Some(write_end);
    Ok(Sentinel { pid: pid as u32 })
}

/// The sentinel's whole life: block every signal it can (so the terminal's
/// Ctrl-C, meant for importprobe, does not run importprobe's handlers in
/// it), close every inherited descriptor but the pipe's read end (so it
/// holds no one else's pipe open), read until end of file, exit.
///
/// # Safety
/// Only in the child of `fork`, with `r` and `w` the pipe's two ends.
unsafe fn sentinel_main(r: libc::c_int, w: libc::c_int) -> ! {
    let mut all: libc::sigset_t = std::mem::zeroed();
    libc::sigfillset(&mut all);
    libc::sigprocmask(libc::SIG_SETMASK, &all, std::ptr::null_mut());
    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
    libc::close(w);
    let below = r == 0 || libc::syscall(libc::SYS_close_range, 0u32, (r - 1) as u32, 0u32) == 0;
    let above = libc::syscall(libc::SYS_close_range, (r + 1) as u32, u32::MAX, 0u32) == 0;
    if !(below && above) {
        // No close_range (Linux < 5.9): the usual descriptor range by hand.
        for fd in (0..1024).filter(|&fd| fd != r) {
            libc::close(fd);
        }
    }
    let mut byte = 0u8;
    loop {
        let n = libc::read(r, (&mut byte as *mut u8).cast(), 1);
        if n == 0 || (n < 0 && *libc::__errno_location() != libc::EINTR) {
            break;
        }
    }
    libc::_exit(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wake_ends_the_sentinel() {
        let waker = Waker::default();
        let sentinel = arm(&waker).unwrap();
        // It is alive and waiting.
        std::thread::sleep(std::time::Duration::from_millis(20));
        let state = std::fs::read_to_string(format!("/proc/{}/stat", sentinel.pid)).unwrap();
        assert!(!state.contains(") Z "), "{state}");
        waker.wake();
        let (pid, status) = super::super::ptrace::wait_for(sentinel.pid).unwrap();
        assert_eq!(pid, sentinel.pid);
        assert_eq!(status, super::super::ptrace::Status::Exited(0));
        waker.wake(); // nothing armed: harmless
    }
}
