//! The bundled bpftrace/DTrace scripts, compiled into the binary so that
//! `importprobe trace` works from any directory.

use std::path::Path;

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
    /// The script's own parameters (`$2`, ...) when none are given: bpftrace
    /// 0.27 warns about a positional parameter left out, even a guarded one.
    pub defaults: &'static [&'static str],
}

/// The collector `importprobe trace` runs unless given `--script`: every
/// event in kernel maps, printed at END, read by [`crate::events::capture`].
pub const COLLECTOR: &str = "import-capture";

/// A script of `scripts/`: its bpftrace source and DTrace twin, by name.
macro_rules! bundled {
    ($name:literal, $summary:literal $(, $default:literal)*) => {
        BundledScript {
            name: $name,
            summary: $summary,
            bpftrace: include_str!(concat!("../../scripts/", $name, ".bt")),
            dtrace: include_str!(concat!("../../scripts/", $name, ".d")),
            defaults: &[$($default),*],
        }
    };
}

/// Every bundled script, in `--list` order.
pub const BUNDLED: &[BundledScript] = &[
    bundled!("import-tree", "the import tree per thread, like python -X importtime (children first, indented)"),
    bundled!("import-latency", "every import with its cumulative and self time"),
    bundled!("import-slowest", "the N slowest imports by cumulative and by self time (--param N, default 10)", "10"),
    bundled!("import-failed", "every failed import (not found, or its body raised) with the importers above it"),
    bundled!("import-hist", "log2 histograms of import latency, found vs not found"),
    bundled!("import-folded", "folded import stacks weighted by self time, for flame graphs"),
    bundled!("import-events", "every probe firing as a raw event stream, the input of `importprobe report`"),
    bundled!(
        "import-capture",
        "every probe firing kept in kernel maps, printed at the end (what `importprobe trace` collects)"
    ),
];

/// The bundled script called `name`.
pub fn find(name: &str) -> Option<&'static BundledScript> {
    BUNDLED.iter().find(|s| s.name == name)
}

/// The names, for error messages.
pub fn names() -> Vec<&'static str> {
    BUNDLED.iter().map(|s| s.name).collect()
}

impl BundledScript {
    /// Its positional parameters: `$1` is the object that carries the
    /// probes (empty = every object the traced process maps), the script's
    /// own parameters follow as `$2`, `$3`, ... (its defaults when none are
    /// given).
    pub fn positional_args(&self, binary: Option<&Path>, params: &[String]) -> Vec<String> {
        let mut args = vec![binary.map(|b| b.display().to_string()).unwrap_or_default()];
        if params.is_empty() {
            args.extend(self.defaults.iter().map(|d| d.to_string()));
        } else {
            args.extend(params.iter().cloned());
        }
        args
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_script_is_complete_and_uses_the_object_parameter() {
        assert!(find(COLLECTOR).is_some(), "the collector is bundled");
        assert!(BUNDLED.iter().all(|s| find(s.name) == Some(s)));
        for s in BUNDLED {
            assert!(!s.summary.is_empty() && !s.summary.contains('\n'), "{}", s.name);
            assert!(s.bpftrace.contains("usdt:$1:python:import__find__load__"), "{}", s.name);
            assert!(s.dtrace.contains("import-find-load-"), "{}", s.name);
        }
    }

    #[test]
    fn the_object_comes_first_then_the_parameters_or_their_defaults() {
        let slowest = find("import-slowest").unwrap();
        assert_eq!(slowest.positional_args(None, &["5".into()]), ["", "5"]);
        assert_eq!(slowest.positional_args(None, &[]), ["", "10"]);
        let tree = find("import-tree").unwrap();
        assert_eq!(tree.positional_args(Some(Path::new("/lib/x.so")), &[]), ["/lib/x.so"]);
    }
}
