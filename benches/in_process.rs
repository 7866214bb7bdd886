//! The in-process benchmarks of BENCHMARKS.md (divan): what the probes, the
//! simulator and the event model cost without any tracer. The figures that
//! need bpftrace or whole processes are in `tests/bench/run.sh`.
//!
//! `cargo bench --bench in_process` measures; `cargo test --release --benches`
//! runs each benchmark once, only to prove it still runs (CI).

use importprobe::events::forest::Forest;
use importprobe::events::{importtime, source, stream, truth, EventKind, ImportEvent, Origin, Recording};
use importprobe::simulator::{self, outputs::MemorySink, outputs::Outputs, probes};
use importprobe::workload::scenarios::{self, Costs};
use std::io::Write;
use std::time::Duration;

fn main() {
    divan::main();
}

const ZERO: Costs = Costs { find: Duration::ZERO, exec: Duration::ZERO };

/// Sizes of the simulator benchmarks (modules).
const SIZES: &[usize] = &[1_000, 100_000];

/// One start/done pair of the disabled probes, as the simulator fires them.
#[divan::bench]
fn disabled_probe_pair(b: divan::Bencher) {
    let name = c"json.decoder";
    b.bench(|| {
        probes::import_find_load_start(Some(divan::black_box(name)));
        probes::import_find_load_done(Some(divan::black_box(name)), divan::black_box(true));
    });
}

/// Untraced imports of zero-cost modules, one probe pair each: the
/// simulated import system's own speed (throughput in pairs).
#[divan::bench(args = SIZES)]
fn simulate_flat(b: divan::Bencher, n: usize) {
    let w = scenarios::flat(n, ZERO).unwrap();
    b.counter(divan::counter::ItemsCount::new(n)).bench(|| simulator::run(&w, &Outputs::new(None, None)));
}

/// The same on a tree of 8 children a module (nested pairs).
#[divan::bench(args = SIZES)]
fn simulate_stress(b: divan::Bencher, n: usize) {
    let w = scenarios::stress(n, ZERO).unwrap();
    b.counter(divan::counter::ItemsCount::new(n)).bench(|| simulator::run(&w, &Outputs::new(None, None)));
}

/// Compiling a workload: names, module table, statements.
#[divan::bench(args = SIZES)]
fn build_stress(b: divan::Bencher, n: usize) {
    b.counter(divan::counter::ItemsCount::new(n)).bench(|| scenarios::stress(n, ZERO).unwrap());
}

/// Pairing a recording's events into the import forest (every report's
/// first step), for a flat run of `n` imports.
#[divan::bench(args = SIZES)]
fn pair_events(b: divan::Bencher, n: usize) {
    let mut events = Vec::with_capacity(2 * n);
    for i in 0..n as u64 {
        let m = format!("flat_{i:06}");
        events.push(ImportEvent::start(10 * i, 1, 1, 0, m.clone()));
        events.push(ImportEvent::done(10 * i + 5, 1, 1, 0, m, true));
    }
    let rec = Recording::new(Origin::Truth, events);
    b.counter(divan::counter::ItemsCount::new(n)).bench(|| Forest::build(&rec));
}

/// The kinds of recording `report`, `diff`, `check` and `run --replay` read.
const SOURCES: &[&str] = &["truth", "events", "capture", "importtime"];

/// Imports in each recording read by [`read_into_forest`].
const READ_IMPORTS: usize = 100_000;

/// Reading a recording's text into the import forest (`source::load`, then
/// `Forest::build`: every report's first step), for the stress workload's
/// tree of 100,000 imports written as each kind of input. Throughput in
/// events (two an import) and in bytes.
#[divan::bench(args = SOURCES, sample_count = 20)]
fn read_into_forest(b: divan::Bencher, kind: &str) {
    let text = recording_text(kind, READ_IMPORTS);
    let events = 2 * READ_IMPORTS;
    b.counter(divan::counter::ItemsCount::new(events))
        .counter(divan::counter::BytesCount::new(text.len()))
        .bench(|| Forest::build(&source::load(divan::black_box(&text)).unwrap()));
}

/// The stress workload of `n` modules as the text of one kind of input:
/// its ground truth, or that recording as an `importprobe-events` stream,
/// an `importprobe-capture` dump (as bpftrace prints it: starts, then
/// dones, each sorted by key) or a `-X importtime` log.
fn recording_text(kind: &str, n: usize) -> Vec<u8> {
    let w = scenarios::stress(n, ZERO).unwrap();
    let kept = MemorySink::default();
    let outputs = Outputs::new(Some(Box::new(kept.clone())), None);
    simulator::run(&w, &outputs);
    outputs.finish().unwrap();
    let truth_text = kept.contents();
    let rec = truth::parse(&truth_text).unwrap();
    let mut out = Vec::new();
    match kind {
        "truth" => return truth_text,
        "events" => stream::write(&rec, &mut out).unwrap(),
        "capture" => {
            writeln!(out, "# importprobe-capture v1").unwrap();
            let mut by_key: Vec<&ImportEvent> = rec.events.iter().collect();
            by_key.sort_by_key(|e| (e.kind != EventKind::Start, e.tid, e.ts_ns));
            for e in by_key {
                match e.kind {
                    EventKind::Start => {
                        let name = &e.module;
                        writeln!(out, "@s[{}, {}]: ({}, 0, {}, {name})", e.tid, e.ts_ns, e.pid, name.len()).unwrap()
                    }
                    _ => writeln!(out, "@d[{}, {}]: ({}, {})", e.tid, e.ts_ns, e.pid, u8::from(e.found == Some(true)))
                        .unwrap(),
                }
            }
            writeln!(out, "# end").unwrap();
        }
        "importtime" => out = importtime::render(&Forest::build(&rec)).into_bytes(),
        other => panic!("unknown source {other}"),
    }
    out
}
