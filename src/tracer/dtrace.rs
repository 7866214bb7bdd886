//! Running a DTrace twin (`scripts/*.d`) on a command: `dtrace -q -s
//! SCRIPT -c CMD`, which starts the command itself and holds it until the
//! probes are enabled. Oracle's DTrace for Linux (2.0) reads the same SDT
//! notes bpftrace does, as `python$target:::import-find-load-start`; on
//! illumos, FreeBSD and macOS the simulator's probes come from the `usdt`
//! crate's DTrace provider. Used by the tests, to hold each twin's output to
//! the same ground truth as its bpftrace script.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The environment variable naming the dtrace to use (else `dtrace` in PATH).
pub const DTRACE_VAR: &str = "IMPORTPROBE_DTRACE";

/// A dtrace executable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dtrace {
    pub path: PathBuf,
    /// `dtrace -V`, e.g. `dtrace: D 2.0.7`.
    pub version: String,
}

impl Dtrace {
    /// The dtrace `IMPORTPROBE_DTRACE` names, else the one in PATH, if it runs.
    pub fn locate() -> Option<Dtrace> {
        let path = match std::env::var_os(DTRACE_VAR) {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => super::preflight::which(std::ffi::OsStr::new("dtrace"))?,
        };
        let out = Command::new(&path).arg("-V").output().ok()?;
        let text =
            String::from_utf8_lossy(if out.stdout.is_empty() { &out.stderr } else { &out.stdout }).trim().to_owned();
        (out.status.success() && text.contains("D ")).then_some(Dtrace { path, version: text })
    }
}

/// How a DTrace run ended.
#[derive(Debug)]
pub struct DtraceRun {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: String,
    pub timed_out: bool,
    /// This run was ended because DTrace left its command hanging.
    pub hung: bool,
    /// How many runs before this one were (see [`HANG_ATTEMPTS`]).
    pub hangs: u32,
}

/// What dtrace traces.
#[derive(Debug, Clone)]
pub enum DtraceTarget<'a> {
    /// `-c`: a command dtrace starts (joined by spaces: dtrace splits it
    /// on white space, so no argument may contain any).
    Command(&'a [OsString]),
    /// `-p`: a running process. DTrace 2.0.7's `-c` can hang on a
    /// multi-threaded target (seen in 2 of 20 runs of the simulator's demo
    /// and 1 in 10 of a threaded Python program: a new thread left in its
    /// initial ptrace stop); `-p` on a simulator waiting for its tracer did
    /// not, in 15 runs.
    Pid(u32),
}

/// How many times a `-c` run is tried when DTrace leaves a thread of its
/// command stopped (see [`DtraceTarget::Pid`]): that is DTrace's bug, not
/// the script's, and another run of the same command does not hit it again
/// often (1 in 10 here).
pub const HANG_ATTEMPTS: u32 = 3;

/// A thread of the command (not its main thread, which DTrace holds at exec
/// until the probes are enabled) in ptrace stop this long is taken for the
/// hang: DTrace resumes a new thread within milliseconds otherwise.
const HANG_AFTER: Duration = Duration::from_secs(5);

/// Runs `script` (with its `$1`... `args`) with `dtrace -q -s` on a target.
/// A `-c` run DTrace leaves hanging is ended and run again, up to
/// [`HANG_ATTEMPTS`] times in all; [`DtraceRun::hangs`] counts them.
pub fn run(
    dtrace: &Dtrace,
    script: &Path,
    target: DtraceTarget,
    args: &[String],
    deadline: Duration,
) -> std::io::Result<DtraceRun> {
    let mut hangs = 0;
    loop {
        let mut run = run_once(dtrace, script, &target, args, deadline)?;
        run.hangs = hangs;
        if !run.hung {
            return Ok(run);
        }
        hangs += 1;
        tracing::warn!(attempt = hangs, script = %script.display(), "dtrace -c left a thread of its command in ptrace stop (a DTrace bug); ended it");
        if hangs >= HANG_ATTEMPTS {
            return Ok(run);
        }
    }
}

fn run_once(
    dtrace: &Dtrace,
    script: &Path,
    target: &DtraceTarget,
    args: &[String],
    deadline: Duration,
) -> std::io::Result<DtraceRun> {
    let how: [OsString; 2] = match target {
        DtraceTarget::Command(argv) => {
            if let Some(bad) = argv.iter().find(|a| a.to_string_lossy().contains(char::is_whitespace)) {
                return Err(std::io::Error::other(format!("dtrace -c cannot pass {bad:?}: it holds white space")));
            }
            let command = argv.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" ");
            ["-c".into(), command.into()]
        }
        DtraceTarget::Pid(pid) => ["-p".into(), pid.to_string().into()],
    };
    let dir = tempfile::tempdir()?;
    let (out_path, err_path) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let mut child = Command::new(&dtrace.path)
        .arg("-q")
        .args(how)
        .arg("-s")
        .arg(script)
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path)?)
        .stderr(std::fs::File::create(&err_path)?)
        .spawn()?;
    let limit = Instant::now() + deadline;
    let mut watch = matches!(target, DtraceTarget::Command(_)).then(|| HangWatch::new(child.id()));
    let (mut timed_out, mut hung) = (false, false);
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if !hung && watch.as_mut().is_some_and(|w| w.hung()) {
            hung = true;
            // Its command is stopped for good: end it, then dtrace.
            for command in children_of(child.id()) {
                // SAFETY: kill(2) on the command our own child started.
                unsafe { libc::kill(command as i32, libc::SIGKILL) };
            }
            let _ = child.kill();
        }
        if Instant::now() >= limit && !timed_out {
            timed_out = true;
            // SAFETY: kill(2) on our own child; dtrace ends its -c command.
            unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        }
        if Instant::now() >= limit + Duration::from_secs(5) {
            let _ = child.kill();
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Ok(DtraceRun {
        status,
        stdout: std::fs::read(&out_path)?,
        stderr: String::from_utf8_lossy(&std::fs::read(&err_path)?).into_owned(),
        timed_out,
        hung,
        hangs: 0,
    })
}

/// Watches the command a `dtrace -c` started for the hang: a thread other
/// than its main one in ptrace stop ("t" in /proc) for [`HANG_AFTER`].
struct HangWatch {
    dtrace: u32,
    /// Since when each stopped thread has been seen stopped.
    stopped: std::collections::HashMap<u32, Instant>,
    next_look: Instant,
}

impl HangWatch {
    fn new(dtrace: u32) -> HangWatch {
        HangWatch { dtrace, stopped: Default::default(), next_look: Instant::now() }
    }

    /// Looks (every 100 ms) and says whether a thread has been stopped too long.
    fn hung(&mut self) -> bool {
        let now = Instant::now();
        if now < self.next_look {
            return false;
        }
        self.next_look = now + Duration::from_millis(100);
        let mut seen = std::collections::HashMap::new();
        for command in children_of(self.dtrace) {
            for tid in tasks_of(command).into_iter().filter(|&t| t != command) {
                if thread_state(command, tid) == Some('t') {
                    seen.insert(tid, self.stopped.get(&tid).copied().unwrap_or(now));
                }
            }
        }
        self.stopped = seen;
        self.stopped.values().any(|since| now.duration_since(*since) >= HANG_AFTER)
    }
}

/// The processes `pid` started (from each of its threads' `children`).
fn children_of(pid: u32) -> Vec<u32> {
    tasks_of(pid)
        .into_iter()
        .filter_map(|tid| std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/children")).ok())
        .flat_map(|text| text.split_whitespace().filter_map(|p| p.parse().ok()).collect::<Vec<u32>>())
        .collect()
}

/// The thread ids of `pid`.
fn tasks_of(pid: u32) -> Vec<u32> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|dir| dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect())
        .unwrap_or_default()
}

/// A thread's state letter from `/proc/PID/task/TID/stat` (after the
/// command name, which may hold spaces and parentheses).
fn thread_state(pid: u32, tid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")).ok()?;
    stat[stat.rfind(')')? + 1..].trim_start().chars().next()
}
