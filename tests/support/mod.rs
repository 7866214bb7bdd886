//! Helpers for the tracing integration tests: the binary under test, and
//! the skip-or-require rule (tests that need root + bpftrace SKIP with the
//! reason, unless IMPORTPROBE_REQUIRE_TRACING=1 makes them FAIL).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Output;

/// Debian's CPython 3.11, built with the probes.
pub const PYTHON: &str = "/usr/bin/python3.11";

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_importprobe"))
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn required() -> bool {
    std::env::var("IMPORTPROBE_REQUIRE_TRACING").is_ok_and(|v| v == "1")
}

/// `true` when the test may go on; otherwise prints why it skips, or panics
/// when tracing is required.
pub fn need(ok: bool, reason: &str) -> bool {
    if ok {
        return true;
    }
    assert!(!required(), "IMPORTPROBE_REQUIRE_TRACING=1 but {reason}");
    eprintln!("SKIP: {reason}");
    false
}

/// Whether bpftrace can trace here (root, bpftrace, tracefs).
pub fn tracing() -> bool {
    let problems = importprobe::tracer::check_environment();
    let reason = problems.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("; ");
    need(problems.is_empty(), &format!("tracing is impossible here: {reason}"))
}

/// Whether Debian's python3.11 (with probes) is there, and tracing works.
pub fn tracing_python() -> bool {
    tracing() && need(Path::new(PYTHON).is_file(), &format!("{PYTHON} is not installed"))
}

/// A fresh scratch directory, removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let dir = std::env::temp_dir().join(format!("importprobe-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One line of the import-tree script: (tid, depth, found, module).
pub type TreeLine = (u32, u32, bool, String);

/// Parses import-tree's lines `TID SELF | CUM | DEP F C | <indent>MODULE`
/// (the header and anything else are skipped).
pub fn tree_lines(text: &str) -> Vec<TreeLine> {
    text.lines()
        .filter_map(|line| {
            let mut cols = line.splitn(4, " | ");
            let tid = cols.next()?.split_whitespace().next()?.parse().ok()?;
            let _cum = cols.next()?;
            let mut dfc = cols.next()?.split_whitespace();
            let depth: u32 = dfc.next()?.parse().ok()?;
            let found = dfc.next()? == "1";
            let module = cols.next()?;
            let module = module.strip_prefix(&" ".repeat(2 * depth as usize))?.to_owned();
            Some((tid, depth, found, module))
        })
        .collect()
}

/// The same facts from a ground-truth file, in the order imports finished.
pub fn truth_lines(path: &Path) -> Vec<TreeLine> {
    let events = importprobe::events::truth::read(path).unwrap();
    let tree = importprobe::report::tree::ImportTree::build(&events);
    assert!(tree.anomalies.is_empty(), "{:?}", tree.anomalies);
    tree.in_done_order()
        .into_iter()
        .map(|id| {
            let i = &tree.imports[id];
            (i.tid, i.depth, i.found == Some(true), i.module.clone())
        })
        .collect()
}
