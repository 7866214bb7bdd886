//! The `tree` format: imports in the order they started, indented by
//! nesting, with cumulative and self time, failures marked. One block per
//! thread (and process) when there are several.
//!
//! ```text
//!   cum [us]  self [us]  module
//!         11          5  a.b
//!          3          3    a
//!          4          4    json
//!          1          1  nope  [failed]
//! ```

use crate::events::forest::{Forest, ImportState};
use std::fmt::Write;

/// The column header.
pub const HEADER: &str = "  cum [us]  self [us]  module\n";

/// Renders the outline (empty without imports).
pub fn render(forest: &Forest) -> String {
    if forest.imports.is_empty() {
        return String::new();
    }
    let threads = forest.threads();
    let mut out = String::from(HEADER);
    for &(pid, tid) in &threads {
        if threads.len() > 1 {
            let _ = writeln!(out, "thread {tid} (pid {pid}):");
        }
        for id in forest.preorder(pid, tid) {
            let imp = &forest.imports[id];
            let mark = match (imp.state, imp.found) {
                (ImportState::Unfinished, _) => "  [unfinished]",
                (ImportState::Cached, _) => "  [cached]",
                (ImportState::BegunBeforeTrace, Some(false)) => "  [failed, begun before the trace]",
                (ImportState::BegunBeforeTrace, _) => "  [begun before the trace]",
                (_, Some(false)) => "  [failed]",
                _ => "",
            };
            let us = |ns: u64| ns.div_ceil(1000).to_string();
            let _ = writeln!(
                out,
                "{:>10} {:>10}  {:indent$}{}{mark}",
                us(forest.cumulative_ns(id)),
                us(forest.self_ns(id)),
                "",
                imp.display_name(),
                indent = imp.depth as usize * 2
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::forest::tests::{forest, package_and_failure, s, two_threads};

    #[test]
    fn indents_by_nesting_in_start_order() {
        let text = render(&forest(package_and_failure()));
        assert_eq!(
            text,
            format!(
                "{HEADER}{}{}{}{}",
                "        11          5  a.b\n",
                "         3          3    a\n",
                "         4          4    json\n",
                "         1          1  nope  [failed]\n"
            )
        );
    }

    #[test]
    fn one_block_per_thread_and_unfinished_marked() {
        let text = render(&forest(two_threads()));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[1], "thread 1 (pid 1):");
        assert!(lines[3].ends_with("    x.sub"), "{text}");
        assert_eq!(lines[4], "thread 2 (pid 1):");
        assert!(lines[5].ends_with("  y  [failed]"), "{text}");
        let open = render(&forest(vec![s(5, 1, 0, "new\nline")]));
        assert!(open.ends_with("         0          0  new\\nline  [unfinished]\n"), "{open}");
    }
}
