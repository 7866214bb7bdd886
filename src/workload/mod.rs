//! Workloads: the module graph a simulated program imports, with known costs.
//!
//! A [`Workload`] is compiled once (from a manifest, a built-in scenario, the
//! demo or the random generator, all through [`WorkloadBuilder`]; or from a
//! recording by [`replay`]) into flat tables indexed by [`ModId`], so a
//! million-module graph stays compact and the simulator never hashes a name
//! on its hot path. Module names are stored NUL-terminated, so a probe's
//! `char *` argument costs nothing to prepare.

pub mod builder;
pub mod demo;
mod interner;
pub mod manifest;
pub mod name;
pub mod plan;
pub mod random;
pub mod replay;
pub mod scenarios;

pub use builder::{BuildError, ModuleSpec, StepSpec, StmtSpec, WorkloadBuilder};
pub use plan::{ExecSpec, ForkId, ProcessPlan, Spawn, SpawnKind, ThreadPlan, ThreadStart};

use std::ffi::CStr;
use std::ops::Range;
use std::time::Duration;

/// Index of a module in a [`Workload`].
pub type ModId = u32;

/// What CPython hands the probes as a module's name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ProbeName {
    /// The name, UTF-8 encoded.
    #[default]
    Utf8,
    /// A NULL pointer, and nothing else differs: what newer CPythons pass on
    /// purpose for a name they cannot encode, and what a replay of a
    /// recorded NULL name fires.
    Null,
    /// A name CPython 3.11 cannot encode (`__import__('a\udcff')`): under a
    /// tracer, `PyUnicode_AsUTF8` fails inside the start probe's argument,
    /// so the probes get NULL and the encoding error is still pending when
    /// `_find_and_load` is called, which fails at once with `SystemError`.
    /// The pair fires with found = 0 and nothing nests in it; the module
    /// never reaches `sys.modules`, so importing it again fires again.
    Unencodable,
}

impl ProbeName {
    /// The probes receive NULL rather than the name.
    pub fn is_null(self) -> bool {
        self != ProbeName::Utf8
    }
}

/// How an import statement reaches the import system.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Via {
    /// `import m`, `from m import x`, `__import__('m')`: C's
    /// `PyImport_ImportModuleLevelObject`, whose `import_find_and_load`
    /// fires the probe pair (and prints the `-X importtime` line).
    #[default]
    Import,
    /// `importlib.import_module('m')`: importlib's pure-Python
    /// `_gcd_import`. Neither the module nor the parents it imports on the
    /// way fire anything; the `import` statements in their bodies do, so
    /// their submodules fire with a parent that never did, and the bodies'
    /// own time is in the self time of the enclosing import.
    Importlib,
}

/// One module the simulated finder knows about (or knows is missing).
///
/// 48 bytes: costs are whole nanoseconds, the parent a sentinel-coded id.
#[derive(Debug, Clone)]
pub struct Module {
    name: Range<u32>,
    stmts: Range<u32>,
    /// Its body's own time as explicit slices in ns: before the first
    /// statement, after each one (a replay's recorded gaps, so each self
    /// time is the recorded one). Empty: `exec` is spent in equal slices.
    slices: Range<u32>,
    find_ns: u64,
    exec_ns: u64,
    /// [`NO_PARENT`] for a top-level module.
    parent: ModId,
    /// Has a `__path__`: submodules can be imported from it.
    pub is_package: bool,
    /// The finder does not find it: `ModuleNotFoundError`.
    pub missing: bool,
    /// Its body raises after running its imports.
    pub raises: bool,
    pub probe_name: ProbeName,
}

/// [`Module::parent`] of a top-level module.
const NO_PARENT: ModId = ModId::MAX;

impl Module {
    /// Time the finder spends locating it (spent even when it is missing).
    pub fn find(&self) -> Duration {
        Duration::from_nanos(self.find_ns)
    }

    /// Time its body spends outside nested imports ("self" time).
    pub fn exec(&self) -> Duration {
        Duration::from_nanos(self.exec_ns)
    }
}

/// Whole nanoseconds of a cost (saturating: 584 years are plenty).
fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// One `import` statement in a module body or a thread's top level.
#[derive(Debug, Clone)]
pub struct ImportStmt {
    /// `import target` / `from target import ...`.
    pub target: ModId,
    /// Wrapped in `try: ... except ImportError: pass`.
    pub catch: bool,
    pub via: Via,
    from: Range<u32>,
}

/// A compiled, immutable module graph plus the threads and processes that
/// import from it.
///
/// The main thread runs its top-level imports first, starting child
/// processes between them; then every [`ThreadStart::AfterMain`] thread
/// starts at once and the main thread joins them (like
/// `programs/threads.py`). [`ThreadStart::WithMain`] threads run alongside
/// the main thread from the start.
#[derive(Debug, Clone)]
pub struct Workload {
    pub name: String,
    names: Vec<u8>,
    modules: Vec<Module>,
    stmts: Vec<ImportStmt>,
    from_targets: Vec<ModId>,
    /// Body slices and top-level offsets in nanoseconds (only replays have any).
    times: Vec<u64>,
    main: ProcessPlan,
    threads: Vec<ThreadPlan>,
    forks: Vec<ProcessPlan>,
}

impl Workload {
    pub fn module(&self, id: ModId) -> &Module {
        &self.modules[id as usize]
    }

    pub fn module_count(&self) -> usize {
        self.modules.len()
    }

    /// The module's name with its trailing NUL, ready to hand to a probe.
    /// For a module whose [`ProbeName`] is NULL, a label for people.
    /// O(1): no scan for the NUL, so preparing a probe's argument costs
    /// nothing next to the probe's untraced semaphore check.
    pub fn c_name(&self, id: ModId) -> &CStr {
        let r = &self.modules[id as usize].name;
        let bytes = &self.names[r.start as usize..r.end as usize];
        debug_assert!(CStr::from_bytes_with_nul(bytes).is_ok(), "a name without its NUL or with one inside");
        // SAFETY: the builder and the replay reject names holding a NUL and
        // store each name followed by exactly one NUL, which `r` includes.
        unsafe { CStr::from_bytes_with_nul_unchecked(bytes) }
    }

    /// What the probes receive: the name, or `None` for a NULL pointer.
    pub fn probe_arg(&self, id: ModId) -> Option<&CStr> {
        (!self.modules[id as usize].probe_name.is_null()).then(|| self.c_name(id))
    }

    /// The module's name as text (lossy only for names that are not UTF-8).
    pub fn name(&self, id: ModId) -> std::borrow::Cow<'_, str> {
        self.c_name(id).to_string_lossy()
    }

    pub fn parent(&self, id: ModId) -> Option<ModId> {
        Some(self.modules[id as usize].parent).filter(|&p| p != NO_PARENT)
    }

    /// The body's import statements, in order.
    pub fn body(&self, id: ModId) -> &[ImportStmt] {
        let r = &self.modules[id as usize].stmts;
        &self.stmts[r.start as usize..r.end as usize]
    }

    /// A replay: bodies and top levels keep to recorded times (slices and
    /// offsets), which the interpreter times with the clock.
    pub fn has_timeline(&self) -> bool {
        !self.times.is_empty()
    }

    /// The body's explicit time slices in ns (see [`Module`]); empty for
    /// modules whose `exec` is spread evenly.
    pub fn body_slices(&self, id: ModId) -> &[u64] {
        self.slice(&self.modules[id as usize].slices)
    }

    /// Submodules named in a `from target import a, b` that are modules.
    pub fn from_targets(&self, stmt: &ImportStmt) -> &[ModId] {
        &self.from_targets[stmt.from.start as usize..stmt.from.end as usize]
    }

    /// The program's own process: its main thread and the children it starts.
    pub fn main_process(&self) -> &ProcessPlan {
        &self.main
    }

    pub fn main_thread(&self) -> &ThreadPlan {
        &self.main.main
    }

    pub fn threads(&self) -> &[ThreadPlan] {
        &self.threads
    }

    /// A forked child's program.
    pub fn fork_plan(&self, id: ForkId) -> &ProcessPlan {
        &self.forks[id as usize]
    }

    pub fn fork_plans(&self) -> &[ProcessPlan] {
        &self.forks
    }

    pub fn plan_stmts(&self, plan: &ThreadPlan) -> &[ImportStmt] {
        &self.stmts[plan.stmts.start as usize..plan.stmts.end as usize]
    }

    /// A thread's top-level timing offsets in ns from the start of the run
    /// (one per statement, then its end); empty: its top-level code takes
    /// no time.
    pub fn plan_offsets(&self, plan: &ThreadPlan) -> &[u64] {
        self.slice(&plan.offsets)
    }

    fn slice(&self, r: &Range<u32>) -> &[u64] {
        &self.times[r.start as usize..r.end as usize]
    }

    /// The same workload with every cost, slice and offset multiplied by `factor`.
    pub fn scaled(mut self, factor: f64) -> Self {
        for m in &mut self.modules {
            m.find_ns = nanos(m.find().mul_f64(factor));
            m.exec_ns = nanos(m.exec().mul_f64(factor));
        }
        for o in &mut self.times {
            *o = (*o as f64 * factor).round() as u64;
        }
        self
    }

    /// Looks a module up by name (linear: for tests and tools, not hot paths).
    pub fn find(&self, name: &str) -> Option<ModId> {
        (0..self.modules.len() as ModId).find(|&id| self.c_name(id).to_bytes() == name.as_bytes())
    }

    /// Every process plan (the program's, then the fork plans).
    pub fn processes(&self) -> impl Iterator<Item = &ProcessPlan> {
        std::iter::once(&self.main).chain(&self.forks)
    }
}

/// Converts a manifest's microseconds into a duration, rejecting nonsense.
pub fn micros(module: &str, what: &'static str, us: f64) -> Result<Duration, BuildError> {
    if (0.0..1e12).contains(&us) {
        Ok(Duration::from_nanos((us * 1000.0).round() as u64))
    } else {
        Err(BuildError::BadCost(module.to_owned(), what))
    }
}

/// Workload names `importprobe run --workload` knows besides manifest files.
pub fn is_builtin(name: &str) -> bool {
    matches!(name, "demo" | "random") || scenarios::NAMES.contains(&name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costs_reject_negative_and_nan() {
        assert!(micros("m", "find", -1.0).is_err());
        assert!(micros("m", "find", f64::NAN).is_err());
        assert_eq!(micros("m", "find", 1.5).unwrap(), Duration::from_nanos(1500));
    }

    #[test]
    fn null_probe_names_hand_the_probes_no_pointer() {
        let mut b = WorkloadBuilder::new("t");
        b.define("bad", ModuleSpec { probe_name: ProbeName::Unencodable, ..Default::default() }).unwrap();
        b.define("good", ModuleSpec::default()).unwrap();
        let w = b.build().unwrap();
        assert_eq!(w.probe_arg(w.find("bad").unwrap()), None);
        assert_eq!(w.probe_arg(w.find("good").unwrap()).unwrap().to_bytes(), b"good");
        assert_eq!(w.name(w.find("bad").unwrap()), "bad", "the label stays, for people");
    }
}
