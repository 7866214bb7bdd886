//! Helpers for `tests/trace_cli.rs`: the binary under test, scratch
//! directories, and the import-tree script's lines next to the ground
//! truth's. The skip-or-require rule comes from `tests/common`.
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

/// Whether bpftrace can trace here (the shared rule of tests/common: SKIP
/// with the reason, or FAIL under IMPORTPROBE_REQUIRE_TRACING=1).
pub fn tracing() -> bool {
    crate::common::can_trace()
}

/// Whether Debian's python3.11 (with probes) is there, and tracing works.
pub fn tracing_python() -> bool {
    tracing() && (Path::new(PYTHON).is_file() || crate::common::skip(&format!("{PYTHON} is not installed")))
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
