//! Built-in workloads with known shapes, for tests and for trying scripts.

use super::{ModuleSpec, StmtSpec, Workload, WorkloadBuilder};
use std::time::Duration;

/// Costs given to every module of a scenario.
#[derive(Debug, Clone, Copy)]
pub struct Costs {
    pub find: Duration,
    pub exec: Duration,
}

impl Default for Costs {
    fn default() -> Self {
        Costs { find: Duration::from_micros(20), exec: Duration::from_micros(50) }
    }
}

impl Costs {
    fn spec(&self, imports: Vec<StmtSpec>) -> ModuleSpec {
        ModuleSpec { find: self.find, exec: self.exec, imports, ..Default::default() }
    }
}

/// The built-in scenario names, for `--help` and error messages.
pub const NAMES: &[&str] = &["flat", "deep", "wide", "cycle", "threads", "stress", "refpkg", "long-name", "odd-names"];

/// Builds a named scenario; `count` sizes those that have a size.
pub fn build(name: &str, count: usize, costs: Costs) -> Option<Workload> {
    let w = match name {
        "flat" => flat(count, costs),
        "deep" => deep(count, costs),
        "wide" => wide(count, costs),
        "cycle" => cycle(costs),
        "threads" => threads(count, costs),
        "stress" => stress(count, costs),
        "refpkg" => refpkg(costs),
        "long-name" => long_name(costs),
        "odd-names" => odd_names(costs),
        _ => return None,
    };
    Some(w.expect("built-in scenarios are valid"))
}

/// `count` independent top-level modules, imported one after another.
pub fn flat(count: usize, c: Costs) -> Result<Workload, super::BuildError> {
    let mut b = WorkloadBuilder::new("flat");
    let names: Vec<String> = (0..count).map(|i| format!("flat_{i:06}")).collect();
    for n in &names {
        b.define(n, c.spec(vec![]))?;
    }
    b.main_imports(names.into_iter().map(StmtSpec::import).collect());
    b.build()
}

/// A chain `chain_000000` imports `chain_000001` imports ... `count` deep.
pub fn deep(count: usize, c: Costs) -> Result<Workload, super::BuildError> {
    let mut b = WorkloadBuilder::new("deep");
    let name = |i: usize| format!("chain_{i:06}");
    for i in 0..count {
        let imports = if i + 1 < count { vec![StmtSpec::import(name(i + 1))] } else { vec![] };
        b.define(&name(i), c.spec(imports))?;
    }
    b.main_imports(if count > 0 { vec![StmtSpec::import(name(0))] } else { vec![] });
    b.build()
}

/// A package `wide` whose body imports `count` submodules.
pub fn wide(count: usize, c: Costs) -> Result<Workload, super::BuildError> {
    let mut b = WorkloadBuilder::new("wide");
    let subs: Vec<String> = (0..count).map(|i| format!("wide.mod_{i:06}")).collect();
    b.define("wide", ModuleSpec { package: Some(true), ..c.spec(subs.iter().map(StmtSpec::import).collect()) })?;
    for s in &subs {
        b.define(s, c.spec(vec![]))?;
    }
    b.main_imports(vec![StmtSpec::import("wide")]);
    b.build()
}

/// `a` imports `b` imports `a`: the partially initialised `a` fires nothing.
pub fn cycle(c: Costs) -> Result<Workload, super::BuildError> {
    let mut b = WorkloadBuilder::new("cycle");
    b.define("cyc_a", c.spec(vec![StmtSpec::import("cyc_b")]))?;
    b.define("cyc_b", c.spec(vec![StmtSpec::import("cyc_a"), StmtSpec::import("cyc_c")]))?;
    b.define("cyc_c", c.spec(vec![StmtSpec::import("cyc_a")]))?;
    b.main_imports(vec![StmtSpec::import("cyc_a"), StmtSpec::import("cyc_b")]);
    b.build()
}

/// `count` threads (8 if 0) import overlapping packages at once, sharing
/// slow dependencies, as `programs/threads.py` does with the stdlib.
pub fn threads(count: usize, c: Costs) -> Result<Workload, super::BuildError> {
    let count = if count == 0 { 8 } else { count };
    let mut b = WorkloadBuilder::new("threads");
    let slow = ModuleSpec { find: c.find, exec: c.exec * 20, ..Default::default() };
    b.define("shared.base", slow.clone())?;
    b.define("shared.util", ModuleSpec { imports: vec![StmtSpec::import("shared.base")], ..slow })?;
    for t in 0..count {
        let lib = format!("lib_{t}");
        b.define(&lib, c.spec(vec![StmtSpec::import("shared.util"), StmtSpec::import(format!("{lib}.core"))]))?;
        b.define(&format!("{lib}.core"), c.spec(vec![StmtSpec::import("shared.base")]))?;
        b.thread(format!("worker-{}", t + 1), vec![StmtSpec::import(lib)]);
    }
    b.define("threading_sim", c.spec(vec![]))?;
    b.main_imports(vec![StmtSpec::import("threading_sim")]);
    b.build()
}

/// A tree of `count` modules, 8 children each, costing nothing: for
/// throughput and memory measurements.
pub fn stress(count: usize, c: Costs) -> Result<Workload, super::BuildError> {
    let mut b = WorkloadBuilder::new("stress");
    let name = |i: usize| format!("stress_{i:07}");
    for i in 0..count {
        let children = (8 * i + 1..=8 * i + 8).filter(|&k| k < count).map(|k| StmtSpec::import(name(k))).collect();
        b.define(&name(i), c.spec(children))?;
    }
    b.main_imports(if count > 0 { vec![StmtSpec::import(name(0))] } else { vec![] });
    b.build()
}

/// The reference package `programs/refpkg`: a parent nested in its child, a
/// cycle, a body that raises (imported twice) and a `from ... import`.
pub fn refpkg(c: Costs) -> Result<Workload, super::BuildError> {
    let mut b = WorkloadBuilder::new("refpkg");
    b.define("pkg", ModuleSpec { package: Some(true), ..c.spec(vec![]) })?;
    b.define("pkg.a", c.spec(vec![StmtSpec::import("pkg.b")]))?;
    b.define("pkg.b", c.spec(vec![StmtSpec::import("pkg.a")]))?;
    b.define("pkg.broken", ModuleSpec { raises: true, ..c.spec(vec![]) })?;
    b.define(
        "pkg.sub",
        ModuleSpec { package: Some(true), ..c.spec(vec![StmtSpec::import("pkg.sub").from(&["leaf"])]) },
    )?;
    b.define("pkg.sub.leaf", c.spec(vec![]))?;
    b.main_imports(vec![
        StmtSpec::import("pkg.a"),
        StmtSpec::import("pkg.broken").caught(),
        StmtSpec::import("pkg.sub").from(&["leaf"]),
        StmtSpec::import("pkg.broken").caught(),
    ]);
    b.build()
}

/// A module whose dotted name is 150 characters long (longer than
/// bpftrace's default 64-byte strings), beside one that shares its first 64.
pub fn long_name(c: Costs) -> Result<Workload, super::BuildError> {
    let mut b = WorkloadBuilder::new("long-name");
    let stem = format!("very_long_package_name.{}", "segment_".repeat(5));
    let long = format!("{stem}{}", "x".repeat(150 - stem.len()));
    let twin = format!("{}y", &long[..149]);
    b.define(&long, c.spec(vec![]))?;
    b.define(&twin, c.spec(vec![]))?;
    b.main_imports(vec![StmtSpec::import(long), StmtSpec::import(twin)]);
    b.build()
}

/// Names no `import` statement can spell but `__import__` accepts: spaces,
/// tabs, newlines, and text that looks like trace output.
pub fn odd_names(c: Costs) -> Result<Workload, super::BuildError> {
    let names = ["with space", "tab\there", "new\nline", "0 done fake 1", "quote\"back\\slash", "ünïcødé"];
    let mut b = WorkloadBuilder::new("odd-names").allow_any_names();
    for n in names {
        b.define(n, c.spec(vec![]))?;
    }
    b.main_imports(names.iter().map(|n| StmtSpec::import(*n)).collect());
    b.build()
}
