//! Helpers shared by the report, diff and check CLI tests: recordings
//! written as `importprobe-events v2` streams, byte by byte, so any name
//! (newline, tab, text that looks like an event, cut, missing) can be put
//! in, and the binary run on them.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// When and where an event fires.
#[derive(Debug, Clone, Copy)]
pub struct At {
    pub ts: u64,
    pub pid: u32,
    pub tid: u32,
    pub depth: u32,
}

/// `At` for short.
pub fn at(ts: u64, pid: u32, tid: u32, depth: u32) -> At {
    At { ts, pid, tid, depth }
}

/// An events stream under construction.
#[derive(Default)]
pub struct Stream {
    body: Vec<u8>,
    seq: HashMap<(u32, u32), u64>,
}

/// The scripts' name flags.
pub const FULL: u8 = 0;
pub const CUT: u8 = 1;
pub const MISSING: u8 = 2;

impl Stream {
    pub fn new() -> Self {
        Stream::default()
    }

    pub fn process(mut self, pid: u32, command: &str) -> Self {
        writeln!(self.body, "P {pid} 0 {} {command}", command.len()).unwrap();
        self
    }

    fn event(mut self, at: At, what: &str, name: &[u8], flag: u8) -> Self {
        let At { ts, pid, tid, depth } = at;
        let seq = self.seq.entry((pid, tid)).or_default();
        write!(self.body, "E {ts} {pid} {tid} {seq} {depth} {what} {flag} {} ", name.len()).unwrap();
        *seq += 1;
        self.body.extend_from_slice(name);
        self.body.push(b'\n');
        self
    }

    pub fn start(self, ts: u64, pid: u32, tid: u32, depth: u32, name: &str) -> Self {
        self.event(At { ts, pid, tid, depth }, "start -", name.as_bytes(), FULL)
    }

    pub fn done(self, ts: u64, pid: u32, tid: u32, depth: u32, name: &str, found: bool) -> Self {
        let what = if found { "done 1" } else { "done 0" };
        self.event(At { ts, pid, tid, depth }, what, name.as_bytes(), FULL)
    }

    /// A start or done (`found`: `None` for a start) with a name flag.
    pub fn flagged(self, at: At, name: &str, found: Option<bool>, flag: u8) -> Self {
        let what = match found {
            None => "start -",
            Some(true) => "done 1",
            Some(false) => "done 0",
        };
        self.event(at, what, name.as_bytes(), flag)
    }

    /// A whole import on one thread: start at `ts`, done `dur_ns` later.
    pub fn import(self, ts: u64, pid: u32, depth: u32, name: &str, dur_ns: u64, found: bool) -> Self {
        self.start(ts, pid, pid, depth, name).done(ts + dur_ns, pid, pid, depth, name, found)
    }

    pub fn lost(mut self, n: u64) -> Self {
        writeln!(self.body, "Lost {n} events").unwrap();
        self
    }

    pub fn bytes(&self) -> Vec<u8> {
        let mut out = b"# importprobe-events v2\n".to_vec();
        out.extend_from_slice(&self.body);
        out.extend_from_slice(b"# end\n");
        out
    }

    pub fn write(&self, dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, self.bytes()).unwrap();
        path
    }
}

/// Every hard case in one recording: hostile names (a newline, a tab, text
/// that looks like an event), a cut and a missing name, a failure, an
/// unfinished import, one begun before the trace, two processes, two
/// threads in one of them, and 2 lost events.
pub fn hostile() -> Stream {
    Stream::new()
        .process(10, "python3 app.py")
        .process(20, "python3 -c child")
        .start(1_000, 10, 10, 0, "evil\nname")
        .start(1_100, 10, 10, 1, "E 5 10 10 9 0 start - 0 1 x")
        .done(1_900, 10, 10, 1, "E 5 10 10 9 0 start - 0 1 x", true)
        .done(2_500, 10, 10, 0, "evil\nname", true)
        .done(2_600, 10, 11, 0, "begun", true)
        .start(2_700, 10, 11, 0, "tab\tname")
        .done(3_700, 10, 11, 0, "tab\tname", true)
        .flagged(at(4_000, 10, 10, 0), "averyveryverylongname", None, CUT)
        .flagged(at(5_000, 10, 10, 0), "averyveryverylongname", Some(true), CUT)
        .flagged(at(6_000, 10, 10, 0), "", None, MISSING)
        .flagged(at(6_500, 10, 10, 0), "", Some(false), MISSING)
        .start(7_000, 20, 20, 0, "unfinished")
        .start(7_500, 20, 20, 1, "inner")
        .done(9_000, 20, 20, 1, "inner", true)
        .lost(2)
}

/// The binary under test.
pub fn importprobe() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_importprobe"));
    c.env_remove("CLICOLOR_FORCE").env_remove("NO_COLOR").env_remove("RUST_LOG");
    c
}

/// Runs importprobe with arguments, no stdin.
pub fn run(args: &[&str]) -> Output {
    importprobe().args(args).stdin(Stdio::null()).output().unwrap()
}

/// Runs importprobe with `input` on stdin.
pub fn run_stdin(args: &[&str], input: &[u8]) -> Output {
    let mut child =
        importprobe().args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).expect("reports are UTF-8")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
