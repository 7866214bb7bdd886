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
