//! The in-process benchmarks of BENCHMARKS.md (divan): what the probes, the
//! simulator and the event model cost without any tracer. The figures that
//! need bpftrace or whole processes are in `tests/bench/run.sh`.
//!
//! `cargo bench --bench in_process` measures; `cargo test --release --benches`
//! runs each benchmark once, only to prove it still runs (CI).

use importprobe::events::forest::Forest;
use importprobe::events::{ImportEvent, Origin, Recording};
use importprobe::simulator::{self, outputs::Outputs, probes};
use importprobe::workload::scenarios::{self, Costs};
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
