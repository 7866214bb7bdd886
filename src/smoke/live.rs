//! Step 3: trace built-in simulator workloads for real, with the collector
//! `importprobe trace` uses by default (`import-capture`), and hold every
//! traced event against the ground truth the simulator wrote.

use super::check::{Check, Status};
use crate::events::compare::{self, ThreadDiff};
use crate::events::forest::Forest;
use crate::events::tamper::Tamper;
use crate::events::tolerance::{self, Judge, PairFacts, Tolerance};
use crate::events::{capture, truth, Recording};
use crate::tracer::bpftrace::Bpftrace;
use crate::tracer::scripts;
use crate::tracer::simulated::{self, SimulatedRun};
use std::path::PathBuf;
use std::time::{Duration, Instant};

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
    pub bpftrace: Bpftrace,
    /// Deadline of one workload's trace.
    pub timeout: Duration,
    pub tamper: Option<Tamper>,
    pub tolerance: Tolerance,
}

/// What one traced run produced.
struct Traced {
    pid: u32,
    truth: Recording,
    seen: Recording,
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
    let threads = compare::by_thread(&traced.seen.events).len();
    let mut checks = vec![Check::pass(
        format!("{prefix}/trace"),
        format!(
            "bpftrace {} captured {} events from {threads} thread(s) of pid {} in kernel maps; dump complete",
            opts.bpftrace.version,
            traced.seen.events.len(),
            traced.pid,
        ),
    )
    .with_details([format!("ran `importprobe run {}` under the bundled import-capture script", w.args.join(" "))])
    .timed(t)];
    let diffs = compare::compare(&traced.truth.events, &traced.seen.events);
    checks.push(events_check(&prefix, &traced, &diffs));
    checks.push(nesting_check(&prefix, &traced.seen));
    checks.push(timing_check(&prefix, &diffs, &traced, &opts.tolerance));
    checks
}

fn trace(w: &Workload, opts: &LiveOptions) -> Result<Traced, Check> {
    let name = format!("live/{}/trace", w.name);
    let script = scripts::find("import-capture").expect("bundled import-capture script");
    let mut args: Vec<&str> = w.args.to_vec();
    if let Some(how) = opts.tamper {
        args.extend(["--tamper-truth", how.as_str()]);
    }
    let run = SimulatedRun {
        exe: &opts.exe,
        run_args: &args,
        script,
        params: &[],
        deadline: opts.timeout,
        max_map_keys: Some(100_000),
        strlen: None,
    };
    let traced = simulated::trace(&opts.bpftrace, &run).map_err(|e| {
        let details = match &e {
            simulated::SimulatedError::Trace(t) => t.stderr().to_vec(),
            _ => Vec::new(),
        };
        Check::impossible(
            &name,
            format!("{e}"),
            "run `importprobe trace -- importprobe run --workload refpkg` to see why",
        )
        .with_details(details)
    })?;
    if traced.outcome.timed_out {
        return Err(Check::fail(&name, format!("the traced simulator did not finish within {:?}", opts.timeout))
            .with_details(traced.outcome.stderr));
    }
    let seen = capture::parse(&traced.output).map_err(|e| {
        Check::fail(&name, format!("the capture is broken: {e}")).with_details(traced.outcome.stderr.clone())
    })?;
    let pid = traced.outcome.pid;
    let mut seen_here = seen.clone();
    seen_here.events.retain(|e| e.pid == pid);
    Ok(Traced { pid, truth: traced.truth, seen: seen_here })
}

fn events_check(prefix: &str, traced: &Traced, diffs: &[ThreadDiff]) -> Check {
    let name = format!("{prefix}/events");
    let (missing, extra): (usize, usize) =
        diffs.iter().map(|d| (d.missing(), d.extra())).fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    if missing == 0 && extra == 0 {
        return Check::pass(
            name,
            format!(
                "all {} events seen in {} thread(s): none missing, none extra; order, depths, names and found flags agree",
                traced.truth.events.len(),
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
            traced.truth.events.len(),
            traced.seen.events.len()
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

fn nesting_check(prefix: &str, seen: &Recording) -> Check {
    let name = format!("{prefix}/nesting");
    let forest = Forest::build(seen);
    let problems: Vec<String> = forest.diagnostics();
    let max_depth = forest.imports.iter().map(|i| i.depth).max().unwrap_or(0);
    let stamps_back = seen.events.windows(2).filter(|w| w[0].tid == w[1].tid && w[1].ts_ns < w[0].ts_ns).count();
    if problems.is_empty() && stamps_back == 0 {
        Check::pass(
            name,
            format!(
                "every traced pair nests properly on its thread ({} thread(s), max depth {max_depth}); stamps never go back",
                forest.threads().len()
            ),
        )
    } else {
        let mut details: Vec<String> = problems.into_iter().take(8).collect();
        if stamps_back > 0 {
            details.push(format!("{stamps_back} event(s) stamped before the previous event of their thread"));
        }
        Check::fail(name, format!("{} nesting problem(s) in the traced events", details.len())).with_details(details)
    }
}

/// The workload of the process-tree check: the simulator fork+execs itself
/// two levels deep, every process first importing `encodings`.
pub const TREE_WORKLOAD: &[&str] = &["--workload", "spawn", "--count", "3"];

/// A simulator that fork+execs children, traced with `--follow-children`
/// and the default collector: every process of its ground truth is traced,
/// each from its very first import, event for event.
pub fn children_check(opts: &LiveOptions) -> Check {
    let t = Instant::now();
    let name = "live/children";
    let dir = match tempfile::Builder::new().prefix("importprobe-smoke-tree-").tempdir() {
        Ok(d) => d,
        Err(e) => return Check::impossible(name, format!("cannot create a temporary directory: {e}"), "set TMPDIR"),
    };
    let truth_path = dir.path().join("truth.jsonl");
    let mut argv: Vec<std::ffi::OsString> = vec![opts.exe.clone().into(), "run".into()];
    argv.extend(TREE_WORKLOAD.iter().map(Into::into));
    argv.extend(["--truth".into(), truth_path.clone().into()]);
    let mut req = crate::tracer::collect::request(
        crate::tracer::runner::Target::Command(argv),
        opts.bpftrace.clone(),
        crate::tracer::collect::DEFAULT_MAX_IMPORTS,
    );
    req.follow_children = true;
    req.objects = vec![opts.exe.clone()];
    req.deadline = Some(opts.timeout);
    let check = match crate::tracer::collect::collect(req) {
        Err(e) => Check::fail(name, format!("cannot trace the process tree: {e}")).with_details(e.stderr().to_vec()),
        Ok((seen, outcome)) => match truth::read(&truth_path) {
            Err(e) => Check::fail(name, format!("the simulator wrote no ground truth: {e:#}")),
            Ok(truth) => judge_tree(name, &truth, &seen, &outcome.problems),
        },
    };
    check.timed(t)
}

fn judge_tree(name: &str, truth: &Recording, seen: &Recording, problems: &[String]) -> Check {
    let first = |r: &Recording| {
        let mut m: std::collections::BTreeMap<u32, String> = Default::default();
        for e in &r.events {
            m.entry(e.pid).or_insert_with(|| e.display_name());
        }
        m
    };
    let (want, got) = (first(truth), first(seen));
    let diffs = compare::compare(&truth.events, &seen.events);
    let differing: Vec<&ThreadDiff> = diffs.iter().filter(|d| !d.is_clean()).collect();
    let mut details: Vec<String> = problems.to_vec();
    for (pid, m) in &want {
        match got.get(pid) {
            Some(g) if g == m => {}
            Some(g) => details.push(format!("pid {pid}: first traced import {g}, expected {m}")),
            None => details.push(format!("pid {pid}: not traced at all (its first import is {m})")),
        }
    }
    for d in &differing {
        details.push(format!("thread {}: {} missing, {} extra events", d.tid, d.missing(), d.extra()));
        details.extend(d.first_difference());
    }
    if details.is_empty() {
        Check::pass(
            name,
            format!(
                "`importprobe run {}` traced with --follow-children: all {} processes from their first import ({}), {} events, none missing or extra",
                TREE_WORKLOAD.join(" "),
                want.len(),
                want.values().next().map_or("-", String::as_str),
                truth.events.len()
            ),
        )
    } else {
        Check::fail(name, format!("the process tree was not traced exactly ({} problem(s))", details.len()))
            .with_details(details)
    }
}

/// Traced stamps follow their truth stamps by the trap's cost, and traced
/// pair durations match the true ones, within [`Tolerance`].
fn timing_check(prefix: &str, diffs: &[ThreadDiff], traced: &Traced, tol: &Tolerance) -> Check {
    let name = format!("{prefix}/timing");
    let lags: Vec<i64> = diffs.iter().flat_map(|d| d.matched().map(|(t, s)| s.ts_ns as i64 - t.ts_ns as i64)).collect();
    if lags.is_empty() {
        return Check::fail(name, "no traced event matched the truth: nothing to time");
    }
    let mut sorted = lags.clone();
    sorted.sort_unstable();
    let median = sorted[sorted.len() / 2];
    let mut problems = Vec::new();
    if median > tol.max_median_lag_ns || sorted[0] < tol.min_lag_ns {
        problems.push(format!(
            "traced stamps lag the truth by median {} µs, min {} µs (allowed {} .. {} µs)",
            tolerance::us(median),
            tolerance::us(sorted[0]),
            tolerance::us(tol.min_lag_ns),
            tolerance::us(tol.max_median_lag_ns)
        ));
    }
    let judge = pair_durations(&traced.truth, &traced.seen, tol);
    let threads = diffs.len();
    let verdict = judge.verdict(threads);
    problems.extend(verdict.problems("pair durations"));
    let summary = format!(
        "traced stamps lag the truth by median {} µs (min {}, max {}) over {} events; {}/{} pair durations within tolerance \
         ({} µs + {} µs per nested pair, +{} µs on a thread's first probe hit; {} outlier(s) allowed)",
        tolerance::us(median),
        tolerance::us(sorted[0]),
        tolerance::us(*sorted.last().expect("non-empty")),
        lags.len(),
        verdict.within,
        verdict.checked,
        tolerance::us(tol.base_ns),
        tolerance::us(tol.per_nested_ns),
        tolerance::us(tol.first_hit_ns),
        verdict.allowed_outliers,
    );
    let status = if problems.is_empty() { Status::Pass } else { Status::Fail };
    Check::new(name, status, summary).with_details(problems)
}

/// Each traced import's cumulative time against the truth's, thread by
/// thread in start order (the event check has already shown the two
/// forests have the same shape when it passes).
pub fn pair_durations(truth: &Recording, seen: &Recording, tol: &Tolerance) -> Judge {
    let (t, s) = (Forest::build(truth), Forest::build(seen));
    let mut judge = Judge::new(*tol);
    for &(pid, tid) in &t.threads() {
        let seen_pid = s.threads().iter().find(|&&(_, st)| st == tid).map(|&(p, _)| p).unwrap_or(pid);
        let (a, b) = (t.preorder(pid, tid), s.preorder(seen_pid, tid));
        for (k, (&i, &j)) in a.iter().zip(&b).enumerate() {
            if t.imports[i].module != s.imports[j].module {
                break;
            }
            let facts =
                PairFacts { nested: t.descendants(i) as u64, first_hit: k == 0, duration_ns: t.cumulative_ns(i) };
            let label = format!("thread {tid} {}", t.imports[i].display_name());
            judge.pair(label, s.cumulative_ns(j), t.cumulative_ns(i), &facts);
        }
    }
    judge
}
