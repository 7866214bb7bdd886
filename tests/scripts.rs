//! The bundled bpftrace scripts, run for real (root + bpftrace), checked
//! against the simulator's ground truth and against real CPython's
//! `-X importtime`. Without tracing they print `SKIP: ...` (or fail with
//! IMPORTPROBE_REQUIRE_TRACING=1).

mod common;

use common::{by_tid, can_trace, lossy, pairs, thread_count, trace_sim, Pair, Timing};
use importprobe::events::{stream, EventKind};
use std::collections::{BTreeMap, HashMap};

/// The simulator workloads every aggregating script is checked on.
const WORKLOADS: &[(&str, Option<usize>)] =
    &[("demo", None), ("cycle", None), ("threads", None), ("deep", Some(200)), ("long-name", None)];

fn num(s: &str, what: &str, line: &str) -> u64 {
    s.trim().parse().unwrap_or_else(|_| panic!("bad {what} {s:?} in line {line:?}"))
}

/// `123.456` microseconds -> ns.
fn us_frac(s: &str, line: &str) -> u64 {
    let (a, b) = s.split_once('.').unwrap_or_else(|| panic!("bad time {s:?} in {line:?}"));
    num(a, "us", line) * 1000 + num(b, "us fraction", line)
}

/// Checks that no name was cut (all scenario names fit in 200 bytes).
fn assert_uncut(cut: u64, line: &str) {
    assert_eq!(cut, 0, "name flagged as cut with BPFTRACE_STRLEN=200: {line}");
}

// ---------------------------------------------------------------- import-events

#[test]
fn import_events_matches_truth_byte_exact() {
    if !can_trace() {
        return;
    }
    for (w, count) in WORKLOADS.iter().copied().chain([("odd-names", None)]) {
        let t = trace_sim("import-events.bt", w, count, 200, &[]);
        let events = stream::parse(&t.out[..]).unwrap_or_else(|e| panic!("{w}: {e}\n{}", lossy(&t.out)));
        assert_eq!(events.len(), t.truth.len(), "{w}: event count");
        type Seq = Vec<(EventKind, u32, String, Option<bool>)>;
        let group = |evs: &[importprobe::events::ImportEvent]| {
            let mut m: BTreeMap<u32, Seq> = BTreeMap::new();
            for e in evs {
                m.entry(e.tid).or_default().push((e.kind, e.depth, e.module.clone(), e.found));
            }
            m
        };
        assert_eq!(group(&events), group(&t.truth), "{w}: per-thread event sequences");
        assert!(events.iter().all(|e| !e.truncated && e.pid == t.truth[0].pid), "{w}");
        // Timestamps: same clock (CLOCK_MONOTONIC). The truth stamp is taken
        // just before the probe traps, so the traced one follows it by the
        // trap (µs), rarely by a preemption in between (ms, see `Timing`);
        // 10 µs before it allows for the vDSO and bpf clocks' rounding.
        let mut per_tid: HashMap<u32, Vec<u64>> = HashMap::new();
        for e in &t.truth {
            per_tid.entry(e.tid).or_default().push(e.ts_ns);
        }
        let mut idx: HashMap<u32, usize> = HashMap::new();
        for e in &events {
            let i = idx.entry(e.tid).or_default();
            let truth_ts = per_tid[&e.tid][*i];
            *i += 1;
            assert!(
                e.ts_ns + 10_000 >= truth_ts && e.ts_ns < truth_ts + 10_000_000,
                "{w}: {e:?}: ts vs truth {truth_ts}"
            );
        }
    }
}

#[test]
fn import_events_flags_names_cut_at_the_string_limit() {
    if !can_trace() {
        return;
    }
    let t = trace_sim("import-events.bt", "long-name", None, 64, &[]);
    let events = stream::parse(&t.out[..]).unwrap();
    assert_eq!(events.len(), t.truth.len());
    for (e, truth) in events.iter().zip(&t.truth) {
        if truth.module.len() > 63 {
            assert!(e.truncated, "{e:?}");
            assert_eq!(e.module, truth.module[..63], "cut name is the first 63 bytes");
        } else {
            assert!(!e.truncated);
            assert_eq!(e.module, truth.module);
        }
    }
    // The two 150-byte modules share their first 63 bytes: both flagged, so
    // a consumer can tell they may differ.
    assert!(events.iter().filter(|e| e.truncated).count() >= 4);
}

// ---------------------------------------------------------------- import-tree

#[derive(Debug)]
struct TreeLine {
    tid: u32,
    self_us: u64,
    cum_us: u64,
    depth: u32,
    found: bool,
    cut: bool,
    module: String,
}

fn parse_tree(out: &str) -> Vec<TreeLine> {
    let mut lines = Vec::new();
    for line in out.lines() {
        if line.is_empty() || line.starts_with("Attaching ") || line.starts_with("TID ") {
            continue;
        }
        let parts: Vec<&str> = line.splitn(4, " | ").collect();
        assert_eq!(parts.len(), 4, "tree line {line:?}");
        let (tid, self_us) = parts[0].split_once(' ').unwrap_or_else(|| panic!("{line:?}"));
        let flags: Vec<&str> = parts[2].split_whitespace().collect();
        assert_eq!(flags.len(), 3, "{line:?}");
        let depth = num(flags[0], "depth", line) as u32;
        let indent = 2 * depth.min(32) as usize;
        let rest = &parts[3];
        assert!(rest.len() >= indent && rest[..indent].bytes().all(|b| b == b' '), "indent of {line:?}");
        let mut module = &rest[indent..];
        if depth >= 32 {
            let tag = format!("[{depth}] ");
            module = module.strip_prefix(tag.as_str()).unwrap_or_else(|| panic!("missing {tag:?} in {line:?}"));
        } else {
            assert!(!module.starts_with(' '), "indent too deep in {line:?}");
        }
        lines.push(TreeLine {
            tid: num(tid, "tid", line) as u32,
            self_us: num(self_us, "self", line),
            cum_us: num(parts[1], "cum", line),
            depth,
            found: num(flags[1], "found", line) == 1,
            cut: num(flags[2], "cut", line) == 1,
            module: module.to_string(),
        });
    }
    lines
}

fn check_tree_against(w: &str, tree: &[TreeLine], truth: &[Pair]) {
    let mut timing = Timing::new();
    assert_eq!(tree.len(), truth.len(), "{w}: one tree line per import pair");
    let mut got: BTreeMap<u32, Vec<&TreeLine>> = BTreeMap::new();
    for l in tree {
        got.entry(l.tid).or_default().push(l);
    }
    let want = by_tid(truth);
    assert_eq!(got.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>(), "{w}: threads");
    for (tid, lines) in got {
        for (l, p) in lines.iter().zip(&want[&tid]) {
            let ctx = format!("{w}: tid {tid} {l:?} vs {p:?}");
            assert_eq!(
                (l.module.as_str(), l.depth, l.found, l.cut),
                (p.module.as_str(), p.depth, p.found, false),
                "{ctx}"
            );
            // Rounded to the nearest µs: +0.5 µs on top of the tolerance.
            timing.check(&format!("{ctx} cum"), l.cum_us * 1000, p.cum_ns, p);
            timing.check(&format!("{ctx} self"), l.self_us * 1000, p.self_ns, p);
        }
    }
    timing.finish(w, thread_count(truth));
}

#[test]
fn import_tree_matches_truth() {
    if !can_trace() {
        return;
    }
    for &(w, count) in WORKLOADS {
        let t = trace_sim("import-tree.bt", w, count, 200, &[]);
        check_tree_against(w, &parse_tree(&lossy(&t.out)), &pairs(&t.truth));
    }
}

// ---------------------------------------------------------------- import-latency

/// `@import_cumulative_us[name, found, cut, tid, #, depth, self_us]: cum_us`
fn parse_latency(out: &str) -> Vec<(String, [u64; 6], u64)> {
    let mut v = Vec::new();
    for line in out.lines() {
        let Some(rest) = line.strip_prefix("@import_cumulative_us[") else { continue };
        let (inner, cum) = rest.rsplit_once("]: ").unwrap_or_else(|| panic!("{line:?}"));
        let fields: Vec<&str> = inner.rsplitn(7, ", ").collect();
        assert_eq!(fields.len(), 7, "{line:?}");
        let mut nums = [0u64; 6];
        for (i, f) in fields[..6].iter().rev().enumerate() {
            nums[i] = num(f, "field", line);
        }
        v.push((fields[6].to_string(), nums, num(cum, "cum", line)));
    }
    v
}

#[test]
fn import_latency_matches_truth() {
    if !can_trace() {
        return;
    }
    for &(w, count) in WORKLOADS {
        let t = trace_sim("import-latency.bt", w, count, 200, &[]);
        let out = lossy(&t.out);
        let rows = parse_latency(&out);
        let truth = pairs(&t.truth);
        assert_eq!(rows.len(), truth.len(), "{w}: one row per import\n{out}");
        let index: HashMap<(u32, usize), &Pair> = truth.iter().map(|p| ((p.tid, p.seq), p)).collect();
        let mut prev = 0;
        let mut timing = Timing::new();
        for (name, [found, cut, tid, seq, depth, self_us], cum_us) in rows {
            let p = index[&(tid as u32, seq as usize)];
            assert_eq!((name.as_str(), found == 1, depth as u32), (p.module.as_str(), p.found, p.depth), "{w}");
            assert_uncut(cut, &name);
            // Floored to µs: at most 1 µs low, inside the 5 µs base.
            timing.check(&format!("{w} {name} cum"), cum_us * 1000, p.cum_ns, p);
            timing.check(&format!("{w} {name} self"), self_us * 1000, p.self_ns, p);
            assert!(cum_us >= prev, "{w}: summary sorted by cumulative time");
            prev = cum_us;
        }
        timing.finish(w, thread_count(&truth));
        assert!(!out.contains("@seq") && !out.contains("@depth"), "{w}: maps left over");
    }
}

// ---------------------------------------------------------------- import-slowest

/// Two sections of `@map[name, cut, tid, #]: us`.
fn parse_slowest(out: &str, map: &str) -> Vec<(String, u32, usize, u64)> {
    let prefix = format!("@{map}[");
    out.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(prefix.as_str())?;
            let (inner, v) = rest.rsplit_once("]: ").unwrap();
            let f: Vec<&str> = inner.rsplitn(4, ", ").collect();
            assert_uncut(num(f[2], "cut", line), line);
            Some((f[3].to_string(), num(f[1], "tid", line) as u32, num(f[0], "#", line) as usize, num(v, "us", line)))
        })
        .collect()
}

fn check_slowest(w: &str, rows: &[(String, u32, usize, u64)], truth: &[Pair], n: usize, key: fn(&Pair) -> u64) {
    assert_eq!(rows.len(), n.min(truth.len()), "{w}: top {n}");
    let index: HashMap<(u32, usize), &Pair> = truth.iter().map(|p| ((p.tid, p.seq), p)).collect();
    let mut reported = std::collections::HashSet::new();
    let mut min_reported = u64::MAX;
    let mut timing = Timing::new();
    for (name, tid, seq, us) in rows {
        let p = index[&(*tid, *seq)];
        assert_eq!(name, &p.module, "{w}");
        timing.check(&format!("{w} {name}"), us * 1000, key(p), p);
        reported.insert((*tid, *seq));
        min_reported = min_reported.min(key(p));
    }
    timing.finish(w, thread_count(truth));
    if thread_count(truth) > 1 {
        return; // times may be off there (see `Timing`), so the ranking may be too
    }
    // Every import left out is not slower than the fastest one reported,
    // give or take the measurement tolerance.
    for p in truth.iter().filter(|p| !reported.contains(&(p.tid, p.seq))) {
        assert!(
            key(p) <= min_reported + common::tolerance_ns(p.nested) * 2,
            "{w}: {} ({} ns) should be in the top {n} (fastest reported {min_reported} ns)",
            p.module,
            key(p)
        );
    }
}

#[test]
fn import_slowest_matches_truth() {
    if !can_trace() {
        return;
    }
    for &(w, count) in WORKLOADS {
        for (args, n) in [(&[][..], 10), (&["", "3"][..], 3)] {
            let t = trace_sim("import-slowest.bt", w, count, 200, args);
            let out = lossy(&t.out);
            let truth = pairs(&t.truth);
            check_slowest(w, &parse_slowest(&out, "slowest_cumulative_us"), &truth, n, |p| p.cum_ns);
            check_slowest(w, &parse_slowest(&out, "slowest_self_us"), &truth, n, |p| p.self_ns);
        }
    }
}

// ---------------------------------------------------------------- import-failed

#[derive(Debug, PartialEq)]
struct Failure {
    tid: u32,
    depth: u32,
    module: String,
    cost_ns: u64,
    chain: Vec<String>,
}

fn kv<'a>(line: &'a str, key: &str) -> &'a str {
    let start = line.find(&format!("{key}=")).unwrap_or_else(|| panic!("no {key}= in {line:?}")) + key.len() + 1;
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
            assert_uncut(num(kv(line, "cut"), "cut", line), line);
            v.push(Failure {
                tid: num(kv(line, "tid"), "tid", line) as u32,
                depth: num(kv(line, "depth"), "depth", line) as u32,
                module: kv(line, "module").to_string(),
                cost_ns: us_frac(kv(line, "cost_us"), line),
                chain: Vec::new(),
            });
        } else if line.starts_with("  importer ") {
            let f = v.last_mut().unwrap_or_else(|| panic!("importer before FAILED: {line:?}"));
            assert_eq!(num(kv(line, "tid"), "tid", line) as u32, f.tid, "{line}");
            let depth = num(kv(line, "depth"), "depth", line) as usize;
            assert_eq!(depth + f.chain.len() + 1, f.depth as usize, "importers innermost first: {line}");
            f.chain.insert(0, kv(line, "module").to_string());
        }
    }
    v
}

#[test]
fn import_failed_matches_truth() {
    if !can_trace() {
        return;
    }
    for &(w, count) in WORKLOADS.iter().chain(&[("refpkg", None)]) {
        let t = trace_sim("import-failed.bt", w, count, 200, &[]);
        let got = parse_failed(&lossy(&t.out));
        let want: Vec<Pair> = pairs(&t.truth).into_iter().filter(|p| !p.found).collect();
        assert_eq!(got.len(), want.len(), "{w}: failures\n{}", lossy(&t.out));
        let mut got_by: BTreeMap<u32, Vec<&Failure>> = BTreeMap::new();
        for f in &got {
            got_by.entry(f.tid).or_default().push(f);
        }
        let mut timing = Timing::new();
        for (tid, ps) in by_tid(&want) {
            for (f, p) in got_by[&tid].iter().zip(&ps) {
                assert_eq!((&f.module, f.depth, &f.chain), (&p.module, p.depth, &p.chain), "{w}");
                timing.check(&format!("{w} {}", p.module), f.cost_ns, p.cum_ns, p);
            }
        }
        timing.finish(w, thread_count(&pairs(&t.truth)));
    }
}

// ---------------------------------------------------------------- import-hist

/// `[lo, hi)` or `[n]` bucket label -> (lo, hi) in µs.
fn bucket(label: &str) -> (u64, u64) {
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

/// Bucket `(lo, hi)` in µs and its count.
type Buckets = Vec<((u64, u64), u64)>;

fn parse_hist(out: &str) -> HashMap<&'static str, Buckets> {
    let mut m: HashMap<&'static str, Buckets> = HashMap::new();
    let mut cur = None;
    for line in out.lines() {
        if line.starts_with("@found_us:") {
            cur = Some("found");
        } else if line.starts_with("@not_found_us:") {
            cur = Some("not found");
        } else if let (Some(c), true) = (cur, line.starts_with('[')) {
            let end = line.find([')', ']']).unwrap_or_else(|| panic!("bucket {line:?}")) + 1;
            let (label, rest) = line.split_at(end);
            let count = num(rest.split('|').next().unwrap(), "count", line);
            m.entry(c).or_default().push((bucket(label), count));
        }
    }
    m
}

#[test]
fn import_hist_matches_truth() {
    if !can_trace() {
        return;
    }
    for &(w, count) in WORKLOADS.iter().chain(&[("refpkg", None)]) {
        let t = trace_sim("import-hist.bt", w, count, 200, &[]);
        let out = lossy(&t.out);
        let hist = parse_hist(&out);
        let truth = pairs(&t.truth);
        for (key, found) in [("found", true), ("not found", false)] {
            let values: Vec<&Pair> = truth.iter().filter(|p| p.found == found).collect();
            let buckets = hist.get(key).cloned().unwrap_or_default();
            let total: u64 = buckets.iter().map(|b| b.1).sum();
            assert_eq!(total, values.len() as u64, "{w} {key}: histogram count\n{out}");
            // Each bucket holds no more imports than the truth has within
            // tolerance of that bucket's range (run-queue outliers allowed as
            // in `Timing`).
            let mut excess = 0;
            for &((lo, hi), n) in &buckets {
                let fits = values
                    .iter()
                    .filter(|p| {
                        let tol = common::tolerance_ns(p.nested) + if p.first { common::FIRST_TRAP_NS } else { 0 };
                        p.cum_ns + tol >= lo * 1000 && p.cum_ns.saturating_sub(tol) < hi * 1000
                    })
                    .count() as u64;
                excess += n.saturating_sub(fits);
            }
            let threads = thread_count(&truth);
            let allowed = if threads > 1 { (values.len() as u64).div_ceil(4) } else { 1 + values.len() as u64 / 50 };
            assert!(excess <= allowed, "{w} {key}: {excess} imports in buckets the truth does not allow\n{out}");
        }
    }
}

// ---------------------------------------------------------------- import-folded

#[test]
fn import_folded_matches_truth() {
    if !can_trace() {
        return;
    }
    for &(w, count) in WORKLOADS {
        let t = trace_sim("import-folded.bt", w, count, 200, &[]);
        let out = lossy(&t.out);
        let mut got: HashMap<String, Vec<u64>> = HashMap::new();
        for line in out.lines().filter(|l| !l.is_empty() && !l.starts_with("Attaching ")) {
            let (stack, v) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{w}: folded line {line:?}"));
            assert!(!stack.contains("(cut)"), "{line}");
            got.entry(stack.to_string()).or_default().push(num(v, "self", line));
        }
        let mut want: HashMap<String, Vec<Pair>> = HashMap::new();
        for p in pairs(&t.truth) {
            let mut frames = p.chain.clone();
            frames.push(p.module.clone());
            want.entry(frames.join(";")).or_default().push(p);
        }
        assert_eq!(
            got.keys().collect::<std::collections::BTreeSet<_>>(),
            want.keys().collect::<std::collections::BTreeSet<_>>(),
            "{w}: stacks"
        );
        let mut timing = Timing::new();
        let threads = thread_count(&pairs(&t.truth));
        for (stack, vals) in got {
            let ps = &want[&stack];
            assert_eq!(vals.len(), ps.len(), "{w}: {stack}");
            // Same stack seen several times (threads): compare sorted values.
            let mut vals = vals;
            vals.sort();
            let mut ps = ps.clone();
            ps.sort_by_key(|p| p.self_ns);
            for (v, p) in vals.iter().zip(&ps) {
                timing.check(&format!("{w} {stack}"), v * 1000, p.self_ns, p);
            }
        }
        timing.finish(w, threads);
    }
}

// ---------------------------------------------------------------- real CPython

const PY: &str = "/usr/bin/python3.11";

/// A program like the reference ones: stdlib imports, a missing package, a
/// missing submodule, and a package with a parent nested in its child, a
/// cycle, a body that raises (imported twice) and a `from ... import`.
fn write_program(dir: &std::path::Path) -> std::path::PathBuf {
    let pkg = dir.join("pkg");
    std::fs::create_dir_all(pkg.join("sub")).unwrap();
    let files: &[(&str, &str)] = &[
        ("pkg/__init__.py", ""),
        ("pkg/a.py", "import pkg.b\n"),
        ("pkg/b.py", "import pkg.a\n"),
        ("pkg/broken.py", "raise RuntimeError('broken on purpose')\n"),
        ("pkg/sub/__init__.py", "from pkg.sub import leaf\n"),
        ("pkg/sub/leaf.py", "X = 1\n"),
        (
            "main.py",
            "import os, sys\nsys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))\n\
             import json\ntry:\n    import nonexistent_mod.sub\nexcept ImportError:\n    pass\n\
             try:\n    import json.nope\nexcept ImportError:\n    pass\n\
             import pkg.a\ntry:\n    import pkg.broken\nexcept RuntimeError:\n    pass\n\
             from pkg.sub import leaf\ntry:\n    import pkg.broken\nexcept RuntimeError:\n    pass\n",
        ),
    ];
    for (path, text) in files {
        std::fs::write(dir.join(path), text).unwrap();
    }
    dir.join("main.py")
}

/// Runs the program under `-X importtime` traced by a script; returns the
/// script's stdout and the importtime lines as (level, module).
fn trace_python(script_name: &str) -> Option<(String, Vec<(u32, String)>)> {
    if !std::path::Path::new(PY).exists() {
        common::skip(&format!("{PY} (a CPython with USDT probes) is not installed"));
        return None;
    }
    let _serial = common::tracing_lock();
    let dir = tempfile::Builder::new().prefix("importprobe").tempdir().unwrap();
    let main = write_program(dir.path());
    let cmd = format!("{PY} -S -X importtime {}", main.display());
    assert!(!cmd[PY.len()..].contains("  ") && !main.to_str().unwrap().contains(' '), "no spaces allowed for -c");
    let child = std::process::Command::new("bpftrace")
        .env("BPFTRACE_STRLEN", "200")
        .args(["--usdt-file-activation", "-c", &cmd])
        .arg(common::script(script_name))
        .arg(PY)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn bpftrace");
    let (out, err) = common::finish(child, 60, &format!("bpftrace -c python {script_name}"));
    // `import time:       123 |        456 |   pkg.a` (two spaces per level).
    let mut importtime = Vec::new();
    for line in lossy(&err).lines() {
        let Some(rest) = line.strip_prefix("import time:") else { continue };
        let Some((_, name)) = rest.rsplit_once(" | ") else { continue };
        if name.trim() == "imported package" {
            continue;
        }
        let indent = name.len() - name.trim_start().len();
        importtime.push(((indent / 2) as u32, name.trim_start().to_string()));
    }
    assert!(importtime.len() > 10, "no -X importtime output:\n{}", lossy(&err));
    Some((lossy(&out), importtime))
}

#[test]
fn import_tree_on_real_cpython_equals_importtime() {
    if !can_trace() {
        return;
    }
    let Some((out, importtime)) = trace_python("import-tree.bt") else { return };
    let tree: Vec<(u32, String)> = parse_tree(&out).into_iter().map(|l| (l.depth, l.module)).collect();
    assert_eq!(tree, importtime, "import-tree vs -X importtime (modules, order, nesting)");
    for m in ["json", "nonexistent_mod", "nonexistent_mod.sub", "json.nope", "pkg.a", "pkg", "pkg.sub.leaf"] {
        assert!(tree.iter().any(|(_, n)| n == m), "{m} missing");
    }
}

#[test]
fn import_failed_on_real_cpython() {
    if !can_trace() {
        return;
    }
    let Some((out, _)) = trace_python("import-failed.bt") else { return };
    let got: Vec<(String, u32, Vec<String>)> =
        parse_failed(&out).into_iter().map(|f| (f.module, f.depth, f.chain)).collect();
    let want: Vec<(String, u32, Vec<String>)> = vec![
        ("nonexistent_mod".into(), 1, vec!["nonexistent_mod.sub".into()]),
        ("nonexistent_mod.sub".into(), 0, vec![]),
        ("json.nope".into(), 0, vec![]),
        ("pkg.broken".into(), 0, vec![]),
        ("pkg.broken".into(), 0, vec![]),
    ];
    assert_eq!(got, want, "{out}");
}

#[test]
fn import_events_on_real_cpython_parse_and_match_importtime() {
    if !can_trace() {
        return;
    }
    let Some((out, importtime)) = trace_python("import-events.bt") else { return };
    let events = stream::parse(out.as_bytes()).unwrap_or_else(|e| panic!("{e}\n{out}"));
    // Done events in order are -X importtime's lines (children first).
    let done: Vec<(u32, String)> =
        events.iter().filter(|e| e.kind == EventKind::Done).map(|e| (e.depth, e.module.clone())).collect();
    assert_eq!(done, importtime);
    assert_eq!(events.len(), 2 * done.len());
    let failed: Vec<&str> = events.iter().filter(|e| e.found == Some(false)).map(|e| e.module.as_str()).collect();
    assert_eq!(failed, ["nonexistent_mod", "nonexistent_mod.sub", "json.nope", "pkg.broken", "pkg.broken"]);
}

#[test]
fn import_tree_flags_names_cut_at_the_string_limit() {
    if !can_trace() {
        return;
    }
    let t = trace_sim("import-tree.bt", "long-name", None, 64, &[]);
    let tree = parse_tree(&lossy(&t.out));
    let truth = pairs(&t.truth);
    assert_eq!(tree.len(), truth.len());
    for (l, p) in tree.iter().zip(&truth) {
        // `--wait-for-tracer` runs one thread: the done order is the file order.
        assert_eq!(l.cut, p.module.len() > 63, "{l:?}");
        assert_eq!(l.module, p.module[..p.module.len().min(63)]);
    }
    assert_eq!(tree.iter().filter(|l| l.cut).count(), 2, "both 150-byte modules flagged");
}
