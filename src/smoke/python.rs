//! Step 4 (`--python PATH`): the same live check on a real interpreter. A
//! small package is generated (a parent nested in its child, a cycle, a body
//! that raises, twice, a from-import, a missing submodule and a missing
//! top-level module), run with `PATH -S -X importtime` under the runner
//! `importprobe trace` uses and its default collector, and the traced pairs
//! are held against the `-X importtime` lines CPython prints for the very
//! same pairs, and against CPython's known behaviour for this package (the
//! reference traces).

use super::check::{Check, Status};
use crate::events::compare::{self, Op};
use crate::events::forest::{Forest, ImportId};
use crate::events::importtime::{self, ImportTimeLine};
use crate::events::tolerance::{self, Deviation, Judge, Tolerance};
use crate::events::{EventKind, ImportEvent, Origin, Recording};
use crate::tracer::bpftrace::Bpftrace;
use crate::tracer::collect;
use crate::tracer::preflight;
use crate::tracer::runner::Target;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The generated program and package: (relative path, contents).
pub const PROGRAM: &[(&str, &str)] = &[
    (
        "main.py",
        "import smokepkg.a\n\
         try:\n    import smokepkg.broken\nexcept RuntimeError:\n    pass\n\
         from smokepkg.sub import leaf\n\
         try:\n    import smokepkg.broken\nexcept RuntimeError:\n    pass\n\
         try:\n    import smokepkg.missing\nexcept ImportError:\n    pass\n\
         try:\n    import importprobe_smoke_absent\nexcept ImportError:\n    pass\n",
    ),
    ("smokepkg/__init__.py", ""),
    ("smokepkg/a.py", "import smokepkg.b\n"),
    ("smokepkg/b.py", "import smokepkg.a\n"),
    ("smokepkg/broken.py", "raise RuntimeError('importprobe smoke: a failing module body')\n"),
    ("smokepkg/sub/__init__.py", "from . import leaf\n"),
    ("smokepkg/sub/leaf.py", "x = 1\n"),
];

/// What CPython fires for [`PROGRAM`] after start-up: (depth, module,
/// found), `None` = start. `import smokepkg.a` nests the parent inside the
/// child; `smokepkg.b` importing `smokepkg.a` back fires nothing (cycle);
/// the failing body fires again with found 0; `smokepkg.missing` is one pair.
pub const EXPECTED: &[(u32, &str, Option<bool>)] = &[
    (0, "smokepkg.a", None),
    (1, "smokepkg", None),
    (1, "smokepkg", Some(true)),
    (1, "smokepkg.b", None),
    (1, "smokepkg.b", Some(true)),
    (0, "smokepkg.a", Some(true)),
    (0, "smokepkg.broken", None),
    (0, "smokepkg.broken", Some(false)),
    (0, "smokepkg.sub", None),
    (1, "smokepkg.sub.leaf", None),
    (1, "smokepkg.sub.leaf", Some(true)),
    (0, "smokepkg.sub", Some(true)),
    (0, "smokepkg.broken", None),
    (0, "smokepkg.broken", Some(false)),
    (0, "smokepkg.missing", None),
    (0, "smokepkg.missing", Some(false)),
    (0, "importprobe_smoke_absent", None),
    (0, "importprobe_smoke_absent", Some(false)),
];

#[derive(Debug, Clone)]
pub struct PythonOptions {
    pub python: PathBuf,
    pub bpftrace: Bpftrace,
    pub timeout: Duration,
    pub tolerance: Tolerance,
}

/// The interpreter's probes, always checked (no privileges needed). The
/// file given is what runs, so a wrapper script (a pyenv shim) is refused
/// rather than looked through.
pub fn probes_check(python: &Path) -> Check {
    let t = Instant::now();
    let name = "python/probes";
    let fix = "give --python a CPython executable built --with-dtrace (Debian/Ubuntu: --python /usr/bin/python3.11)";
    let head = std::fs::read(python).map(|mut b| {
        b.truncate(2);
        b
    });
    let check = match (head, probe_object(python)) {
        (Err(e), _) => Check::impossible(name, format!("cannot read {}: {e}", python.display()), fix),
        (Ok(h), _) if h == b"#!" => Check::impossible(
            name,
            format!("{} is a script (a pyenv shim?), not a CPython executable", python.display()),
            fix,
        ),
        (Ok(_), Some(object)) if object == python => {
            Check::pass(name, format!("{} carries python:import__find__load__{{start,done}}", python.display()))
        }
        (Ok(_), Some(object)) => Check::pass(
            name,
            format!("{} is linked against {}, which carries the import probes", python.display(), object.display()),
        ),
        (Ok(_), None) => {
            let has = preflight::probe_names(python);
            let has = if has.is_empty() { "no SDT probes at all".to_owned() } else { has.join(", ") };
            Check::impossible(name, format!("{} has no python import probes (it has {has})", python.display()), fix)
        }
    };
    check.timed(t)
}

/// The object that carries the interpreter's probes: the executable, or
/// for a CPython built --enable-shared its libpython.
pub fn probe_object(python: &Path) -> Option<PathBuf> {
    if preflight::has_import_probes(python) {
        return Some(python.to_path_buf());
    }
    preflight::linked_libpython(python).filter(|lib| preflight::has_import_probes(lib))
}

/// What the traced interpreter produced.
struct Run {
    pid: u32,
    events: Vec<ImportEvent>,
    importtime: Vec<ImportTimeLine>,
}

/// The live checks: trace, importtime, program, timing.
pub fn live_checks(opts: &PythonOptions) -> Vec<Check> {
    let t = Instant::now();
    let run = match run(opts) {
        Ok(r) => r,
        Err(c) => {
            let why = format!("no trace ({})", c.status.label());
            return vec![
                c.timed(t),
                Check::skipped("python/importtime", &why),
                Check::skipped("python/program", &why),
                Check::skipped("python/timing", why),
            ];
        }
    };
    let threads = compare::by_thread(&run.events).len();
    let trace = Check::pass(
        "python/trace",
        format!(
            "bpftrace {} captured pid {} from its first instruction: {} events from {threads} thread(s), {} -X importtime lines",
            opts.bpftrace.version,
            run.pid,
            run.events.len(),
            run.importtime.len()
        ),
    )
    .timed(t);
    let main: Vec<ImportEvent> = run.events.iter().filter(|e| e.tid == run.pid).cloned().collect();
    let forest = Forest::build(&Recording::new(Origin::Capture, main.clone()));
    let done_order = forest.in_done_order();
    let traced_lines: Vec<(u32, &str)> =
        done_order.iter().map(|&i| (forest.imports[i].depth, forest.imports[i].module.as_str())).collect();
    let printed: Vec<(u32, &str)> =
        run.importtime.iter().map(|l| (l.level().unwrap_or(0), l.module.as_str())).collect();
    let ops = compare::lcs(&printed, &traced_lines);
    vec![
        trace,
        importtime_check(&ops, &printed, &traced_lines),
        program_check(&main),
        timing_check(&ops, &forest, &done_order, &run.importtime, &opts.tolerance),
    ]
}

fn run(opts: &PythonOptions) -> Result<Run, Check> {
    let name = "python/trace";
    let dir = tempfile::Builder::new()
        .prefix("importprobe-smoke-py-")
        .tempdir()
        .map_err(|e| Check::impossible(name, format!("cannot create a temporary directory: {e}"), "set TMPDIR"))?;
    for (rel, text) in PROGRAM {
        let path = dir.path().join(rel);
        let written = path.parent().map_or(Ok(()), std::fs::create_dir_all).and_then(|_| std::fs::write(&path, text));
        written.map_err(|e| Check::impossible(name, format!("cannot write {}: {e}", path.display()), "set TMPDIR"))?;
    }
    let main = dir.path().join("main.py");
    let stderr_path = dir.path().join("stderr.txt");
    let scratch =
        |e: std::io::Error| Check::impossible(name, format!("cannot create a scratch file: {e}"), "set TMPDIR");
    let argv: Vec<std::ffi::OsString> =
        vec![opts.python.clone().into(), "-S".into(), "-X".into(), "importtime".into(), main.into()];
    let mut req = collect::request(Target::Command(argv), opts.bpftrace.clone(), collect::DEFAULT_MAX_IMPORTS);
    req.deadline = Some(opts.timeout);
    req.command_output.stderr = Some(std::fs::File::create(&stderr_path).map_err(scratch)?);
    req.command_output.stdout = Some(std::fs::File::create(dir.path().join("stdout.txt")).map_err(scratch)?);
    let collected = collect::collect(req);
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    let importtime: Vec<ImportTimeLine> = importtime::parse_log(&stderr).into_iter().map(|(_, l)| l).collect();
    let python_said = stderr.lines().filter(|l| !l.starts_with("import time:")).map(|l| format!("python stderr: {l}"));
    let (rec, outcome) = match collected {
        Ok(c) => c,
        Err(e @ collect::CollectError::Trace(_)) => {
            return Err(Check::impossible(
                name,
                format!("cannot trace {}: {e}", opts.python.display()),
                "run `importprobe trace -- PYTHON -c pass` to see why",
            )
            .with_details(e.stderr().to_vec()))
        }
        Err(e) => {
            let details = python_said.chain(e.stderr().iter().map(|l| format!("bpftrace: {l}"))).collect::<Vec<_>>();
            return Err(
                Check::fail(name, format!("tracing {} failed: {e}", opts.python.display())).with_details(details)
            );
        }
    };
    let complaints: Vec<String> = python_said.chain(outcome.stderr.iter().map(|l| format!("bpftrace: {l}"))).collect();
    if let Some(status) = outcome.command.filter(|s| !s.success()) {
        return Err(Check::fail(name, format!("the traced interpreter failed ({status})")).with_details(complaints));
    }
    let pid = outcome.pid;
    let events: Vec<ImportEvent> = rec.events.into_iter().filter(|e| e.pid == pid).collect();
    if events.is_empty() {
        return Err(Check::fail(name, format!("bpftrace saw no import of pid {pid}")).with_details(complaints));
    }
    Ok(Run { pid, events, importtime })
}

fn importtime_check(ops: &[Op], printed: &[(u32, &str)], traced: &[(u32, &str)]) -> Check {
    let name = "python/importtime";
    let bad: Vec<&Op> = ops.iter().filter(|o| !matches!(o, Op::Same(..))).collect();
    if bad.is_empty() && !printed.is_empty() {
        return Check::pass(
            name,
            format!(
                "the {} traced pairs are the {} -X importtime lines: same modules, same nesting, same order",
                traced.len(),
                printed.len()
            ),
        );
    }
    let details = bad
        .iter()
        .take(compare::SHOWN * 2)
        .map(|o| match **o {
            Op::Missing(i) => format!("  - importtime #{i}: level {} {:?} (not traced)", printed[i].0, printed[i].1),
            Op::Extra(j) => {
                format!("  + traced pair #{j}: depth {} {:?} (no importtime line)", traced[j].0, traced[j].1)
            }
            Op::Same(..) => unreachable!(),
        })
        .collect::<Vec<_>>();
    let missing = bad.iter().filter(|o| matches!(o, Op::Missing(_))).count();
    Check::fail(
        name,
        format!(
            "{missing} -X importtime line(s) without a traced pair, {} traced pair(s) without a line ({} lines, {} pairs)",
            bad.len() - missing,
            printed.len(),
            traced.len()
        ),
    )
    .with_details(details)
}

/// The program's own imports, from its first one on, against CPython's
/// known behaviour.
fn program_check(main: &[ImportEvent]) -> Check {
    let name = "python/program";
    let expected: Vec<ImportEvent> = EXPECTED
        .iter()
        .map(|&(depth, module, found)| ImportEvent {
            kind: if found.is_some() { EventKind::Done } else { EventKind::Start },
            found,
            ..ImportEvent::start(0, 0, 0, depth, module)
        })
        .collect();
    let first = main.iter().position(|e| e.module == EXPECTED[0].1 && e.kind == EventKind::Start && e.depth == 0);
    let seen: Vec<&ImportEvent> = first.map(|f| main[f..].iter().collect()).unwrap_or_default();
    let exp: Vec<&ImportEvent> = expected.iter().collect();
    let d = compare::ThreadDiff {
        tid: main.first().map_or(0, |e| e.tid),
        ops: compare::align(&exp, &seen),
        expected: exp,
        seen,
    };
    if d.is_clean() {
        return Check::pass(
            name,
            format!(
                "the package's {} events are CPython's: parent inside child, cycle fires once, failing body twice \
                 with found=0, from-import, missing submodule and module with found=0",
                EXPECTED.len()
            ),
        );
    }
    let mut details = vec!["program events, first difference (after start-up):".to_owned()];
    details.extend(d.first_difference());
    Check::fail(name, format!("{} expected event(s) missing, {} unexpected", d.missing(), d.extra()))
        .with_details(details)
}

/// Each traced pair lies inside the interval `-X importtime` measured for
/// it (CPython takes its clock around the probes), and not far inside
/// ([`Tolerance`]'s importtime bounds).
fn timing_check(
    ops: &[Op],
    forest: &Forest,
    done_order: &[ImportId],
    printed: &[ImportTimeLine],
    tol: &Tolerance,
) -> Check {
    let name = "python/timing";
    let mut outside = Vec::new();
    let mut judge = Judge::new(*tol);
    for op in ops {
        let Op::Same(i, j) = *op else { continue };
        let id = done_order[j];
        let traced_ns = forest.cumulative_ns(id) as i64;
        let line = &printed[i];
        let Some(cum_us) = line.cumulative_us else { continue };
        let cum_ns = cum_us as i64 * 1000;
        let label = format!("{:?} at level {}", line.module, line.level().unwrap_or(0));
        if traced_ns > cum_ns + tol.importtime_slack_ns {
            outside.push(format!(
                "{label}: traced {} µs, longer than its importtime cumulative {cum_us} µs",
                tolerance::us(traced_ns)
            ));
        }
        let nested = forest.descendants(id) as i64;
        // One-sided: importtime counts more than the pair, never less.
        let extra = cum_ns - traced_ns;
        let allowance_ns = tol.importtime_base_ns + tol.importtime_per_nested_ns * nested;
        judge.push(Deviation { label, deviation_ns: extra.max(0), allowance_ns });
    }
    if judge.deviations.is_empty() {
        return Check::fail(name, "no traced pair matched an importtime line: nothing to time");
    }
    let median = {
        let mut d: Vec<i64> = judge.deviations.iter().map(|d| d.deviation_ns).collect();
        d.sort_unstable();
        d[d.len() / 2]
    };
    let v = judge.verdict(1);
    let summary = format!(
        "{} pairs lie inside their importtime interval; importtime counts median {} µs more; {}/{} within {} µs + {} µs per nested pair",
        v.checked,
        tolerance::us(median),
        v.within,
        v.checked,
        tolerance::us(tol.importtime_base_ns),
        tolerance::us(tol.importtime_per_nested_ns)
    );
    let mut problems = outside;
    problems.extend(v.problems("pairs"));
    let status = if problems.is_empty() { Status::Pass } else { Status::Fail };
    Check::new(name, status, summary).with_details(problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expected_events() -> Vec<ImportEvent> {
        EXPECTED
            .iter()
            .map(|&(depth, module, found)| ImportEvent {
                kind: if found.is_some() { EventKind::Done } else { EventKind::Start },
                found,
                ..ImportEvent::start(0, 1, 1, depth, module)
            })
            .collect()
    }

    #[test]
    fn expected_events_nest() {
        let f = Forest::build(&Recording::new(Origin::Truth, expected_events()));
        assert!(f.anomalies.is_empty(), "{:?}", f.anomalies);
        assert_eq!(program_check(&expected_events()).status, Status::Pass);
    }

    #[test]
    fn a_program_without_its_imports_fails_the_program_check() {
        let c = program_check(&[]);
        assert_eq!(c.status, Status::Fail);
        assert!(c.summary.starts_with(&format!("{} expected", EXPECTED.len())), "{}", c.summary);
    }

    fn line(level: usize, module: &str, cum: u64) -> ImportTimeLine {
        ImportTimeLine { self_us: Some(1), cumulative_us: Some(cum), pad: level * 2, module: module.into() }
    }

    #[test]
    fn importtime_lines_must_match_traced_pairs() {
        let printed = [(1, "b"), (0, "a")];
        assert_eq!(importtime_check(&compare::lcs(&printed, &printed), &printed, &printed).status, Status::Pass);
        let traced = [(0, "a")];
        let c = importtime_check(&compare::lcs(&printed, &traced), &printed, &traced);
        assert_eq!(c.status, Status::Fail);
        assert!(c.details[0].contains("- importtime #0: level 1 \"b\""), "{c:?}");
    }

    #[test]
    fn a_traced_pair_longer_than_its_importtime_fails() {
        let events = vec![ImportEvent::start(0, 1, 1, 0, "a"), ImportEvent::done(500_000, 1, 1, 0, "a", true)];
        let forest = Forest::build(&Recording::new(Origin::Capture, events));
        let order = forest.in_done_order();
        let pairs = [(0, "a")];
        let ops = compare::lcs(&pairs, &pairs);
        let tol = Tolerance::default();
        let ok = timing_check(&ops, &forest, &order, &[line(0, "a", 520)], &tol);
        assert_eq!(ok.status, Status::Pass, "{ok:?}");
        let short = timing_check(&ops, &forest, &order, &[line(0, "a", 400)], &tol);
        assert_eq!(short.status, Status::Fail, "{short:?}");
        assert!(short.details[0].contains("longer than its importtime cumulative 400"), "{short:?}");
    }
}
