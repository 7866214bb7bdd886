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
        let (program, args) = argv.split_first().ok_or(LaunchError::Empty)?;
        let command = program.to_string_lossy().into_owned();
        let mut cmd = Command::new(program);
        cmd.args(args);
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
    fn stops_after_exec_with_the_new_program_mapped() {
        let argv: Vec<OsString> = vec!["sh".into(), "-c".into(), "exit 7".into()];
        let stopped = match StoppedChild::spawn(&argv) {
            Ok(s) => s,
            Err(LaunchError::NoStop { how, .. }) => {
                eprintln!("SKIP: ptrace not permitted here ({how})");
                return;
            }
            Err(e) => panic!("{e}"),
        };
        let pid = stopped.pid();
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
        assert!(exe.to_string_lossy().ends_with("sh"), "{}", exe.display());
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
