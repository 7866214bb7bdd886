//! Workloads: the module graph a simulated program imports, with known costs.
//!
//! A [`Workload`] is compiled once (from a manifest, a built-in scenario, the
//! demo or the random generator, all through [`WorkloadBuilder`]) into flat
//! tables indexed by [`ModId`], so a million-module graph stays compact and the
//! simulator never hashes a name on its hot path. Module names are stored
//! NUL-terminated, so a probe's `char *` argument costs nothing to prepare.

pub mod demo;
pub mod manifest;
pub mod name;
pub mod random;
pub mod scenarios;

use std::collections::HashMap;
use std::ffi::CStr;
use std::ops::Range;
use std::time::Duration;

/// Index of a module in a [`Workload`].
pub type ModId = u32;

/// One module the simulated finder knows about (or knows is missing).
#[derive(Debug, Clone)]
pub struct Module {
    name: Range<u32>,
    parent: Option<ModId>,
    /// Has a `__path__`: submodules can be imported from it.
    pub is_package: bool,
    /// Time the finder spends locating it (spent even when it is missing).
    pub find: Duration,
    /// Time its body spends outside nested imports ("self" time).
    pub exec: Duration,
    /// The finder does not find it: `ModuleNotFoundError`.
    pub missing: bool,
    /// Its body raises after running its imports.
    pub raises: bool,
    stmts: Range<u32>,
}

/// One `import` statement in a module body or a thread's top level.
#[derive(Debug, Clone)]
pub struct ImportStmt {
    /// `import target` / `from target import ...`.
    pub target: ModId,
    /// Wrapped in `try: ... except ImportError: pass`.
    pub catch: bool,
    from: Range<u32>,
}

/// A thread of the simulated program and the imports it runs.
#[derive(Debug, Clone)]
pub struct ThreadPlan {
    pub name: String,
    stmts: Range<u32>,
}

/// A compiled, immutable module graph plus the threads that import from it.
///
/// The main thread runs its imports first; then every other thread starts at
/// once and the main thread joins them (like `programs/threads.py`).
#[derive(Debug, Clone)]
pub struct Workload {
    pub name: String,
    names: Vec<u8>,
    modules: Vec<Module>,
    stmts: Vec<ImportStmt>,
    from_targets: Vec<ModId>,
    main: ThreadPlan,
    threads: Vec<ThreadPlan>,
}

impl Workload {
    pub fn module(&self, id: ModId) -> &Module {
        &self.modules[id as usize]
    }

    pub fn module_count(&self) -> usize {
        self.modules.len()
    }

    /// The module's name with its trailing NUL, ready to hand to a probe.
    pub fn c_name(&self, id: ModId) -> &CStr {
        let r = &self.modules[id as usize].name;
        CStr::from_bytes_with_nul(&self.names[r.start as usize..r.end as usize])
            .expect("names are stored NUL-terminated without interior NUL")
    }

    /// The module's name as text (lossy only for names that are not UTF-8).
    pub fn name(&self, id: ModId) -> std::borrow::Cow<'_, str> {
        self.c_name(id).to_string_lossy()
    }

    pub fn parent(&self, id: ModId) -> Option<ModId> {
        self.modules[id as usize].parent
    }

    /// The body's import statements, in order.
    pub fn body(&self, id: ModId) -> &[ImportStmt] {
        let r = &self.modules[id as usize].stmts;
        &self.stmts[r.start as usize..r.end as usize]
    }

    /// Submodules named in a `from target import a, b` that are modules.
    pub fn from_targets(&self, stmt: &ImportStmt) -> &[ModId] {
        &self.from_targets[stmt.from.start as usize..stmt.from.end as usize]
    }

    pub fn main_thread(&self) -> &ThreadPlan {
        &self.main
    }

    pub fn threads(&self) -> &[ThreadPlan] {
        &self.threads
    }

    pub fn plan_stmts(&self, plan: &ThreadPlan) -> &[ImportStmt] {
        &self.stmts[plan.stmts.start as usize..plan.stmts.end as usize]
    }

    /// The same workload with every find and exec cost multiplied by `factor`.
    pub fn scaled(mut self, factor: f64) -> Self {
        for m in &mut self.modules {
            m.find = m.find.mul_f64(factor);
            m.exec = m.exec.mul_f64(factor);
        }
        self
    }

    /// Looks a module up by name (linear: for tests and tools, not hot paths).
    pub fn find(&self, name: &str) -> Option<ModId> {
        (0..self.modules.len() as ModId).find(|&id| self.c_name(id).to_bytes() == name.as_bytes())
    }
}

/// A statement being described to the builder.
#[derive(Debug, Clone, Default)]
pub struct StmtSpec {
    pub target: String,
    pub from: Vec<String>,
    pub catch: bool,
}

impl StmtSpec {
    pub fn import(target: impl Into<String>) -> Self {
        StmtSpec { target: target.into(), ..Default::default() }
    }
    pub fn caught(mut self) -> Self {
        self.catch = true;
        self
    }
    pub fn from(mut self, names: &[&str]) -> Self {
        self.from = names.iter().map(|s| s.to_string()).collect();
        self
    }
}

/// Errors while assembling a workload: they name the module involved.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BuildError {
    #[error(transparent)]
    Name(#[from] name::NameError),
    #[error("module {0:?} contains a NUL byte, which no C string can carry")]
    Nul(String),
    #[error("module {0:?} is defined twice")]
    Duplicate(String),
    #[error("{importer} imports {target:?}, which is not defined (add a module entry for it, with `missing = true` if the finder must fail)")]
    Undefined { importer: String, target: String },
    #[error("module {0:?}: {1} cost is not a finite, non-negative number of microseconds")]
    BadCost(String, &'static str),
}

/// Everything the builder knows about a module before compilation.
#[derive(Debug, Clone, Default)]
pub struct ModuleSpec {
    pub find: Duration,
    pub exec: Duration,
    pub missing: bool,
    pub raises: bool,
    /// Force a package even when no submodule is defined.
    pub package: bool,
    pub imports: Vec<StmtSpec>,
    /// Defined explicitly (not only as the parent of another module).
    pub explicit: bool,
}

/// Collects modules and threads by name, then compiles them into a [`Workload`].
///
/// Parents of dotted names that are not defined become empty packages, as
/// namespace packages do in Python 3.
#[derive(Debug, Default)]
pub struct WorkloadBuilder {
    name: String,
    validate_names: bool,
    ids: HashMap<String, ModId>,
    order: Vec<String>,
    specs: Vec<ModuleSpec>,
    main: Vec<StmtSpec>,
    threads: Vec<(String, Vec<StmtSpec>)>,
}

impl WorkloadBuilder {
    pub fn new(name: impl Into<String>) -> Self {
        WorkloadBuilder { name: name.into(), validate_names: true, ..Default::default() }
    }

    /// Accepts any string as a module name, as `__import__` does (tests of
    /// odd names); only NUL stays forbidden.
    pub fn allow_any_names(mut self) -> Self {
        self.validate_names = false;
        self
    }

    /// Whether `name` is defined, explicitly or as the parent of a module.
    pub fn contains(&self, name: &str) -> bool {
        self.ids.contains_key(name)
    }

    /// Defines a module (and implicitly its parents). Redefining an implicit
    /// parent is allowed; redefining an explicit module is an error.
    pub fn define(&mut self, name: &str, spec: ModuleSpec) -> Result<ModId, BuildError> {
        let id = self.intern(name)?;
        let slot = &mut self.specs[id as usize];
        if slot.explicit {
            return Err(BuildError::Duplicate(name.to_owned()));
        }
        *slot = ModuleSpec { explicit: true, ..spec };
        Ok(id)
    }

    /// Appends an import statement to an already defined module's body.
    pub fn add_import(&mut self, importer: &str, stmt: StmtSpec) {
        let id = self.ids[importer];
        self.specs[id as usize].imports.push(stmt);
    }

    pub fn main_imports(&mut self, stmts: Vec<StmtSpec>) {
        self.main = stmts;
    }

    pub fn thread(&mut self, name: impl Into<String>, stmts: Vec<StmtSpec>) {
        self.threads.push((name.into(), stmts));
    }

    fn intern(&mut self, name: &str) -> Result<ModId, BuildError> {
        if let Some(&id) = self.ids.get(name) {
            return Ok(id);
        }
        if self.validate_names {
            name::validate(name)?;
        } else if name.as_bytes().contains(&0) {
            return Err(BuildError::Nul(name.to_owned()));
        } else if name.is_empty() {
            return Err(name::NameError::Empty.into());
        }
        if let Some(p) = name::parent(name) {
            if !p.is_empty() {
                self.intern(p)?;
            }
        }
        let id = self.specs.len() as ModId;
        self.ids.insert(name.to_owned(), id);
        self.order.push(name.to_owned());
        self.specs.push(ModuleSpec::default());
        Ok(id)
    }

    /// Resolves every name and lays the graph out in flat tables.
    pub fn build(self) -> Result<Workload, BuildError> {
        let WorkloadBuilder { name, ids, order, specs, main, threads, .. } = self;
        let mut is_package = vec![false; specs.len()];
        let mut parents = vec![None; specs.len()];
        for (id, n) in order.iter().enumerate() {
            if let Some(p) = name::parent(n).and_then(|p| ids.get(p)) {
                parents[id] = Some(*p);
                is_package[*p as usize] = true;
            }
        }
        let mut names = Vec::with_capacity(order.iter().map(|n| n.len() + 1).sum());
        let mut stmts = Vec::new();
        let mut from_targets = Vec::new();
        let mut compile = |importer: &dyn Fn() -> String, list: &[StmtSpec], stmts: &mut Vec<ImportStmt>| {
            let start = stmts.len() as u32;
            for s in list {
                let target = *ids
                    .get(&s.target)
                    .ok_or_else(|| BuildError::Undefined { importer: importer(), target: s.target.clone() })?;
                let f0 = from_targets.len() as u32;
                for f in &s.from {
                    if let Some(&sub) = ids.get(&format!("{}.{}", s.target, f)) {
                        from_targets.push(sub);
                    }
                }
                stmts.push(ImportStmt { target, catch: s.catch, from: f0..from_targets.len() as u32 });
            }
            Ok::<_, BuildError>(start..stmts.len() as u32)
        };
        let mut modules = Vec::with_capacity(specs.len());
        for (id, (n, spec)) in order.iter().zip(&specs).enumerate() {
            let start = names.len() as u32;
            names.extend_from_slice(n.as_bytes());
            names.push(0);
            let body = compile(&|| format!("module {n:?}"), &spec.imports, &mut stmts)?;
            modules.push(Module {
                name: start..names.len() as u32,
                parent: parents[id],
                is_package: is_package[id] || spec.package || !spec.explicit,
                find: spec.find,
                exec: spec.exec,
                missing: spec.missing,
                raises: spec.raises,
                stmts: body,
            });
        }
        let main =
            ThreadPlan { name: "main".into(), stmts: compile(&|| "the main thread".to_owned(), &main, &mut stmts)? };
        let threads = threads
            .iter()
            .map(|(tname, list)| {
                Ok(ThreadPlan {
                    name: tname.clone(),
                    stmts: compile(&|| format!("thread {tname:?}"), list, &mut stmts)?,
                })
            })
            .collect::<Result<_, BuildError>>()?;
        Ok(Workload { name, names, modules, stmts, from_targets, main, threads })
    }
}

/// Converts a manifest's microseconds into a duration, rejecting nonsense.
pub fn micros(module: &str, what: &'static str, us: f64) -> Result<Duration, BuildError> {
    if us.is_finite() && (0.0..1e12).contains(&us) {
        Ok(Duration::from_nanos((us * 1000.0).round() as u64))
    } else {
        Err(BuildError::BadCost(module.to_owned(), what))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_are_created_as_packages() {
        let mut b = WorkloadBuilder::new("t");
        b.define("a.b.c", ModuleSpec::default()).unwrap();
        b.main_imports(vec![StmtSpec::import("a.b.c")]);
        let w = b.build().unwrap();
        let c = w.find("a.b.c").unwrap();
        let ab = w.parent(c).unwrap();
        assert_eq!(w.name(ab), "a.b");
        assert!(w.module(ab).is_package);
        assert!(!w.module(c).is_package);
        assert_eq!(w.name(w.parent(ab).unwrap()), "a");
        assert_eq!(w.c_name(c).to_bytes_with_nul(), b"a.b.c\0");
    }

    #[test]
    fn undefined_imports_and_duplicates_are_errors() {
        let mut b = WorkloadBuilder::new("t");
        b.define("a", ModuleSpec { imports: vec![StmtSpec::import("zzz")], ..Default::default() }).unwrap();
        assert_eq!(b.define("a", ModuleSpec::default()), Err(BuildError::Duplicate("a".into())));
        assert!(matches!(b.build(), Err(BuildError::Undefined { target, .. }) if target == "zzz"));
    }

    #[test]
    fn from_list_keeps_only_submodules() {
        let mut b = WorkloadBuilder::new("t");
        b.define("p.leaf", ModuleSpec::default()).unwrap();
        b.main_imports(vec![StmtSpec::import("p").from(&["leaf", "attr"])]);
        let w = b.build().unwrap();
        let stmt = &w.plan_stmts(w.main_thread())[0];
        assert_eq!(w.from_targets(stmt), &[w.find("p.leaf").unwrap()]);
    }

    #[test]
    fn costs_reject_negative_and_nan() {
        assert!(micros("m", "find", -1.0).is_err());
        assert!(micros("m", "find", f64::NAN).is_err());
        assert_eq!(micros("m", "find", 1.5).unwrap(), Duration::from_nanos(1500));
    }
}
