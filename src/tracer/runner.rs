//! The one way importprobe runs bpftrace: `importprobe trace`, the demo,
//! `importprobe smoke` and the test suite all come through here.
//!
//! Two kinds of target: a running process (`--pid`), attached with
//! `bpftrace -p PID`; or a command started here, held stopped right after
//! its exec ([`super::launch`]) until bpftrace has raised the import
//! probes' semaphores in it and put its uprobes on every probe site, so that
//! not even the interpreter's first import is missed. bpftrace's stdout goes
//! to the caller's writer without its attach line; its stderr is kept, and
//! passed on when asked, without the host notices ([`super::bpftrace`]).
//! Every wait has a deadline: at the overall deadline bpftrace is
//! interrupted (it prints what it has), then killed, and so is a started
//! command.

use super::bpftrace::{is_attach_line, is_host_notice, is_map_full, Bpftrace};
use super::interrupt::ForwardSignals;
use super::launch::{ChildOutput, LaunchError, StoppedChild};
use super::process::{attached_beyond, import_probes_in, semaphore_values, ProbeInProcess, IMPORT_PROBES};
use super::script_file::ScriptFile;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use thiserror::Error;

/// Pause between seeing the uprobes in place and resuming a started
/// command (covers bpftrace attaching its programs to the opened uprobes).
pub const SETTLE: Duration = Duration::from_millis(20);

/// After a started command exits, bpftrace is stopped once its output has
/// been quiet this long: everything the probes emitted has been read.
pub const DRAIN_QUIET: Duration = Duration::from_millis(200);

/// Upper bound on that drain, for a script that prints continuously.
pub const DRAIN_MAX: Duration = Duration::from_secs(10);

/// How long an interrupted bpftrace gets to run END and exit.
pub const INTERRUPT_GRACE: Duration = Duration::from_secs(5);

/// What to trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A running process, left running afterwards.
    Pid(u32),
    /// A command to start: program and arguments, never re-parsed.
    Command(Vec<OsString>),
}

/// One tracing run.
#[derive(Debug)]
pub struct TraceRequest {
    /// Shown in messages (a bundled script's name or the file's path).
    pub script_name: String,
    /// bpftrace source.
    pub source: String,
    /// Positional parameters after the script (`$1`, `$2`, ...); see
    /// [`super::scripts::BundledScript::positional_args`] for the bundled scripts'.
    pub args: Vec<String>,
    pub target: Target,
    pub bpftrace: Bpftrace,
    /// How long a started command may wait for bpftrace to attach.
    pub attach_timeout: Duration,
    /// The whole run's deadline, if any (smoke and tests never hang).
    pub deadline: Option<Duration>,
    /// Keys per map (the capture collector's size), if not bpftrace's default.
    pub max_map_keys: Option<usize>,
    /// The string limit, if not [`super::bpftrace::STRLEN`].
    pub strlen: Option<u32>,
    /// Where a started command's stdout and stderr go (inherited by default).
    pub command_output: ChildOutput,
    /// Pass bpftrace's stderr (host notices left out) on to ours as it comes.
    pub echo_stderr: bool,
    /// Forward Ctrl-C (SIGINT, SIGTERM) to bpftrace, which then prints the
    /// report so far; the target keeps running.
    pub forward_signals: bool,
}

impl TraceRequest {
    pub fn new(script_name: impl Into<String>, source: impl Into<String>, target: Target, bpftrace: Bpftrace) -> Self {
        TraceRequest {
            script_name: script_name.into(),
            source: source.into(),
            args: Vec::new(),
            target,
            bpftrace,
            attach_timeout: Duration::from_secs(60),
            deadline: None,
            max_map_keys: None,
            strlen: None,
            command_output: ChildOutput::default(),
            echo_stderr: false,
            forward_signals: false,
        }
    }
}

/// How a run ended.
#[derive(Debug)]
pub struct TraceOutcome {
    /// The traced process.
    pub pid: u32,
    pub bpftrace_pid: u32,
    pub bpftrace: ExitStatus,
    /// A started command's exit status; `None` for `--pid` targets, and
    /// when the command was still running after an interrupt.
    pub command: Option<ExitStatus>,
    /// SIGINT/SIGTERM arrived and was forwarded to bpftrace.
    pub interrupted: bool,
    /// The deadline passed: bpftrace (and a started command) were stopped.
    pub timed_out: bool,
    /// bpftrace's stderr lines, host notices left out.
    pub stderr: Vec<String>,
}

/// Why tracing failed.
#[derive(Debug, Error)]
pub enum TraceError {
    #[error(transparent)]
    Launch(#[from] LaunchError),
    #[error("no process with pid {0}")]
    NoSuchPid(u32),
    #[error("cannot run {bpftrace}: {source}")]
    SpawnTracer { bpftrace: String, source: std::io::Error },
    #[error("bpftrace {version} failed ({status}) on {script}{}", first_error(.stderr))]
    TracerFailed { script: String, version: String, status: ExitStatus, stderr: Vec<String> },
    #[error("bpftrace did not attach to pid {pid} within {secs} s{}", first_error(.stderr))]
    AttachTimeout { pid: u32, secs: u64, stderr: Vec<String> },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl TraceError {
    /// bpftrace's own complaints, for callers that show them.
    pub fn stderr(&self) -> &[String] {
        match self {
            TraceError::TracerFailed { stderr, .. } | TraceError::AttachTimeout { stderr, .. } => stderr,
            _ => &[],
        }
    }
}

/// The first line bpftrace flagged as an error (or its last line).
fn first_error(lines: &[String]) -> String {
    let pick = lines.iter().find(|l| l.contains("ERROR")).or_else(|| lines.iter().rev().find(|l| !l.trim().is_empty()));
    pick.map(|l| format!(": {}", l.trim())).unwrap_or_default()
}

/// Points `usdt:*:` probes at one object (for scripts of your own; the
/// bundled ones take the object as `$1`).
pub fn pin_binary(source: &str, binary: &Path) -> String {
    source.replace("usdt:*:", &format!("usdt:{}:", binary.display()))
}

/// The import probes a script names (so we know which semaphores to wait for).
pub fn probes_used(source: &str) -> Vec<&'static str> {
    IMPORT_PROBES.iter().copied().filter(|p| source.contains(p)).collect()
}

/// Runs bpftrace on the target until it ends (target exit, Ctrl-C or the
/// deadline); bpftrace's stdout goes to `out`.
pub fn trace(req: TraceRequest, out: &mut (dyn Write + Send)) -> Result<TraceOutcome, TraceError> {
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
    let (attach_tx, attach_rx) = mpsc::channel();
    let attach_tx_err = attach_tx.clone();
    let echo = req.echo_stderr;
    let clock = Instant::now();
    let last_output = AtomicU64::new(0);
    let last = &last_output;
    let failed = |status, stderr| TraceError::TracerFailed {
        script: script_name.clone(),
        version: bpftrace.version.to_string(),
        status,
        stderr,
    };
    std::thread::scope(|s| {
        let copier = s.spawn(move || copy_output(stdout, out, attach_tx, || last.store(ms_since(clock), SeqCst)));
        let errs = s.spawn(move || read_stderr(stderr, echo, attach_tx_err));
        let started = match stopped {
            Some((stopped, watched)) => match wait_attached(&req, stopped, &watched, &mut tracer, &attach_rx, deadline)
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
        // A started command that exits stays a zombie (not reaped), so
        // bpftrace, which stops reading as soon as its pid is gone, keeps
        // draining its buffers; once its output is quiet, SIGINT ends it
        // (END runs) and the command is reaped.
        let mut exited = started.map(|child| (s.spawn(move || wait_exit_keep_zombie(child)), None::<Instant>));
        let mut timed_out = false;
        let mut kill_at: Option<Instant> = None;
        let status = loop {
            if let Some(status) = tracer.try_wait()? {
                break status;
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) && !timed_out {
                tracing::warn!(pid, "deadline passed; interrupting bpftrace");
                timed_out = true;
                kill_group(bpftrace_pid, libc::SIGINT);
                kill_at = Some(now + INTERRUPT_GRACE);
                if exited.as_ref().is_some_and(|(w, _)| !w.is_finished()) {
                    // SAFETY: kill(2) on the command we started.
                    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                }
            }
            if kill_at.is_some_and(|k| now >= k) {
                kill_group(bpftrace_pid, libc::SIGKILL);
            }
            if let Some((waiter, stop_at)) = exited.as_mut() {
                if waiter.is_finished() && kill_at.is_none() {
                    let since = *stop_at.get_or_insert(now);
                    let quiet =
                        ms_since(clock).saturating_sub(last_output.load(SeqCst)) >= DRAIN_QUIET.as_millis() as u64;
                    if (quiet && since.elapsed() >= DRAIN_QUIET) || since.elapsed() >= DRAIN_MAX {
                        kill_group(bpftrace_pid, libc::SIGINT);
                        kill_at = Some(now + INTERRUPT_GRACE);
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let waiter = exited.map(|(w, _)| w);
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
        let command = match waiter {
            Some(w) if !interrupted || w.is_finished() => {
                w.join().ok().and_then(|r| r.ok()).and_then(|mut child| child.wait().ok())
            }
            Some(_) => {
                eprintln!("importprobe: the traced command (pid {pid}) is still running; left running");
                None
            }
            None => None,
        };
        // bpftrace exits non-zero when interrupted by the deadline or Ctrl-C
        // on some releases: that is not a failure of the script.
        if !status.success() && !interrupted && !timed_out {
            return Err(failed(status, stderr));
        }
        Ok(TraceOutcome { pid, bpftrace_pid, bpftrace: status, command, interrupted, timed_out, stderr })
    })
}

/// Signals bpftrace's process group (it runs in its own).
fn kill_group(pgid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) on the process group we created for bpftrace.
    unsafe { libc::kill(-(pgid as i32), sig) };
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

fn ms_since(clock: Instant) -> u64 {
    clock.elapsed().as_millis() as u64
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

/// Holds the started command until bpftrace is in place on the import
/// probes the script uses (semaphores raised, uprobes on every site), then
/// lets it run.
fn wait_attached(
    req: &TraceRequest,
    stopped: StoppedChild,
    watched: &Watched,
    tracer: &mut Child,
    attach_rx: &mpsc::Receiver<()>,
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
    loop {
        if let Some(status) = tracer.try_wait()? {
            return Err(TraceError::TracerFailed {
                script: req.script_name.clone(),
                version: req.bpftrace.version.to_string(),
                status,
                stderr: Vec::new(),
            });
        }
        if announced_at.is_none() && attach_rx.try_recv().is_ok() {
            announced_at = Some(Instant::now());
        }
        let ready = if watch {
            attached_beyond(pid, &watched.probes, &watched.baseline)?
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

/// Copies bpftrace's stdout, dropping its attach line (and announcing it)
/// and the blank lines it prints for cleared maps at exit (blank lines are
/// held back until more text follows).
fn copy_output(
    stdout: std::process::ChildStdout,
    out: &mut (dyn Write + Send),
    attach_tx: mpsc::Sender<()>,
    on_output: impl Fn(),
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stdout);
    let mut line = Vec::new();
    let mut first = true;
    let mut broken = false;
    let mut blanks = 0usize;
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        on_output();
        if first && is_attach_line(&line) {
            first = false;
            let _ = attach_tx.send(());
            continue;
        }
        first = false;
        if broken {
            continue; // keep draining so bpftrace never blocks
        }
        if line == b"\n" {
            blanks += 1;
            continue;
        }
        let res = out
            .write_all(&b"\n".repeat(std::mem::take(&mut blanks)))
            .and_then(|_| out.write_all(&line))
            .and_then(|_| if reader.buffer().is_empty() { out.flush() } else { Ok(()) });
        if let Err(e) = res {
            if e.kind() != std::io::ErrorKind::BrokenPipe {
                return Err(e);
            }
            broken = true;
        }
    }
    out.flush().or_else(|e| if e.kind() == std::io::ErrorKind::BrokenPipe { Ok(()) } else { Err(e) })
}

/// Reads bpftrace's stderr: announces the attach line (0.24+ prints it
/// here), keeps every other line that is not a host notice, and echoes
/// those when asked. bpftrace 0.24+ warns about every update a full map
/// dropped (four lines each, thousands of them for a large program): those
/// are counted and said once.
fn read_stderr(stderr: std::process::ChildStderr, echo: bool, attach_tx: mpsc::Sender<()>) -> Vec<String> {
    let mut kept = Vec::new();
    let mut dropped = 0u64;
    let mut in_map_full = false;
    for line in BufReader::new(stderr).lines() {
        let Ok(line) = line else { break };
        if is_attach_line(line.as_bytes()) {
            let _ = attach_tx.send(());
            continue;
        }
        if is_host_notice(&line) {
            continue;
        }
        if is_map_full(&line) {
            dropped += 1;
            in_map_full = true;
            continue;
        }
        // The warning's own continuation: its detail, the source line, the marker.
        if in_map_full && (line.starts_with("Additional Info") || line.starts_with(' ')) {
            continue;
        }
        in_map_full = false;
        if echo {
            eprintln!("{line}");
        }
        kept.push(line);
    }
    if dropped > 0 {
        let line = format!("bpftrace dropped {dropped} map update(s): a map was full (raise --max-imports)");
        if echo {
            eprintln!("importprobe: {line}");
        }
        kept.push(line);
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_wildcard_probes_to_a_binary() {
        let src = "usdt:*:python:import__find__load__start { }\nusdt:/x:python:import__find__load__done { }";
        let pinned = pin_binary(src, Path::new("/usr/lib/libpython3.11.so"));
        assert!(pinned.starts_with("usdt:/usr/lib/libpython3.11.so:python:import__find__load__start"));
        assert!(pinned.contains("usdt:/x:python:import__find__load__done"));
        assert_eq!(probes_used(src), IMPORT_PROBES.to_vec());
        assert_eq!(probes_used("usdt:*:python:import__find__load__done {}"), vec!["import__find__load__done"]);
    }

    #[test]
    fn the_first_error_line_is_shown() {
        let lines = vec!["WARNING: x".to_owned(), "file.bt:3: ERROR: bad".to_owned(), "more".to_owned()];
        assert_eq!(first_error(&lines), ": file.bt:3: ERROR: bad");
        assert_eq!(first_error(&["only".to_owned()]), ": only");
        assert_eq!(first_error(&[]), "");
    }
}
