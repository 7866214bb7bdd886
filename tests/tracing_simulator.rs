//! The simulator traced for real: bpftrace attaches to the built binary's
//! USDT probes and must see exactly the events the simulator says it fired
//! (`--truth`): same modules, order and nesting per thread, same found flags,
//! zero missing, zero extra.
//!
//! Needs root, bpftrace and tracefs. Without them each test prints why and
//! passes, unless IMPORTPROBE_REQUIRE_TRACING=1 (CI), where it fails.

use importprobe::events::{EventKind, ImportEvent};
use std::collections::BTreeMap;

/// The capture script of the reference traces, with timestamp and tid.
const SCRIPT: &str = r#"
usdt:*:python:import__find__load__start { printf("E %llu %d %d start %s\n", nsecs, tid, @d[tid], str(arg0)); @d[tid]++; }
usdt:*:python:import__find__load__done { @d[tid]--; printf("E %llu %d %d done %d %s\n", nsecs, tid, @d[tid], arg1, str(arg0)); }
END { clear(@d); }
"#;

mod common;

/// One traced event: (ts, tid, depth, kind, found, module).
type Traced = (u64, u32, u32, EventKind, Option<bool>, String);

/// Runs `importprobe run ARGS` under `bpftrace -p` with [`SCRIPT`], returns
/// what bpftrace saw and the simulator's ground truth.
fn trace(args: &[&str]) -> (Vec<Traced>, Vec<ImportEvent>) {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("capture.bt");
    std::fs::write(&script, SCRIPT).unwrap();
    let run = common::trace_run(&script, args, 200, &[]);
    let stdout = String::from_utf8(run.out).unwrap();
    let stderr_bt = String::from_utf8_lossy(&run.err);
    assert!(!stderr_bt.contains("Lost") && !stdout.contains("Lost"), "bpftrace lost events: {stderr_bt}");
    let traced = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("E "))
        .map(|l| {
            let f: Vec<&str> = l.splitn(6, ' ').collect();
            let kind = if f[3] == "start" { EventKind::Start } else { EventKind::Done };
            let (found, module) = match kind {
                EventKind::Start => (None, [f[4], f.get(5).copied().unwrap_or("")].join(" ").trim_end().to_owned()),
                EventKind::Done => (Some(f[4] == "1"), f[5].to_owned()),
            };
            (f[0].parse().unwrap(), f[1].parse().unwrap(), f[2].parse().unwrap(), kind, found, module)
        })
        .collect();
    (traced, run.truth)
}

/// Per thread, the (depth, kind, found, module) sequence.
fn by_thread<'a>(
    evs: impl Iterator<Item = (u32, u32, EventKind, Option<bool>, &'a str)>,
) -> BTreeMap<u32, Vec<String>> {
    let mut m: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    for (tid, depth, kind, found, module) in evs {
        m.entry(tid).or_default().push(format!("{depth} {kind:?} {found:?} {module}"));
    }
    m
}

/// Asserts bpftrace saw exactly the ground truth, thread by thread, and that
/// its timestamps agree with the simulator's clock.
fn assert_matches_truth(traced: &[Traced], truth: &[ImportEvent]) {
    assert!(!truth.is_empty());
    assert_eq!(traced.len(), truth.len(), "missing or extra events");
    let seen = by_thread(traced.iter().map(|t| (t.1, t.2, t.3, t.4, t.5.as_str())));
    let real = by_thread(truth.iter().map(|e| (e.tid, e.depth, e.kind, e.found, e.module.as_str())));
    assert_eq!(seen, real);
    // Same clock: each traced timestamp follows the simulator's reading of
    // the same event closely (the uprobe trap comes after it).
    let mut truth_ts: BTreeMap<(u32, usize), u64> = BTreeMap::new();
    let mut idx: BTreeMap<u32, usize> = BTreeMap::new();
    for e in truth {
        let i = idx.entry(e.tid).or_default();
        truth_ts.insert((e.tid, *i), e.ts_ns);
        *i += 1;
    }
    idx.clear();
    let mut lags: Vec<i64> = traced
        .iter()
        .map(|t| {
            let i = idx.entry(t.1).or_default();
            let lag = t.0 as i64 - truth_ts[&(t.1, *i)] as i64;
            *i += 1;
            lag
        })
        .collect();
    lags.sort();
    let median = lags[lags.len() / 2];
    assert!(lags[0] >= 0, "a traced event precedes the simulator's clock reading: {}", lags[0]);
    assert!(median < 50_000, "median lag {median} ns: clocks disagree");
}

#[test]
fn refpkg_traced_matches_the_reference_trace_line_for_line() {
    if !common::can_trace() {
        return;
    }
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/refpkg.toml");
    let (traced, truth) = trace(&["--workload", manifest]);
    assert_matches_truth(&traced, &truth);
    let lines: Vec<String> = traced
        .iter()
        .map(|t| match t.3 {
            EventKind::Start => format!("{} start {}", t.2, t.5),
            EventKind::Done => format!("{} done {} {}", t.2, t.5, t.4.unwrap() as u8),
        })
        .collect();
    let reference = include_str!("fixtures/reference/cpython311-packages-cycle-failure.trace");
    assert_eq!(lines, reference.lines().collect::<Vec<_>>());
}

#[test]
fn demo_with_its_thread_pool_traced_matches_truth() {
    if common::can_trace() {
        let (traced, truth) = trace(&["--workload", "demo"]);
        assert!(truth.iter().map(|e| e.tid).collect::<std::collections::HashSet<_>>().len() >= 4);
        assert_matches_truth(&traced, &truth);
    }
}

#[test]
fn racing_threads_traced_match_truth() {
    if common::can_trace() {
        let (traced, truth) = trace(&["--workload", "threads", "--count", "8"]);
        assert_matches_truth(&traced, &truth);
    }
}

#[test]
fn a_deep_chain_traced_matches_truth() {
    if common::can_trace() {
        let (traced, truth) = trace(&["--workload", "deep", "--count", "3000", "--scale", "0.2"]);
        assert_eq!(truth.iter().map(|e| e.depth).max(), Some(2999));
        assert_matches_truth(&traced, &truth);
    }
}

#[test]
fn failures_and_seeded_random_graphs_traced_match_truth() {
    if common::can_trace() {
        let (traced, truth) =
            trace(&["--workload", "random", "--seed", "9", "--count", "400", "--failure-rate", "0.1"]);
        assert!(truth.iter().any(|e| e.found == Some(false)));
        assert_matches_truth(&traced, &truth);
    }
}
