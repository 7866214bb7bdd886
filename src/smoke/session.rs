//! A child process (bpftrace, the simulator) that is never waited on
//! without a deadline: its stdout and stderr are drained by threads while it
//! runs (a full pipe would stall bpftrace and lose events), and at the
//! deadline it is interrupted, then killed with its whole process group.
//!
//! `tracer::runner::trace` is not used for this: it has no overall deadline
//! and does not hand out bpftrace's pid, and smoke must never hang.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long an interrupted process gets to finish (bpftrace runs END).
pub const INTERRUPT_GRACE: Duration = Duration::from_secs(2);

/// A running child with its output being collected.
pub struct Session {
    child: Child,
    stdout: Option<JoinHandle<Vec<u8>>>,
    stderr: Option<JoinHandle<Vec<String>>>,
    lines: Option<mpsc::Receiver<String>>,
}

/// How a session ended.
#[derive(Debug)]
pub struct Ended {
    /// `None` when the process did not end by itself before its deadline.
    pub status: Option<ExitStatus>,
    pub stdout: Vec<u8>,
    /// stderr lines, in order.
    pub stderr: Vec<String>,
}

impl Ended {
    pub fn timed_out(&self) -> bool {
        self.status.is_none()
    }

    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }
}

impl Session {
    /// Starts `cmd` in its own process group with stdin closed and both
    /// output streams collected. stderr lines are also sent, as they come,
    /// to [`Session::next_stderr_line`].
    pub fn spawn(cmd: &mut Command) -> std::io::Result<Session> {
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
        let mut child = cmd.spawn()?;
        let mut out = child.stdout.take().expect("piped");
        let err = child.stderr.take().expect("piped");
        let (tx, rx) = mpsc::channel();
        let stdout = std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = out.read_to_end(&mut buf);
            buf
        });
        let stderr = std::thread::spawn(move || {
            let mut kept = Vec::new();
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line.clone());
                kept.push(line);
            }
            kept
        });
        Ok(Session { child, stdout: Some(stdout), stderr: Some(stderr), lines: Some(rx) })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The next stderr line, or `None` at the deadline or end of stream.
    pub fn next_stderr_line(&mut self, deadline: Instant) -> Option<String> {
        let rx = self.lines.as_ref()?;
        rx.recv_timeout(deadline.saturating_duration_since(Instant::now())).ok()
    }

    /// Waits until the process ends or `deadline` passes; then SIGINT, and
    /// after [`INTERRUPT_GRACE`] SIGKILL to its process group.
    pub fn wait(mut self, deadline: Instant) -> std::io::Result<Ended> {
        let status = match wait_until(&mut self.child, deadline)? {
            Some(s) => Some(s),
            None => {
                tracing::warn!(pid = self.child.id(), "deadline passed; interrupting");
                self.signal_group(libc::SIGINT);
                if wait_until(&mut self.child, Instant::now() + INTERRUPT_GRACE)?.is_none() {
                    self.signal_group(libc::SIGKILL);
                    self.child.wait()?;
                }
                None
            }
        };
        // The group may hold children of the child (bpftrace -c's command)
        // that keep the pipes open: end them too before draining.
        if status.is_none() {
            self.signal_group(libc::SIGKILL);
        }
        self.lines = None;
        let stdout = self.stdout.take().and_then(|h| h.join().ok()).unwrap_or_default();
        let stderr = self.stderr.take().and_then(|h| h.join().ok()).unwrap_or_default();
        Ok(Ended { status, stdout, stderr })
    }

    /// Signals the process group this session started (its id is our
    /// child's pid).
    fn signal_group(&self, sig: libc::c_int) {
        // SAFETY: kill(2) on the process group we created for our own child.
        unsafe { libc::kill(-(self.child.id() as i32), sig) };
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.signal_group(libc::SIGKILL);
            let _ = self.child.wait();
        }
    }
}

/// Polls `child` until it exits or `deadline` passes.
pub fn wait_until(child: &mut Child, deadline: Instant) -> std::io::Result<Option<ExitStatus>> {
    loop {
        if let Some(s) = child.try_wait()? {
            return Ok(Some(s));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collects_output_of_a_quick_child() {
        let mut s = Session::spawn(Command::new("sh").args(["-c", "echo out; echo err >&2; exit 3"])).unwrap();
        assert_eq!(s.next_stderr_line(Instant::now() + Duration::from_secs(10)).as_deref(), Some("err"));
        let end = s.wait(Instant::now() + Duration::from_secs(10)).unwrap();
        assert_eq!(end.status.and_then(|s| s.code()), Some(3));
        assert_eq!(end.stdout, b"out\n");
        assert_eq!(end.stderr, ["err"]);
    }

    #[test]
    fn kills_a_hanging_child_and_its_children_at_the_deadline() {
        let t = Instant::now();
        // The inner sleep keeps the pipes open: it must die with the group.
        let s =
            Session::spawn(Command::new("sh").args(["-c", "trap '' INT; sleep 30 & sleep 30; echo never"])).unwrap();
        let end = s.wait(Instant::now() + Duration::from_millis(200)).unwrap();
        assert!(end.timed_out());
        assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
        assert!(end.stdout.is_empty());
    }
}
