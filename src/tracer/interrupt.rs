//! Ctrl-C while tracing: forward SIGINT (and SIGTERM) to bpftrace only, so it
//! detaches, runs its END block and prints the report so far. The traced
//! program is left alone (a `--pid` target keeps running).
//!
//! bpftrace runs in its own process group, so a terminal's Ctrl-C reaches it
//! once, through us, and never twice.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

static TRACER_PID: AtomicI32 = AtomicI32::new(0);
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn forward(sig: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
    let pid = TRACER_PID.load(Ordering::SeqCst);
    if pid > 0 {
        // SAFETY: kill(2) is async-signal-safe.
        unsafe { libc::kill(pid, sig) };
    }
}

/// While alive, SIGINT and SIGTERM to this process go to the tracer instead.
/// Dropping it restores the previous handlers.
pub struct ForwardSignals {
    old: Vec<(libc::c_int, libc::sigaction)>,
}

impl ForwardSignals {
    /// Starts forwarding to `pid`.
    pub fn to(pid: u32) -> std::io::Result<Self> {
        TRACER_PID.store(pid as i32, Ordering::SeqCst);
        INTERRUPTED.store(false, Ordering::SeqCst);
        let mut old = Vec::new();
        for sig in [libc::SIGINT, libc::SIGTERM] {
            // SAFETY: installing a handler that only touches atomics and kill(2).
            unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = forward as extern "C" fn(libc::c_int) as usize;
                action.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&mut action.sa_mask);
                let mut previous: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(sig, &action, &mut previous) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                old.push((sig, previous));
            }
        }
        Ok(ForwardSignals { old })
    }

    /// Whether a signal arrived (and was forwarded) since [`ForwardSignals::to`].
    pub fn interrupted(&self) -> bool {
        INTERRUPTED.load(Ordering::SeqCst)
    }
}

impl Drop for ForwardSignals {
    fn drop(&mut self) {
        TRACER_PID.store(0, Ordering::SeqCst);
        for (sig, previous) in &self.old {
            // SAFETY: restoring the handler saved above.
            unsafe { libc::sigaction(*sig, previous, std::ptr::null_mut()) };
        }
    }
}
