//! One recording at a glance: what the `tree` and `top` reports open with,
//! and what `check` counts.
//!
//! "Import time" is the time a thread spent inside top-level imports: the
//! sum of the cumulative times of its imports that no other import encloses
//! (so every nanosecond is counted once per thread), summed over a process's
//! threads. Threads that import at the same time each count their own time,
//! as the self times of all their imports add up to it.

use crate::events::blind_spots::{self, BlindSpot};
use crate::events::forest::{Forest, ImportId, ImportState};

/// Import time and counts of one thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadTotal {
    pub pid: u32,
    pub tid: u32,
    pub import_ns: u64,
    pub imports: usize,
}

/// Import time and counts of one process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessTotal {
    pub pid: u32,
    /// As the source named it; empty when unknown.
    pub command: String,
    pub import_ns: u64,
    pub imports: usize,
    pub failed: usize,
    pub threads: Vec<ThreadTotal>,
}

/// A recording summed up.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Imports with a probe pair (complete, unfinished, begun before the
    /// trace); `-X importtime=2` cached lines are counted apart.
    pub imports: usize,
    pub cached: usize,
    pub failed: usize,
    pub unfinished: usize,
    pub begun_before_trace: usize,
    pub processes: Vec<ProcessTotal>,
    /// Import time of all processes.
    pub total_ns: u64,
    /// The slowest imports by self time, slowest first.
    pub slowest_self: Vec<ImportId>,
    /// The slowest imports by cumulative time, slowest first.
    pub slowest_cumulative: Vec<ImportId>,
    pub lost_events: u64,
    /// Anomalies that mean lost or corrupt events.
    pub corruption: usize,
    /// All anomalies, the normal edge-of-trace ones included.
    pub anomalies: usize,
    pub blind_spots: Vec<BlindSpot>,
}

impl Summary {
    /// Sums up a forest, keeping the `top` slowest imports of each kind.
    pub fn of(forest: &Forest, top: usize) -> Summary {
        let timed = |id: &ImportId| forest.imports[*id].state != ImportState::Cached;
        let mut processes: Vec<ProcessTotal> = forest
            .processes
            .iter()
            .map(|p| ProcessTotal {
                pid: p.info.pid,
                command: p.info.command.clone(),
                import_ns: 0,
                imports: 0,
                failed: 0,
                threads: p
                    .threads
                    .iter()
                    .map(|&tid| ThreadTotal { pid: p.info.pid, tid, import_ns: 0, imports: 0 })
                    .collect(),
            })
            .collect();
        let mut thread_of = std::collections::HashMap::new();
        for (pi, p) in processes.iter().enumerate() {
            for (ti, t) in p.threads.iter().enumerate() {
                thread_of.insert((t.pid, t.tid), (pi, ti));
            }
        }
        let mut s = Summary {
            imports: 0,
            cached: 0,
            failed: 0,
            unfinished: 0,
            begun_before_trace: 0,
            processes: Vec::new(),
            total_ns: 0,
            slowest_self: Vec::new(),
            slowest_cumulative: Vec::new(),
            lost_events: forest.lost_events,
            corruption: forest.anomalies.iter().filter(|a| a.is_corruption()).count(),
            anomalies: forest.anomalies.len(),
            blind_spots: blind_spots::find(forest),
        };
        for (id, imp) in forest.imports.iter().enumerate() {
            match imp.state {
                ImportState::Cached => {
                    s.cached += 1;
                    continue;
                }
                ImportState::Unfinished => s.unfinished += 1,
                ImportState::BegunBeforeTrace => s.begun_before_trace += 1,
                ImportState::Complete => {}
            }
            s.imports += 1;
            s.failed += usize::from(imp.failed());
            if let Some(&(pi, ti)) = thread_of.get(&(imp.pid, imp.tid)) {
                let p = &mut processes[pi];
                p.imports += 1;
                p.failed += usize::from(imp.failed());
                p.threads[ti].imports += 1;
                if imp.parent.is_none() {
                    let ns = forest.cumulative_ns(id);
                    p.import_ns += ns;
                    p.threads[ti].import_ns += ns;
                }
            }
        }
        s.total_ns = processes.iter().map(|p| p.import_ns).sum();
        s.processes = processes;
        let ids: Vec<ImportId> = (0..forest.imports.len()).filter(timed).collect();
        s.slowest_self = slowest(&ids, top, |id| forest.self_ns(id));
        s.slowest_cumulative = slowest(&ids, top, |id| forest.cumulative_ns(id));
        s
    }

    /// Threads over all processes.
    pub fn threads(&self) -> usize {
        self.processes.iter().map(|p| p.threads.len()).sum()
    }

    /// Whether the recording is known to be missing events.
    pub fn is_incomplete(&self) -> bool {
        self.lost_events > 0 || self.corruption > 0
    }
}

/// The `n` largest by `key`, largest first, ties in recording order.
fn slowest(ids: &[ImportId], n: usize, key: impl Fn(ImportId) -> u64) -> Vec<ImportId> {
    let mut keyed: Vec<(u64, ImportId)> = ids.iter().map(|&id| (key(id), id)).collect();
    let by = |a: &(u64, ImportId), b: &(u64, ImportId)| b.0.cmp(&a.0).then(a.1.cmp(&b.1));
    if n < keyed.len() && n > 0 {
        keyed.select_nth_unstable_by(n - 1, by);
        keyed.truncate(n);
    }
    keyed.sort_unstable_by(by);
    keyed.truncate(n);
    keyed.into_iter().map(|(_, id)| id).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::forest::tests::{d, forest, package_and_failure, s, two_threads};

    #[test]
    fn counts_and_totals_a_recording() {
        let f = forest(package_and_failure());
        let sum = Summary::of(&f, 2);
        assert_eq!((sum.imports, sum.failed, sum.unfinished, sum.threads()), (4, 1, 0, 1));
        assert_eq!(sum.total_ns, 11_000 + 400, "a.b and nope are the top-level imports");
        let names = |ids: &[ImportId]| ids.iter().map(|&i| f.imports[i].module.clone()).collect::<Vec<_>>();
        assert_eq!(names(&sum.slowest_self), ["a.b", "json"]);
        assert_eq!(names(&sum.slowest_cumulative), ["a.b", "json"]);
        assert!(!sum.is_incomplete());
    }

    #[test]
    fn threads_count_their_own_time_and_open_imports_are_counted() {
        let mut evs = two_threads();
        evs.push(s(900, 3, 0, "slow"));
        let f = forest(evs);
        let sum = Summary::of(&f, 10);
        assert_eq!(sum.threads(), 3);
        let t = &sum.processes[0].threads;
        assert_eq!((t[0].import_ns, t[1].import_ns, t[2].import_ns), (500, 350, 0));
        assert_eq!(sum.unfinished, 1);
        assert_eq!(sum.slowest_self.len(), 5);
    }

    #[test]
    fn slowest_keeps_ties_in_order_and_handles_small_inputs() {
        assert_eq!(slowest(&[0, 1, 2, 3], 2, |id| [5, 9, 9, 1][id]), [1, 2]);
        assert_eq!(slowest(&[0, 1], 5, |id| id as u64), [1, 0]);
        assert!(slowest(&[0, 1], 0, |id| id as u64).is_empty());
        let f = forest(vec![d(5, 1, 0, "x", true)]);
        assert_eq!(Summary::of(&f, 5).begun_before_trace, 1);
    }
}
