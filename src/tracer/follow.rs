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

mod ptrace;
mod waker;

use super::launch::{LaunchError, StoppedChild};
use super::process::{import_probes_in, ProbeInProcess, IMPORT_PROBES};
use super::semaphores::{self, Raised};
use crate::simulator::clock::monotonic_ns;
use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;
use std::process::Child;
use std::sync::mpsc::{self, Receiver, Sender, SyncSender, TryRecvError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use thiserror::Error;
use waker::{Sentinel, Waker};

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

/// ptrace options for every tracee.
const OPTIONS: i32 = libc::PTRACE_O_TRACEFORK
    | libc::PTRACE_O_TRACEVFORK
    | libc::PTRACE_O_TRACECLONE
    | libc::PTRACE_O_TRACEEXEC
    | libc::PTRACE_O_TRACEEXIT;

/// One traced task (thread).
#[derive(Debug)]
struct Task {
    tgid: u32,
    /// While detaching: stopped, with the signal to deliver when let go.
    stopped: Option<i32>,
}

/// One process of the tree.
#[derive(Debug)]
struct Proc {
    /// The semaphores raised by us in its memory (inherited on fork).
    raised: Raised,
}

/// How the started command is held before [`Follower::go`].
#[derive(Debug, Clone, Copy)]
enum Held {
    /// In a group-stop (the SIGSTOP of the hand-over took effect before we
    /// attached): SIGCONT ends it.
    GroupStop,
    /// In the signal-delivery-stop of that SIGSTOP: not delivering it is
    /// enough.
    SignalStop,
}

/// The follower's state; lives on its thread only.
struct Supervisor {
    options: FollowOptions,
    seized: bool,
    me: u32,
    root: u32,
    root_probes: Vec<ProbeInProcess>,
    root_child: Option<Child>,
    held: Option<Held>,
    tasks: HashMap<u32, Task>,
    procs: BTreeMap<u32, Proc>,
    seen: usize,
    root_status: Option<ExitState>,
    killing: bool,
    events: Sender<FollowEvent>,
    control: Receiver<Control>,
    waker: Arc<Waker>,
    sentinel: Option<Sentinel>,
    problems: Vec<String>,
}

impl Supervisor {
    fn new(
        options: FollowOptions,
        seized: bool,
        events: Sender<FollowEvent>,
        control: Receiver<Control>,
        waker: Arc<Waker>,
    ) -> Self {
        Supervisor {
            options,
            seized,
            me: ptrace::gettid(),
            root: 0,
            root_probes: Vec::new(),
            root_child: None,
            held: None,
            tasks: HashMap::new(),
            procs: BTreeMap::new(),
            seen: 0,
            root_status: None,
            killing: false,
            events,
            control,
            waker,
            sentinel: None,
            problems: Vec::new(),
        }
    }

    fn emit(&self, event: FollowEvent) {
        // A caller that dropped its receiver just stops listening.
        let _ = self.events.send(event);
    }

    /// Starts the command stopped, raises its semaphores, and attaches it
    /// with `PTRACE_SEIZE`: [`StoppedChild`] traces it with
    /// `PTRACE_TRACEME`, which cannot `PTRACE_LISTEN`, so it is handed over
    /// (detached with SIGSTOP, which keeps it stopped) and seized.
    fn start_command(&mut self, argv: &[OsString]) -> Result<(), FollowError> {
        let stopped = StoppedChild::spawn(argv)?;
        let pid = stopped.pid();
        self.root_probes = import_probes_in(pid, &IMPORT_PROBES).unwrap_or_default();
        let (raised, semaphores) = self.raise(pid, &self.root_probes.clone());
        self.root_child = Some(stopped.hand_over()?);
        self.root = pid;
        ptrace::seize(pid, OPTIONS | libc::PTRACE_O_EXITKILL)
            .map_err(|e| FollowError::Attach { pid, reason: e.to_string() })?;
        let (_, status) = ptrace::wait_for(pid).map_err(FollowError::Wait)?;
        self.held = Some(match status {
            ptrace::Status::Stopped { signal, event: ptrace::EVENT_STOP } if ptrace::is_stop_signal(signal) => {
                Held::GroupStop
            }
            ptrace::Status::Stopped { .. } => Held::SignalStop,
            ptrace::Status::Exited(code) => {
                self.root_child = None;
                return Err(FollowError::Vanished { pid, status: ExitState::Code(code) });
            }
            ptrace::Status::Signaled { signal, core_dumped } => {
                self.root_child = None;
                return Err(FollowError::Vanished { pid, status: ExitState::Signal { signal, core_dumped } });
            }
        });
        self.tasks.insert(pid, Task { tgid: pid, stopped: None });
        self.add_process(pid, raised);
        self.emit(FollowEvent::Joined {
            pid,
            parent: None,
            exe: exe_of(pid),
            argv: argv_of(pid),
            semaphores,
            ts_ns: monotonic_ns(),
        });
        Ok(())
    }

    /// Seizes `pid`, then each of its existing descendants, each process's
    /// threads before its children (so a child forked meanwhile is either
    /// attached automatically or listed).
    fn start_seized(&mut self, pid: u32) -> Result<(), FollowError> {
        if pid == std::process::id() {
            return Err(FollowError::Myself(pid));
        }
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            return Err(FollowError::NoSuchProcess(pid));
        }
        self.root = pid;
        let mut queue = std::collections::VecDeque::from([(pid, None)]);
        while let Some((p, parent)) = queue.pop_front() {
            if p == std::process::id() {
                continue; // never importprobe itself, nor what it runs
            }
            if let Err(reason) = self.seize_threads(p) {
                if p == pid {
                    return Err(FollowError::Attach { pid, reason });
                }
                self.emit(FollowEvent::Unfollowed { pid: p, reason, ts_ns: monotonic_ns() });
                continue;
            }
            let probes = import_probes_in(p, &IMPORT_PROBES).unwrap_or_default();
            if p == pid {
                self.root_probes = probes.clone();
            }
            let (raised, semaphores) = self.raise(p, &probes);
            self.add_process(p, raised);
            self.emit(FollowEvent::Joined {
                pid: p,
                parent,
                exe: exe_of(p),
                argv: argv_of(p),
                semaphores,
                ts_ns: monotonic_ns(),
            });
            for child in children_of(p) {
                if !self.procs.contains_key(&child) && !queue.iter().any(|(q, _)| *q == child) {
                    queue.push_back((child, Some(p)));
                }
            }
        }
        Ok(())
    }

    /// Seizes every thread of process `pid`, listing them again until no
    /// new one shows up (an unattached thread may create threads meanwhile).
    fn seize_threads(&mut self, pid: u32) -> Result<(), String> {
        loop {
            let tids = threads_of(pid).map_err(|e| e.to_string())?;
            let new: Vec<u32> = tids.into_iter().filter(|t| !self.tasks.contains_key(t)).collect();
            if new.is_empty() {
                return Ok(());
            }
            for tid in new {
                match ptrace::seize(tid, OPTIONS) {
                    Ok(()) => {}
                    Err(e) if e.raw_os_error() == Some(libc::ESRCH) => continue, // ended meanwhile
                    // Attached automatically already, by a clone we have not handled yet.
                    Err(_) if tracer_of(tid) == Some(self.me) => {}
                    Err(e) => {
                        return Err(match tracer_of(tid) {
                            Some(t) if t != 0 => format!("it is traced by pid {t} already"),
                            _ => e.to_string(),
                        })
                    }
                }
                self.tasks.insert(tid, Task { tgid: pid, stopped: None });
            }
        }
    }

    fn add_process(&mut self, pid: u32, raised: Raised) {
        self.procs.insert(pid, Proc { raised });
        self.seen += 1;
    }

    /// Raises the semaphores of these probes in `pid`, if asked to.
    fn raise(&self, pid: u32, probes: &[ProbeInProcess]) -> (Raised, SemaphoreOutcome) {
        if !self.options.raise_semaphores {
            return (Raised::default(), SemaphoreOutcome::NotRequested);
        }
        if probes.is_empty() {
            return (Raised::default(), SemaphoreOutcome::NoProbes);
        }
        match semaphores::raise(pid, probes) {
            Ok(raised) => {
                let objects = raised.objects().into_iter().map(PathBuf::from).collect();
                (raised, SemaphoreOutcome::Raised(objects))
            }
            Err(e) => (Raised::default(), SemaphoreOutcome::Failed(e.to_string())),
        }
    }

    /// Lets go of everything after a failed start.
    fn abandon(&mut self) {
        for &pid in self.procs.keys() {
            let _ = ptrace::kill(pid, libc::SIGKILL);
        }
        if let Some(mut child) = self.root_child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Holds the started command until the caller says go, then follows
    /// until the tree has exited or the caller asks to stop.
    fn run(mut self) -> Result<FollowEnd, FollowError> {
        if let Some(held) = self.held.take() {
            match self.control.recv() {
                Ok(Control::Go(ack)) => {
                    let _ = ack.send(self.release(held));
                }
                Ok(Control::Detach) => {
                    let _ = self.release(held);
                    return self.detach_all();
                }
                Ok(Control::Kill) | Err(_) => self.kill_all(),
            }
        }
        while !self.procs.is_empty() {
            if self.sentinel.is_none() {
                self.sentinel = Some(waker::arm(&self.waker).map_err(FollowError::Start)?);
            }
            match self.control.try_recv() {
                Ok(Control::Go(ack)) => {
                    let _ = ack.send(Err(FollowError::NotHeld));
                }
                Ok(Control::Detach) => return self.detach_all(),
                Err(TryRecvError::Disconnected) if self.seized => return self.detach_all(),
                Ok(Control::Kill) | Err(TryRecvError::Disconnected) if !self.killing => self.kill_all(),
                Ok(Control::Kill) | Err(TryRecvError::Disconnected | TryRecvError::Empty) => {}
            }
            let (pid, status) = match ptrace::wait_any() {
                Ok(report) => report,
                Err(e) if e.raw_os_error() == Some(libc::ECHILD) => {
                    // Nothing left to wait for: they ended behind our back.
                    for pid in std::mem::take(&mut self.procs).into_keys() {
                        self.emit(FollowEvent::Exited { pid, status: ExitState::Unknown, ts_ns: monotonic_ns() });
                    }
                    break;
                }
                Err(e) => return Err(FollowError::Wait(e)),
            };
            if self.sentinel.as_ref().is_some_and(|s| s.pid == pid) {
                self.sentinel = None;
                continue;
            }
            self.on_report(pid, status);
        }
        self.emit(FollowEvent::AllExited { ts_ns: monotonic_ns() });
        Ok(self.end())
    }

    /// Lets the held command run.
    fn release(&mut self, held: Held) -> Result<(), FollowError> {
        let pid = self.root;
        if let Held::GroupStop = held {
            // Ends the job-control stop; its re-trap and the SIGCONT's
            // delivery are ordinary stops of the loop.
            ptrace::kill(pid, libc::SIGCONT).map_err(|e| FollowError::Attach { pid, reason: e.to_string() })?;
        }
        ptrace::cont(pid, 0).map_err(|e| FollowError::Attach { pid, reason: e.to_string() })
    }

    fn end(mut self) -> FollowEnd {
        FollowEnd {
            root_status: self.root_status,
            processes: self.seen,
            root_child: self.root_child.take(),
            problems: std::mem::take(&mut self.problems),
        }
    }

    /// Ends the sentinel and reaps it.
    fn disarm(&mut self) {
        self.waker.wake();
        if let Some(sentinel) = self.sentinel.take() {
            let _ = ptrace::wait_for(sentinel.pid);
        }
    }

    fn on_report(&mut self, pid: u32, status: ptrace::Status) {
        let (signal, event) = match status {
            ptrace::Status::Exited(code) => return self.gone(pid, ExitState::Code(code)),
            ptrace::Status::Signaled { signal, core_dumped } => {
                return self.gone(pid, ExitState::Signal { signal, core_dumped })
            }
            ptrace::Status::Stopped { signal, event } => (signal, event),
        };
        if !self.tasks.contains_key(&pid) {
            self.adopt(pid);
        }
        let deliver = match event {
            libc::PTRACE_EVENT_FORK | libc::PTRACE_EVENT_VFORK | libc::PTRACE_EVENT_CLONE => {
                self.new_child(pid, event);
                0
            }
            libc::PTRACE_EVENT_EXEC => {
                if !self.exec(pid) {
                    return;
                }
                0
            }
            ptrace::EVENT_STOP if ptrace::is_stop_signal(signal) => {
                // A group-stop: stay stopped, but hear about its end.
                if let Err(e) = ptrace::listen(pid) {
                    self.note_resume_failure(pid, "PTRACE_LISTEN", e);
                }
                return;
            }
            0 => signal, // a signal-delivery-stop: deliver the signal
            _ => 0,      // exit event, a new task's first stop, the end of a group-stop
        };
        if let Err(e) = ptrace::cont(pid, deliver) {
            self.note_resume_failure(pid, "PTRACE_CONT", e);
        }
    }

    /// ESRCH means the task died meanwhile (its report follows); anything
    /// else would leave it stopped, which is worth saying.
    fn note_resume_failure(&mut self, pid: u32, request: &str, e: std::io::Error) {
        if e.raw_os_error() != Some(libc::ESRCH) {
            tracing::warn!(pid, "{request} failed: {e}");
            self.problems.push(format!("pid {pid}: {request} failed: {e}"));
        }
    }

    /// A stop from a task we do not know: a new task whose first stop came
    /// before its creator's fork/clone event.
    fn adopt(&mut self, tid: u32) {
        let (tgid, ppid) = ids_of(tid).unwrap_or((tid, 0));
        if tgid != tid {
            self.tasks.insert(tid, Task { tgid, stopped: None });
            return;
        }
        let raised = self.procs.get(&ppid).map(|p| p.raised.clone()).unwrap_or_default();
        self.new_process(tid, ppid, raised);
    }

    /// A fork, vfork or clone event of `parent_tid`.
    fn new_child(&mut self, parent_tid: u32, event: i32) {
        let Ok(child) = ptrace::event_message(parent_tid) else { return };
        let child = child as u32;
        let parent = self.tasks.get(&parent_tid).map_or(parent_tid, |t| t.tgid);
        if self.tasks.contains_key(&child) {
            // Adopted at its first stop already. A vfork child shares its
            // parent's memory: the raised counters are the parent's.
            if event == libc::PTRACE_EVENT_VFORK {
                if let Some(p) = self.procs.get_mut(&child) {
                    p.raised = Raised::default();
                }
            }
            return;
        }
        let thread = event == libc::PTRACE_EVENT_CLONE && ids_of(child).is_none_or(|(tgid, _)| tgid != child);
        if thread {
            self.tasks.insert(child, Task { tgid: parent, stopped: None });
            return;
        }
        let raised = match event {
            libc::PTRACE_EVENT_VFORK => Raised::default(),
            _ => self.procs.get(&parent).map(|p| p.raised.clone()).unwrap_or_default(),
        };
        self.new_process(child, parent, raised);
    }

    fn new_process(&mut self, pid: u32, parent: u32, raised: Raised) {
        self.tasks.insert(pid, Task { tgid: pid, stopped: None });
        self.add_process(pid, raised);
        self.emit(FollowEvent::Forked { pid, parent, ts_ns: monotonic_ns() });
        if self.killing {
            let _ = ptrace::kill(pid, libc::SIGKILL);
        }
    }

    /// An exec event: the process has a new image, held stopped. Returns
    /// false if the process turned out to be gone.
    fn exec(&mut self, pid: u32) -> bool {
        // An exec by a thread other than the leader takes over the leader's
        // id; the thread's former id disappears without a report.
        if let Ok(former) = ptrace::event_message(pid) {
            if former as u32 != pid {
                self.tasks.remove(&(former as u32));
            }
        }
        let (raised, semaphores, alive) = if self.options.raise_semaphores {
            self.raise_in_new_image(pid)
        } else {
            (Raised::default(), SemaphoreOutcome::NotRequested, true)
        };
        if let Some(p) = self.procs.get_mut(&pid) {
            p.raised = raised;
        }
        self.emit(FollowEvent::Exec { pid, exe: exe_of(pid), argv: argv_of(pid), semaphores, ts_ns: monotonic_ns() });
        if !alive {
            self.gone(pid, ExitState::Unknown);
        }
        alive
    }

    /// Finds the import probes in a freshly exec'd image and raises their
    /// semaphores. Only the executable and the dynamic loader are mapped at
    /// the exec stop; when the executable has no probes, the loader is run
    /// to the program's entry point first (a libpython, or none at all).
    /// The third value is false if the process ended on the way.
    fn raise_in_new_image(&mut self, pid: u32) -> (Raised, SemaphoreOutcome, bool) {
        let mut probes = match import_probes_in(pid, &IMPORT_PROBES) {
            Ok(p) => p,
            Err(e) => {
                return (Raised::default(), SemaphoreOutcome::Failed(format!("cannot read its mappings: {e}")), true)
            }
        };
        #[cfg(target_arch = "x86_64")]
        if probes.is_empty() {
            if let Err(e) = super::launch::run_to_entry(pid) {
                let failed = SemaphoreOutcome::Failed(format!("cannot run it to its entry point: {e}"));
                // run_to_entry waits for the process itself: it may have
                // collected its end.
                return (Raised::default(), failed, tracer_of(pid) == Some(self.me));
            }
            probes = import_probes_in(pid, &IMPORT_PROBES).unwrap_or_default();
        }
        let (raised, outcome) = self.raise(pid, &probes);
        (raised, outcome, true)
    }

    /// A task ended. The end of a process's leader, reported only after
    /// all its other threads', is the end of the process.
    fn gone(&mut self, tid: u32, status: ExitState) {
        let Some(task) = self.tasks.remove(&tid) else { return };
        if task.tgid != tid {
            return;
        }
        self.tasks.retain(|_, t| t.tgid != tid);
        if self.procs.remove(&tid).is_some() {
            if tid == self.root {
                self.root_status = Some(status);
                // Reaped by our wait already (we are its tracer and parent).
                self.root_child = None;
            }
            self.emit(FollowEvent::Exited { pid: tid, status, ts_ns: monotonic_ns() });
        }
    }

    fn kill_all(&mut self) {
        self.killing = true;
        for &pid in self.procs.keys() {
            let _ = ptrace::kill(pid, libc::SIGKILL);
        }
    }

    /// Lets every process go: stops all tasks (`PTRACE_INTERRUPT`), and as
    /// soon as every thread of a process is stopped, lowers the semaphores
    /// we raised in it and detaches its threads, each with the signal it
    /// was about to receive. Processes are let go one by one because some
    /// can only stop after others run (a vfork parent waits for its child).
    fn detach_all(mut self) -> Result<FollowEnd, FollowError> {
        let tids: Vec<u32> = self.tasks.keys().copied().collect();
        for tid in tids {
            if let Err(e) = ptrace::interrupt(tid) {
                self.note_resume_failure(tid, "PTRACE_INTERRUPT", e);
            }
        }
        let deadline = Instant::now() + DETACH_GRACE;
        loop {
            self.let_go_of_stopped();
            if self.tasks.is_empty() {
                break;
            }
            match ptrace::try_wait_any() {
                Ok(Some((pid, status))) => {
                    if self.sentinel.as_ref().is_some_and(|s| s.pid == pid) {
                        self.sentinel = None;
                    } else {
                        self.on_report_while_detaching(pid, status);
                    }
                }
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(1)),
                Ok(None) | Err(_) => {
                    for (tid, task) in &self.tasks {
                        self.problems.push(format!(
                            "pid {} (thread {tid}) did not stop within {} s; left to the kernel to detach",
                            task.tgid,
                            DETACH_GRACE.as_secs()
                        ));
                    }
                    break;
                }
            }
        }
        Ok(self.end())
    }

    fn on_report_while_detaching(&mut self, pid: u32, status: ptrace::Status) {
        let (signal, event) = match status {
            ptrace::Status::Exited(code) => return self.gone(pid, ExitState::Code(code)),
            ptrace::Status::Signaled { signal, core_dumped } => {
                return self.gone(pid, ExitState::Signal { signal, core_dumped })
            }
            ptrace::Status::Stopped { signal, event } => (signal, event),
        };
        if !self.tasks.contains_key(&pid) {
            self.adopt(pid); // a child forked just now: its first stop
        }
        let pending = match event {
            libc::PTRACE_EVENT_FORK | libc::PTRACE_EVENT_VFORK | libc::PTRACE_EVENT_CLONE => {
                self.new_child(pid, event); // it stops on its own, then goes too
                0
            }
            libc::PTRACE_EVENT_EXEC => {
                // A new image we raised nothing in.
                if let Some(p) = self.procs.get_mut(&pid) {
                    p.raised = Raised::default();
                }
                0
            }
            0 => signal,
            _ => 0, // interrupt, group-stop (stays stopped once detached), exit
        };
        if let Some(task) = self.tasks.get_mut(&pid) {
            task.stopped = Some(pending);
        }
    }

    /// Detaches every process all of whose threads are stopped.
    /// (Tasks are grouped by their thread group, which covers a thread
    /// adopted before its process was known.)
    fn let_go_of_stopped(&mut self) {
        let mut groups: std::collections::BTreeSet<u32> = self.tasks.values().map(|t| t.tgid).collect();
        groups.extend(self.procs.keys());
        let mut ready: Vec<u32> = groups.into_iter().collect();
        ready.retain(|pid| self.tasks.values().filter(|t| t.tgid == *pid).all(|t| t.stopped.is_some()));
        for pid in ready {
            if let Some(proc_) = self.procs.remove(&pid) {
                if let Err(e) = semaphores::lower(pid, &proc_.raised) {
                    self.problems.push(e.to_string());
                }
            }
            let threads: Vec<(u32, i32)> = self
                .tasks
                .iter()
                .filter(|(_, t)| t.tgid == pid)
                .map(|(&tid, t)| (tid, t.stopped.unwrap_or(0)))
                .collect();
            for (tid, signal) in threads {
                self.tasks.remove(&tid);
                if let Err(e) = ptrace::detach(tid, signal) {
                    if e.raw_os_error() != Some(libc::ESRCH) {
                        self.problems.push(format!("pid {pid} (thread {tid}): PTRACE_DETACH failed: {e}"));
                    }
                }
            }
        }
    }
}

impl Drop for Supervisor {
    /// The sentinel goes with the follower, whatever ended it.
    fn drop(&mut self) {
        self.disarm();
    }
}

/// `Tgid` and `PPid` from `/proc/TID/status`.
fn ids_of(tid: u32) -> Option<(u32, u32)> {
    let status = std::fs::read_to_string(format!("/proc/{tid}/status")).ok()?;
    Some((status_field(&status, "Tgid")?, status_field(&status, "PPid")?))
}

/// `TracerPid` from `/proc/TID/status` (0: not traced).
fn tracer_of(tid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{tid}/status")).ok()?;
    status_field(&status, "TracerPid")
}

fn status_field(status: &str, name: &str) -> Option<u32> {
    status.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(':')?.trim().parse().ok())
}

/// The thread ids of process `pid`.
fn threads_of(pid: u32) -> std::io::Result<Vec<u32>> {
    let mut tids: Vec<u32> = std::fs::read_dir(format!("/proc/{pid}/task"))?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    tids.sort_unstable();
    Ok(tids)
}

/// The children of every thread of process `pid`
/// (`/proc/PID/task/TID/children`).
fn children_of(pid: u32) -> Vec<u32> {
    let mut children = Vec::new();
    for tid in threads_of(pid).unwrap_or_default() {
        if let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/children")) {
            children.extend(text.split_whitespace().filter_map(|c| c.parse::<u32>().ok()));
        }
    }
    children
}

/// The executable of a process (empty if it cannot be read).
fn exe_of(pid: u32) -> PathBuf {
    std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default()
}

/// The argument vector of a process (empty if it cannot be read).
fn argv_of(pid: u32) -> Vec<OsString> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    match raw.strip_suffix(b"\0") {
        Some(args) => args.split(|&b| b == 0).map(|a| OsString::from_vec(a.to_vec())).collect(),
        None if raw.is_empty() => Vec::new(),
        None => vec![OsString::from_vec(raw)], // rewritten by the program itself
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_status_fields() {
        let status = "Name:\tpython3.11\nTgid:\t4242\nPPid:\t1\nTracerPid:\t0\n";
        assert_eq!(status_field(status, "Tgid"), Some(4242));
        assert_eq!(status_field(status, "TracerPid"), Some(0));
        assert_eq!(status_field(status, "Pid"), None);
        assert_eq!(ids_of(std::process::id()).map(|(tgid, _)| tgid), Some(std::process::id()));
    }

    #[test]
    fn exit_states_read_well() {
        assert_eq!(ExitState::Code(3).to_string(), "exit status 3");
        assert_eq!(ExitState::Signal { signal: 9, core_dumped: false }.to_string(), "killed by signal 9");
    }
}
