//! Step 4 (`--python PATH`): the same live check on a real interpreter. A
//! small package is generated (a parent nested in its child, a cycle, a body
//! that raises, twice, a from-import, a missing submodule and a missing
//! top-level module), run with `PATH -S -X importtime` under bpftrace, and
//! the traced pairs are held against the `-X importtime` lines CPython
//! prints for the very same pairs, and against CPython's known behaviour
//! for this package (the reference traces).

use super::check::{Check, Status};
use super::compare::{self, Op};
use super::session::Session;
use super::timing::{self, Limits, PairDeviation};
use crate::events::{EventKind, ImportEvent};
use crate::report::importtime::{self, ImportTimeLine};
use crate::tracer::{preflight, runner, scripts};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The generated program and package: (relative path, contents).
pub const PROGRAM: &[(&str, &str)] = &[
    (
        "main.py",
        "import posix\nprint(posix.getpid(), flush=True)\n\
         import smokepkg.a\n\
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

/// How long bpftrace may take beyond the interpreter.
const DRAIN: Duration = Duration::from_secs(5);

/// Slack for `traced <= importtime cumulative` (clock reads, rounding).
const CONTAINMENT_SLACK_NS: i64 = 2_000;

/// Probe traps and the script's work that `-X importtime` counts but the
/// traced interval does not: per pair, plus per nesting level.
const OVERHEAD_BASE_NS: i64 = 100_000;
const OVERHEAD_PER_LEVEL_NS: i64 = 20_000;

#[derive(Debug, Clone)]
pub struct PythonOptions {
    pub python: PathBuf,
    pub bpftrace: PathBuf,
    pub timeout: Duration,
    pub limits: Limits,
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
            "bpftrace --usdt-file-activation -c traced pid {}: {} events from {threads} thread(s), {} -X importtime lines",
            run.pid,
            run.events.len(),
            run.importtime.len()
        ),
    )
    .timed(t);
    let main: Vec<&ImportEvent> = run.events.iter().filter(|e| e.tid == run.pid).collect();
    let dones: Vec<&ImportEvent> = main.iter().copied().filter(|e| e.kind == EventKind::Done).collect();
    let traced_lines: Vec<(u32, &str)> = dones.iter().map(|e| (e.depth, e.module.as_str())).collect();
    let printed: Vec<(u32, &str)> = run.importtime.iter().map(|l| (l.level, l.module.as_str())).collect();
    let ops = compare::lcs(&printed, &traced_lines);
    vec![
        trace,
        importtime_check(&ops, &printed, &traced_lines),
        program_check(&main),
        timing_check(&ops, &main, &run.importtime, &opts.limits),
    ]
}

fn run(opts: &PythonOptions) -> Result<Run, Check> {
    let name = "python/trace";
    let deadline = Instant::now() + opts.timeout;
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
    // bpftrace 0.17 splits -c on spaces, with no quoting.
    for p in [&opts.python, &main] {
        if p.to_string_lossy().chars().any(char::is_whitespace) {
            return Err(Check::impossible(
                name,
                format!("{:?} contains white space, which bpftrace -c cannot pass on", p.display().to_string()),
                "use a path without spaces (for the temporary directory: TMPDIR=/tmp)",
            ));
        }
    }
    let object = probe_object(&opts.python).ok_or_else(|| {
        Check::impossible(name, format!("{} has no import probes", opts.python.display()), "see python/probes")
    })?;
    let events_path = dir.path().join("events.txt");
    let command = format!("{} -S -X importtime {}", opts.python.display(), main.display());
    let script = scripts::find("import-events").expect("bundled import-events script");
    let mut bt = Command::new(&opts.bpftrace);
    bt.arg("--usdt-file-activation")
        .arg("-o")
        .arg(&events_path)
        .arg("-c")
        .arg(&command)
        .arg("-e")
        .arg(script.bpftrace)
        .args(scripts::positional_args(Some(&object), &[]));
    runner::bpftrace_env(&mut bt);
    let bt = Session::spawn(&mut bt).map_err(|e| {
        Check::impossible(name, format!("cannot run {}: {e}", opts.bpftrace.display()), "apt-get install -y bpftrace")
    })?;
    let end = bt.wait(deadline.max(Instant::now() + DRAIN)).map_err(|e| Check::fail(name, e.to_string()))?;
    // The interpreter's stderr (importtime lines) comes through bpftrace's.
    let importtime = importtime::parse_all(end.stderr.iter().map(String::as_str));
    let complaints: Vec<String> = end
        .stderr
        .iter()
        .filter(|l| !l.starts_with("import time:") && !runner::is_noise(l))
        .map(|l| format!("stderr: {l}"))
        .collect();
    let stdout = String::from_utf8_lossy(&end.stdout);
    let pid: Option<u32> = stdout.lines().next().and_then(|l| l.trim().parse().ok());
    if end.timed_out() {
        let what = format!("killed after {:?}", opts.timeout);
        return Err(match pid {
            // The program printed its pid: it ran, and hung or was slow.
            Some(_) => Check::fail(name, format!("`{command}` under bpftrace did not finish ({what})")),
            None => Check::impossible(
                name,
                format!("bpftrace did not start `{command}` ({what})"),
                "run the same bpftrace --usdt-file-activation -c command by hand to see why",
            ),
        }
        .with_details(complaints));
    }
    let Some(pid) = pid.filter(|_| end.success()) else {
        return Err(Check::impossible(
            name,
            format!("bpftrace could not run `{command}` ({})", end.status.expect("ended")),
            "run the same bpftrace command by hand (see details) to see why",
        )
        .with_details(complaints));
    };
    let data = std::fs::read(&events_path).map_err(|e| {
        Check::fail(name, format!("bpftrace wrote no event stream ({e})")).with_details(complaints.clone())
    })?;
    let events = crate::events::stream::parse(&data[..])
        .map_err(|e| Check::fail(name, format!("the event stream is broken: {e}")).with_details(complaints.clone()))?;
    let events: Vec<ImportEvent> = events.into_iter().filter(|e| e.pid == pid).collect();
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
fn program_check(main: &[&ImportEvent]) -> Check {
    let name = "python/program";
    let expected: Vec<ImportEvent> = EXPECTED
        .iter()
        .map(|&(depth, module, found)| ImportEvent {
            ts_ns: 0,
            pid: 0,
            tid: 0,
            depth,
            kind: if found.is_some() { EventKind::Done } else { EventKind::Start },
            module: module.to_owned(),
            found,
            truncated: false,
        })
        .collect();
    let first = main.iter().position(|e| e.module == EXPECTED[0].1 && e.kind == EventKind::Start && e.depth == 0);
    let seen: Vec<&ImportEvent> = first.map(|f| main[f..].to_vec()).unwrap_or_default();
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
    let mut details = vec![format!("program events, first difference (after start-up):")];
    details.extend(d.first_difference());
    details.extend(compare::nesting_errors(&d.seen).into_iter().take(3));
    Check::fail(name, format!("{} expected event(s) missing, {} unexpected", d.missing(), d.extra()))
        .with_details(details)
}

/// Each traced pair lies inside the interval `-X importtime` measured for
/// it (CPython takes its clock around the probes), and not far inside.
fn timing_check(ops: &[Op], main: &[&ImportEvent], printed: &[ImportTimeLine], limits: &Limits) -> Check {
    let name = "python/timing";
    let durations = pair_durations(main);
    let mut outside = Vec::new();
    let mut devs = Vec::new();
    for op in ops {
        let Op::Same(i, j) = *op else { continue };
        let Some(traced_ns) = durations.get(j).copied().flatten() else { continue };
        let line = &printed[i];
        let cum_ns = line.cumulative_us as i64 * 1000;
        let label = format!("{:?} at level {}", line.module, line.level);
        if traced_ns > cum_ns + CONTAINMENT_SLACK_NS {
            outside.push(format!(
                "{label}: traced {} µs, longer than its importtime cumulative {} µs",
                timing::us(traced_ns),
                line.cumulative_us
            ));
        }
        devs.push(PairDeviation {
            label,
            deviation_ns: cum_ns - traced_ns,
            tolerance_ns: OVERHEAD_BASE_NS + OVERHEAD_PER_LEVEL_NS * line.level as i64,
        });
    }
    if devs.is_empty() {
        return Check::fail(name, "no traced pair matched an importtime line: nothing to time");
    }
    let median = {
        let mut d: Vec<i64> = devs.iter().map(|d| d.deviation_ns).collect();
        d.sort_unstable();
        d[d.len() / 2]
    };
    let v = timing::judge_pairs(devs, limits);
    let summary = format!(
        "{} pairs lie inside their importtime interval; importtime counts median {} µs more; {}/{} within {} µs + {} µs/level",
        v.pairs,
        timing::us(median),
        v.within,
        v.pairs,
        timing::us(OVERHEAD_BASE_NS),
        timing::us(OVERHEAD_PER_LEVEL_NS)
    );
    let mut problems = outside;
    if !v.ok() {
        problems.push(format!(
            "{} of {} pairs are too far inside their importtime interval",
            v.pairs - v.within,
            v.pairs
        ));
        problems.extend(v.outliers.iter().take(5).map(|o| format!("  {}: {} µs", o.label, timing::us(o.deviation_ns))));
    }
    let status = if problems.is_empty() { Status::Pass } else { Status::Fail };
    Check::new(name, status, summary).with_details(problems)
}

/// Traced duration of each pair, in done order (`None` for a done that
/// closes nothing).
fn pair_durations(events: &[&ImportEvent]) -> Vec<Option<i64>> {
    let mut open: Vec<&ImportEvent> = Vec::new();
    let mut out = Vec::new();
    for e in events {
        match e.kind {
            EventKind::Start => open.push(e),
            EventKind::Done => out.push(open.pop().map(|s| e.ts_ns as i64 - s.ts_ns as i64)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_events_nest() {
        let events: Vec<ImportEvent> = EXPECTED
            .iter()
            .map(|&(depth, module, found)| ImportEvent {
                ts_ns: 0,
                pid: 1,
                tid: 1,
                depth,
                kind: if found.is_some() { EventKind::Done } else { EventKind::Start },
                module: module.into(),
                found,
                truncated: false,
            })
            .collect();
        let refs: Vec<&ImportEvent> = events.iter().collect();
        assert!(compare::nesting_errors(&refs).is_empty());
    }

    #[test]
    fn a_program_without_its_imports_fails_the_program_check() {
        let c = program_check(&[]);
        assert_eq!(c.status, Status::Fail);
        assert!(c.summary.starts_with(&format!("{} expected", EXPECTED.len())), "{}", c.summary);
    }

    fn line(level: u32, module: &str, cum: u64) -> ImportTimeLine {
        ImportTimeLine { self_us: 1, cumulative_us: cum, level, module: module.into() }
    }

    fn ev(ts_ns: u64, depth: u32, module: &str, found: Option<bool>) -> ImportEvent {
        let kind = if found.is_some() { EventKind::Done } else { EventKind::Start };
        ImportEvent { ts_ns, pid: 1, tid: 1, depth, kind, module: module.into(), found, truncated: false }
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
        let events = [ev(0, 0, "a", None), ev(500_000, 0, "a", Some(true))];
        let main: Vec<&ImportEvent> = events.iter().collect();
        let pairs = [(0, "a")];
        let ops = compare::lcs(&pairs, &pairs);
        let ok = timing_check(&ops, &main, &[line(0, "a", 520)], &Limits::default());
        assert_eq!(ok.status, Status::Pass, "{ok:?}");
        let short = timing_check(&ops, &main, &[line(0, "a", 400)], &Limits::default());
        assert_eq!(short.status, Status::Fail, "{short:?}");
        assert!(short.details[0].contains("longer than its importtime cumulative 400"), "{short:?}");
    }
}
