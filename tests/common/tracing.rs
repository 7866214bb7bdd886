//! Tracing in the tests: which tracers this host has (bpftrace always when
//! tracing works; DTrace when present), running a bundled script (or its
//! DTrace twin) on the simulator or on CPython through the library's one
//! runner, and the ground truth reduced to import pairs. Whether a test may
//! trace is decided by `importprobe::testing`: the same preflight checks as
//! `importprobe trace`, and `IMPORTPROBE_REQUIRE_TRACING=1` turns a skip
//! into a failure.
#![allow(dead_code)]

pub use importprobe::testing::{can_trace, skip};

use importprobe::events::forest::{Forest, ImportState};
use importprobe::events::tolerance::{Judge, PairFacts, Tolerance};
use importprobe::events::{EventKind, ImportEvent, NameState, Recording};
use importprobe::tracer::bpftrace::Bpftrace;
use importprobe::tracer::dtrace::{self, Dtrace, DtraceTarget};
use importprobe::tracer::runner::{self, Target, TraceRequest};
use importprobe::tracer::scripts;
use importprobe::tracer::simulated::{self, SimulatedRun};
use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long one traced run may take before it is stopped.
pub const DEADLINE: Duration = Duration::from_secs(120);

/// Set to 1 where DTrace must be tested (the compatibility matrix's sid chroot).
pub const REQUIRE_DTRACE: &str = "IMPORTPROBE_REQUIRE_DTRACE";

/// A tracer a script runs under.
#[derive(Debug, Clone)]
pub enum Tracer {
    Bpftrace(Bpftrace),
    Dtrace(Dtrace),
}

impl Tracer {
    /// `bpftrace v0.17.0`, `dtrace: D 2.0.7`.
    pub fn label(&self) -> String {
        match self {
            Tracer::Bpftrace(b) => format!("bpftrace {}", b.version),
            Tracer::Dtrace(d) => d.version.clone(),
        }
    }

    pub fn is_dtrace(&self) -> bool {
        matches!(self, Tracer::Dtrace(_))
    }

    /// The file of a bundled script for this tracer.
    pub fn script_file(&self, name: &str) -> PathBuf {
        let ext = if self.is_dtrace() { "d" } else { "bt" };
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts").join(format!("{name}.{ext}"))
    }
}

/// The bpftrace to trace with, or `None` after a visible skip.
pub fn bpftrace() -> Option<Bpftrace> {
    if !can_trace() {
        return None;
    }
    match Bpftrace::locate() {
        Ok(b) => Some(b),
        Err(e) => {
            skip(&e.to_string());
            None
        }
    }
}

/// Every tracer of this host a script must be tested under: bpftrace when
/// tracing works, and DTrace when there is one (`IMPORTPROBE_DTRACE` or
/// PATH; with `IMPORTPROBE_REQUIRE_DTRACE=1` a missing DTrace fails).
pub fn tracers() -> Vec<Tracer> {
    let mut out: Vec<Tracer> = bpftrace().into_iter().map(Tracer::Bpftrace).collect();
    match Dtrace::locate() {
        Some(d) if !out.is_empty() => out.push(Tracer::Dtrace(d)),
        Some(_) => {}
        None if std::env::var(REQUIRE_DTRACE).as_deref() == Ok("1") => {
            panic!("DTrace required ({REQUIRE_DTRACE}=1) but not found (IMPORTPROBE_DTRACE or dtrace in PATH)")
        }
        None => {}
    }
    out
}

/// Serialises traced runs within a test binary: on a 2-core VM two
/// simulators and two tracers at once preempt each other between the
/// simulator's clock reads and its probe traps, which shows as timing noise.
pub fn tracing_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// One traced simulator run: the script's output and the ground truth.
pub struct Traced {
    pub tracer: String,
    pub out: Vec<u8>,
    /// The tracer's stderr, host notices left out.
    pub stderr: Vec<String>,
    pub truth: Recording,
    /// The truth, paired.
    pub forest: Forest,
}

impl Traced {
    pub fn text(&self) -> String {
        super::lossy(&self.out)
    }

    /// Fails unless the tracer printed nothing of its own on stderr.
    pub fn assert_quiet(&self, what: &str) {
        assert!(
            self.stderr.is_empty(),
            "{what} under {}: stderr is not clean:\n{}",
            self.tracer,
            self.stderr.join("\n")
        );
    }
}

/// Runs `importprobe run RUN_ARGS --truth FILE` under a bundled script
/// (`strlen`: bpftrace's string limit, importprobe's default if `None`).
pub fn trace_sim(t: &Tracer, script: &str, run_args: &[&str], params: &[&str], strlen: Option<u32>) -> Traced {
    let _serial = tracing_lock();
    let params: Vec<String> = params.iter().map(|s| s.to_string()).collect();
    let (out, stderr, truth) = match t {
        Tracer::Bpftrace(b) => {
            let bundled = scripts::find(script).unwrap_or_else(|| panic!("no bundled script {script}"));
            let run = SimulatedRun {
                exe: &super::bin(),
                run_args,
                script: bundled,
                params: &params,
                deadline: DEADLINE,
                max_map_keys: Some(1_000_000),
                strlen,
            };
            let traced = simulated::trace(b, &run).unwrap_or_else(|e| panic!("{script} on {run_args:?}: {e}"));
            assert!(!traced.outcome.timed_out, "{script} on {run_args:?} timed out");
            (traced.output, traced.outcome.stderr, traced.truth)
        }
        Tracer::Dtrace(d) => {
            // The simulator waits for the tracer; dtrace attaches with -p
            // (see DtraceTarget::Pid for why not -c).
            let dir = tempfile::tempdir().unwrap();
            let truth = dir.path().join("truth.jsonl");
            let mut sim = std::process::Command::new(super::bin())
                .arg("run")
                .args(run_args)
                .args(["--wait-for-tracer=60", "--truth"])
                .arg(&truth)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            let mut err = std::io::BufReader::new(sim.stderr.take().unwrap());
            let mut line = String::new();
            std::io::BufRead::read_line(&mut err, &mut line).unwrap();
            assert!(line.contains("waiting"), "the simulator did not wait for a tracer: {line}");
            let drain = std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
            // The twins take the bpftrace scripts' positional parameters ($1 is ignored).
            let args = scripts::find(script).expect("bundled").positional_args(None, &params);
            let run = dtrace::run(d, &t.script_file(script), DtraceTarget::Pid(sim.id()), &args, DEADLINE)
                .unwrap_or_else(|e| panic!("dtrace {script}: {e}"));
            let sim_status = sim.wait().unwrap();
            let _ = drain.join();
            assert!(
                run.status.success() && !run.timed_out && sim_status.success(),
                "dtrace {script} on {run_args:?}: {} (simulator {sim_status})\n{}",
                run.status,
                run.stderr
            );
            let stderr = run.stderr.lines().map(str::to_owned).collect();
            (run.stdout, stderr, importprobe::events::truth::read(&truth).unwrap())
        }
    };
    assert!(!truth.events.is_empty(), "empty ground truth for {run_args:?}");
    let forest = Forest::build(&truth);
    assert!(forest.anomalies.is_empty(), "the truth does not pair: {:?}", forest.anomalies);
    Traced { tracer: t.label(), out, stderr, truth, forest }
}

/// What a traced CPython run produced.
pub struct PythonTrace {
    pub tracer: String,
    pub out: Vec<u8>,
    /// The tracer's stderr, host notices left out.
    pub stderr: Vec<String>,
    /// The interpreter's own stderr (its `-X importtime` lines).
    pub python_stderr: String,
    pub pid: Option<u32>,
}

/// Runs `argv` (a CPython command) under a bundled script.
pub fn trace_python(t: &Tracer, script: &str, argv: &[OsString]) -> PythonTrace {
    let _serial = tracing_lock();
    match t {
        Tracer::Bpftrace(b) => {
            let bundled = scripts::find(script).unwrap_or_else(|| panic!("no bundled script {script}"));
            let dir = tempfile::tempdir().unwrap();
            let err = dir.path().join("stderr");
            let mut req = TraceRequest::new(bundled.name, bundled.bpftrace, Target::Command(argv.to_vec()), b.clone());
            req.args = bundled.positional_args(None, &[]);
            req.deadline = Some(DEADLINE);
            req.max_map_keys = Some(1_000_000);
            req.command_output.stderr = Some(std::fs::File::create(&err).unwrap());
            let mut out = Vec::new();
            let outcome = runner::trace(req, &mut out).unwrap_or_else(|e| panic!("{script} on {argv:?}: {e}"));
            assert!(!outcome.timed_out, "{script} on {argv:?} timed out");
            PythonTrace {
                tracer: t.label(),
                out,
                stderr: outcome.stderr,
                python_stderr: std::fs::read_to_string(&err).unwrap(),
                pid: Some(outcome.pid),
            }
        }
        Tracer::Dtrace(d) => {
            let run = dtrace::run(d, &t.script_file(script), DtraceTarget::Command(argv), &[], DEADLINE).unwrap();
            assert!(
                run.status.success() && !run.timed_out && !run.hung,
                "dtrace {script} on {argv:?}: {} (left hanging by dtrace -c {} times)\n{}",
                run.status,
                run.hangs + u32::from(run.hung),
                run.stderr
            );
            // dtrace -c hands the command its own stderr: the importtime
            // lines come mixed with dtrace's (which must be none).
            let (python, own): (Vec<&str>, Vec<&str>) = run
                .stderr
                .lines()
                .partition(|l| l.starts_with("import time:") || l.starts_with("Traceback") || l.starts_with("  "));
            PythonTrace {
                tracer: t.label(),
                out: run.stdout,
                stderr: own.into_iter().map(str::to_owned).collect(),
                python_stderr: python.join("\n"),
                pid: None,
            }
        }
    }
}

/// One import pair of the ground truth.
#[derive(Debug, Clone)]
pub struct Pair {
    pub pid: u32,
    pub tid: u32,
    /// Index of this pair among its thread's pairs, in done order.
    pub seq: usize,
    pub depth: u32,
    pub module: String,
    pub name: NameState,
    pub found: bool,
    pub cum_ns: u64,
    pub self_ns: u64,
    /// Enclosing imports, outermost first.
    pub chain: Vec<String>,
    pub facts: PairFacts,
}

/// The ground truth's pairs, per thread in done order (the order of
/// `-X importtime` and of the scripts' per-import output).
pub fn pairs(forest: &Forest) -> Vec<Pair> {
    let mut first_of_thread = std::collections::HashSet::new();
    for &(pid, tid) in &forest.threads() {
        if let Some(&first) = forest.preorder(pid, tid).first() {
            first_of_thread.insert(first);
        }
    }
    let mut seqs: std::collections::HashMap<u32, usize> = Default::default();
    forest
        .in_done_order()
        .into_iter()
        .filter(|&id| forest.imports[id].state == ImportState::Complete)
        .map(|id| {
            let imp = &forest.imports[id];
            let seq = seqs.entry(imp.tid).or_default();
            *seq += 1;
            Pair {
                pid: imp.pid,
                tid: imp.tid,
                seq: *seq - 1,
                depth: imp.depth,
                module: imp.module.clone(),
                name: imp.name,
                found: imp.found == Some(true),
                cum_ns: forest.cumulative_ns(id),
                self_ns: forest.self_ns(id),
                chain: forest.parents(id).into_iter().map(str::to_owned).collect(),
                facts: PairFacts {
                    nested: forest.descendants(id) as u64,
                    first_hit: first_of_thread.contains(&id),
                    duration_ns: forest.cumulative_ns(id),
                },
            }
        })
        .collect()
}

/// Truth pairs per thread, in done order.
pub fn by_tid(pairs: &[Pair]) -> std::collections::BTreeMap<u32, Vec<Pair>> {
    let mut m: std::collections::BTreeMap<u32, Vec<Pair>> = Default::default();
    for p in pairs {
        m.entry(p.tid).or_default().push(p.clone());
    }
    m
}

/// Number of threads that imported something.
pub fn thread_count(pairs: &[Pair]) -> usize {
    pairs.iter().map(|p| p.tid).collect::<std::collections::HashSet<_>>().len()
}

/// The words a timing failure starts with ([`with_timing_retry`] looks for them).
const TIMING_FAILURE: &str = "times outside tolerance";

/// Times a script reported against the truth, judged by the library's one
/// tolerance model ([`importprobe::events::tolerance`]).
pub struct Timing(Judge);

impl Default for Timing {
    fn default() -> Self {
        Timing(Judge::new(Tolerance::default()))
    }
}

impl Timing {
    pub fn new() -> Self {
        Self::default()
    }

    /// Compares one traced time of `p` with its truth value.
    pub fn check(&mut self, what: &str, traced_ns: u64, truth_ns: u64, p: &Pair) {
        self.0.pair(what, traced_ns, truth_ns, &p.facts);
    }

    /// Fails unless the outliers are allowed for this many threads.
    pub fn finish(self, run: &str, threads: usize) {
        let v = self.0.verdict(threads);
        assert!(v.ok(), "{run}: {TIMING_FAILURE}:\n{}", v.problems("times").join("\n"));
        for o in &v.outliers {
            println!("{run}: tolerated outlier: {} off by {} ns", o.label, o.deviation_ns);
        }
    }
}

/// Runs one traced check, and once more if (and only if) it failed on
/// timing alone: the structure (modules, nesting, found flags) must be
/// exact every time, but on a loaded 2-core machine a burst of preemptions
/// between the simulator's clock reads and the probe traps can push more
/// times out of tolerance than [`Timing`] allows. A second run must pass.
pub fn with_timing_retry(run: &str, check: impl Fn() + std::panic::RefUnwindSafe) {
    let Err(panic) = std::panic::catch_unwind(&check) else { return };
    let msg = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    if !msg.contains(TIMING_FAILURE) {
        std::panic::resume_unwind(panic);
    }
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{run}: times outside tolerance on the first run; tracing it once more");
    check();
}

/// Per thread, what the probes carry.
/// What the probes carry for one event: kind, depth, module, name, found.
pub type Carried = (EventKind, u32, String, NameState, Option<bool>);

pub fn sequences(evs: &[ImportEvent]) -> BTreeMap<u32, Vec<Carried>> {
    let mut m: BTreeMap<u32, Vec<_>> = BTreeMap::new();
    for e in evs {
        m.entry(e.tid).or_default().push((e.kind, e.depth, e.module.clone(), e.name, e.found));
    }
    m
}

/// A traced recording against the truth, event for event: same per-thread
/// sequences, and each traced stamp a little after its truth stamp.
pub fn check_raw(what: &str, seen: &Recording, truth: &Recording) {
    assert_eq!(seen.lost_events, 0, "{what}: lost events");
    assert!(seen.warnings.is_empty(), "{what}: {:?}", seen.warnings);
    let pids = |r: &Recording| r.events.iter().map(|e| e.pid).collect::<std::collections::BTreeSet<u32>>();
    assert_eq!(pids(seen), pids(truth), "{what}: the processes that imported");
    assert_eq!(sequences(&seen.events), sequences(&truth.events), "{what}: per-thread event sequences");
    let tol = importprobe::events::tolerance::Tolerance::default();
    let mut truth_ts: HashMap<u32, Vec<u64>> = HashMap::new();
    for e in &truth.events {
        truth_ts.entry(e.tid).or_default().push(e.ts_ns);
    }
    let mut idx: HashMap<u32, usize> = HashMap::new();
    for e in &seen.events {
        let i = idx.entry(e.tid).or_default();
        let lag = e.ts_ns as i64 - truth_ts[&e.tid][*i] as i64;
        *i += 1;
        assert!(
            lag >= tol.min_lag_ns && lag <= tol.hard_ns,
            "{what}: {e:?} stamped {lag} ns after its truth (same clock?)"
        );
    }
}
