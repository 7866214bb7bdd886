//! The simulator traced for real: bpftrace attaches to the built binary's
//! USDT probes through the runner `importprobe trace` uses, with its
//! default collector, and must see exactly the events the simulator says it
//! fired (`--truth`): same modules, order, nesting, found flags and names
//! per thread, nothing missing or extra, stamps on the simulator's clock.
//! And the reference package, traced, is event for event what CPython 3.11
//! fired for it.
//!
//! Needs root, bpftrace and tracefs. Without them each test prints why and
//! passes, unless IMPORTPROBE_REQUIRE_TRACING=1 (CI), where it fails.

mod common;

use common::{check_raw, trace_sim, Tracer};
use importprobe::events::{capture, EventKind, Recording};

/// Traces `importprobe run ARGS` with the capture collector.
fn trace(args: &[&str]) -> Option<(Recording, Recording)> {
    let t = Tracer::Bpftrace(common::bpftrace()?);
    let tr = trace_sim(&t, "import-capture", args, &[], None);
    tr.assert_quiet("import-capture");
    let seen = capture::parse(&tr.out).unwrap_or_else(|e| panic!("{e}\n{}", tr.text()));
    check_raw(&format!("{args:?}"), &seen, &tr.truth);
    Some((seen, tr.truth))
}

#[test]
fn refpkg_traced_matches_the_reference_trace_line_for_line() {
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/refpkg.toml");
    let Some((seen, _)) = trace(&["--workload", manifest]) else { return };
    let lines: Vec<String> = seen
        .events
        .iter()
        .map(|e| match e.kind {
            EventKind::Done => format!("{} done {} {}", e.depth, e.module, u8::from(e.found == Some(true))),
            _ => format!("{} start {}", e.depth, e.module),
        })
        .collect();
    let reference = include_str!("fixtures/reference/cpython311-packages-cycle-failure.trace");
    assert_eq!(lines, reference.lines().collect::<Vec<_>>());
}

#[test]
fn demo_with_its_thread_pool_traced_matches_truth() {
    if let Some((_, truth)) = trace(&["--workload", "demo"]) {
        assert!(truth.events.iter().map(|e| e.tid).collect::<std::collections::HashSet<_>>().len() >= 4);
    }
}

#[test]
fn racing_threads_traced_match_truth() {
    trace(&["--workload", "threads", "--count", "8"]);
}

#[test]
fn a_deep_chain_traced_matches_truth() {
    if let Some((_, truth)) = trace(&["--workload", "deep", "--count", "3000", "--scale", "0.2"]) {
        assert_eq!(truth.events.iter().map(|e| e.depth).max(), Some(2999));
    }
}

#[test]
fn failures_and_seeded_random_graphs_traced_match_truth() {
    if let Some((_, truth)) = trace(&["--workload", "random", "--seed", "9", "--count", "400", "--failure-rate", "0.1"])
    {
        assert!(truth.events.iter().any(|e| e.found == Some(false)));
    }
}

/// A simulator that forks workers (one with a grandchild) and one that
/// fork+execs a chain of itself, traced as a tree with the default
/// collector: every process, event for event, and each child from its very
/// first import (the one `importprobe smoke` checks too).
#[test]
fn process_trees_traced_with_follow_children_match_truth_per_process() {
    let Some(bpftrace) = common::bpftrace() else { return };
    for (args, firsts) in [
        (&["--workload", "fork"][..], &["encodings", "pool.task", "pool.task", "grandchild_job"][..]),
        (&["--workload", "spawn", "--count", "3"][..], &["encodings", "encodings", "encodings"][..]),
    ] {
        let _serial = common::tracing_lock();
        let dir = tempfile::tempdir().unwrap();
        let truth_path = dir.path().join("truth.jsonl");
        let mut argv: Vec<std::ffi::OsString> = vec![common::bin().into(), "run".into()];
        argv.extend(args.iter().map(Into::into));
        argv.extend(["--truth".into(), truth_path.clone().into()]);
        let target = importprobe::tracer::runner::Target::Command(argv);
        let mut req = importprobe::tracer::collect::request(target, bpftrace.clone(), 100_000);
        req.follow_children = true;
        req.objects = vec![common::bin()];
        req.deadline = Some(common::DEADLINE);
        let (seen, outcome) = importprobe::tracer::collect::collect(req).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        assert!(outcome.stderr.is_empty() && outcome.problems.is_empty(), "{outcome:?}");
        let truth = importprobe::events::truth::read(&truth_path).unwrap();
        common::check_raw(&format!("{args:?}"), &seen, &truth);
        // Every process named, with its parent.
        let named: std::collections::BTreeSet<(u32, Option<u32>)> =
            seen.processes.iter().map(|p| (p.pid, p.ppid)).collect();
        for p in &truth.processes {
            assert!(named.contains(&(p.pid, p.ppid)), "{args:?}: {p:?} not among {named:?}");
        }
        let mut first: Vec<(u32, &str)> = Vec::new();
        for e in &seen.events {
            if !first.iter().any(|(p, _)| *p == e.pid) {
                first.push((e.pid, e.module.as_str()));
            }
        }
        let mut got: Vec<&str> = first.iter().map(|(_, m)| *m).collect();
        got.sort();
        let mut want = firsts.to_vec();
        want.sort();
        assert_eq!(got, want, "{args:?}: each process's first traced import");
    }
}
