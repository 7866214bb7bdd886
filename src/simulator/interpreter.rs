//! One simulated thread running CPython's import algorithm.
//!
//! The functions of `Python/import.c` and `importlib._bootstrap` become
//! frames on an explicit stack, so a 10,000-deep import chain needs no Rust
//! recursion:
//!
//! | frame         | CPython                                                    |
//! |---------------|------------------------------------------------------------|
//! | `Level`       | `PyImport_ImportModuleLevelObject` + `import_find_and_load` (fires the probes) |
//! | `FindAndLoad` | `_find_and_load` (takes the module lock)                   |
//! | `Unlocked`    | `_find_and_load_unlocked` (parent, find, exec)             |
//! | `Body`        | the module's body, or a thread's top-level code            |
//! | `Stmt`        | one `import` / `from ... import` statement                 |
//!
//! A frame is resumed with `None` when entered and with its child's outcome
//! when the child returns; it either finishes with an outcome or pushes
//! itself back with a child on top.

use super::cost::spend;
use super::import_system::{Entry, ImportSystem, ThreadIdx};
use super::outputs::Outputs;
use super::probes;
use crate::workload::{ImportStmt, ModId, Workload};
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
}

pub type Outcome = Result<(), Failure>;

#[derive(Debug)]
enum Frame<'w> {
    Level { m: ModId, pair: Option<PairClock> },
    FindAndLoad { m: ModId, locked: bool },
    Unlocked { m: ModId, stage: UnlockedStage },
    Body { module: Option<ModId>, stmts: &'w [ImportStmt], next: usize },
    Stmt { stmt: &'w ImportStmt, stage: usize },
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
}

/// A thread's interpreter: its identity, nesting depth and frame stack.
pub struct ThreadRun<'w> {
    w: &'w Workload,
    sys: &'w ImportSystem,
    out: &'w Outputs,
    me: ThreadIdx,
    tid: u32,
    depth: u32,
    /// Time spent in nested imports of the innermost open pair (importtime's
    /// `accumulated`, kept per thread).
    accumulated: u64,
    stack: Vec<Frame<'w>>,
}

impl<'w> ThreadRun<'w> {
    pub fn new(w: &'w Workload, sys: &'w ImportSystem, out: &'w Outputs, me: ThreadIdx) -> Self {
        ThreadRun { w, sys, out, me, tid: super::clock::current_tid(), depth: 0, accumulated: 0, stack: Vec::new() }
    }

    /// Runs a thread's top-level import statements. An `Err` is an uncaught
    /// import error, which ends the thread as it would in Python.
    pub fn run(&mut self, stmts: &'w [ImportStmt]) -> Outcome {
        self.stack.push(Frame::Body { module: None, stmts, next: 0 });
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
            Frame::FindAndLoad { m, locked: false } => self.enter_find_and_load(m),
            Frame::FindAndLoad { m, locked: true } => {
                self.sys.release(self.me, m);
                ret
            }
            Frame::Unlocked { m, stage } => self.unlocked(m, stage, ret),
            Frame::Body { module, stmts, next } => self.body(module, stmts, next, ret),
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
                let clock = PairClock { t1: self.fire_start(m), accumulated_copy: self.accumulated };
                self.accumulated = 0;
                self.call(Frame::Level { m, pair: Some(clock) }, Frame::FindAndLoad { m, locked: false })
            }
        }
    }

    fn leave_level(&mut self, m: ModId, clock: PairClock, outcome: Outcome) -> Outcome {
        let t2 = self.fire_done(m, outcome.is_ok());
        let cum = t2.saturating_sub(clock.t1);
        self.out.importtime(self.depth, cum.saturating_sub(self.accumulated), cum, self.w, m);
        self.accumulated = clock.accumulated_copy + cum;
        outcome
    }

    /// The single call site of the start probe.
    fn fire_start(&mut self, m: ModId) -> u64 {
        let name = self.w.c_name(m);
        let ts = super::clock::monotonic_ns();
        probes::import_find_load_start(name);
        self.out.event(ts, self.tid, self.depth, self.w, m, None);
        self.depth += 1;
        ts
    }

    /// The single call site of the done probe.
    fn fire_done(&mut self, m: ModId, found: bool) -> u64 {
        self.depth -= 1;
        let name = self.w.c_name(m);
        let ts = super::clock::monotonic_ns();
        probes::import_find_load_done(name, found);
        self.out.event(ts, self.tid, self.depth, self.w, m, Some(found));
        ts
    }

    /// `_find_and_load`: takes the module lock (blocking while another thread
    /// finds or executes the module), then loads it unless that other thread
    /// already did.
    fn enter_find_and_load(&mut self, m: ModId) -> Option<Outcome> {
        if self.sys.entry(m) == Entry::Loaded {
            return Some(Ok(()));
        }
        if self.sys.acquire(self.me, m).is_err() {
            return Some(Err(Failure::Deadlock));
        }
        if self.sys.entry(m) == Entry::Absent {
            return self
                .call(Frame::FindAndLoad { m, locked: true }, Frame::Unlocked { m, stage: UnlockedStage::Enter });
        }
        self.sys.release(self.me, m);
        self.sys.lock_unlock(self.me, m);
        Some(Ok(()))
    }

    /// `_find_and_load_unlocked`: parent first (nested pairs), then find,
    /// then execute the body with the module in `sys.modules`.
    fn unlocked(&mut self, m: ModId, stage: UnlockedStage, ret: Option<Outcome>) -> Option<Outcome> {
        let module = self.w.module(m);
        match stage {
            UnlockedStage::Enter => match self.w.parent(m) {
                Some(p) if self.sys.entry(p) == Entry::Absent => self
                    .call(Frame::Unlocked { m, stage: UnlockedStage::AfterParent }, Frame::Level { m: p, pair: None }),
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
        spend(module.find);
        if module.missing {
            return Some(Err(Failure::NotFound));
        }
        self.sys.set(m, Entry::Initializing(self.me));
        self.call(
            Frame::Unlocked { m, stage: UnlockedStage::AfterBody },
            Frame::Body { module: Some(m), stmts: self.w.body(m), next: 0 },
        )
    }

    /// A body: its exec cost is spent in equal slices before, between and
    /// after its import statements; an uncaught failed import makes it raise.
    fn body(
        &mut self,
        module: Option<ModId>,
        stmts: &'w [ImportStmt],
        next: usize,
        ret: Option<Outcome>,
    ) -> Option<Outcome> {
        if let Some(Err(e)) = ret {
            return Some(Err(if module.is_some() { Failure::Raised } else { e }));
        }
        if let Some(m) = module {
            spend(exec_slice(self.w.module(m).exec, stmts.len(), next));
        }
        match stmts.get(next) {
            Some(stmt) => self.call(Frame::Body { module, stmts, next: next + 1 }, Frame::Stmt { stmt, stage: 0 }),
            None => Some(Ok(())),
        }
    }

    /// `import target` or `from target import a, b`: stage 0 imports the
    /// target; stage i >= 1 has imported from-list item i-1.
    fn statement(&mut self, stmt: &'w ImportStmt, stage: usize, ret: Option<Outcome>) -> Option<Outcome> {
        let fail = || Some(if stmt.catch { Ok(()) } else { Err(Failure::Raised) });
        if stage == 0 && ret.is_none() {
            return self.call(Frame::Stmt { stmt, stage: 1 }, Frame::Level { m: stmt.target, pair: None });
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
