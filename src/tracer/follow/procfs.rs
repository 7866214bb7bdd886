//! What the follower reads about a task in `/proc`: its ids, tracer,
//! threads, children, executable and arguments.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

/// `Tgid` and `PPid` from `/proc/TID/status`.
pub(super) fn ids_of(tid: u32) -> Option<(u32, u32)> {
    let status = std::fs::read_to_string(format!("/proc/{tid}/status")).ok()?;
    Some((status_field(&status, "Tgid")?, status_field(&status, "PPid")?))
}

/// Whether task `tid` still exists (a zombie does).
pub(super) fn exists(tid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{tid}")).exists()
}

/// `TracerPid` from `/proc/TID/status` (0: not traced).
pub(super) fn tracer_of(tid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{tid}/status")).ok()?;
    status_field(&status, "TracerPid")
}

fn status_field(status: &str, name: &str) -> Option<u32> {
    status.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(':')?.trim().parse().ok())
}

/// The thread ids of process `pid`.
pub(super) fn threads_of(pid: u32) -> std::io::Result<Vec<u32>> {
    let mut tids: Vec<u32> = std::fs::read_dir(format!("/proc/{pid}/task"))?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    tids.sort_unstable();
    Ok(tids)
}

/// The children of every thread of process `pid`
/// (`/proc/PID/task/TID/children`).
pub(super) fn children_of(pid: u32) -> Vec<u32> {
    let mut children = Vec::new();
    for tid in threads_of(pid).unwrap_or_default() {
        if let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/children")) {
            children.extend(text.split_whitespace().filter_map(|c| c.parse::<u32>().ok()));
        }
    }
    children
}

/// The executable of a process (empty if it cannot be read).
pub(super) fn exe_of(pid: u32) -> PathBuf {
    std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default()
}

/// The argument vector of a process (empty if it cannot be read).
pub(super) fn argv_of(pid: u32) -> Vec<OsString> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    match raw.strip_suffix(b"\0") {
        Some(args) => args.split(|&b| b == 0).map(|a| OsString::from_vec(a.to_vec())).collect(),
        None if raw.is_empty() => Vec::new(),
        None => vec![OsString::from_vec(raw)], // rewritten by the program itself
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_status_fields() {
        let status = "Name:\tpython3.11\nTgid:\t4242\nPPid:\t1\nTracerPid:\t0\n";
        assert_eq!(status_field(status, "Tgid"), Some(4242));
        assert_eq!(status_field(status, "TracerPid"), Some(0));
        assert_eq!(status_field(status, "Pid"), None);
        assert_eq!(ids_of(std::process::id()).map(|(tgid, _)| tgid), Some(std::process::id()));
        assert!(threads_of(std::process::id()).unwrap().contains(&std::process::id()));
        assert!(!argv_of(std::process::id()).is_empty());
    }
}
