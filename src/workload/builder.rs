//! Assembling a [`Workload`] by name: modules, threads and processes are
//! described with strings, then resolved and laid out in flat tables once.

use super::interner::Interner;
use super::plan::{ExecSpec, ForkId, ProcessPlan, Spawn, SpawnKind, ThreadPlan, ThreadStart};
use super::{name, ImportStmt, ModId, Module, ProbeName, Via, Workload, NO_PARENT};
use std::collections::HashMap;
use std::ops::Range;
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
///
/// Compact as it goes, so a million-module graph costs little more than
/// its compiled tables: names are stored once ([`Interner`]), modules
/// straight as the workload's [`Module`] records, and a statement's target
/// as an id when it is already known (as a name to resolve at
/// [`WorkloadBuilder::build`] only when it is not defined yet).
#[derive(Debug, Default)]
pub struct WorkloadBuilder {
    name: String,
    validate_names: bool,
    names: Interner,
    modules: Vec<Module>,
    info: Vec<Info>,
    /// Module bodies' statements with their module, in the order added.
    body: Vec<(ModId, Pending)>,
    /// Names of not yet defined targets and of from-list items.
    refs: Vec<u8>,
    /// From-list items: spans of `refs`.
    from: Vec<Range<u32>>,
    main: PlanSpec,
    threads: Vec<(String, Vec<Pending>)>,
    forks: Vec<(String, PlanSpec)>,
}

/// What only the builder needs to know of a module.
#[derive(Debug, Clone, Copy, Default)]
struct Info {
    explicit: bool,
    package: Option<bool>,
    has_children: bool,
    has_body: bool,
}

/// A statement whose target may still be a name.
#[derive(Debug, Clone)]
struct Pending {
    target: Target,
    /// Span of [`WorkloadBuilder::from`].
    from: Range<u32>,
    catch: bool,
    via: Via,
}

#[derive(Debug, Clone)]
enum Target {
    Id(ModId),
    /// Span of [`WorkloadBuilder::refs`].
    Name(Range<u32>),
}

/// A process's main thread: its imports, and its children with the number
/// of imports before each.
#[derive(Debug, Default)]
struct PlanSpec {
    imports: Vec<Pending>,
    spawns: Vec<(u32, Child)>,
}

/// A child process a plan starts.
#[derive(Debug)]
enum Child {
    Fork { plan: String, wait: bool },
    Exec { spec: ExecSpec, wait: bool },
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

    /// Room for `modules` more modules with names of about `name_len`
    /// bytes: a generated graph of known size is laid out without regrowing.
    pub fn reserve(&mut self, modules: usize, name_len: usize) {
        self.names.reserve(modules, name_len);
        self.modules.reserve(modules);
        self.info.reserve(modules);
    }

    /// Whether `name` is defined, explicitly or as the parent of a module.
    pub fn contains(&self, name: &str) -> bool {
        self.names.get(name.as_bytes()).is_some()
    }

    /// Defines a module (and implicitly its parents). Redefining an implicit
    /// parent is allowed; redefining an explicit module is an error.
    pub fn define(&mut self, name: &str, spec: ModuleSpec) -> Result<ModId, BuildError> {
        let id = self.intern(name)?;
        let info = &mut self.info[id as usize];
        if info.explicit {
            return Err(BuildError::Duplicate(name.to_owned()));
        }
        if info.has_body {
            // What `add_import` gave the implicit module is replaced.
            self.body.retain(|(m, _)| *m != id);
        }
        *info = Info { explicit: true, package: spec.package, has_body: !spec.imports.is_empty(), ..*info };
        let m = &mut self.modules[id as usize];
        m.find_ns = super::nanos(spec.find);
        m.exec_ns = super::nanos(spec.exec);
        m.missing = spec.missing;
        m.raises = spec.raises;
        m.probe_name = spec.probe_name;
        for s in &spec.imports {
            let p = self.pending(s);
            self.body.push((id, p));
        }
        Ok(id)
    }

    /// Appends an import statement to an already defined module's body.
    pub fn add_import(&mut self, importer: &str, stmt: StmtSpec) {
        let id = self.names.get(importer.as_bytes()).expect("add_import to a defined module");
        let p = self.pending(&stmt);
        self.push_body(id, p);
    }

    /// Appends `import target` to a module's body, both given by the ids
    /// [`WorkloadBuilder::define`] returned: generated graphs name nothing twice.
    pub fn add_import_id(&mut self, importer: ModId, target: ModId) {
        self.push_body(importer, Pending { target: Target::Id(target), from: 0..0, catch: false, via: Via::Import });
    }

    fn push_body(&mut self, id: ModId, p: Pending) {
        self.info[id as usize].has_body = true;
        self.body.push((id, p));
    }

    /// The main thread's top-level imports.
    pub fn main_imports(&mut self, stmts: Vec<StmtSpec>) {
        self.main_steps(stmts.into_iter().map(StepSpec::Import).collect());
    }

    /// Appends `import target` to the main thread's top level (`target` as
    /// [`WorkloadBuilder::define`] returned it).
    pub fn main_import_id(&mut self, target: ModId) {
        self.main.imports.push(Pending { target: Target::Id(target), from: 0..0, catch: false, via: Via::Import });
    }

    /// The main thread's top-level imports, with child processes between them.
    pub fn main_steps(&mut self, steps: Vec<StepSpec>) {
        self.main = self.plan(steps);
    }

    pub fn thread(&mut self, name: impl Into<String>, stmts: Vec<StmtSpec>) {
        let list = stmts.iter().map(|s| self.pending(s)).collect();
        self.threads.push((name.into(), list));
    }

    /// A program a forked child runs (its main thread's steps).
    pub fn fork_plan(&mut self, name: impl Into<String>, steps: Vec<StepSpec>) {
        let plan = self.plan(steps);
        self.forks.push((name.into(), plan));
    }

    fn plan(&mut self, steps: Vec<StepSpec>) -> PlanSpec {
        let mut plan = PlanSpec::default();
        for step in steps {
            match step {
                StepSpec::Import(s) => plan.imports.push(self.pending(&s)),
                StepSpec::Fork { plan: name, wait } => {
                    plan.spawns.push((plan.imports.len() as u32, Child::Fork { plan: name, wait }))
                }
                StepSpec::Exec { spec, wait } => {
                    plan.spawns.push((plan.imports.len() as u32, Child::Exec { spec, wait }))
                }
            }
        }
        plan
    }

    /// A statement with its target resolved now if it can be: ids never change.
    fn pending(&mut self, s: &StmtSpec) -> Pending {
        let target = match self.names.get(s.target.as_bytes()) {
            Some(id) => Target::Id(id),
            None => Target::Name(push_ref(&mut self.refs, &s.target)),
        };
        let f0 = self.from.len() as u32;
        for f in &s.from {
            let span = push_ref(&mut self.refs, f);
            self.from.push(span);
        }
        Pending { target, from: f0..self.from.len() as u32, catch: s.catch, via: s.via }
    }

    fn intern(&mut self, name: &str) -> Result<ModId, BuildError> {
        if let Some(id) = self.names.get(name.as_bytes()) {
            return Ok(id);
        }
        if self.validate_names {
            name::validate(name)?;
        } else if name.as_bytes().contains(&0) {
            return Err(BuildError::Nul(name.to_owned()));
        } else if name.is_empty() {
            return Err(name::NameError::Empty.into());
        }
        let mut parent = NO_PARENT;
        if let Some(p) = name::parent(name) {
            if !p.is_empty() {
                parent = self.intern(p)?;
                self.info[parent as usize].has_children = true;
            }
        }
        let id = self.names.insert(name.as_bytes());
        self.modules.push(Module {
            name: self.names.span(id),
            stmts: 0..0,
            slices: 0..0,
            find_ns: 0,
            exec_ns: 0,
            parent,
            is_package: false,
            missing: false,
            raises: false,
            probe_name: ProbeName::Utf8,
        });
        self.info.push(Info::default());
        Ok(id)
    }

    /// Resolves every name and lays the graph out in flat tables.
    pub fn build(self) -> Result<Workload, BuildError> {
        let WorkloadBuilder { name, names, mut modules, info, mut body, refs, from, main, threads, forks, .. } = self;
        let fork_ids = fork_ids(&forks)?;
        if !body.is_sorted_by_key(|(m, _)| *m) {
            body.sort_by_key(|(m, _)| *m);
        }
        let mut t = Tables { names: &names, refs: &refs, from: &from, stmts: Vec::new(), from_targets: Vec::new() };
        t.stmts.reserve_exact(body.len() + main.imports.len());
        let mut rest = &body[..];
        for (id, (m, info)) in modules.iter_mut().zip(&info).enumerate() {
            let n = rest.iter().take_while(|(owner, _)| *owner as usize == id).count();
            let (own, after) = rest.split_at(n);
            rest = after;
            let text = || String::from_utf8_lossy(names.name(id as ModId)).into_owned();
            if m.probe_name == ProbeName::Unencodable && !own.is_empty() {
                return Err(BuildError::UnencodableBody(text()));
            }
            let label = || format!("module {:?}", text());
            m.stmts = t.compile(&label, own.iter().map(|(_, p)| p))?;
            m.is_package = info.package.unwrap_or(info.has_children || !info.explicit);
        }
        drop(body);
        let main = t.process("main", &main, &fork_ids, "the main thread")?;
        let forks = forks
            .iter()
            .map(|(fname, plan)| t.process(fname, plan, &fork_ids, &format!("fork plan {fname:?}")))
            .collect::<Result<Vec<_>, _>>()?;
        check_acyclic(&forks)?;
        let threads = threads
            .iter()
            .map(|(tname, list)| {
                Ok(ThreadPlan {
                    name: tname.clone(),
                    stmts: t.compile(&|| format!("thread {tname:?}"), list.iter())?,
                    offsets: 0..0,
                    start: ThreadStart::AfterMain,
                })
            })
            .collect::<Result<_, BuildError>>()?;
        let Tables { mut stmts, mut from_targets, .. } = t;
        stmts.shrink_to_fit();
        from_targets.shrink_to_fit();
        let names = names.into_bytes();
        Ok(Workload { name, names, modules, stmts, from_targets, times: Vec::new(), main, threads, forks })
    }
}

/// Stores a name in `refs`, returning its span.
fn push_ref(refs: &mut Vec<u8>, name: &str) -> Range<u32> {
    let start = refs.len() as u32;
    refs.extend_from_slice(name.as_bytes());
    start..refs.len() as u32
}

/// The statement tables being filled, and the names they resolve against.
struct Tables<'a> {
    names: &'a Interner,
    refs: &'a [u8],
    from: &'a [Range<u32>],
    stmts: Vec<ImportStmt>,
    from_targets: Vec<ModId>,
}

impl<'a> Tables<'a> {
    fn text(&self, span: &Range<u32>) -> &'a [u8] {
        &self.refs[span.start as usize..span.end as usize]
    }

    fn target_name(&self, target: &Target) -> String {
        match target {
            Target::Id(id) => String::from_utf8_lossy(self.names.name(*id)).into_owned(),
            Target::Name(span) => String::from_utf8_lossy(self.text(span)).into_owned(),
        }
    }

    fn compile<'p>(
        &mut self,
        importer: &dyn Fn() -> String,
        list: impl Iterator<Item = &'p Pending>,
    ) -> Result<Range<u32>, BuildError> {
        let start = self.stmts.len() as u32;
        let mut key = Vec::new();
        for s in list {
            let target = match &s.target {
                Target::Id(id) => *id,
                Target::Name(span) => self.names.get(self.text(span)).ok_or_else(|| BuildError::Undefined {
                    importer: importer(),
                    target: self.target_name(&s.target),
                })?,
            };
            if s.via == Via::Importlib && !s.from.is_empty() {
                return Err(BuildError::ImportlibFrom { importer: importer(), target: self.target_name(&s.target) });
            }
            let f0 = self.from_targets.len() as u32;
            for f in &self.from[s.from.start as usize..s.from.end as usize] {
                key.clear();
                key.extend_from_slice(self.names.name(target));
                key.push(b'.');
                key.extend_from_slice(self.text(f));
                if let Some(sub) = self.names.get(&key) {
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
        plan: &PlanSpec,
        fork_ids: &HashMap<&str, ForkId>,
        who: &str,
    ) -> Result<ProcessPlan, BuildError> {
        let stmts = self.compile(&|| who.to_owned(), plan.imports.iter())?;
        let mut spawns = Vec::new();
        for (after, step) in &plan.spawns {
            let (kind, wait) = match step {
                Child::Fork { plan, wait } => {
                    let id = *fork_ids
                        .get(plan.as_str())
                        .ok_or_else(|| BuildError::UndefinedFork { importer: who.to_owned(), plan: plan.clone() })?;
                    (SpawnKind::Fork(id), *wait)
                }
                Child::Exec { spec, wait } => (SpawnKind::Exec(spec.clone()), *wait),
            };
            spawns.push(Spawn { after: *after, kind, wait });
        }
        let main = ThreadPlan { name: "main".into(), stmts, offsets: 0..0, start: ThreadStart::AfterMain };
        Ok(ProcessPlan { name: name.to_owned(), main, spawns })
    }
}

fn fork_ids(forks: &[(String, PlanSpec)]) -> Result<HashMap<&str, ForkId>, BuildError> {
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
