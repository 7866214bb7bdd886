//! `importprobe diff` on a known pair of runs, and `importprobe check`:
//! every gate passing and failing, medians over several runs, the exit
//! statuses (0 pass, 1 a gate failed, 2 unusable input), `--json` and
//! `--junit`, and `--runs N -- COMMAND` under real tracing.

mod report_support;

use report_support::{run, stderr, stdout, Stream};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name).to_str().unwrap().to_owned()
}

/// BASE: app imports json (json.decoder 2 ms), yaml (0.5 ms), six (0.2 ms);
/// 4.7 ms in all. NEW: json.decoder takes 5 ms, yaml fails after 0.1 ms,
/// six is gone, requests (4 ms) is new; 11.1 ms in all.
fn pair() -> (String, String) {
    (fixture("diff-base.events"), fixture("diff-new.events"))
}

#[test]
fn diff_of_a_known_pair_sorted_by_impact() {
    let (base, new) = pair();
    let o = run(&["diff", &base, &new]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = stdout(&o);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[1], "import time: 4.70 ms -> 11.10 ms (+6.40 ms, +136.2%); imports: 5 -> 5");
    assert_eq!(lines[2], "started failing: yaml");
    assert_eq!(lines[3], "added: 1 module (+4.00 ms self); removed: 1 module (-200 µs self); changed: 4");
    let modules: Vec<&str> = lines[6..].iter().map(|l| l.split("  ").last().unwrap()).collect();
    assert_eq!(modules, ["requests [added]", "json.decoder", "yaml [started failing]", "six [removed]", "app", "json"]);
    assert!(lines[7].starts_with("  +3.00 ms   +3.00 ms     2.00 ms     5.00 ms"), "{text}");
}

#[test]
fn diff_as_json() {
    let (base, new) = pair();
    let o = run(&["diff", "--json", &base, &new]);
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let d = &v["diff"];
    assert_eq!((d["base_total_ns"].as_u64(), d["new_total_ns"].as_u64()), (Some(4_700_000), Some(11_100_000)));
    assert_eq!(d["delta_total_ns"], 6_400_000);
    let m = &d["modules"];
    assert_eq!((&m[0]["module"], &m[0]["status"]), (&"requests".into(), &"added".into()));
    assert_eq!(m[0]["base"], Value::Null);
    assert_eq!(m[1]["delta_self_ns"], 3_000_000);
    assert_eq!((&m[2]["module"], &m[2]["started_failing"]), (&"yaml".into(), &true.into()));
    assert_eq!(m[2]["new"]["failed"], 1);
    assert_eq!(m[3]["status"], "removed");
    assert_eq!(v["base"]["input"], base);
    assert_eq!(v["new"]["caveats"], serde_json::json!([]));
}

#[test]
fn diff_reads_any_two_kinds_and_rejects_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("importtime.log");
    std::fs::write(
        &log,
        "import time:      2000 |       2000 |   json.decoder\nimport time:      1000 |       3000 | json\n",
    )
    .unwrap();
    let o = run(&["diff", log.to_str().unwrap(), &pair().1]);
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).contains("+3.00 ms   +3.00 ms     2.00 ms     5.00 ms"), "{}", stdout(&o));
    let o = run(&["diff", "/nonexistent", &pair().1]);
    assert_eq!(o.status.code(), Some(2));
    let o = run(&["diff", "-", "-"]);
    assert_eq!((o.status.code(), stderr(&o).trim()), (Some(2), "importprobe: BASE and NEW cannot both be stdin"));
}

fn check(args: &[&str]) -> (i32, String, String) {
    let mut all = vec!["check"];
    all.extend_from_slice(args);
    let o = run(&all);
    (o.status.code().unwrap_or(-1), stdout(&o), stderr(&o))
}

/// The line of the one gate, asserting the exit status.
fn gate(args: &[&str], code: i32) -> String {
    let (c, out, err) = check(args);
    assert_eq!(c, code, "{args:?}\n{out}{err}");
    out.lines().find(|l| l.starts_with("PASS") || l.starts_with("FAIL")).unwrap().to_owned()
}

#[test]
fn max_total_ms_passes_and_fails() {
    let new = pair().1;
    assert_eq!(
        gate(&["--max-total-ms", "11.1", &new], 0),
        "PASS  total import time 11.10 ms (1 run) <= limit 11.10 ms"
    );
    assert_eq!(gate(&["--max-total-ms", "11", &new], 1), "FAIL  total import time 11.10 ms (1 run) > limit 11.00 ms");
}

#[test]
fn max_ms_per_module_passes_and_fails() {
    let new = pair().1;
    assert_eq!(gate(&["--max-ms", "json=6", &new], 0), "PASS  json: 6.00 ms cumulative (1 run) <= limit 6.00 ms");
    assert_eq!(gate(&["--max-ms", "json=5.5", &new], 1), "FAIL  json: 6.00 ms cumulative (1 run) > limit 5.50 ms");
    assert_eq!(
        gate(&["--max-ms", "numpy=1", &new], 0),
        "PASS  numpy: not imported in any run, within its limit 1.00 ms"
    );
}

#[test]
fn baseline_regression_passes_and_fails() {
    let (base, new) = pair();
    assert_eq!(
        gate(&["--baseline", &base, "--max-regression", "140", &new], 0),
        "PASS  total import time 11.10 ms (1 run) against baseline 4.70 ms (1 run): +136.2% <= limit +140%"
    );
    assert_eq!(
        gate(&["--baseline", &base, "--max-regression", "100", &new], 1),
        "FAIL  total import time 11.10 ms (1 run) against baseline 4.70 ms (1 run): +136.2% > limit +100%"
    );
    let (code, _, err) = check(&["--max-regression", "10", &new]);
    assert_eq!(code, 2, "--max-regression needs --baseline: {err}");
}

#[test]
fn forbidden_modules_pass_and_fail() {
    let new = pair().1;
    assert_eq!(
        gate(&["--forbid", "requests", &new], 1),
        "FAIL  requests: forbidden, but requests was imported in 1 of 1 run(s) (imported by app; 4.00 ms cumulative, median)"
    );
    assert_eq!(gate(&["--forbid", "six", &new], 0), "PASS  six: not imported in any of 1 run(s), as required");
    assert!(gate(&["--forbid", "yaml", &new], 0).starts_with("PASS"), "a failed import is not a load");
    assert!(gate(&["--forbid", "json", &new], 1).contains("json was imported"), "a package and its submodules");
}

#[test]
fn blind_spots_pass_and_fail() {
    let dir = tempfile::tempdir().unwrap();
    let spot = Stream::new()
        .start(0, 1, 1, 0, "pandas")
        .import(100, 1, 1, "numexpr.expressions", 1_000, true)
        .done(5_000, 1, 1, 0, "pandas", true)
        .write(dir.path(), "spot.txt");
    let spot = spot.to_str().unwrap();
    let failed = gate(&["--forbid-blind-spots", spot], 1);
    assert_eq!(
        failed,
        "FAIL  numexpr: imported outside the probes (probably importlib.import_module) in 1 of 1 run(s): its own time is hidden in another import's self time"
    );
    assert!(gate(&["--forbid-blind-spots", "--allow-blind-spot", "numexpr", spot], 0).starts_with("PASS  no package"));
    assert!(gate(&["--forbid-blind-spots", &pair().1], 0).starts_with("PASS"));
}

/// Three runs of 10, 50 and 12 ms: the median is 12 ms.
fn three_runs(dir: &Path) -> Vec<PathBuf> {
    [10, 50, 12]
        .iter()
        .enumerate()
        .map(|(i, ms)| Stream::new().import(0, 1, 0, "app", ms * 1_000_000, true).write(dir, &format!("run{i}.txt")))
        .collect()
}

#[test]
fn gates_use_the_median_and_say_how_many_runs() {
    let dir = tempfile::tempdir().unwrap();
    let runs = three_runs(dir.path());
    let mut args = vec!["--max-total-ms", "12"];
    args.extend(runs.iter().map(|p| p.to_str().unwrap()));
    let (code, out, _) = check(&args);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("importprobe check: 3 runs (medians): 1 imports, import time 12.00 ms\n"), "{out}");
    assert!(out.contains("PASS  total import time 12.00 ms (median of 3 runs) <= limit 12.00 ms"), "{out}");
    args[1] = "11.9";
    assert_eq!(check(&args).0, 1);
}

#[test]
fn json_and_junit_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let junit = dir.path().join("gates.xml");
    let new = pair().1;
    let (code, out, _) =
        check(&["--json", "--junit", junit.to_str().unwrap(), "--max-total-ms", "5", "--forbid", "six", &new]);
    assert_eq!(code, 1);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!((&v["passed"], &v["runs"]), (&false.into(), &1.into()));
    let r = &v["results"];
    assert_eq!(
        (&r[0]["gate"], &r[0]["passed"], &r[0]["value"], &r[0]["limit"]),
        (&"max-total-ms".into(), &false.into(), &11.1.into(), &5.0.into())
    );
    assert_eq!((&r[1]["gate"], &r[1]["subject"], &r[1]["passed"]), (&"forbid".into(), &"six".into(), &true.into()));
    let xml = std::fs::read_to_string(&junit).unwrap();
    let report = quick_junit::Report::deserialize_from_str(&xml).unwrap();
    assert_eq!((report.tests, report.failures), (2, 1));
    assert!(xml.contains("--max-total-ms total") && xml.contains("limit 5.00 ms"), "{xml}");
}

#[test]
fn unusable_inputs_exit_2_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.txt");
    std::fs::write(&junk, "hello\n").unwrap();
    let empty = Stream::new().write(dir.path(), "empty.txt");
    let lost = Stream::new().import(0, 1, 0, "a", 1_000, true).lost(3).write(dir.path(), "lost.txt");
    for (input, says) in [
        (junk.to_str().unwrap(), "not an importprobe event stream"),
        (empty.to_str().unwrap(), "no imports recorded"),
        (lost.to_str().unwrap(), "missing events (3 lost"),
        ("/nonexistent/run.txt", "cannot read /nonexistent/run.txt"),
    ] {
        let (code, out, err) = check(&["--max-total-ms", "100", input]);
        assert_eq!(code, 2, "{input}: {out}{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(says), "{input}: {err}");
    }
    let (code, _, err) = check(&[&pair().1]);
    assert_eq!((code, err.contains("no gate given")), (2, true), "{err}");
    let (code, _, err) = check(&["--max-ms", "json", &pair().1]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = check(&["--max-total-ms", "1"]);
    assert_eq!((code, err.contains("nothing to check")), (2, true), "{err}");
}

/// `--runs N -- COMMAND`: the simulator traced twice, through the same
/// collector `importprobe trace` uses (root and bpftrace needed).
#[cfg(target_os = "linux")]
#[test]
fn runs_a_command_n_times_under_tracing() {
    if !importprobe::testing::can_trace() {
        return;
    }
    let exe = env!("CARGO_BIN_EXE_importprobe");
    let cmd = ["--", exe, "run", "--workload", "refpkg", "--scale", "0"];
    let mut pass = vec!["--runs", "2", "--max-total-ms", "10000", "--forbid", "numpy"];
    pass.extend(cmd);
    let (code, out, err) = check(&pass);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("importprobe check: 2 runs (medians): 7 imports"), "{out}");
    assert!(err.contains("run 2/2 traced"), "{err}");
    let mut fail = vec!["--runs", "2", "--forbid", "pkg.sub"];
    fail.extend(cmd);
    let (code, out, _) = check(&fail);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("FAIL  pkg.sub: forbidden, but pkg.sub was imported in 2 of 2 run(s)"), "{out}");
}
