//! A whole process tree (`--follow-children`): the target and everything
//! that descends from it, followed with ptrace ([`crate::tracer::follow`]),
//! traced by one system-wide bpftrace whose script acts only for the tree
//! ([`crate::tracer::follow_script`]). A started command is held stopped
//! until the script prints its ready line (BEGIN runs once every probe is
//! attached), so its first import is seen; a forked child inherits raised
//! semaphores, and an exec'd one is held at its exec until the follower has
//! raised them in its new image.

use super::{
    copy_output, kill_group, read_stderr, LastOutput, Notice, Stopper, Target, TraceError, TraceOutcome, TraceRequest,
    SETTLE,
};
use crate::events::ProcessInfo;
use crate::tracer::follow::{ExitState, FollowEnd, FollowEvent, FollowOptions, Follower, SemaphoreOutcome};
use crate::tracer::follow_script::{attaches_to, restrict_to_tree, Dialect};
use crate::tracer::interrupt::ForwardSignals;
use crate::tracer::script_file::ScriptFile;
use std::collections::HashMap;
use std::ffi::OsString;
use std::io::Write;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Runs the tree under one system-wide bpftrace until the whole tree has
/// ended (or Ctrl-C, or the deadline).
pub(super) fn trace(req: TraceRequest, out: &mut (dyn Write + Send)) -> Result<TraceOutcome, TraceError> {
    let started_at = Instant::now();
    let deadline = req.deadline.map(|d| started_at + d);
    let (events_tx, events_rx) = mpsc::channel();
    let options = FollowOptions::default();
    let follower = match &req.target {
        Target::Command(argv) => Follower::spawn(argv, options, events_tx)?,
        Target::Pid(pid) => Follower::seize(*pid, options, events_tx)?,
    };
    let started = matches!(req.target, Target::Command(_));
    let root = follower.root();
    let version = req.bpftrace.version;
    let source = restrict_to_tree(&req.source, follower.pids(), &req.objects, Dialect::of(version.0, version.1))?;
    let file = ScriptFile::write(&req.script_name, &source)?;
    let mut cmd = req.bpftrace.command(req.strlen, req.max_map_keys);
    cmd.arg(file.path()).args(&req.args);
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
    tracing::debug!(?cmd, root, "starting bpftrace for the process tree");
    let mut tracer = cmd
        .spawn()
        .map_err(|source| TraceError::SpawnTracer { bpftrace: req.bpftrace.path.display().to_string(), source })?;
    let bpftrace_pid = tracer.id();
    let signals = req.forward_signals.then(|| ForwardSignals::to(bpftrace_pid));
    let stdout = tracer.stdout.take().expect("piped");
    let stderr = tracer.stderr.take().expect("piped");
    let (notice_tx, notice_rx) = mpsc::channel();
    let notice_tx_err = notice_tx.clone();
    let echo = req.echo_stderr;
    let last_output = LastOutput::new();
    let last = &last_output;
    let failed = |status, stderr| TraceError::TracerFailed {
        script: req.script_name.clone(),
        version: version.to_string(),
        status,
        stderr,
    };
    let mut tree = Tree::new(&req.objects);
    std::thread::scope(|s| {
        let copier = s.spawn(move || copy_output(stdout, out, notice_tx, || last.touch()));
        let errs = s.spawn(move || read_stderr(stderr, echo, notice_tx_err));
        // Hold the tree until the filter is complete.
        let mut limit = Instant::now() + req.attach_timeout;
        if let Some(d) = deadline {
            limit = limit.min(d);
        }
        loop {
            if let Some(status) = tracer.try_wait()? {
                let _ = follower.kill();
                let stderr = errs.join().unwrap_or_default();
                let _ = copier.join();
                return Err(failed(status, stderr));
            }
            if notice_rx.try_recv() == Ok(Notice::Ready) {
                break;
            }
            if Instant::now() >= limit {
                kill_group(bpftrace_pid, libc::SIGKILL);
                let _ = tracer.wait();
                let _ = follower.kill();
                let stderr = errs.join().unwrap_or_default();
                let _ = copier.join();
                let secs = req.attach_timeout.as_secs();
                return Err(TraceError::AttachTimeout { pid: root, secs, stderr });
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(SETTLE);
        if started {
            follower.go()?;
        }
        tracing::debug!(root, "tree filter ready; the tree runs");
        let mut follower = Some(follower);
        let mut ended_at: Option<Instant> = None;
        let mut timed_out = false;
        let mut stopper = Stopper::default();
        let status = loop {
            tree.absorb(events_rx.try_iter());
            if let Some(status) = tracer.try_wait()? {
                break status;
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) && !timed_out {
                tracing::warn!(root, "deadline passed; interrupting bpftrace and ending the tree");
                timed_out = true;
                stopper.stop(bpftrace_pid);
            }
            stopper.tick(bpftrace_pid, &last_output);
            if tree.all_exited && !stopper.stopping() {
                let since = *ended_at.get_or_insert(now);
                if last_output.drained_since(since) {
                    stopper.stop(bpftrace_pid);
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let interrupted = signals.as_ref().is_some_and(|s| s.as_ref().is_ok_and(|s| s.interrupted()));
        drop(signals);
        let stderr = errs.join().unwrap_or_default();
        copier.join().map_err(|_| std::io::Error::other("output thread panicked"))??;
        // The tree has ended, or tracing stopped before it did: a started
        // tree is killed at the deadline; on Ctrl-C (which the terminal also
        // sent the tree) and for a `--pid` tree, it is let go untraced.
        let end = match follower.take() {
            Some(f) if tree.all_exited => f.wait()?,
            Some(f) if timed_out && started => f.kill()?,
            Some(f) => {
                let end = f.detach()?;
                if !tree.all_exited {
                    eprintln!("importprobe: tracing stopped; the traced processes keep running untraced");
                }
                end
            }
            None => FollowEnd::default(),
        };
        tree.absorb(events_rx.try_iter());
        tree.problems.extend(end.problems.iter().cloned());
        if !status.success() && !interrupted && !timed_out {
            return Err(failed(status, stderr));
        }
        let command = if started { end.root_status.and_then(exit_status) } else { None };
        Ok(TraceOutcome {
            pid: root,
            bpftrace_pid,
            bpftrace: status,
            command,
            interrupted,
            timed_out,
            stderr,
            processes: tree.processes,
            problems: tree.problems,
            tree: tree.events,
        })
    })
}

/// A process's end as a wait status.
fn exit_status(state: ExitState) -> Option<ExitStatus> {
    match state {
        ExitState::Code(code) => Some(ExitStatus::from_raw((code & 0xff) << 8)),
        ExitState::Signal { signal, core_dumped } => {
            Some(ExitStatus::from_raw(signal | if core_dumped { 0x80 } else { 0 }))
        }
        ExitState::Unknown => None,
    }
}

/// What the follower told about the tree.
struct Tree<'a> {
    objects: &'a [std::path::PathBuf],
    events: Vec<FollowEvent>,
    processes: Vec<ProcessInfo>,
    index: HashMap<u32, usize>,
    problems: Vec<String>,
    all_exited: bool,
}

impl<'a> Tree<'a> {
    fn new(objects: &'a [std::path::PathBuf]) -> Self {
        Tree {
            objects,
            events: Vec::new(),
            processes: Vec::new(),
            index: HashMap::new(),
            problems: Vec::new(),
            all_exited: false,
        }
    }

    fn absorb(&mut self, events: impl Iterator<Item = FollowEvent>) {
        for e in events {
            self.events.push(e.clone());
            match e {
                FollowEvent::Joined { pid, parent, argv, semaphores, .. } => {
                    self.add(pid, parent, command(&argv));
                    self.semaphores(pid, &semaphores);
                }
                FollowEvent::Forked { pid, parent, .. } => {
                    let inherited = self.index.get(&parent).map(|&i| self.processes[i].command.clone());
                    self.add(pid, Some(parent), inherited.unwrap_or_default());
                }
                FollowEvent::Exec { pid, argv, semaphores, .. } => {
                    match self.index.get(&pid) {
                        Some(&i) => self.processes[i].command = command(&argv),
                        None => self.add(pid, None, command(&argv)),
                    }
                    self.semaphores(pid, &semaphores);
                }
                FollowEvent::Unfollowed { pid, reason, .. } => {
                    self.problems.push(format!("pid {pid} could not be followed ({reason}): its imports are missing"))
                }
                FollowEvent::Exited { .. } => {}
                FollowEvent::AllExited { .. } => self.all_exited = true,
            }
        }
    }

    fn add(&mut self, pid: u32, ppid: Option<u32>, command: String) {
        if let std::collections::hash_map::Entry::Vacant(slot) = self.index.entry(pid) {
            slot.insert(self.processes.len());
            self.processes.push(ProcessInfo { pid, ppid, command });
        }
    }

    /// A process whose probes live in a file the script does not attach
    /// to (another interpreter, a copied venv) fires into nothing: say so.
    fn semaphores(&mut self, pid: u32, outcome: &SemaphoreOutcome) {
        match outcome {
            SemaphoreOutcome::Raised(objects) => {
                for o in objects.iter().filter(|o| !attaches_to(self.objects, o)) {
                    self.problems.push(format!(
                        "pid {pid} runs {}, whose probes are not traced: name it with --binary to trace it",
                        o.display()
                    ));
                }
            }
            SemaphoreOutcome::Failed(why) => {
                self.problems.push(format!("pid {pid}: cannot raise its import probes' semaphores ({why})"))
            }
            SemaphoreOutcome::NotRequested | SemaphoreOutcome::NoProbes => {}
        }
    }
}

fn command(argv: &[OsString]) -> String {
    argv.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" ")
}
