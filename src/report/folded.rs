//! Folded stacks for flame graphs (`flamegraph.pl`, inferno, speedscope):
//! one line per import stack, `outer;inner;module WEIGHT`, weighted by the
//! import's self time in microseconds (rounded up, as importtime does), so
//! a frame's width is its cumulative time.
//!
//! Stacks are per thread but not prefixed by it; identical stacks are
//! summed. `;` inside a module name would split the frame, so it becomes
//! `:`; control characters (newlines from odd `__import__` names) become `?`.

use super::tree::ImportTree;
use std::collections::BTreeMap;

/// Renders the folded stacks of all finished imports, sorted by stack.
pub fn render(tree: &ImportTree) -> String {
    let mut stacks: BTreeMap<String, u64> = BTreeMap::new();
    for id in tree.in_done_order() {
        let mut frames: Vec<String> = tree.parents(id).into_iter().map(frame).collect();
        frames.push(frame(&tree.imports[id].module));
        let weight = tree.self_ns(id).expect("complete").div_ceil(1000);
        *stacks.entry(frames.join(";")).or_default() += weight;
    }
    stacks.into_iter().map(|(stack, us)| format!("{stack} {us}\n")).collect()
}

/// A module name made safe as one frame.
pub fn frame(module: &str) -> String {
    module
        .chars()
        .map(|c| {
            if c == ';' {
                ':'
            } else if c.is_control() {
                '?'
            } else {
                c
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tree::tests::{d, package_and_failure, s, two_threads};

    #[test]
    fn weights_each_stack_by_self_time() {
        let tree = ImportTree::build(&package_and_failure());
        assert_eq!(render(&tree), "a.b 5\na.b;a 3\na.b;json 4\nnope 1\n");
    }

    #[test]
    fn threads_nest_separately_and_equal_stacks_add_up() {
        let mut evs = two_threads();
        // x imported again (after failing elsewhere) adds to the same stack.
        evs.extend([s(700, 1, 0, "x"), d(1_700, 1, 0, "x", true)]);
        let tree = ImportTree::build(&evs);
        assert_eq!(render(&tree), "x 2\nx;x.sub 1\ny 1\ny;y.sub 1\n");
    }

    #[test]
    fn odd_names_cannot_break_the_format() {
        assert_eq!(frame("a;b\nc d"), "a:b?c d");
        let tree = ImportTree::build(&[s(0, 1, 0, "new\nline"), d(10, 1, 0, "new\nline", true)]);
        assert_eq!(render(&tree), "new?line 1\n");
    }
}
