//! The follower's thread: the tasks and processes of the tree, and what to
//! do at each ptrace stop. Everything here runs on that one thread, the
//! tracer of every task it knows.

use super::procfs::{argv_of, children_of, exe_of, exists, ids_of, threads_of, tracer_of};
use super::ptrace;
use super::waker::{self, Sentinel, Waker};
use super::{Control, ExitState, FollowEnd, FollowError, FollowEvent, FollowOptions, SemaphoreOutcome, DETACH_GRACE};
use crate::simulator::clock::monotonic_ns;
use crate::tracer::launch::StoppedChild;
use crate::tracer::process::{import_probes_in, ProbeInProcess, IMPORT_PROBES};
use crate::tracer::semaphores::{self, Raised};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Child;
use std::sync::mpsc::{Receiver, Sender, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// While letting go, how often to look for tasks that ended unseen.
const VANISHED_CHECK: Duration = Duration::from_millis(100);

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
pub(super) struct Proc {
    /// The semaphores raised by us in its memory (inherited on fork).
    raised: Raised,
}

/// How the started command is held before [`super::Follower::go`].
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
pub(super) struct Supervisor {
    options: FollowOptions,
    seized: bool,
    me: u32,
    pub(super) root: u32,
    pub(super) root_probes: Vec<ProbeInProcess>,
    root_child: Option<Child>,
    held: Option<Held>,
    tasks: HashMap<u32, Task>,
    pub(super) procs: BTreeMap<u32, Proc>,
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
    pub(super) fn new(
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
    pub(super) fn start_command(&mut self, argv: &[OsString]) -> Result<(), FollowError> {
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
    pub(super) fn start_seized(&mut self, pid: u32) -> Result<(), FollowError> {
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
    pub(super) fn abandon(&mut self) {
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
    pub(super) fn run(mut self) -> Result<FollowEnd, FollowError> {
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
            if let Err(e) = crate::tracer::launch::run_to_entry(pid) {
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
        let mut last_check = Instant::now();
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
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(1));
                    if last_check.elapsed() >= VANISHED_CHECK {
                        self.forget_vanished();
                        last_check = Instant::now();
                    }
                }
                Ok(None) | Err(_) => {
                    self.forget_vanished();
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

    /// Forgets the tasks that no longer exist: a child announced by its
    /// parent's fork event can end and be reaped without its exit ever
    /// reaching us while we let go (seen about once in 25 detaches of a
    /// tree that forks all the time); nothing is left to detach from it.
    fn forget_vanished(&mut self) {
        let vanished: Vec<u32> = self.tasks.keys().copied().filter(|&tid| !exists(tid)).collect();
        for tid in vanished {
            tracing::debug!(tid, "gone without an exit report while detaching");
            self.gone(tid, ExitState::Unknown);
        }
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
        let mut groups: BTreeSet<u32> = self.tasks.values().map(|t| t.tgid).collect();
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
