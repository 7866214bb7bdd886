//! Fires N import probe pairs, as the simulator does, with no tracer
//! attached: the loop whose instructions `tests/bench/probes.sh` counts
//! with callgrind, built with the probes (default) and without them
//! (`--no-default-features`), so the difference is what the two disabled
//! probes cost.
//!
//! The probes' arguments are read with volatile loads, which neither build
//! may drop: both do the same work to produce them, and only the probes
//! differ (a `black_box`ed argument is reloaded only where it is used,
//! which would charge the probes for their caller's work).
//!
//! `cargo run --release --example probe_pairs -- [PAIRS]` prints the time
//! per pair too (min and median of 15 rounds).

use importprobe::simulator::probes::{import_find_load_done, import_find_load_start};
use std::ffi::CStr;
use std::time::Instant;

static NAME: &CStr = c"json.decoder";
static FOUND: bool = true;

/// The measured loop: one start and one done per iteration, each probe from
/// its single call site (one semaphore per probe name).
#[inline(never)]
#[no_mangle]
pub fn importprobe_bench_fire_pairs(pairs: u64) {
    for _ in 0..pairs {
        // SAFETY: reads of initialised statics.
        let (name, found) = unsafe { (std::ptr::read_volatile(&NAME), std::ptr::read_volatile(&FOUND)) };
        import_find_load_start(Some(name));
        import_find_load_done(Some(name), found);
    }
}

fn main() {
    let pairs: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(10_000_000);
    let mut ns: Vec<f64> = (0..15)
        .map(|_| {
            let t = Instant::now();
            importprobe_bench_fire_pairs(pairs);
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
