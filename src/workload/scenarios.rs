//! Built-in workloads with known shapes, for tests and for trying scripts.

use super::{ExecSpec, ModuleSpec, ProbeName, StepSpec, StmtSpec, Workload, WorkloadBuilder};
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
pub const NAMES: &[&str] = &[
    "flat",
    "deep",
    "wide",
    "cycle",
    "threads",
    "stress",
    "refpkg",
    "long-name",
    "odd-names",
    "unencodable",
    "importlib",
    "fork",
    "spawn",
];

/// The `--count` a scenario gets when none is given.
pub fn default_count(name: &str) -> usize {
    match name {
        "deep" | "stress" => 1000,
        "threads" => 8,
        "fork" => 2,
        "spawn" => 3,
        _ => 100,
    }
}

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
        "unencodable" => unencodable(costs),
        "importlib" => importlib(costs),
        "fork" => fork(count, costs),
        "spawn" => spawn(count, costs),
        _ => return None,
    };
    Some(w.expect("built-in scenarios are valid"))
}

/// `count` independent top-level modules, imported one after another.
pub fn flat(count: usize, c: Costs) -> Result<Workload, super::BuildError> {
    let mut b = WorkloadBuilder::new("flat");
    b.reserve(count, 11);
    let mut name = Numbered::default();
    for i in 0..count {
        let id = b.define(name.get("flat_", 6, i), c.spec(vec![]))?;
        b.main_import_id(id);
    }
    b.build()
}

/// A chain `chain_000000` imports `chain_000001` imports ... `count` deep.
pub fn deep(count: usize, c: Costs) -> Result<Workload, super::BuildError> {
    let mut b = WorkloadBuilder::new("deep");
    b.reserve(count, 12);
    let mut name = Numbered::default();
    let ids = (0..count).map(|i| b.define(name.get("chain_", 6, i), c.spec(vec![]))).collect::<Result<Vec<_>, _>>()?;
    for pair in ids.windows(2) {
        b.add_import_id(pair[0], pair[1]);
    }
    if let Some(&first) = ids.first() {
        b.main_import_id(first);
    }
    b.build()
}

/// A package `wide` whose body imports `count` submodules.
pub fn wide(count: usize, c: Costs) -> Result<Workload, super::BuildError> {
    let mut b = WorkloadBuilder::new("wide");
    b.reserve(count + 1, 15);
    let wide = b.define("wide", ModuleSpec { package: Some(true), ..c.spec(vec![]) })?;
    let mut name = Numbered::default();
    for i in 0..count {
        let sub = b.define(name.get("wide.mod_", 6, i), c.spec(vec![]))?;
        b.add_import_id(wide, sub);
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
    b.reserve(count, 14);
    let mut name = Numbered::default();
    let ids = (0..count).map(|i| b.define(name.get("stress_", 7, i), c.spec(vec![]))).collect::<Result<Vec<_>, _>>()?;
    for (i, &id) in ids.iter().enumerate() {
        for &child in ids.iter().skip(8 * i + 1).take(8) {
            b.add_import_id(id, child);
        }
    }
    if let Some(&root) = ids.first() {
        b.main_import_id(root);
    }
    b.build()
}

/// `prefix` and a zero-padded number in one reused buffer: a million names
/// without a million allocations.
#[derive(Default)]
struct Numbered(String);

impl Numbered {
    /// `format!("{prefix}{i:0width$}")`.
    fn get(&mut self, prefix: &str, width: usize, mut i: usize) -> &str {
        let mut digits = [b'0'; 40];
        let mut start = digits.len();
        while i > 0 || digits.len() - start < width.clamp(1, digits.len()) {
            start -= 1;
            digits[start] = b'0' + (i % 10) as u8;
            i /= 10;
        }
        self.0.clear();
        self.0.push_str(prefix);
        self.0.push_str(std::str::from_utf8(&digits[start..]).expect("ASCII digits"));
        &self.0
    }
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

/// The label of the unencodable module: it stands for the str `'a\udcff'`
/// (a lone surrogate), which CPython cannot encode as UTF-8.
pub const UNENCODABLE_LABEL: &str = "a\\udcff";

/// `__import__('a\udcff')` as CPython 3.11 runs it under a tracer: the pair
/// fires with a NULL name and found = 0 (`SystemError`), nothing nests in
/// it, and importing it again fires again; once at top level, once inside
/// another module's body (caught there too), then once more at top level.
pub fn unencodable(c: Costs) -> Result<Workload, super::BuildError> {
    let mut b = WorkloadBuilder::new("unencodable").allow_any_names();
    b.define("plain", c.spec(vec![]))?;
    b.define(UNENCODABLE_LABEL, ModuleSpec { probe_name: ProbeName::Unencodable, ..c.spec(vec![]) })?;
    b.define("host", c.spec(vec![StmtSpec::import(UNENCODABLE_LABEL).caught(), StmtSpec::import("host.after")]))?;
    b.define("host.after", c.spec(vec![]))?;
    b.main_imports(vec![
        StmtSpec::import("plain"),
        StmtSpec::import(UNENCODABLE_LABEL).caught(),
        StmtSpec::import("host"),
        StmtSpec::import(UNENCODABLE_LABEL).caught(),
    ]);
    b.build()
}

/// `importlib.import_module()` as CPython runs it (`tests/fixtures/importlib/`
/// is the same program in Python): the module it loads, and the parents it
/// loads on the way, fire nothing; the `import` statements in their bodies
/// fire as usual.
///
/// - `app`'s body loads the optional dependency `optdep` the importlib way
///   (as pandas loads numexpr): `optdep.core` and `optdep.util` fire inside
///   `app`, with a parent that never fired, and `optdep`'s own body time is
///   in `app`'s self time;
/// - top level loads `lazy.inner.mod` the importlib way: `lazy` and
///   `lazy.inner` are loaded through `_gcd_import` (nothing fires), except
///   that `lazy`'s body imports `lazy.inner.leaf`, whose parent
///   `lazy.inner` then fires nested in it (the C path imports parents with
///   `__import__`);
/// - a missing module loaded the importlib way fires nothing either, and a
///   loaded one is simply returned;
/// - `late` loads `optdep.extra` the importlib way, whose body's import of
///   `leaf2` fires nested in `late`.
pub fn importlib(c: Costs) -> Result<Workload, super::BuildError> {
    let mut b = WorkloadBuilder::new("importlib");
    let pkg = |imports| ModuleSpec { package: Some(true), ..c.spec(imports) };
    b.define("app", pkg(vec![StmtSpec::import_module("optdep"), StmtSpec::import("app.after")]))?;
    b.define("app.after", c.spec(vec![]))?;
    b.define("optdep", pkg(vec![StmtSpec::import("optdep.core"), StmtSpec::import("optdep").from(&["util"])]))?;
    b.define("optdep.core", c.spec(vec![]))?;
    b.define("optdep.util", c.spec(vec![]))?;
    b.define("optdep.extra", c.spec(vec![StmtSpec::import("leaf2")]))?;
    b.define("leaf2", c.spec(vec![]))?;
    b.define("lazy", pkg(vec![StmtSpec::import("lazy.inner.leaf")]))?;
    b.define("lazy.inner", pkg(vec![]))?;
    b.define("lazy.inner.leaf", c.spec(vec![]))?;
    b.define("lazy.inner.mod", c.spec(vec![StmtSpec::import("lazy.inner.mod2")]))?;
    b.define("lazy.inner.mod2", c.spec(vec![]))?;
    b.define("nope", ModuleSpec { missing: true, ..c.spec(vec![]) })?;
    b.define("late", c.spec(vec![StmtSpec::import_module("optdep.extra")]))?;
    b.main_imports(vec![
        StmtSpec::import("app"),
        StmtSpec::import_module("lazy.inner.mod"),
        StmtSpec::import_module("nope").caught(),
        StmtSpec::import_module("optdep"),
        StmtSpec::import("late"),
    ]);
    b.build()
}

/// CPython's start-up imports as every simulated process begins: the first
/// import of a fresh process is `encodings` (so a tracer that follows
/// children must see it, as it must see `_frozen_importlib_external` on a
/// real CPython), with `codecs` and `encodings.aliases` nested in it.
fn startup(b: &mut WorkloadBuilder, c: Costs) -> Result<(), super::BuildError> {
    b.define("codecs", c.spec(vec![]))?;
    b.define("encodings.aliases", c.spec(vec![]))?;
    b.define("encodings", c.spec(vec![StmtSpec::import("codecs"), StmtSpec::import("encodings.aliases")]))?;
    Ok(())
}

/// A fork-based pool of `count` workers (2 if 0), as multiprocessing's
/// fork start method makes one: the parent imports `encodings` and the
/// `pool` package, then forks its workers and imports `parent_after` while
/// they run. Each worker continues with a copy of the parent's
/// `sys.modules`: `import pool` fires nothing there, its first import that
/// fires is `pool.task` (with `pool.helpers` nested), then `fractions`. The
/// first worker forks a grandchild of its own, which imports
/// `grandchild_job`. The parent waits for every worker at exit.
pub fn fork(count: usize, c: Costs) -> Result<Workload, super::BuildError> {
    let count = if count == 0 { 2 } else { count };
    let mut b = WorkloadBuilder::new("fork");
    startup(&mut b, c)?;
    b.define("pool", ModuleSpec { package: Some(true), ..c.spec(vec![]) })?;
    b.define("pool.helpers", c.spec(vec![]))?;
    b.define("pool.task", c.spec(vec![StmtSpec::import("pool.helpers")]))?;
    b.define("fractions", c.spec(vec![]))?;
    b.define("parent_after", c.spec(vec![]))?;
    b.define("grandchild_job", c.spec(vec![]))?;
    let work = || {
        vec![
            StmtSpec::import("pool").into(),
            StmtSpec::import("pool.task").into(),
            StmtSpec::import("fractions").into(),
        ]
    };
    let mut first = work();
    first.push(StepSpec::Fork { plan: "grandchild".into(), wait: true });
    b.fork_plan("pool-worker-1", first);
    b.fork_plan("pool-worker", work());
    b.fork_plan("grandchild", vec![StmtSpec::import("grandchild_job").into()]);
    let mut main: Vec<StepSpec> = vec![StmtSpec::import("encodings").into(), StmtSpec::import("pool").into()];
    for i in 0..count {
        let plan = if i == 0 { "pool-worker-1" } else { "pool-worker" };
        main.push(StepSpec::Fork { plan: plan.into(), wait: false });
    }
    main.push(StmtSpec::import("parent_after").into());
    b.main_steps(main);
    b.build()
}

/// A chain of `count` processes (3 if 0), each started by the one before
/// with fork + exec, as `subprocess.run([sys.executable, ...])` does: every
/// process is a fresh `importprobe run --workload spawn --count N` that
/// imports `encodings` first (see [`startup`]), then `spawned.level_N`,
/// runs the next level and waits for it, then imports `spawned.after_N`.
pub fn spawn(count: usize, c: Costs) -> Result<Workload, super::BuildError> {
    let level = if count == 0 { 3 } else { count };
    let mut b = WorkloadBuilder::new("spawn");
    startup(&mut b, c)?;
    let (here, after) = (format!("spawned.level_{level}"), format!("spawned.after_{level}"));
    b.define(&here, c.spec(vec![]))?;
    b.define(&after, c.spec(vec![]))?;
    let mut main: Vec<StepSpec> = vec![StmtSpec::import("encodings").into(), StmtSpec::import(here).into()];
    if level > 1 {
        let args = vec!["--count".to_owned(), (level - 1).to_string()];
        main.push(StepSpec::Exec { spec: ExecSpec { workload: "spawn".into(), args }, wait: true });
    }
    main.push(StmtSpec::import(after).into());
    b.main_steps(main);
    b.build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_names_are_zero_padded_like_format() {
        let mut n = Numbered::default();
        for (i, width) in [(0, 6), (7, 6), (123456, 6), (1234567, 6), (42, 7), (0, 0), (10, 0)] {
            assert_eq!(n.get("m_", width, i), format!("m_{i:0width$}"));
        }
    }

    #[test]
    fn generated_graphs_keep_their_shape() {
        let w = stress(20, Costs::default()).unwrap();
        let kids =
            |m: &str| w.body(w.find(m).unwrap()).iter().map(|s| w.name(s.target).into_owned()).collect::<Vec<_>>();
        assert_eq!(kids("stress_0000000"), (1..=8).map(|k| format!("stress_{k:07}")).collect::<Vec<_>>());
        assert_eq!(kids("stress_0000002"), ["stress_0000017", "stress_0000018", "stress_0000019"]);
        let w = deep(3, Costs::default()).unwrap();
        assert_eq!(w.name(w.plan_stmts(w.main_thread())[0].target), "chain_000000");
        assert_eq!(w.name(w.body(w.find("chain_000001").unwrap())[0].target), "chain_000002");
        let w = wide(2, Costs::default()).unwrap();
        assert!(w.module(w.find("wide").unwrap()).is_package);
        assert_eq!(w.body(w.find("wide").unwrap()).len(), 2);
    }
}
