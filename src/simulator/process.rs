//! Child processes of a simulated program: `fork()` and fork + exec.
//!
//! A forked child continues from the fork with a copy of everything, the
//! import system's `sys.modules` included, runs its fork plan's imports and
//! exits, as a multiprocessing fork-pool worker does. An exec'd child is a
//! fresh `importprobe run` of another workload (this very binary, so its
//! probes are there), as `subprocess` starts a new interpreter.
//!
//! Forking is done only where it is safe: from the main thread's top-level
//! code, between imports, while the process has exactly one thread (checked
//! in `/proc/self/task` before every fork; a fork is refused otherwise). So
//! no lock, the import system's and the allocator's included, can be held
//! in the child by a thread that does not exist there. Before forking, the
//! outputs are flushed, so no buffered line is written twice. The workload
//! guarantees the single thread by construction: `[[thread]]`s start only
//! after the main thread's top-level code, and only replays (which never
//! fork) start threads with the main thread. An exec'd child is started
//! with `std::process::Command`, which is safe from any thread.
//!
//! Every process waits for its children before it ends (right away for
//! `wait = true` spawns), so a process tree's ground truth is complete when
//! the root exits.

use super::import_system::ImportSystem;
use super::interpreter::{Outcome, ThreadRun};
use super::outputs::Outputs;
use crate::events::ProcessInfo;
use crate::workload::{ExecSpec, ForkId, ProcessPlan, SpawnKind, Workload};
use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// Exec'd children may nest this deep (an `exec` of a workload that execs
/// itself would otherwise never end).
pub const MAX_DEPTH: u32 = 16;

/// How an exec'd child is started: `PROGRAM run --workload W ARGS...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecTemplate {
    /// This binary.
    pub program: PathBuf,
    /// Arguments every child gets (its parent's `--truth FILE`, `--scale`).
    pub args: Vec<OsString>,
}

/// Where this process sits in its process tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    /// The parent recorded in the ground truth: set for children of a
    /// simulated process, `None` for the root (its parent is not part of
    /// the tree).
    pub parent: Option<u32>,
    /// The command line, as `/proc/PID/cmdline` shows it (a forked child
    /// keeps its parent's).
    pub command: String,
    /// 0 for the root, one more per generation.
    pub depth: u32,
    /// How to start exec'd children; `None`: they cannot be started here.
    pub exec: Option<ExecTemplate>,
}

impl Context {
    /// The root of a tree, named by this process's own command line.
    pub fn root() -> Self {
        Context { parent: None, command: command_line(), depth: 0, exec: None }
    }
}

/// This process's arguments joined by spaces (lossy), as people read them.
pub fn command_line() -> String {
    std::env::args_os().map(|a| a.to_string_lossy().into_owned()).collect::<Vec<_>>().join(" ")
}

/// One started child.
struct Started {
    pid: u32,
    label: String,
    /// `None` for forked children (waited for with `waitpid`).
    child: Option<Child>,
}

/// The children a process started and has not waited for yet.
#[derive(Default)]
pub(super) struct Family {
    started: Vec<Started>,
    pub(super) count: usize,
}

impl Family {
    fn add(&mut self, pid: u32, label: String, child: Option<Child>) {
        self.count += 1;
        self.started.push(Started { pid, label, child });
    }

    /// Waits for the child `pid`; a failure becomes a line in `errors`.
    fn wait_for(&mut self, pid: u32, errors: &mut Vec<String>) {
        if let Some(i) = self.started.iter().position(|s| s.pid == pid) {
            let s = self.started.remove(i);
            wait(s, errors);
        }
    }

    /// Waits for every child still running, in the order they started.
    pub(super) fn wait_all(&mut self, errors: &mut Vec<String>) {
        for s in self.started.drain(..) {
            wait(s, errors);
        }
    }
}

fn wait(s: Started, errors: &mut Vec<String>) {
    let status = match s.child {
        Some(mut c) => c.wait().map(|st| st.code().map_or_else(|| format!("was killed ({st})"), exit_text)),
        None => waitpid(s.pid),
    };
    match status {
        Ok(text) if text.is_empty() => {}
        Ok(text) => errors.push(format!("child process {} ({}) {text}", s.pid, s.label)),
        Err(e) => errors.push(format!("cannot wait for child process {} ({}): {e}", s.pid, s.label)),
    }
}

fn exit_text(code: i32) -> String {
    if code == 0 {
        String::new()
    } else {
        format!("exited with status {code}")
    }
}

/// `waitpid` on a forked child: empty text when it exited with status 0.
fn waitpid(pid: u32) -> std::io::Result<String> {
    let mut status = 0;
    loop {
        // SAFETY: waitpid on our own child, writing into a local.
        let r = unsafe { libc::waitpid(pid as i32, &mut status, 0) };
        if r >= 0 {
            break;
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    Ok(if libc::WIFEXITED(status) {
        exit_text(libc::WEXITSTATUS(status))
    } else {
        format!("was killed by signal {}", libc::WTERMSIG(status))
    })
}

/// Why forking now would be unsafe, if it would.
fn fork_blocker() -> Option<String> {
    #[cfg(target_os = "linux")]
    {
        match std::fs::read_dir("/proc/self/task") {
            Ok(tasks) => {
                let n = tasks.count();
                (n != 1).then(|| {
                    format!("{n} threads are running, and forking a multi-threaded process can deadlock the child")
                })
            }
            Err(e) => Some(format!("cannot count this process's threads in /proc/self/task: {e}")),
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

/// Runs a process's main thread and starts its children.
pub(super) struct Driver<'w> {
    pub(super) w: &'w Workload,
    pub(super) sys: &'w ImportSystem,
    pub(super) out: &'w Outputs,
    pub(super) ctx: Context,
    /// Where the run's timing offsets count from.
    pub(super) origin: u64,
}

impl<'w> Driver<'w> {
    /// The main thread's top-level code: its imports, with the plan's
    /// children started between them. `Err` is an uncaught import error
    /// (children started before it are still waited for by the caller).
    /// In a forked child this does not return: the child runs its own plan
    /// and exits.
    pub(super) fn run_main(&self, plan: &'w ProcessPlan, family: &mut Family, errors: &mut Vec<String>) -> Outcome {
        let stmts = self.w.plan_stmts(&plan.main);
        let mut thread = ThreadRun::new(self.w, self.sys, self.out, 0).with_origin(self.origin);
        if plan.spawns.is_empty() {
            return thread.run_timed(stmts, self.w.plan_offsets(&plan.main));
        }
        let mut done = 0;
        for spawn in &plan.spawns {
            let upto = (spawn.after as usize).min(stmts.len());
            thread.run(&stmts[done..upto])?;
            done = upto;
            let pid = match &spawn.kind {
                SpawnKind::Fork(id) => self.fork(*id, family, errors),
                SpawnKind::Exec(spec) => self.exec(spec, family, errors),
            };
            if let (Some(pid), true) = (pid, spawn.wait) {
                family.wait_for(pid, errors);
            }
        }
        thread.run(&stmts[done..])
    }

    fn fork(&self, id: ForkId, family: &mut Family, errors: &mut Vec<String>) -> Option<u32> {
        let plan = self.w.fork_plan(id);
        let label = format!("fork {:?}", plan.name);
        if let Some(why) = fork_blocker() {
            errors.push(format!("{label} not started: {why}"));
            return None;
        }
        if self.ctx.depth >= MAX_DEPTH {
            errors.push(format!("{label} not started: the process tree is already {MAX_DEPTH} generations deep"));
            return None;
        }
        self.out.flush();
        let _ = std::io::stdout().flush();
        let parent = std::process::id();
        // SAFETY: this process has a single thread (checked just above), so
        // the child inherits no lock held by a thread it does not have.
        match unsafe { libc::fork() } {
            -1 => {
                errors.push(format!("{label} not started: fork: {}", std::io::Error::last_os_error()));
                None
            }
            0 => self.forked_child(plan, parent),
            pid => {
                family.add(pid as u32, label, None);
                Some(pid as u32)
            }
        }
    }

    /// The forked child: runs its plan, waits for its own children, flushes
    /// and exits without returning into the parent's code.
    fn forked_child(&self, plan: &'w ProcessPlan, parent: u32) -> ! {
        self.out.after_fork();
        let ctx = Context { parent: Some(parent), depth: self.ctx.depth + 1, ..self.ctx.clone() };
        self.out.process(ProcessInfo { pid: self.out.pid(), ppid: Some(parent), command: ctx.command.clone() });
        let driver = Driver { ctx, ..*self };
        let mut family = Family::default();
        let mut errors = Vec::new();
        let outcome = driver.run_main(plan, &mut family, &mut errors);
        family.wait_all(&mut errors);
        let mut code = 0;
        if let Err(f) = outcome {
            eprintln!(
                "importprobe: uncaught import error ({f:?}) ended fork {:?} (pid {}), as it would end a Python program",
                plan.name,
                self.out.pid()
            );
            code = 1;
        }
        for e in &errors {
            eprintln!("importprobe: {e}");
            code = 1;
        }
        if let Err(e) = self.out.finish() {
            eprintln!("importprobe: writing the simulator's outputs: {e}");
            code = 1;
        }
        let _ = std::io::stdout().flush();
        // SAFETY: _exit ends the child here: the destructors and exit
        // handlers on this stack belong to the parent's program.
        unsafe { libc::_exit(code) }
    }

    fn exec(&self, spec: &ExecSpec, family: &mut Family, errors: &mut Vec<String>) -> Option<u32> {
        let label = format!("exec {:?}", spec.workload);
        let Some(t) = &self.ctx.exec else {
            errors.push(format!("{label} not started: only `importprobe run` starts exec'd children"));
            return None;
        };
        if self.ctx.depth >= MAX_DEPTH {
            errors.push(format!(
                "{label} not started: the process tree is already {MAX_DEPTH} generations deep (does the workload exec itself?)"
            ));
            return None;
        }
        let mut cmd = Command::new(&t.program);
        cmd.arg("run").arg("--workload").arg(&spec.workload).args(&t.args);
        cmd.arg("--parent-pid").arg(std::process::id().to_string());
        cmd.arg("--process-depth").arg((self.ctx.depth + 1).to_string());
        cmd.args(&spec.args).stdin(Stdio::null());
        // The parent's lines so far come before the child's.
        self.out.flush();
        match cmd.spawn() {
            Ok(child) => {
                let pid = child.id();
                family.add(pid, label, Some(child));
                Some(pid)
            }
            Err(e) => {
                errors.push(format!("{label} not started: cannot run {}: {e}", t.program.display()));
                None
            }
        }
    }
}
