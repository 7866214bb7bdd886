//! Raising and lowering the import probes' USDT semaphores in a process
//! that importprobe follows.
//!
//! A semaphore is a 2-byte counter beside a probe: CPython evaluates the
//! probe's arguments and reaches its trap only while the counter is not
//! zero. A tracer raises it when it attaches, but not always everywhere:
//! the kernel raises it in every mapping, new ones included, for uprobes
//! registered with a `ref_ctr_offset` (Linux 4.20+; bpftrace 0.24+ insists
//! on it, 0.17 and 0.23 use it when the kernel has it), while a tracer that
//! writes the counters itself (bpftrace before 0.24 on an older kernel,
//! with `-p` or `--usdt-file-activation`) raises them only in the processes
//! it finds at start-up. A program that execs gets a fresh image whose
//! counters are 0, so the follower can add one to each counter while it
//! holds the new image stopped, and take exactly that one away again when
//! it leaves a process running.
//!
//! Being a counter, our increment composes with the kernel's and with other
//! tracers': nobody's probe is switched off behind their back. The
//! read-modify-write through `/proc/PID/mem` is not atomic, which is safe
//! because the process itself never writes its semaphores and the kernel
//! writes them only while a uprobe is registered or unregistered; callers
//! raise while the tracer is steady (not starting or stopping).

use super::process::ProbeInProcess;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Why a semaphore could not be changed.
#[derive(Debug, Error)]
pub enum SemaphoreError {
    #[error("pid {pid}: cannot open its memory: {source}")]
    Open { pid: u32, source: std::io::Error },
    #[error("pid {pid}: cannot read the semaphore at {address:#x} in {}: {source}", object.display())]
    Read { pid: u32, object: PathBuf, address: u64, source: std::io::Error },
    #[error("pid {pid}: cannot write the semaphore at {address:#x} in {}: {source}", object.display())]
    Write { pid: u32, object: PathBuf, address: u64, source: std::io::Error },
    #[error("pid {pid}: the semaphore at {address:#x} in {} is already at its maximum", object.display())]
    Overflow { pid: u32, object: PathBuf, address: u64 },
    #[error("pid {pid}: the semaphore at {address:#x} in {} is 0 already: someone else lowered ours", object.display())]
    Underflow { pid: u32, object: PathBuf, address: u64 },
}

/// One counter we incremented.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Counter {
    object: PathBuf,
    address: u64,
}

/// The semaphores importprobe raised in one process: what [`lower`] takes
/// back. A forked child inherits them (its memory is a copy), an exec
/// discards them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Raised {
    counters: Vec<Counter>,
}

impl Raised {
    /// True when nothing was raised (no semaphore-guarded probe mapped).
    pub fn is_empty(&self) -> bool {
        self.counters.is_empty()
    }

    /// The objects whose semaphores were raised, each once.
    pub fn objects(&self) -> Vec<&Path> {
        let mut objects: Vec<&Path> = Vec::new();
        for c in &self.counters {
            if !objects.contains(&c.object.as_path()) {
                objects.push(&c.object);
            }
        }
        objects
    }
}

/// A process's memory, opened once for a few 2-byte accesses.
struct Memory {
    pid: u32,
    file: File,
}

impl Memory {
    fn open(pid: u32) -> Result<Memory, SemaphoreError> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(format!("/proc/{pid}/mem"))
            .map_err(|source| SemaphoreError::Open { pid, source })?;
        Ok(Memory { pid, file })
    }

    fn read(&self, c: &Counter) -> Result<u16, SemaphoreError> {
        let mut buf = [0u8; 2];
        self.file.read_exact_at(&mut buf, c.address).map_err(|source| SemaphoreError::Read {
            pid: self.pid,
            object: c.object.clone(),
            address: c.address,
            source,
        })?;
        Ok(u16::from_ne_bytes(buf))
    }

    fn write(&self, c: &Counter, value: u16) -> Result<(), SemaphoreError> {
        self.file.write_all_at(&value.to_ne_bytes(), c.address).map_err(|source| SemaphoreError::Write {
            pid: self.pid,
            object: c.object.clone(),
            address: c.address,
            source,
        })
    }

    /// Adds `delta` (+1 or -1) to a counter, refusing to wrap.
    fn add(&self, c: &Counter, delta: i32) -> Result<(), SemaphoreError> {
        let value = self.read(c)?;
        let Ok(new) = u16::try_from(i32::from(value) + delta) else {
            let (pid, object, address) = (self.pid, c.object.clone(), c.address);
            return Err(if delta > 0 {
                SemaphoreError::Overflow { pid, object, address }
            } else {
                SemaphoreError::Underflow { pid, object, address }
            });
        };
        self.write(c, new)
    }
}

/// Adds one to the semaphore of each of these probes in process `pid`
/// (each distinct counter once), all or nothing: if one fails, those
/// already raised are lowered again.
pub fn raise(pid: u32, probes: &[ProbeInProcess]) -> Result<Raised, SemaphoreError> {
    let mut counters: Vec<Counter> = Vec::new();
    for p in probes {
        if let Some(address) = p.semaphore {
            let c = Counter { object: p.object.clone(), address };
            if !counters.contains(&c) {
                counters.push(c);
            }
        }
    }
    if counters.is_empty() {
        return Ok(Raised::default());
    }
    let mem = Memory::open(pid)?;
    for (i, c) in counters.iter().enumerate() {
        if let Err(e) = mem.add(c, 1) {
            for done in &counters[..i] {
                let _ = mem.add(done, -1);
            }
            return Err(e);
        }
    }
    tracing::debug!(pid, count = counters.len(), "raised import probe semaphores");
    Ok(Raised { counters })
}

/// Takes back what [`raise`] added in process `pid` (or in a forked copy
/// of it). Lowers every counter it can and returns the first error.
pub fn lower(pid: u32, raised: &Raised) -> Result<(), SemaphoreError> {
    if raised.is_empty() {
        return Ok(());
    }
    let mem = Memory::open(pid)?;
    let mut first = Ok(());
    for c in &raised.counters {
        if let Err(e) = mem.add(c, -1) {
            if first.is_ok() {
                first = Err(e);
            }
        }
    }
    first
}

/// The current value of each semaphore of these probes in process `pid`
/// (`None` for a probe without one), for checks and tests.
pub fn values(pid: u32, probes: &[ProbeInProcess]) -> Result<Vec<Option<u16>>, SemaphoreError> {
    let mem = Memory::open(pid)?;
    probes
        .iter()
        .map(|p| p.semaphore.map(|address| mem.read(&Counter { object: p.object.clone(), address })).transpose())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tracer::process::IMPORT_PROBES;

    /// A probe whose "semaphore" is a counter in this very process.
    fn probe_at(address: u64) -> ProbeInProcess {
        ProbeInProcess {
            probe: IMPORT_PROBES[0].to_owned(),
            object: PathBuf::from("/test"),
            semaphore: Some(address),
            sites: Vec::new(),
        }
    }

    #[test]
    fn raises_and_lowers_a_counter_once_per_address() {
        let counter = Box::new(std::sync::atomic::AtomicU16::new(0));
        let address = counter.as_ptr() as u64;
        let me = std::process::id();
        let probes = [probe_at(address), probe_at(address)];
        let raised = raise(me, &probes).unwrap();
        assert_eq!(counter.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(raised.objects(), [Path::new("/test")]);
        assert_eq!(values(me, &probes[..1]).unwrap(), [Some(1)]);
        lower(me, &raised).unwrap();
        assert_eq!(counter.load(std::sync::atomic::Ordering::SeqCst), 0);
        assert!(matches!(lower(me, &raised), Err(SemaphoreError::Underflow { .. })));
    }

    #[test]
    fn never_wraps_and_raises_all_or_nothing() {
        let counters = Box::new([std::sync::atomic::AtomicU16::new(7), std::sync::atomic::AtomicU16::new(u16::MAX)]);
        let me = std::process::id();
        let probes = [probe_at(counters[0].as_ptr() as u64), probe_at(counters[1].as_ptr() as u64)];
        assert!(matches!(raise(me, &probes), Err(SemaphoreError::Overflow { .. })));
        assert_eq!(counters[0].load(std::sync::atomic::Ordering::SeqCst), 7, "rolled back");
        assert_eq!(counters[1].load(std::sync::atomic::Ordering::SeqCst), u16::MAX);
    }

    #[test]
    fn nothing_to_raise_without_semaphores() {
        let mut p = probe_at(0);
        p.semaphore = None;
        assert!(raise(u32::MAX - 1, &[p]).unwrap().is_empty());
        assert!(matches!(raise(u32::MAX - 1, &[probe_at(8)]), Err(SemaphoreError::Open { .. })));
    }

    #[test]
    fn raises_pythons_own_semaphores() {
        let Some(python) = crate::testing::IdlePython::start() else { return };
        let (pid, probes) = (python.pid(), &python.probes);
        assert_eq!(values(pid, probes).unwrap(), [Some(0), Some(0)]);
        let raised = raise(pid, probes).unwrap();
        assert_eq!(values(pid, probes).unwrap(), [Some(1), Some(1)]);
        assert_eq!(raised.objects(), [python.path.as_path()]);
        lower(pid, &raised).unwrap();
        assert_eq!(values(pid, probes).unwrap(), [Some(0), Some(0)]);
    }
}
