//! Replay: a recording turned into a workload that fires the probes as they
//! fired when it was recorded.
//!
//! A replay does not reconstruct the program's `sys.modules` from the
//! events (a recording cannot tell what was loaded outside the probes, nor
//! which way two threads raced). Instead every recorded import becomes its
//! own module, found and executed where it was recorded:
//!
//! - its body imports its recorded children, in order, spending the
//!   recorded gaps before, between and after them: its self time is the
//!   recorded one, whatever its nested imports cost this time (a tracer's
//!   per-event work, a preemption inflates the cumulative time of the
//!   imports around it, as it would in the real program, and the self time
//!   of the one import it hits);
//! - a failed import (found = 0) with nothing nested is a missing module
//!   whose finder takes the recorded time; with imports nested, a module
//!   whose body raises after them. Every statement is caught, so a failure
//!   stays exactly where it was;
//! - so a package parent nested in its child stays nested (it is the
//!   child's first statement), an import that ran twice runs twice, and a
//!   thread that waited on another's module lock inside its pair waits as
//!   long again;
//! - a package that the recording shows was loaded outside the probes
//!   ([`crate::events::blind_spots`]) is loaded with
//!   `importlib.import_module()` in the enclosing import, just before its
//!   first submodule fired: it stays outside the probes;
//! - threads start together with the main thread, and each top-level
//!   import starts at its recorded offset from the process's first event,
//!   so the threads keep their recorded overlap and a delay never carries
//!   over from one top-level import to the next; the recorded main thread
//!   (tid = pid) runs on the main thread;
//! - a NULL name fires NULL again; a name the tracer cut fires as cut.
//!
//! Whatever a recording holds that cannot be fired as it was is said in
//! [`Replay::notes`]: 3.14's `cached` lines (no probe fired for them),
//! imports that never finished (they end with found = 0 when the recording
//! ends), imports begun before the recording (they start with it), and lost
//! or mismatched events (the forest's pairing is replayed).

use super::plan::{ProcessPlan, ThreadPlan, ThreadStart};
use super::{nanos, ImportStmt, ModId, Module, ProbeName, Via, Workload, NO_PARENT};
use crate::events::forest::{Forest, ImportId, ImportState};
use crate::events::{blind_spots, NameState, Origin};
use std::collections::HashMap;
use std::ops::Range;
use std::time::Duration;

/// A workload built from a recording, and what it could not reproduce.
#[derive(Debug)]
pub struct Replay {
    pub workload: Workload,
    /// The recorded process replayed.
    pub pid: u32,
    /// One line each: how the replay differs from the recording.
    pub notes: Vec<String>,
}

/// Why a recording cannot be replayed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReplayError {
    #[error("the recording holds no import to replay")]
    Empty,
    #[error(
        "the recording holds {} processes ({}): replay one at a time with --pid PID",
        .0.len(),
        .0.join(", ")
    )]
    SeveralProcesses(Vec<String>),
    #[error("the recording has no imports of pid {pid} (it has {})", .known.join(", "))]
    NoSuchProcess { pid: u32, known: Vec<String> },
    #[error("module name {0:?} holds a NUL byte, which no C string can carry to the probes")]
    Nul(String),
}

/// Builds the replay of one process of `forest` (`pid`, or the only one).
pub fn from_forest(forest: &Forest, pid: Option<u32>, name: &str) -> Result<Replay, ReplayError> {
    let pid = pick_process(forest, pid)?;
    let mut b = Assembly::new(forest, pid);
    b.notes();
    let threads = thread_order(forest, pid);
    let main_tid = threads.iter().copied().find(|&t| t == pid).unwrap_or(threads[0]);
    // Every recorded import of the process is a module, in recording order.
    for (k, &id) in b.ids.clone().iter().enumerate() {
        b.module(k as ModId, id)?;
    }
    let hidden: Vec<(ImportId, String)> = b.hidden.iter().map(|(c, n)| (*c, n.clone())).collect();
    for (_, module) in &hidden {
        b.hidden_module(module)?;
    }
    let mut main = None;
    let mut others = Vec::new();
    for &tid in &threads {
        let roots: Vec<ImportId> =
            forest.roots.iter().copied().filter(|&r| b.replayed(r) && forest.imports[r].tid == tid).collect();
        let plan = b.thread(&roots, tid, tid != main_tid);
        if tid == main_tid {
            main = Some(plan);
        } else {
            others.push(plan);
        }
    }
    let main = main.expect("the main thread is one of the threads");
    let Assembly { names, modules, stmts, times, notes, .. } = b;
    let workload = Workload {
        name: name.to_owned(),
        names,
        modules,
        stmts,
        from_targets: Vec::new(),
        times,
        main: ProcessPlan { name: "main".into(), main, spawns: Vec::new() },
        threads: others,
        forks: Vec::new(),
    };
    Ok(Replay { workload, pid, notes })
}

/// Imports that fired a probe (3.14's `cached` lines did not).
fn fired(forest: &Forest, id: ImportId) -> bool {
    forest.imports[id].state != ImportState::Cached
}

fn pick_process(forest: &Forest, pid: Option<u32>) -> Result<u32, ReplayError> {
    let with_imports: Vec<&crate::events::forest::Process> = forest
        .processes
        .iter()
        .filter(|p| forest.imports.iter().enumerate().any(|(i, imp)| imp.pid == p.info.pid && fired(forest, i)))
        .collect();
    // Short: a forked child's command line is its parent's, so the parent
    // relation tells them apart better.
    let describe = || {
        with_imports
            .iter()
            .map(|p| match (p.info.ppid, p.info.command.is_empty()) {
                (Some(ppid), _) => format!("pid {} (child of {ppid})", p.info.pid),
                (None, false) => format!("pid {} `{}`", p.info.pid, p.info.command),
                (None, true) => format!("pid {}", p.info.pid),
            })
            .collect::<Vec<_>>()
    };
    match (pid, with_imports.as_slice()) {
        (_, []) => Err(ReplayError::Empty),
        (Some(pid), list) if list.iter().any(|p| p.info.pid == pid) => Ok(pid),
        (Some(pid), _) => Err(ReplayError::NoSuchProcess { pid, known: describe() }),
        (None, [one]) => Ok(one.info.pid),
        (None, _) => Err(ReplayError::SeveralProcesses(describe())),
    }
}

/// The process's threads that imported, in order of first appearance.
fn thread_order(forest: &Forest, pid: u32) -> Vec<u32> {
    let mut out: Vec<u32> = Vec::new();
    for (i, imp) in forest.imports.iter().enumerate() {
        if imp.pid == pid && fired(forest, i) && !out.contains(&imp.tid) {
            out.push(imp.tid);
        }
    }
    out
}

/// The workload's tables, filled from the forest.
struct Assembly<'f> {
    forest: &'f Forest,
    pid: u32,
    /// The recorded imports replayed, in recording order: module `k` is `ids[k]`.
    ids: Vec<ImportId>,
    module_of: HashMap<ImportId, ModId>,
    /// Packages loaded outside the probes, each before the child named.
    hidden: Vec<(ImportId, String)>,
    /// Where the process's time line starts.
    t0: u64,
    names: Vec<u8>,
    modules: Vec<Module>,
    stmts: Vec<ImportStmt>,
    times: Vec<u64>,
    notes: Vec<String>,
}

impl<'f> Assembly<'f> {
    fn new(forest: &'f Forest, pid: u32) -> Self {
        let ids: Vec<ImportId> =
            (0..forest.imports.len()).filter(|&i| forest.imports[i].pid == pid && fired(forest, i)).collect();
        let module_of = ids.iter().enumerate().map(|(k, &i)| (i, k as ModId)).collect();
        let t0 = ids.iter().map(|&i| forest.imports[i].start_ns).min().unwrap_or(0);
        let hidden =
            blind_spots::find(forest).into_iter().filter(|s| s.pid == pid).map(|s| (s.children[0], s.module)).collect();
        Assembly {
            forest,
            pid,
            ids,
            module_of,
            hidden,
            t0,
            names: Vec::new(),
            modules: Vec::new(),
            stmts: Vec::new(),
            times: Vec::new(),
            notes: Vec::new(),
        }
    }

    fn replayed(&self, id: ImportId) -> bool {
        self.module_of.contains_key(&id)
    }

    /// What the replay of this process cannot fire exactly as recorded.
    fn notes(&mut self) {
        let f = self.forest;
        let mine = |i: &&crate::events::forest::Import| i.pid == self.pid;
        let count = |state: ImportState| f.imports.iter().filter(mine).filter(|i| i.state == state).count();
        let mut notes = Vec::new();
        let cached = count(ImportState::Cached);
        if cached > 0 {
            notes.push(format!(
                "{cached} `cached` line(s) of -X importtime=2 fired no probe when recorded and fire none in the replay"
            ));
        }
        let unfinished = count(ImportState::Unfinished);
        if unfinished > 0 {
            notes.push(format!(
                "{unfinished} import(s) never finished in the recording; in the replay they end with found = 0 when the recording ended"
            ));
        }
        let begun = count(ImportState::BegunBeforeTrace);
        if begun > 0 {
            notes.push(format!(
                "{begun} import(s) began before the recording did; in the replay they start when it starts"
            ));
        }
        let cut = f.imports.iter().filter(mine).filter(|i| i.name == NameState::Cut).count();
        if cut > 0 {
            notes.push(format!(
                "{cut} module name(s) were cut at the tracer's string limit; the replay fires the cut names"
            ));
        }
        if f.origin == Origin::ImportTime {
            notes.push(
                "an -X importtime log says neither which imports failed nor when they started: every import replays as found, laid out one after another"
                    .to_owned(),
            );
        }
        if f.lost_events > 0 || f.anomalies.iter().any(|a| a.is_corruption()) {
            notes.push(format!(
                "the recording lost or mismatched events ({} lost, {} anomalies): the replay fires the imports as they were paired",
                f.lost_events,
                f.anomalies.iter().filter(|a| a.is_corruption()).count()
            ));
        }
        notes.extend(f.warnings.iter().map(|w| format!("the recording warns: {w}")));
        if !self.hidden.is_empty() {
            let names: Vec<&str> = self.hidden.iter().map(|(_, n)| n.as_str()).take(5).collect();
            notes.push(format!(
                "{} package(s) were loaded outside the probes ({}{}): the replay loads them with importlib.import_module(), firing nothing",
                self.hidden.len(),
                names.join(", "),
                if self.hidden.len() > 5 { ", ..." } else { "" }
            ));
        }
        self.notes = notes;
    }

    fn push_name(&mut self, name: &str) -> Result<Range<u32>, ReplayError> {
        if name.as_bytes().contains(&0) {
            return Err(ReplayError::Nul(name.to_owned()));
        }
        let start = self.names.len() as u32;
        self.names.extend_from_slice(name.as_bytes());
        self.names.push(0);
        Ok(start..self.names.len() as u32)
    }

    /// When an import ends: its done, or (unfinished) where the forest
    /// times it up to.
    fn end(&self, id: ImportId) -> u64 {
        let imp = &self.forest.imports[id];
        imp.start_ns + self.forest.cumulative_ns(id)
    }

    /// The packages loaded outside the probes just before child `c`.
    fn hidden_before(&self, c: ImportId) -> Vec<ModId> {
        let n = self.ids.len();
        self.hidden.iter().enumerate().filter(|(_, (child, _))| *child == c).map(|(k, _)| (n + k) as ModId).collect()
    }

    fn stmt(&mut self, target: ModId, via: Via) {
        self.stmts.push(ImportStmt { target, catch: true, via, from: 0..0 });
    }

    /// A body's statements (the replayed children, each preceded by the
    /// packages loaded outside the probes just before it) and its time
    /// slices: the recorded gaps from `start` to the first child, between
    /// children and from the last child to `end`.
    fn body(&mut self, children: &[ImportId], start: u64, end: u64) -> (Range<u32>, Range<u32>) {
        let (s0, t0) = (self.stmts.len() as u32, self.times.len() as u32);
        let mut prev = start;
        for &c in children {
            if !self.replayed(c) {
                continue;
            }
            self.times.push(self.forest.imports[c].start_ns.saturating_sub(prev));
            for h in self.hidden_before(c) {
                self.stmt(h, Via::Importlib);
                self.times.push(0);
            }
            self.stmt(self.module_of[&c], Via::Import);
            prev = self.end(c).max(prev);
        }
        self.times.push(end.saturating_sub(prev));
        (s0..self.stmts.len() as u32, t0..self.times.len() as u32)
    }

    /// A thread's statements and their deadlines: each root import at its
    /// recorded start, as an offset from the process's first event, then
    /// the thread's end.
    fn top_level(&mut self, roots: &[ImportId], end: u64) -> (Range<u32>, Range<u32>) {
        let (s0, t0) = (self.stmts.len() as u32, self.times.len() as u32);
        for &r in roots {
            let at = self.forest.imports[r].start_ns.saturating_sub(self.t0);
            for h in self.hidden_before(r) {
                self.stmt(h, Via::Importlib);
                self.times.push(at);
            }
            self.stmt(self.module_of[&r], Via::Import);
            self.times.push(at);
        }
        self.times.push(end.saturating_sub(self.t0));
        (s0..self.stmts.len() as u32, t0..self.times.len() as u32)
    }

    /// Module `k`: the recorded import `id`.
    fn module(&mut self, k: ModId, id: ImportId) -> Result<(), ReplayError> {
        debug_assert_eq!(k as usize, self.modules.len());
        let f = self.forest;
        let imp = &f.imports[id];
        let name = self.push_name(&imp.module)?;
        let end = self.end(id);
        let failed = imp.found != Some(true);
        let nested = imp.children.iter().any(|&c| self.replayed(c));
        let (stmts, slices) = if failed && !nested {
            (0..0, 0..0)
        } else {
            let children = imp.children.clone();
            self.body(&children, imp.start_ns, end)
        };
        let cumulative = Duration::from_nanos(end.saturating_sub(imp.start_ns));
        self.modules.push(Module {
            name,
            parent: NO_PARENT,
            is_package: false,
            // A failed leaf: the finder looks for as long as it took.
            find_ns: if failed && !nested { nanos(cumulative) } else { 0 },
            exec_ns: f.self_ns(id),
            missing: failed && !nested,
            raises: failed && nested,
            probe_name: if imp.name == NameState::Missing { ProbeName::Null } else { ProbeName::Utf8 },
            stmts,
            slices,
        });
        Ok(())
    }

    /// A package loaded with `importlib.import_module()`: no body, no time.
    fn hidden_module(&mut self, module: &str) -> Result<(), ReplayError> {
        let name = self.push_name(module)?;
        self.modules.push(Module {
            name,
            parent: NO_PARENT,
            is_package: true,
            find_ns: 0,
            exec_ns: 0,
            missing: false,
            raises: false,
            probe_name: ProbeName::Utf8,
            stmts: 0..0,
            slices: 0..0,
        });
        Ok(())
    }

    /// A thread's top level: its root imports at their offsets from the
    /// process's first event.
    fn thread(&mut self, roots: &[ImportId], tid: u32, other: bool) -> ThreadPlan {
        let end = roots.iter().map(|&r| self.end(r)).max().unwrap_or(self.t0);
        let (stmts, offsets) = self.top_level(roots, end);
        ThreadPlan {
            name: if other { format!("tid-{tid}") } else { "main".to_owned() },
            stmts,
            offsets,
            start: if other { ThreadStart::WithMain } else { ThreadStart::AfterMain },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::forest::tests::{d, forest, package_and_failure, s, two_threads};
    use crate::events::{ImportEvent, ProcessInfo, Recording};

    fn body_names(w: &Workload, m: ModId) -> Vec<String> {
        w.body(m).iter().map(|s| w.name(s.target).into_owned()).collect()
    }

    #[test]
    fn every_import_is_a_module_with_its_children_and_recorded_gaps() {
        let f = forest(package_and_failure());
        let r = from_forest(&f, None, "r").unwrap();
        let w = &r.workload;
        assert_eq!(w.module_count(), 4);
        let ab = w.find("a.b").unwrap();
        assert_eq!(body_names(w, ab), ["a", "json"]);
        assert_eq!(w.body_slices(ab), [1_000, 1_000, 2_500], "1 µs before a, 1 µs between a and json, 2.5 µs after");
        assert_eq!(w.plan_offsets(w.main_thread())[0], 0, "offsets count from the first event");
        assert!(w.parent(ab).is_none(), "no parent semantics: a fires because it was recorded");
        let nope = w.find("nope").unwrap();
        assert!(w.module(nope).missing);
        assert_eq!(w.module(nope).find(), Duration::from_nanos(400));
        let main = w.plan_stmts(w.main_thread());
        assert_eq!(main.len(), 2);
        assert!(main.iter().all(|s| s.catch));
        assert_eq!(w.plan_offsets(w.main_thread()), [0, 19_000, 19_400]);
        assert!(r.notes.is_empty(), "{:?}", r.notes);
    }

    #[test]
    fn a_failed_import_with_nested_imports_raises_and_a_repeated_one_repeats() {
        let f = forest(vec![
            s(0, 1, 0, "broken"),
            s(10, 1, 1, "dep"),
            d(20, 1, 1, "dep", true),
            d(30, 1, 0, "broken", false),
            s(40, 1, 0, "broken"),
            d(50, 1, 0, "broken", false),
        ]);
        let w = from_forest(&f, None, "r").unwrap().workload;
        let first = w.find("broken").unwrap();
        assert!(w.module(first).raises && !w.module(first).missing);
        assert_eq!(w.module_count(), 3, "broken twice, dep once");
        assert!(w.module(2).missing);
    }

    #[test]
    fn threads_start_with_main_at_their_offsets_and_main_is_tid_pid() {
        let mut evs = two_threads();
        for e in &mut evs {
            e.tid = if e.tid == 2 { 1 } else { 7 };
        }
        let f = forest(evs);
        let w = from_forest(&f, None, "r").unwrap().workload;
        // pid 1: the thread recorded as tid 1 is the main thread.
        assert_eq!(body_names(&w, w.plan_stmts(w.main_thread())[0].target), ["y.sub"]);
        assert_eq!(w.plan_offsets(w.main_thread())[0], 50);
        assert_eq!(w.threads().len(), 1);
        assert_eq!(w.threads()[0].start, ThreadStart::WithMain);
        assert_eq!(w.plan_offsets(&w.threads()[0])[0], 0);
    }

    #[test]
    fn null_names_stay_null_and_blind_spots_load_through_importlib() {
        let mut null_start = s(0, 1, 0, "");
        null_start.name = NameState::Missing;
        let mut null_done = d(5, 1, 0, "", false);
        null_done.name = NameState::Missing;
        let f = forest(vec![
            null_start,
            null_done,
            s(10, 1, 0, "pandas"),
            s(20, 1, 1, "numexpr.expressions"),
            d(30, 1, 1, "numexpr.expressions", true),
            d(90, 1, 0, "pandas", true),
        ]);
        let r = from_forest(&f, None, "r").unwrap();
        let w = &r.workload;
        assert_eq!(w.probe_arg(0), None);
        let pandas = w.find("pandas").unwrap();
        let body = w.body(pandas);
        assert_eq!(body_names(w, pandas), ["numexpr", "numexpr.expressions"]);
        assert_eq!((body[0].via, body[1].via), (Via::Importlib, Via::Import));
        assert_eq!(w.body_slices(pandas), [10, 0, 60]);
        assert!(r.notes.iter().any(|n| n.contains("numexpr") && n.contains("importlib")), "{:?}", r.notes);
    }

    #[test]
    fn several_processes_need_a_pid_and_unknown_pids_are_named() {
        let mut evs = package_and_failure();
        evs.push(ImportEvent::start(1, 9, 9, 0, "child"));
        evs.push(ImportEvent::done(2, 9, 9, 0, "child", true));
        let mut rec = Recording::new(Origin::Truth, evs);
        rec.processes.push(ProcessInfo { pid: 9, ppid: Some(1), command: "sim child".into() });
        let f = Forest::build(&rec);
        let e = from_forest(&f, None, "r").unwrap_err();
        assert!(e.to_string().contains("2 processes") && e.to_string().contains("pid 9 (child of 1)"), "{e}");
        assert_eq!(from_forest(&f, Some(9), "r").unwrap().workload.module_count(), 1);
        assert!(matches!(from_forest(&f, Some(5), "r"), Err(ReplayError::NoSuchProcess { pid: 5, .. })));
        assert_eq!(from_forest(&Forest::default(), None, "r").unwrap_err(), ReplayError::Empty);
    }

    #[test]
    fn unfinished_and_cut_imports_are_noted() {
        let mut cut = s(0, 1, 0, "very_long_na");
        cut.name = NameState::Cut;
        let f = forest(vec![cut, s(1, 1, 1, "inner"), d(2, 1, 1, "inner", true)]);
        let r = from_forest(&f, None, "r").unwrap();
        assert!(r.notes.iter().any(|n| n.contains("never finished")), "{:?}", r.notes);
        assert!(r.notes.iter().any(|n| n.contains("cut")), "{:?}", r.notes);
        assert!(r.workload.module(0).raises, "unfinished: ends failed, after its nested import");
    }
}
