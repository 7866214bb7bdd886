//! The three ways a smoke result leaves: text for people, JSON for
//! machines, JUnit XML for CI systems (one testcase per check).
//!
//! JUnit is written with `quick-junit` (nextest's serializer) rather than by
//! hand: it escapes text and strips characters XML 1.0 forbids (module names
//! and bpftrace messages can hold anything) and keeps the tests/failures/
//! errors counters consistent with the testcases.

use super::check::{Check, Status, Verdict};
use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
use serde::Serialize;
use std::time::Duration;

/// The text report: one line per check, the evidence indented below the
/// checks that did not pass, with their fixes (JSON has every detail).
pub fn text(checks: &[Check]) -> String {
    let width = checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
    let mut out = String::from("importprobe smoke: does USDT import tracing work on this host?\n");
    for c in checks {
        out.push_str(&format!("{}  {:width$}  {}\n", c.status.label(), c.name, c.summary));
        if c.status != Status::Pass {
            for d in &c.details {
                out.push_str(&format!("      {d}\n"));
            }
        }
        for f in &c.fixes {
            out.push_str(&format!("      fix: {f}\n"));
        }
    }
    let passed = checks.iter().filter(|c| c.status == Status::Pass).count();
    let verdict = Verdict::of(checks);
    out.push_str(&match verdict {
        Verdict::Ok => {
            format!("result: OK, USDT import tracing works end to end ({passed}/{} checks passed)\n", checks.len())
        }
        Verdict::Wrong => format!(
            "result: WRONG, tracing works but results are wrong ({} failed; exit 1)\n",
            checks.iter().filter(|c| c.status == Status::Fail).count()
        ),
        Verdict::Impossible => {
            let mut fixes: Vec<&str> = Vec::new();
            for f in checks.iter().flat_map(|c| c.fixes.iter().map(String::as_str)) {
                if !fixes.contains(&f) {
                    fixes.push(f);
                }
            }
            format!("result: IMPOSSIBLE, tracing cannot work here (exit 2); fix: {}\n", fixes.join("; "))
        }
    });
    out
}

#[derive(Serialize)]
struct JsonReport<'a> {
    format: &'static str,
    verdict: Verdict,
    exit_code: u8,
    checks: &'a [Check],
}

/// The JSON report (one document).
pub fn json(checks: &[Check]) -> String {
    let verdict = Verdict::of(checks);
    let doc = JsonReport { format: "importprobe-smoke v1", verdict, exit_code: verdict.exit_code(), checks };
    serde_json::to_string_pretty(&doc).expect("plain data serializes")
}

/// The JUnit XML report: a failed check is a `failure`, an impossible one
/// an `error`, a skipped one `skipped`.
pub fn junit(checks: &[Check]) -> anyhow::Result<String> {
    let mut suite = TestSuite::new("importprobe smoke");
    let total: Duration = checks.iter().map(|c| c.duration).sum();
    suite.set_time(total);
    for c in checks {
        let mut status = match c.status {
            Status::Pass => TestCaseStatus::success(),
            Status::Fail => TestCaseStatus::non_success(NonSuccessKind::Failure),
            Status::Impossible => TestCaseStatus::non_success(NonSuccessKind::Error),
            Status::Skipped => TestCaseStatus::skipped(),
        };
        if c.status != Status::Pass {
            status.set_message(c.summary.as_str());
            let mut body = c.details.join("\n");
            for f in &c.fixes {
                body.push_str(&format!("\nfix: {f}"));
            }
            if !body.trim().is_empty() {
                status.set_description(body.trim_start_matches('\n'));
            }
            if c.status == Status::Impossible {
                status.set_type("impossible");
            }
        }
        let mut case = TestCase::new(c.name.as_str(), status);
        case.set_classname(format!("importprobe.smoke.{}", c.group()));
        case.set_time(c.duration);
        if c.status == Status::Pass {
            case.set_system_out(c.summary.as_str());
        }
        suite.add_test_case(case);
    }
    let mut report = Report::new("importprobe-smoke");
    report.set_time(total);
    report.add_test_suite(suite);
    Ok(report.to_string()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Check> {
        vec![
            Check::pass("environment/bpftrace", "bpftrace v0.17.0"),
            Check::fail("live/refpkg/events", "1 missing")
                .with_details(["  - expected #3: 0 done \"a<&>\u{1b}\" found=1".into()]),
            Check::impossible("python/probes", "/bin/true has no probes", "use /usr/bin/python3.11"),
            Check::skipped("python/trace", "no trace"),
        ]
    }

    #[test]
    fn text_lists_each_check_and_the_verdict() {
        let t = text(&sample());
        assert!(t.contains("PASS  environment/bpftrace"), "{t}");
        assert!(t.contains("FAIL  live/refpkg/events"), "{t}");
        assert!(t.contains("- expected #3"), "{t}");
        assert!(t.contains("fix: use /usr/bin/python3.11"), "{t}");
        assert!(t.ends_with("fix: use /usr/bin/python3.11\n"), "{t}");
    }

    #[test]
    fn json_has_verdict_and_checks() {
        let v: serde_json::Value = serde_json::from_str(&json(&sample())).unwrap();
        assert_eq!(v["exit_code"], 2);
        assert_eq!(v["verdict"], "impossible");
        assert_eq!(v["checks"].as_array().unwrap().len(), 4);
        assert_eq!(v["checks"][1]["status"], "fail");
    }

    #[test]
    fn junit_counts_and_escapes() {
        let xml = junit(&sample()).unwrap();
        let parsed = Report::deserialize_from_str(&xml).unwrap();
        assert_eq!(parsed.tests, 4);
        assert_eq!((parsed.failures, parsed.errors), (1, 1));
        assert!(!xml.contains('\u{1b}'), "{xml}");
        assert!(xml.contains("&lt;&amp;&gt;"), "{xml}");
    }
}
