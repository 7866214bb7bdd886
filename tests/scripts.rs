//! Every bundled script, run for real under every tracer this host has
//! (bpftrace, and DTrace where present: the compatibility matrix runs this
//! file in each environment), held to the simulator's ground truth and to
//! real CPython's `-X importtime`. One parser per script output and one
//! comparison per script serve both twins: the DTrace twin must say what
//! the bpftrace script says. Without tracing the tests print `SKIP: ...`
//! (or fail with IMPORTPROBE_REQUIRE_TRACING=1).

mod common;

use common::outputs::{flag, num, parse_latency, parse_tree, uncut, TreeLine};
use common::{
    by_tid, pairs, python, sequences, thread_count, trace_python, trace_sim, tracers, with_timing_retry, Pair, Timing,
    Tracer,
};
use importprobe::events::forest::Forest;
use importprobe::events::{capture, importtime, stream, EventKind, ImportEvent, NameState};
use std::collections::{BTreeMap, HashMap};

use std::ffi::OsString;

/// The simulator workloads every script is checked on.
const WORKLOADS: &[&[&str]] = &[
    &["--workload", "demo"],
    &["--workload", "cycle"],
    &["--workload", "threads"],
    &["--workload", "deep", "--count", "200"],
    &["--workload", "long-name"],
];

/// The workloads a script is checked on under a tracer: all of them under
/// bpftrace; under DTrace, whose every run costs seconds of compilation,
/// the ones that cover what the twins must get right (threads, failures,
/// cycles and a nested parent in the demo; depth beyond 31 in deep), plus
/// a test's own extras.
fn workloads<'a>(t: &Tracer, all: &[&'a [&'a str]], extra: &[&'a [&'a str]]) -> Vec<&'a [&'a str]> {
    let keep = |w: &&&[&str]| !t.is_dtrace() || matches!(w.get(1), Some(&"demo") | Some(&"deep"));
    all.iter().filter(keep).chain(extra.iter()).copied().collect()
}

fn name_of(w: &[&str]) -> String {
    w.join(" ").replace("--workload ", "")
}

/// `123.456` microseconds -> ns.
fn us_frac(s: &str, line: &str) -> u64 {
    let (a, b) = s.split_once('.').unwrap_or_else(|| panic!("bad time {s:?} in {line:?}"));
    num(a, "us", line) * 1000 + num(b, "us fraction", line)
}

/// The shown name of an import with limit 200: the truth's (no name of the
/// workloads is cut at 200 bytes).
fn assert_name(what: &str, shown: &str, state: NameState, p: &Pair) {
    assert_eq!((shown, state), (p.module.as_str(), p.name), "{what}: name");
}

// ---------------------------------------------------------------- raw events: import-events and import-capture

#[test]
fn import_events_and_import_capture_match_the_truth_event_for_event() {
    for t in tracers() {
        for w in workloads(&t, WORKLOADS, &[&["--workload", "odd-names"]]) {
            let what = format!("import-events on {} under {}", name_of(w), t.label());
            let tr = trace_sim(&t, "import-events", w, &[], None);
            tr.assert_quiet(&what);
            let seen = stream::parse(&tr.out).unwrap_or_else(|e| panic!("{what}: {e}\n{}", tr.text()));
            common::check_raw(&what, &seen, &tr.truth);

            let what = format!("import-capture on {} under {}", name_of(w), t.label());
            let tr = trace_sim(&t, "import-capture", w, &[], None);
            tr.assert_quiet(&what);
            let seen = capture::parse(&tr.out).unwrap_or_else(|e| panic!("{what}: {e}\n{}", tr.text()));
            common::check_raw(&what, &seen, &tr.truth);
        }
    }
}

#[test]
fn raw_collectors_flag_names_cut_at_the_string_limit() {
    for t in tracers().into_iter().filter(|t| !t.is_dtrace()) {
        for script in ["import-events", "import-capture"] {
            let tr = trace_sim(&t, script, &["--workload", "long-name"], &[], Some(64));
            tr.assert_quiet(script);
            let seen = if script == "import-events" {
                stream::parse(&tr.out).unwrap().events
            } else {
                capture::parse(&tr.out).unwrap().events
            };
            assert_eq!(seen.len(), tr.truth.events.len(), "{script}");
            let by = |evs: &[ImportEvent]| sequences(evs).into_values().flatten().collect::<Vec<_>>();
            for (e, truth) in by(&seen).iter().zip(by(&tr.truth.events)) {
                if truth.2.len() > 63 {
                    assert_eq!(
                        (e.3, e.2.as_str()),
                        (NameState::Cut, &truth.2[..63]),
                        "{script}: a cut name is its first 63 bytes"
                    );
                } else {
                    assert_eq!((e.3, &e.2), (NameState::Full, &truth.2), "{script}");
                }
            }
            // The two 150-byte modules share their first 63 bytes: both are
            // flagged, so a consumer can tell they may differ.
            let cut = seen.iter().filter(|e| e.name == NameState::Cut && e.kind == EventKind::Start).count();
            assert_eq!(cut, 2, "{script}");
        }
    }
}

// ---------------------------------------------------------------- import-tree

fn check_tree_against(what: &str, tree: &[TreeLine], truth: &[Pair]) {
    let mut timing = Timing::new();
    assert_eq!(tree.len(), truth.len(), "{what}: one tree line per import pair");
    let mut got: BTreeMap<u32, Vec<&TreeLine>> = BTreeMap::new();
    for l in tree {
        got.entry(l.tid).or_default().push(l);
    }
    let want = by_tid(truth);
    assert_eq!(got.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>(), "{what}: threads");
    for (tid, lines) in got {
        for (l, p) in lines.iter().zip(&want[&tid]) {
            let ctx = format!("{what}: tid {tid} {l:?} vs {p:?}");
            assert_eq!((l.depth, l.found), (p.depth, p.found), "{ctx}");
            assert_name(&ctx, &l.module, l.name, p);
            // Rounded to the nearest µs: inside the tolerance's base.
            timing.check(&format!("{ctx} cum"), l.cum_us * 1000, p.cum_ns, p);
            timing.check(&format!("{ctx} self"), l.self_us * 1000, p.self_ns, p);
        }
    }
    timing.finish(what, thread_count(truth));
}

#[test]
fn import_tree_matches_truth() {
    for t in tracers() {
        for w in workloads(&t, WORKLOADS, &[]) {
            let what = format!("import-tree on {} under {}", name_of(w), t.label());
            with_timing_retry(&what, || {
                let tr = trace_sim(&t, "import-tree", w, &[], None);
                tr.assert_quiet(&what);
                check_tree_against(&what, &parse_tree(&tr.text()), &pairs(&tr.forest));
            });
        }
    }
}

#[test]
fn import_tree_flags_names_cut_at_the_string_limit() {
    for t in tracers().into_iter().filter(|t| !t.is_dtrace()) {
        let tr = trace_sim(&t, "import-tree", &["--workload", "long-name"], &[], Some(64));
        tr.assert_quiet("import-tree, limit 64");
        let tree = parse_tree(&tr.text());
        let truth = pairs(&tr.forest);
        assert_eq!(tree.len(), truth.len());
        for (l, p) in tree.iter().zip(&truth) {
            assert_eq!(l.name == NameState::Cut, p.module.len() > 63, "{l:?}");
            assert_eq!(l.module, p.module[..p.module.len().min(63)]);
        }
        assert_eq!(tree.iter().filter(|l| l.name == NameState::Cut).count(), 2, "both 150-byte modules flagged");
    }
}

// ---------------------------------------------------------------- import-latency

#[test]
fn import_latency_matches_truth() {
    for t in tracers() {
        for w in workloads(&t, WORKLOADS, &[]) {
            let what = format!("import-latency on {} under {}", name_of(w), t.label());
            with_timing_retry(&what, || {
                let tr = trace_sim(&t, "import-latency", w, &[], None);
                tr.assert_quiet(&what);
                let out = tr.text();
                let rows = parse_latency(&out);
                let truth = pairs(&tr.forest);
                assert_eq!(rows.len(), truth.len(), "{what}: one row per import\n{out}");
                let index: HashMap<(u32, usize), &Pair> = truth.iter().map(|p| ((p.tid, p.seq), p)).collect();
                let mut prev = 0;
                let mut timing = Timing::new();
                for (name, [found, n, tid, seq, depth, self_us], cum_us) in rows {
                    let p = index[&(tid as u32, seq as usize)];
                    assert_eq!((found == 1, depth as u32), (p.found, p.depth), "{what}: {name}");
                    assert_name(&what, uncut(&name, flag(n, &name)), flag(n, &name), p);
                    // Floored to µs: at most 1 µs low, inside the tolerance's base.
                    timing.check(&format!("{what} {name} cum"), cum_us * 1000, p.cum_ns, p);
                    timing.check(&format!("{what} {name} self"), self_us * 1000, p.self_ns, p);
                    assert!(cum_us >= prev, "{what}: summary sorted by cumulative time");
                    prev = cum_us;
                }
                timing.finish(&what, thread_count(&truth));
                assert!(!out.contains("@seq") && !out.contains("@depth"), "{what}: maps left over\n{out}");
            });
        }
    }
}

// ---------------------------------------------------------------- import-slowest

/// Two sections of `@map[name, N, tid, #]: us`.
fn parse_slowest(out: &str, map: &str) -> Vec<(String, NameState, u32, usize, u64)> {
    let prefix = format!("@{map}[");
    out.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(prefix.as_str())?;
            let (inner, v) = rest.rsplit_once("]: ").unwrap_or_else(|| panic!("{line:?}"));
            let f: Vec<&str> = inner.rsplitn(4, ", ").collect();
            assert_eq!(f.len(), 4, "{line:?}");
            let state = flag(num(f[2], "name flag", line), line);
            Some((
                uncut(f[3], state).to_string(),
                state,
                num(f[1], "tid", line) as u32,
                num(f[0], "#", line) as usize,
                num(v, "us", line),
            ))
        })
        .collect()
}

fn check_slowest(
    what: &str,
    rows: &[(String, NameState, u32, usize, u64)],
    truth: &[Pair],
    n: usize,
    key: fn(&Pair) -> u64,
) {
    assert_eq!(rows.len(), n.min(truth.len()), "{what}: top {n}");
    let index: HashMap<(u32, usize), &Pair> = truth.iter().map(|p| ((p.tid, p.seq), p)).collect();
    let mut reported = std::collections::HashSet::new();
    let mut min_reported = u64::MAX;
    let mut timing = Timing::new();
    for (name, state, tid, seq, us) in rows {
        let p = index[&(*tid, *seq)];
        assert_name(what, name, *state, p);
        timing.check(&format!("{what} {name}"), us * 1000, key(p), p);
        reported.insert((*tid, *seq));
        min_reported = min_reported.min(key(p));
    }
    timing.finish(what, thread_count(truth));
    if thread_count(truth) > 1 {
        return; // times may be off there (see `Timing`), so the ranking may be too
    }
    // Every import left out is not slower than the fastest one reported,
    // give or take the measurement tolerance, but for the model's few
    // outliers (a preemption between a truth stamp and its probe makes the
    // truth or the trace of one import milliseconds long).
    let tol = importprobe::events::tolerance::Tolerance::default();
    let misranked: Vec<String> = truth
        .iter()
        .filter(|p| !reported.contains(&(p.tid, p.seq)))
        .filter(|p| key(p) as i64 > min_reported as i64 + 2 * tol.allowance_ns(&p.facts))
        .map(|p| format!("{} ({} ns)", p.module, key(p)))
        .collect();
    assert!(
        misranked.len() <= tol.allowed_outliers(truth.len(), 1),
        "{what}: {misranked:?} should be in the top {n} (fastest reported {min_reported} ns)"
    );
}

#[test]
fn import_slowest_matches_truth() {
    for t in tracers() {
        for w in workloads(&t, WORKLOADS, &[]) {
            for (params, n) in [(&[][..], 10), (&["3"][..], 3)] {
                let what = format!("import-slowest {params:?} on {} under {}", name_of(w), t.label());
                with_timing_retry(&what, || {
                    let tr = trace_sim(&t, "import-slowest", w, params, None);
                    tr.assert_quiet(&what);
                    let out = tr.text();
                    let truth = pairs(&tr.forest);
                    check_slowest(&what, &parse_slowest(&out, "slowest_cumulative_us"), &truth, n, |p| p.cum_ns);
                    check_slowest(&what, &parse_slowest(&out, "slowest_self_us"), &truth, n, |p| p.self_ns);
                });
            }
        }
    }
}

// ---------------------------------------------------------------- import-failed

#[derive(Debug, PartialEq)]
struct Failure {
    tid: u32,
    depth: u32,
    module: String,
    name: NameState,
    cost_ns: u64,
    /// Importers, outermost first.
    chain: Vec<String>,
    /// Importers beyond the 32 shown.
    more: usize,
}

fn kv<'a>(line: &'a str, key: &str) -> &'a str {
    let start = line.find(&format!(" {key}=")).unwrap_or_else(|| panic!("no {key}= in {line:?}")) + key.len() + 2;
    let rest = &line[start..];
    if key == "module" {
        rest
    } else {
        rest.split(' ').next().unwrap()
    }
}

fn parse_failed(out: &str) -> Vec<Failure> {
    let mut v: Vec<Failure> = Vec::new();
    for line in out.lines() {
        if line.starts_with("FAILED ") {
            let line = &format!(" {line}");
            let name = flag(num(kv(line, "name"), "name", line), line);
            v.push(Failure {
                tid: num(kv(line, "tid"), "tid", line) as u32,
                depth: num(kv(line, "depth"), "depth", line) as u32,
                module: uncut(kv(line, "module"), name).to_string(),
                name,
                cost_ns: us_frac(kv(line, "cost_us"), line),
                chain: Vec::new(),
                more: 0,
            });
        } else if line.starts_with("  importer ") {
            let f = v.last_mut().unwrap_or_else(|| panic!("importer before FAILED: {line:?}"));
            assert_eq!(num(kv(line, "tid"), "tid", line) as u32, f.tid, "{line}");
            let depth = num(kv(line, "depth"), "depth", line) as usize;
            assert_eq!(depth + f.chain.len() + 1, f.depth as usize, "importers innermost first: {line}");
            f.chain.insert(0, kv(line, "module").to_string());
        } else if let Some(rest) = line.strip_prefix("  ... ") {
            let f = v.last_mut().unwrap_or_else(|| panic!("more importers before FAILED: {line:?}"));
            f.more =
                num(rest.strip_suffix(" more importers").unwrap_or_else(|| panic!("{line:?}")), "more", line) as usize;
        }
    }
    v
}

#[test]
fn import_failed_matches_truth() {
    for t in tracers() {
        for w in workloads(&t, WORKLOADS, &[&["--workload", "refpkg"]]) {
            let what = format!("import-failed on {} under {}", name_of(w), t.label());
            with_timing_retry(&what, || {
                let tr = trace_sim(&t, "import-failed", w, &[], None);
                tr.assert_quiet(&what);
                let got = parse_failed(&tr.text());
                let all = pairs(&tr.forest);
                let want: Vec<Pair> = all.iter().filter(|p| !p.found).cloned().collect();
                assert_eq!(got.len(), want.len(), "{what}: failures\n{}", tr.text());
                let mut got_by: BTreeMap<u32, Vec<&Failure>> = BTreeMap::new();
                for f in &got {
                    got_by.entry(f.tid).or_default().push(f);
                }
                let mut timing = Timing::new();
                for (tid, ps) in by_tid(&want) {
                    for (f, p) in got_by[&tid].iter().zip(&ps) {
                        let shown = p.chain.len().min(32);
                        assert_eq!(
                            (f.depth, &f.chain[..], f.more),
                            (p.depth, &p.chain[p.chain.len() - shown..], p.chain.len() - shown),
                            "{what}"
                        );
                        assert_name(&what, &f.module, f.name, p);
                        timing.check(&format!("{what} {}", p.module), f.cost_ns, p.cum_ns, p);
                    }
                }
                timing.finish(&what, thread_count(&all));
            });
        }
    }
}

// ---------------------------------------------------------------- import-hist

/// Buckets of the histogram after a header line: bpftrace's `[lo, hi) n |@@@|`
/// or DTrace's quantize `value ---- Distribution ---- count` rows, as
/// `((lo, hi), count)` in µs.
type Buckets = Vec<((u64, u64), u64)>;

fn bpftrace_bucket(label: &str) -> (u64, u64) {
    let v = |s: &str| -> u64 {
        let s = s.trim();
        let (n, mult) = match s.chars().last() {
            Some('K') => (&s[..s.len() - 1], 1u64 << 10),
            Some('M') => (&s[..s.len() - 1], 1 << 20),
            Some('G') => (&s[..s.len() - 1], 1 << 30),
            _ => (s, 1),
        };
        n.parse::<u64>().unwrap_or_else(|_| panic!("bucket {label:?}")) * mult
    };
    let inner = label.trim_start_matches('[').trim_end_matches(')').trim_end_matches(']');
    match inner.split_once(',') {
        Some((a, b)) => (v(a), v(b)),
        None => (v(inner), v(inner) + 1),
    }
}

/// Both layouts: bpftrace's hist() and DTrace's quantize() (a row `value
/// |@@@ count` covers [value, next row's value)).
fn parse_hist(out: &str) -> HashMap<&'static str, Buckets> {
    let mut m: HashMap<&'static str, Buckets> = HashMap::new();
    let mut cur = None;
    let mut dtrace_rows: Vec<(u64, u64)> = Vec::new();
    let flush = |m: &mut HashMap<&'static str, Buckets>, cur: Option<&'static str>, rows: &mut Vec<(u64, u64)>| {
        if let Some(c) = cur {
            for (i, &(lo, n)) in rows.iter().enumerate() {
                let hi = rows.get(i + 1).map_or(lo.max(1) * 2, |r| r.0);
                if n > 0 {
                    m.entry(c).or_default().push(((lo, hi), n));
                }
            }
        }
        rows.clear();
    };
    for line in out.lines() {
        if line.contains("found = 1") {
            flush(&mut m, cur, &mut dtrace_rows);
            cur = Some("found");
        } else if line.contains("found = 0") {
            flush(&mut m, cur, &mut dtrace_rows);
            cur = Some("not found");
        } else if let (Some(c), true) = (cur, line.starts_with('[')) {
            let end = line.find([')', ']']).unwrap_or_else(|| panic!("bucket {line:?}")) + 1;
            let (label, rest) = line.split_at(end);
            let count = num(rest.split('|').next().unwrap(), "count", line);
            m.entry(c).or_default().push((bpftrace_bucket(label), count));
        } else if cur.is_some() && line.contains('|') && !line.contains("Distribution") {
            let (value, rest) = line.split_once('|').unwrap();
            let (Ok(lo), Some(count)) = (value.trim().parse::<u64>(), rest.split_whitespace().last()) else { continue };
            dtrace_rows.push((lo, num(count, "count", line)));
        }
    }
    flush(&mut m, cur, &mut dtrace_rows);
    m
}

#[test]
fn import_hist_matches_truth() {
    for t in tracers() {
        for w in workloads(&t, WORKLOADS, &[&["--workload", "refpkg"]]) {
            let what = format!("import-hist on {} under {}", name_of(w), t.label());
            let tr = trace_sim(&t, "import-hist", w, &[], None);
            tr.assert_quiet(&what);
            let out = tr.text();
            let hist = parse_hist(&out);
            let truth = pairs(&tr.forest);
            let tol = importprobe::events::tolerance::Tolerance::default();
            for (key, found) in [("found", true), ("not found", false)] {
                let values: Vec<&Pair> = truth.iter().filter(|p| p.found == found).collect();
                let buckets = hist.get(key).cloned().unwrap_or_default();
                let total: u64 = buckets.iter().map(|b| b.1).sum();
                assert_eq!(total, values.len() as u64, "{what} {key}: histogram count\n{out}");
                // Each bucket holds no more imports than the truth has within
                // tolerance of that bucket's range (outliers as in `Timing`).
                let mut excess = 0;
                for &((lo, hi), n) in &buckets {
                    let fits = values
                        .iter()
                        .filter(|p| {
                            let a = tol.allowance_ns(&p.facts) as u64;
                            p.cum_ns + a >= lo * 1000 && p.cum_ns.saturating_sub(a) < hi * 1000
                        })
                        .count() as u64;
                    excess += n.saturating_sub(fits);
                }
                let allowed = tol.allowed_outliers(values.len(), thread_count(&truth)) as u64;
                assert!(excess <= allowed, "{what} {key}: {excess} imports in buckets the truth does not allow\n{out}");
            }
        }
    }
}

// ---------------------------------------------------------------- import-folded

/// The folded stack a script prints for a pair: at most 32 frames, the
/// outermost 31 enclosing imports, `[+K]` for K left out, the import.
fn folded_stack(p: &Pair) -> String {
    let mut frames: Vec<String> = p.chain.iter().take(31).cloned().collect();
    if p.chain.len() > 31 {
        frames.push(format!("[+{}]", p.chain.len() - 31));
    }
    frames.push(p.module.clone());
    frames.join(";")
}

/// import-folded prints one printf per frame (bpftrace 0.17's 512-byte
/// stack holds two 200-byte names at most), so the frames of two threads
/// finishing imports at the same moment can interleave: it is checked on
/// single-threaded workloads (`importprobe trace --format folded` is exact
/// for any program).
const SINGLE_THREADED: &[&[&str]] = &[
    &["--workload", "cycle"],
    &["--workload", "refpkg"],
    &["--workload", "deep", "--count", "200"],
    &["--workload", "long-name"],
];

#[test]
fn import_folded_matches_truth() {
    for t in tracers() {
        for w in workloads(&t, SINGLE_THREADED, &[]) {
            let what = format!("import-folded on {} under {}", name_of(w), t.label());
            with_timing_retry(&what, || {
                let tr = trace_sim(&t, "import-folded", w, &[], None);
                tr.assert_quiet(&what);
                let out = tr.text();
                let mut got: HashMap<String, Vec<u64>> = HashMap::new();
                for line in out.lines().filter(|l| !l.is_empty()) {
                    let (stack, v) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{what}: folded line {line:?}"));
                    assert!(!stack.contains("(cut)"), "{line}");
                    got.entry(stack.to_string()).or_default().push(num(v, "self", line));
                }
                let mut want: HashMap<String, Vec<Pair>> = HashMap::new();
                for p in pairs(&tr.forest) {
                    want.entry(folded_stack(&p)).or_default().push(p);
                }
                assert_eq!(
                    got.keys().collect::<std::collections::BTreeSet<_>>(),
                    want.keys().collect::<std::collections::BTreeSet<_>>(),
                    "{what}: stacks"
                );
                let mut timing = Timing::new();
                let threads = thread_count(&pairs(&tr.forest));
                for (stack, mut vals) in got {
                    let mut ps = want[&stack].clone();
                    assert_eq!(vals.len(), ps.len(), "{what}: {stack}");
                    // The same stack seen several times (threads): compare sorted values.
                    vals.sort();
                    ps.sort_by_key(|p| p.self_ns);
                    for (v, p) in vals.iter().zip(&ps) {
                        timing.check(&format!("{what} {stack}"), v * 1000, p.self_ns, p);
                    }
                }
                timing.finish(&what, threads);
            });
        }
    }
}

// ---------------------------------------------------------------- real CPython

/// A program like the reference ones: stdlib imports, a missing package, a
/// missing submodule, a package with a parent nested in its child, a cycle,
/// a body that raises (imported twice), a `from ... import`, and two threads
/// importing their own packages at once (after which the main thread goes
/// on). Returns its path.
fn write_program(dir: &std::path::Path) -> std::path::PathBuf {
    std::fs::create_dir_all(dir.join("pkg/sub")).unwrap();
    let files: &[(&str, &str)] = &[
        ("pkg/__init__.py", ""),
        ("pkg/a.py", "import pkg.b\n"),
        ("pkg/b.py", "import pkg.a\n"),
        ("pkg/broken.py", "raise RuntimeError('broken on purpose')\n"),
        ("pkg/sub/__init__.py", "from pkg.sub import leaf\n"),
        ("pkg/sub/leaf.py", "X = 1\n"),
        ("pkg/t1.py", "import pkg.t1sub\n"),
        ("pkg/t1sub.py", "import time\ntime.sleep(0.01)\n"),
        ("pkg/t2.py", "import pkg.t2sub\n"),
        ("pkg/t2sub.py", "import time\ntime.sleep(0.01)\n"),
        (
            "main.py",
            "import os, sys\nsys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))\n\
             import json\ntry:\n    import nonexistent_mod.sub\nexcept ImportError:\n    pass\n\
             try:\n    import json.nope\nexcept ImportError:\n    pass\n\
             import pkg.a\ntry:\n    import pkg.broken\nexcept RuntimeError:\n    pass\n\
             from pkg.sub import leaf\ntry:\n    import pkg.broken\nexcept RuntimeError:\n    pass\n\
             import threading\n\
             ts = [threading.Thread(target=__import__, args=(m,)) for m in ('pkg.t1', 'pkg.t2')]\n\
             for t in ts: t.start()\nfor t in ts: t.join()\n\
             import email.mime.text\n",
        ),
    ];
    for (path, text) in files {
        std::fs::write(dir.join(path), text).unwrap();
    }
    dir.join("main.py")
}

/// Modules the program's threads import. CPython prints their importtime
/// lines with the level it shares between threads, and two threads' lines
/// can even run into one another (seen on 3.11: a line lost that way), so
/// the traced ones are held to this list, not to the log.
const THREAD_MODULES: &[&str] = &["pkg.t1", "pkg.t1sub", "pkg.t2", "pkg.t2sub"];

/// The traced program under a script, with python's own `-X importtime`
/// lines as (level, module).
fn run_python(t: &Tracer, script: &str) -> (common::PythonTrace, Vec<(u32, String)>) {
    let dir = tempfile::Builder::new().prefix("importprobe").tempdir().unwrap();
    let main = write_program(dir.path());
    let argv: Vec<OsString> = vec![python().into(), "-S".into(), "-X".into(), "importtime".into(), main.into()];
    let run = trace_python(t, script, &argv);
    assert!(run.stderr.is_empty(), "{script} under {}: stderr is not clean:\n{}", run.tracer, run.stderr.join("\n"));
    let lines: Vec<(u32, String)> = importtime::parse_log(&run.python_stderr)
        .into_iter()
        .map(|(_, l)| (l.level().unwrap_or(0), l.module))
        .collect();
    assert!(lines.len() > 10, "no -X importtime output:\n{}", run.python_stderr);
    (run, lines)
}

/// What both sides must agree on: the main thread's (level, module) lines
/// in order, and the threads' modules by name.
fn split_threads(lines: &[(u32, String)]) -> (Vec<(u32, String)>, Vec<String>) {
    let (threads, main): (Vec<_>, Vec<_>) =
        lines.iter().cloned().partition(|(_, m)| THREAD_MODULES.contains(&m.as_str()));
    let mut names: Vec<String> = threads.into_iter().map(|(_, m)| m).collect();
    names.sort();
    (main, names)
}

/// A forest's imports as importtime lines (depth, module), done order.
fn done_lines(forest: &Forest) -> Vec<(u32, String)> {
    forest.in_done_order().into_iter().map(|i| (forest.imports[i].depth, forest.imports[i].module.clone())).collect()
}

#[test]
fn raw_collectors_on_real_cpython_equal_its_importtime() {
    for t in tracers() {
        for script in ["import-events", "import-capture"] {
            let (run, importtime) = run_python(&t, script);
            let what = format!("{script} on {} under {}", python().display(), run.tracer);
            let rec = if script == "import-events" {
                stream::parse(&run.out).map_err(|e| e.to_string())
            } else {
                capture::parse(&run.out).map_err(|e| e.to_string())
            };
            let rec = rec.unwrap_or_else(|e| panic!("{what}: {e}\n{}", common::lossy(&run.out)));
            let forest = Forest::build(&rec);
            assert!(forest.anomalies.is_empty() && forest.lost_events == 0, "{what}: {:?}", forest.diagnostics());
            // -X importtime starts after the interpreter's own start-up
            // imports: python's lines are the tail of the traced ones.
            let traced = done_lines(&forest);
            let (main_py, _) = split_threads(&importtime);
            let (main_tr, threads_tr) = split_threads(&traced);
            assert!(main_tr.ends_with(&main_py), "{what}: main thread\npython: {main_py:?}\ntraced: {main_tr:?}");
            assert_eq!(threads_tr, THREAD_MODULES, "{what}: thread imports");
            let done = forest.in_done_order();
            let failed: Vec<&str> =
                done.iter().map(|&i| &forest.imports[i]).filter(|i| i.failed()).map(|i| i.module.as_str()).collect();
            assert_eq!(
                failed,
                ["nonexistent_mod", "nonexistent_mod.sub", "json.nope", "pkg.broken", "pkg.broken"],
                "{what}"
            );
            let tids: std::collections::HashSet<u32> = forest.imports.iter().map(|i| i.tid).collect();
            assert_eq!(tids.len(), 3, "{what}: the main thread and two workers");
        }
    }
}

#[test]
fn import_tree_on_real_cpython_equals_importtime() {
    for t in tracers() {
        let (run, importtime) = run_python(&t, "import-tree");
        let tree: Vec<(u32, String)> =
            parse_tree(&common::lossy(&run.out)).into_iter().map(|l| (l.depth, l.module)).collect();
        let (main_py, _) = split_threads(&importtime);
        let (main_tr, threads_tr) = split_threads(&tree);
        assert!(main_tr.ends_with(&main_py), "import-tree under {}: {main_tr:?} vs {main_py:?}", run.tracer);
        assert_eq!(threads_tr, THREAD_MODULES, "under {}", run.tracer);
        for m in ["json", "nonexistent_mod", "nonexistent_mod.sub", "json.nope", "pkg.a", "pkg", "pkg.sub.leaf"] {
            assert!(tree.iter().any(|(_, n)| n == m), "{m} missing under {}", run.tracer);
        }
    }
}

#[test]
fn import_failed_on_real_cpython() {
    for t in tracers() {
        let (run, _) = run_python(&t, "import-failed");
        let got: Vec<(String, u32, Vec<String>)> =
            parse_failed(&common::lossy(&run.out)).into_iter().map(|f| (f.module, f.depth, f.chain)).collect();
        let want: Vec<(String, u32, Vec<String>)> = vec![
            ("nonexistent_mod".into(), 1, vec!["nonexistent_mod.sub".into()]),
            ("nonexistent_mod.sub".into(), 0, vec![]),
            ("json.nope".into(), 0, vec![]),
            ("pkg.broken".into(), 0, vec![]),
            ("pkg.broken".into(), 0, vec![]),
        ];
        assert_eq!(got, want, "under {}:\n{}", run.tracer, common::lossy(&run.out));
    }
}

#[test]
fn unencodable_names_on_real_cpython_are_marked_not_dropped() {
    let code = "try:\n    __import__('a\\udcff')\nexcept Exception:\n    pass\nimport json\n";
    for t in tracers() {
        for script in ["import-events", "import-capture", "import-tree", "import-failed"] {
            let dir = tempfile::tempdir().unwrap();
            let prog = dir.path().join("null.py");
            std::fs::write(&prog, code).unwrap();
            let argv: Vec<OsString> = vec![python().into(), "-S".into(), prog.into()];
            let run = trace_python(&t, script, &argv);
            let what = format!("{script} under {}", run.tracer);
            assert!(run.stderr.is_empty(), "{what}: {:?}", run.stderr);
            let out = common::lossy(&run.out);
            match script {
                "import-events" | "import-capture" => {
                    let rec = if script == "import-events" {
                        stream::parse(&run.out).unwrap()
                    } else {
                        capture::parse(&run.out).unwrap()
                    };
                    let missing: Vec<&ImportEvent> =
                        rec.events.iter().filter(|e| e.name == NameState::Missing).collect();
                    assert_eq!(missing.len(), 2, "{what}: one pair with no name\n{out}");
                    assert!(missing.iter().all(|e| e.module.is_empty()), "{what}");
                    assert_eq!(missing[1].found, Some(false), "{what}");
                    let f = Forest::build(&rec);
                    assert!(f.anomalies.is_empty(), "{what}: {:?}", f.anomalies);
                    assert!(f.imports.iter().any(|i| i.module == "json"), "{what}: later imports still traced");
                }
                "import-tree" => {
                    let tree = parse_tree(&out);
                    let missing: Vec<&TreeLine> = tree.iter().filter(|l| l.name == NameState::Missing).collect();
                    assert_eq!(missing.len(), 1, "{what}\n{out}");
                    assert!(missing[0].module.is_empty() && !missing[0].found, "{what}");
                }
                _ => {
                    let failed = parse_failed(&out);
                    assert!(
                        failed.iter().any(|f| f.name == NameState::Missing && f.module.is_empty()),
                        "{what}\n{out}"
                    );
                }
            }
        }
    }
}
