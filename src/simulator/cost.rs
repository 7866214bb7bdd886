//! Spending a module's find and exec costs as real wall-clock time.
//!
//! Short waits spin on the monotonic clock so a tracer measures durations to
//! the microsecond (a sleep would add scheduler latency); long ones sleep for
//! most of the time and spin the rest.

use std::time::{Duration, Instant};

/// Waits shorter than this spin; longer ones sleep first.
const SPIN_LIMIT: Duration = Duration::from_millis(2);
/// How much of a long wait is left to spin after sleeping, to absorb wake-up lag.
const SLEEP_SLACK: Duration = Duration::from_micros(500);

/// Spends `d` of wall-clock time.
pub fn spend(d: Duration) {
    if d.is_zero() {
        return;
    }
    let deadline = Instant::now() + d;
    if d > SPIN_LIMIT {
        std::thread::sleep(d - SLEEP_SLACK);
    }
    while Instant::now() < deadline {
        std::hint::spin_loop();
    }
}

/// Spends time until CLOCK_MONOTONIC reaches `deadline_ns` (at once if it
/// has): replays keep to a recording's offsets this way, so the simulator's
/// own overhead is absorbed instead of adding up.
pub fn spend_until(deadline_ns: u64) {
    let now = super::clock::monotonic_ns();
    if deadline_ns > now {
        spend(Duration::from_nanos(deadline_ns - now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spends_at_least_the_cost() {
        for d in [Duration::from_micros(50), Duration::from_millis(3)] {
            let t = Instant::now();
            spend(d);
            assert!(t.elapsed() >= d);
        }
    }

    #[test]
    fn spends_until_a_deadline_and_not_past_one() {
        let t = Instant::now();
        spend_until(super::super::clock::monotonic_ns() + 200_000);
        assert!(t.elapsed() >= Duration::from_micros(200));
        let t = Instant::now();
        spend_until(0);
        assert!(t.elapsed() < Duration::from_millis(1));
    }
}
