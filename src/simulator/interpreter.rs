//! One simulated thread running CPython's import algorithm.
//!
//! The functions of `Python/import.c` and `importlib._bootstrap` become
//! frames on an explicit stack, so a 10,000-deep import chain needs no Rust
//! recursion:
//!
//! | frame         | CPython                                                    |
//! |---------------|------------------------------------------------------------|
//! | `Level`       | `PyImport_ImportModuleLevelObject` + `import_find_and_load` (fires the probes) |
//! | `FindAndLoad` | `_find_and_load` (takes the module lock); entered directly by `importlib.import_module()`'s `_gcd_import`, which fires nothing |
//! | `Unlocked`    | `_find_and_load_unlocked` (parent, find, exec)             |
//! | `Body`        | the module's body, or a thread's top-level code            |
//! | `Stmt`        | one `import` / `from ... import` / `import_module()` statement |
//!
//! A frame is resumed with `None` when entered and with its child's outcome
//! when the child returns; it either finishes with an outcome or pushes
//! itself back with a child on top.

use super::clock::monotonic_ns;
use super::cost::{spend, spend_until};
use super::import_system::{Entry, ImportSystem, ThreadIdx};
use super::outputs::Outputs;
use super::probes;
use crate::workload::{ImportStmt, ModId, ProbeName, Via, Workload};
use std::time::Duration;

/// Why an import failed (the probe only reports found = 0 for all of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// `ModuleNotFoundError`: missing module, missing parent, parent not a package.
    NotFound,
    /// The module body raised (itself, or an uncaught failed import in it).
    Raised,
    /// `_DeadlockError` from a module lock.
    Deadlock,
    /// `SystemError`: CPython 3.11 could not encode the name for the probes
    /// and called importlib with that error pending.
    Unencodable,
}

pub type Outcome = Result<(), Failure>;

#[derive(Debug)]
enum Frame<'w> {
    Level { m: ModId, pair: Option<PairClock> },
    FindAndLoad { m: ModId, locked: bool, via: Via },
    Unlocked { m: ModId, stage: UnlockedStage, via: Via },
    Body(BodyFrame<'w>),
    Stmt { stmt: &'w ImportStmt, stage: usize },
}

/// A module body or a thread's top-level code, between statements.
#[derive(Debug)]
struct BodyFrame<'w> {
    module: Option<ModId>,
    stmts: &'w [ImportStmt],
    timing: Timing<'w>,
    next: usize,
    /// Slices spent so far ([`Timing::Slices`]): the self time the body has
    /// reached by the end of slice `next - 1`.
    own_ns: u64,
}

/// How a body spends its own time around its statements.
#[derive(Debug, Clone, Copy)]
enum Timing<'w> {
    /// `exec` in equal slices.
    Even(Duration),
    /// Explicit slices (a replay's module bodies): slice `i` before
    /// statement `i`, the last one after every statement. Each slice ends at
    /// a deadline counted from the pair's start stamp plus the time its
    /// nested pairs took, so the self time a tracer measures is the recorded
    /// one whatever its nested imports cost, and the simulator's own work
    /// inside the pair (writing the truth, a page fault, a short preemption)
    /// is absorbed by the next slice instead of adding up.
    Slices(&'w [u64]),
    /// Deadlines (a replay's top level): statement `i` starts `offsets[i]`
    /// ns after the run's origin, so every root import keeps to the
    /// recorded time line and threads stay aligned.
    Offsets(&'w [u64]),
}

#[derive(Debug, Clone, Copy)]
enum UnlockedStage {
    Enter,
    AfterParent,
    AfterBody,
}

/// `-X importtime` bookkeeping of one open probe pair.
#[derive(Debug, Clone, Copy)]
struct PairClock {
    t1: u64,
    accumulated_copy: u64,
    /// The enclosing pair's start stamp, restored when this pair ends.
    outer_t1: u64,
}

/// A thread's interpreter: its identity, nesting depth and frame stack.
pub struct ThreadRun<'w> {
    w: &'w Workload,
    sys: &'w ImportSystem,
    out: &'w Outputs,
    me: ThreadIdx,
    tid: u32,
    depth: u32,
    /// The outputs want timestamps ([`Outputs::timed`]); else they are 0.
    timed: bool,
    /// Time spent in nested imports of the innermost open pair (importtime's
    /// `accumulated`, kept per thread).
    accumulated: u64,
    /// The start stamp of the innermost open pair (0 outside every pair).
    pair_t1: u64,
    /// CLOCK_MONOTONIC ns that timing offsets count from: the start of the
    /// run, shared by its threads, so that a replay keeps to the recorded
    /// time line and a delay (a preemption) never accumulates.
    origin: u64,
    stack: Vec<Frame<'w>>,
}

impl<'w> ThreadRun<'w> {
    pub fn new(w: &'w Workload, sys: &'w ImportSystem, out: &'w Outputs, me: ThreadIdx) -> Self {
        let tid = super::clock::current_tid();
        // A replay keeps to recorded times, so it reads the clock whether
        // or not an output records the stamps.
        let timed = out.timed() || w.has_timeline();
        ThreadRun {
            w,
            sys,
            out,
            me,
            tid,
            depth: 0,
            timed,
            accumulated: 0,
            pair_t1: 0,
            origin: monotonic_ns(),
            stack: Vec::new(),
        }
    }

    /// Counts timing offsets from `origin_ns` (default: when the thread's
    /// interpreter was made).
    pub fn with_origin(mut self, origin_ns: u64) -> Self {
        self.origin = origin_ns;
        self
    }

    /// Runs top-level import statements. An `Err` is an uncaught import
    /// error, which ends the thread as it would in Python.
    pub fn run(&mut self, stmts: &'w [ImportStmt]) -> Outcome {
        self.run_timed(stmts, &[])
    }

    /// Runs top-level statements at the given offsets from the origin (see
    /// [`crate::workload::Workload::plan_offsets`]; empty: no top-level time).
    pub fn run_timed(&mut self, stmts: &'w [ImportStmt], offsets: &'w [u64]) -> Outcome {
        let timing = if offsets.is_empty() { Timing::Even(Duration::ZERO) } else { Timing::Offsets(offsets) };
        let body = BodyFrame { module: None, stmts, timing, next: 0, own_ns: 0 };
        self.stack.push(Frame::Body(body));
        let mut ret = None;
        while let Some(frame) = self.stack.pop() {
            ret = self.resume(frame, ret.take());
        }
        ret.expect("the top-level frame always returns an outcome")
    }

    fn call(&mut self, me: Frame<'w>, child: Frame<'w>) -> Option<Outcome> {
        self.stack.push(me);
        self.stack.push(child);
        None
    }

    fn resume(&mut self, frame: Frame<'w>, ret: Option<Outcome>) -> Option<Outcome> {
        match frame {
            Frame::Level { m, pair: None } => self.enter_level(m),
            Frame::Level { m, pair: Some(clock) } => Some(self.leave_level(m, clock, ret.expect("child outcome"))),
            Frame::FindAndLoad { m, locked: false, via } => self.enter_find_and_load(m, via),
            Frame::FindAndLoad { m, locked: true, .. } => {
                self.sys.release(self.me, m);
                ret
            }
            Frame::Unlocked { m, stage, via } => self.unlocked(m, stage, via, ret),
            Frame::Body(body) => self.body(body, ret),
            Frame::Stmt { stmt, stage } => self.statement(stmt, stage, ret),
        }
    }

    /// `PyImport_ImportModuleLevelObject`: a module already in `sys.modules`
    /// fires nothing (waiting for its lock if another thread is still
    /// executing it); otherwise `import_find_and_load` wraps `_find_and_load`
    /// in the probe pair.
    fn enter_level(&mut self, m: ModId) -> Option<Outcome> {
        match self.sys.entry(m) {
            Entry::Loaded => Some(Ok(())),
            Entry::Initializing(owner) => {
                if owner != self.me {
                    self.sys.lock_unlock(self.me, m);
                }
                Some(Ok(()))
            }
            Entry::Absent => {
                let t1 = self.fire_start(m);
                let clock = PairClock { t1, accumulated_copy: self.accumulated, outer_t1: self.pair_t1 };
                self.accumulated = 0;
                self.pair_t1 = t1;
                if self.w.module(m).probe_name == ProbeName::Unencodable {
                    // The start probe's argument left UnicodeEncodeError
                    // pending: importlib fails at once, finding nothing.
                    return Some(self.leave_level(m, clock, Err(Failure::Unencodable)));
                }
                self.call(
                    Frame::Level { m, pair: Some(clock) },
                    Frame::FindAndLoad { m, locked: false, via: Via::Import },
                )
            }
        }
    }

    fn leave_level(&mut self, m: ModId, clock: PairClock, outcome: Outcome) -> Outcome {
        let t2 = self.fire_done(m, outcome.is_ok());
        let cum = t2.saturating_sub(clock.t1);
        self.out.importtime(self.depth, cum.saturating_sub(self.accumulated), cum, self.w, m);
        self.accumulated = clock.accumulated_copy + cum;
        self.pair_t1 = clock.outer_t1;
        outcome
    }

    /// A probe's timestamp, when an output records it.
    #[inline(always)]
    fn now(&self) -> u64 {
        if self.timed {
            monotonic_ns()
        } else {
            0
        }
    }

    /// The single call site of the start probe. Never inlined: inlined into
    /// two callers it would become two SDT notes for one probe name.
    #[inline(never)]
    fn fire_start(&mut self, m: ModId) -> u64 {
        let name = self.w.probe_arg(m);
        let ts = self.now();
        probes::import_find_load_start(name);
        self.out.event(ts, self.tid, self.depth, self.w, m, None);
        self.depth += 1;
        ts
    }

    /// The single call site of the done probe (never inlined, as above).
    #[inline(never)]
    fn fire_done(&mut self, m: ModId, found: bool) -> u64 {
        self.depth -= 1;
        let name = self.w.probe_arg(m);
        let ts = self.now();
        probes::import_find_load_done(name, found);
        self.out.event(ts, self.tid, self.depth, self.w, m, Some(found));
        ts
    }

    /// `_find_and_load`: takes the module lock (blocking while another thread
    /// finds or executes the module), then loads it unless that other thread
    /// already did. `via` is the `import_` it passes on to import parents
    /// with: `builtins.__import__` from C, `_gcd_import` from importlib.
    fn enter_find_and_load(&mut self, m: ModId, via: Via) -> Option<Outcome> {
        if self.sys.entry(m) == Entry::Loaded {
            return Some(Ok(()));
        }
        if self.sys.acquire(self.me, m).is_err() {
            return Some(Err(Failure::Deadlock));
        }
        if self.sys.entry(m) == Entry::Absent {
            return self.call(
                Frame::FindAndLoad { m, locked: true, via },
                Frame::Unlocked { m, stage: UnlockedStage::Enter, via },
            );
        }
        self.sys.release(self.me, m);
        self.sys.lock_unlock(self.me, m);
        Some(Ok(()))
    }

    /// `_find_and_load_unlocked`: parent first (through `import_`: nested
    /// pairs from C, nothing from importlib), then find, then execute the
    /// body with the module in `sys.modules`.
    fn unlocked(&mut self, m: ModId, stage: UnlockedStage, via: Via, ret: Option<Outcome>) -> Option<Outcome> {
        let module = self.w.module(m);
        match stage {
            UnlockedStage::Enter => match self.w.parent(m) {
                Some(p) if self.sys.entry(p) == Entry::Absent => {
                    let parent = match via {
                        Via::Import => Frame::Level { m: p, pair: None },
                        Via::Importlib => Frame::FindAndLoad { m: p, locked: false, via },
                    };
                    self.call(Frame::Unlocked { m, stage: UnlockedStage::AfterParent, via }, parent)
                }
                Some(p) => self.after_parent(m, p, Ok(())),
                None => self.find_and_exec(m),
            },
            UnlockedStage::AfterParent => {
                let p = self.w.parent(m).expect("only dotted modules import a parent");
                self.after_parent(m, p, ret.expect("child outcome"))
            }
            UnlockedStage::AfterBody => {
                let outcome =
                    if ret.expect("child outcome").is_ok() && !module.raises { Ok(()) } else { Err(Failure::Raised) };
                // A module whose body raised leaves sys.modules, so importing
                // it again fires the pair again.
                self.sys.set(m, if outcome.is_ok() { Entry::Loaded } else { Entry::Absent });
                Some(outcome)
            }
        }
    }

    fn after_parent(&mut self, m: ModId, parent: ModId, parent_outcome: Outcome) -> Option<Outcome> {
        if let Err(e) = parent_outcome {
            return Some(Err(e));
        }
        // "Crazy side-effects!": the parent's body may have imported us.
        if self.sys.entry(m) != Entry::Absent {
            return Some(Ok(()));
        }
        if self.sys.entry(parent) == Entry::Absent || !self.w.module(parent).is_package {
            return Some(Err(Failure::NotFound));
        }
        self.find_and_exec(m)
    }

    fn find_and_exec(&mut self, m: ModId) -> Option<Outcome> {
        let module = self.w.module(m);
        if self.w.has_timeline() {
            // A replayed failure's search, counted from its start stamp.
            spend_until(self.pair_t1 + module.find().as_nanos() as u64);
        } else {
            spend(module.find());
        }
        if module.missing {
            return Some(Err(Failure::NotFound));
        }
        self.sys.set(m, Entry::Initializing(self.me));
        let body = BodyFrame {
            module: Some(m),
            stmts: self.w.body(m),
            timing: match self.w.body_slices(m) {
                [] => Timing::Even(module.exec()),
                slices => Timing::Slices(slices),
            },
            next: 0,
            own_ns: 0,
        };
        self.call(Frame::Unlocked { m, stage: UnlockedStage::AfterBody, via: Via::Import }, Frame::Body(body))
    }

    /// A body: its time is spent before, between and after its import
    /// statements (see [`Timing`]); an uncaught
    /// failed import makes a module body raise.
    fn body(&mut self, mut b: BodyFrame<'w>, ret: Option<Outcome>) -> Option<Outcome> {
        if let Some(Err(e)) = ret {
            return Some(Err(if b.module.is_some() { Failure::Raised } else { e }));
        }
        match b.timing {
            Timing::Even(exec) => spend(exec_slice(exec, b.stmts.len(), b.next)),
            Timing::Slices(s) => {
                b.own_ns += s.get(b.next).copied().unwrap_or(0);
                spend_until(self.pair_t1 + self.accumulated + b.own_ns);
            }
            Timing::Offsets(o) => spend_until(self.origin + o.get(b.next).copied().unwrap_or(0)),
        }
        match b.stmts.get(b.next) {
            Some(stmt) => {
                b.next += 1;
                self.call(Frame::Body(b), Frame::Stmt { stmt, stage: 0 })
            }
            None => Some(Ok(())),
        }
    }

    /// `import target` or `from target import a, b`: stage 0 imports the
    /// target; stage i >= 1 has imported from-list item i-1.
    /// `importlib.import_module(target)` enters `_find_and_load` directly.
    fn statement(&mut self, stmt: &'w ImportStmt, stage: usize, ret: Option<Outcome>) -> Option<Outcome> {
        let fail = || Some(if stmt.catch { Ok(()) } else { Err(Failure::Raised) });
        if stage == 0 && ret.is_none() {
            let m = stmt.target;
            let child = match stmt.via {
                Via::Import => Frame::Level { m, pair: None },
                Via::Importlib => Frame::FindAndLoad { m, locked: false, via: Via::Importlib },
            };
            return self.call(Frame::Stmt { stmt, stage: 1 }, child);
        }
        if let Some(Err(_)) = ret {
            return fail();
        }
        // `_handle_fromlist`: only packages import submodules by from-list,
        // and only those not yet in sys.modules.
        if !self.w.module(stmt.target).is_package {
            return Some(Ok(()));
        }
        let subs = self.w.from_targets(stmt);
        for (i, &sub) in subs.iter().enumerate().skip(stage - 1) {
            if self.sys.entry(sub) == Entry::Absent {
                return self.call(Frame::Stmt { stmt, stage: i + 2 }, Frame::Level { m: sub, pair: None });
            }
        }
        Some(Ok(()))
    }
}

/// Slice `index` of `exec` split into `stmts + 1` parts (the last takes the
/// rounding remainder), so self time is spread around nested imports.
fn exec_slice(exec: Duration, stmts: usize, index: usize) -> Duration {
    let parts = stmts as u64 + 1;
    let total = exec.as_nanos() as u64;
    let each = total / parts;
    Duration::from_nanos(if index as u64 == parts - 1 { total - each * (parts - 1) } else { each })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_slices_add_up() {
        let exec = Duration::from_nanos(1003);
        let sum: Duration = (0..4).map(|i| exec_slice(exec, 3, i)).sum();
        assert_eq!(sum, exec);
        assert_eq!(exec_slice(exec, 0, 0), exec);
    }
}
