//! `importprobe diff` written out: the totals, imports that started
//! failing, modules added and removed, then the changed modules as an
//! aligned table sorted by impact ([`crate::analysis::diff`]).
//!
//! ```text
//! import time: 13.61 ms -> 15.20 ms (+1.59 ms, +11.7%); imports: 32 -> 35
//! started failing: yaml
//! added: 3 modules (+1.20 ms self); removed: 1 module (-300 µs self)
//!
//!     Δ self      Δ cum   base self    new self     new cum  module
//!   +1.20 ms   +1.20 ms           -     1.20 ms     1.20 ms  yaml [added]
//! ```

use super::colour::Paint;
use crate::analysis::diff::{Diff, ModuleChange, Status};
use crate::analysis::duration::{human, signed};
use std::fmt::Write;

/// One side of the comparison, as the header names it.
pub struct Side<'a> {
    pub name: &'a str,
    /// Lines about what that side's recording lacks.
    pub warnings: Vec<String>,
}

fn marks(m: &ModuleChange) -> String {
    let mut marks = Vec::new();
    match m.status {
        Status::Added => marks.push("added".to_owned()),
        Status::Removed => marks.push("removed".to_owned()),
        Status::Changed => {}
    }
    if m.started_failing {
        marks.push("started failing".into());
    }
    if m.stopped_failing {
        marks.push("stopped failing".into());
    }
    if let (Some(b), Some(n)) = (&m.base, &m.new) {
        if b.imports != n.imports {
            marks.push(format!("imported {} -> {} times", b.imports, n.imports));
        }
    }
    if m.base.iter().chain(&m.new).any(|c| c.partial > 0) {
        marks.push("not seen whole: lower bound".into());
    }
    if marks.is_empty() {
        String::new()
    } else {
        format!(" [{}]", marks.join("; "))
    }
}

/// Renders the diff, listing at most `limit` modules (0: all).
pub fn render(d: &Diff, base: &Side, new: &Side, limit: usize, colour: bool) -> String {
    let paint = Paint(colour);
    let mut out = String::new();
    let _ = writeln!(out, "{} {} -> {}", paint.bold("importprobe diff:"), base.name, new.name);
    for (side, w) in [("BASE", &base.warnings), ("NEW", &new.warnings)] {
        for line in w.iter() {
            let _ = writeln!(out, "  {} {side}: {line}", paint.warn("warning:"));
        }
    }
    let pct = d.delta_total_percent.map(|p| format!(", {p:+.1}%")).unwrap_or_default();
    let total = format!(
        "import time: {} -> {} ({}{pct}); imports: {} -> {}",
        human(d.base_total_ns),
        human(d.new_total_ns),
        signed(d.delta_total_ns),
        d.base_imports,
        d.new_imports
    );
    let _ = writeln!(out, "{}", paint.bold(&total));
    let failing: Vec<String> = d.started_failing().map(|m| m.key.shown().into_owned()).collect();
    if !failing.is_empty() {
        let _ = writeln!(out, "{} {}", paint.bad("started failing:"), failing.join(", "));
    }
    if !d.failures_compared {
        let _ = writeln!(out, "failures not compared: an -X importtime log does not record which imports failed");
    }
    let sum = |it: &mut dyn Iterator<Item = &ModuleChange>| {
        let v: Vec<i64> = it.map(|m| m.delta_self_ns).collect();
        (v.len(), v.iter().sum::<i64>())
    };
    let (added, added_ns) = sum(&mut d.added());
    let (removed, removed_ns) = sum(&mut d.removed());
    let plural = |n: usize| if n == 1 { "module" } else { "modules" };
    let _ = writeln!(
        out,
        "added: {added} {} ({} self); removed: {removed} {} ({} self); changed: {}",
        plural(added),
        signed(added_ns),
        plural(removed),
        signed(removed_ns),
        d.modules.len() - added - removed
    );
    if d.modules.is_empty() {
        let _ = writeln!(out, "no module changed");
        return out;
    }
    out.push('\n');
    let _ = writeln!(
        out,
        "{}",
        paint.bold(&format!(
            "{:>10} {:>10} {:>11} {:>11} {:>11}  module",
            "Δ self", "Δ cum", "base self", "new self", "new cum"
        ))
    );
    let shown = if limit == 0 { d.modules.len() } else { limit.min(d.modules.len()) };
    let cost = |c: Option<u64>| c.map_or_else(|| "-".to_owned(), human);
    for m in &d.modules[..shown] {
        let line = format!(
            "{:>10} {:>10} {:>11} {:>11} {:>11}  {}{}",
            signed(m.delta_self_ns),
            signed(m.delta_cumulative_ns),
            cost(m.base.as_ref().map(|c| c.self_ns)),
            cost(m.new.as_ref().map(|c| c.self_ns)),
            cost(m.new.as_ref().map(|c| c.cumulative_ns)),
            m.key.shown(),
            marks(m)
        );
        let line = if m.started_failing { paint.bad(&line) } else { line };
        let _ = writeln!(out, "{line}");
    }
    if shown < d.modules.len() {
        let _ =
            writeln!(out, "... and {} more modules changed less (--limit 0 lists them all)", d.modules.len() - shown);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::diff::diff;
    use crate::analysis::profile::{ModuleCost, ModuleKey, Profile};

    #[test]
    fn totals_failures_and_an_aligned_table() {
        let mut base = Profile { total_ns: 1_000_000, imports: 1, ..Default::default() };
        base.modules.insert(
            ModuleKey::full("a"),
            ModuleCost { imports: 1, self_ns: 1_000_000, cumulative_ns: 1_000_000, ..Default::default() },
        );
        let mut new = base.clone();
        new.modules.get_mut(&ModuleKey::full("a")).unwrap().failed = 1;
        new.modules.insert(
            ModuleKey::full("b c"),
            ModuleCost { imports: 1, self_ns: 500_000, cumulative_ns: 500_000, ..Default::default() },
        );
        new.total_ns = 1_500_000;
        let side = |name| Side { name, warnings: vec![] };
        let text = render(&diff(&base, &new), &side("old.txt"), &side("new.txt"), 1, false);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "importprobe diff: old.txt -> new.txt");
        assert_eq!(lines[1], "import time: 1.00 ms -> 1.50 ms (+500 µs, +50.0%); imports: 1 -> 1");
        assert_eq!(lines[2], "started failing: a");
        assert_eq!(lines[3], "added: 1 module (+500 µs self); removed: 0 modules (0 ns self); changed: 1");
        assert_eq!(lines[6], "   +500 µs    +500 µs           -      500 µs      500 µs  \"b c\" [added]");
        assert_eq!(lines[7], "... and 1 more modules changed less (--limit 0 lists them all)");
    }
}
