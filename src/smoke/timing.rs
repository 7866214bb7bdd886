//! Are the traced timestamps plausible? The simulator stamps its ground
//! truth with CLOCK_MONOTONIC just before firing a probe; bpftrace's `nsecs`
//! is the same clock read inside the uprobe handler, so each traced stamp
//! must come a little AFTER its truth stamp (measured on a 2-core VM: median
//! ~1 µs). Occasionally the scheduler preempts a thread between its clock
//! read and the probe trap, which adds up to milliseconds to one event: so
//! the hard bound is loose, and the tight bounds are on the median and on
//! nearly every pair, not on every single event.

use super::compare::{describe, ThreadDiff};
use crate::events::EventKind;

/// The bounds a trace must meet.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// A traced stamp may precede its truth stamp by this much at most
    /// (one clock, so only reading jitter).
    pub min_skew_ns: i64,
    /// No traced stamp may lag its truth stamp by more (preemption bound;
    /// a wrong clock or wrong unit is off by far more).
    pub max_skew_ns: i64,
    /// The median lag (the probe trap's own cost).
    pub max_median_skew_ns: i64,
    /// A pair's traced duration must agree with the truth within this...
    pub pair_base_ns: i64,
    /// ...plus this per nesting level of the pair.
    pub pair_per_level_ns: i64,
    /// Extra tolerance for a pair opened by its thread's first traced
    /// event: the kernel sets up its per-thread uprobe state on a thread's
    /// first hit (measured 6 to 50 µs here).
    pub first_hit_ns: i64,
    /// Share of pairs allowed outside their tolerance (at least one): a
    /// thread preempted between its clock read and the probe trap is late
    /// by up to milliseconds; a broken tracer (wrong clock, stamps on the
    /// wrong events) is off on most pairs.
    pub outlier_share: f64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            min_skew_ns: -2_000,
            max_skew_ns: 50_000_000,
            max_median_skew_ns: 100_000,
            pair_base_ns: 20_000,
            pair_per_level_ns: 5_000,
            first_hit_ns: 200_000,
            outlier_share: 0.25,
        }
    }
}

/// One pair's duration against its reference.
#[derive(Debug, Clone)]
pub struct PairDeviation {
    pub label: String,
    /// traced minus reference, ns.
    pub deviation_ns: i64,
    pub tolerance_ns: i64,
}

/// The verdict on a set of pair deviations.
#[derive(Debug, Clone, Default)]
pub struct PairVerdict {
    pub pairs: usize,
    pub within: usize,
    pub allowed_outliers: usize,
    pub worst: Option<PairDeviation>,
    /// The pairs outside their tolerance.
    pub outliers: Vec<PairDeviation>,
}

impl PairVerdict {
    pub fn ok(&self) -> bool {
        self.pairs - self.within <= self.allowed_outliers
    }
}

/// Counts the pairs within tolerance; a few may fall outside.
pub fn judge_pairs(devs: Vec<PairDeviation>, limits: &Limits) -> PairVerdict {
    let pairs = devs.len();
    let allowed_outliers = ((pairs as f64 * limits.outlier_share).floor() as usize).max(1);
    let worst = devs.iter().max_by_key(|d| d.deviation_ns.abs() - d.tolerance_ns).cloned();
    let outliers: Vec<PairDeviation> = devs.into_iter().filter(|d| d.deviation_ns.abs() > d.tolerance_ns).collect();
    PairVerdict { pairs, within: pairs - outliers.len(), allowed_outliers, worst, outliers }
}

/// The timing verdict of a simulator trace.
#[derive(Debug, Clone, Default)]
pub struct Timing {
    pub events: usize,
    pub median_skew_ns: i64,
    pub min_skew_ns: i64,
    pub max_skew_ns: i64,
    pub pairs: PairVerdict,
    /// Failed conditions, one line each.
    pub problems: Vec<String>,
}

/// Judges the matched events of every thread.
pub fn judge(diffs: &[ThreadDiff], limits: &Limits) -> Timing {
    let mut skews = Vec::new();
    let mut problems = Vec::new();
    let mut devs = Vec::new();
    for d in diffs {
        // Open pairs of matched starts: (truth start, seen start).
        let mut open = Vec::new();
        for (truth, seen) in d.matched() {
            let skew = seen.ts_ns as i64 - truth.ts_ns as i64;
            skews.push(skew);
            if skew < limits.min_skew_ns || skew > limits.max_skew_ns {
                problems.push(format!(
                    "thread {}: {} traced {} µs after its truth stamp (allowed {} .. {} µs)",
                    d.tid,
                    describe(seen),
                    us(skew),
                    us(limits.min_skew_ns),
                    us(limits.max_skew_ns),
                ));
            }
            match truth.kind {
                EventKind::Start => open.push((truth, seen)),
                EventKind::Done => {
                    // A done whose start went unmatched closes nothing here.
                    if let Some(at) = open.iter().rposition(|(t, _)| t.depth == truth.depth) {
                        let (ts, ss) = open[at];
                        open.truncate(at);
                        let first_hit = d.seen.first().is_some_and(|f| std::ptr::eq(*f, ss));
                        let want = truth.ts_ns as i64 - ts.ts_ns as i64;
                        let got = seen.ts_ns as i64 - ss.ts_ns as i64;
                        devs.push(PairDeviation {
                            label: format!("thread {} {:?} at depth {}", d.tid, truth.module, truth.depth),
                            deviation_ns: got - want,
                            tolerance_ns: limits.pair_base_ns
                                + limits.pair_per_level_ns * truth.depth as i64
                                + if first_hit { limits.first_hit_ns } else { 0 },
                        });
                    }
                }
            }
        }
    }
    let events = skews.len();
    skews.sort_unstable();
    let median = skews.get(events / 2).copied().unwrap_or(0);
    if median > limits.max_median_skew_ns || median < limits.min_skew_ns {
        problems.push(format!(
            "median lag of traced stamps behind truth is {} µs (allowed {} .. {} µs)",
            us(median),
            us(limits.min_skew_ns),
            us(limits.max_median_skew_ns)
        ));
    }
    let pairs = judge_pairs(devs, limits);
    if !pairs.ok() {
        problems.push(format!(
            "{} of {} pair durations differ from the truth by more than {} µs + {} µs per level (at most {} may)",
            pairs.pairs - pairs.within,
            pairs.pairs,
            us(limits.pair_base_ns),
            us(limits.pair_per_level_ns),
            pairs.allowed_outliers
        ));
        problems.extend(
            pairs.outliers.iter().take(5).map(|o| {
                format!("  {}: off by {} µs (tolerance {} µs)", o.label, us(o.deviation_ns), us(o.tolerance_ns))
            }),
        );
    }
    Timing {
        events,
        median_skew_ns: median,
        min_skew_ns: skews.first().copied().unwrap_or(0),
        max_skew_ns: skews.last().copied().unwrap_or(0),
        pairs,
        problems,
    }
}

/// Nanoseconds as microseconds with one decimal.
pub fn us(ns: i64) -> String {
    format!("{:.1}", ns as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::ImportEvent;
    use crate::smoke::compare::{compare, tests::pair};

    fn stamped(events: &[ImportEvent], ts: &[u64]) -> Vec<ImportEvent> {
        events.iter().zip(ts).map(|(e, &t)| ImportEvent { ts_ns: t, ..e.clone() }).collect()
    }

    fn two_nested() -> Vec<ImportEvent> {
        let [s, d] = pair(1, 0, "a", true);
        let [cs, cd] = pair(1, 1, "b", true);
        vec![s, cs, cd, d]
    }

    #[test]
    fn a_small_lag_passes() {
        let truth = stamped(&two_nested(), &[1_000_000, 1_100_000, 1_300_000, 1_500_000]);
        let seen = stamped(&two_nested(), &[1_000_800, 1_101_000, 1_300_700, 1_500_900]);
        let t = judge(&compare(&truth, &seen), &Limits::default());
        assert!(t.problems.is_empty(), "{:?}", t.problems);
        assert_eq!((t.events, t.pairs.pairs, t.pairs.within), (4, 2, 2));
        assert_eq!(t.min_skew_ns, 700);
    }

    #[test]
    fn a_wrong_clock_or_early_stamps_fail() {
        let truth = stamped(&two_nested(), &[1_000_000, 1_100_000, 1_300_000, 1_500_000]);
        // Realtime instead of monotonic: decades off.
        let seen = stamped(
            &two_nested(),
            &[
                1_700_000_000_000_000_000,
                1_700_000_000_000_100_000,
                1_700_000_000_000_300_000,
                1_700_000_000_000_500_000,
            ],
        );
        assert!(!judge(&compare(&truth, &seen), &Limits::default()).problems.is_empty());
        // Traced before it fired.
        let seen = stamped(&two_nested(), &[990_000, 1_090_000, 1_290_000, 1_490_000]);
        assert!(!judge(&compare(&truth, &seen), &Limits::default()).problems.is_empty());
    }

    #[test]
    fn scrambled_durations_fail_but_one_outlier_is_tolerated() {
        let mut truth = Vec::new();
        let mut seen = Vec::new();
        for k in 0..10u64 {
            let [s, d] = pair(1, 0, &format!("m{k}"), true);
            let base = 1_000_000 + k * 1_000_000;
            truth.extend(stamped(&[s.clone(), d.clone()], &[base, base + 100_000]));
            // One pair (k == 3) is preempted: 2 ms late at its done.
            let late = if k == 3 { 2_000_000 } else { 1_000 };
            seen.extend(stamped(&[s, d], &[base + 1_000, base + 100_000 + late]));
        }
        let t = judge(&compare(&truth, &seen), &Limits::default());
        assert!(t.problems.is_empty(), "{:?}", t.problems);
        assert_eq!(t.pairs.within, 9);
        // Durations swapped around: most pairs are off.
        let mut wrong = seen.clone();
        for k in 0..10 {
            wrong[2 * k + 1].ts_ns += 50_000 * (k as u64 % 3);
        }
        let t = judge(&compare(&truth, &wrong), &Limits::default());
        assert!(t.problems.iter().any(|p| p.contains("pair durations")), "{:?}", t.problems);
    }
}
