//! Figure 3 of BENCHMARKS.md, a measurement rather than a test (ignored:
//! `tests/bench/run.sh accuracy` runs it): how close the times that
//! `trace` (its `import-capture` collection), `import-latency` and
//! `import-tree` report are to what the simulated modules are known to
//! cost, before and after subtracting the per-probe cost measured in the
//! same run.
//!
//! The model of the correction: a traced pair's clock reads sit inside the
//! probe traps, so every trap whose time falls between them is charged to
//! the import. A pair's cumulative time holds its own start trap and both
//! traps of every pair nested in it: `T * (1 + 2 * nested)`; its self time
//! holds its own start trap and one trap per direct child (the child's
//! start entry and done exit fall outside the child): `T * (1 + children)`.
//! T, a probe's cost with that collector, is half the growth of the
//! simulator's period per zero-cost pair under it. The correction is made
//! here, in the analysis; reports show what the tracer saw.

mod common;

use common::outputs::{parse_latency, parse_tree};
use common::{pairs, trace_sim, Pair, Tracer};
use importprobe::events::{capture, forest::Forest, truth, Recording};
use importprobe::workload::{demo, manifest, Workload};
use std::collections::HashMap;
use std::fmt::Write as _;

const COLLECTORS: &[&str] = &["import-capture", "import-latency", "import-tree"];

fn quick() -> bool {
    std::env::var("IMPORTPROBE_BENCH_QUICK").is_ok_and(|v| v == "1")
}

/// The ns between the first and last event of a run's truth, per pair.
fn period_ns(rec: &Recording) -> f64 {
    let ts: Vec<u64> = rec.events.iter().map(|e| e.ts_ns).collect();
    let (lo, hi) = (ts.iter().min().unwrap(), ts.iter().max().unwrap());
    (hi - lo) as f64 / (ts.len() / 2) as f64
}

/// A probe's cost under `script`, from a zero-cost flat workload traced
/// and untraced.
fn probe_cost_ns(t: &Tracer, script: &str, n: usize) -> f64 {
    let dir = common::Scratch::new("accuracy-untraced");
    let truth_file = dir.path("truth.jsonl");
    let n = n.to_string();
    let args = ["--workload", "flat", "--count", &n, "--scale", "0"];
    let status = std::process::Command::new(common::bin())
        .arg("run")
        .args(args)
        .arg("--truth")
        .arg(&truth_file)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let untraced = period_ns(&truth::read(&truth_file).unwrap());
    let traced = period_ns(&trace_sim(t, script, &args, &[], None).truth);
    ((traced - untraced) / 2.0).max(0.0)
}

/// `count` modules, each imported by an earlier one picked at random, with
/// exec costs log-uniform from 10 µs to 10 ms (a fixed LCG: the same file
/// every time).
fn wide_manifest(count: usize) -> String {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut rnd = || {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (x >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut imports: Vec<Vec<usize>> = vec![Vec::new(); count];
    for i in 1..count {
        imports[(rnd() * i as f64) as usize].push(i);
    }
    let mut s = String::from("[main]\nimports = [\"m00000\"]\n");
    for (i, kids) in imports.iter().enumerate() {
        let exec_us = 10.0 * 1000f64.powf(rnd());
        let list: Vec<String> = kids.iter().map(|k| format!("\"m{k:05}\"")).collect();
        writeln!(
            s,
            "[[module]]\nname = \"m{i:05}\"\nfind_us = 0\nexec_us = {exec_us:.1}\nimports = [{}]",
            list.join(", ")
        )
        .unwrap();
    }
    s
}

/// One reported import: module, self ns, cumulative ns.
type Row = (String, u64, u64);

fn rows(script: &str, out: &[u8]) -> Vec<Row> {
    let text = common::lossy(out);
    match script {
        "import-capture" => {
            let forest = Forest::build(&capture::parse(out).unwrap());
            pairs(&forest).into_iter().map(|p| (p.module, p.self_ns, p.cum_ns)).collect()
        }
        "import-latency" => parse_latency(&text).into_iter().map(|(m, f, cum)| (m, f[5] * 1000, cum * 1000)).collect(),
        "import-tree" => parse_tree(&text).into_iter().map(|l| (l.module, l.self_us * 1000, l.cum_us * 1000)).collect(),
        _ => unreachable!(),
    }
}

/// What each module imported once is known to cost: (self, cumulative,
/// direct children, nested pairs), from its costs and the truth's tree.
fn known(w: &Workload, truth: &[Pair]) -> HashMap<String, (u64, u64, u64, u64)> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for p in truth {
        *seen.entry(&p.module).or_default() += 1;
    }
    let own = |p: &Pair| {
        let m = w.module(w.find(&p.module).expect("a workload module"));
        let exec = if m.missing { 0 } else { m.exec().as_nanos() as u64 };
        m.find().as_nanos() as u64 + exec
    };
    // Done order: children before their parent; sum them per open parent.
    let mut below: HashMap<(u32, u32), (u64, u64)> = HashMap::new();
    let mut out = HashMap::new();
    for p in truth {
        let (kids_cum, kids) = below.remove(&(p.tid, p.depth + 1)).unwrap_or_default();
        let cum = own(p) + kids_cum;
        if p.depth > 0 {
            let e = below.entry((p.tid, p.depth)).or_default();
            e.0 += cum;
            e.1 += 1;
        }
        if seen[p.module.as_str()] == 1 {
            out.insert(p.module.clone(), (own(p), cum, kids, p.facts.nested));
        }
    }
    out
}

/// |error| percentiles in µs and the share within max(2 %, 5 µs).
fn summary(errs: &mut [(f64, f64)]) -> String {
    errs.sort_by(|a, b| a.0.abs().total_cmp(&b.0.abs()));
    let at = |q: f64| errs[((errs.len() - 1) as f64 * q).round() as usize].0.abs() / 1000.0;
    let within = errs.iter().filter(|(e, want)| e.abs() <= (0.02 * want).max(5000.0)).count();
    format!(
        "{:>8.1} {:>8.1} {:>8.1} {:>9.1} {:>8.2}",
        at(0.5),
        at(0.9),
        at(0.99),
        at(1.0),
        100.0 * within as f64 / errs.len() as f64
    )
}

#[test]
#[ignore = "a benchmark: bash tests/bench/run.sh accuracy"]
fn times_against_known_costs() {
    if !common::can_trace() {
        return;
    }
    let t = Tracer::Bpftrace(common::bpftrace().expect("bpftrace"));
    let dir = common::Scratch::new("accuracy");
    let count = if quick() { 300 } else { 10_000 };
    let wide = dir.path("wide.toml");
    std::fs::write(&wide, wide_manifest(count)).unwrap();
    let wide_name = format!("{count} modules, exec 10 µs..10 ms");
    let workloads: Vec<(String, Vec<String>, Workload)> = vec![
        ("demo".into(), vec!["--workload".into(), "demo".into()], demo::build()),
        (wide_name, vec!["--workload".into(), wide.display().to_string()], manifest::load(&wide).unwrap()),
    ];
    println!("# |traced - reference| in µs over every module imported once; within = share inside max(2 %, 5 µs)");
    println!(
        "# truth: the simulator's --truth of the same run; known: the modules' costs; T*k: probe cost x traps inside"
    );
    println!(
        "{:<15} {:<32} {:>7} {:<4} {:<15} {:>8} {:>8} {:>8} {:>9} {:>8}",
        "collector", "workload", "T ns", "time", "against", "p50", "p90", "p99", "max", "within %"
    );
    for script in COLLECTORS {
        let probe_ns = probe_cost_ns(&t, script, if quick() { 2000 } else { 20_000 });
        for (name, args, w) in &workloads {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let tr = trace_sim(&t, script, &args, &[], None);
            let truth = pairs(&tr.forest);
            let known = known(w, &truth);
            let truth: HashMap<&str, (u64, u64)> =
                truth.iter().map(|p| (p.module.as_str(), (p.self_ns, p.cum_ns))).collect();
            // Per time (self, cum): vs the truth, vs the known costs, vs
            // the known costs after the correction; and the truth itself vs
            // the known costs (what the simulated program really spent).
            let mut errs: [[Vec<(f64, f64)>; 4]; 2] = Default::default();
            for (module, self_ns, cum_ns) in rows(script, &tr.out) {
                let Some(&(k_self, k_cum, kids, nested)) = known.get(&module) else { continue };
                let (t_self, t_cum) = truth[module.as_str()];
                let got = [self_ns as f64, cum_ns as f64];
                let want = [(t_self, k_self, 1 + kids), (t_cum, k_cum, 1 + 2 * nested)];
                for (i, &(t, k, probes)) in want.iter().enumerate() {
                    errs[i][0].push((got[i] - t as f64, t as f64));
                    errs[i][1].push((got[i] - k as f64, k as f64));
                    errs[i][2].push((got[i] - probe_ns * probes as f64 - k as f64, k as f64));
                    errs[i][3].push((t as f64 - k as f64, k as f64));
                }
            }
            assert!(!errs[0][0].is_empty(), "{script} on {name}: no module matched");
            for (i, per_time) in errs.iter_mut().enumerate() {
                for (j, e) in per_time.iter_mut().enumerate() {
                    println!(
                        "{:<15} {:<32} {:>7.0} {:<4} {:<15} {}",
                        script,
                        name,
                        probe_ns,
                        ["self", "cum"][i],
                        ["truth", "known", "known - T*k", "(truth - known)"][j],
                        summary(e)
                    );
                }
            }
        }
    }
}
