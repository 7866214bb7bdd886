//! What a simulated program runs besides its module graph: its threads, the
//! child processes its main thread starts, and what those children run.
//!
//! A process is its main thread's top-level code: import statements, with
//! child processes started between them ([`Spawn`]). Only the main thread
//! starts processes, and only from top-level code, which is where a
//! multiprocessing pool, a pre-fork server's master or a `subprocess.run`
//! call sits in a real program. That is also what makes forking safe here:
//! the simulator forks only while its process has a single thread (see
//! `simulator::process`).

use std::ops::Range;

/// Index of a [`ProcessPlan`] among a workload's fork plans.
pub type ForkId = u32;

/// When a thread starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ThreadStart {
    /// After the main thread's top-level code, together with the other such
    /// threads (like `programs/threads.py`): the manifest's `[[thread]]`.
    #[default]
    AfterMain,
    /// Together with the main thread, when the program starts; its first
    /// top-level offset is when it begins to import. A replay starts the
    /// threads of a recording this way.
    WithMain,
}

/// A thread of the simulated program and the imports it runs.
#[derive(Debug, Clone)]
pub struct ThreadPlan {
    pub name: String,
    pub(super) stmts: Range<u32>,
    /// When the top-level statements start, as offsets from the start of
    /// the run (see [`super::Workload::plan_offsets`]); empty: no time.
    pub(super) offsets: Range<u32>,
    pub start: ThreadStart,
}

/// A child process started by a process's main thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spawn {
    /// How many of the main thread's top-level statements run before it.
    pub after: u32,
    pub kind: SpawnKind,
    /// Wait for the child right away (`subprocess.run`); otherwise the
    /// parent waits for it when its own program ends (`Popen`, a pool).
    pub wait: bool,
}

/// How a child process is started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpawnKind {
    /// `fork()`: the child continues with a copy of the parent's
    /// `sys.modules` and runs the fork plan's imports (a multiprocessing
    /// fork-pool worker importing after the fork).
    Fork(ForkId),
    /// fork + exec of this very binary (so its probes are there): a fresh
    /// `importprobe run` of another workload, as `subprocess` starts a new
    /// interpreter.
    Exec(ExecSpec),
}

/// What an exec'd child runs: `importprobe run --workload WORKLOAD ARGS...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecSpec {
    /// A built-in workload's name or a manifest's path.
    pub workload: String,
    /// More `importprobe run` arguments (`--count 2`, ...).
    pub args: Vec<String>,
}

/// One process's program: its main thread and the children it starts.
#[derive(Debug, Clone)]
pub struct ProcessPlan {
    /// `main` for the program itself, else the fork plan's name.
    pub name: String,
    pub main: ThreadPlan,
    /// In the order they start (`after` never decreases).
    pub spawns: Vec<Spawn>,
}

impl ProcessPlan {
    /// The fork plans this one starts directly.
    pub fn forks(&self) -> impl Iterator<Item = ForkId> + '_ {
        self.spawns.iter().filter_map(|s| match s.kind {
            SpawnKind::Fork(f) => Some(f),
            SpawnKind::Exec(_) => None,
        })
    }
}
