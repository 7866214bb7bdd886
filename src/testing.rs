//! The rule every test that traces follows, unit and integration tests
//! alike: when the host cannot trace, say why on stderr (`SKIP: reason`)
//! and do nothing; but when `IMPORTPROBE_REQUIRE_TRACING=1` (CI sets it),
//! a skip is a failure. "Cannot trace" is decided by the same preflight
//! checks `importprobe trace` runs.

/// The environment variable that turns a skip into a failure.
pub const REQUIRE_TRACING: &str = "IMPORTPROBE_REQUIRE_TRACING";

/// Why tracing is impossible here (`importprobe trace`'s preflight), if it is.
pub fn tracing_blocker() -> Option<String> {
    let problems = crate::tracer::preflight::check_environment();
    (!problems.is_empty()).then(|| problems.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("; "))
}

/// True if the test may trace; otherwise [`skip`]s.
pub fn can_trace() -> bool {
    match tracing_blocker() {
        None => true,
        Some(reason) => skip(&reason),
    }
}

/// Prints `SKIP: reason` and returns false, or panics when tracing is
/// required. Written to stderr directly, not with `eprintln!`, so the test
/// harness does not capture it: a skip must be visible.
pub fn skip(reason: &str) -> bool {
    if std::env::var(REQUIRE_TRACING).as_deref() == Ok("1") {
        panic!("tracing required ({REQUIRE_TRACING}=1) but impossible: {reason}");
    }
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIP: {reason}");
    false
}

/// Debian 12's CPython 3.11, built with the probes.
pub const DEFAULT_PYTHON: &str = "/usr/bin/python3.11";

/// The CPython with probes the tracing tests run: `IMPORTPROBE_PYTHON`
/// (the compatibility matrix sets python3.13 / python3.14 in its chroots),
/// else [`DEFAULT_PYTHON`].
pub fn python() -> std::path::PathBuf {
    std::env::var_os("IMPORTPROBE_PYTHON")
        .filter(|p| !p.is_empty())
        .map_or_else(|| std::path::PathBuf::from(DEFAULT_PYTHON), std::path::PathBuf::from)
}

/// [`python`] started idle (reading stdin), once its import probes are
/// mapped; ended when dropped.
pub struct IdlePython {
    pub path: std::path::PathBuf,
    pub child: std::process::Child,
    pub probes: Vec<crate::tracer::process::ProbeInProcess>,
}

impl IdlePython {
    /// Starts it, or [`skip`]s (None) where there is no such interpreter.
    pub fn start() -> Option<IdlePython> {
        use crate::tracer::process::{import_probes_in, IMPORT_PROBES};
        use std::time::{Duration, Instant};
        let path = python();
        if !path.exists() {
            skip(&format!("{} is not installed (set IMPORTPROBE_PYTHON to a CPython with probes)", path.display()));
            return None;
        }
        let child = std::process::Command::new(&path)
            .args(["-S", "-c", "import sys; sys.stdin.read()"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        // The probes show once exec is done and the interpreter is mapped.
        let deadline = Instant::now() + Duration::from_secs(10);
        let probes = loop {
            let p = import_probes_in(child.id(), &IMPORT_PROBES).unwrap();
            if p.len() == IMPORT_PROBES.len() || Instant::now() > deadline {
                break p;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        Some(IdlePython { path, child, probes })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for IdlePython {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}
