//! The bundled bpftrace/DTrace scripts, compiled into the binary so that
//! `importprobe trace` works from any directory.

/// One bundled script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BundledScript {
    pub name: &'static str,
    /// One line for `importprobe trace --list`.
    pub summary: &'static str,
    /// bpftrace source (`scripts/NAME.bt`).
    pub bpftrace: &'static str,
    /// DTrace source (`scripts/NAME.d`), for macOS/FreeBSD/illumos users.
    pub dtrace: &'static str,
}

/// The script `importprobe trace` runs unless told otherwise.
pub const DEFAULT: &str = "import-tree";

/// Every bundled script, in `--list` order.
pub const BUNDLED: &[BundledScript] = &[];

/// The bundled script called `name`.
pub fn find(name: &str) -> Option<&'static BundledScript> {
    BUNDLED.iter().find(|s| s.name == name)
}

/// The names, for error messages.
pub fn names() -> Vec<&'static str> {
    BUNDLED.iter().map(|s| s.name).collect()
}
