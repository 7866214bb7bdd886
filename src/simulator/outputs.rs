//! Where the simulator reports what it did: the ground-truth event log
//! (`--truth`) and CPython's `-X importtime` lines (`--importtime`).

use crate::events::{importtime, EventKind, ImportEvent, NameState};
use crate::workload::{ModId, Workload};
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

type Sink = Mutex<Box<dyn Write + Send>>;

/// The simulator's optional outputs; every method is cheap when unused.
pub struct Outputs {
    pid: u32,
    truth: Option<Sink>,
    importtime: Option<Sink>,
    header_written: AtomicBool,
    events: AtomicU64,
    error: Mutex<Option<std::io::Error>>,
}

impl Outputs {
    pub fn new(truth: Option<Box<dyn Write + Send>>, importtime: Option<Box<dyn Write + Send>>) -> Self {
        Outputs {
            pid: std::process::id(),
            truth: truth.map(Mutex::new),
            importtime: importtime.map(Mutex::new),
            header_written: AtomicBool::new(false),
            events: AtomicU64::new(0),
            error: Mutex::new(None),
        }
    }

    /// Records one fired probe in the ground truth.
    pub fn event(&self, ts_ns: u64, tid: u32, depth: u32, w: &Workload, m: ModId, found: Option<bool>) {
        self.events.fetch_add(1, Ordering::Relaxed);
        if let Some(sink) = &self.truth {
            let ev = ImportEvent {
                ts_ns,
                pid: self.pid,
                tid,
                depth,
                kind: if found.is_some() { EventKind::Done } else { EventKind::Start },
                module: w.name(m).into_owned(),
                found,
                name: NameState::Full,
            };
            let mut out = sink.lock().unwrap_or_else(|p| p.into_inner());
            let res =
                serde_json::to_writer(&mut *out, &ev).map_err(std::io::Error::from).and_then(|_| out.write_all(b"\n"));
            self.keep_error(res);
        }
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
        let line = importtime::line(self_ns.div_ceil(1000), cum_ns.div_ceil(1000), level as usize, &w.name(m));
        self.keep_error(res.and_then(|_| out.write_all(line.as_bytes())));
    }

    fn keep_error(&self, res: std::io::Result<()>) {
        if let Err(e) = res {
            self.error.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(e);
        }
    }

    /// Flushes both sinks; reports the first write error seen.
    pub fn finish(&self) -> std::io::Result<u64> {
        for sink in [&self.truth, &self.importtime].into_iter().flatten() {
            let res = sink.lock().unwrap_or_else(|p| p.into_inner()).flush();
            self.keep_error(res);
        }
        match self.error.lock().unwrap_or_else(|p| p.into_inner()).take() {
            Some(e) => Err(e),
            None => Ok(self.events.load(Ordering::Relaxed)),
        }
    }
}
