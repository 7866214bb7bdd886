//! `importprobe smoke` end to end: it passes on a host that can trace, says
//! why (with the fix) when it cannot, and catches a trace that does not
//! match the truth. Tests that trace need root, bpftrace and tracefs (the
//! skip-or-require rule of tests/common); they run one at a time so that
//! their timing checks do not compete for the CPU.

mod common;

use common::{bin, stderr, stdout};
use common::{can_trace, tracing_lock};
use std::process::{Command, Output};

fn smoke(args: &[&str]) -> Output {
    Command::new(bin()).arg("smoke").args(args).output().expect("cannot run importprobe smoke")
}

fn show(out: &Output) -> String {
    format!("status {:?}\n--- stdout\n{}--- stderr\n{}", out.status.code(), stdout(out), stderr(out))
}

/// The check lines (`PASS  name  summary`) of a text report.
fn check_lines(text: &str) -> Vec<(&str, &str)> {
    text.lines()
        .filter_map(|l| {
            let (label, rest) = l.split_once("  ")?;
            ["PASS", "FAIL", "NOGO", "SKIP"]
                .contains(&label)
                .then(|| (label, rest.split_whitespace().next().unwrap_or("")))
        })
        .collect()
}

#[test]
fn passes_on_a_host_that_can_trace() {
    if !can_trace() {
        return;
    }
    let _one = tracing_lock();
    let out = smoke(&[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let lines = check_lines(&text);
    let names: Vec<&str> = lines.iter().map(|l| l.1).collect();
    for want in [
        "environment/uprobes",
        "environment/semaphores",
        "environment/privileges",
        "environment/tracefs",
        "environment/bpftrace",
        "probes/self",
        "live/refpkg/trace",
        "live/refpkg/events",
        "live/refpkg/nesting",
        "live/refpkg/timing",
        "live/threads/events",
        "live/threads/timing",
        "scripts/import-tree",
        "scripts/import-events",
        "scripts/import-capture",
    ] {
        assert!(names.contains(&want), "{want} not listed:\n{text}");
    }
    assert!(lines.iter().all(|l| l.0 == "PASS"), "{text}");
    assert!(text.contains("all 14 events seen"), "refpkg fires 14 events:\n{text}");
    assert!(text.lines().last().unwrap().starts_with("result: OK"), "{text}");
}

#[test]
fn json_and_junit_reports_are_well_formed() {
    if !can_trace() {
        return;
    }
    let _one = tracing_lock();
    let dir = tempfile::tempdir().unwrap();
    let xml_path = dir.path().join("smoke.xml");
    let out = smoke(&["--json", "--junit", xml_path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("stdout is one JSON document");
    assert_eq!(v["format"], "importprobe-smoke v1");
    assert_eq!(v["verdict"], "ok");
    assert_eq!(v["exit_code"], 0);
    let checks = v["checks"].as_array().unwrap();
    assert!(checks.len() >= 14, "{v}");
    assert!(
        checks.iter().all(|c| c["status"] == "pass" && c["name"].is_string() && c["duration_ms"].is_number()),
        "{v}"
    );

    let xml = std::fs::read_to_string(&xml_path).unwrap();
    let report = quick_junit::Report::deserialize_from_str(&xml).expect("well-formed JUnit XML");
    assert_eq!(report.tests, checks.len(), "one testcase per check:\n{xml}");
    assert_eq!((report.failures, report.errors), (0, 0), "{xml}");
    assert_eq!(report.test_suites.len(), 1);
    assert_eq!(report.test_suites[0].test_cases.len(), checks.len());
    assert!(xml.contains(r#"failures="0""#), "{xml}");
    assert_eq!(xml.matches("<testcase ").count(), checks.len(), "{xml}");
}

#[test]
fn without_bpftrace_it_is_impossible_with_the_install_command() {
    // Needs no privileges: the missing tool is found before anything runs.
    let empty = tempfile::tempdir().unwrap();
    let out = Command::new(bin()).arg("smoke").env("PATH", empty.path()).output().unwrap();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(text.contains("NOGO  environment/bpftrace"), "{text}");
    assert!(text.contains("bpftrace is not installed"), "{text}");
    assert!(text.contains("fix: apt-get install -y bpftrace"), "{text}");
    assert!(text.contains("SKIP  live/refpkg"), "{text}");
    assert!(text.lines().last().unwrap().starts_with("result: IMPOSSIBLE"), "{text}");
}

#[test]
fn a_python_without_probes_is_impossible() {
    let _one = tracing_lock();
    let out = smoke(&["--python", "/bin/true", "--json"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let checks = v["checks"].as_array().unwrap();
    let probes = checks.iter().find(|c| c["name"] == "python/probes").expect("python/probes check");
    assert_eq!(probes["status"], "impossible", "{probes}");
    assert!(probes["summary"].as_str().unwrap().contains("/bin/true has no python import probes"), "{probes}");
    assert!(probes["fixes"][0].as_str().unwrap().contains("/usr/bin/python3.11"), "{probes}");
    let live = checks.iter().find(|c| c["name"] == "python/live").expect("python/live check");
    assert_eq!(live["status"], "skipped");
}

#[test]
fn a_tampered_truth_is_caught_with_a_diff() {
    if !can_trace() {
        return;
    }
    let _one = tracing_lock();
    // A flipped found flag: the traced event is right, the truth is not.
    let out = smoke(&["--tamper-truth", "flip"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(text.contains("FAIL  live/refpkg/events"), "{text}");
    assert!(text.contains("a found flag that differs"), "{text}");
    // refpkg's first done event is `pkg` inside `pkg.a`, really found.
    assert!(text.contains("- expected #2: 1 done  \"pkg\" found=0"), "{text}");
    assert!(text.contains("+ seen     #2: 1 done  \"pkg\" found=1"), "{text}");
    assert!(text.contains("PASS  live/refpkg/nesting"), "the trace itself is fine:\n{text}");
    assert!(text.lines().last().unwrap().starts_with("result: WRONG"), "{text}");

    // A dropped event: the trace has one more than the truth.
    let out = smoke(&["--tamper-truth", "drop"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(text.contains("0 expected event(s) missing, 1 unexpected event(s) seen (13 expected, 14 seen)"), "{text}");
    assert!(text.contains("+ seen     #"), "{text}");
}

#[test]
fn a_real_cpython_passes() {
    if !can_trace() {
        return;
    }
    let python = common::python();
    assert!(python.is_file(), "{} (a CPython with the probes) is required", python.display());
    let _one = tracing_lock();
    let out = smoke(&["--python", python.to_str().unwrap()]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    for want in ["python/probes", "python/trace", "python/importtime", "python/program", "python/timing"] {
        assert!(text.contains(&format!("PASS  {want}")), "{want}:\n{text}");
    }
}

#[test]
fn a_bpftrace_that_never_attaches_is_killed_and_reported() {
    if !can_trace() {
        return;
    }
    let _one = tracing_lock();
    // First in PATH: answers --version, then ignores SIGINT and sleeps.
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("bpftrace");
    std::fs::write(
        &fake,
        "#!/bin/sh\nif [ \"$1\" = --version ]; then echo 'bpftrace v0.17.0'; exit 0; fi\ntrap '' INT TERM\nsleep 600\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", dir.path().display(), std::env::var("PATH").unwrap_or_default());
    let out = Command::new(bin()).args(["smoke", "--timeout", "2"]).env("PATH", path).output().unwrap();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let lines = check_lines(&text);
    assert!(lines.contains(&("PASS", "environment/bpftrace")), "{text}");
    assert!(text.contains("bpftrace v0.17.0 at"), "{text}");
    assert!(lines.contains(&("NOGO", "live/refpkg/trace")), "{text}");
    assert!(text.contains("bpftrace did not attach to pid"), "{text}");
    assert!(lines.contains(&("SKIP", "live/refpkg/events")), "{text}");
    assert!(
        lines.contains(&("SKIP", "scripts")),
        "scripts are not tried when nothing attaches:
{text}"
    );
}
