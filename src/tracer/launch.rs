//! Starting a command stopped right after `execve`, so that a tracer can
//! attach by pid before the program runs a single instruction of its own.
//!
//! The child asks to be traced (`PTRACE_TRACEME`) before it execs, and the
//! kernel stops it with SIGTRAP once the new program is mapped: its own
//! probes are then visible in `/proc/PID/maps`, which a stop *before* exec
//! (SIGSTOP in the child) would not give. Detaching without a signal lets it
//! run. The argument vector goes to `execvp` as is: no shell, no re-parsing.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use thiserror::Error;

/// Why a command could not be started stopped.
#[derive(Debug, Error)]
pub enum LaunchError {
    #[error("no command given")]
    Empty,
    #[error("cannot run {command}: {source}")]
    Spawn { command: String, source: std::io::Error },
    #[error("{command} did not stop after exec ({how}); is ptrace forbidden (kernel.yama.ptrace_scope=3)?")]
    NoStop { command: String, how: String },
    #[error("cannot resume pid {pid}: {source}")]
    Resume { pid: u32, source: std::io::Error },
}

/// Where a started command's output goes; `None` inherits ours.
#[derive(Debug, Default)]
pub struct ChildOutput {
    pub stdout: Option<std::fs::File>,
    pub stderr: Option<std::fs::File>,
}

/// A child process held stopped just after exec. Dropping it without
/// [`StoppedChild::resume`] kills it.
///
/// Must be resumed from the thread that spawned it (ptrace ties the tracee to
/// the tracing thread).
#[derive(Debug)]
pub struct StoppedChild {
    child: Option<Child>,
    command: String,
}

impl StoppedChild {
    /// Starts `argv[0]` (searched in PATH) with the remaining arguments and
    /// waits until it stops at its exec.
    pub fn spawn(argv: &[OsString]) -> Result<Self, LaunchError> {
        Self::spawn_with(argv, ChildOutput::default())
    }

    /// [`StoppedChild::spawn`] with the command's stdout and stderr sent
    /// where `output` says (inherited by default).
    pub fn spawn_with(argv: &[OsString], output: ChildOutput) -> Result<Self, LaunchError> {
        let (program, args) = argv.split_first().ok_or(LaunchError::Empty)?;
        let command = program.to_string_lossy().into_owned();
        let mut cmd = Command::new(program);
        cmd.args(args);
        if let Some(f) = output.stdout {
            cmd.stdout(f);
        }
        if let Some(f) = output.stderr {
            cmd.stderr(f);
        }
        // SAFETY: ptrace(2) is async-signal-safe; nothing else runs between
        // fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::ptrace(libc::PTRACE_TRACEME, 0, std::ptr::null_mut::<libc::c_void>(), 0) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|source| LaunchError::Spawn { command: command.clone(), source })?;
        let mut stopped = StoppedChild { child: Some(child), command };
        let pid = stopped.pid();
        let mut status = 0;
        // SAFETY: plain waitpid on our own child.
        let rc = unsafe { libc::waitpid(pid as i32, &mut status, 0) };
        if rc == -1 {
            let how = std::io::Error::last_os_error().to_string();
            return Err(LaunchError::NoStop { command: stopped.command.clone(), how });
        }
        if !(libc::WIFSTOPPED(status) && libc::WSTOPSIG(status) == libc::SIGTRAP) {
            // It is gone already (reaped by the waitpid above): nothing to kill.
            let how = if libc::WIFEXITED(status) {
                format!("exited with status {}", libc::WEXITSTATUS(status))
            } else if libc::WIFSIGNALED(status) {
                format!("killed by signal {}", libc::WTERMSIG(status))
            } else {
                format!("wait status {status:#x}")
            };
            let command = stopped.command.clone();
            if libc::WIFEXITED(status) || libc::WIFSIGNALED(status) {
                stopped.child = None;
            }
            return Err(LaunchError::NoStop { command, how });
        }
        tracing::debug!(pid, command = %stopped.command, "child stopped after exec");
        #[cfg(target_arch = "x86_64")]
        if let Err(e) = run_to_entry(pid) {
            // Still stopped at the exec: the program's own probes are mapped,
            // only its shared libraries are not yet.
            tracing::info!(pid, "cannot run the dynamic loader to the entry point ({e}); staying at the exec");
        }
        Ok(stopped)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, |c| c.id())
    }

    /// Lets the program run (detaches without delivering the SIGTRAP).
    pub fn resume(mut self) -> Result<Child, LaunchError> {
        let pid = self.pid();
        // SAFETY: detaching our own stopped tracee; data 0 = no signal.
        let rc = unsafe { libc::ptrace(libc::PTRACE_DETACH, pid as i32, std::ptr::null_mut::<libc::c_void>(), 0) };
        if rc == -1 {
            return Err(LaunchError::Resume { pid, source: std::io::Error::last_os_error() });
        }
        Ok(self.child.take().expect("resumed once"))
    }

    /// Lets another tracer take over: detaches delivering SIGSTOP, so the
    /// program stays stopped (a plain job-control stop, still before its
    /// first instruction) until that tracer attaches, e.g. with
    /// `PTRACE_SEIZE`, and continues it.
    pub fn hand_over(mut self) -> Result<Child, LaunchError> {
        let pid = self.pid();
        // SAFETY: detaching our own stopped tracee, injecting SIGSTOP.
        let rc = unsafe {
            libc::ptrace(libc::PTRACE_DETACH, pid as i32, std::ptr::null_mut::<libc::c_void>(), libc::SIGSTOP)
        };
        if rc == -1 {
            return Err(LaunchError::Resume { pid, source: std::io::Error::last_os_error() });
        }
        Ok(self.child.take().expect("handed over once"))
    }
}

/// Lets the dynamic loader map the program's shared libraries (a libpython
/// with the probes, for a CPython built `--enable-shared`), stopping again
/// at the program's entry point, before any code of the program runs: a
/// breakpoint at `AT_ENTRY`, removed when hit.
#[cfg(target_arch = "x86_64")]
pub(crate) fn run_to_entry(pid: u32) -> std::io::Result<()> {
    let entry = auxv_entry(pid)?;
    let p = pid as libc::pid_t;
    let err = std::io::Error::last_os_error;
    // SAFETY: ptrace requests on our own stopped tracee; PEEKTEXT's -1 is
    // told from data by errno.
    unsafe {
        *libc::__errno_location() = 0;
        let word = libc::ptrace(libc::PTRACE_PEEKTEXT, p, entry as *mut libc::c_void, 0);
        if word == -1 && *libc::__errno_location() != 0 {
            return Err(err());
        }
        let trapped = (word & !0xff) | 0xcc;
        if libc::ptrace(libc::PTRACE_POKETEXT, p, entry as *mut libc::c_void, trapped) == -1 {
            return Err(err());
        }
        let mut sig = 0;
        loop {
            if libc::ptrace(libc::PTRACE_CONT, p, 0, sig) == -1 {
                return Err(err());
            }
            let mut status = 0;
            if libc::waitpid(p, &mut status, 0) == -1 {
                return Err(err());
            }
            if !libc::WIFSTOPPED(status) {
                return Err(std::io::Error::other(format!("ended before its entry point (wait status {status:#x})")));
            }
            if libc::WSTOPSIG(status) == libc::SIGTRAP {
                break;
            }
            sig = libc::WSTOPSIG(status); // a signal of its own: deliver it
        }
        let mut regs: libc::user_regs_struct = std::mem::zeroed();
        if libc::ptrace(libc::PTRACE_GETREGS, p, 0, &mut regs as *mut _ as *mut libc::c_void) == -1 {
            return Err(err());
        }
        if regs.rip != entry + 1 {
            // Stopped by something else (an exit, a fork in a preloaded
            // library's constructor): take the breakpoint out again.
            libc::ptrace(libc::PTRACE_POKETEXT, p, entry as *mut libc::c_void, word);
            return Err(std::io::Error::other(format!("trapped at {:#x}, not at the entry {entry:#x}", regs.rip)));
        }
        if libc::ptrace(libc::PTRACE_POKETEXT, p, entry as *mut libc::c_void, word) == -1 {
            return Err(err());
        }
        regs.rip = entry;
        if libc::ptrace(libc::PTRACE_SETREGS, p, 0, &regs as *const _ as *mut libc::c_void) == -1 {
            return Err(err());
        }
    }
    tracing::debug!(pid, entry, "child stopped at its entry point, shared libraries mapped");
    Ok(())
}

/// The program's entry point (`AT_ENTRY`) from `/proc/PID/auxv`.
fn auxv_entry(pid: u32) -> std::io::Result<u64> {
    const AT_ENTRY: u64 = 9;
    let auxv = std::fs::read(format!("/proc/{pid}/auxv"))?;
    auxv.chunks_exact(16)
        .map(|kv| (u64::from_ne_bytes(kv[..8].try_into().unwrap()), u64::from_ne_bytes(kv[8..].try_into().unwrap())))
        .find(|&(k, _)| k == AT_ENTRY)
        .map(|(_, v)| v)
        .ok_or_else(|| std::io::Error::other("no AT_ENTRY in auxv"))
}

impl Drop for StoppedChild {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_before_the_program_runs_with_its_libraries_mapped() {
        let argv: Vec<OsString> = vec!["sh".into(), "-c".into(), "exit 7".into()];
        let stopped = match StoppedChild::spawn(&argv) {
            Ok(s) => s,
            Err(LaunchError::NoStop { how, .. }) => {
                crate::testing::skip(&format!("ptrace not permitted here ({how})"));
                return;
            }
            Err(e) => panic!("{e}"),
        };
        let pid = stopped.pid();
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
        assert!(exe.to_string_lossy().ends_with("sh"), "{}", exe.display());
        // sh is dynamically linked: libc is mapped, so the loader has run.
        let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
        assert!(maps.contains("libc.so") || !maps.contains("ld-linux"), "{maps}");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        assert!(status.lines().any(|l| l.starts_with("State:") && l.contains("tracing stop")), "{status}");
        let mut child = stopped.resume().unwrap();
        assert_eq!(child.wait().unwrap().code(), Some(7));
    }

    #[test]
    fn reports_a_missing_program() {
        let argv: Vec<OsString> = vec!["/nonexistent/importprobe-test".into()];
        assert!(matches!(StoppedChild::spawn(&argv), Err(LaunchError::Spawn { .. })));
        assert!(matches!(StoppedChild::spawn(&[]), Err(LaunchError::Empty)));
    }
}
