//! `importprobe` with no arguments: trace the demo workload, as a first
//! taste, and print its import tree; when tracing is impossible, show the
//! simulator's ground truth instead, with one line saying why.

use super::run::default_demo;
use super::trace::{collect_events, write_report};
use crate::report::{self, Format};
use crate::tracer::bpftrace::Bpftrace;
use crate::tracer::collect::{self, DEFAULT_MAX_IMPORTS};
use crate::tracer::preflight;
use crate::tracer::runner::Target;
use std::process::ExitCode;

/// Traces the demo workload (`importprobe run`) the way `importprobe trace` does.
pub fn run() -> anyhow::Result<ExitCode> {
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => return default_demo(&format!("not tracing (cannot find my own binary: {e}); ground truth follows")),
    };
    let mut problems = preflight::check_environment();
    problems.extend(preflight::check_command(exe.as_os_str(), None));
    let bpftrace = match (problems.first(), Bpftrace::locate()) {
        (None, Ok(b)) => b,
        (Some(p), _) => {
            return default_demo(&format!(
                "not tracing: {}; fix: {}. The simulator's ground truth (-X importtime) follows.",
                p.what, p.fix
            ))
        }
        (None, Err(e)) => return default_demo(&format!("not tracing: {e}; the simulator's ground truth follows")),
    };
    // Started stopped by the runner, so bpftrace sees the very first import.
    let target = Target::Command(vec![exe.into_os_string(), "run".into(), "--workload".into(), "demo".into()]);
    let mut req = collect::request(target, bpftrace, DEFAULT_MAX_IMPORTS);
    req.echo_stderr = true;
    req.forward_signals = true;
    eprintln!("importprobe: tracing the demo workload (`importprobe run`) with bpftrace");
    match collect_events(req, None) {
        Ok((forest, _)) => {
            let opts = report::Options { colour: report::colour::for_stdout(), ..Default::default() };
            let rendered = report::render(&forest, Format::Tree, &opts)?;
            write_report(&mut std::io::stdout(), &rendered.text)?;
            for line in rendered.notes {
                eprintln!("importprobe: {line}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            default_demo(&format!("tracing failed ({e:#}); the simulator's ground truth (-X importtime) follows"))
        }
    }
}
