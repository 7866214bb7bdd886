//! Several runs of one program reduced to one profile: the medians `check`
//! gates on, since a single start-up time is noisy (page cache, CPU
//! frequency, other load) and the median ignores the odd slow run.
//!
//! Every number is the median of that number over the runs, taken on its
//! own: the total is the median of the totals, not the sum of the modules'
//! medians. A module missing from a run counts as 0 in that run (it was
//! not imported, so it cost nothing). With an even number of runs the
//! median is the mean of the two middle values.

use super::profile::{ModuleCost, Profile};

/// The median of some values (0 for none).
pub fn median(values: &mut [u64]) -> u64 {
    if values.is_empty() {
        return 0;
    }
    values.sort_unstable();
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        // Halves first: no overflow even for values near u64::MAX.
        values[mid - 1] / 2 + values[mid] / 2 + (values[mid - 1] % 2 + values[mid] % 2) / 2
    }
}

/// The median profile of several runs. Blind spots and damage are those of
/// any run (the union, and the sum), never averaged away.
pub fn of_runs(runs: &[Profile]) -> Profile {
    let mut out = Profile {
        laid_out: runs.iter().any(|r| r.laid_out),
        damage: runs.iter().map(|r| r.damage).sum(),
        ..Profile::default()
    };
    let each = |f: &dyn Fn(&Profile) -> u64| median(&mut runs.iter().map(f).collect::<Vec<_>>());
    out.total_ns = each(&|r| r.total_ns);
    out.imports = each(&|r| r.imports);
    for r in runs {
        for b in &r.blind_spots {
            if !out.blind_spots.contains(b) {
                out.blind_spots.push(b.clone());
            }
        }
        for key in r.modules.keys() {
            out.modules.entry(key.clone()).or_default();
        }
    }
    for (key, cost) in out.modules.iter_mut() {
        let per_run: Vec<Option<&ModuleCost>> = runs.iter().map(|r| r.modules.get(key)).collect();
        let each = |f: fn(&ModuleCost) -> u64| median(&mut per_run.iter().map(|c| c.map_or(0, f)).collect::<Vec<_>>());
        *cost = ModuleCost {
            imports: each(|c| c.imports),
            failed: each(|c| c.failed),
            partial: per_run.iter().flatten().map(|c| c.partial).max().unwrap_or(0),
            cached: each(|c| c.cached),
            self_ns: each(|c| c.self_ns),
            cumulative_ns: each(|c| c.cumulative_ns),
            first_importer: per_run.iter().flatten().find_map(|c| c.first_importer.clone()),
        };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::profile::ModuleKey;

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median(&mut []), 0);
        assert_eq!(median(&mut [7]), 7);
        assert_eq!(median(&mut [9, 1, 5]), 5);
        assert_eq!(median(&mut [4, 1, 10, 2]), 3);
        assert_eq!(median(&mut [u64::MAX, u64::MAX]), u64::MAX);
        assert_eq!(median(&mut [1, 2]), 1, "the mean of 1 and 2, rounded down");
    }

    fn run(total: u64, json_cum: Option<u64>) -> Profile {
        let mut p = Profile { total_ns: total, imports: 1, ..Profile::default() };
        if let Some(c) = json_cum {
            p.modules
                .insert(ModuleKey::full("json"), ModuleCost { imports: 1, cumulative_ns: c, ..Default::default() });
        }
        p
    }

    #[test]
    fn a_module_missing_from_a_run_counts_as_zero_there() {
        let m = of_runs(&[run(100, Some(40)), run(300, None), run(200, Some(60))]);
        assert_eq!(m.total_ns, 200);
        assert_eq!(m.module("json").unwrap().cumulative_ns, 40);
        assert_eq!(m.module("json").unwrap().imports, 1);
        let mut damaged = run(1, None);
        damaged.damage = 2;
        damaged.blind_spots.push("numexpr".into());
        let m = of_runs(&[damaged, run(3, None)]);
        assert_eq!((m.damage, m.blind_spots.len()), (2, 1));
    }
}
