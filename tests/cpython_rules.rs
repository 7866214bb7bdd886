//! Two simulator rules checked against what a real CPython fires, traced
//! here with bpftrace on Debian's /usr/bin/python3.11 (through the one
//! bpftrace runner): `importlib.import_module()` (nothing fires for the
//! module it loads, nor for the parents it loads on the way; the imports in
//! their bodies do) and a module name CPython cannot encode (the pair fires
//! with a NULL pointer and found = 0). Each real program in
//! `tests/fixtures/` is the twin of a built-in scenario. Skipped, with the
//! reason, where tracing is impossible.

use importprobe::events::{truth, EventKind, NameState};
use importprobe::simulator::{self, outputs::MemorySink, outputs::Outputs};
use importprobe::tracer::bpftrace::Bpftrace;
use importprobe::tracer::runner::{self, Target, TraceRequest};
use importprobe::workload::{scenarios, Workload};
use std::collections::HashSet;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

const PYTHON: &str = "/usr/bin/python3.11";

/// Every probe firing on its own line: `<tid> <depth> start <null> <name>`
/// and `<tid> <depth> done <null> <found> <name>`, `null` being 1 when the
/// probe got a NULL pointer.
const SCRIPT: &str = r#"
usdt:/usr/bin/python3.11:python:import__find__load__start { printf("%d %d start %d %s\n", tid, @d[tid], arg0 == 0, str(arg0)); @d[tid]++; }
usdt:/usr/bin/python3.11:python:import__find__load__done { @d[tid]--; printf("%d %d done %d %d %s\n", tid, @d[tid], arg0 == 0, arg1, str(arg0)); }
END { clear(@d); }
"#;

/// One bpftrace on python3.11 at a time: two attaching to one binary at
/// once can fail on bpftrace 0.17.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Whether this host can run the comparison.
fn can_run() -> Option<Bpftrace> {
    if !importprobe::testing::can_trace() {
        return None;
    }
    if !Path::new(PYTHON).exists() {
        importprobe::testing::skip(&format!("no {PYTHON}, the CPython these rules are checked against"));
        return None;
    }
    match Bpftrace::locate() {
        Ok(b) => Some(b),
        Err(e) => {
            importprobe::testing::skip(&e.to_string());
            None
        }
    }
}

/// The script's output for `python -S -B program`, through the one runner
/// `importprobe trace` uses.
fn script_output(bpftrace: &Bpftrace, program: &Path) -> String {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let argv = vec![PYTHON.into(), "-S".into(), "-B".into(), program.as_os_str().to_owned()];
    let mut req = TraceRequest::new("cpython-rules", SCRIPT, Target::Command(argv), bpftrace.clone());
    req.deadline = Some(Duration::from_secs(60));
    let mut out = Vec::new();
    let outcome = runner::trace(req, &mut out).unwrap_or_else(|e| panic!("tracing {PYTHON}: {e}"));
    assert!(outcome.command.is_some_and(|s| s.success()), "{PYTHON} failed under the runner: {outcome:?}");
    String::from_utf8_lossy(&out).into_owned()
}

/// The probe firings of `python -S -B program` for the modules named in
/// `names` (and NULL names), in the reference traces' notation (`<depth>
/// start <m>`, `<depth> done <m> <found>`, `<NULL>`).
fn trace_cpython(bpftrace: &Bpftrace, program: &Path, names: &HashSet<String>) -> Vec<String> {
    let text = script_output(bpftrace, program);
    let mut lines = Vec::new();
    for l in text.lines() {
        let f: Vec<&str> = l.splitn(6, ' ').collect();
        let (depth, kind, null) = match f.as_slice() {
            [_, d, k, n, ..] => (*d, *k, *n == "1"),
            _ => continue,
        };
        let (found, name) = match kind {
            "start" => (None, f.get(4).copied().unwrap_or("")),
            "done" => (f.get(4).copied(), f.get(5).copied().unwrap_or("")),
            _ => continue,
        };
        let name = if null { "<NULL>" } else { name };
        if !null && !names.contains(name) {
            continue;
        }
        lines.push(match found {
            None => format!("{depth} start {name}"),
            Some(found) => format!("{depth} done {name} {found}"),
        });
    }
    lines
}

/// What the simulator fires for a workload, in the same notation.
fn simulate(w: &Workload) -> Vec<String> {
    let buf = MemorySink::default();
    let out = Outputs::new(Some(Box::new(buf.clone())), None);
    simulator::run(w, &out);
    out.finish().unwrap();
    let rec = truth::parse(&buf.contents()).unwrap();
    rec.events
        .iter()
        .map(|e| {
            let m = if e.name == NameState::Missing { "<NULL>" } else { e.module.as_str() };
            match e.kind {
                EventKind::Start => format!("{} start {m}", e.depth),
                _ => format!("{} done {m} {}", e.depth, e.found.unwrap() as u8),
            }
        })
        .collect()
}

fn names(w: &Workload) -> HashSet<String> {
    (0..w.module_count() as u32).map(|m| w.name(m).into_owned()).collect()
}

fn fixture(dir: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(dir).join("main.py")
}

fn quick() -> scenarios::Costs {
    scenarios::Costs { find: Duration::from_micros(1), exec: Duration::from_micros(1) }
}

#[test]
fn import_module_fires_as_on_cpython_3_11() {
    let Some(bpftrace) = can_run() else { return };
    let w = scenarios::importlib(quick()).unwrap();
    let real = trace_cpython(&bpftrace, &fixture("importlib"), &names(&w));
    assert!(!real.iter().any(|l| l.contains(" optdep ") || l.ends_with(" optdep")), "optdep never fires: {real:#?}");
    assert_eq!(simulate(&w), real, "simulator (left) against python3.11 (right)");
}

#[test]
fn an_unencodable_name_fires_null_as_on_cpython_3_11() {
    let Some(bpftrace) = can_run() else { return };
    let w = scenarios::unencodable(quick()).unwrap();
    let real = trace_cpython(&bpftrace, &fixture("unencodable"), &names(&w));
    assert_eq!(real.iter().filter(|l| l.contains("<NULL>")).count(), 6, "{real:#?}");
    assert_eq!(simulate(&w), real, "simulator (left) against python3.11 (right)");
}
