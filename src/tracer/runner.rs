//! Running bpftrace on one target with one script.
//!
//! Two kinds of target: a running process (`--pid`), attached with
//! `bpftrace -p PID`; or a command we start ourselves, held stopped right
//! after its exec ([`super::launch`]) until bpftrace has raised the import
//! probes' semaphores in it, so that not even the interpreter's first import
//! is missed. bpftrace's output is copied to the caller's writer without its
//! "Attaching N probes..." line; its stderr is passed on without the harmless
//! RLIMIT_MEMLOCK complaint.

use super::interrupt::ForwardSignals;
use super::launch::{LaunchError, StoppedChild};
use super::process::{attached, import_probes_in, IMPORT_PROBES};
use super::script_file::ScriptFile;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use thiserror::Error;

/// bpftrace's string limit: 0.17 accepts at most 200 (default 64 truncates
/// long module names).
pub const STRLEN: &str = "200";

/// bpftrace's output ring buffer, in pages per CPU (its default is 64): the
/// streaming scripts print on every import, and bursts of fast imports
/// overflow a small buffer ("Lost N events").
pub const PERF_RB_PAGES: &str = "1024";

/// Pause between seeing the uprobes in place and resuming a started
/// command (covers bpftrace attaching its programs to the opened uprobes).
pub const SETTLE: Duration = Duration::from_millis(20);

/// After a started command exits, bpftrace is stopped once its output has
/// been quiet this long: everything the probes emitted has been read.
pub const DRAIN_QUIET: Duration = Duration::from_millis(200);

/// Upper bound on that drain, for a script that prints continuously.
pub const DRAIN_MAX: Duration = Duration::from_secs(10);

/// What to trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A running process, left running afterwards.
    Pid(u32),
    /// A command to start: program and arguments, never re-parsed.
    Command(Vec<OsString>),
}

/// One tracing run.
#[derive(Debug, Clone)]
pub struct TraceRequest {
    /// Shown in messages (a bundled script's name or the file's path).
    pub script_name: String,
    /// bpftrace source.
    pub source: String,
    /// Positional parameters after the script (`$1`, `$2`, ...); see
    /// [`super::scripts::positional_args`] for the bundled scripts'.
    pub args: Vec<String>,
    pub target: Target,
    /// The bpftrace executable.
    pub bpftrace: PathBuf,
    /// How long a started command may wait for bpftrace to attach.
    pub attach_timeout: Duration,
}

impl TraceRequest {
    pub fn new(script_name: impl Into<String>, source: impl Into<String>, target: Target) -> Self {
        TraceRequest {
            script_name: script_name.into(),
            source: source.into(),
            args: Vec::new(),
            target,
            bpftrace: PathBuf::from("bpftrace"),
            attach_timeout: Duration::from_secs(60),
        }
    }
}

/// How a run ended.
#[derive(Debug)]
pub struct TraceOutcome {
    /// The traced process.
    pub pid: u32,
    pub bpftrace: ExitStatus,
    /// A started command's exit status; `None` for `--pid` targets, and
    /// when the command was still running after an interrupt.
    pub command: Option<ExitStatus>,
    /// SIGINT/SIGTERM arrived and was forwarded to bpftrace.
    pub interrupted: bool,
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
    #[error("bpftrace failed ({status}) on {script}{}", tail(.stderr))]
    TracerFailed { script: String, status: ExitStatus, stderr: Vec<String> },
    #[error("bpftrace did not attach to pid {pid} within {secs} s")]
    AttachTimeout { pid: u32, secs: u64 },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

fn tail(lines: &[String]) -> String {
    match lines.iter().rev().find(|l| !l.trim().is_empty()) {
        Some(last) => format!(": {last}"),
        None => String::new(),
    }
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

/// True for bpftrace's "Attaching N probes..." line.
pub fn is_attaching_line(line: &[u8]) -> bool {
    let line = String::from_utf8_lossy(line);
    let line = line.trim_end();
    line.strip_prefix("Attaching ")
        .and_then(|rest| rest.strip_suffix(" probes...").or_else(|| rest.strip_suffix(" probe...")))
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// True for stderr lines that are noise, not news: the RLIMIT_MEMLOCK
/// complaint bpftrace 0.17 prints when it lacks CAP_SYS_RESOURCE, although
/// the kernel accounts BPF memory by cgroup and loading works.
pub fn is_noise(line: &str) -> bool {
    line.contains("couldn't set RLIMIT_MEMLOCK")
}

/// Sets bpftrace's string limit and ring buffer for the bundled scripts,
/// unless the user's environment already chose them.
pub fn bpftrace_env(cmd: &mut Command) {
    for (var, value) in [("BPFTRACE_STRLEN", STRLEN), ("BPFTRACE_PERF_RB_PAGES", PERF_RB_PAGES)] {
        if std::env::var_os(var).is_none() {
            cmd.env(var, value);
        }
    }
}

/// Runs bpftrace on the target until it ends (target exit or Ctrl-C);
/// bpftrace's stdout goes to `out`.
pub fn trace(req: &TraceRequest, out: &mut (dyn Write + Send)) -> Result<TraceOutcome, TraceError> {
    let source = &req.source;
    let (pid, stopped) = match &req.target {
        Target::Pid(pid) => {
            if !Path::new(&format!("/proc/{pid}")).exists() {
                return Err(TraceError::NoSuchPid(*pid));
            }
            (*pid, None)
        }
        Target::Command(argv) => {
            let stopped = StoppedChild::spawn(argv)?;
            (stopped.pid(), Some(stopped))
        }
    };
    let file = ScriptFile::write(&req.script_name, source)?;
    let mut cmd = Command::new(&req.bpftrace);
    cmd.arg("-p").arg(pid.to_string()).arg(file.path()).args(&req.args);
    bpftrace_env(&mut cmd);
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
    tracing::debug!(?cmd, "starting bpftrace");
    let mut tracer = cmd
        .spawn()
        .map_err(|source| TraceError::SpawnTracer { bpftrace: req.bpftrace.display().to_string(), source })?;
    let signals = ForwardSignals::to(tracer.id());
    let stdout = tracer.stdout.take().expect("piped");
    let stderr = tracer.stderr.take().expect("piped");
    let (attach_tx, attach_rx) = mpsc::channel();

    let clock = Instant::now();
    let last_output = AtomicU64::new(0);
    let last = &last_output;
    std::thread::scope(|s| {
        let copier = s.spawn(move || copy_output(stdout, out, attach_tx, || last.store(ms_since(clock), SeqCst)));
        let errs = s.spawn(move || filter_stderr(stderr));
        let started = match stopped {
            Some(stopped) => match wait_attached(req, source, stopped, &mut tracer, &attach_rx) {
                Ok(child) => Some(child),
                Err(e) => {
                    let _ = tracer.kill();
                    let status = tracer.wait();
                    let stderr = errs.join().unwrap_or_default();
                    let _ = copier.join();
                    return Err(match (e, status) {
                        (TraceError::TracerFailed { .. }, Ok(status)) => {
                            TraceError::TracerFailed { script: req.script_name.clone(), status, stderr }
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
        let exited = started.map(|child| (s.spawn(move || wait_exit_keep_zombie(child)), None::<Instant>));
        let mut exited = exited;
        let status = loop {
            if let Some(status) = tracer.try_wait()? {
                break status;
            }
            if let Some((waiter, stop_at)) = exited.as_mut() {
                if waiter.is_finished() {
                    let since = *stop_at.get_or_insert_with(Instant::now);
                    let quiet =
                        ms_since(clock).saturating_sub(last_output.load(SeqCst)) >= DRAIN_QUIET.as_millis() as u64;
                    if (quiet && since.elapsed() >= DRAIN_QUIET) || since.elapsed() >= DRAIN_MAX {
                        // SAFETY: kill(2) on our own child.
                        unsafe { libc::kill(tracer.id() as i32, libc::SIGINT) };
                        *stop_at = Some(Instant::now() + Duration::from_secs(3600));
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let waiter = exited.map(|(w, _)| w);
        let interrupted = signals.as_ref().is_ok_and(|s| s.interrupted());
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
        if !status.success() && !interrupted {
            return Err(TraceError::TracerFailed { script: req.script_name.clone(), status, stderr });
        }
        Ok(TraceOutcome { pid, bpftrace: status, command, interrupted })
    })
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

/// Holds the started command until bpftrace is in place on the import
/// probes the script uses (semaphores raised, uprobes on every site), then
/// lets it run.
fn wait_attached(
    req: &TraceRequest,
    source: &str,
    stopped: StoppedChild,
    tracer: &mut Child,
    attach_rx: &mpsc::Receiver<()>,
) -> Result<Child, TraceError> {
    let pid = stopped.pid();
    let wanted = probes_used(source);
    let probes = import_probes_in(pid, &wanted)?;
    let names: std::collections::BTreeSet<&str> = probes.iter().map(|p| p.probe.as_str()).collect();
    // Without the probes in a mapped object (the probed library is loaded
    // later, or the script uses other probes) there is nothing to watch:
    // trust bpftrace's "Attaching" message, with a grace period for the
    // attaching it announces.
    let watch = !wanted.is_empty() && names.len() == wanted.len();
    if !watch {
        tracing::info!(pid, "no import probe mapped in the stopped command yet; cannot verify the attachment");
    }
    let deadline = Instant::now() + req.attach_timeout;
    let mut announced_at = None;
    loop {
        if let Some(status) = tracer.try_wait()? {
            return Err(TraceError::TracerFailed { script: req.script_name.clone(), status, stderr: Vec::new() });
        }
        if announced_at.is_none() && attach_rx.try_recv().is_ok() {
            announced_at = Some(Instant::now());
        }
        let ready = if watch {
            attached(pid, &probes)?
        } else {
            announced_at.is_some_and(|t| t.elapsed() >= Duration::from_millis(500))
        };
        if ready {
            // The kernel writes the int3 when bpftrace opens the uprobe event;
            // bpftrace hooks its BPF program to it a few microseconds later.
            std::thread::sleep(SETTLE);
            tracing::debug!(pid, watched = probes.len(), "tracer attached; resuming the command");
            return Ok(stopped.resume()?);
        }
        if Instant::now() >= deadline {
            return Err(TraceError::AttachTimeout { pid, secs: req.attach_timeout.as_secs() });
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Copies bpftrace's stdout, dropping its first "Attaching N probes..." line
/// (and announcing it) and the blank lines it prints for cleared maps at
/// exit (blank lines are held back until more text follows).
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
        if first && is_attaching_line(&line) {
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

/// Passes bpftrace's stderr on, without noise; returns what it passed.
fn filter_stderr(stderr: std::process::ChildStderr) -> Vec<String> {
    let mut kept = Vec::new();
    for line in BufReader::new(stderr).lines() {
        let Ok(line) = line else { break };
        if is_noise(&line) {
            continue;
        }
        eprintln!("{line}");
        kept.push(line);
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_bpftraces_attaching_line() {
        assert!(is_attaching_line(b"Attaching 2 probes...\n"));
        assert!(is_attaching_line(b"Attaching 1 probe...\n"));
        assert!(!is_attaching_line(b"Attaching many probes...\n"));
        assert!(!is_attaching_line(b"0 start Attaching 2 probes...\n"));
    }

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
    fn memlock_complaint_is_noise() {
        assert!(is_noise("ERROR: Unknown error -1: couldn't set RLIMIT_MEMLOCK for bpftrace. If your program is not loading, you can try \"ulimit -l 8192\" to fix the problem"));
        assert!(!is_noise("ERROR: usdt probe not found"));
    }
}
