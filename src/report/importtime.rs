//! CPython's `-X importtime` format, byte for byte, written and read back.
//!
//! ```text
//! import time: self [us] | cumulative | imported package
//! import time:       105 |        105 |   _io
//! ```
//!
//! (`Python/import.c`: `"import time: %9ld | %10ld | %*s%s\n"` with an
//! indent of two spaces per nesting level; children come before parents.)

use super::tree::ImportTree;

/// The header CPython prints before the first line.
pub const HEADER: &str = "import time: self [us] | cumulative | imported package\n";

/// The whole `-X importtime` output of a trace: one line per finished
/// import, in the order the imports finished (children before parents),
/// times rounded up to microseconds as CPython does. Empty without imports.
pub fn render(tree: &ImportTree) -> String {
    let mut out = String::new();
    for id in tree.in_done_order() {
        if out.is_empty() {
            out.push_str(HEADER);
        }
        let cum = tree.imports[id].cumulative_ns().expect("done order has complete imports");
        let own = tree.self_ns(id).expect("complete");
        out.push_str(&line(
            own.div_ceil(1000),
            cum.div_ceil(1000),
            tree.imports[id].depth as usize,
            &tree.imports[id].module,
        ));
    }
    out
}

/// One line: `self_us` and `cum_us` already rounded up to microseconds.
pub fn line(self_us: u64, cum_us: u64, level: usize, module: &str) -> String {
    format!("import time: {self_us:>9} | {cum_us:>10} | {:indent$}{module}\n", "", indent = level * 2)
}

// Reading the lines back (to compare a traced run with CPython's own).

/// One `-X importtime` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportTimeLine {
    pub self_us: u64,
    pub cumulative_us: u64,
    /// Nesting level (indent / 2) = the pair's depth.
    pub level: u32,
    pub module: String,
}

const PREFIX: &str = "import time:";

/// Parses one line; `None` for the header and for any other text.
pub fn parse_line(line: &str) -> Option<ImportTimeLine> {
    let rest = line.strip_prefix(PREFIX)?;
    let mut fields = rest.splitn(3, '|');
    let self_us = fields.next()?.trim().parse().ok()?;
    let cumulative_us = fields.next()?.trim().parse().ok()?;
    // "| " then 2 spaces per level, then the name.
    let name_part = fields.next()?.strip_prefix(' ')?;
    let indent = name_part.len() - name_part.trim_start_matches(' ').len();
    let module = &name_part[indent..];
    if module.is_empty() || indent % 2 != 0 {
        return None;
    }
    Some(ImportTimeLine { self_us, cumulative_us, level: (indent / 2) as u32, module: module.to_owned() })
}

/// Every importtime line in a text (e.g. a program's stderr).
pub fn parse_all<'a>(lines: impl IntoIterator<Item = &'a str>) -> Vec<ImportTimeLine> {
    lines.into_iter().filter_map(parse_line).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_cpython_byte_for_byte() {
        // The layout of `python3.11 -X importtime` lines (values chosen here).
        assert_eq!(line(105, 105, 1, "_io"), "import time:       105 |        105 |   _io\n");
        assert_eq!(line(1234, 12345, 0, "json"), "import time:      1234 |      12345 | json\n");
        assert_eq!(line(7, 7, 3, "_json"), "import time:         7 |          7 |       _json\n");
    }

    #[test]
    fn renders_children_first_with_self_time_and_failures() {
        let tree = ImportTree::build(&crate::report::tree::tests::package_and_failure());
        assert_eq!(
            render(&tree),
            format!(
                "{HEADER}{}{}{}{}",
                "import time:         3 |          3 |   a\n",
                "import time:         4 |          4 |   json\n",
                "import time:         5 |         11 | a.b\n",
                "import time:         1 |          1 | nope\n",
            )
        );
    }

    #[test]
    fn interleaved_threads_keep_their_own_levels() {
        let tree = ImportTree::build(&crate::report::tree::tests::two_threads());
        let text = render(&tree);
        let modules: Vec<&str> = text.lines().skip(1).map(|l| l.rsplit('|').next().unwrap()).collect();
        assert_eq!(modules, ["   x.sub", "   y.sub", " y", " x"]);
        assert_eq!(render(&ImportTree::default()), "");
    }

    #[test]
    fn parses_cpythons_lines() {
        let text = "\
import time: self [us] | cumulative | imported package
import time:       235 |        235 |   _io
import time:       503 |       1256 | _frozen_importlib_external
import time:       105 |        105 |     _codecs
something else";
        let lines = parse_all(text.lines());
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0], ImportTimeLine { self_us: 235, cumulative_us: 235, level: 1, module: "_io".into() });
        assert_eq!((lines[1].level, lines[1].cumulative_us), (0, 1256));
        assert_eq!((lines[2].level, lines[2].module.as_str()), (2, "_codecs"));
    }

    #[test]
    fn round_trips_the_simulators_format() {
        let line = crate::report::importtime::line(12, 345, 3, "a.b");
        let parsed = parse_line(line.trim_end()).unwrap();
        assert_eq!(parsed, ImportTimeLine { self_us: 12, cumulative_us: 345, level: 3, module: "a.b".into() });
    }
}
