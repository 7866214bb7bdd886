//! The one way importprobe runs bpftrace: `importprobe trace`, `check
//! --runs`, the demo, `importprobe smoke` and the test suite all come
//! through here.
//!
//! Two kinds of target, and two ways to follow them:
//!
//! - one process ([`single`]): a running one (`--pid`), attached with
//!   `bpftrace -p PID`; or a command started here, held stopped right after
//!   its exec ([`super::launch`]) until bpftrace has raised the import
//!   probes' semaphores in it and put its uprobes on every probe site, so
//!   that not even the interpreter's first import is missed;
//! - a whole process tree ([`tree`], `--follow-children`): the command (or
//!   the pid and its descendants) followed by [`super::follow`], one
//!   system-wide bpftrace whose script acts only for the tree
//!   ([`super::follow_script`]), released once its filter is in place.
//!
//! bpftrace's stdout goes to the caller's writer without its attach and
//! ready lines; its stderr is kept, and passed on when asked, without the
//! host notices ([`super::bpftrace`]). Every wait has a deadline: at the
//! overall deadline bpftrace is interrupted (it prints what it has), then
//! killed, and so is a started command.

mod single;
mod tree;

use super::bpftrace::{is_attach_line, is_host_notice, is_map_full, Bpftrace};
use super::follow::FollowError;
use super::follow_script::{is_ready_line, TreeScriptError};
use super::launch::{ChildOutput, LaunchError};
use super::process::IMPORT_PROBES;
use crate::events::ProcessInfo;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use thiserror::Error;

/// Pause between seeing the uprobes in place and resuming a started
/// command (covers bpftrace attaching its programs to the opened uprobes).
pub const SETTLE: Duration = Duration::from_millis(20);

/// After the traced command or tree has exited, bpftrace's output must be
/// quiet this long (everything the probes emitted has been read) before it
/// is ended: a `-p` bpftrace by reaping its process, a tree's by SIGINT.
pub const DRAIN_QUIET: Duration = Duration::from_millis(200);

/// Upper bound on that drain, for a script that prints continuously; and
/// how long a `-p` bpftrace gets to end by itself once its process is reaped.
pub const DRAIN_MAX: Duration = Duration::from_secs(10);

/// How long an interrupted bpftrace gets to run END and exit before it is
/// killed; SIGINT is sent again every [`INTERRUPT_AGAIN`] meanwhile while
/// bpftrace prints nothing (bpftrace 0.17 can miss one that arrives between
/// two of its waits; one that arrives while END's output is being printed
/// makes every version drop the rest of it).
pub const INTERRUPT_GRACE: Duration = Duration::from_secs(10);
pub const INTERRUPT_AGAIN: Duration = Duration::from_secs(1);

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
    /// Trace the target and every process that descends from it.
    pub follow_children: bool,
    /// With `follow_children`: the files that carry the probes (the
    /// interpreter, a libpython), each attached system-wide.
    pub objects: Vec<PathBuf>,
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
            follow_children: false,
            objects: Vec::new(),
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
    /// With `follow_children`: every process of the tree, in the order they
    /// appeared (the first one first).
    pub processes: Vec<ProcessInfo>,
    /// With `follow_children`: what the follower could not do (a process it
    /// could not follow, semaphores it could not raise), one line each.
    pub problems: Vec<String>,
    /// With `follow_children`: everything the follower saw, in order.
    pub tree: Vec<super::follow::FollowEvent>,
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
    #[error(transparent)]
    Follow(#[from] FollowError),
    #[error("cannot restrict the script to the process tree: {0}")]
    TreeScript(#[from] TreeScriptError),
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

/// Runs bpftrace on the target until it ends (the target's exit, Ctrl-C or
/// the deadline); bpftrace's stdout goes to `out`.
pub fn trace(req: TraceRequest, out: &mut (dyn Write + Send)) -> Result<TraceOutcome, TraceError> {
    if req.follow_children {
        tree::trace(req, out)
    } else {
        single::trace(req, out)
    }
}

/// Signals bpftrace's process group (it runs in its own).
fn kill_group(pgid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) on the process group we created for bpftrace.
    unsafe { libc::kill(-(pgid as i32), sig) };
}

/// Ends bpftrace: SIGINT, so it runs END and prints its report; again
/// every [`INTERRUPT_AGAIN`] while it has printed nothing since; SIGKILL
/// after [`INTERRUPT_GRACE`].
#[derive(Debug, Default)]
struct Stopper {
    first: Option<Instant>,
    last: Option<Instant>,
}

impl Stopper {
    /// Starts stopping (once).
    fn stop(&mut self, pgid: u32) {
        if self.first.is_none() {
            let now = Instant::now();
            (self.first, self.last) = (Some(now), Some(now));
            kill_group(pgid, libc::SIGINT);
        }
    }

    fn stopping(&self) -> bool {
        self.first.is_some()
    }

    /// Called while waiting: resends SIGINT unless bpftrace has printed
    /// since the last one (`last_output`: then it is running END, and a
    /// second SIGINT would cut END's output short), kills when the grace is
    /// over.
    fn tick(&mut self, pgid: u32, output: &LastOutput) {
        let (Some(first), Some(last)) = (self.first, self.last) else { return };
        if first.elapsed() >= INTERRUPT_GRACE {
            kill_group(pgid, libc::SIGKILL);
        } else if last.elapsed() >= INTERRUPT_AGAIN && output.at() < last {
            self.last = Some(Instant::now());
            kill_group(pgid, libc::SIGINT);
        }
    }
}

/// Lines bpftrace prints that are for importprobe, not for the reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Notice {
    /// Its attach line (stdout before 0.24, stderr from 0.24).
    Attached,
    /// A tree filter's ready line: every probe is in place.
    Ready,
}

/// When bpftrace last printed a line, shared between the thread copying
/// its output and the loop deciding when to stop it.
struct LastOutput {
    clock: Instant,
    /// Microseconds from `clock` (0: nothing yet).
    us: AtomicU64,
}

impl LastOutput {
    fn new() -> Self {
        LastOutput { clock: Instant::now(), us: AtomicU64::new(0) }
    }

    fn touch(&self) {
        self.us.store(self.clock.elapsed().as_micros() as u64, SeqCst);
    }

    fn at(&self) -> Instant {
        self.clock + Duration::from_micros(self.us.load(SeqCst))
    }

    /// Whether bpftrace has drained what the probes emitted, the traced
    /// processes having exited at `exited`: [`DRAIN_QUIET`] since then with
    /// its output quiet as long, or [`DRAIN_MAX`] in any case.
    fn drained_since(&self, exited: Instant) -> bool {
        let quiet = self.at().elapsed() >= DRAIN_QUIET;
        (quiet && exited.elapsed() >= DRAIN_QUIET) || exited.elapsed() >= DRAIN_MAX
    }
}

/// Copies bpftrace's stdout, dropping its attach line and a tree filter's
/// ready line (and announcing them), and the blank lines it prints for
/// cleared maps at exit (blank lines are held back until more text follows).
fn copy_output(
    stdout: std::process::ChildStdout,
    out: &mut (dyn Write + Send),
    notices: mpsc::Sender<Notice>,
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
            let _ = notices.send(Notice::Attached);
            continue;
        }
        first = false;
        if is_ready_line(&line) {
            let _ = notices.send(Notice::Ready);
            continue;
        }
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
fn read_stderr(stderr: std::process::ChildStderr, echo: bool, notices: mpsc::Sender<Notice>) -> Vec<String> {
    let mut kept = Vec::new();
    let mut dropped = 0u64;
    let mut in_map_full = false;
    for line in BufReader::new(stderr).lines() {
        let Ok(line) = line else { break };
        if is_attach_line(line.as_bytes()) {
            let _ = notices.send(Notice::Attached);
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
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};

    /// A stand-in for bpftrace in its own process group that counts the
    /// SIGINTs it gets, each printed as a line.
    fn counts_interrupts() -> std::process::Child {
        Command::new("sh")
            .args(["-c", "trap 'echo INT' INT; echo ready; while :; do sleep 0.05; done"])
            .stdout(Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap()
    }

    fn interrupts_after(wait: Duration, printing: bool) -> usize {
        let mut child = counts_interrupts();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        assert_eq!(lines.next().unwrap().unwrap(), "ready");
        let output = LastOutput::new();
        let mut stopper = Stopper::default();
        stopper.stop(child.id());
        let end = Instant::now() + wait;
        while Instant::now() < end {
            if printing {
                output.touch();
            }
            stopper.tick(child.id(), &output);
            std::thread::sleep(Duration::from_millis(20));
        }
        kill_group(child.id(), libc::SIGKILL);
        child.wait().unwrap();
        lines.map_while(Result::ok).filter(|l| l == "INT").count()
    }

    #[test]
    fn sigint_is_sent_again_only_to_a_tracer_that_printed_nothing_since() {
        let wait = INTERRUPT_AGAIN + Duration::from_millis(500);
        // Silent: the first SIGINT may have been missed, so it is repeated.
        assert_eq!(interrupts_after(wait, false), 2);
        // Printing: it is running END, which another SIGINT would cut short.
        assert_eq!(interrupts_after(wait, true), 1);
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
    fn the_first_error_line_is_shown() {
        let lines = vec!["WARNING: x".to_owned(), "file.bt:3: ERROR: bad".to_owned(), "more".to_owned()];
        assert_eq!(first_error(&lines), ": file.bt:3: ERROR: bad");
        assert_eq!(first_error(&["only".to_owned()]), ": only");
        assert_eq!(first_error(&[]), "");
    }
}
