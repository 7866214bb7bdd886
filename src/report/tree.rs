//! From probe events to imports: pairs each start with its done, per thread,
//! and nests them. Every report format renders this.
//!
//! CPython fires a done for the innermost open start of its thread, at the
//! depth that start had. A stream that breaks this (lost events, a tracer
//! attached mid-import, a stream cut short) is reported as [`Anomaly`]s and
//! the affected events are left out: no import is ever invented.

use crate::events::{EventKind, ImportEvent};
use std::collections::HashMap;

/// One import: a start paired with its done (or a start never closed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Import {
    pub module: String,
    pub pid: u32,
    pub tid: u32,
    /// Nesting level on its thread (0 = imported by top-level code).
    pub depth: u32,
    pub start_ns: u64,
    /// `None` while still open when the events end.
    pub end_ns: Option<u64>,
    /// The done probe's `found` (false: not found, or its body raised).
    pub found: Option<bool>,
    /// The enclosing import on the same thread.
    pub parent: Option<usize>,
    /// Nested imports, in start order.
    pub children: Vec<usize>,
    /// The tracer cut the module name at its string limit.
    pub truncated: bool,
    /// Position of the closing done among all events (report order for
    /// importtime, which prints an import when it ends).
    pub done_index: Option<usize>,
}

impl Import {
    pub fn is_complete(&self) -> bool {
        self.end_ns.is_some()
    }

    /// Wall time from start to done, nested imports included.
    pub fn cumulative_ns(&self) -> Option<u64> {
        self.end_ns.map(|e| e.saturating_sub(self.start_ns))
    }
}

/// Something in the events that does not fit CPython's nesting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Anomaly {
    /// A done with no open start on its thread.
    DoneWithoutStart { pid: u32, tid: u32, module: String, ts_ns: u64 },
    /// A done whose module is not the innermost open start's.
    Mismatch { pid: u32, tid: u32, open: String, done: String, ts_ns: u64 },
    /// An event whose recorded depth disagrees with the open starts before it.
    Depth { pid: u32, tid: u32, module: String, recorded: u32, expected: u32, ts_ns: u64 },
    /// A start still open when the events end (trace stopped mid-import).
    Unclosed { pid: u32, tid: u32, module: String, start_ns: u64 },
    /// A start abandoned because a done for an outer import came first.
    LostDone { pid: u32, tid: u32, module: String, start_ns: u64 },
}

impl Anomaly {
    /// Unclosed imports are normal when a trace is interrupted; everything
    /// else means events were lost or corrupted.
    pub fn is_corruption(&self) -> bool {
        !matches!(self, Anomaly::Unclosed { .. })
    }
}

impl std::fmt::Display for Anomaly {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Anomaly::DoneWithoutStart { pid, tid, module, ts_ns } => {
                write!(f, "pid {pid} thread {tid}: done of {module:?} at {ts_ns} ns without a start (ignored)")
            }
            Anomaly::Mismatch { pid, tid, open, done, ts_ns } => write!(
                f,
                "pid {pid} thread {tid}: done of {done:?} at {ts_ns} ns while {open:?} is the innermost open import (ignored)"
            ),
            Anomaly::Depth { pid, tid, module, recorded, expected, ts_ns } => write!(
                f,
                "pid {pid} thread {tid}: {module:?} at {ts_ns} ns has depth {recorded}, expected {expected} (events lost?)"
            ),
            Anomaly::Unclosed { pid, tid, module, start_ns } => {
                write!(f, "pid {pid} thread {tid}: import of {module:?} started at {start_ns} ns never finished")
            }
            Anomaly::LostDone { pid, tid, module, start_ns } => write!(
                f,
                "pid {pid} thread {tid}: import of {module:?} started at {start_ns} ns lost its done (dropped)"
            ),
        }
    }
}

/// All imports of a trace, in start order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportTree {
    pub imports: Vec<Import>,
    /// Imports with no parent, in start order.
    pub roots: Vec<usize>,
    pub anomalies: Vec<Anomaly>,
}

impl ImportTree {
    /// Pairs the events. They are taken in timestamp order (ties keep their
    /// input order), as a tracer's per-CPU buffers may interleave threads.
    pub fn build(events: &[ImportEvent]) -> ImportTree {
        let mut order: Vec<usize> = (0..events.len()).collect();
        order.sort_by_key(|&i| events[i].ts_ns);
        let mut tree = ImportTree::default();
        let mut open: HashMap<(u32, u32), Vec<usize>> = HashMap::new();
        for (n, &i) in order.iter().enumerate() {
            let ev = &events[i];
            let stack = open.entry((ev.pid, ev.tid)).or_default();
            match ev.kind {
                EventKind::Start => {
                    let expected = stack.len() as u32;
                    if ev.depth != expected {
                        tree.anomalies.push(Anomaly::Depth {
                            pid: ev.pid,
                            tid: ev.tid,
                            module: ev.module.clone(),
                            recorded: ev.depth,
                            expected,
                            ts_ns: ev.ts_ns,
                        });
                    }
                    let id = tree.imports.len();
                    let parent = stack.last().copied();
                    tree.imports.push(Import {
                        module: ev.module.clone(),
                        pid: ev.pid,
                        tid: ev.tid,
                        depth: expected,
                        start_ns: ev.ts_ns,
                        end_ns: None,
                        found: None,
                        parent,
                        children: Vec::new(),
                        truncated: ev.truncated,
                        done_index: None,
                    });
                    match parent {
                        Some(p) => tree.imports[p].children.push(id),
                        None => tree.roots.push(id),
                    }
                    stack.push(id);
                }
                EventKind::Done => {
                    let Some(&top) = stack.last() else {
                        tree.anomalies.push(Anomaly::DoneWithoutStart {
                            pid: ev.pid,
                            tid: ev.tid,
                            module: ev.module.clone(),
                            ts_ns: ev.ts_ns,
                        });
                        continue;
                    };
                    if tree.imports[top].module != ev.module {
                        // The done may close an outer import whose inner
                        // dones were lost; otherwise it belongs to nothing.
                        match stack.iter().rposition(|&id| tree.imports[id].module == ev.module) {
                            Some(pos) => {
                                for id in stack.drain(pos + 1..).rev() {
                                    let imp = &tree.imports[id];
                                    tree.anomalies.push(Anomaly::LostDone {
                                        pid: ev.pid,
                                        tid: ev.tid,
                                        module: imp.module.clone(),
                                        start_ns: imp.start_ns,
                                    });
                                    detach(&mut tree, id);
                                }
                            }
                            None => {
                                tree.anomalies.push(Anomaly::Mismatch {
                                    pid: ev.pid,
                                    tid: ev.tid,
                                    open: tree.imports[top].module.clone(),
                                    done: ev.module.clone(),
                                    ts_ns: ev.ts_ns,
                                });
                                continue;
                            }
                        }
                    }
                    let id = stack.pop().expect("stack checked non-empty");
                    let expected = stack.len() as u32;
                    if ev.depth != expected {
                        tree.anomalies.push(Anomaly::Depth {
                            pid: ev.pid,
                            tid: ev.tid,
                            module: ev.module.clone(),
                            recorded: ev.depth,
                            expected,
                            ts_ns: ev.ts_ns,
                        });
                    }
                    let imp = &mut tree.imports[id];
                    imp.end_ns = Some(ev.ts_ns);
                    imp.found = ev.found;
                    imp.done_index = Some(n);
                }
            }
        }
        let mut unclosed: Vec<Anomaly> = open
            .values()
            .flatten()
            .map(|&id| {
                let imp = &tree.imports[id];
                Anomaly::Unclosed { pid: imp.pid, tid: imp.tid, module: imp.module.clone(), start_ns: imp.start_ns }
            })
            .collect();
        unclosed.sort_by_key(|a| match a {
            Anomaly::Unclosed { start_ns, .. } => *start_ns,
            _ => 0,
        });
        tree.anomalies.extend(unclosed);
        tree
    }

    /// Time spent in the import itself: cumulative minus the cumulative
    /// time of its nested imports (as CPython's `-X importtime` counts it).
    pub fn self_ns(&self, id: usize) -> Option<u64> {
        let imp = &self.imports[id];
        let nested: u64 = imp.children.iter().filter_map(|&c| self.imports[c].cumulative_ns()).sum();
        imp.cumulative_ns().map(|c| c.saturating_sub(nested))
    }

    /// Module names from the outermost enclosing import down to `id`'s parent.
    pub fn parents(&self, id: usize) -> Vec<&str> {
        let mut chain = Vec::new();
        let mut cur = self.imports[id].parent;
        while let Some(p) = cur {
            chain.push(self.imports[p].module.as_str());
            cur = self.imports[p].parent;
        }
        chain.reverse();
        chain
    }

    /// Complete imports in the order their dones fired.
    pub fn in_done_order(&self) -> Vec<usize> {
        let mut ids: Vec<usize> = (0..self.imports.len()).filter(|&i| self.imports[i].is_complete()).collect();
        ids.sort_by_key(|&i| self.imports[i].done_index);
        ids
    }

    /// Whether any anomaly means lost or corrupt events.
    pub fn is_corrupt(&self) -> bool {
        self.anomalies.iter().any(Anomaly::is_corruption)
    }
}

/// Removes an abandoned start from its parent's children (or the roots).
fn detach(tree: &mut ImportTree, id: usize) {
    match tree.imports[id].parent {
        Some(p) => tree.imports[p].children.retain(|&c| c != id),
        None => tree.roots.retain(|&r| r != id),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A start event.
    pub fn s(ts: u64, tid: u32, depth: u32, m: &str) -> ImportEvent {
        ImportEvent {
            ts_ns: ts,
            pid: 1,
            tid,
            depth,
            kind: EventKind::Start,
            module: m.into(),
            found: None,
            truncated: false,
        }
    }

    /// A done event.
    pub fn d(ts: u64, tid: u32, depth: u32, m: &str, found: bool) -> ImportEvent {
        ImportEvent { kind: EventKind::Done, found: Some(found), ..s(ts, tid, depth, m) }
    }

    /// `import a.b` with nothing loaded, then a failed `import nope`.
    pub fn package_and_failure() -> Vec<ImportEvent> {
        vec![
            s(1_000, 7, 0, "a.b"),
            s(2_000, 7, 1, "a"),
            d(5_000, 7, 1, "a", true),
            s(6_000, 7, 1, "json"),
            d(9_500, 7, 1, "json", true),
            d(12_000, 7, 0, "a.b", true),
            s(20_000, 7, 0, "nope"),
            d(20_400, 7, 0, "nope", false),
        ]
    }

    /// Two threads interleaving, each nesting its own imports.
    pub fn two_threads() -> Vec<ImportEvent> {
        vec![
            s(100, 1, 0, "x"),
            s(150, 2, 0, "y"),
            s(200, 1, 1, "x.sub"),
            s(250, 2, 1, "y.sub"),
            d(300, 1, 1, "x.sub", true),
            d(400, 2, 1, "y.sub", false),
            d(500, 2, 0, "y", false),
            d(600, 1, 0, "x", true),
        ]
    }

    fn names(tree: &ImportTree, ids: &[usize]) -> Vec<String> {
        ids.iter().map(|&i| tree.imports[i].module.clone()).collect()
    }

    #[test]
    fn nests_a_package_inside_its_submodule_and_keeps_failures() {
        let t = ImportTree::build(&package_and_failure());
        assert!(t.anomalies.is_empty(), "{:?}", t.anomalies);
        assert_eq!(names(&t, &t.roots), ["a.b", "nope"]);
        let ab = t.roots[0];
        assert_eq!(names(&t, &t.imports[ab].children), ["a", "json"]);
        assert_eq!(t.imports[ab].cumulative_ns(), Some(11_000));
        assert_eq!(t.self_ns(ab), Some(11_000 - 3_000 - 3_500));
        assert_eq!(t.imports[t.roots[1]].found, Some(false));
        assert_eq!(t.parents(t.imports[ab].children[1]), ["a.b"]);
        assert_eq!(names(&t, &t.in_done_order()), ["a", "json", "a.b", "nope"]);
    }

    #[test]
    fn pairs_interleaved_threads_separately() {
        let t = ImportTree::build(&two_threads());
        assert!(t.anomalies.is_empty(), "{:?}", t.anomalies);
        assert_eq!(names(&t, &t.roots), ["x", "y"]);
        let y = t.roots[1];
        assert_eq!(t.imports[y].tid, 2);
        assert_eq!(names(&t, &t.imports[y].children), ["y.sub"]);
        assert_eq!(t.imports[y].cumulative_ns(), Some(350));
        assert_eq!(names(&t, &t.in_done_order()), ["x.sub", "y.sub", "y", "x"]);
    }

    #[test]
    fn sorts_by_timestamp_before_pairing() {
        let mut evs = two_threads();
        evs.reverse();
        assert_eq!(ImportTree::build(&evs), ImportTree::build(&two_threads()));
    }

    #[test]
    fn reports_a_done_without_start_and_invents_nothing() {
        let evs = vec![d(10, 1, 0, "ghost", true), s(20, 1, 0, "a"), d(30, 1, 0, "a", true)];
        let t = ImportTree::build(&evs);
        assert_eq!(t.imports.len(), 1);
        assert!(matches!(&t.anomalies[..], [Anomaly::DoneWithoutStart { module, .. }] if module == "ghost"));
        assert!(t.is_corrupt());
    }

    #[test]
    fn a_lost_inner_done_drops_that_import_only() {
        // b's done was lost: a's done closes a, b is reported, not invented.
        let evs = vec![s(1, 1, 0, "a"), s(2, 1, 1, "b"), d(3, 1, 0, "a", true)];
        let t = ImportTree::build(&evs);
        assert_eq!(names(&t, &t.roots), ["a"]);
        assert!(t.imports[t.roots[0]].children.is_empty());
        assert!(t.anomalies.iter().any(|a| matches!(a, Anomaly::LostDone { module, .. } if module == "b")));
    }

    #[test]
    fn a_foreign_done_is_a_mismatch() {
        let evs = vec![s(1, 1, 0, "a"), d(2, 1, 0, "zzz", true), d(3, 1, 0, "a", true)];
        let t = ImportTree::build(&evs);
        assert!(t.imports[0].is_complete());
        assert!(matches!(&t.anomalies[..], [Anomaly::Mismatch { open, done, .. }] if open == "a" && done == "zzz"));
    }

    #[test]
    fn wrong_depths_and_unclosed_starts_are_reported() {
        let evs = vec![s(1, 1, 3, "a"), s(2, 1, 1, "b")];
        let t = ImportTree::build(&evs);
        assert!(matches!(t.anomalies[0], Anomaly::Depth { recorded: 3, expected: 0, .. }));
        let unclosed = t.anomalies.iter().filter(|a| matches!(a, Anomaly::Unclosed { .. })).count();
        assert_eq!(unclosed, 2);
        assert!(t.in_done_order().is_empty());
        let only_unclosed = ImportTree::build(&[s(1, 1, 0, "a")]);
        assert!(!only_unclosed.is_corrupt());
    }
}
