//! Step 3b: every bundled script compiles, loads and runs on this host's
//! bpftrace. Each one traces a short simulator workload through the runner
//! `importprobe trace` uses; a script that fails, or prints a warning of its
//! own, fails the check with the tracer's version and its first error, so
//! smoke can never vouch for a host where `importprobe trace --script S`
//! would not work. (Running them, rather than bpftrace's `--dry-run`, which
//! 0.22+ has, also catches what only the kernel's verifier rejects.)

use super::check::Check;
use crate::tracer::bpftrace::Bpftrace;
use crate::tracer::scripts::{BundledScript, BUNDLED};
use crate::tracer::simulated::{self, SimulatedError, SimulatedRun};
use std::path::Path;
use std::time::{Duration, Instant};

/// The workload each script runs on: small, with a nested parent, a cycle
/// and failures, so every script has something to report.
pub const WORKLOAD: &[&str] = &["--workload", "refpkg"];

/// One check per bundled script.
pub fn checks(exe: &Path, bpftrace: &Bpftrace, timeout: Duration) -> Vec<Check> {
    BUNDLED.iter().map(|s| check(exe, bpftrace, s, timeout)).collect()
}

fn check(exe: &Path, bpftrace: &Bpftrace, script: &BundledScript, timeout: Duration) -> Check {
    let t = Instant::now();
    let name = format!("scripts/{}", script.name);
    let run = SimulatedRun {
        exe,
        run_args: WORKLOAD,
        script,
        params: &[],
        deadline: timeout,
        max_map_keys: None,
        strlen: None,
    };
    let version = bpftrace.version;
    let check = match simulated::trace(bpftrace, &run) {
        Err(SimulatedError::Trace(e)) => {
            let mut details: Vec<String> = e.stderr().iter().take(12).cloned().collect();
            if details.is_empty() {
                details.push(e.to_string());
            }
            Check::fail(&name, format!("does not run on bpftrace {version}: {e}")).with_details(details)
        }
        Err(e) => Check::fail(&name, format!("does not run on bpftrace {version}: {e}")),
        Ok(traced) if traced.outcome.timed_out => {
            Check::fail(&name, format!("did not finish within {timeout:?} on bpftrace {version}"))
        }
        Ok(traced) if !traced.outcome.stderr.is_empty() => Check::fail(
            &name,
            format!(
                "runs on bpftrace {version} but prints {} line(s) of its own on stderr, first: {}",
                traced.outcome.stderr.len(),
                traced.outcome.stderr[0]
            ),
        )
        .with_details(traced.outcome.stderr.into_iter().take(12)),
        Ok(traced) if traced.output.is_empty() => {
            Check::fail(&name, format!("ran on bpftrace {version} but printed nothing for the refpkg workload"))
        }
        Ok(traced) => Check::pass(
            &name,
            format!(
                "runs on bpftrace {version}: {} bytes of output for {} events, no warnings",
                traced.output.len(),
                traced.truth.events.len()
            ),
        ),
    };
    check.timed(t)
}
