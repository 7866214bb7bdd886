//! `importprobe smoke`: does USDT import tracing work on this host, end to
//! end? Environment, importprobe's own probes, a live trace of simulator
//! workloads against their ground truth, every bundled script on this
//! host's bpftrace, and optionally a live trace of a real CPython against
//! its `-X importtime` lines.

pub mod check;
pub mod environment;
pub mod live;
pub mod probes;
pub mod python;
pub mod report;
pub mod scripts;

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
    pub tolerance: crate::events::tolerance::Tolerance,
}

/// Runs every check in order; later steps are skipped when an earlier one
/// makes them pointless.
pub fn run(opts: &Options) -> Vec<Check> {
    let mut checks = environment::checks();
    let bpftrace = crate::tracer::bpftrace::Bpftrace::locate().ok();
    let env_ready = checks.iter().all(|c| c.status == Status::Pass) && bpftrace.is_some();
    let own = probes::check(&opts.exe);
    let own_ok = own.status == Status::Pass;
    checks.push(own);
    let ready = match (&bpftrace, env_ready, own_ok) {
        (Some(b), true, true) => Some(b),
        _ => None,
    };
    let why = if env_ready { "importprobe's own probes are broken" } else { "the environment cannot trace" };
    for w in live::WORKLOADS {
        match ready {
            Some(b) => checks.extend(live::check(
                w,
                &live::LiveOptions {
                    exe: opts.exe.clone(),
                    bpftrace: b.clone(),
                    timeout: opts.timeout,
                    tamper: opts.tamper,
                    tolerance: opts.tolerance,
                },
            )),
            None => checks.push(Check::skipped(format!("live/{}", w.name), why)),
        }
    }
    let live_traced = !checks.iter().any(|c| c.group() == "live" && c.status == Status::Impossible);
    match ready {
        Some(b) if live_traced => checks.push(live::children_check(&live::LiveOptions {
            exe: opts.exe.clone(),
            bpftrace: b.clone(),
            timeout: opts.timeout,
            tamper: None,
            tolerance: opts.tolerance,
        })),
        _ => checks.push(Check::skipped("live/children", "the simulator could not be traced")),
    }
    match ready {
        Some(b) if live_traced => checks.extend(scripts::checks(&opts.exe, b, opts.timeout)),
        Some(_) => checks.push(Check::skipped("scripts", "bpftrace could not trace the simulator")),
        None => checks.push(Check::skipped("scripts", why)),
    }
    if let Some(given) = &opts.python {
        // `--python python3.11` is looked up in PATH (bpftrace -c needs a path).
        let python = &crate::tracer::preflight::which(given.as_os_str()).unwrap_or_else(|| given.clone());
        let probes = python::probes_check(python);
        let py_ok = probes.status == Status::Pass;
        checks.push(probes);
        if let (Some(b), true) = (&bpftrace, env_ready && py_ok) {
            checks.extend(python::live_checks(&python::PythonOptions {
                python: python.clone(),
                bpftrace: b.clone(),
                timeout: opts.timeout,
                tolerance: opts.tolerance,
            }));
        } else {
            let why = if env_ready { "the interpreter has no import probes" } else { "the environment cannot trace" };
            checks.push(Check::skipped("python/live", why));
        }
    }
    checks
}
