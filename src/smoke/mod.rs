//! `importprobe smoke`: does USDT import tracing work on this host, end to
//! end? Environment, importprobe's own probes, a live trace of simulator
//! workloads against their ground truth, and optionally a live trace of a
//! real CPython against its `-X importtime` lines.

pub mod check;
pub mod compare;
pub mod environment;
pub mod live;
pub mod probes;
pub mod python;
pub mod report;
pub mod session;
pub mod timing;

pub use check::{Check, Status, Verdict};

use std::path::PathBuf;
use std::time::Duration;

/// What to check.
#[derive(Debug, Clone)]
pub struct Options {
    /// importprobe itself: its probes are checked and it runs the simulator.
    pub exe: PathBuf,
    /// A CPython interpreter to trace as well.
    pub python: Option<PathBuf>,
    /// Deadline of each live trace.
    pub timeout: Duration,
    /// Corrupt the simulator's ground truth (proves mismatches are caught).
    pub tamper: Option<crate::events::tamper::Tamper>,
    pub limits: timing::Limits,
}

/// Runs every check in order; later steps are skipped when an earlier one
/// makes them pointless.
pub fn run(opts: &Options) -> Vec<Check> {
    let mut checks = environment::checks();
    let env_ready = checks.iter().all(|c| c.status == Status::Pass);
    let bpftrace = crate::tracer::preflight::bpftrace_path().unwrap_or_else(|| "bpftrace".into());
    let own = probes::check(&opts.exe);
    let own_ok = own.status == Status::Pass;
    checks.push(own);
    let live = live::LiveOptions {
        exe: opts.exe.clone(),
        bpftrace: bpftrace.clone(),
        timeout: opts.timeout,
        tamper: opts.tamper,
        limits: opts.limits,
    };
    for w in live::WORKLOADS {
        if env_ready && own_ok {
            checks.extend(live::check(w, &live));
        } else {
            let why = if env_ready { "importprobe's own probes are broken" } else { "the environment cannot trace" };
            checks.push(Check::skipped(format!("live/{}", w.name), why));
        }
    }
    if let Some(given) = &opts.python {
        // `--python python3.11` is looked up in PATH (bpftrace -c needs a path).
        let python = &crate::tracer::preflight::which(given.as_os_str()).unwrap_or_else(|| given.clone());
        let probes = python::probes_check(python);
        let py_ok = probes.status == Status::Pass;
        checks.push(probes);
        if env_ready && py_ok {
            checks.extend(python::live_checks(&python::PythonOptions {
                python: python.clone(),
                bpftrace,
                timeout: opts.timeout,
                limits: opts.limits,
            }));
        } else {
            let why = if env_ready { "the interpreter has no import probes" } else { "the environment cannot trace" };
            checks.push(Check::skipped("python/live", why));
        }
    }
    checks
}
