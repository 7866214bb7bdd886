//! The clock and thread ids the probes are stamped with.
//!
//! CLOCK_MONOTONIC is what bpftrace's `nsecs` and DTrace's `timestamp` read
//! on Linux, so ground truth and tracer output share one time line.

/// Nanoseconds on CLOCK_MONOTONIC.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The kernel thread id (what bpftrace's `tid` reports).
#[cfg(target_os = "linux")]
pub fn current_tid() -> u32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() as u32 }
}

/// A per-thread number on systems without `gettid`.
#[cfg(not(target_os = "linux"))]
pub fn current_tid() -> u32 {
    // SAFETY: pthread_self has no preconditions.
    unsafe { libc::pthread_self() as usize as u32 }
}
