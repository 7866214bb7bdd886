//! Where the simulator reports what it did: the ground-truth event log
//! (`--truth`) and CPython's `-X importtime` lines (`--importtime`).
//!
//! One `Outputs` serves a process and, through `fork()`, its forked
//! children: [`Outputs::flush`] before a fork leaves nothing buffered to be
//! written twice, and [`Outputs::after_fork`] makes the child stamp its own
//! pid. The ground truth of a process tree goes into one file: every process
//! first writes a `{"process": ...}` line ([`Outputs::process`]), then its
//! events; see [`super::whole_lines`] for why lines never mix.

use crate::events::{importtime, truth::TruthLine, EventKind, ImportEvent, NameState, ProcessInfo};
use crate::workload::{ModId, Workload};
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

type Sink = Mutex<Box<dyn Write + Send>>;

/// What `-X importtime` prints for a NULL name: CPython passes NULL to
/// `fprintf("%s")`, which glibc prints like this.
pub const NULL_NAME: &str = "(null)";

/// The simulator's optional outputs; every method is cheap when unused.
pub struct Outputs {
    pid: AtomicU32,
    truth: Option<Sink>,
    importtime: Option<Sink>,
    header_written: AtomicBool,
    events: AtomicU64,
    error: Mutex<Option<std::io::Error>>,
}

impl Outputs {
    pub fn new(truth: Option<Box<dyn Write + Send>>, importtime: Option<Box<dyn Write + Send>>) -> Self {
        Outputs {
            pid: AtomicU32::new(std::process::id()),
            truth: truth.map(Mutex::new),
            importtime: importtime.map(Mutex::new),
            header_written: AtomicBool::new(false),
            events: AtomicU64::new(0),
            error: Mutex::new(None),
        }
    }

    /// Whether anything is written that needs the probes' timestamps: if
    /// not, the simulator skips reading the clock (a third of an untraced
    /// pair's cost).
    pub fn timed(&self) -> bool {
        self.truth.is_some() || self.importtime.is_some()
    }

    /// The pid events are stamped with.
    pub fn pid(&self) -> u32 {
        self.pid.load(Ordering::Relaxed)
    }

    /// Records one fired probe in the ground truth. A NULL name is recorded
    /// as the probes saw it: an empty module, `name: missing`.
    pub fn event(&self, ts_ns: u64, tid: u32, depth: u32, w: &Workload, m: ModId, found: Option<bool>) {
        self.events.fetch_add(1, Ordering::Relaxed);
        if self.truth.is_some() {
            let null = w.module(m).probe_name.is_null();
            let ev = ImportEvent {
                ts_ns,
                pid: self.pid(),
                tid,
                depth,
                kind: if found.is_some() { EventKind::Done } else { EventKind::Start },
                module: if null { String::new() } else { w.name(m).into_owned() },
                found,
                name: if null { NameState::Missing } else { NameState::Full },
            };
            self.truth_line(&ev);
        }
    }

    /// Records a process of the tree in the ground truth.
    pub fn process(&self, info: ProcessInfo) {
        self.truth_line(&TruthLine::Process { process: info });
    }

    fn truth_line(&self, value: &impl serde::Serialize) {
        let Some(sink) = &self.truth else { return };
        let mut line = serde_json::to_vec(value).expect("truth lines serialise");
        line.push(b'\n');
        let res = sink.lock().unwrap_or_else(|p| p.into_inner()).write_all(&line);
        self.keep_error(res);
    }

    /// Writes one `-X importtime` line, in CPython's exact format: self and
    /// cumulative microseconds rounded up, two spaces of indent per level.
    /// (CPython 3.11 shares the level between threads; we keep it per thread.)
    pub fn importtime(&self, level: u32, self_ns: u64, cum_ns: u64, w: &Workload, m: ModId) {
        let Some(sink) = &self.importtime else { return };
        let mut out = sink.lock().unwrap_or_else(|p| p.into_inner());
        let mut res = Ok(());
        if !self.header_written.swap(true, Ordering::Relaxed) {
            res = out.write_all(importtime::HEADER.as_bytes());
        }
        let name = if w.module(m).probe_name.is_null() { NULL_NAME.into() } else { w.name(m) };
        let line = importtime::line(self_ns.div_ceil(1000), cum_ns.div_ceil(1000), level as usize, &name);
        self.keep_error(res.and_then(|_| out.write_all(line.as_bytes())));
    }

    fn keep_error(&self, res: std::io::Result<()>) {
        if let Err(e) = res {
            self.error.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(e);
        }
    }

    /// Writes out everything buffered (before a fork, so the child does not
    /// write the parent's lines a second time).
    pub fn flush(&self) {
        for sink in [&self.truth, &self.importtime].into_iter().flatten() {
            let res = sink.lock().unwrap_or_else(|p| p.into_inner()).flush();
            self.keep_error(res);
        }
    }

    /// In a freshly forked child: stamp the child's pid from now on, and
    /// count only its own events.
    pub fn after_fork(&self) {
        self.pid.store(std::process::id(), Ordering::Relaxed);
        self.events.store(0, Ordering::Relaxed);
    }

    /// Flushes both sinks; reports the first write error seen, else the
    /// number of probe firings of this process.
    pub fn finish(&self) -> std::io::Result<u64> {
        self.flush();
        match self.error.lock().unwrap_or_else(|p| p.into_inner()).take() {
            Some(e) => Err(e),
            None => Ok(self.events.load(Ordering::Relaxed)),
        }
    }
}

/// An in-memory output, for reading a run's ground truth or `-X importtime`
/// lines back in the same process (tests, benchmarks): give
/// `Outputs::new` a clone, then [`MemorySink::contents`].
#[derive(Clone, Default)]
pub struct MemorySink(Arc<Mutex<Vec<u8>>>);

impl MemorySink {
    /// Everything written so far.
    pub fn contents(&self) -> Vec<u8> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Write for MemorySink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
