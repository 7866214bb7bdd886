//! The one-screen summary the `tree` and `top` reports open with: import
//! time per process (and thread), counts, the five slowest imports by self
//! and by cumulative time, and everything the recording lacks: lost events,
//! anomalies and blind spots, each counted, the first few said in full and
//! the rest listed after the report ([`rest`]), never left out.
//!
//! ```text
//! importprobe: 32 imports (1 failed) in 1 process, 1 thread; import time 13.61 ms
//!   pid 4321: python3 -c import json   13.61 ms in 32 imports
//!   slowest by self time             slowest by cumulative time
//!     4.20 ms  json.decoder            13.61 ms  json
//!   lost events: none; anomalies: none; blind spots: none
//! ```

use super::colour::Paint;
use super::names::shown;
use super::outline::mark;
use crate::analysis::duration::human;
use crate::analysis::summary::Summary;
use crate::events::forest::{Forest, ImportId};
use std::fmt::Write;

/// How many lines of each kind of trouble the summary says in full.
pub const SHOWN: usize = 5;
/// How many threads of a process the summary lists.
const THREADS_SHOWN: usize = 8;
/// The widest left column that still goes side by side with the right one.
const SIDE_BY_SIDE: usize = 48;

/// What the recording lacks, in the order the summary lists them.
pub struct Trouble {
    pub lost: Vec<String>,
    pub anomalies: Vec<String>,
    pub blind_spots: Vec<String>,
}

impl Trouble {
    pub fn of(forest: &Forest, summary: &Summary) -> Trouble {
        let mut lost = Vec::new();
        if forest.lost_events > 0 {
            lost.push(forest.diagnostics().remove(0));
        }
        lost.extend(forest.warnings.iter().cloned());
        Trouble {
            lost,
            anomalies: forest.anomalies.iter().map(|a| a.to_string()).collect(),
            blind_spots: summary.blind_spots.iter().map(|b| b.describe(forest)).collect(),
        }
    }
}

/// One import as the summary and `top` name it: the name, its mark, and
/// its thread when there are several.
pub fn label(forest: &Forest, id: ImportId) -> String {
    let imp = &forest.imports[id];
    let mut s = shown(&imp.module, imp.name).into_owned();
    s.push_str(mark(imp));
    if super::threads::several(forest) {
        let _ = write!(s, "  ({})", super::threads::frame(forest, imp.pid, imp.tid));
    }
    s
}

/// The summary; `slowest` adds the two lists of the five slowest imports.
pub fn render(forest: &Forest, summary: &Summary, trouble: &Trouble, slowest: bool, paint: Paint) -> String {
    let mut out = String::new();
    let s = summary;
    let failed = if s.failed > 0 { paint.bad(&format!(" ({} failed)", s.failed)) } else { String::new() };
    let partial =
        [(s.unfinished, "unfinished"), (s.begun_before_trace, "begun before the trace"), (s.cached, "cached lines")]
            .iter()
            .filter(|(n, _)| *n > 0)
            .map(|(n, what)| format!("{n} {what}"))
            .collect::<Vec<_>>();
    let partial = if partial.is_empty() { String::new() } else { paint.warn(&format!(", {}", partial.join(", "))) };
    let _ = writeln!(
        out,
        "{} {} imports{failed}{partial} in {} process{}, {} thread{}; import time {}",
        paint.bold("importprobe:"),
        s.imports,
        s.processes.len(),
        if s.processes.len() == 1 { "" } else { "es" },
        s.threads(),
        if s.threads() == 1 { "" } else { "s" },
        paint.bold(&human(s.total_ns)),
    );
    if forest.is_laid_out() {
        let _ = writeln!(out, "  times from an -X importtime log: laid out in order, microsecond resolution");
    }
    for p in &s.processes {
        let _ = writeln!(
            out,
            "  {}   {} in {} imports{}",
            super::threads::process(forest, p.pid),
            human(p.import_ns),
            p.imports,
            if p.threads.len() > 1 { format!(", {} threads", p.threads.len()) } else { String::new() }
        );
        if p.threads.len() > 1 {
            for t in p.threads.iter().take(THREADS_SHOWN) {
                let _ = writeln!(
                    out,
                    "    {:<22} {} in {} imports",
                    super::threads::thread(t.pid, t.tid),
                    human(t.import_ns),
                    t.imports
                );
            }
            if p.threads.len() > THREADS_SHOWN {
                let _ = writeln!(out, "    ... and {} more threads", p.threads.len() - THREADS_SHOWN);
            }
        }
    }
    if slowest && s.imports > 0 {
        let entry = |id: ImportId, ns: u64| (format!("{:>9}", human(ns)), label(forest, id));
        let left: Vec<(String, String)> = s.slowest_self.iter().map(|&id| entry(id, forest.self_ns(id))).collect();
        let right: Vec<(String, String)> =
            s.slowest_cumulative.iter().map(|&id| entry(id, forest.cumulative_ns(id))).collect();
        columns(&mut out, &left, &right, paint);
    }
    let said = |n: usize, what: &str| if n == 0 { format!("no {what}") } else { paint.warn(&format!("{n} {what}")) };
    let lost =
        if s.lost_events > 0 { paint.bad(&format!("{} lost events", s.lost_events)) } else { "no lost events".into() };
    let anomalies = if s.corruption > 0 {
        paint.bad(&format!("{} anomalies ({} of lost or corrupt events)", s.anomalies, s.corruption))
    } else {
        said(s.anomalies, "anomalies")
    };
    let _ = writeln!(out, "  {lost}; {anomalies}; {}", said(s.blind_spots.len(), "blind spots"));
    for (lines, heading) in
        [(&trouble.lost, "incomplete"), (&trouble.anomalies, "anomaly"), (&trouble.blind_spots, "blind spot")]
    {
        for line in lines.iter().take(SHOWN) {
            let _ = writeln!(out, "  {} {line}", paint.warn(&format!("{heading}:")));
        }
        if lines.len() > SHOWN {
            let _ = writeln!(out, "  ... and {} more, listed at the end", lines.len() - SHOWN);
        }
    }
    out
}

/// The slowest-by-self and slowest-by-cumulative lists, side by side when
/// they fit, else one after the other.
fn columns(out: &mut String, left: &[(String, String)], right: &[(String, String)], paint: Paint) {
    let line = |(t, l): &(String, String)| format!("{}  {l}", paint.hot(t));
    let plain_width = |(t, l): &(String, String)| t.chars().count() + 2 + l.chars().count();
    let width = left.iter().map(plain_width).max().unwrap_or(0).max("slowest by self time".len());
    if width <= SIDE_BY_SIDE {
        let _ = writeln!(out, "  {:<width$}    slowest by cumulative time", "slowest by self time");
        for i in 0..left.len().max(right.len()) {
            let l = left.get(i).map(|e| (line(e), plain_width(e))).unwrap_or_default();
            let r = right.get(i).map(line).unwrap_or_default();
            let _ = writeln!(out, "  {}{}    {r}", l.0, " ".repeat(width - l.1));
        }
    } else {
        for (title, list) in [("slowest by self time", left), ("slowest by cumulative time", right)] {
            let _ = writeln!(out, "  {title}");
            for e in list {
                let _ = writeln!(out, "  {}", line(e));
            }
        }
    }
}

/// What the summary did not say in full, for the end of the report.
pub fn rest(trouble: &Trouble, paint: Paint) -> String {
    let mut out = String::new();
    for (lines, heading) in
        [(&trouble.lost, "incomplete"), (&trouble.anomalies, "anomaly"), (&trouble.blind_spots, "blind spot")]
    {
        for line in lines.iter().skip(SHOWN) {
            let _ = writeln!(out, "{} {line}", paint.warn(&format!("{heading}:")));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::forest::tests::{d, forest, package_and_failure, s};
    use crate::events::{Origin, Recording};

    fn text(f: &Forest) -> String {
        let sum = Summary::of(f, SHOWN);
        render(f, &sum, &Trouble::of(f, &sum), true, Paint(false))
    }

    #[test]
    fn says_counts_time_and_the_slowest() {
        let t = text(&forest(package_and_failure()));
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "importprobe: 4 imports (1 failed) in 1 process, 1 thread; import time 11.4 µs");
        assert_eq!(lines[1], "  pid 1   11.4 µs in 4 imports");
        assert!(lines[2].starts_with("  slowest by self time") && lines[2].ends_with("slowest by cumulative time"));
        assert!(lines[3].contains("4.5 µs  a.b") && lines[3].ends_with("11.0 µs  a.b"), "{t}");
        assert!(t.contains("400 ns  nope [failed]"), "{t}");
        assert_eq!(lines.last().unwrap(), &"  no lost events; no anomalies; no blind spots");
    }

    #[test]
    fn lost_events_anomalies_and_blind_spots_are_counted_and_said() {
        let mut evs = vec![s(0, 1, 0, "pandas"), s(1, 1, 1, "numexpr.expr"), d(2, 1, 1, "numexpr.expr", true)];
        evs.extend((0..7).map(|i| d(10 + i, 1, 0, "zzz", true)));
        let mut rec = Recording::new(Origin::Stream, evs);
        rec.lost_events = 4;
        let f = Forest::build(&rec);
        let t = text(&f);
        assert!(t.contains("4 lost events; 8 anomalies (7 of lost or corrupt events); 1 blind spots"), "{t}");
        assert!(t.contains("incomplete: the tracer lost 4 event(s)"), "{t}");
        assert!(t.contains("blind spot: pid 1: numexpr was imported outside the probes"), "{t}");
        assert!(t.contains("... and 3 more, listed at the end"), "{t}");
        let sum = Summary::of(&f, SHOWN);
        assert_eq!(rest(&Trouble::of(&f, &sum), Paint(false)).lines().count(), 3);
    }
}
