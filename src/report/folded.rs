//! Folded stacks for flame graphs (`flamegraph.pl`, inferno, speedscope's
//! import): one line per import stack, `outer;inner;module WEIGHT`,
//! weighted by the import's self time in microseconds (rounded up, as
//! importtime does), so a frame's width is its cumulative time.
//!
//! Stacks are per thread but not prefixed by it; identical stacks are
//! summed. `;` inside a module name would split the frame, so it becomes
//! `:`; control characters (newlines from odd `__import__` names) become
//! `?`; a cut name ends in `...`, a missing one is `<unencodable name>`.

use crate::events::forest::{Forest, ImportState};
use std::collections::BTreeMap;

/// Renders the folded stacks of every import with a time (unfinished ones
/// with their time so far), sorted by stack.
pub fn render(forest: &Forest) -> String {
    let mut stacks: BTreeMap<String, u64> = BTreeMap::new();
    for (id, imp) in forest.imports.iter().enumerate() {
        if imp.state == ImportState::Cached {
            continue;
        }
        let mut frames: Vec<String> = Vec::with_capacity(imp.depth as usize + 1);
        let mut cur = Some(id);
        while let Some(c) = cur {
            frames.push(frame(&forest.imports[c].display_name()));
            cur = forest.imports[c].parent;
        }
        frames.reverse();
        *stacks.entry(frames.join(";")).or_default() += forest.self_ns(id).div_ceil(1000);
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
    use crate::events::forest::tests::{d, forest, package_and_failure, s, two_threads};

    #[test]
    fn weights_each_stack_by_self_time() {
        assert_eq!(render(&forest(package_and_failure())), "a.b 5\na.b;a 3\na.b;json 4\nnope 1\n");
    }

    #[test]
    fn threads_nest_separately_and_equal_stacks_add_up() {
        let mut evs = two_threads();
        // x imported again (after failing elsewhere) adds to the same stack.
        evs.extend([s(700, 1, 0, "x"), d(1_700, 1, 0, "x", true)]);
        assert_eq!(render(&forest(evs)), "x 2\nx;x.sub 1\ny 1\ny;y.sub 1\n");
    }

    #[test]
    fn odd_names_cannot_break_the_format() {
        assert_eq!(frame("a;b\nc d"), "a:b?c d");
        // The display name escapes the newline first.
        let f = forest(vec![s(0, 1, 0, "new\nline"), d(10, 1, 0, "new\nline", true)]);
        assert_eq!(render(&f), "new\\nline 1\n");
    }
}
