//! The `top` format: the summary (without its own short lists), then the N
//! slowest imports by self time and by cumulative time, as aligned tables.
//! Each row is one import (a module imported twice is two rows), with its
//! share of the import time, and its thread when there are several.
//!
//! ```text
//! slowest 3 by self time (of 32 imports, import time 13.61 ms)
//!    #  self [us]   cum [us]  self %  module
//!    1       4200       4200   30.9%  json.decoder
//! ```

use super::colour::Paint;
use crate::analysis::duration::human;
use crate::analysis::summary::Summary;
use crate::events::forest::{Forest, ImportId};
use std::fmt::Write;

/// Renders the tables of the `n` slowest imports.
pub fn render(forest: &Forest, n: usize, colour: bool) -> String {
    let paint = Paint(colour);
    let summary = Summary::of(forest, n);
    let trouble = super::summary::Trouble::of(forest, &summary);
    let mut out = super::summary::render(forest, &summary, &trouble, false, paint);
    for (title, ids) in [("self", &summary.slowest_self), ("cumulative", &summary.slowest_cumulative)] {
        out.push('\n');
        let _ = writeln!(
            out,
            "{}",
            paint.bold(&format!(
                "slowest {} by {title} time (of {} imports, import time {})",
                ids.len(),
                summary.imports,
                human(summary.total_ns)
            ))
        );
        table(forest, ids, summary.total_ns, paint, &mut out);
    }
    out.push_str(&super::summary::rest(&trouble, paint));
    out
}

fn table(forest: &Forest, ids: &[ImportId], total_ns: u64, paint: Paint, out: &mut String) {
    let _ = writeln!(out, "{:>4}  {:>9}  {:>9}  {:>6}  module", "#", "self [us]", "cum [us]", "self %");
    for (rank, &id) in ids.iter().enumerate() {
        let own = forest.self_ns(id);
        let share = if total_ns > 0 { format!("{:.1}%", own as f64 * 100.0 / total_ns as f64) } else { "-".into() };
        let label = super::summary::label(forest, id);
        let label = if forest.imports[id].failed() { paint.bad(&label) } else { label };
        let _ = writeln!(
            out,
            "{:>4}  {:>9}  {:>9}  {share:>6}  {label}",
            rank + 1,
            own.div_ceil(1000),
            forest.cumulative_ns(id).div_ceil(1000),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::forest::tests::{forest, package_and_failure, two_threads};

    #[test]
    fn aligned_tables_by_self_and_cumulative() {
        let t = render(&forest(package_and_failure()), 2, false);
        let at = t.find("slowest 2 by self time").expect(&t);
        let table: Vec<&str> = t[at..].lines().collect();
        assert_eq!(table[0], "slowest 2 by self time (of 4 imports, import time 11.4 µs)");
        assert_eq!(table[1], "   #  self [us]   cum [us]  self %  module");
        assert_eq!(table[2], "   1          5         11   39.5%  a.b");
        assert_eq!(table[3], "   2          4          4   30.7%  json");
        assert!(t.contains("slowest 2 by cumulative time"));
        assert!(!t.contains("slowest by self time"), "no short lists: {t}");
    }

    #[test]
    fn rows_say_their_thread_when_there_are_several() {
        let t = render(&forest(two_threads()), 1, false);
        assert!(t.contains("  x  (thread 1 (main))"), "{t}");
    }
}
