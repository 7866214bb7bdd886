//! The simulator's import semantics, rule by rule, against what CPython 3.11
//! really does (`tests/fixtures/reference/*.trace`, captured by bpftrace from
//! Debian's python3.11). These run in-process: no tracer needed.

use importprobe::events::{blind_spots, forest::Forest, truth, EventKind, ImportEvent, NameState, Origin, Recording};
use importprobe::simulator::{self, interpreter::Failure, outputs::MemorySink, outputs::Outputs};
use importprobe::workload::{manifest, scenarios, ModuleSpec, StepSpec, StmtSpec, Workload, WorkloadBuilder};
use std::path::Path;
use std::time::Duration;

/// Runs a workload and returns every fired probe, in order.
fn events(w: &Workload) -> (Vec<ImportEvent>, simulator::RunSummary) {
    let buf = MemorySink::default();
    let out = Outputs::new(Some(Box::new(buf.clone())), None);
    let summary = simulator::run(w, &out);
    out.finish().unwrap();
    let bytes = buf.contents();
    (truth::parse(&bytes[..]).unwrap().events, summary)
}

/// Events in the reference traces' notation: `<depth> start <m>` / `<depth> done <m> <found>`,
/// a NULL name written `<NULL>`.
fn lines(evs: &[ImportEvent]) -> Vec<String> {
    evs.iter()
        .map(|e| {
            let m = if e.name == NameState::Missing { "<NULL>" } else { e.module.as_str() };
            match e.kind {
                EventKind::Start => format!("{} start {m}", e.depth),
                EventKind::Done => format!("{} done {m} {}", e.depth, e.found.unwrap() as u8),
                EventKind::Cached => unreachable!("the simulator fires probes only"),
            }
        })
        .collect()
}

fn trace_of(w: &Workload) -> Vec<String> {
    lines(&events(w).0)
}

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn reference(name: &str) -> Vec<String> {
    std::fs::read_to_string(fixture("reference").join(name)).unwrap().lines().map(str::to_owned).collect()
}

fn fast(spec: ModuleSpec) -> ModuleSpec {
    ModuleSpec { find: Duration::from_micros(1), exec: Duration::from_micros(1), ..spec }
}

fn module(imports: &[&str]) -> ModuleSpec {
    fast(ModuleSpec { imports: imports.iter().map(|s| StmtSpec::import(*s)).collect(), ..Default::default() })
}

fn workload(modules: &[(&str, ModuleSpec)], main: Vec<StmtSpec>) -> Workload {
    let mut b = WorkloadBuilder::new("test");
    for (name, spec) in modules {
        b.define(name, spec.clone()).unwrap();
    }
    b.main_imports(main);
    b.build().unwrap()
}

#[test]
fn refpkg_manifest_reproduces_the_cpython_trace_line_for_line() {
    let w = manifest::load(&fixture("refpkg.toml")).unwrap();
    assert_eq!(trace_of(&w), reference("cpython311-packages-cycle-failure.trace"));
}

#[test]
fn stdlib_manifest_reproduces_startup_deep_imports_and_missing_modules() {
    let w = manifest::load(&fixture("stdlib-and-missing.toml")).unwrap().scaled(0.05);
    assert_eq!(trace_of(&w), reference("cpython311-stdlib-and-missing.trace"));
}

#[test]
fn a_module_in_sys_modules_fires_nothing() {
    let w = workload(
        &[("a", module(&[])), ("b", module(&["a"]))],
        vec![StmtSpec::import("a"), StmtSpec::import("b"), StmtSpec::import("a")],
    );
    assert_eq!(trace_of(&w), ["0 start a", "0 done a 1", "0 start b", "0 done b 1"]);
}

#[test]
fn dotted_names_nest_their_parents_outermost_deepest() {
    let w = workload(&[("a.b.c", module(&["x"])), ("x", module(&[]))], vec![StmtSpec::import("a.b.c")]);
    assert_eq!(
        trace_of(&w),
        [
            "0 start a.b.c",
            "1 start a.b",
            "2 start a",
            "2 done a 1",
            "1 done a.b 1",
            "1 start x",
            "1 done x 1",
            "0 done a.b.c 1",
        ]
    );
}

#[test]
fn a_missing_parent_fails_every_pending_child() {
    let w = workload(
        &[("org", fast(ModuleSpec { missing: true, ..Default::default() })), ("org.python.core", module(&[]))],
        vec![StmtSpec::import("org.python.core").caught()],
    );
    assert_eq!(
        trace_of(&w),
        [
            "0 start org.python.core",
            "1 start org.python",
            "2 start org",
            "2 done org 0",
            "1 done org.python 0",
            "0 done org.python.core 0"
        ]
    );
}

#[test]
fn a_submodule_of_a_plain_module_is_not_found() {
    let plain = fast(ModuleSpec { package: Some(false), ..Default::default() });
    let w = workload(&[("plain", plain), ("plain.x", module(&[]))], vec![StmtSpec::import("plain.x").caught()]);
    assert_eq!(trace_of(&w), ["0 start plain.x", "1 start plain", "1 done plain 1", "0 done plain.x 0"]);
}

#[test]
fn a_missing_submodule_of_a_loaded_package_fires_one_pair() {
    // `import json.nope` with json loaded.
    let w = workload(
        &[("json", module(&[])), ("json.nope", fast(ModuleSpec { missing: true, ..Default::default() }))],
        vec![StmtSpec::import("json"), StmtSpec::import("json.nope").caught()],
    );
    assert_eq!(trace_of(&w), ["0 start json", "0 done json 1", "0 start json.nope", "0 done json.nope 0"]);
}

#[test]
fn a_body_that_raises_reports_not_found_and_fires_again_on_reimport() {
    let w = workload(
        &[
            ("broken", fast(ModuleSpec { raises: true, imports: vec![StmtSpec::import("dep")], ..Default::default() })),
            ("dep", module(&[])),
        ],
        vec![StmtSpec::import("broken").caught(), StmtSpec::import("broken").caught()],
    );
    // Its own imports stay loaded; the broken module leaves sys.modules.
    assert_eq!(
        trace_of(&w),
        ["0 start broken", "1 start dep", "1 done dep 1", "0 done broken 0", "0 start broken", "0 done broken 0"]
    );
}

#[test]
fn an_uncaught_failed_import_makes_the_importer_raise_too() {
    let w = workload(
        &[
            ("app", module(&["lib"])),
            ("lib", module(&["gone"])),
            ("gone", fast(ModuleSpec { missing: true, ..Default::default() })),
        ],
        vec![StmtSpec::import("app").caught(), StmtSpec::import("app").caught()],
    );
    let t = trace_of(&w);
    assert_eq!(
        &t[..6],
        ["0 start app", "1 start lib", "2 start gone", "2 done gone 0", "1 done lib 0", "0 done app 0"]
    );
    assert_eq!(t.len(), 12, "both raised modules left sys.modules and are imported again: {t:?}");
}

#[test]
fn an_uncaught_error_at_top_level_ends_the_program() {
    let w = workload(
        &[("gone", fast(ModuleSpec { missing: true, ..Default::default() })), ("never", module(&[]))],
        vec![StmtSpec::import("gone"), StmtSpec::import("never")],
    );
    let (evs, summary) = events(&w);
    assert_eq!(lines(&evs), ["0 start gone", "0 done gone 0"]);
    assert_eq!(summary.uncaught, vec![("main".to_owned(), Failure::Raised)]);
}

#[test]
fn a_cycle_terminates_and_the_partial_module_fires_nothing() {
    let w = scenarios::cycle(scenarios::Costs { find: Duration::ZERO, exec: Duration::ZERO }).unwrap();
    assert_eq!(
        trace_of(&w),
        ["0 start cyc_a", "1 start cyc_b", "2 start cyc_c", "2 done cyc_c 1", "1 done cyc_b 1", "0 done cyc_a 1"]
    );
}

#[test]
fn a_package_importing_its_own_submodule_fires_no_extra_parent_pair() {
    // encodings imports encodings.aliases inside its own pair.
    let w = workload(
        &[("encodings", module(&["encodings.aliases"])), ("encodings.aliases", module(&[]))],
        vec![StmtSpec::import("encodings")],
    );
    assert_eq!(
        trace_of(&w),
        ["0 start encodings", "1 start encodings.aliases", "1 done encodings.aliases 1", "0 done encodings 1"]
    );
}

#[test]
fn from_import_of_a_submodule_fires_its_pair_but_attributes_do_not() {
    let w = workload(
        &[("pkg", fast(ModuleSpec { package: Some(true), ..Default::default() })), ("pkg.mod", module(&[]))],
        vec![StmtSpec::import("pkg").from(&["mod", "some_function"])],
    );
    assert_eq!(trace_of(&w), ["0 start pkg", "0 done pkg 1", "0 start pkg.mod", "0 done pkg.mod 1"]);
}

#[test]
fn a_child_imported_by_its_parents_body_fires_twice_nested() {
    // `import p.c` with p/__init__.py doing `import p.c`: importlib's "crazy
    // side-effects" check returns the module the parent already loaded, but
    // the outer pair is open around everything.
    let w = workload(&[("p", module(&["p.c"])), ("p.c", module(&[]))], vec![StmtSpec::import("p.c")]);
    assert_eq!(trace_of(&w), ["0 start p.c", "1 start p", "2 start p.c", "2 done p.c 1", "1 done p 1", "0 done p.c 1"]);
}

/// Two threads: a `delay` module holds thread 2 back while thread 1 is
/// inside `slow`'s find (or exec) phase.
fn racing(slow: ModuleSpec) -> Vec<ImportEvent> {
    let mut b = WorkloadBuilder::new("race");
    b.define("slow", slow).unwrap();
    b.define("delay", ModuleSpec { exec: Duration::from_millis(60), ..Default::default() }).unwrap();
    b.main_imports(vec![]);
    b.thread("first", vec![StmtSpec::import("slow")]);
    b.thread("second", vec![StmtSpec::import("delay"), StmtSpec::import("slow")]);
    events(&b.build().unwrap()).0
}

fn per_thread(evs: &[ImportEvent]) -> Vec<Vec<String>> {
    let mut tids: Vec<u32> = evs.iter().map(|e| e.tid).collect();
    tids.dedup();
    let mut seen = Vec::new();
    for t in tids {
        if !seen.contains(&t) {
            seen.push(t);
        }
    }
    seen.iter().map(|t| lines(&evs.iter().filter(|e| e.tid == *t).cloned().collect::<Vec<_>>())).collect()
}

#[test]
fn a_thread_arriving_while_another_finds_the_module_fires_its_own_pair_and_waits() {
    let evs = racing(ModuleSpec { find: Duration::from_millis(300), ..Default::default() });
    let threads = per_thread(&evs);
    assert!(threads.contains(&vec!["0 start slow".to_owned(), "0 done slow 1".to_owned()]));
    assert!(threads.contains(&vec![
        "0 start delay".to_owned(),
        "0 done delay 1".to_owned(),
        "0 start slow".to_owned(),
        "0 done slow 1".to_owned()
    ]));
    // The second thread's pair is mostly waiting: it ends after the first's.
    let dones: Vec<&ImportEvent> = evs.iter().filter(|e| e.module == "slow" && e.kind == EventKind::Done).collect();
    assert!(dones[0].tid != dones[1].tid && dones[1].ts_ns >= dones[0].ts_ns);
}

#[test]
fn a_thread_arriving_while_another_executes_the_module_waits_and_fires_nothing() {
    let evs = racing(ModuleSpec { exec: Duration::from_millis(300), ..Default::default() });
    let threads = per_thread(&evs);
    assert!(threads.contains(&vec!["0 start slow".to_owned(), "0 done slow 1".to_owned()]));
    assert!(threads.contains(&vec!["0 start delay".to_owned(), "0 done delay 1".to_owned()]), "{threads:?}");
}

#[test]
fn cross_imports_between_threads_do_not_deadlock() {
    // Thread 1 runs a (which imports b), thread 2 runs b (which imports a),
    // both slow enough to overlap: CPython hands back a partial module.
    let mut b = WorkloadBuilder::new("xdeadlock");
    let slow = |imp: &str| ModuleSpec {
        exec: Duration::from_millis(40),
        imports: vec![StmtSpec::import(imp)],
        ..Default::default()
    };
    b.define("xa", slow("xb")).unwrap();
    b.define("xb", slow("xa")).unwrap();
    b.main_imports(vec![]);
    b.thread("t1", vec![StmtSpec::import("xa")]);
    b.thread("t2", vec![StmtSpec::import("xb")]);
    let evs = events(&b.build().unwrap()).0;
    for thread in per_thread(&evs) {
        assert_nesting(&thread);
    }
}

/// Every start has a matching done at the same depth, properly nested.
fn assert_nesting(lines: &[String]) {
    let mut open: Vec<(String, String)> = Vec::new();
    for l in lines {
        let f: Vec<&str> = l.splitn(3, ' ').collect();
        if f[1] == "start" {
            assert_eq!(f[0].parse::<usize>().unwrap(), open.len(), "{l}");
            open.push((f[0].to_owned(), f[2].to_owned()));
        } else {
            let (d, m) = open.pop().expect("done without start");
            assert_eq!(d, f[0]);
            assert!(f[2].starts_with(&m), "{l} closes {m}");
        }
    }
    assert!(open.is_empty());
}

#[test]
fn threads_nest_independently_and_every_pair_closes() {
    let w = scenarios::threads(6, scenarios::Costs::default()).unwrap();
    let (evs, summary) = events(&w);
    assert_eq!(summary.threads, 7);
    let threads = per_thread(&evs);
    assert!(threads.len() >= 6, "{} threads fired", threads.len());
    for t in &threads {
        assert_nesting(t);
    }
    // Shared dependencies load once; a racing thread may add pairs around waits.
    let base = evs.iter().filter(|e| e.module == "shared.base" && e.kind == EventKind::Done).count();
    assert!(base >= 1);
}

#[test]
fn a_ten_thousand_deep_chain_runs_without_recursion() {
    let w = scenarios::deep(10_000, scenarios::Costs { find: Duration::ZERO, exec: Duration::ZERO }).unwrap();
    let evs = events(&w).0;
    assert_eq!(evs.len(), 20_000);
    assert_eq!(evs.iter().map(|e| e.depth).max(), Some(9_999));
    assert_eq!(evs[19_999].module, "chain_000000");
}

#[test]
fn a_million_module_graph_runs() {
    let w = scenarios::stress(1_000_000, scenarios::Costs { find: Duration::ZERO, exec: Duration::ZERO }).unwrap();
    let out = Outputs::new(None, None);
    let summary = simulator::run(&w, &out);
    assert!(summary.uncaught.is_empty());
    assert_eq!(out.finish().unwrap(), 2_000_000);
}

#[test]
fn the_same_seed_gives_the_same_event_sequence() {
    use importprobe::workload::random::{generate, RandomParams};
    let p = RandomParams {
        seed: 42,
        modules: 400,
        failure_rate: 0.1,
        median_find: Duration::ZERO,
        median_exec: Duration::ZERO,
        ..Default::default()
    };
    let a = trace_of(&generate(&p));
    assert_eq!(a, trace_of(&generate(&p)));
    assert!(a.iter().any(|l| l.ends_with(" 0")), "failures are generated");
    assert_ne!(a, trace_of(&generate(&RandomParams { seed: 43, ..p })));
}

#[test]
fn importtime_lines_match_pairs_children_first() {
    let w = manifest::load(&fixture("refpkg.toml")).unwrap();
    let it = MemorySink::default();
    let out = Outputs::new(None, Some(Box::new(it.clone())));
    simulator::run(&w, &out);
    out.finish().unwrap();
    let text = String::from_utf8(it.contents()).unwrap();
    let mut l = text.lines();
    assert_eq!(l.next(), Some("import time: self [us] | cumulative | imported package"));
    let names: Vec<String> = l
        .map(|line| {
            let parts: Vec<&str> = line.split(" | ").collect();
            assert!(parts[0].starts_with("import time: ") && parts[0].len() == 22, "{line:?}");
            let (slf, cum): (u64, u64) = (parts[0][13..].trim().parse().unwrap(), parts[1].trim().parse().unwrap());
            assert!(slf <= cum && cum > 0, "{line}");
            parts[2].to_owned()
        })
        .collect();
    assert_eq!(names, ["  pkg", "  pkg.b", "pkg.a", "pkg.broken", "  pkg.sub.leaf", "pkg.sub", "pkg.broken"]);
}

#[test]
fn an_unencodable_name_fires_null_with_found_0_nothing_nested_and_again_on_reimport() {
    let w = scenarios::unencodable(scenarios::Costs::default()).unwrap();
    let (evs, summary) = events(&w);
    assert!(summary.uncaught.is_empty(), "every __import__ of it is caught");
    assert_eq!(
        lines(&evs),
        [
            "0 start plain",
            "0 done plain 1",
            "0 start <NULL>",
            "0 done <NULL> 0",
            "0 start host",
            "1 start <NULL>",
            "1 done <NULL> 0",
            "1 start host.after",
            "1 done host.after 1",
            "0 done host 1",
            "0 start <NULL>",
            "0 done <NULL> 0",
        ]
    );
    assert!(evs.iter().filter(|e| e.name == NameState::Missing).all(|e| e.module.is_empty()));
}

#[test]
fn an_uncaught_unencodable_import_is_a_system_error() {
    let mut b = WorkloadBuilder::new("t");
    b.define(
        "bad",
        fast(ModuleSpec { probe_name: importprobe::workload::ProbeName::Unencodable, ..Default::default() }),
    )
    .unwrap();
    b.main_imports(vec![StmtSpec::import("bad")]);
    let (evs, summary) = events(&b.build().unwrap());
    assert_eq!(lines(&evs), ["0 start <NULL>", "0 done <NULL> 0"]);
    assert_eq!(summary.uncaught, vec![("main".to_owned(), Failure::Raised)]);
}

#[test]
fn unencodable_names_print_null_in_importtime_as_glibc_does() {
    let w = scenarios::unencodable(scenarios::Costs::default()).unwrap();
    let it = MemorySink::default();
    let out = Outputs::new(None, Some(Box::new(it.clone())));
    simulator::run(&w, &out);
    out.finish().unwrap();
    let text = String::from_utf8(it.contents()).unwrap();
    let names: Vec<&str> = text.lines().skip(1).map(|l| l.rsplit(" | ").next().unwrap()).collect();
    assert_eq!(names, ["plain", "(null)", "  (null)", "  host.after", "host", "(null)"]);
}

/// The importlib scenario's probe firings: what /usr/bin/python3.11 fires
/// for `tests/fixtures/importlib/main.py` (tests/cpython_rules.rs checks it
/// against a real trace).
const IMPORTLIB_TRACE: &[&str] = &[
    "0 start app",
    "1 start optdep.core",
    "1 done optdep.core 1",
    "1 start optdep.util",
    "1 done optdep.util 1",
    "1 start app.after",
    "1 done app.after 1",
    "0 done app 1",
    "0 start lazy.inner.leaf",
    "1 start lazy.inner",
    "1 done lazy.inner 1",
    "0 done lazy.inner.leaf 1",
    "0 start lazy.inner.mod2",
    "0 done lazy.inner.mod2 1",
    "0 start late",
    "1 start leaf2",
    "1 done leaf2 1",
    "0 done late 1",
];

#[test]
fn import_module_fires_nothing_for_the_module_or_its_parents_while_their_bodies_fire() {
    let w = scenarios::importlib(scenarios::Costs { find: Duration::from_micros(1), exec: Duration::from_micros(1) })
        .unwrap();
    let (evs, summary) = events(&w);
    assert!(summary.uncaught.is_empty(), "{:?}", summary.uncaught);
    assert_eq!(lines(&evs), IMPORTLIB_TRACE);
}

#[test]
fn an_import_module_body_lands_in_the_enclosing_self_time_and_is_found_as_a_blind_spot() {
    // app's own body costs 10 µs; optdep's (loaded by import_module inside
    // app) 3 ms: app's self time holds both.
    let mut b = WorkloadBuilder::new("t");
    b.define(
        "app",
        ModuleSpec {
            exec: Duration::from_micros(10),
            imports: vec![StmtSpec::import_module("optdep")],
            ..Default::default()
        },
    )
    .unwrap();
    let optdep = ModuleSpec {
        exec: Duration::from_millis(3),
        package: Some(true),
        imports: vec![StmtSpec::import("optdep.core")],
        ..Default::default()
    };
    b.define("optdep", optdep).unwrap();
    b.define("optdep.core", fast(ModuleSpec::default())).unwrap();
    b.main_imports(vec![StmtSpec::import("app")]);
    let w = b.build().unwrap();
    let it = MemorySink::default();
    let tr = MemorySink::default();
    let out = Outputs::new(Some(Box::new(tr.clone())), Some(Box::new(it.clone())));
    simulator::run(&w, &out);
    out.finish().unwrap();
    let rec = truth::parse(&tr.contents()).unwrap();
    let f = Forest::build(&rec);
    let app = f.roots[0];
    assert_eq!(f.imports[app].module, "app");
    assert!(f.self_ns(app) >= 3_000_000, "app's self time {} ns holds optdep's body", f.self_ns(app));
    let spots = blind_spots::find(&f);
    assert_eq!(spots.len(), 1, "{spots:?}");
    assert_eq!((spots[0].module.as_str(), spots[0].enclosing), ("optdep", Some(app)));
    let text = String::from_utf8(it.contents()).unwrap();
    assert!(!text.contains("| optdep\n") && text.lines().count() == 3, "no importtime line for optdep: {text}");
}

#[test]
fn the_demo_shows_an_optional_dependency_loaded_outside_the_probes() {
    let w = importprobe::workload::demo::build().scaled(0.0);
    let (evs, _) = events(&w);
    let f = Forest::build(&Recording::new(Origin::Truth, evs));
    let spots = blind_spots::find(&f);
    assert_eq!(spots.iter().map(|s| s.module.as_str()).collect::<Vec<_>>(), ["fastjson"]);
    let line = spots[0].describe(&f);
    assert!(line.contains("self time of shopapp.compat._optional"), "{line}");
}

#[test]
fn forking_from_a_multi_threaded_process_is_refused_not_attempted() {
    // The test harness runs tests on threads: a fork here would be unsafe.
    let mut b = WorkloadBuilder::new("t");
    b.define("a", fast(ModuleSpec::default())).unwrap();
    b.main_steps(vec![StmtSpec::import("a").into(), StepSpec::Fork { plan: "child".into(), wait: true }]);
    b.fork_plan("child", vec![]);
    let w = b.build().unwrap();
    std::thread::scope(|s| {
        s.spawn(|| std::thread::sleep(Duration::from_millis(300)));
        let (evs, summary) = events(&w);
        assert_eq!(lines(&evs), ["0 start a", "0 done a 1"]);
        assert_eq!(summary.children, 0);
        assert!(summary.child_errors[0].contains("threads are running"), "{:?}", summary.child_errors);
    });
}
