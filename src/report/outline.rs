//! The `tree` format: imports in the order they started, indented by
//! nesting, with cumulative and self time, failures marked. One block per
//! thread when there are several.
//!
//! ```text
//!   cum [us]  self [us]  module
//!         11          5  a.b
//!          3          3    a
//!          4          4    json
//!          1          1  nope  [failed]
//! ```

use super::tree::ImportTree;
use std::collections::BTreeSet;
use std::fmt::Write;

/// The column header.
pub const HEADER: &str = "  cum [us]  self [us]  module\n";

/// Renders the outline (empty without imports).
pub fn render(tree: &ImportTree) -> String {
    if tree.imports.is_empty() {
        return String::new();
    }
    let threads: BTreeSet<(u32, u32)> = tree.imports.iter().map(|i| (i.pid, i.tid)).collect();
    let mut out = String::from(HEADER);
    let mut stack: Vec<usize> = Vec::new();
    for &(pid, tid) in &threads {
        if threads.len() > 1 {
            let _ = writeln!(out, "thread {tid} (pid {pid}):");
        }
        stack.extend(tree.roots.iter().rev().filter(|&&r| (tree.imports[r].pid, tree.imports[r].tid) == (pid, tid)));
        while let Some(id) = stack.pop() {
            let imp = &tree.imports[id];
            let us = |ns: Option<u64>| ns.map_or("-".to_owned(), |n| n.div_ceil(1000).to_string());
            let mark = match imp.found {
                Some(true) => "",
                Some(false) => "  [failed]",
                None => "  [unfinished]",
            };
            let _ = writeln!(
                out,
                "{:>10} {:>10}  {:indent$}{}{}{mark}",
                us(imp.cumulative_ns()),
                us(tree.self_ns(id)),
                "",
                imp.module.escape_debug(),
                if imp.truncated { "..." } else { "" },
                indent = imp.depth as usize * 2
            );
            stack.extend(imp.children.iter().rev());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tree::tests::{package_and_failure, s, two_threads};

    #[test]
    fn indents_by_nesting_in_start_order() {
        let text = render(&ImportTree::build(&package_and_failure()));
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
        let text = render(&ImportTree::build(&two_threads()));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[1], "thread 1 (pid 1):");
        assert!(lines[3].ends_with("    x.sub"), "{text}");
        assert_eq!(lines[4], "thread 2 (pid 1):");
        assert!(lines[5].ends_with("  y  [failed]"), "{text}");
        let open = render(&ImportTree::build(&[s(5, 1, 0, "new\nline")]));
        assert!(open.ends_with("         -          -  new\\nline  [unfinished]\n"), "{open}");
    }
}
