//! One process: `bpftrace -p PID`, on a running process or on a command
//! started here and held stopped until bpftrace is in place.

use super::{
    copy_output, kill_group, probes_used, read_stderr, LastOutput, Notice, Stopper, Target, TraceError, TraceOutcome,
    TraceRequest, DRAIN_MAX, SETTLE,
};
use crate::tracer::interrupt::ForwardSignals;
use crate::tracer::launch::{ChildOutput, StoppedChild};
use crate::tracer::process::{import_probes_in, raised_above, semaphore_values, sites_trapped, ProbeInProcess};
use crate::tracer::script_file::ScriptFile;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Runs `bpftrace -p PID` on one process until it ends (target exit,
/// Ctrl-C or the deadline); bpftrace's stdout goes to `out`.
pub(super) fn trace(req: TraceRequest, out: &mut (dyn Write + Send)) -> Result<TraceOutcome, TraceError> {
    let started_at = Instant::now();
    let deadline = req.deadline.map(|d| started_at + d);
    let TraceRequest { script_name, source, args, target, bpftrace, command_output, .. } = &req;
    let (pid, stopped) = match target {
        Target::Pid(pid) => {
            if !Path::new(&format!("/proc/{pid}")).exists() {
                return Err(TraceError::NoSuchPid(*pid));
            }
            (*pid, None)
        }
        Target::Command(argv) => {
            let output = ChildOutput {
                stdout: command_output.stdout.as_ref().map(|f| f.try_clone()).transpose()?,
                stderr: command_output.stderr.as_ref().map(|f| f.try_clone()).transpose()?,
            };
            let stopped = StoppedChild::spawn_with(argv, output)?;
            // What the probes look like before our bpftrace touches them.
            let watched = Watched::before_tracing(stopped.pid(), &probes_used(source))?;
            (stopped.pid(), Some((stopped, watched)))
        }
    };
    let file = ScriptFile::write(script_name, source)?;
    let mut cmd = bpftrace.command(req.strlen, req.max_map_keys);
    cmd.arg("-p").arg(pid.to_string()).arg(file.path()).args(args);
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
    tracing::debug!(?cmd, "starting bpftrace");
    let mut tracer = cmd
        .spawn()
        .map_err(|source| TraceError::SpawnTracer { bpftrace: bpftrace.path.display().to_string(), source })?;
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
        script: script_name.clone(),
        version: bpftrace.version.to_string(),
        status,
        stderr,
    };
    std::thread::scope(|s| {
        let copier = s.spawn(move || copy_output(stdout, out, notice_tx, || last.touch()));
        let errs = s.spawn(move || read_stderr(stderr, echo, notice_tx_err));
        let started = match stopped {
            Some((stopped, watched)) => match wait_attached(&req, stopped, &watched, &mut tracer, &notice_rx, deadline)
            {
                Ok(child) => Some(child),
                Err(e) => {
                    kill_group(bpftrace_pid, libc::SIGKILL);
                    let status = tracer.wait();
                    let stderr = errs.join().unwrap_or_default();
                    let _ = copier.join();
                    return Err(match (e, status) {
                        (TraceError::TracerFailed { .. }, Ok(status)) => failed(status, stderr),
                        (TraceError::AttachTimeout { pid, secs, .. }, _) => {
                            TraceError::AttachTimeout { pid, secs, stderr }
                        }
                        (e, _) => e,
                    });
                }
            },
            None => None,
        };
        // A started command that exits stays a zombie, not reaped, until
        // bpftrace's output has been quiet for a while: bpftrace 0.27 keeps
        // reading while its pid is a zombie; 0.17 and 0.23 take a zombie for
        // gone and end by themselves at once (run END, drain, exit). Then it
        // is reaped, and every version ends by itself. It is not sent
        // SIGINT for that: one that arrives while END's output is being
        // printed makes bpftrace drop the rest (seen on 0.17 as a capture's
        // `@s` printed, then `@s` and `@d` again by the exit's automatic
        // print, with no `# end`, in about 1 run in 5 of a 3000-deep
        // chain). Only a bpftrace still running DRAIN_MAX after the reaping
        // is interrupted.
        let mut waiter = started.map(|child| s.spawn(move || wait_exit_keep_zombie(child)));
        let mut exited_at: Option<Instant> = None;
        let mut reaped: Option<(Option<ExitStatus>, Instant)> = None;
        let mut timed_out = false;
        let mut stopper = Stopper::default();
        let status = loop {
            if let Some(status) = tracer.try_wait()? {
                break status;
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) && !timed_out {
                tracing::warn!(pid, "deadline passed; interrupting bpftrace");
                timed_out = true;
                stopper.stop(bpftrace_pid);
                if waiter.as_ref().is_some_and(|w| !w.is_finished()) {
                    // SAFETY: kill(2) on the command we started.
                    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                }
            }
            stopper.tick(bpftrace_pid, &last_output);
            if !stopper.stopping() && waiter.as_ref().is_some_and(|w| w.is_finished()) {
                let since = *exited_at.get_or_insert(now);
                if last_output.drained_since(since) {
                    reaped = Some((reap(waiter.take().expect("checked")), now));
                }
            }
            if reaped.is_some_and(|(_, at)| at.elapsed() >= DRAIN_MAX) && !stopper.stopping() {
                tracing::warn!(pid, "bpftrace did not end after its process was reaped; interrupting it");
                stopper.stop(bpftrace_pid);
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let interrupted = signals.as_ref().is_some_and(|s| s.as_ref().is_ok_and(|s| s.interrupted()));
        drop(signals);
        let stderr = errs.join().unwrap_or_default();
        copier.join().map_err(|_| std::io::Error::other("output thread panicked"))??;
        // After Ctrl-C a started command has usually had the terminal's
        // SIGINT too: give it a moment to end, else leave it running.
        if interrupted {
            let grace = Instant::now() + Duration::from_secs(2);
            while waiter.as_ref().is_some_and(|w| !w.is_finished()) && Instant::now() < grace {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        let command = match (reaped, waiter) {
            (Some((status, _)), _) => status,
            (None, Some(w)) if !interrupted || w.is_finished() => reap(w),
            (None, Some(_)) => {
                eprintln!("importprobe: the traced command (pid {pid}) is still running; left running");
                None
            }
            (None, None) => None,
        };
        // bpftrace exits non-zero when interrupted by the deadline or Ctrl-C
        // on some releases: that is not a failure of the script.
        if !status.success() && !interrupted && !timed_out {
            return Err(failed(status, stderr));
        }
        Ok(TraceOutcome {
            pid,
            bpftrace_pid,
            bpftrace: status,
            command,
            interrupted,
            timed_out,
            stderr,
            processes: Vec::new(),
            problems: Vec::new(),
            tree: Vec::new(),
        })
    })
}

/// Reaps the command [`wait_exit_keep_zombie`] waited for: its status.
fn reap(waiter: std::thread::ScopedJoinHandle<'_, std::io::Result<Child>>) -> Option<ExitStatus> {
    waiter.join().ok().and_then(|r| r.ok()).and_then(|mut child| child.wait().ok())
}

/// Waits until `child` exits without reaping it (`waitid` with `WNOWAIT`),
/// so its pid stays valid for bpftrace; returns it for reaping later.
fn wait_exit_keep_zombie(child: Child) -> std::io::Result<Child> {
    loop {
        // SAFETY: waitid fills the siginfo we own; WNOWAIT leaves the child
        // waitable.
        let rc = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            libc::waitid(libc::P_PID, child.id(), &mut info, libc::WEXITED | libc::WNOWAIT)
        };
        if rc == 0 {
            return Ok(child);
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// The import probes of a stopped command and their semaphores before our
/// bpftrace started: ours has attached when every semaphore is above that
/// (another tracer on the same binary may have raised them already) and
/// every site carries a uprobe.
struct Watched {
    probes: Vec<ProbeInProcess>,
    baseline: Vec<u16>,
    /// Whether every probe the script uses is mapped, so there is
    /// something to watch at all.
    complete: bool,
}

impl Watched {
    fn before_tracing(pid: u32, wanted: &[&str]) -> std::io::Result<Watched> {
        let probes = import_probes_in(pid, wanted)?;
        let baseline = semaphore_values(pid, &probes)?;
        let names: std::collections::BTreeSet<&str> = probes.iter().map(|p| p.probe.as_str()).collect();
        let complete = !wanted.is_empty() && names.len() == wanted.len();
        Ok(Watched { probes, baseline, complete })
    }
}

/// What each semaphore was before our bpftrace raised it. Another tracer on
/// the same binary that leaves meanwhile lowers the semaphores it raised (a
/// system-wide uprobe of bpftrace 0.23+ raises them in every process,
/// through the kernel): ours count from the lowest value seen, else they
/// would never rise above the baseline (seen as a 60 s attach timeout when
/// a traced tree's bpftrace ended while a command was being started).
struct SemaphoreFloor(Vec<u16>);

impl SemaphoreFloor {
    fn lower_to(&mut self, now: &[u16]) {
        for (f, &v) in self.0.iter_mut().zip(now) {
            *f = (*f).min(v);
        }
    }
}

/// How long after bpftrace's attach line an attachment that is in place but
/// cannot be told apart from another tracer's is taken as ours.
const UNCONFIRMED_GRACE: Duration = Duration::from_secs(2);

/// Holds the started command until bpftrace is in place on the import
/// probes the script uses (semaphores raised, uprobes on every site), then
/// lets it run.
fn wait_attached(
    req: &TraceRequest,
    stopped: StoppedChild,
    watched: &Watched,
    tracer: &mut Child,
    notices: &mpsc::Receiver<Notice>,
    deadline: Option<Instant>,
) -> Result<Child, TraceError> {
    let pid = stopped.pid();
    // Without the probes in a mapped object (the probed library is loaded
    // later, or the script uses other probes) there is nothing to watch:
    // trust bpftrace's attach line, with a grace period for the attaching
    // it announces.
    let watch = watched.complete;
    if !watch {
        tracing::info!(pid, "no import probe mapped in the stopped command yet; cannot verify the attachment");
    }
    let began = Instant::now();
    let mut limit = began + req.attach_timeout;
    if let Some(d) = deadline {
        limit = limit.min(d);
    }
    let mut announced_at = None;
    let mut floor = SemaphoreFloor(watched.baseline.clone());
    loop {
        if let Some(status) = tracer.try_wait()? {
            return Err(TraceError::TracerFailed {
                script: req.script_name.clone(),
                version: req.bpftrace.version.to_string(),
                status,
                stderr: Vec::new(),
            });
        }
        if announced_at.is_none() && notices.try_recv() == Ok(Notice::Attached) {
            announced_at = Some(Instant::now());
        }
        let ready = if watch {
            let now = semaphore_values(pid, &watched.probes)?;
            floor.lower_to(&now);
            // A leaving tracer's drop and our raise between two polls look
            // like no change: once bpftrace has said it attached, every
            // semaphore raised is enough.
            let raised = raised_above(&watched.probes, &now, &floor.0)
                || (announced_at.is_some_and(|t| t.elapsed() >= UNCONFIRMED_GRACE)
                    && raised_above(&watched.probes, &now, &vec![0; now.len()]));
            raised && sites_trapped(pid, &watched.probes)?
        } else {
            announced_at.is_some_and(|t| t.elapsed() >= Duration::from_millis(500))
        };
        if ready {
            // The kernel writes the int3 when bpftrace opens the uprobe event;
            // bpftrace hooks its BPF program to it a few microseconds later.
            std::thread::sleep(SETTLE);
            tracing::debug!(pid, watched = watched.probes.len(), "tracer attached; resuming the command");
            return Ok(stopped.resume()?);
        }
        if Instant::now() >= limit {
            let secs = began.elapsed().as_secs();
            return Err(TraceError::AttachTimeout { pid, secs, stderr: Vec::new() });
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tracer_leaving_while_ours_attaches_lowers_the_floor() {
        // Another tracer had raised both semaphores, then left...
        let mut floor = SemaphoreFloor(vec![1, 1]);
        floor.lower_to(&[0, 0]);
        // ...so ours raising them to 1 is above the floor.
        assert_eq!(floor.0, [0, 0]);
        // A rise is never taken for a floor.
        floor.lower_to(&[1, 2]);
        assert_eq!(floor.0, [0, 0]);
    }
}
