//! `importprobe run`: run a workload in the simulator, firing the probes.

use crate::simulator::{self, outputs::Outputs};
use crate::workload::{self, random::RandomParams, scenarios, Workload};
use crate::UsageError;
use anyhow::Context;
use clap::Args;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

const EXAMPLES: &str = "\
Examples:
  importprobe run                                  # the demo application's start-up
  importprobe run --workload refpkg --importtime   # CPython's -X importtime lines on stderr
  importprobe run --workload deep --count 10000 --truth truth.jsonl
  importprobe run --workload random --seed 7 --count 500 --failure-rate 0.05
  importprobe run --workload app.toml --wait-for-tracer=30
  bpftrace -p \"$PID\" scripts/import-tree.bt      # in another shell, with --wait-for-tracer";

/// Run a workload in the simulated import system, firing CPython's import
/// probes around every module it finds and loads.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub struct RunArgs {
    /// A built-in workload (demo, flat, deep, wide, cycle, threads, stress,
    /// random, refpkg, long-name, odd-names) or a manifest file (.toml).
    #[arg(short, long, default_value = "demo", value_name = "NAME|FILE")]
    pub workload: String,
    /// Size of flat/deep/wide/stress/random, threads of `threads`.
    #[arg(short = 'n', long, value_name = "N")]
    pub count: Option<usize>,
    /// Seed of the random workload.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Random workload: maximum package depth of names.
    #[arg(long, default_value_t = 3)]
    pub depth: usize,
    /// Random workload: maximum imports per module body.
    #[arg(long, default_value_t = 4)]
    pub fanout: usize,
    /// Random workload: probability that a module is missing or raises.
    #[arg(long, default_value_t = 0.02)]
    pub failure_rate: f64,
    /// Random workload: extra threads importing after main.
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Multiply every find and exec cost (0 runs as fast as possible).
    #[arg(long, default_value_t = 1.0, value_name = "FACTOR")]
    pub scale: f64,
    /// Write every fired probe as JSON lines (the ground truth).
    #[arg(long, value_name = "FILE")]
    pub truth: Option<PathBuf>,
    /// Print CPython's `-X importtime` lines on stderr.
    #[arg(long)]
    pub importtime: bool,
    /// Before importing, print the pid and wait until a tracer raises the
    /// start probe's semaphore (default timeout 10 s).
    #[arg(long, value_name = "SECS", num_args = 0..=1, default_missing_value = "10")]
    pub wait_for_tracer: Option<f64>,
    /// With --wait-for-tracer: stay alive this long after the last import,
    /// so a tracer attached with -p drains its buffers before it sees the
    /// process exit (bpftrace stops reading when the pid is gone).
    #[arg(long, value_name = "MS", default_value_t = 500)]
    pub exit_grace_ms: u64,
    /// Self-test of `importprobe smoke`: corrupt the ground truth written
    /// with --truth (drop one event or flip one found flag).
    #[arg(long, hide = true, value_name = "HOW")]
    pub tamper_truth: Option<crate::events::tamper::Tamper>,
}

impl Default for RunArgs {
    fn default() -> Self {
        RunArgs {
            workload: "demo".into(),
            count: None,
            seed: 1,
            depth: 3,
            fanout: 4,
            failure_rate: 0.02,
            threads: 0,
            scale: 1.0,
            truth: None,
            importtime: false,
            wait_for_tracer: None,
            exit_grace_ms: 500,
            tamper_truth: None,
        }
    }
}

/// Builds the workload a `--workload` value names.
pub fn load_workload(args: &RunArgs) -> anyhow::Result<Workload> {
    if !(args.scale.is_finite() && args.scale >= 0.0) {
        return Err(UsageError(format!("--scale {} must be a non-negative number", args.scale)).into());
    }
    let costs = scenarios::Costs::default();
    let w = match args.workload.as_str() {
        "demo" => workload::demo::build(),
        "random" => {
            if !(0.0..=1.0).contains(&args.failure_rate) {
                return Err(UsageError(format!("--failure-rate {} must be between 0 and 1", args.failure_rate)).into());
            }
            workload::random::generate(&RandomParams {
                seed: args.seed,
                modules: args.count.unwrap_or(200),
                depth: args.depth,
                fanout: args.fanout,
                failure_rate: args.failure_rate,
                threads: args.threads,
                median_find: costs.find,
                median_exec: costs.exec,
            })
        }
        name if scenarios::NAMES.contains(&name) => {
            let count = args.count.unwrap_or(match name {
                "deep" | "stress" => 1000,
                "threads" => 8,
                _ => 100,
            });
            scenarios::build(name, count, costs).expect("listed scenario")
        }
        path if Path::new(path).exists() => {
            workload::manifest::load(Path::new(path)).map_err(|e| UsageError(e.to_string()))?
        }
        other => {
            return Err(UsageError(format!(
                "no workload named {other:?} and no such file (built-in: demo, random, {})",
                scenarios::NAMES.join(", ")
            ))
            .into())
        }
    };
    Ok(if args.scale == 1.0 { w } else { w.scaled(args.scale) })
}

/// `importprobe run`.
pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let w = load_workload(&args)?;
    tracing::info!(workload = %w.name, modules = w.module_count(), "loaded workload");
    if let Some(secs) = args.wait_for_tracer {
        wait_for_tracer(secs)?;
    }
    let truth: Option<Box<dyn Write + Send>> = match &args.truth {
        Some(p) => Some(Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).map_err(|e| UsageError(format!("cannot create {}: {e}", p.display())))?,
        ))),
        None => None,
    };
    let importtime: Option<Box<dyn Write + Send>> =
        args.importtime.then(|| Box::new(std::io::LineWriter::new(std::io::stderr())) as Box<dyn Write + Send>);
    let outputs = Outputs::new(truth, importtime);
    let summary = simulator::run(&w, &outputs);
    let events = outputs.finish().context("writing the simulator's outputs")?;
    if let (Some(how), Some(path)) = (args.tamper_truth, &args.truth) {
        crate::events::tamper::corrupt_file(path, how).context("tampering with the ground truth")?;
    }
    if args.wait_for_tracer.is_some() {
        std::thread::sleep(Duration::from_millis(args.exit_grace_ms));
    }
    tracing::info!(events, threads = summary.threads, elapsed = ?summary.elapsed, "workload done");
    if let Some((thread, failure)) = summary.uncaught.first() {
        eprintln!("importprobe: uncaught import error ({failure:?}) ended thread {thread:?}, as it would end a Python program");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints the pid, then polls until a tracer attaches: the start probe's
/// semaphore is raised AND both probe sites carry a uprobe `int3` (bpftrace
/// 0.17 with `-p` can raise the semaphore a moment before attaching). A
/// tracer that attaches only one probe is given two more seconds.
fn wait_for_tracer(secs: f64) -> anyhow::Result<()> {
    if !(secs.is_finite() && secs > 0.0) {
        return Err(UsageError(format!("--wait-for-tracer {secs}: give a positive number of seconds")).into());
    }
    let att = simulator::probes::attachment().map_err(|e| anyhow::anyhow!("cannot wait for a tracer: {e}"))?;
    eprintln!(
        "importprobe: pid {} waiting up to {secs} s for a tracer on python:import__find__load__start",
        std::process::id()
    );
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    while att.semaphore.load(std::sync::atomic::Ordering::Relaxed) == 0 {
        if Instant::now() >= deadline {
            anyhow::bail!(
                "no tracer attached within {secs} s (attach with `bpftrace -p {}` or `--usdt-file-activation`; `-c` does not raise semaphores on bpftrace 0.17)",
                std::process::id()
            );
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let grace = Instant::now() + Duration::from_secs(2);
    while !att.sites_attached() && Instant::now() < grace {
        std::thread::sleep(Duration::from_millis(1));
    }
    tracing::info!(both_sites = att.sites_attached(), "tracer attached");
    Ok(())
}

/// The demo's import tree from the simulator's own ground truth: what
/// `importprobe` with no arguments shows when it cannot trace. `why` is the
/// one line said on stderr first.
pub fn default_demo(why: &str) -> anyhow::Result<ExitCode> {
    eprintln!("importprobe: {why}");
    let w = workload::demo::build();
    let out: Box<dyn Write + Send> = Box::new(std::io::LineWriter::new(std::io::stdout()));
    let outputs = Outputs::new(None, Some(out));
    simulator::run(&w, &outputs);
    outputs.finish().context("writing the import tree")?;
    Ok(ExitCode::SUCCESS)
}
