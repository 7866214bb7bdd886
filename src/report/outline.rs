//! The `tree` format: the summary ([`super::summary`]), then every import
//! in the order it started, indented by nesting, with cumulative and self
//! microseconds (rounded up, as `-X importtime` does); one block per thread,
//! grouped by process, when there are several. Failed, unfinished (time so
//! far), begun-before-trace (a lower bound) and cached imports are marked.
//!
//! ```text
//!   cum [us]  self [us]  module
//!         11          5  a.b
//!          3          3    a
//!          4          4    json
//!          1          1  nope [failed]
//! ```

use super::colour::Paint;
use super::names::shown;
use crate::analysis::summary::Summary;
use crate::events::forest::{Forest, Import, ImportState};
use std::fmt::Write;

/// The column header.
pub const HEADER: &str = "  cum [us]  self [us]  module\n";

/// The mark after an import's name (empty for a complete, found import).
pub fn mark(imp: &Import) -> &'static str {
    match (imp.state, imp.found) {
        (ImportState::Unfinished, _) => " [unfinished: time so far]",
        (ImportState::Cached, _) => " [cached]",
        (ImportState::BegunBeforeTrace, Some(false)) => " [failed; begun before the trace: time is a lower bound]",
        (ImportState::BegunBeforeTrace, _) => " [begun before the trace: time is a lower bound]",
        (_, Some(false)) => " [failed]",
        _ => "",
    }
}

/// Renders the summary and the tree.
pub fn render(forest: &Forest, colour: bool) -> String {
    let paint = Paint(colour);
    let summary = Summary::of(forest, super::summary::SHOWN);
    let trouble = super::summary::Trouble::of(forest, &summary);
    let mut out = super::summary::render(forest, &summary, &trouble, true, paint);
    if forest.imports.is_empty() {
        out.push_str(&super::summary::rest(&trouble, paint));
        return out;
    }
    out.push('\n');
    out.push_str(&paint.bold(HEADER.trim_end()));
    out.push('\n');
    body(forest, paint, &mut out);
    out.push_str(&super::summary::rest(&trouble, paint));
    out
}

/// The tree without the summary.
pub fn body(forest: &Forest, paint: Paint, out: &mut String) {
    let several = super::threads::several(forest);
    let processes = forest.processes.len() > 1;
    let us = |ns: u64| ns.div_ceil(1000).to_string();
    for p in &forest.processes {
        if processes {
            let _ = writeln!(out, "{}", paint.bold(&super::threads::process(forest, p.info.pid)));
        }
        for &tid in &p.threads {
            if several {
                let indent = if processes { "  " } else { "" };
                let _ = writeln!(out, "{indent}{}:", paint.bold(&super::threads::thread(p.info.pid, tid)));
            }
            for id in forest.preorder(p.info.pid, tid) {
                let imp = &forest.imports[id];
                let name = shown(&imp.module, imp.name);
                let tail = format!("{name}{}", mark(imp));
                let tail = match (imp.state, imp.found) {
                    (ImportState::Cached, _) => paint.dim(&tail),
                    (_, Some(false)) => paint.bad(&tail),
                    (ImportState::Unfinished | ImportState::BegunBeforeTrace, _) => paint.warn(&tail),
                    _ => tail,
                };
                let (cum, own) = if imp.state == ImportState::Cached {
                    ("-".to_owned(), "-".to_owned())
                } else {
                    (us(forest.cumulative_ns(id)), us(forest.self_ns(id)))
                };
                let _ = writeln!(out, "{cum:>10} {own:>10}  {:indent$}{tail}", "", indent = imp.depth as usize * 2);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::forest::tests::{forest, package_and_failure, s, two_threads};

    fn tree(f: &Forest) -> String {
        let mut out = String::new();
        body(f, Paint(false), &mut out);
        out
    }

    #[test]
    fn indents_by_nesting_in_start_order() {
        assert_eq!(
            tree(&forest(package_and_failure())),
            "        11          5  a.b\n         3          3    a\n         4          4    json\n         1          1  nope [failed]\n"
        );
        let full = render(&forest(package_and_failure()), false);
        assert!(full.starts_with("importprobe: 4 imports"), "{full}");
        assert!(full.contains(&format!("\n{HEADER}")), "{full}");
    }

    #[test]
    fn one_block_per_thread_and_unfinished_marked() {
        let text = tree(&forest(two_threads()));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "thread 1 (main):");
        assert!(lines[2].ends_with("    x.sub"), "{text}");
        assert_eq!(lines[3], "thread 2:");
        assert!(lines[4].ends_with("  y [failed]"), "{text}");
        let open = tree(&forest(vec![s(5, 1, 0, "new\nline")]));
        assert_eq!(open, "         0          0  \"new\\nline\" [unfinished: time so far]\n");
    }

    #[test]
    fn colour_only_when_asked() {
        let f = forest(package_and_failure());
        assert!(!render(&f, false).contains('\u{1b}'));
        assert!(render(&f, true).contains("\u{1b}[31m"));
    }
}
