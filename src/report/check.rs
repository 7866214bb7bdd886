//! `importprobe check` written out: one line per gate (`PASS`/`FAIL`, then
//! which module, how much, against what), a result line saying how many
//! runs the medians came from; or the same as JSON, or as JUnit XML (one
//! testcase per gate).

use super::colour::Paint;
use crate::analysis::check::Verdict;
use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
use std::fmt::Write;

/// The text report.
pub fn text(v: &Verdict, notes: &[String], colour: bool) -> String {
    let paint = Paint(colour);
    let mut out = String::new();
    let runs = if v.runs == 1 { "1 run".to_owned() } else { format!("{} runs (medians)", v.runs) };
    let _ = writeln!(
        out,
        "{} {runs}: {} imports, import time {:.2} ms{}",
        paint.bold("importprobe check:"),
        v.median_imports,
        v.median_total_ms,
        if v.baseline_runs > 0 { format!("; baseline of {} run(s)", v.baseline_runs) } else { String::new() }
    );
    for n in notes {
        let _ = writeln!(out, "{} {n}", paint.warn("note:"));
    }
    for r in &v.results {
        let status = if r.passed { "PASS" } else { &paint.bad("FAIL") };
        let _ = writeln!(out, "{status}  {}", r.message);
    }
    let failed = v.failures().count();
    let _ = if failed == 0 {
        writeln!(out, "result: PASS, {} gate(s) passed on {runs}", v.results.len())
    } else {
        writeln!(
            out,
            "result: {}, {failed} of {} gate(s) failed on {runs} (exit 1)",
            paint.bad("FAIL"),
            v.results.len()
        )
    };
    out
}

/// The JSON report: the verdict, with `passed` and the notes.
pub fn json(v: &Verdict, notes: &[String]) -> String {
    let mut doc = serde_json::to_value(v).expect("plain data serializes");
    doc["passed"] = v.passed().into();
    doc["notes"] = notes.into();
    let mut out = serde_json::to_string_pretty(&doc).expect("JSON values serialize");
    out.push('\n');
    out
}

/// The JUnit XML report: a failed gate is a `failure`.
pub fn junit(v: &Verdict) -> Result<String, quick_junit::SerializeError> {
    let mut suite = TestSuite::new("importprobe check");
    for r in &v.results {
        let mut status =
            if r.passed { TestCaseStatus::success() } else { TestCaseStatus::non_success(NonSuccessKind::Failure) };
        if !r.passed {
            status.set_message(r.message.as_str());
        }
        let mut case = TestCase::new(format!("{} {}", r.gate.flag(), r.subject), status);
        case.set_classname("importprobe.check");
        case.set_system_out(r.message.as_str());
        suite.add_test_case(case);
    }
    let mut report = Report::new("importprobe-check");
    report.add_test_suite(suite);
    report.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::check::{evaluate, Gates};
    use crate::analysis::profile::Profile;

    fn verdict() -> Verdict {
        let runs = [Profile { total_ns: 5_000_000, imports: 9, ..Default::default() }];
        let gates = Gates { max_total_ms: Some(4.0), forbid: vec!["<evil>".into()], ..Default::default() };
        evaluate(&gates, &runs)
    }

    #[test]
    fn text_has_one_line_per_gate_and_the_run_count() {
        let t = text(&verdict(), &[], false);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "importprobe check: 1 run: 9 imports, import time 5.00 ms");
        assert_eq!(lines[1], "FAIL  total import time 5.00 ms (1 run) > limit 4.00 ms");
        assert!(lines[2].starts_with("PASS  <evil>: not imported"));
        assert_eq!(lines[3], "result: FAIL, 1 of 2 gate(s) failed on 1 run (exit 1)");
    }

    #[test]
    fn json_and_junit_say_the_same() {
        let v: serde_json::Value = serde_json::from_str(&json(&verdict(), &["n".into()])).unwrap();
        assert_eq!(
            (&v["passed"], &v["runs"], &v["results"][0]["gate"]),
            (&false.into(), &1.into(), &"max-total-ms".into())
        );
        let xml = junit(&verdict()).unwrap();
        let parsed = Report::deserialize_from_str(&xml).unwrap();
        assert_eq!((parsed.tests, parsed.failures), (2, 1));
        assert!(xml.contains("&lt;evil&gt;"), "{xml}");
    }
}
