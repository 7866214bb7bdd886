//! The event model every part of importprobe agrees on: one fired import
//! probe. The simulator writes it as ground truth, the tracer's event stream
//! is parsed into it, and every report is computed from it.

pub mod stream;
pub mod tamper;
pub mod truth;

use serde::{Deserialize, Serialize};

/// Which probe fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// `import__find__load__start`
    Start,
    /// `import__find__load__done`
    Done,
}

/// One probe firing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportEvent {
    /// CLOCK_MONOTONIC nanoseconds (bpftrace's `nsecs`).
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
    /// The tracer cut the module name at its string limit (bpftrace's
    /// `BPFTRACE_STRLEN`): `module` is only a prefix, and two events with
    /// equal truncated names may be different modules.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}
