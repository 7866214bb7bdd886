//! `importprobe` with no arguments: trace the demo workload with the
//! default script, as a first taste; when tracing is impossible, show the
//! simulator's ground truth instead, with one line saying why.

use super::run::default_demo;
use crate::tracer::preflight;
use crate::tracer::runner::{self, Target, TraceRequest};
use crate::tracer::scripts;
use std::process::ExitCode;

/// Runs the demo under the import-tree script.
pub fn run() -> anyhow::Result<ExitCode> {
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => return default_demo(&format!("not tracing (cannot find my own binary: {e}); ground truth follows")),
    };
    let mut problems = preflight::check_environment();
    problems.extend(preflight::check_command(exe.as_os_str(), None));
    if let Some(p) = problems.first() {
        return default_demo(&format!(
            "not tracing: {}; fix: {}. The simulator's ground truth (-X importtime) follows.",
            p.what, p.fix
        ));
    }
    let script = scripts::find(scripts::DEFAULT).expect("the default script is bundled");
    // Started stopped by the runner, so bpftrace sees the very first import.
    let target = Target::Command(vec![exe.into_os_string(), "run".into(), "--workload".into(), "demo".into()]);
    let mut req = TraceRequest::new(script.name, script.bpftrace, target);
    req.args = scripts::positional_args(None, &[]);
    req.bpftrace = preflight::bpftrace_path().unwrap_or_else(|| "bpftrace".into());
    eprintln!(
        "importprobe: tracing the demo workload (`importprobe run`) with bpftrace and the {} script",
        script.name
    );
    match runner::trace(&req, &mut std::io::stdout()) {
        Ok(_) => Ok(ExitCode::SUCCESS),
        Err(e) => default_demo(&format!("tracing failed ({e}); the simulator's ground truth (-X importtime) follows")),
    }
}
