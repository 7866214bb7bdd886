//! The command line: one file per subcommand, this one for the shape.

mod check;
#[cfg(target_os = "linux")]
mod demo;
mod diff;
mod probes;
mod report;
mod run;
#[cfg(target_os = "linux")]
mod smoke;
#[cfg(target_os = "linux")]
mod trace;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Trace Python module imports through CPython's USDT import probes.
///
/// With no subcommand, traces the demo workload and prints its import tree
/// (or, when tracing is impossible, the simulator's ground truth).
#[derive(Debug, Parser)]
#[command(name = "importprobe", version, about, long_about = None)]
pub struct Cli {
    /// More logging on stderr (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Run(run::RunArgs),
    #[cfg(target_os = "linux")]
    Trace(trace::TraceArgs),
    Report(report::ReportArgs),
    Diff(diff::DiffArgs),
    Check(check::CheckArgs),
    Probes(probes::ProbesArgs),
    #[cfg(target_os = "linux")]
    Smoke(smoke::SmokeArgs),
}

/// Sends `tracing` logs to stderr; data goes to stdout.
pub fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Some(Command::Run(args)) => run::run(args),
        #[cfg(target_os = "linux")]
        Some(Command::Trace(args)) => trace::run(args),
        Some(Command::Report(args)) => report::run(args),
        Some(Command::Diff(args)) => diff::run(args),
        Some(Command::Check(args)) => check::run(args),
        Some(Command::Probes(args)) => probes::run(args),
        #[cfg(target_os = "linux")]
        Some(Command::Smoke(args)) => smoke::run(args),
        #[cfg(target_os = "linux")]
        None => demo::run(),
        #[cfg(not(target_os = "linux"))]
        None => run::default_demo(
            "tracing through bpftrace needs Linux; on DTrace systems run scripts/*.d with dtrace -c 'importprobe run'",
        ),
    }
}
