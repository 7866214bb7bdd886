//! CPython's `-X importtime` format, byte for byte.
//!
//! ```text
//! import time: self [us] | cumulative | imported package
//! import time:       105 |        105 |   _io
//! ```
//!
//! (`Python/import.c`: `"import time: %9ld | %10ld | %*s%s\n"` with an
//! indent of two spaces per nesting level; children come before parents.)

/// The header CPython prints before the first line.
pub const HEADER: &str = "import time: self [us] | cumulative | imported package\n";

use super::tree::ImportTree;

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
}
