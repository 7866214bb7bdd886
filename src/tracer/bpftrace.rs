//! Which bpftrace this is, and every convention that differs between its
//! releases, in one place: the environment variables for the string limit
//! and map sizes, where its attach line goes, and the notices it prints that
//! are about the host, not the script.
//!
//! | release | string limit | map size | attach line |
//! |---|---|---|---|
//! | 0.17 (Debian 12) | `BPFTRACE_STRLEN` (200 at most) | `BPFTRACE_MAP_KEYS_MAX` | `Attaching N probes...` on stdout |
//! | 0.20-0.23 (Debian 13: 0.23) | `BPFTRACE_MAX_STRLEN` (the old name is deprecated) | `BPFTRACE_MAX_MAP_KEYS` | same |
//! | 0.24+ (Debian sid: 0.27) | `BPFTRACE_MAX_STRLEN` | `BPFTRACE_MAX_MAP_KEYS` | `Attached N probes` on stderr |
//!
//! From 0.24 bpftrace raises USDT semaphores itself (the kernel's uprobe
//! reference counter), also with `-c`; before, only `-p PID` and
//! `--usdt-file-activation` do.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A bpftrace release, `major.minor.patch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub u32, pub u32, pub u32);

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "v{}.{}.{}", self.0, self.1, self.2)
    }
}

impl Version {
    /// Parses `bpftrace --version` output (`bpftrace v0.17.0`, `v0.23.2`,
    /// `bpftrace v0.27.1-dirty`...).
    pub fn parse(text: &str) -> Option<Version> {
        let word =
            text.split_whitespace().find(|w| w.trim_start_matches('v').starts_with(|c: char| c.is_ascii_digit()))?;
        let mut nums = word.trim_start_matches('v').split(|c: char| !c.is_ascii_digit()).filter(|s| !s.is_empty());
        let major = nums.next()?.parse().ok()?;
        let minor = nums.next()?.parse().ok()?;
        let patch = nums.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        Some(Version(major, minor, patch))
    }
}

/// The string limit importprobe asks for: 0.17 accepts at most 200, and
/// longer module names are cut (and flagged) anyway.
pub const STRLEN: u32 = 200;

/// Output ring buffer pages per CPU (bpftrace's default is 64): streaming
/// scripts print on every import, and bursts of fast imports overflow a
/// small buffer ("Lost N events").
pub const PERF_RB_PAGES: u32 = 1024;

/// A bpftrace executable and its release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bpftrace {
    pub path: PathBuf,
    pub version: Version,
}

/// Why bpftrace cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LocateError {
    #[error("bpftrace is not installed (not found in PATH)")]
    Missing,
    #[error("{0} does not run (`bpftrace --version` failed: {1})")]
    Broken(String, String),
}

impl Bpftrace {
    /// The bpftrace in PATH.
    pub fn locate() -> Result<Bpftrace, LocateError> {
        let path = super::preflight::which(std::ffi::OsStr::new("bpftrace")).ok_or(LocateError::Missing)?;
        Bpftrace::at(&path)
    }

    /// The bpftrace at `path`, asking it for its version.
    pub fn at(path: &Path) -> Result<Bpftrace, LocateError> {
        let broken = |why: String| LocateError::Broken(path.display().to_string(), why);
        let out = Command::new(path).arg("--version").output().map_err(|e| broken(e.to_string()))?;
        let text = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            return Err(broken(out.status.to_string()));
        }
        let version = Version::parse(&text).ok_or_else(|| broken(format!("unexpected output {:?}", text.trim())))?;
        Ok(Bpftrace { path: path.to_path_buf(), version })
    }

    /// The variable that sets `str()`'s size.
    pub fn strlen_var(&self) -> &'static str {
        if self.version < Version(0, 20, 0) {
            "BPFTRACE_STRLEN"
        } else {
            "BPFTRACE_MAX_STRLEN"
        }
    }

    /// The variable that sets how many keys a map holds.
    pub fn map_keys_var(&self) -> &'static str {
        if self.version < Version(0, 20, 0) {
            "BPFTRACE_MAP_KEYS_MAX"
        } else {
            "BPFTRACE_MAX_MAP_KEYS"
        }
    }

    /// Whether it raises USDT semaphores in processes it starts or that
    /// appear later (through the kernel's uprobe reference counter).
    pub fn raises_semaphores_itself(&self) -> bool {
        self.version >= Version(0, 24, 0)
    }

    /// The environment importprobe runs it with: the string limit (`None`:
    /// [`STRLEN`], unless the user's environment already sets it), the ring
    /// buffer and, when given, the map size.
    pub fn env(&self, strlen: Option<u32>, max_map_keys: Option<usize>) -> Vec<(&'static str, String)> {
        let mut vars = vec![("BPFTRACE_PERF_RB_PAGES", PERF_RB_PAGES.to_string())];
        match strlen {
            Some(n) => vars.push((self.strlen_var(), n.to_string())),
            None if std::env::var_os(self.strlen_var()).is_none() => vars.push((self.strlen_var(), STRLEN.to_string())),
            None => {}
        }
        if let Some(keys) = max_map_keys {
            vars.push((self.map_keys_var(), keys.to_string()));
        }
        vars
    }

    /// A command running this bpftrace with [`Bpftrace::env`].
    pub fn command(&self, strlen: Option<u32>, max_map_keys: Option<usize>) -> Command {
        let mut cmd = Command::new(&self.path);
        cmd.envs(self.env(strlen, max_map_keys));
        cmd
    }
}

/// bpftrace's line saying its probes are in (stdout before 0.24, stderr from 0.24).
pub fn is_attach_line(line: &[u8]) -> bool {
    crate::events::cursor::is_attach_line(line.strip_suffix(b"\n").unwrap_or(line))
}

/// stderr lines that are notices about the host, not news about the
/// script: the RLIMIT_MEMLOCK complaint (the kernel accounts BPF memory by
/// cgroup, and loading works), 0.27's unreadable `available_filter_functions`
/// (this kernel refuses it even to root; only kernel probes need it), and
/// the attach line.
pub fn is_host_notice(line: &str) -> bool {
    line.contains("couldn't set RLIMIT_MEMLOCK")
        || line.contains("available_filter_functions")
        || is_attach_line(line.trim_end().as_bytes())
}

/// bpftrace 0.24+'s warning for one update a full map dropped (0.17-0.23
/// drop it silently).
pub fn is_map_full(line: &str) -> bool {
    line.contains("WARNING: Map full; can't update element")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_versions_of_every_release_line() {
        assert_eq!(Version::parse("bpftrace v0.17.0\n"), Some(Version(0, 17, 0)));
        assert_eq!(Version::parse("bpftrace v0.23.2"), Some(Version(0, 23, 2)));
        assert_eq!(Version::parse("bpftrace v0.27.1-dirty"), Some(Version(0, 27, 1)));
        assert_eq!(Version::parse("v0.24"), Some(Version(0, 24, 0)));
        assert_eq!(Version::parse("bpftrace"), None);
        assert!(Version(0, 9, 0) < Version(0, 17, 0));
    }

    #[test]
    fn conventions_follow_the_release() {
        let at = |v| Bpftrace { path: "bpftrace".into(), version: v };
        let old = at(Version(0, 17, 0));
        let new = at(Version(0, 23, 2));
        assert_eq!((old.strlen_var(), old.map_keys_var()), ("BPFTRACE_STRLEN", "BPFTRACE_MAP_KEYS_MAX"));
        assert_eq!((new.strlen_var(), new.map_keys_var()), ("BPFTRACE_MAX_STRLEN", "BPFTRACE_MAX_MAP_KEYS"));
        assert!(!new.raises_semaphores_itself() && at(Version(0, 24, 0)).raises_semaphores_itself());
        assert!(old.env(None, Some(10)).iter().any(|(v, n)| *v == "BPFTRACE_MAP_KEYS_MAX" && n == "10"));
        assert!(new.env(Some(64), None).iter().any(|(v, n)| *v == "BPFTRACE_MAX_STRLEN" && n == "64"));
    }

    #[test]
    fn host_notices_are_not_script_warnings() {
        assert!(is_host_notice("ERROR: Unknown error -1: couldn't set RLIMIT_MEMLOCK for bpftrace. If your program is not loading, you can try \"ulimit -l 8192\" to fix the problem"));
        assert!(is_host_notice("WARNING: Could not read functions from /sys/kernel/debug/tracing/available_filter_functions. If this is expected, use --traceable-functions to set this path manually."));
        assert!(is_host_notice("Attached 4 probes"));
        assert!(!is_host_notice("WARNING: While loops are deprecated and may be removed in the future."));
        assert!(!is_host_notice("ERROR: usdt probe not found"));
    }
}
