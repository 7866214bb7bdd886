//! `importprobe run`: run a workload in the simulator, firing the probes.

use crate::events::{forest::Forest, source};
use crate::simulator::process::{command_line, Context, ExecTemplate};
use crate::simulator::whole_lines::WholeLines;
use crate::simulator::{self, outputs::Outputs};
use crate::workload::{self, random::RandomParams, replay, scenarios, Workload};
use crate::UsageError;
use anyhow::Context as _;
use clap::Args;
use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

const EXAMPLES: &str = "\
Examples:
  importprobe run                                  # the demo application's start-up
  importprobe run --workload refpkg --importtime   # CPython's -X importtime lines on stderr
  importprobe run --workload deep --count 10000 --truth truth.jsonl
  importprobe run --workload random --seed 7 --count 500 --failure-rate 0.05 --importlib-rate 0.1
  importprobe run --workload app.toml --wait-for-tracer=30
  bpftrace -p \"$PID\" scripts/import-tree.bt      # in another shell, with --wait-for-tracer
  importprobe run --workload fork --truth t.jsonl  # 2 forked workers + a grandchild: 4 pids
  importprobe run --workload spawn --count 3       # a fork+exec chain three processes deep
  python3 -X importtime -c 'import json' 2> json.log
  importprobe run --replay json.log --speed 2      # that start-up, fired again, twice as fast
  importprobe run --replay t.jsonl --pid 4242      # one process of a multi-process recording

Built-in workloads: demo (a web service's start-up, ~300 modules), random, flat, deep, wide,
cycle, threads, stress, refpkg, long-name, odd-names, unencodable (__import__('a\\udcff'): the
probes get NULL), importlib (importlib.import_module(), which fires nothing), fork (a fork-based
pool of --count workers, one with a grandchild), spawn (a fork+exec chain --count processes
deep). In fork and spawn every fresh process (the root, each exec'd child) first imports
`encodings`, with `codecs` and `encodings.aliases` nested; a forked worker's first import that
fires is `pool.task`.

--truth FILE gets every event of every process of the tree plus one {\"process\": ...} line
per process (pid, ppid, command line); processes append to it in whole lines (O_APPEND).";

/// Run a workload in the simulated import system, firing CPython's import
/// probes around every module it finds and loads.
///
/// A workload is a built-in one, a manifest (.toml), or a recording
/// replayed with --replay. Child processes a workload starts (fork, or
/// fork+exec of this binary) are waited for before `run` exits.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES, args_override_self = true)]
pub struct RunArgs {
    /// A built-in workload (demo, flat, deep, wide, cycle, threads, stress,
    /// random, refpkg, long-name, odd-names, unencodable, importlib, fork,
    /// spawn) or a manifest file (.toml).
    #[arg(short, long, default_value = "demo", value_name = "NAME|FILE")]
    pub workload: String,
    /// Size of flat/deep/wide/stress/random, threads of `threads`, workers
    /// of `fork`, processes of `spawn`.
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
    /// Random workload: probability that an import in a module body is an
    /// importlib.import_module() call (fires nothing for that module).
    #[arg(long, default_value_t = 0.0, value_name = "P")]
    pub importlib_rate: f64,
    /// Random workload: extra threads importing after main.
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Multiply every find and exec cost (0 runs as fast as possible).
    /// Exec'd children get the same factor.
    #[arg(long, default_value_t = 1.0, value_name = "FACTOR", conflicts_with = "replay")]
    pub scale: f64,
    /// Replay a recording instead of a workload: an importprobe event
    /// stream, a capture, a --truth file, or a CPython -X importtime log
    /// (3.7 to 3.14, `cached` lines included); `-` reads stdin. The same
    /// imports, nesting, threads, found flags and times, fired again.
    #[arg(long, value_name = "INPUT", conflicts_with = "workload")]
    pub replay: Option<PathBuf>,
    /// With --replay: run this many times as fast (0.5: half as fast).
    #[arg(long, value_name = "X", requires = "replay", default_value_t = 1.0)]
    pub speed: f64,
    /// With --replay: the recorded process to replay, when the recording
    /// holds several (one process is replayed per run).
    #[arg(long, value_name = "PID", requires = "replay")]
    pub pid: Option<u32>,
    /// Write every fired probe as JSON lines (the ground truth), with one
    /// {"process": ...} line per process of the tree.
    #[arg(long, value_name = "FILE")]
    pub truth: Option<PathBuf>,
    /// Print CPython's `-X importtime` lines on stderr (forked children
    /// keep printing them; exec'd children do not, as with `python -X`).
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
    /// Set by a simulated parent on the children it execs: its pid (recorded
    /// as their ppid; --truth is then appended to, not truncated).
    #[arg(long, hide = true, value_name = "PID")]
    pub parent_pid: Option<u32>,
    /// Set by a simulated parent on the children it execs: their generation.
    #[arg(long, hide = true, value_name = "N", default_value_t = 0)]
    pub process_depth: u32,
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
            importlib_rate: 0.0,
            threads: 0,
            scale: 1.0,
            replay: None,
            speed: 1.0,
            pid: None,
            truth: None,
            importtime: false,
            wait_for_tracer: None,
            exit_grace_ms: 500,
            tamper_truth: None,
            parent_pid: None,
            process_depth: 0,
        }
    }
}

/// Builds the workload a `--workload` (or `--replay`) value names; a
/// replay's notes are said on stderr.
pub fn load_workload(args: &RunArgs) -> anyhow::Result<Workload> {
    if let Some(input) = &args.replay {
        return load_replay(input, args);
    }
    if !(args.scale.is_finite() && args.scale >= 0.0) {
        return Err(UsageError(format!("--scale {} must be a non-negative number", args.scale)).into());
    }
    let costs = scenarios::Costs::default();
    let w = match args.workload.as_str() {
        "demo" => workload::demo::build(),
        "random" => {
            for (flag, p) in [("--failure-rate", args.failure_rate), ("--importlib-rate", args.importlib_rate)] {
                if !(0.0..=1.0).contains(&p) {
                    return Err(UsageError(format!("{flag} {p} must be between 0 and 1")).into());
                }
            }
            workload::random::generate(&RandomParams {
                seed: args.seed,
                modules: args.count.unwrap_or(200),
                depth: args.depth,
                fanout: args.fanout,
                failure_rate: args.failure_rate,
                importlib_rate: args.importlib_rate,
                threads: args.threads,
                median_find: costs.find,
                median_exec: costs.exec,
            })
        }
        name if scenarios::NAMES.contains(&name) => {
            let count = args.count.unwrap_or(scenarios::default_count(name));
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

/// `--replay INPUT`: any recording, paired into a forest, as a workload.
fn load_replay(input: &Path, args: &RunArgs) -> anyhow::Result<Workload> {
    if !(args.speed.is_finite() && args.speed > 0.0) {
        return Err(
            UsageError(format!("--speed {} must be a positive number (2 runs twice as fast)", args.speed)).into()
        );
    }
    let shown = input.display().to_string();
    let mut data = Vec::new();
    let read = if shown == "-" {
        std::io::stdin().read_to_end(&mut data).map(|_| ())
    } else {
        std::fs::File::open(input).and_then(|mut f| f.read_to_end(&mut data)).map(|_| ())
    };
    read.map_err(|e| UsageError(format!("cannot read {shown}: {e}")))?;
    let recording = source::load(&data).map_err(|e| UsageError(format!("{shown}: {e}")))?;
    let forest = Forest::build(&recording);
    let r = replay::from_forest(&forest, args.pid, &format!("replay of {shown}"))
        .map_err(|e| UsageError(format!("{shown}: {e}")))?;
    for note in &r.notes {
        eprintln!("importprobe: replay: {note}");
    }
    tracing::info!(pid = r.pid, imports = r.workload.module_count(), "replaying");
    Ok(if args.speed == 1.0 { r.workload } else { r.workload.scaled(1.0 / args.speed) })
}

/// Opens `--truth`: in append mode, so that the processes of one tree, each
/// with its own descriptor, add whole lines at its end; truncated by the
/// root only.
fn open_truth(path: &Path, child: bool) -> anyhow::Result<Box<dyn Write + Send>> {
    let cannot = |e: std::io::Error| UsageError(format!("cannot create {}: {e}", path.display()));
    let file = std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(cannot)?;
    if !child {
        file.set_len(0).map_err(cannot)?;
    }
    Ok(Box::new(WholeLines::new(file)))
}

/// How this run starts exec'd children: this binary, with the same
/// `--truth` (absolute: a child may run elsewhere) and `--scale`.
fn exec_template(args: &RunArgs) -> Option<ExecTemplate> {
    let program = std::env::current_exe().ok()?;
    let mut child_args: Vec<OsString> = Vec::new();
    if let Some(t) = &args.truth {
        child_args.extend(["--truth".into(), std::path::absolute(t).unwrap_or_else(|_| t.clone()).into()]);
    }
    if args.scale != 1.0 {
        child_args.extend(["--scale".into(), args.scale.to_string().into()]);
    }
    Some(ExecTemplate { program, args: child_args })
}

/// `importprobe run`.
pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let loading = Instant::now();
    let w = load_workload(&args)?;
    tracing::info!(workload = %w.name, modules = w.module_count(), build = ?loading.elapsed(), "loaded workload");
    if let Some(secs) = args.wait_for_tracer {
        wait_for_tracer(secs)?;
    }
    let truth = args.truth.as_deref().map(|p| open_truth(p, args.parent_pid.is_some())).transpose()?;
    let importtime: Option<Box<dyn Write + Send>> =
        args.importtime.then(|| Box::new(std::io::LineWriter::new(std::io::stderr())) as Box<dyn Write + Send>);
    let outputs = Outputs::new(truth, importtime);
    let ctx = Context {
        parent: args.parent_pid,
        command: command_line(),
        depth: args.process_depth,
        exec: exec_template(&args),
    };
    let summary = simulator::run_with(&w, &outputs, &ctx);
    let events = outputs.finish().context("writing the simulator's outputs")?;
    if let (Some(how), Some(path)) = (args.tamper_truth, &args.truth) {
        crate::events::tamper::corrupt_file(path, how).context("tampering with the ground truth")?;
    }
    if args.wait_for_tracer.is_some() {
        std::thread::sleep(Duration::from_millis(args.exit_grace_ms));
    }
    tracing::info!(events, threads = summary.threads, children = summary.children, elapsed = ?summary.elapsed, "workload done");
    let mut failed = false;
    for line in &summary.child_errors {
        eprintln!("importprobe: {line}");
        failed = true;
    }
    if let Some((thread, failure)) = summary.uncaught.first() {
        eprintln!("importprobe: uncaught import error ({failure:?}) ended thread {thread:?}, as it would end a Python program");
        failed = true;
    }
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
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
