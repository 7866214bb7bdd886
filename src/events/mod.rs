//! The event model every part of importprobe agrees on.
//!
//! One fired import probe is an [`ImportEvent`]. Every source of events
//! (a tracer's `import-events` stream or `import-capture` dump, the
//! simulator's ground truth, a CPython `-X importtime` log) is read into a
//! [`Recording`]; [`forest::Forest::build`] pairs a recording's events into
//! the per-process, per-thread import forest that every report, diff, gate
//! and replay works on. Pairing happens there and nowhere else.

pub mod blind_spots;
pub mod capture;
pub mod compare;
pub mod cursor;
pub mod forest;
pub mod importtime;
pub mod source;
pub mod stream;
pub mod tamper;
pub mod tolerance;
pub mod truth;

use serde::{Deserialize, Serialize};

/// Which probe fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// `import__find__load__start`
    Start,
    /// `import__find__load__done`
    Done,
    /// Not a probe: CPython 3.14's `-X importtime=2` line for an import of a
    /// module that was already loaded (`import time: cached | cached | NAME`).
    Cached,
}

/// How much of the module name the tracer could read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NameState {
    /// The whole name.
    #[default]
    Full,
    /// Cut at the tracer's string limit: `module` is only a prefix, and two
    /// imports with equal cut names may be different modules.
    Cut,
    /// The probe received a NULL pointer: CPython could not encode the name
    /// as UTF-8 (`__import__('a\udcff')`); `module` is empty.
    Missing,
}

impl NameState {
    pub fn is_full(&self) -> bool {
        *self == NameState::Full
    }

    /// The scripts' name flag: 0 full, 1 cut, 2 missing.
    pub fn from_flag(flag: u8) -> Option<NameState> {
        match flag {
            0 => Some(NameState::Full),
            1 => Some(NameState::Cut),
            2 => Some(NameState::Missing),
            _ => None,
        }
    }

    pub fn flag(self) -> u8 {
        match self {
            NameState::Full => 0,
            NameState::Cut => 1,
            NameState::Missing => 2,
        }
    }
}

/// One probe firing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportEvent {
    /// CLOCK_MONOTONIC nanoseconds (bpftrace's `nsecs`, DTrace's `timestamp`).
    pub ts_ns: u64,
    pub pid: u32,
    pub tid: u32,
    /// Open import pairs on this thread when the event fired (a start at
    /// depth d is closed by the done at depth d).
    pub depth: u32,
    #[serde(rename = "event")]
    pub kind: EventKind,
    pub module: String,
    /// The done probe's `found` argument; `None` for start events.
    pub found: Option<bool>,
    #[serde(default, skip_serializing_if = "NameState::is_full")]
    pub name: NameState,
}

impl ImportEvent {
    /// A start event with a full name.
    pub fn start(ts_ns: u64, pid: u32, tid: u32, depth: u32, module: impl Into<String>) -> Self {
        ImportEvent {
            ts_ns,
            pid,
            tid,
            depth,
            kind: EventKind::Start,
            module: module.into(),
            found: None,
            name: NameState::Full,
        }
    }

    /// A done event with a full name.
    pub fn done(ts_ns: u64, pid: u32, tid: u32, depth: u32, module: impl Into<String>, found: bool) -> Self {
        ImportEvent { kind: EventKind::Done, found: Some(found), ..ImportEvent::start(ts_ns, pid, tid, depth, module) }
    }

    /// The module name for people: the name, or a marker for a missing one.
    pub fn display_name(&self) -> String {
        display_name(&self.module, self.name)
    }
}

/// How a module name is shown to people: control characters escaped, a cut
/// name followed by `...`, a missing one as `<unencodable name>` (the flag,
/// not the text, is what tells it from a real module of that name).
pub fn display_name(module: &str, state: NameState) -> String {
    match state {
        NameState::Missing => "<unencodable name>".to_owned(),
        NameState::Cut => format!("{}...", escape(module)),
        NameState::Full => escape(module),
    }
}

/// A name with control characters (newlines from `__import__` names)
/// escaped, so it cannot break a line-oriented report.
pub fn escape(module: &str) -> String {
    if module.chars().any(|c| c.is_control() || c == '\\') {
        module.escape_debug().to_string()
    } else {
        module.to_owned()
    }
}

/// A process seen in a trace (from the tracer, the simulator, or the
/// process-tree follower).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessInfo {
    pub pid: u32,
    /// The parent process, when known and itself traced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ppid: Option<u32>,
    /// The command line, as shown to people.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub command: String,
}

/// Where a recording came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Origin {
    /// An `importprobe-events` stream (the import-events script, `--save-events`).
    Stream,
    /// An `importprobe-capture` dump (the import-capture script).
    Capture,
    /// The simulator's `--truth` JSON lines.
    Truth,
    /// A CPython `-X importtime` log: no absolute times, laid out in order.
    ImportTime,
}

/// Everything one source yields, before pairing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recording {
    pub origin: Origin,
    /// In the order the source gave them, each thread's events in firing
    /// order.
    pub events: Vec<ImportEvent>,
    pub processes: Vec<ProcessInfo>,
    /// Events the tracer says it lost (bpftrace's `Lost N events`, gaps in
    /// per-thread event numbers). Every report shows this count.
    pub lost_events: u64,
    /// Things the source reader noticed that make the recording incomplete
    /// (a stream cut short, a capture that filled its maps), one line each.
    pub warnings: Vec<String>,
    /// For `-X importtime` logs: the times CPython printed, per event index
    /// of the done (or cached) event, so the log can be rendered back byte
    /// for byte (its microseconds cannot be recovered from laid-out times).
    pub logged: Vec<(usize, importtime::Logged)>,
}

impl Recording {
    pub fn new(origin: Origin, events: Vec<ImportEvent>) -> Self {
        Recording { origin, events, processes: Vec::new(), lost_events: 0, warnings: Vec::new(), logged: Vec::new() }
    }
}
