//! Assembling a [`Workload`] by name: modules, threads and processes are
//! described with strings, then resolved and laid out in flat tables once.

use super::plan::{ExecSpec, ForkId, ProcessPlan, Spawn, SpawnKind, ThreadPlan, ThreadStart};
use super::{name, ImportStmt, ModId, Module, ProbeName, Via, Workload};
use std::collections::HashMap;
use std::time::Duration;

/// A statement being described to the builder.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StmtSpec {
    pub target: String,
    pub from: Vec<String>,
    pub catch: bool,
    pub via: Via,
}

impl StmtSpec {
    pub fn import(target: impl Into<String>) -> Self {
        StmtSpec { target: target.into(), ..Default::default() }
    }
    /// `importlib.import_module(target)`.
    pub fn import_module(target: impl Into<String>) -> Self {
        StmtSpec { target: target.into(), via: Via::Importlib, ..Default::default() }
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

/// One step of a process's main thread: an import, or a child process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepSpec {
    Import(StmtSpec),
    /// Fork a child that runs the fork plan of this name.
    Fork {
        plan: String,
        wait: bool,
    },
    /// Fork and exec `importprobe run` of another workload.
    Exec {
        spec: ExecSpec,
        wait: bool,
    },
}

impl From<StmtSpec> for StepSpec {
    fn from(s: StmtSpec) -> Self {
        StepSpec::Import(s)
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
    #[error("{importer}: importlib.import_module({target:?}) has no from-list (drop `from`, or import it with `via = \"import\"`)")]
    ImportlibFrom { importer: String, target: String },
    #[error("module {0:?} has an unencodable name: under a tracer CPython 3.11 fails its import before the body runs, so it can import nothing")]
    UnencodableBody(String),
    #[error("{importer} forks {plan:?}, which is not defined (add a [[fork]] section with `name = {plan:?}`)")]
    UndefinedFork { importer: String, plan: String },
    #[error("fork plan {0:?} is defined twice")]
    DuplicateFork(String),
    #[error("fork plans start each other in a cycle ({}), which would fork forever", .0.join(" -> "))]
    ForkCycle(Vec<String>),
}

/// Everything the builder knows about a module before compilation.
#[derive(Debug, Clone, Default)]
pub struct ModuleSpec {
    pub find: Duration,
    pub exec: Duration,
    pub missing: bool,
    pub raises: bool,
    /// `Some(true)`: a package even without defined submodules; `Some(false)`:
    /// a plain module, so importing a submodule of it fails. `None`: a package
    /// exactly when submodules are defined.
    pub package: Option<bool>,
    pub imports: Vec<StmtSpec>,
    pub probe_name: ProbeName,
    /// Defined explicitly (not only as the parent of another module).
    pub explicit: bool,
}

/// Collects modules, threads and processes by name, then compiles them
/// into a [`Workload`].
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
    main: Vec<StepSpec>,
    threads: Vec<(String, Vec<StmtSpec>)>,
    forks: Vec<(String, Vec<StepSpec>)>,
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

    /// The main thread's top-level imports.
    pub fn main_imports(&mut self, stmts: Vec<StmtSpec>) {
        self.main = stmts.into_iter().map(StepSpec::Import).collect();
    }

    /// The main thread's top-level imports, with child processes between them.
    pub fn main_steps(&mut self, steps: Vec<StepSpec>) {
        self.main = steps;
    }

    pub fn thread(&mut self, name: impl Into<String>, stmts: Vec<StmtSpec>) {
        self.threads.push((name.into(), stmts));
    }

    /// A program a forked child runs (its main thread's steps).
    pub fn fork_plan(&mut self, name: impl Into<String>, steps: Vec<StepSpec>) {
        self.forks.push((name.into(), steps));
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
        let WorkloadBuilder { name, ids, order, specs, main, threads, forks, .. } = self;
        let mut is_package = vec![false; specs.len()];
        let mut parents = vec![None; specs.len()];
        for (id, n) in order.iter().enumerate() {
            if let Some(p) = name::parent(n).and_then(|p| ids.get(p)) {
                parents[id] = Some(*p);
                is_package[*p as usize] = true;
            }
        }
        let fork_ids = fork_ids(&forks)?;
        let mut t = Tables { ids: &ids, stmts: Vec::new(), from_targets: Vec::new() };
        let mut names = Vec::with_capacity(order.iter().map(|n| n.len() + 1).sum());
        let mut modules = Vec::with_capacity(specs.len());
        for (id, (n, spec)) in order.iter().zip(&specs).enumerate() {
            if spec.probe_name == ProbeName::Unencodable && !spec.imports.is_empty() {
                return Err(BuildError::UnencodableBody(n.clone()));
            }
            let start = names.len() as u32;
            names.extend_from_slice(n.as_bytes());
            names.push(0);
            let body = t.compile(&|| format!("module {n:?}"), &spec.imports)?;
            modules.push(Module {
                name: start..names.len() as u32,
                parent: parents[id],
                is_package: spec.package.unwrap_or(is_package[id] || !spec.explicit),
                find: spec.find,
                exec: spec.exec,
                missing: spec.missing,
                raises: spec.raises,
                probe_name: spec.probe_name,
                stmts: body,
                slices: 0..0,
            });
        }
        let main = t.process("main", &main, &fork_ids, "the main thread")?;
        let forks = forks
            .iter()
            .map(|(fname, steps)| t.process(fname, steps, &fork_ids, &format!("fork plan {fname:?}")))
            .collect::<Result<Vec<_>, _>>()?;
        check_acyclic(&forks)?;
        let threads = threads
            .iter()
            .map(|(tname, list)| {
                Ok(ThreadPlan {
                    name: tname.clone(),
                    stmts: t.compile(&|| format!("thread {tname:?}"), list)?,
                    offsets: 0..0,
                    start: ThreadStart::AfterMain,
                })
            })
            .collect::<Result<_, BuildError>>()?;
        let Tables { stmts, from_targets, .. } = t;
        Ok(Workload { name, names, modules, stmts, from_targets, times: Vec::new(), main, threads, forks })
    }
}

/// The statement tables being filled, and the names they resolve against.
struct Tables<'a> {
    ids: &'a HashMap<String, ModId>,
    stmts: Vec<ImportStmt>,
    from_targets: Vec<ModId>,
}

impl Tables<'_> {
    fn compile(
        &mut self,
        importer: &dyn Fn() -> String,
        list: &[StmtSpec],
    ) -> Result<std::ops::Range<u32>, BuildError> {
        let start = self.stmts.len() as u32;
        for s in list {
            let target = *self
                .ids
                .get(&s.target)
                .ok_or_else(|| BuildError::Undefined { importer: importer(), target: s.target.clone() })?;
            if s.via == Via::Importlib && !s.from.is_empty() {
                return Err(BuildError::ImportlibFrom { importer: importer(), target: s.target.clone() });
            }
            let f0 = self.from_targets.len() as u32;
            for f in &s.from {
                if let Some(&sub) = self.ids.get(&format!("{}.{}", s.target, f)) {
                    self.from_targets.push(sub);
                }
            }
            self.stmts.push(ImportStmt {
                target,
                catch: s.catch,
                via: s.via,
                from: f0..self.from_targets.len() as u32,
            });
        }
        Ok(start..self.stmts.len() as u32)
    }

    /// A process's steps: its imports in one statement range, its children
    /// placed after the imports that precede them.
    fn process(
        &mut self,
        name: &str,
        steps: &[StepSpec],
        fork_ids: &HashMap<&str, ForkId>,
        who: &str,
    ) -> Result<ProcessPlan, BuildError> {
        let imports: Vec<StmtSpec> = steps
            .iter()
            .filter_map(|s| match s {
                StepSpec::Import(i) => Some(i.clone()),
                _ => None,
            })
            .collect();
        let stmts = self.compile(&|| who.to_owned(), &imports)?;
        let mut spawns = Vec::new();
        let mut after = 0;
        for step in steps {
            let (kind, wait) = match step {
                StepSpec::Import(_) => {
                    after += 1;
                    continue;
                }
                StepSpec::Fork { plan, wait } => {
                    let id = *fork_ids
                        .get(plan.as_str())
                        .ok_or_else(|| BuildError::UndefinedFork { importer: who.to_owned(), plan: plan.clone() })?;
                    (SpawnKind::Fork(id), *wait)
                }
                StepSpec::Exec { spec, wait } => (SpawnKind::Exec(spec.clone()), *wait),
            };
            spawns.push(Spawn { after, kind, wait });
        }
        let main = ThreadPlan { name: "main".into(), stmts, offsets: 0..0, start: ThreadStart::AfterMain };
        Ok(ProcessPlan { name: name.to_owned(), main, spawns })
    }
}

fn fork_ids(forks: &[(String, Vec<StepSpec>)]) -> Result<HashMap<&str, ForkId>, BuildError> {
    let mut ids = HashMap::new();
    for (i, (name, _)) in forks.iter().enumerate() {
        if ids.insert(name.as_str(), i as ForkId).is_some() {
            return Err(BuildError::DuplicateFork(name.clone()));
        }
    }
    Ok(ids)
}

/// Fork plans must not start each other in a cycle (depth-first search with
/// an explicit stack: white/grey/black colouring).
fn check_acyclic(forks: &[ProcessPlan]) -> Result<(), BuildError> {
    #[derive(Clone, Copy, PartialEq)]
    enum Colour {
        White,
        Grey,
        Black,
    }
    let mut colour = vec![Colour::White; forks.len()];
    for root in 0..forks.len() {
        if colour[root] != Colour::White {
            continue;
        }
        // (plan, index of the next child to visit)
        let mut stack: Vec<(usize, usize)> = vec![(root, 0)];
        colour[root] = Colour::Grey;
        while let Some(&mut (plan, ref mut next)) = stack.last_mut() {
            let child = forks[plan].forks().nth(*next);
            *next += 1;
            match child.map(|c| c as usize) {
                None => {
                    colour[plan] = Colour::Black;
                    stack.pop();
                }
                Some(c) if colour[c] == Colour::Grey => {
                    let from = stack.iter().position(|&(p, _)| p == c).expect("grey plans are on the stack");
                    let mut cycle: Vec<String> = stack[from..].iter().map(|&(p, _)| forks[p].name.clone()).collect();
                    cycle.push(forks[c].name.clone());
                    return Err(BuildError::ForkCycle(cycle));
                }
                Some(c) if colour[c] == Colour::White => {
                    colour[c] = Colour::Grey;
                    stack.push((c, 0));
                }
                Some(_) => {}
            }
        }
    }
    Ok(())
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
    fn import_module_has_no_from_list_and_unencodable_names_no_body() {
        let mut b = WorkloadBuilder::new("t");
        b.define("p.leaf", ModuleSpec::default()).unwrap();
        b.main_imports(vec![StmtSpec { from: vec!["leaf".into()], ..StmtSpec::import_module("p") }]);
        assert!(matches!(b.build(), Err(BuildError::ImportlibFrom { .. })));
        let mut b = WorkloadBuilder::new("t");
        b.define("ok", ModuleSpec::default()).unwrap();
        let bad = ModuleSpec {
            probe_name: ProbeName::Unencodable,
            imports: vec![StmtSpec::import("ok")],
            ..Default::default()
        };
        b.define("bad", bad).unwrap();
        assert_eq!(b.build().unwrap_err(), BuildError::UnencodableBody("bad".into()));
    }

    #[test]
    fn steps_place_children_between_imports() {
        let mut b = WorkloadBuilder::new("t");
        b.define("a", ModuleSpec::default()).unwrap();
        b.define("b", ModuleSpec::default()).unwrap();
        b.main_steps(vec![
            StmtSpec::import("a").into(),
            StepSpec::Fork { plan: "w".into(), wait: false },
            StmtSpec::import("b").into(),
            StepSpec::Exec { spec: ExecSpec { workload: "flat".into(), args: vec![] }, wait: true },
        ]);
        b.fork_plan("w", vec![StmtSpec::import("b").into()]);
        let w = b.build().unwrap();
        let main = w.main_process();
        assert_eq!(w.plan_stmts(&main.main).len(), 2);
        assert_eq!(main.spawns[0], Spawn { after: 1, kind: SpawnKind::Fork(0), wait: false });
        assert_eq!(main.spawns[1].after, 2);
        assert_eq!(w.plan_stmts(&w.fork_plan(0).main).len(), 1);
    }

    #[test]
    fn fork_plans_must_exist_and_not_cycle() {
        let mut b = WorkloadBuilder::new("t");
        b.main_steps(vec![StepSpec::Fork { plan: "nope".into(), wait: false }]);
        assert!(matches!(b.build(), Err(BuildError::UndefinedFork { plan, .. }) if plan == "nope"));
        let mut b = WorkloadBuilder::new("t");
        b.main_steps(vec![StepSpec::Fork { plan: "a".into(), wait: false }]);
        b.fork_plan("a", vec![StepSpec::Fork { plan: "b".into(), wait: false }]);
        b.fork_plan("b", vec![StepSpec::Fork { plan: "a".into(), wait: false }]);
        let e = b.build().unwrap_err();
        assert_eq!(e, BuildError::ForkCycle(vec!["a".into(), "b".into(), "a".into()]));
        assert!(e.to_string().contains("a -> b -> a"), "{e}");
    }
}
