//! Fires N import probe pairs, as the simulator does, with no tracer
//! attached: the loop whose instructions `tests/bench/probes.sh` counts
//! with callgrind, built with the probes (default) and without them
//! (`--no-default-features`), so the difference is what the two disabled
//! probes cost.
//!
//! `cargo run --release --example probe_pairs -- [PAIRS]` prints the time
//! per pair too (min and median of 15 rounds).

use importprobe::simulator::probes::{import_find_load_done, import_find_load_start};
use std::ffi::CStr;
use std::hint::black_box;
use std::time::Instant;

/// The measured loop: one start and one done per iteration, each probe from
/// its single call site (one semaphore per probe name).
#[inline(never)]
#[no_mangle]
pub fn importprobe_bench_fire_pairs(name: &CStr, pairs: u64) {
    for _ in 0..pairs {
        import_find_load_start(black_box(name));
        import_find_load_done(black_box(name), black_box(true));
    }
}

fn main() {
    let pairs: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(10_000_000);
    let name = c"json.decoder";
    let mut ns: Vec<f64> = (0..15)
        .map(|_| {
            let t = Instant::now();
            importprobe_bench_fire_pairs(name, pairs);
            t.elapsed().as_nanos() as f64 / pairs as f64
        })
        .collect();
    ns.sort_by(f64::total_cmp);
    println!(
        "probes {}: {pairs} pairs, {:.3} ns/pair min, {:.3} ns/pair median",
        if cfg!(feature = "probes") { "compiled in" } else { "compiled out" },
        ns[0],
        ns[ns.len() / 2]
    );
}
