//! `importprobe run` as a user meets it: outputs, and one-line errors with
//! exit status 2 for every mistake (never a panic or a backtrace).

use std::process::{Command, Output};

fn importprobe(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_importprobe")).args(args).output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts a user mistake: exit 2, exactly one line on stderr, no panic.
fn assert_usage_error(o: &Output, expected: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("importprobe: ") && err.contains(expected), "{err}");
    assert!(!err.contains("panicked") && !err.contains("backtrace"), "{err}");
}

fn manifest(text: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.toml");
    std::fs::write(&path, text).unwrap();
    let p = path.to_str().unwrap().to_owned();
    (dir, p)
}

#[test]
fn importtime_goes_to_stderr_in_cpythons_format() {
    let o = importprobe(&["run", "--workload", "refpkg", "--importtime", "--scale", "0.1"]);
    assert!(o.status.success());
    let err = stderr(&o);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines[0], "import time: self [us] | cumulative | imported package");
    assert_eq!(lines.len(), 8, "{err}");
    assert!(lines[3].ends_with("| pkg.a") && lines[1].ends_with("|   pkg"), "{err}");
    assert!(o.stdout.is_empty(), "data on stdout only when asked for");
}

#[test]
fn truth_file_has_one_json_event_per_probe() {
    let dir = tempfile::tempdir().unwrap();
    let truth = dir.path().join("t.jsonl");
    let o = importprobe(&["run", "-w", "cycle", "--truth", truth.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rec = importprobe::events::truth::read(&truth).unwrap();
    assert_eq!(rec.processes.len(), 1, "one process line");
    assert_eq!(rec.processes[0].ppid, None, "the root's parent is not part of the tree");
    let evs = rec.events;
    assert_eq!(evs.len(), 6);
    assert_eq!(rec.processes[0].pid, evs[0].pid);
    assert!(evs.iter().all(|e| e.pid == evs[0].pid && e.ts_ns > 0));
    assert!(evs.windows(2).all(|w| w[0].ts_ns <= w[1].ts_ns));
}

#[test]
fn bad_manifests_get_one_line_with_file_line_and_column() {
    let (_d, p) = manifest("[main]\nimports = [\"ghost\"]\n");
    assert_usage_error(&importprobe(&["run", "-w", &p]), &format!("{p}:2:12: import of \"ghost\""));
    let (_d, p) = manifest("[main\n");
    assert_usage_error(&importprobe(&["run", "-w", &p]), &format!("{p}:1:"));
    let (_d, p) = manifest("[main]\nimports = []\n[[module]]\nname = \"x\"\nexec_us = -1\n");
    assert_usage_error(&importprobe(&["run", "-w", &p]), &format!("{p}:5:11: "));
    let (_d, p) = manifest("[main]\nimports = []\n[[module]]\nname = \"a b\"\n");
    assert_usage_error(&importprobe(&["run", "-w", &p]), "not a Python identifier");
    let (_d, p) = manifest("[main]\nimports = []\ncolour = 1\n");
    assert_usage_error(&importprobe(&["run", "-w", &p]), "unknown field `colour`");
}

#[test]
fn unknown_workloads_and_bad_values_are_usage_errors() {
    assert_usage_error(&importprobe(&["run", "-w", "nonsense"]), "built-in: demo, random,");
    assert_usage_error(&importprobe(&["run", "-w", "flat", "--scale=-2"]), "--scale");
    assert_usage_error(&importprobe(&["run", "-w", "random", "--failure-rate", "3"]), "--failure-rate");
    assert_usage_error(&importprobe(&["run", "-w", "flat", "--truth", "/nonexistent/dir/t.jsonl"]), "cannot create");
    assert_usage_error(&importprobe(&["run", "-w", "flat", "--wait-for-tracer=0"]), "--wait-for-tracer");
}

#[test]
fn waiting_for_a_tracer_that_never_comes_fails_clearly() {
    let o = importprobe(&["run", "-w", "flat", "--wait-for-tracer=0.3"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.lines().next().unwrap().contains("waiting up to 0.3 s"), "{err}");
    assert!(err.contains("no tracer attached within 0.3 s") && err.contains("bpftrace -p"), "{err}");
}

#[test]
fn an_uncaught_import_error_ends_the_program_with_status_1() {
    let (_d, p) = manifest("[main]\nimports = [\"gone\", \"never\"]\n[[module]]\nname = \"gone\"\nmissing = true\n[[module]]\nname = \"never\"\n");
    let o = importprobe(&["run", "-w", &p]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("uncaught import error"), "{}", stderr(&o));
}
