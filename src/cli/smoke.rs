//! `importprobe smoke`: one command that tells a CI job or an operator
//! whether USDT import tracing works on this host, end to end.

use crate::events::tamper::Tamper;
use crate::smoke::{self, report, Verdict};
use crate::UsageError;
use clap::Args;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

const EXAMPLES: &str = "\
Checks, in order: kernel uprobes and USDT semaphore support, privileges,
tracefs, bpftrace; importprobe's own probes; live traces of simulator
workloads (refpkg, threads) with the bundled import-events script, every
event held against the simulator's ground truth (none missing or extra,
nesting, found flags, timings); with --python, the same against a real
CPython and its -X importtime lines.

Exit status: 0 all good; 1 tracing works but results are wrong (the first
differing events per thread are shown); 2 tracing is impossible here (why,
and the command that fixes it).

Examples:
  sudo importprobe smoke
  sudo importprobe smoke --python /usr/bin/python3.11 --junit smoke.xml
  sudo importprobe smoke --json | jq .verdict";

/// Check that USDT import tracing works on this host, end to end.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub struct SmokeArgs {
    /// Also trace this CPython (built --with-dtrace, probes in the
    /// executable, e.g. /usr/bin/python3.11) against its -X importtime.
    #[arg(long, value_name = "PATH")]
    pub python: Option<PathBuf>,
    /// Print the report as JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Also write a JUnit XML report (one testcase per check) to FILE.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Deadline of each live trace; children still running then are killed.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub timeout: u64,
    /// Self-test: have the simulator corrupt its ground truth (drop one
    /// event or flip one found flag), so a correct trace must be reported
    /// as wrong.
    #[arg(long, hide = true, value_name = "HOW")]
    pub tamper_truth: Option<Tamper>,
}

/// `importprobe smoke`.
pub fn run(args: SmokeArgs) -> anyhow::Result<ExitCode> {
    if args.timeout == 0 {
        return Err(UsageError("--timeout must be at least 1 second".into()).into());
    }
    let exe = std::env::current_exe().map_err(|e| anyhow::anyhow!("cannot find my own executable: {e}"))?;
    let opts = smoke::Options {
        exe,
        python: args.python,
        timeout: Duration::from_secs(args.timeout),
        tamper: args.tamper_truth,
        tolerance: crate::events::tolerance::Tolerance::default(),
    };
    let checks = smoke::run(&opts);
    if let Some(path) = &args.junit {
        let xml = report::junit(&checks)?;
        std::fs::write(path, xml).map_err(|e| UsageError(format!("cannot write {}: {e}", path.display())))?;
    }
    let out = if args.json { report::json(&checks) + "\n" } else { report::text(&checks) };
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(out.as_bytes())?;
    stdout.flush()?;
    Ok(ExitCode::from(Verdict::of(&checks).exit_code()))
}
