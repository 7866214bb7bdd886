//! Following a whole process tree with ptrace: every process that descends
//! from a traced command or pid, through forks, fork-based pools, fork+exec
//! and children of children, with the import probes' semaphores raised in
//! every image exec'd in the tree before it runs.
//!
//! bpftrace's `-p PID` traces one process only; tracing a tree means
//! attaching system-wide and filtering on the tree's pids in BPF
//! ([`super::follow_script`]). Two things the kernel and bpftrace do not do
//! by themselves are done here:
//!
//! - **Knowing the tree.** The follower is the tree's ptracer: with
//!   `PTRACE_O_TRACEFORK|TRACEVFORK|TRACECLONE` every new task is attached
//!   before it runs, so no process escapes, however deep, even when its
//!   parent exits and it is reparented. The caller gets [`FollowEvent`]s:
//!   a process joined, forked, exec'd (with its new exe and argv), exited,
//!   and finally that the whole tree has exited.
//! - **Semaphores in exec'd images.** A forked child inherits its parent's
//!   memory, raised semaphores included; an exec'd image starts with them at
//!   0, and only a tracer whose uprobes the kernel counts semaphores for
//!   raises them in processes that start after it (see [`super::semaphores`]).
//!   With [`FollowOptions::raise_semaphores`], every exec stops the new
//!   image (`PTRACE_O_TRACEEXEC`), and if its executable does not carry the
//!   probes (a libpython, or a program that execs Python later), runs it to
//!   its entry point so the dynamic loader has mapped its libraries
//!   ([`super::launch`]); then raises the semaphores ([`super::semaphores`])
//!   before the program's first instruction, so its very first import is
//!   seen.
//!
//! Signals and job control are left as they would be untraced: a
//! signal-delivery-stop delivers the signal, a group-stop (Ctrl-Z) is held
//! with `PTRACE_LISTEN` (all tracees are `PTRACE_SEIZE`d, even a started
//! command, which [`super::launch`] hands over), and detaching passes on
//! any signal still pending.
//!
//! All ptrace requests for a tracee must come from the thread that attached
//! it, so the follower runs in a thread of its own, and it waits with
//! `__WNOTHREAD` so it never reaps another thread's child (the bpftrace the
//! caller runs, for one). Requests from the caller reach it through a
//! channel, and a *sentinel* child of that thread, which exits when woken,
//! ends its `waitpid`.
//!
//! # Use
//!
//! ```no_run
//! use importprobe::tracer::follow::{FollowEvent, FollowOptions, Follower};
//! use importprobe::tracer::follow_script::{is_ready_line, restrict_to_tree, Dialect};
//! use std::io::BufRead;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let python = std::path::PathBuf::from("/usr/bin/python3.11");
//! let (events, tree) = std::sync::mpsc::channel();
//! // 1. The command, stopped before its first instruction.
//! let follower = Follower::spawn(&[python.clone().into(), "app.py".into()], FollowOptions::default(), events)?;
//! // 2. One system-wide bpftrace that only acts for the tree.
//! let dialect = Dialect::for_version("v0.17.0")?;
//! let source = std::fs::read_to_string("scripts/import-events.bt")?;
//! let script = restrict_to_tree(&source, follower.pids(), &[python], dialect)?;
//! std::fs::write("/tmp/tree.bt", script)?;
//! let mut bpftrace = std::process::Command::new("bpftrace")
//!     .arg("/tmp/tree.bt")
//!     .stdout(std::process::Stdio::piped())
//!     .spawn()?;
//! let mut out = std::io::BufReader::new(bpftrace.stdout.take().unwrap());
//! // 3. Go once the filter is complete (its ready line is printed).
//! let mut line = Vec::new();
//! while out.read_until(b'\n', &mut line)? > 0 && !is_ready_line(&line) {
//!     line.clear();
//! }
//! follower.go()?;
//! // ... read `out` meanwhile; `tree` says which process is which ...
//! let end = follower.wait()?;
//! for event in tree.try_iter() {
//!     if let FollowEvent::Exec { pid, argv, .. } = event {
//!         println!("{pid}: {argv:?}");
//!     }
//! }
//! println!("command: {:?}", end.root_status);
//! # Ok(())
//! # }
//! ```

mod procfs;
mod ptrace;
mod supervisor;
mod waker;

use super::launch::LaunchError;
use super::process::ProbeInProcess;
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Child;
use std::sync::mpsc::{self, Sender, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use supervisor::Supervisor;
use thiserror::Error;
use waker::Waker;

/// How long [`Follower::detach`] waits, in all, for the tasks to stop so
/// that they can be detached cleanly (one in uninterruptible sleep may take
/// a while); those that do not are listed in [`FollowEnd::problems`] and
/// left to the kernel, which detaches them when the follower's thread ends.
pub const DETACH_GRACE: Duration = Duration::from_secs(5);

/// What to do besides following.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowOptions {
    /// Raise the import probes' semaphores in the processes found when
    /// attaching and in every image exec'd in the tree (and lower them
    /// again on [`Follower::detach`]). Needed where the tracer does not
    /// raise them in processes that start after it (bpftrace before 0.24 on
    /// a kernel without semaphore counting, see
    /// [`super::follow_script::Dialect::requires_kernel_semaphores`]);
    /// harmless where it does, since semaphores are counters. On by default.
    pub raise_semaphores: bool,
}

impl Default for FollowOptions {
    fn default() -> Self {
        FollowOptions { raise_semaphores: true }
    }
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitState {
    Code(i32),
    Signal {
        signal: i32,
        core_dumped: bool,
    },
    /// Its status was collected elsewhere: it ended while its dynamic
    /// loader was being run to the entry point, or nothing was left to wait
    /// for.
    Unknown,
}

impl std::fmt::Display for ExitState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitState::Code(code) => write!(f, "exit status {code}"),
            ExitState::Signal { signal, core_dumped } => {
                write!(f, "killed by signal {signal}{}", if *core_dumped { " (core dumped)" } else { "" })
            }
            ExitState::Unknown => write!(f, "ended (status unknown)"),
        }
    }
}

/// What happened to the import probes' semaphores in a process image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SemaphoreOutcome {
    /// [`FollowOptions::raise_semaphores`] is off.
    NotRequested,
    /// Raised in these objects (each carries the import probes).
    Raised(Vec<PathBuf>),
    /// No object the image maps at its entry point carries the import
    /// probes: not a Python, or one that loads libpython later with
    /// `dlopen` (its imports are then only seen where the tracer raises the
    /// semaphores itself).
    NoProbes,
    /// They could not be raised: its imports will be missed unless the
    /// tracer raises them.
    Failed(String),
}

/// Something that happened in the followed tree, in the order the follower
/// saw it. A process's `Forked` or `Joined` always comes before anything
/// it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FollowEvent {
    /// A process that was there when following started: the started
    /// command (stopped before its first instruction), or, with
    /// [`Follower::seize`], the pid and each of its existing descendants.
    Joined {
        pid: u32,
        /// `None` for the root.
        parent: Option<u32>,
        exe: PathBuf,
        argv: Vec<OsString>,
        semaphores: SemaphoreOutcome,
        ts_ns: u64,
    },
    /// A process of the tree created a new process (a fork, vfork, or clone
    /// without `CLONE_THREAD`; threads are followed but not reported). It
    /// runs its parent's image, with its parent's semaphores.
    Forked { pid: u32, parent: u32, ts_ns: u64 },
    /// A process of the tree exec'd a new image; held stopped until its
    /// semaphores were raised.
    Exec { pid: u32, exe: PathBuf, argv: Vec<OsString>, semaphores: SemaphoreOutcome, ts_ns: u64 },
    /// A process of the tree ended.
    Exited { pid: u32, status: ExitState, ts_ns: u64 },
    /// A process of the tree that is not followed (another tracer has it,
    /// or it may not be traced): its imports and its children are missed.
    Unfollowed { pid: u32, reason: String, ts_ns: u64 },
    /// Every process of the tree has ended; nothing follows this event.
    AllExited { ts_ns: u64 },
}

/// How following ended.
#[derive(Debug, Default)]
pub struct FollowEnd {
    /// How the first process ended, if it ended while followed.
    pub root_status: Option<ExitState>,
    /// Processes seen in the tree, the first one included.
    pub processes: usize,
    /// A started command that [`Follower::detach`] left running: still
    /// importprobe's child, to be waited for.
    pub root_child: Option<Child>,
    /// What went wrong while letting processes go (semaphores not lowered,
    /// tasks that could not be detached), one line each.
    pub problems: Vec<String>,
}

/// Why following could not start or went wrong.
#[derive(Debug, Error)]
pub enum FollowError {
    #[error(transparent)]
    Launch(#[from] LaunchError),
    #[error("no process with pid {0}")]
    NoSuchProcess(u32),
    #[error("pid {0} is importprobe itself")]
    Myself(u32),
    #[error("cannot follow pid {pid}: {reason}")]
    Attach { pid: u32, reason: String },
    #[error("pid {pid} ended before it could be followed ({status})")]
    Vanished { pid: u32, status: ExitState },
    #[error("waiting for the followed processes failed: {0}")]
    Wait(std::io::Error),
    #[error("cannot start the follower: {0}")]
    Start(std::io::Error),
    #[error("the follower thread ended unexpectedly")]
    Gone,
    #[error("the command is not held (already released, or attached with --pid)")]
    NotHeld,
    #[error("the command is still held: release it with go() first")]
    StillHeld,
}

/// Requests from the caller to the follower's thread.
enum Control {
    Go(SyncSender<Result<(), FollowError>>),
    Detach,
    Kill,
}

/// What the follower's thread reports once following has started.
struct Ready {
    root: u32,
    pids: Vec<u32>,
    root_probes: Vec<ProbeInProcess>,
}

/// A followed process tree; the follower itself runs in its own thread.
///
/// Dropping it kills a started command's tree (as if [`Follower::kill`])
/// and leaves a seized one running (as if [`Follower::detach`]).
pub struct Follower {
    root: u32,
    pids: Vec<u32>,
    root_probes: Vec<ProbeInProcess>,
    held: std::sync::atomic::AtomicBool,
    seized: bool,
    control: Sender<Control>,
    waker: Arc<Waker>,
    thread: Option<JoinHandle<Result<FollowEnd, FollowError>>>,
}

impl Follower {
    /// Starts `argv` (no shell, `argv[0]` searched in PATH), stopped at its
    /// entry point with its libraries mapped and its semaphores raised, and
    /// holds it there until [`Follower::go`]: start the tracer first. When
    /// the follower's thread ends early, the whole tree is killed
    /// (`PTRACE_O_EXITKILL`).
    pub fn spawn(argv: &[OsString], options: FollowOptions, events: Sender<FollowEvent>) -> Result<Self, FollowError> {
        let argv = argv.to_vec();
        Self::start(false, options, events, move |sup| sup.start_command(&argv))
    }

    /// Follows the running process `pid` and every existing descendant,
    /// from now on (semaphores raised in each when asked); they keep
    /// running. [`Follower::pids`] is the tree at this moment: a process
    /// forked after it, but before a tracer seeded with it has its fork
    /// probe in place, is followed (its events come) but the tracer's tree
    /// filter never sees it. Its [`FollowEvent::Forked`] `ts_ns` tells:
    /// compare it with the moment the tracer became ready.
    pub fn seize(pid: u32, options: FollowOptions, events: Sender<FollowEvent>) -> Result<Self, FollowError> {
        Self::start(true, options, events, move |sup| sup.start_seized(pid))
    }

    fn start(
        seized: bool,
        options: FollowOptions,
        events: Sender<FollowEvent>,
        first: impl FnOnce(&mut Supervisor) -> Result<(), FollowError> + Send + 'static,
    ) -> Result<Self, FollowError> {
        let (control, control_rx) = mpsc::channel();
        let (ready_tx, ready_rx) = mpsc::sync_channel(1);
        let waker = Arc::new(Waker::default());
        let thread_waker = Arc::clone(&waker);
        let thread = std::thread::Builder::new()
            .name("importprobe-follow".into())
            .spawn(move || {
                let mut sup = Supervisor::new(options, seized, events, control_rx, thread_waker);
                match first(&mut sup) {
                    Ok(()) => {
                        let ready = Ready {
                            root: sup.root,
                            pids: sup.procs.keys().copied().collect(),
                            root_probes: sup.root_probes.clone(),
                        };
                        let _ = ready_tx.send(Ok(ready));
                        sup.run()
                    }
                    Err(e) => {
                        sup.abandon();
                        let _ = ready_tx.send(Err(e));
                        Ok(FollowEnd::default())
                    }
                }
            })
            .map_err(FollowError::Start)?;
        match ready_rx.recv() {
            Ok(Ok(ready)) => Ok(Follower {
                root: ready.root,
                pids: ready.pids,
                root_probes: ready.root_probes,
                held: (!seized).into(),
                seized,
                control,
                waker,
                thread: Some(thread),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => {
                let _ = thread.join();
                Err(FollowError::Gone)
            }
        }
    }

    /// The first process: the started command, or the seized pid.
    pub fn root(&self) -> u32 {
        self.root
    }

    /// The processes of the tree when following started, in ascending
    /// order: the pids to seed a tree filter with
    /// ([`super::follow_script::restrict_to_tree`]).
    pub fn pids(&self) -> &[u32] {
        &self.pids
    }

    /// The import probes mapped in the first process when following
    /// started (empty if it is not a Python): with the semaphores raised
    /// here, [`super::process::attached`] on them tells when the tracer's
    /// uprobes are in place.
    pub fn root_probes(&self) -> &[ProbeInProcess] {
        &self.root_probes
    }

    /// Lets the held command run. Returns once it runs.
    pub fn go(&self) -> Result<(), FollowError> {
        if !self.held.swap(false, std::sync::atomic::Ordering::SeqCst) {
            return Err(FollowError::NotHeld);
        }
        let (ack, ack_rx) = mpsc::sync_channel(1);
        self.control.send(Control::Go(ack)).map_err(|_| FollowError::Gone)?;
        ack_rx.recv().map_err(|_| FollowError::Gone)?
    }

    /// Waits until every process of the tree has ended ([`FollowError::StillHeld`]
    /// if the command was never released).
    pub fn wait(mut self) -> Result<FollowEnd, FollowError> {
        if self.held.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(FollowError::StillHeld);
        }
        self.join()
    }

    /// Stops following and lets every process run on untraced, with the
    /// semaphores raised here lowered again and pending signals delivered;
    /// a held command is released first.
    pub fn detach(mut self) -> Result<FollowEnd, FollowError> {
        self.finish(Control::Detach)
    }

    /// Kills every process of the tree (SIGKILL) and waits for them.
    pub fn kill(mut self) -> Result<FollowEnd, FollowError> {
        self.finish(Control::Kill)
    }

    fn finish(&mut self, request: Control) -> Result<FollowEnd, FollowError> {
        if self.thread.is_some() {
            // A follower that already ended has nobody reading: ignore.
            let _ = self.control.send(request);
            self.waker.wake();
        }
        self.join()
    }

    fn join(&mut self) -> Result<FollowEnd, FollowError> {
        match self.thread.take() {
            Some(thread) => thread.join().map_err(|_| FollowError::Gone)?,
            None => Err(FollowError::Gone),
        }
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        if self.thread.is_some() {
            let _ = self.finish(if self.seized { Control::Detach } else { Control::Kill });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_states_read_well() {
        assert_eq!(ExitState::Code(3).to_string(), "exit status 3");
        assert_eq!(ExitState::Signal { signal: 9, core_dumped: false }.to_string(), "killed by signal 9");
    }
}
