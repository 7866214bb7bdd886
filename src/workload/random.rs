//! A seeded random workload generator: same parameters and seed, same graph,
//! and (single-threaded) the same event order.
//!
//! ChaCha8 is used because `rand_chacha` promises the same stream for a seed
//! on every platform and release.

use super::{ModuleSpec, StmtSpec, Workload, WorkloadBuilder};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Duration;

/// Parameters of a random import graph.
#[derive(Debug, Clone)]
pub struct RandomParams {
    pub seed: u64,
    pub modules: usize,
    /// Maximum package nesting of names (`a.b.c` is depth 3).
    pub depth: usize,
    /// Maximum imports in one module body.
    pub fanout: usize,
    /// Probability that a module is missing or raises (half each).
    pub failure_rate: f64,
    /// Median find and exec costs; actual costs are log-uniform between a
    /// quarter and four times these.
    pub median_find: Duration,
    pub median_exec: Duration,
    /// Probability that an import in a module body is an
    /// `importlib.import_module()` call, which fires nothing for the module
    /// (its body's imports fire as usual). At 0 no random draw is made, so
    /// a seed gives the same graph as before this parameter existed.
    pub importlib_rate: f64,
    /// Extra threads importing random top-level modules after main.
    pub threads: usize,
}

impl Default for RandomParams {
    fn default() -> Self {
        RandomParams {
            seed: 1,
            modules: 200,
            depth: 3,
            fanout: 4,
            failure_rate: 0.02,
            median_find: Duration::from_micros(15),
            median_exec: Duration::from_micros(40),
            importlib_rate: 0.0,
            threads: 0,
        }
    }
}

/// Generates a workload. Modules only import modules created before them
/// and failures are always caught, so the program runs to completion.
pub fn generate(p: &RandomParams) -> Workload {
    let mut rng = ChaCha8Rng::seed_from_u64(p.seed);
    let mut b = WorkloadBuilder::new(format!("random-{}", p.seed));
    let mut names: Vec<String> = Vec::with_capacity(p.modules);
    let mut failing: Vec<bool> = Vec::with_capacity(p.modules);
    let cost = |rng: &mut ChaCha8Rng, median: Duration| {
        let f: f64 = rng.random_range(-2.0f64..2.0);
        Duration::from_nanos((median.as_nanos() as f64 * f.exp2()) as u64)
    };
    for i in 0..p.modules {
        // A new top-level package, or a child of an earlier module.
        let parent = if i > 0 && rng.random_bool(0.6) { Some(rng.random_range(0..i)) } else { None };
        let name = match parent {
            Some(j) if names[j].split('.').count() < p.depth.max(1) && !failing[j] => format!("{}.m{i}", names[j]),
            _ => format!("mod{i}"),
        };
        let fail = rng.random_bool(p.failure_rate.clamp(0.0, 1.0));
        let missing = fail && rng.random_bool(0.5);
        let imports = if missing || i == 0 {
            vec![]
        } else {
            let n = rng.random_range(0..=p.fanout.min(i));
            (0..n)
                .map(|_| {
                    let k = rng.random_range(0..i);
                    let importlib = p.importlib_rate > 0.0 && rng.random_bool(p.importlib_rate.min(1.0));
                    let s = if importlib {
                        StmtSpec::import_module(names[k].clone())
                    } else {
                        StmtSpec::import(names[k].clone())
                    };
                    if failing[k] {
                        s.caught()
                    } else {
                        s
                    }
                })
                .collect()
        };
        let spec = ModuleSpec {
            find: cost(&mut rng, p.median_find),
            exec: cost(&mut rng, p.median_exec),
            missing,
            raises: fail && !missing,
            imports,
            ..Default::default()
        };
        b.define(&name, spec).expect("generated names are unique and valid");
        names.push(name);
        failing.push(fail);
    }
    // Main imports the last modules first (they pull in the rest), caught
    // where they can fail.
    let top = |rng: &mut ChaCha8Rng, n: usize| -> Vec<StmtSpec> {
        (0..n.min(names.len()))
            .map(|_| {
                let k = rng.random_range(names.len() / 2..names.len());
                let s = StmtSpec::import(names[k].clone());
                s.caught()
            })
            .collect()
    };
    let main = top(&mut rng, (p.modules / 4).max(1));
    b.main_imports(main);
    for t in 0..p.threads {
        let stmts = top(&mut rng, (p.modules / 8).max(1));
        b.thread(format!("random-{}", t + 1), stmts);
    }
    b.build().expect("generated workloads only import defined modules")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_graph() {
        let p = RandomParams { modules: 300, ..Default::default() };
        let (a, b) = (generate(&p), generate(&p));
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
        let c = generate(&RandomParams { seed: 2, ..p.clone() });
        assert_ne!(format!("{a:?}"), format!("{c:?}"));
        let d = generate(&RandomParams { importlib_rate: 0.3, ..p });
        let importlib = (0..d.module_count() as u32)
            .flat_map(|m| d.body(m))
            .filter(|s| s.via == crate::workload::Via::Importlib)
            .count();
        assert!(importlib > 10, "{importlib} import_module() calls");
    }
}
