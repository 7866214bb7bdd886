//! Folded stacks for flame graphs (`flamegraph.pl`, inferno, speedscope's
//! import): one line per import stack, `outer;inner;module WEIGHT`,
//! weighted by the import's self time in microseconds (rounded up, as
//! importtime does), so a frame's width is its cumulative time. Identical
//! stacks are summed; lines are sorted.
//!
//! Frames are names as [`super::names`] writes them (no `;`, no control
//! character can split a frame or a line), with a mark for imports that
//! failed, never finished or began before the trace. With several threads,
//! each stack starts with its thread's frame (`thread 4321 (main)`; with
//! several processes `pid 4321 thread 4321 (main)`). Cached lines have no
//! time and no stack.

use super::names::shown;
use crate::events::forest::{Forest, Import, ImportId, ImportState};
use std::collections::BTreeMap;

/// The short mark a frame carries (empty for a complete, found import).
pub fn frame_mark(imp: &Import) -> &'static str {
    match (imp.state, imp.found) {
        (ImportState::Unfinished, _) => " [unfinished]",
        (ImportState::BegunBeforeTrace, _) => " [begun before the trace]",
        (_, Some(false)) => " [failed]",
        _ => "",
    }
}

/// An import's frame.
pub fn frame(imp: &Import) -> String {
    format!("{}{}", shown(&imp.module, imp.name), frame_mark(imp))
}

/// Every timed import's stack (root frame first, the import's own frame
/// last), thread by thread in pre-order, with the import. A thread's frame
/// leads when `thread_frames`.
pub fn stacks(forest: &Forest, thread_frames: bool, mut each: impl FnMut(&[String], ImportId)) {
    let mut path: Vec<String> = Vec::new();
    for (pid, tid) in forest.threads() {
        path.clear();
        if thread_frames {
            path.push(super::threads::frame(forest, pid, tid));
        }
        let base = path.len();
        for id in forest.preorder(pid, tid) {
            let imp = &forest.imports[id];
            path.truncate(base + imp.depth as usize);
            path.push(frame(imp));
            if imp.state != ImportState::Cached {
                each(&path, id);
            }
        }
    }
}

/// Renders the folded stacks.
pub fn render(forest: &Forest) -> String {
    let mut lines: BTreeMap<String, u64> = BTreeMap::new();
    stacks(forest, super::threads::several(forest), |path, id| {
        *lines.entry(path.join(";")).or_default() += forest.self_ns(id).div_ceil(1000);
    });
    let mut out = String::with_capacity(lines.len() * 32);
    for (stack, us) in lines {
        out.push_str(&stack);
        out.push(' ');
        out.push_str(&us.to_string());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::forest::tests::{d, forest, package_and_failure, s, two_threads};

    #[test]
    fn weights_each_stack_by_self_time() {
        assert_eq!(render(&forest(package_and_failure())), "a.b 5\na.b;a 3\na.b;json 4\nnope [failed] 1\n");
    }

    #[test]
    fn threads_lead_their_stacks_and_equal_stacks_add_up() {
        let mut evs = two_threads();
        evs.extend([s(700, 1, 0, "x"), d(1_700, 1, 0, "x", true)]);
        assert_eq!(
            render(&forest(evs)),
            "thread 1 (main);x 2\nthread 1 (main);x;x.sub 1\nthread 2;y [failed] 1\nthread 2;y [failed];y.sub [failed] 1\n"
        );
    }

    #[test]
    fn odd_names_cannot_break_the_format() {
        let f = forest(vec![s(0, 1, 0, "new\nline;x"), d(10, 1, 0, "new\nline;x", true), s(20, 1, 0, "open")]);
        assert_eq!(render(&f), "\"new\\nline\\u{3b}x\" 1\nopen [unfinished] 0\n");
    }
}
