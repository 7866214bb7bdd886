//! From probe events to imports: the one place where a start is paired with
//! its done. Every report format, `diff`, `check`, `smoke`, the tests and
//! `run --replay` work on the [`Forest`] built here.
//!
//! CPython fires a done for the innermost open start of its thread, at the
//! depth that start had. Threads (and processes) nest independently. What a
//! recording can hold besides clean pairs, and what becomes of it:
//!
//! - a start with no done (the process was killed, or tracing stopped
//!   first): an [`ImportState::Unfinished`] import, timed up to the end of
//!   what was seen;
//! - a done with no start (tracing began mid-import): an
//!   [`ImportState::BegunBeforeTrace`] import; everything its thread did
//!   since tracing began happened inside it, so it adopts those imports;
//! - a done for an import further out than the innermost open one (inner
//!   dones lost): the inner imports stay, unfinished, with a diagnostic;
//! - a done that matches nothing open, or an event whose recorded depth
//!   disagrees with the pairing: a diagnostic, the event is not used.
//!
//! No import is ever invented, and nothing is dropped silently: every such
//! case is an [`Anomaly`] that reports print.

use super::importtime::Logged;
use super::{EventKind, ImportEvent, NameState, Origin, ProcessInfo, Recording};
use std::collections::HashMap;

/// Index of an import in [`Forest::imports`].
pub type ImportId = usize;

/// How much of an import the recording saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImportState {
    /// Start and done.
    Complete,
    /// A start whose done was never seen.
    Unfinished,
    /// A done whose start came before the recording began.
    BegunBeforeTrace,
    /// `-X importtime=2`'s line for a module that was already loaded: no
    /// probe pair, no time.
    Cached,
}

/// One import: a start paired with its done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Import {
    pub module: String,
    pub name: NameState,
    pub pid: u32,
    pub tid: u32,
    /// Nesting level on its thread (0 = imported by top-level code).
    pub depth: u32,
    /// When the start fired; for [`ImportState::BegunBeforeTrace`] the
    /// beginning of the recording (a lower bound).
    pub start_ns: u64,
    /// When the done fired; `None` when it was not seen.
    pub end_ns: Option<u64>,
    /// The done probe's `found` (false: not found, or its body raised).
    pub found: Option<bool>,
    pub state: ImportState,
    /// The enclosing import on the same thread.
    pub parent: Option<ImportId>,
    /// Nested imports, in start order.
    pub children: Vec<ImportId>,
    /// Rank of its done among all dones (the order `-X importtime` prints).
    pub done_rank: Option<usize>,
    /// What CPython printed for it, when the recording is an importtime log.
    pub logged: Option<Logged>,
}

impl Import {
    pub fn is_complete(&self) -> bool {
        self.state == ImportState::Complete
    }

    pub fn failed(&self) -> bool {
        self.found == Some(false)
    }

    /// The name for people (see [`super::display_name`]).
    pub fn display_name(&self) -> String {
        super::display_name(&self.module, self.name)
    }
}

/// Something in the events that does not fit CPython's nesting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Anomaly {
    /// A done with no open start: tracing began while it was importing.
    BegunBeforeTrace { pid: u32, tid: u32, module: String, ts_ns: u64 },
    /// A start still open when the events end (trace stopped mid-import, or
    /// the process was killed).
    Unfinished { pid: u32, tid: u32, module: String, start_ns: u64 },
    /// Dones of inner imports were lost: a done closed an import further out.
    LostDone { pid: u32, tid: u32, module: String, start_ns: u64 },
    /// A done whose module is not open on its thread at all (ignored).
    Mismatch { pid: u32, tid: u32, open: String, done: String, ts_ns: u64 },
    /// An event whose recorded depth disagrees with the pairing.
    Depth { pid: u32, tid: u32, module: String, recorded: u32, expected: u32, ts_ns: u64 },
}

impl Anomaly {
    /// Unfinished and begun-before-trace imports are normal at the edges of
    /// a trace; everything else means events were lost or corrupted.
    pub fn is_corruption(&self) -> bool {
        !matches!(self, Anomaly::Unfinished { .. } | Anomaly::BegunBeforeTrace { .. })
    }
}

impl std::fmt::Display for Anomaly {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = |m: &str| super::escape(m);
        match self {
            Anomaly::BegunBeforeTrace { pid, tid, module, ts_ns } => write!(
                f,
                "pid {pid} thread {tid}: import of {} was already running when tracing began (done at {ts_ns} ns); its time is a lower bound",
                name(module)
            ),
            Anomaly::Unfinished { pid, tid, module, start_ns } => write!(
                f,
                "pid {pid} thread {tid}: import of {} started at {start_ns} ns never finished; timed up to the end of the trace",
                name(module)
            ),
            Anomaly::LostDone { pid, tid, module, start_ns } => write!(
                f,
                "pid {pid} thread {tid}: import of {} started at {start_ns} ns lost its done (events lost?)",
                name(module)
            ),
            Anomaly::Mismatch { pid, tid, open, done, ts_ns } => write!(
                f,
                "pid {pid} thread {tid}: done of {} at {ts_ns} ns while {} is the innermost open import (ignored)",
                name(done),
                name(open)
            ),
            Anomaly::Depth { pid, tid, module, recorded, expected, ts_ns } => write!(
                f,
                "pid {pid} thread {tid}: {} at {ts_ns} ns has depth {recorded}, expected {expected} (events lost?)",
                name(module)
            ),
        }
    }
}

/// A process of the forest: its threads in order of first appearance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Process {
    pub info: ProcessInfo,
    pub threads: Vec<u32>,
}

/// All imports of a recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forest {
    pub origin: Origin,
    /// In the order their starts (or dones, for imports begun before the
    /// trace) appear in the recording.
    pub imports: Vec<Import>,
    /// Imports with no parent, in the order of `imports`.
    pub roots: Vec<ImportId>,
    /// In order of first event (processes only named by the source first).
    pub processes: Vec<Process>,
    pub anomalies: Vec<Anomaly>,
    /// Events the tracer lost (see [`Recording::lost_events`]).
    pub lost_events: u64,
    /// The source's own warnings (a stream cut short, a full capture map).
    pub warnings: Vec<String>,
    /// First and last timestamp seen (the span the recording covers).
    pub first_ns: u64,
    pub last_ns: u64,
}

impl Default for Forest {
    fn default() -> Self {
        Forest::build(&Recording::new(Origin::Stream, Vec::new()))
    }
}

/// Whether a done's module name is the open start's, allowing for names cut
/// at different lengths and names the tracer could not read.
fn same_module(a: &str, a_state: NameState, b: &str, b_state: NameState) -> bool {
    match (a_state, b_state) {
        (NameState::Full, NameState::Full) => a == b,
        (NameState::Missing, NameState::Missing) => true,
        (NameState::Missing, _) | (_, NameState::Missing) => false,
        _ => a.starts_with(b) || b.starts_with(a),
    }
}

/// Per-thread pairing state.
#[derive(Default)]
struct ThreadState {
    open: Vec<ImportId>,
    /// Roots of this thread added since its last begun-before-trace import:
    /// the ones such an import adopts.
    loose_roots: Vec<ImportId>,
}

impl Forest {
    /// Pairs the events of a recording. Each thread's events are taken in
    /// the recording's order (sources deliver them in firing order).
    pub fn build(rec: &Recording) -> Forest {
        let first_ns = rec.events.iter().map(|e| e.ts_ns).min().unwrap_or(0);
        let last_ns = rec.events.iter().map(|e| e.ts_ns).max().unwrap_or(0);
        let mut f = Forest {
            origin: rec.origin,
            imports: Vec::with_capacity(rec.events.len() / 2 + 1),
            roots: Vec::new(),
            processes: Vec::new(),
            anomalies: Vec::new(),
            lost_events: rec.lost_events,
            warnings: rec.warnings.clone(),
            first_ns,
            last_ns,
        };
        let logged: HashMap<usize, Logged> = rec.logged.iter().cloned().collect();
        let mut threads: HashMap<(u32, u32), ThreadState> = HashMap::new();
        let mut process_index: HashMap<u32, usize> = HashMap::new();
        for p in &rec.processes {
            if let std::collections::hash_map::Entry::Vacant(slot) = process_index.entry(p.pid) {
                slot.insert(f.processes.len());
                f.processes.push(Process { info: p.clone(), threads: Vec::new() });
            }
        }
        // Dones in timestamp order, ties in recording order: their rank.
        let mut done_events: Vec<usize> =
            (0..rec.events.len()).filter(|&i| rec.events[i].kind != EventKind::Start).collect();
        done_events.sort_by_key(|&i| (rec.events[i].ts_ns, i));
        let mut rank_of = vec![usize::MAX; rec.events.len()];
        for (rank, &i) in done_events.iter().enumerate() {
            rank_of[i] = rank;
        }
        for (i, ev) in rec.events.iter().enumerate() {
            let key = (ev.pid, ev.tid);
            let st = threads.entry(key).or_insert_with(|| {
                let p = *process_index.entry(ev.pid).or_insert_with(|| {
                    f.processes
                        .push(Process { info: ProcessInfo { pid: ev.pid, ..Default::default() }, threads: Vec::new() });
                    f.processes.len() - 1
                });
                f.processes[p].threads.push(ev.tid);
                ThreadState::default()
            });
            match ev.kind {
                EventKind::Start => {
                    f.check_depth(ev, st.open.len() as u32);
                    let id = f.push(ev, st.open.last().copied(), ImportState::Unfinished, ev.ts_ns);
                    if st.open.is_empty() {
                        st.loose_roots.push(id);
                    }
                    st.open.push(id);
                }
                EventKind::Cached => {
                    let id = f.push(ev, st.open.last().copied(), ImportState::Cached, ev.ts_ns);
                    let imp = &mut f.imports[id];
                    imp.end_ns = Some(ev.ts_ns);
                    imp.done_rank = Some(rank_of[i]);
                    imp.logged = logged.get(&i).cloned();
                    if st.open.is_empty() {
                        st.loose_roots.push(id);
                    }
                }
                EventKind::Done => {
                    let Some(pos) = st.open.iter().rposition(|&id| {
                        let o = &f.imports[id];
                        same_module(&o.module, o.name, &ev.module, ev.name)
                    }) else {
                        if let Some(&top) = st.open.last() {
                            f.anomalies.push(Anomaly::Mismatch {
                                pid: ev.pid,
                                tid: ev.tid,
                                open: f.imports[top].module.clone(),
                                done: ev.module.clone(),
                                ts_ns: ev.ts_ns,
                            });
                            continue;
                        }
                        // Nothing open: it began before the recording did,
                        // and everything since happened inside it.
                        f.check_depth(ev, 0);
                        let id = f.push(ev, None, ImportState::BegunBeforeTrace, first_ns);
                        let adopted = std::mem::take(&mut st.loose_roots);
                        f.roots.retain(|r| !adopted.contains(r));
                        for &c in &adopted {
                            f.imports[c].parent = Some(id);
                        }
                        f.imports[id].children = adopted;
                        f.close(id, ev, rank_of[i], &logged, i);
                        st.loose_roots.push(id);
                        f.anomalies.push(Anomaly::BegunBeforeTrace {
                            pid: ev.pid,
                            tid: ev.tid,
                            module: ev.module.clone(),
                            ts_ns: ev.ts_ns,
                        });
                        continue;
                    };
                    for lost in st.open.drain(pos + 1..).rev() {
                        let imp = &f.imports[lost];
                        f.anomalies.push(Anomaly::LostDone {
                            pid: ev.pid,
                            tid: ev.tid,
                            module: imp.module.clone(),
                            start_ns: imp.start_ns,
                        });
                    }
                    let id = st.open.pop().expect("position found above");
                    f.check_depth(ev, st.open.len() as u32);
                    f.imports[id].state = ImportState::Complete;
                    f.close(id, ev, rank_of[i], &logged, i);
                }
            }
        }
        let mut unfinished: Vec<ImportId> = threads.values().flat_map(|t| t.open.iter().copied()).collect();
        unfinished.sort_unstable();
        for id in unfinished {
            let imp = &f.imports[id];
            f.anomalies.push(Anomaly::Unfinished {
                pid: imp.pid,
                tid: imp.tid,
                module: imp.module.clone(),
                start_ns: imp.start_ns,
            });
        }
        f.fix_depths();
        f
    }

    /// Adds an import (open until closed).
    fn push(&mut self, ev: &ImportEvent, parent: Option<ImportId>, state: ImportState, start_ns: u64) -> ImportId {
        let id = self.imports.len();
        self.imports.push(Import {
            module: ev.module.clone(),
            name: ev.name,
            pid: ev.pid,
            tid: ev.tid,
            depth: 0,
            start_ns,
            end_ns: None,
            found: None,
            state,
            parent,
            children: Vec::new(),
            done_rank: None,
            logged: None,
        });
        match parent {
            Some(p) => self.imports[p].children.push(id),
            None => self.roots.push(id),
        }
        id
    }

    fn close(&mut self, id: ImportId, ev: &ImportEvent, rank: usize, logged: &HashMap<usize, Logged>, i: usize) {
        let imp = &mut self.imports[id];
        imp.end_ns = Some(ev.ts_ns);
        imp.found = ev.found;
        imp.done_rank = Some(rank);
        imp.logged = logged.get(&i).cloned();
        // A name cut at different lengths: keep the longer reading.
        if imp.name == NameState::Cut && ev.name == NameState::Cut && ev.module.len() > imp.module.len() {
            imp.module = ev.module.clone();
        }
    }

    fn check_depth(&mut self, ev: &ImportEvent, expected: u32) {
        // Recorded depths count from where the tracer started; the pairing
        // does too, so they must agree.
        if ev.depth != expected {
            self.anomalies.push(Anomaly::Depth {
                pid: ev.pid,
                tid: ev.tid,
                module: ev.module.clone(),
                recorded: ev.depth,
                expected,
                ts_ns: ev.ts_ns,
            });
        }
    }

    /// Depth = number of enclosing imports (adoption by a begun-before-trace
    /// import moves subtrees down), and children sorted by start.
    fn fix_depths(&mut self) {
        self.roots.sort_unstable();
        let mut stack: Vec<(ImportId, u32)> = self.roots.iter().map(|&r| (r, 0)).collect();
        while let Some((id, depth)) = stack.pop() {
            self.imports[id].depth = depth;
            self.imports[id].children.sort_unstable();
            stack.extend(self.imports[id].children.iter().map(|&c| (c, depth + 1)));
        }
    }

    /// Wall time from start to done, nested imports included. Unfinished
    /// imports are timed up to the done of the nearest finished enclosing
    /// import, or the end of the recording; begun-before-trace ones from the
    /// beginning of the recording (both are marked by their state).
    pub fn cumulative_ns(&self, id: ImportId) -> u64 {
        let imp = &self.imports[id];
        let end = imp.end_ns.unwrap_or_else(|| {
            let mut cur = imp.parent;
            while let Some(p) = cur {
                if let Some(e) = self.imports[p].end_ns {
                    return e;
                }
                cur = self.imports[p].parent;
            }
            self.last_ns
        });
        end.saturating_sub(imp.start_ns)
    }

    /// Time spent in the import itself: cumulative minus the cumulative
    /// time of its nested imports (as CPython's `-X importtime` counts it).
    pub fn self_ns(&self, id: ImportId) -> u64 {
        let nested: u64 = self.imports[id].children.iter().map(|&c| self.cumulative_ns(c)).sum();
        self.cumulative_ns(id).saturating_sub(nested)
    }

    /// Module names from the outermost enclosing import down to `id`'s parent.
    pub fn parents(&self, id: ImportId) -> Vec<&str> {
        let mut chain = Vec::new();
        let mut cur = self.imports[id].parent;
        while let Some(p) = cur {
            chain.push(self.imports[p].module.as_str());
            cur = self.imports[p].parent;
        }
        chain.reverse();
        chain
    }

    /// Number of imports nested inside `id`, at any depth.
    pub fn descendants(&self, id: ImportId) -> usize {
        let mut n = 0;
        let mut stack = self.imports[id].children.clone();
        while let Some(c) = stack.pop() {
            n += 1;
            stack.extend(&self.imports[c].children);
        }
        n
    }

    /// Imports with a done (complete, begun before the trace, cached) in the
    /// order their dones fired: `-X importtime`'s order.
    pub fn in_done_order(&self) -> Vec<ImportId> {
        let mut ids: Vec<ImportId> = (0..self.imports.len()).filter(|&i| self.imports[i].done_rank.is_some()).collect();
        ids.sort_by_key(|&i| self.imports[i].done_rank);
        ids
    }

    /// The imports of one thread in pre-order (an import before the ones
    /// nested in it), with their depth.
    pub fn preorder(&self, pid: u32, tid: u32) -> Vec<ImportId> {
        let mut out = Vec::new();
        let mut stack: Vec<ImportId> = self
            .roots
            .iter()
            .rev()
            .copied()
            .filter(|&r| (self.imports[r].pid, self.imports[r].tid) == (pid, tid))
            .collect();
        while let Some(id) = stack.pop() {
            out.push(id);
            stack.extend(self.imports[id].children.iter().rev());
        }
        out
    }

    /// Every (pid, tid) in order of first appearance, processes grouped.
    pub fn threads(&self) -> Vec<(u32, u32)> {
        self.processes.iter().flat_map(|p| p.threads.iter().map(move |&t| (p.info.pid, t))).collect()
    }

    /// The process entry of `pid`.
    pub fn process(&self, pid: u32) -> Option<&Process> {
        self.processes.iter().find(|p| p.info.pid == pid)
    }

    /// Whether any anomaly means lost or corrupt events, or the tracer lost some.
    pub fn is_corrupt(&self) -> bool {
        self.lost_events > 0 || self.anomalies.iter().any(Anomaly::is_corruption)
    }

    /// Whether times are laid out from an `-X importtime` log rather than
    /// measured on one clock.
    pub fn is_laid_out(&self) -> bool {
        self.origin == Origin::ImportTime
    }

    /// Every line a report should print on stderr (or in a summary) about
    /// what the recording lacks: lost events, source warnings, anomalies.
    pub fn diagnostics(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.lost_events > 0 {
            out.push(format!(
                "the tracer lost {} event(s): this report is missing imports (a larger ring buffer, or the import-capture collector, avoids it)",
                self.lost_events
            ));
        }
        out.extend(self.warnings.iter().cloned());
        out.extend(self.anomalies.iter().map(|a| a.to_string()));
        out
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A start event on pid 1.
    pub fn s(ts: u64, tid: u32, depth: u32, m: &str) -> ImportEvent {
        ImportEvent::start(ts, 1, tid, depth, m)
    }

    /// A done event on pid 1.
    pub fn d(ts: u64, tid: u32, depth: u32, m: &str, found: bool) -> ImportEvent {
        ImportEvent::done(ts, 1, tid, depth, m, found)
    }

    pub fn forest(events: Vec<ImportEvent>) -> Forest {
        Forest::build(&Recording::new(Origin::Stream, events))
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

    fn names(f: &Forest, ids: &[ImportId]) -> Vec<String> {
        ids.iter().map(|&i| f.imports[i].module.clone()).collect()
    }

    #[test]
    fn nests_a_package_inside_its_submodule_and_keeps_failures() {
        let f = forest(package_and_failure());
        assert!(f.anomalies.is_empty(), "{:?}", f.anomalies);
        assert_eq!(names(&f, &f.roots), ["a.b", "nope"]);
        let ab = f.roots[0];
        assert_eq!(names(&f, &f.imports[ab].children), ["a", "json"]);
        assert_eq!(f.cumulative_ns(ab), 11_000);
        assert_eq!(f.self_ns(ab), 11_000 - 3_000 - 3_500);
        assert!(f.imports[f.roots[1]].failed());
        assert_eq!(f.parents(f.imports[ab].children[1]), ["a.b"]);
        assert_eq!(names(&f, &f.in_done_order()), ["a", "json", "a.b", "nope"]);
        assert_eq!(f.descendants(ab), 2);
        assert_eq!(names(&f, &f.preorder(1, 7)), ["a.b", "a", "json", "nope"]);
    }

    #[test]
    fn pairs_interleaved_threads_separately() {
        let f = forest(two_threads());
        assert!(f.anomalies.is_empty(), "{:?}", f.anomalies);
        assert_eq!(names(&f, &f.roots), ["x", "y"]);
        let y = f.roots[1];
        assert_eq!(f.imports[y].tid, 2);
        assert_eq!(names(&f, &f.imports[y].children), ["y.sub"]);
        assert_eq!(f.cumulative_ns(y), 350);
        assert_eq!(names(&f, &f.in_done_order()), ["x.sub", "y.sub", "y", "x"]);
        assert_eq!(f.threads(), [(1, 1), (1, 2)]);
    }

    #[test]
    fn a_done_without_start_adopts_what_its_thread_did_since_tracing_began() {
        // Tracing began inside `a` (depth counting starts there): `b`
        // finished, `c` ran, then `a` finished.
        let evs = vec![d(10, 1, 0, "b", true), s(20, 1, 0, "c"), d(30, 1, 0, "c", true), d(40, 1, 0, "a", true)];
        let f = forest(evs);
        assert_eq!(names(&f, &f.roots), ["a"]);
        let a = f.roots[0];
        assert_eq!(f.imports[a].state, ImportState::BegunBeforeTrace);
        assert_eq!(names(&f, &f.imports[a].children), ["b", "c"]);
        assert_eq!(f.imports[f.imports[a].children[1]].depth, 1);
        assert_eq!(f.cumulative_ns(a), 30, "a lower bound: from the first event");
        assert!(!f.is_corrupt(), "{:?}", f.anomalies);
        assert_eq!(f.anomalies.len(), 2);
    }

    #[test]
    fn a_start_without_done_is_unfinished_and_timed_so_far() {
        let evs = vec![s(1, 1, 0, "a"), s(2, 1, 1, "b"), d(5, 1, 1, "b", true), s(6, 1, 1, "c")];
        let mut evs = evs;
        evs.push(d(9, 2, 0, "other-thread-ends-later", true));
        let f = forest(evs);
        let a = f.roots[0];
        assert_eq!(f.imports[a].state, ImportState::Unfinished);
        assert_eq!(f.cumulative_ns(a), 8, "up to the last event seen");
        assert!(!f.is_corrupt());
        assert!(f.anomalies.iter().any(|x| matches!(x, Anomaly::Unfinished { module, .. } if module == "a")));
    }

    #[test]
    fn a_lost_inner_done_keeps_the_inner_import_unfinished() {
        let f = forest(vec![s(1, 1, 0, "a"), s(2, 1, 1, "b"), d(3, 1, 0, "a", true)]);
        assert_eq!(names(&f, &f.roots), ["a"]);
        let b = f.imports[f.roots[0]].children[0];
        assert_eq!(f.imports[b].state, ImportState::Unfinished);
        assert_eq!(f.cumulative_ns(b), 1, "bounded by its parent's done");
        assert!(f.anomalies.iter().any(|a| matches!(a, Anomaly::LostDone { module, .. } if module == "b")));
        assert!(f.is_corrupt());
    }

    #[test]
    fn a_foreign_done_is_a_mismatch_and_ignored() {
        let f = forest(vec![s(1, 1, 0, "a"), d(2, 1, 0, "zzz", true), d(3, 1, 0, "a", true)]);
        assert!(f.imports[0].is_complete());
        assert_eq!(f.imports.len(), 1);
        assert!(matches!(&f.anomalies[..], [Anomaly::Mismatch { open, done, .. }] if open == "a" && done == "zzz"));
    }

    #[test]
    fn wrong_depths_are_reported() {
        let f = forest(vec![s(1, 1, 3, "a"), d(2, 1, 0, "a", true)]);
        assert!(matches!(f.anomalies[0], Anomaly::Depth { recorded: 3, expected: 0, .. }));
        assert!(f.is_corrupt());
    }

    #[test]
    fn cut_and_missing_names_pair_with_their_own_kind() {
        let mut cut_start = s(1, 1, 0, "abc");
        cut_start.name = NameState::Cut;
        let mut cut_done = d(2, 1, 0, "abcdef", true);
        cut_done.name = NameState::Cut;
        let mut null_start = s(3, 1, 0, "");
        null_start.name = NameState::Missing;
        let mut null_done = d(4, 1, 0, "", false);
        null_done.name = NameState::Missing;
        let f = forest(vec![cut_start, cut_done, null_start, null_done]);
        assert!(f.anomalies.is_empty(), "{:?}", f.anomalies);
        assert_eq!(f.imports[0].module, "abcdef");
        assert_eq!(f.imports[1].display_name(), "<unencodable name>");
        assert!(!same_module("", NameState::Missing, "", NameState::Full));
    }

    #[test]
    fn lost_events_are_corruption_and_said() {
        let mut rec = Recording::new(Origin::Stream, package_and_failure());
        rec.lost_events = 3;
        let f = Forest::build(&rec);
        assert!(f.is_corrupt());
        assert!(f.diagnostics()[0].contains("lost 3 event(s)"));
    }

    #[test]
    fn processes_keep_their_threads_apart() {
        let mut evs = two_threads();
        evs.push(ImportEvent::start(700, 9, 9, 0, "child"));
        evs.push(ImportEvent::done(800, 9, 9, 0, "child", true));
        let mut rec = Recording::new(Origin::Stream, evs);
        rec.processes.push(ProcessInfo { pid: 9, ppid: Some(1), command: "python3 -c pass".into() });
        let f = Forest::build(&rec);
        assert_eq!(f.processes.len(), 2);
        assert_eq!(f.processes[0].info.pid, 9, "named by the source first");
        assert_eq!(f.process(9).unwrap().info.command, "python3 -c pass");
        assert_eq!(f.threads(), [(9, 9), (1, 1), (1, 2)]);
    }
}
