//! Whether a test may trace: root, bpftrace and tracefs. Without them the
//! test prints why and skips, unless IMPORTPROBE_REQUIRE_TRACING=1 (CI),
//! where it fails.

use std::path::Path;
use std::process::Command;

/// Why this host cannot trace, if it cannot.
pub fn obstacle() -> Option<&'static str> {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        Some("not root")
    } else if Command::new("bpftrace").arg("--version").output().is_err() {
        Some("bpftrace is not installed (apt-get install -y bpftrace)")
    } else if !Path::new("/sys/kernel/tracing/uprobe_events").exists()
        && !Path::new("/sys/kernel/debug/tracing/uprobe_events").exists()
    {
        Some("tracefs is not mounted (mount -t tracefs nodev /sys/kernel/tracing)")
    } else {
        None
    }
}

/// True when the test may trace; prints SKIP otherwise, panics instead
/// when CI requires tracing.
pub fn can_trace(test: &str) -> bool {
    match obstacle() {
        None => true,
        Some(r) if std::env::var("IMPORTPROBE_REQUIRE_TRACING").as_deref() == Ok("1") => {
            panic!("{test}: tracing required (IMPORTPROBE_REQUIRE_TRACING=1) but impossible: {r}")
        }
        Some(r) => {
            eprintln!("SKIP {test}: {r}");
            false
        }
    }
}
