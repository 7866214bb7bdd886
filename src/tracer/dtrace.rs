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
}

/// What dtrace traces.
#[derive(Debug, Clone)]
pub enum DtraceTarget<'a> {
    /// `-c`: a command dtrace starts (joined by spaces: dtrace splits it
    /// on white space, so no argument may contain any).
    Command(&'a [OsString]),
    /// `-p`: a running process. DTrace 2.0.7's `-c` can hang on a
    /// multi-threaded target (seen in 2 of 20 runs of the simulator's demo,
    /// a thread left in ptrace-stop); `-p` on a simulator waiting for its
    /// tracer did not, in 15 runs.
    Pid(u32),
}

/// Runs `script` (with its `$1`... `args`) with `dtrace -q -s` on a target.
pub fn run(
    dtrace: &Dtrace,
    script: &Path,
    target: DtraceTarget,
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
    let mut timed_out = false;
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
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
    })
}
