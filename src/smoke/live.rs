//! Step 3: trace a built-in simulator workload for real and hold every
//! traced event against the ground truth the simulator wrote.
//!
//! The simulator (`importprobe run --wait-for-tracer`) blocks before its
//! first import until a tracer's uprobes are in place; bpftrace attaches
//! with `-p` and streams the bundled `import-events` script's output, which
//! is read while it runs ([`super::session`]).

use super::check::{Check, Status};
use super::compare::{self, ThreadDiff};
use super::session::Session;
use super::timing::{self, Limits};
use crate::events::tamper::Tamper;
use crate::events::{truth, ImportEvent};
use crate::tracer::{runner, scripts};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// How long the simulator waits for bpftrace to attach.
pub const WAIT_FOR_TRACER_SECS: u32 = 20;

/// How long bpftrace may take to notice the traced process ended.
pub const DRAIN: Duration = Duration::from_secs(5);

/// A built-in workload to trace.
#[derive(Debug, Clone, Copy)]
pub struct Workload {
    pub name: &'static str,
    /// Arguments of `importprobe run` choosing it.
    pub args: &'static [&'static str],
}

/// The workloads `importprobe smoke` traces: CPython's reference package
/// (parent nested in child, a cycle, a failing body twice, a from-import)
/// and four threads importing overlapping packages at once.
pub const WORKLOADS: &[Workload] = &[
    Workload { name: "refpkg", args: &["--workload", "refpkg"] },
    Workload { name: "threads", args: &["--workload", "threads", "--count", "4"] },
];

/// What a live check needs.
#[derive(Debug, Clone)]
pub struct LiveOptions {
    /// importprobe itself (runs the simulator).
    pub exe: PathBuf,
    pub bpftrace: PathBuf,
    /// Overall deadline of one workload's trace.
    pub timeout: Duration,
    pub tamper: Option<Tamper>,
    pub limits: Limits,
}

/// What one traced run produced.
struct Traced {
    pid: u32,
    truth: Vec<ImportEvent>,
    seen: Vec<ImportEvent>,
}

/// The checks of one workload: trace, events, nesting, timing.
pub fn check(w: &Workload, opts: &LiveOptions) -> Vec<Check> {
    let prefix = format!("live/{}", w.name);
    let t = Instant::now();
    let traced = match trace(w, opts) {
        Ok(tr) => tr,
        Err(c) => {
            let c = c.timed(t);
            let why = format!("no trace ({})", c.status.label());
            return vec![
                c,
                Check::skipped(format!("{prefix}/events"), &why),
                Check::skipped(format!("{prefix}/nesting"), &why),
                Check::skipped(format!("{prefix}/timing"), why),
            ];
        }
    };
    let threads = compare::by_thread(&traced.seen).len();
    let mut checks = vec![Check::pass(
        format!("{prefix}/trace"),
        format!(
            "bpftrace -p {} streamed {} events from {threads} thread(s); stream complete, no event lost",
            traced.pid,
            traced.seen.len()
        ),
    )
    .with_details([format!("ran {} under bpftrace -p with the bundled import-events script", describe(w, &opts.exe))])
    .timed(t)];
    let diffs = compare::compare(&traced.truth, &traced.seen);
    checks.push(events_check(&prefix, &traced, &diffs));
    checks.push(nesting_check(&prefix, &diffs));
    checks.push(timing_check(&prefix, &diffs, &opts.limits));
    checks
}

fn trace(w: &Workload, opts: &LiveOptions) -> Result<Traced, Check> {
    let name = format!("live/{}/trace", w.name);
    let deadline = Instant::now() + opts.timeout;
    let dir = tempfile::Builder::new()
        .prefix("importprobe-smoke-")
        .tempdir()
        .map_err(|e| Check::impossible(&name, format!("cannot create a temporary directory: {e}"), "set TMPDIR"))?;
    let truth_path = dir.path().join("truth.jsonl");
    let mut sim = Command::new(&opts.exe);
    sim.arg("run")
        .args(w.args)
        .arg(format!("--wait-for-tracer={WAIT_FOR_TRACER_SECS}"))
        .arg("--truth")
        .arg(&truth_path);
    if let Some(how) = opts.tamper {
        sim.args(["--tamper-truth", how.as_str()]);
    }
    let mut sim = Session::spawn(&mut sim).map_err(|e| {
        Check::impossible(&name, format!("cannot run {}: {e}", opts.exe.display()), "check the importprobe binary")
    })?;
    // The simulator says when it waits for the tracer.
    let waiting = std::iter::from_fn(|| sim.next_stderr_line(deadline)).find(|l| l.contains("waiting"));
    if waiting.is_none() {
        let end = sim.wait(Instant::now()).map_err(|e| Check::fail(&name, e.to_string()))?;
        return Err(Check::impossible(
            &name,
            "the simulator did not start waiting for a tracer",
            "run `importprobe run --workload refpkg --wait-for-tracer` to see why",
        )
        .with_details(end.stderr));
    }
    let pid = sim.pid();
    let script = scripts::find("import-events").expect("bundled import-events script");
    let mut bt = Command::new(&opts.bpftrace);
    bt.arg("-p").arg(pid.to_string()).arg("-e").arg(script.bpftrace).args(scripts::positional_args(None, &[]));
    runner::bpftrace_env(&mut bt);
    let bt = Session::spawn(&mut bt).map_err(|e| {
        Check::impossible(&name, format!("cannot run {}: {e}", opts.bpftrace.display()), "apt-get install -y bpftrace")
    })?;
    let sim_end = sim.wait(deadline).map_err(|e| Check::fail(&name, e.to_string()))?;
    // bpftrace ends when its pid does; with the simulator killed, at once.
    let drain = if sim_end.timed_out() { Duration::ZERO } else { DRAIN };
    let bt_end = bt.wait(Instant::now() + drain).map_err(|e| Check::fail(&name, e.to_string()))?;
    let bt_errors: Vec<String> = bt_end.stderr.iter().filter(|l| !runner::is_noise(l)).cloned().collect();
    if sim_end.timed_out() {
        // The simulator creates its truth file once the tracer is in place:
        // without it, bpftrace never attached; with it, the workload hung.
        let what = format!("killed after {:?}", opts.timeout);
        return Err(if truth_path.exists() {
            Check::fail(&name, format!("the traced simulator did not finish ({what})")).with_details(bt_errors)
        } else {
            Check::impossible(
                &name,
                format!("bpftrace did not attach to pid {pid} ({what}, with bpftrace)"),
                "run `bpftrace -p PID -e 'usdt::python:import__find__load__start {}'` by hand to see why",
            )
            .with_details(bt_errors)
        });
    }
    if !sim_end.success() && !truth_path.exists() {
        // It gives up when no tracer attaches: bpftrace could not trace it.
        // (With a truth file it did attach; a failing workload is compared
        // like any other.)
        let mut details = sim_end.stderr.clone();
        details.extend(bt_errors.iter().map(|l| format!("bpftrace: {l}")));
        return Err(Check::impossible(
            &name,
            format!("bpftrace did not attach to pid {pid} within {WAIT_FOR_TRACER_SECS} s"),
            "run `bpftrace -p PID -e 'usdt::python:import__find__load__start {}'` by hand to see why",
        )
        .with_details(details));
    }
    if bt_end.timed_out() {
        return Err(Check::fail(
            &name,
            format!("bpftrace did not exit within {DRAIN:?} after pid {pid} ended; interrupted"),
        )
        .with_details(bt_errors));
    }
    if !bt_end.success() {
        return Err(
            Check::fail(&name, format!("bpftrace failed ({})", bt_end.status.expect("ended"))).with_details(bt_errors)
        );
    }
    let seen = crate::events::stream::parse(&bt_end.stdout[..])
        .map_err(|e| Check::fail(&name, format!("the event stream is broken: {e}")).with_details(bt_errors.clone()))?;
    let seen: Vec<ImportEvent> = seen.into_iter().filter(|e| e.pid == pid).collect();
    let truth = truth::read(&truth_path)
        .map_err(|e| Check::fail(&name, format!("cannot read the simulator's ground truth: {e:#}")))?;
    Ok(Traced { pid, truth, seen })
}

fn events_check(prefix: &str, traced: &Traced, diffs: &[ThreadDiff]) -> Check {
    let name = format!("{prefix}/events");
    let (missing, extra): (usize, usize) =
        diffs.iter().map(|d| (d.missing(), d.extra())).fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    if missing == 0 && extra == 0 {
        return Check::pass(
            name,
            format!(
                "all {} events seen in {} thread(s): none missing, none extra; order, depths and found flags agree",
                traced.truth.len(),
                diffs.len()
            ),
        );
    }
    let flags = diffs.iter().map(found_flag_changes).sum::<usize>();
    let mut details = Vec::new();
    for d in diffs.iter().filter(|d| !d.is_clean()) {
        details.push(format!(
            "thread {}: {} missing, {} extra ({} expected, {} seen); first difference:",
            d.tid,
            d.missing(),
            d.extra(),
            d.expected.len(),
            d.seen.len()
        ));
        details.extend(d.first_difference());
    }
    let flags = if flags > 0 { format!(", {flags} of them a found flag that differs") } else { String::new() };
    Check::fail(
        name,
        format!(
            "{missing} expected event(s) missing, {extra} unexpected event(s) seen{flags} ({} expected, {} seen)",
            traced.truth.len(),
            traced.seen.len()
        ),
    )
    .with_details(details)
}

/// Adjacent missing/extra events that differ only in their found flag.
fn found_flag_changes(d: &ThreadDiff) -> usize {
    use compare::Op;
    d.ops
        .windows(2)
        .filter(|w| match (w[0], w[1]) {
            (Op::Missing(i), Op::Extra(j)) => {
                let (a, b) = (d.expected[i], d.seen[j]);
                a.kind == b.kind && a.module == b.module && a.depth == b.depth && a.found != b.found
            }
            _ => false,
        })
        .count()
}

fn nesting_check(prefix: &str, diffs: &[ThreadDiff]) -> Check {
    let name = format!("{prefix}/nesting");
    let mut details = Vec::new();
    for d in diffs {
        details.extend(compare::nesting_errors(&d.seen).into_iter().take(5).map(|e| format!("thread {}: {e}", d.tid)));
    }
    let max_depth = diffs.iter().flat_map(|d| d.seen.iter().map(|e| e.depth)).max().unwrap_or(0);
    if details.is_empty() {
        Check::pass(
            name,
            format!(
                "every traced pair nests properly on its thread ({} thread(s), max depth {max_depth}); stamps never go back",
                diffs.len()
            ),
        )
    } else {
        Check::fail(name, format!("{} nesting error(s) in the traced events", details.len())).with_details(details)
    }
}

fn timing_check(prefix: &str, diffs: &[ThreadDiff], limits: &Limits) -> Check {
    let name = format!("{prefix}/timing");
    let t = timing::judge(diffs, limits);
    let summary = format!(
        "traced stamps lag the truth by median {} µs (min {}, max {}) over {} events; {}/{} pair durations \
         within {} µs + {} µs/level (+{} µs on a thread's first uprobe hit; {} outlier(s) allowed)",
        timing::us(t.median_skew_ns),
        timing::us(t.min_skew_ns),
        timing::us(t.max_skew_ns),
        t.events,
        t.pairs.within,
        t.pairs.pairs,
        timing::us(limits.pair_base_ns),
        timing::us(limits.pair_per_level_ns),
        timing::us(limits.first_hit_ns),
        t.pairs.allowed_outliers,
    );
    if t.events == 0 {
        return Check::fail(name, "no traced event matched the truth: nothing to time");
    }
    let status = if t.problems.is_empty() { Status::Pass } else { Status::Fail };
    Check::new(name, status, summary).with_details(t.problems)
}

/// The simulator command line of a workload (for messages).
pub fn describe(w: &Workload, exe: &Path) -> String {
    format!("{} run {} --wait-for-tracer={WAIT_FOR_TRACER_SECS} --truth FILE", exe.display(), w.args.join(" "))
}
