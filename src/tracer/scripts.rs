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
}

/// The script `importprobe trace` runs unless told otherwise.
pub const DEFAULT: &str = "import-tree";

/// Every bundled script, in `--list` order.
pub const BUNDLED: &[BundledScript] = &[
    BundledScript {
        name: "import-tree",
        summary: "the import tree per thread, like python -X importtime (children first, indented)",
        bpftrace: include_str!("../../scripts/import-tree.bt"),
        dtrace: include_str!("../../scripts/import-tree.d"),
    },
    BundledScript {
        name: "import-latency",
        summary: "every import with its cumulative and self time",
        bpftrace: include_str!("../../scripts/import-latency.bt"),
        dtrace: include_str!("../../scripts/import-latency.d"),
    },
    BundledScript {
        name: "import-slowest",
        summary: "the N slowest imports by cumulative and by self time (--param N, default 10)",
        bpftrace: include_str!("../../scripts/import-slowest.bt"),
        dtrace: include_str!("../../scripts/import-slowest.d"),
    },
    BundledScript {
        name: "import-failed",
        summary: "every failed import (not found, or its body raised) with the importers above it",
        bpftrace: include_str!("../../scripts/import-failed.bt"),
        dtrace: include_str!("../../scripts/import-failed.d"),
    },
    BundledScript {
        name: "import-hist",
        summary: "log2 histograms of import latency, found vs not found",
        bpftrace: include_str!("../../scripts/import-hist.bt"),
        dtrace: include_str!("../../scripts/import-hist.d"),
    },
    BundledScript {
        name: "import-folded",
        summary: "folded import stacks weighted by self time, for flame graphs",
        bpftrace: include_str!("../../scripts/import-folded.bt"),
        dtrace: include_str!("../../scripts/import-folded.d"),
    },
    BundledScript {
        name: "import-events",
        summary: "every probe firing as a raw event stream, the input of `importprobe report`",
        bpftrace: include_str!("../../scripts/import-events.bt"),
        dtrace: include_str!("../../scripts/import-events.d"),
    },
];

/// The bundled script called `name`.
pub fn find(name: &str) -> Option<&'static BundledScript> {
    BUNDLED.iter().find(|s| s.name == name)
}

/// The names, for error messages.
pub fn names() -> Vec<&'static str> {
    BUNDLED.iter().map(|s| s.name).collect()
}

/// The positional parameters of a bundled script: `$1` is the object that
/// carries the probes (empty = every object the traced process maps), the
/// script's own parameters follow as `$2`, `$3`, ...
pub fn positional_args(binary: Option<&Path>, params: &[String]) -> Vec<String> {
    let mut args = vec![binary.map(|b| b.display().to_string()).unwrap_or_default()];
    args.extend(params.iter().cloned());
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_script_is_complete_and_uses_the_object_parameter() {
        assert!(find(DEFAULT).is_some(), "the default script is bundled");
        assert!(BUNDLED.iter().all(|s| find(s.name) == Some(s)));
        for s in BUNDLED {
            assert!(!s.summary.is_empty() && !s.summary.contains('\n'), "{}", s.name);
            assert!(s.bpftrace.contains("usdt:$1:python:import__find__load__"), "{}", s.name);
            assert!(s.dtrace.contains("import-find-load-"), "{}", s.name);
        }
    }

    #[test]
    fn the_object_comes_first() {
        assert_eq!(positional_args(None, &["5".into()]), ["", "5"]);
        assert_eq!(positional_args(Some(Path::new("/lib/x.so")), &[]), ["/lib/x.so"]);
    }
}
