//! The default collection: every probe firing kept in kernel maps by the
//! bundled `import-capture` script (one map update per event, printed when
//! tracing ends: the cheapest collection bpftrace allows, see BENCHMARKS.md)
//! and read into the event model. `importprobe trace`, `check --runs`, the
//! demo, `smoke` and the tests all collect through here.

use super::bpftrace::Bpftrace;
use super::runner::{self, Target, TraceError, TraceOutcome, TraceRequest};
use super::scripts;
use crate::events::{capture, ProcessInfo, Recording};

/// Imports the capture maps hold by default: a large application starts
/// 1,000 to 3,000 (each costs about 250 bytes of kernel memory, allocated
/// up front by bpftrace).
pub const DEFAULT_MAX_IMPORTS: usize = 65_536;

/// Why a collection failed.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error(transparent)]
    Trace(#[from] TraceError),
    #[error("reading the capture bpftrace printed: {0}")]
    Capture(#[from] capture::CaptureError),
    #[error("tracing did not end before its deadline (the traced command was stopped)")]
    TimedOut { stderr: Vec<String> },
}

impl CollectError {
    /// bpftrace's own complaints, for callers that show them.
    pub fn stderr(&self) -> &[String] {
        match self {
            CollectError::Trace(t) => t.stderr(),
            CollectError::TimedOut { stderr } => stderr,
            CollectError::Capture(_) => &[],
        }
    }
}

/// A request running the collector on `target`, its maps sized for
/// `max_imports` imports; the caller adds deadlines, output and signals.
pub fn request(target: Target, bpftrace: Bpftrace, max_imports: usize) -> TraceRequest {
    let script = scripts::find(scripts::COLLECTOR).expect("the collector is bundled");
    let mut req = TraceRequest::new(script.name, script.bpftrace, target, bpftrace);
    req.args = script.positional_args(None, &[]);
    req.max_map_keys = Some(max_imports);
    req
}

/// Runs a collector request and reads what it captured, the traced process
/// named, a full map said.
pub fn collect(req: TraceRequest) -> Result<(Recording, TraceOutcome), CollectError> {
    let max_imports = req.max_map_keys.unwrap_or(DEFAULT_MAX_IMPORTS);
    let target = req.target.clone();
    let mut dump = Vec::new();
    let outcome = runner::trace(req, &mut dump)?;
    if outcome.timed_out {
        return Err(CollectError::TimedOut { stderr: outcome.stderr });
    }
    let mut rec = capture::parse(&dump)?;
    capture::check_limit(&mut rec, max_imports);
    if outcome.processes.is_empty() {
        rec.processes.push(ProcessInfo { pid: outcome.pid, ppid: None, command: command_line(&target, outcome.pid) });
    } else {
        rec.processes.extend(outcome.processes.iter().cloned());
    }
    rec.warnings.extend(outcome.problems.iter().cloned());
    Ok((rec, outcome))
}

/// The traced command as people read it.
pub fn command_line(target: &Target, pid: u32) -> String {
    match target {
        Target::Command(argv) => argv.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" "),
        Target::Pid(_) => std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|b| {
                b.split(|&c| c == 0)
                    .filter(|a| !a.is_empty())
                    .map(String::from_utf8_lossy)
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default(),
    }
}
