//! Tracing the simulator against its own ground truth: the runner on a
//! started `importprobe run ... --truth FILE`. `importprobe smoke` and the
//! tests check every script this way.

use super::bpftrace::Bpftrace;
use super::runner::{self, Target, TraceError, TraceOutcome, TraceRequest};
use super::scripts::BundledScript;
use crate::events::{truth, Recording};
use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

/// What one traced simulator run produced.
#[derive(Debug)]
pub struct SimulatedTrace {
    /// The script's stdout.
    pub output: Vec<u8>,
    /// What the simulator really fired.
    pub truth: Recording,
    pub outcome: TraceOutcome,
}

/// Why a simulated trace failed.
#[derive(Debug, thiserror::Error)]
pub enum SimulatedError {
    #[error(transparent)]
    Trace(#[from] TraceError),
    #[error("cannot create a scratch directory: {0}")]
    Scratch(std::io::Error),
    #[error("the simulator wrote no ground truth ({0:#}); did it run? (exit status: {1})")]
    NoTruth(anyhow::Error, String),
}

/// Options of one run.
#[derive(Debug, Clone)]
pub struct SimulatedRun<'a> {
    /// importprobe itself.
    pub exe: &'a Path,
    /// Arguments of `importprobe run` choosing the workload.
    pub run_args: &'a [&'a str],
    pub script: &'a BundledScript,
    /// The script's own parameters (`$2`, ...).
    pub params: &'a [String],
    pub deadline: Duration,
    /// Keys per map, for the capture collector (bpftrace's default if `None`).
    pub max_map_keys: Option<usize>,
    /// The string limit (importprobe's default if `None`).
    pub strlen: Option<u32>,
}

/// Runs the workload under the script and reads its ground truth.
pub fn trace(bpftrace: &Bpftrace, run: &SimulatedRun) -> Result<SimulatedTrace, SimulatedError> {
    let dir = tempfile::Builder::new().prefix("importprobe-sim-").tempdir().map_err(SimulatedError::Scratch)?;
    let truth_path = dir.path().join("truth.jsonl");
    let mut argv: Vec<OsString> = vec![run.exe.into(), "run".into()];
    argv.extend(run.run_args.iter().map(OsString::from));
    argv.extend(["--truth".into(), truth_path.clone().into_os_string()]);
    let mut req = TraceRequest::new(run.script.name, run.script.bpftrace, Target::Command(argv), bpftrace.clone());
    req.args = run.script.positional_args(None, run.params);
    req.deadline = Some(run.deadline);
    req.max_map_keys = run.max_map_keys;
    req.strlen = run.strlen;
    req.command_output.stdout =
        Some(std::fs::File::create(dir.path().join("stdout")).map_err(SimulatedError::Scratch)?);
    let mut output = Vec::new();
    let outcome = runner::trace(req, &mut output)?;
    let truth = truth::read(&truth_path)
        .map_err(|e| SimulatedError::NoTruth(e, outcome.command.map_or("unknown".into(), |s| s.to_string())))?;
    Ok(SimulatedTrace { output, truth, outcome })
}
