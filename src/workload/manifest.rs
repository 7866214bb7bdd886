//! Workload manifests: a TOML file that describes modules explicitly.
//!
//! ```toml
//! [defaults]            # optional: costs of modules that give none
//! find_us = 20
//! exec_us = 50
//!
//! [[module]]
//! name = "pkg.a"
//! find_us = 30          # finder time, spent even when the module is missing
//! exec_us = 120         # body time outside nested imports
//! imports = ["pkg.b", { module = "opt", catch = true }, { module = "pkg.sub", from = ["leaf"] },
//!            { module = "plugin", via = "importlib" }]   # importlib.import_module("plugin")
//!
//! [[module]]
//! name = "opt"
//! missing = true        # ModuleNotFoundError
//!
//! [[module]]
//! name = "bad_name"     # a label: the real name is a str CPython cannot encode
//! unencodable = true    # __import__('a\udcff'): the probes get NULL, the import fails
//!
//! [main]                # the main thread's top-level imports, and the
//! imports = ["pkg.a",   # child processes it starts between them
//!            { fork = "worker" },                    # fork(); the child runs [[fork]] "worker"
//!            { exec = "refpkg", args = ["--scale", "0.5"], wait = true }]  # subprocess.run
//!
//! [[fork]]              # what a forked child runs, with sys.modules copied
//! name = "worker"
//! imports = ["pkg.b", "late"]
//!
//! [[thread]]            # started together after main's imports
//! name = "worker-1"
//! imports = ["pkg.a"]
//! ```
//!
//! `exec` names a built-in workload or a manifest file (relative to this
//! one). A child started without `wait = true` is waited for when its
//! parent's program ends. Every mistake is reported as one line
//! `FILE:LINE:COL: message`.

use super::{micros, BuildError, ExecSpec, ModuleSpec, ProbeName, StepSpec, StmtSpec, Via, Workload, WorkloadBuilder};
use serde::Deserialize;
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// A manifest mistake, located in the file where possible.
#[derive(Debug, thiserror::Error)]
#[error("{path}:{location} {message}")]
pub struct ManifestError {
    pub path: String,
    /// `LINE:COL:` or empty.
    location: String,
    pub message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    workload: Option<Meta>,
    defaults: Option<Defaults>,
    #[serde(default, rename = "module")]
    modules: Vec<ModuleEntry>,
    main: Option<ThreadEntry>,
    #[serde(default, rename = "thread")]
    threads: Vec<ThreadEntry>,
    #[serde(default, rename = "fork")]
    forks: Vec<ForkEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Meta {
    name: Option<String>,
    #[allow(dead_code)]
    description: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Defaults {
    find_us: Option<Spanned<f64>>,
    exec_us: Option<Spanned<f64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ModuleEntry {
    name: Spanned<String>,
    find_us: Option<Spanned<f64>>,
    exec_us: Option<Spanned<f64>>,
    #[serde(default)]
    imports: Vec<Spanned<ImportEntry>>,
    #[serde(default)]
    missing: bool,
    #[serde(default)]
    raises: bool,
    package: Option<bool>,
    #[serde(default)]
    unencodable: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ThreadEntry {
    name: Option<String>,
    #[serde(default)]
    imports: Vec<Spanned<ImportEntry>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ForkEntry {
    name: Spanned<String>,
    #[serde(default)]
    imports: Vec<Spanned<ImportEntry>>,
}

enum ImportEntry {
    Plain(String),
    Table(ImportTable),
}

/// A string or a table. Written out rather than `#[serde(untagged)]`, which
/// would replace the table's precise errors ("unknown field `cach`") with
/// "data did not match any variant".
impl<'de> Deserialize<'de> for ImportEntry {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Entry;
        impl<'de> serde::de::Visitor<'de> for Entry {
            type Value = ImportEntry;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a module name or a table such as { module = \"m\" }, { fork = \"f\" }, { exec = \"w\" }")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ImportEntry, E> {
                Ok(ImportEntry::Plain(v.to_owned()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<ImportEntry, A::Error> {
                ImportTable::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(ImportEntry::Table)
            }
        }
        d.deserialize_any(Entry)
    }
}

/// `{ module = ... }` (an import), `{ fork = ... }` or `{ exec = ... }` (a
/// child process): one table type, so a misspelt key gets serde's precise
/// "unknown field" message; which keys go together is checked afterwards.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportTable {
    module: Option<String>,
    #[serde(default)]
    from: Vec<String>,
    #[serde(default)]
    catch: bool,
    via: Option<ViaName>,
    fork: Option<String>,
    exec: Option<String>,
    args: Option<Vec<String>>,
    wait: Option<bool>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum ViaName {
    Import,
    Importlib,
}

/// Where an import list is: module bodies and `[[thread]]`s import only;
/// `[main]` and `[[fork]]` may also start processes.
#[derive(Clone, Copy, PartialEq)]
enum ListKind {
    Body,
    Process,
}

impl ImportEntry {
    /// The imported module, if this entry is an import.
    fn module(&self) -> Option<&str> {
        match self {
            ImportEntry::Plain(m) => Some(m),
            ImportEntry::Table(t) => t.module.as_deref(),
        }
    }

    /// The step this entry describes, or what is wrong with it.
    fn step(&self, kind: ListKind, base: &Path) -> Result<StepSpec, String> {
        let t = match self {
            ImportEntry::Plain(m) => return Ok(StepSpec::Import(StmtSpec::import(m.clone()))),
            ImportEntry::Table(t) => t,
        };
        match (&t.module, &t.fork, &t.exec) {
            (Some(m), None, None) => {
                if t.args.is_some() || t.wait.is_some() {
                    return Err("`args` and `wait` belong to `fork`/`exec` entries, not to imports".into());
                }
                let via = match t.via {
                    Some(ViaName::Importlib) => Via::Importlib,
                    _ => Via::Import,
                };
                if via == Via::Importlib && !t.from.is_empty() {
                    return Err(format!(
                        "importlib.import_module({m:?}) has no from-list: drop `from`, or use a plain import"
                    ));
                }
                Ok(StepSpec::Import(StmtSpec { target: m.clone(), from: t.from.clone(), catch: t.catch, via }))
            }
            (None, fork, exec) if fork.is_some() != exec.is_some() => {
                if kind == ListKind::Body {
                    return Err("`fork`/`exec` start a child process, which only [main] and [[fork]] imports may do \
                                (a process forks from its main thread's top-level code)"
                        .into());
                }
                if t.catch || t.via.is_some() || !t.from.is_empty() {
                    return Err("`catch`, `via` and `from` belong to imports, not to `fork`/`exec` entries".into());
                }
                let wait = t.wait.unwrap_or(false);
                if let Some(plan) = fork {
                    if t.args.is_some() {
                        return Err("`args` belongs to `exec` entries: a forked child runs its [[fork]] section".into());
                    }
                    return Ok(StepSpec::Fork { plan: plan.clone(), wait });
                }
                let workload = resolve_workload(exec.as_deref().unwrap_or_default(), base)?;
                Ok(StepSpec::Exec { spec: ExecSpec { workload, args: t.args.clone().unwrap_or_default() }, wait })
            }
            _ => Err("an entry is one of `{ module = ... }`, `{ fork = ... }` or `{ exec = ... }`".into()),
        }
    }
}

/// An `exec` target: a built-in workload's name as is, or a manifest path
/// (relative to the manifest's directory) made absolute, so the child finds
/// it from any directory.
fn resolve_workload(name: &str, base: &Path) -> Result<String, String> {
    if super::is_builtin(name) {
        return Ok(name.to_owned());
    }
    let path: PathBuf = base.join(name);
    match std::fs::canonicalize(&path) {
        Ok(p) if p.is_file() => Ok(p.display().to_string()),
        _ => Err(format!(
            "exec {name:?}: no built-in workload of that name and no file {} (built-in: demo, random, {})",
            path.display(),
            super::scenarios::NAMES.join(", ")
        )),
    }
}

/// Reads and compiles a manifest file.
pub fn load(path: &Path) -> Result<Workload, ManifestError> {
    let text = std::fs::read_to_string(path).map_err(|e| ManifestError {
        path: path.display().to_string(),
        location: String::new(),
        message: format!("cannot read manifest: {e}"),
    })?;
    let default_name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    parse(&text, &path.display().to_string(), &default_name)
}

/// Compiles manifest text; `path` is used in error messages, and its
/// directory to find the manifests `exec` entries name.
pub fn parse(text: &str, path: &str, default_name: &str) -> Result<Workload, ManifestError> {
    let err = |span: Option<Range<usize>>, message: String| ManifestError {
        path: path.to_owned(),
        location: span.map(|s| location(text, s.start)).unwrap_or_default(),
        message,
    };
    let base = Path::new(path).parent().unwrap_or(Path::new(""));
    let m: Manifest =
        toml::from_str(text).map_err(|e| err(e.span(), e.message().replace('\n', " ").trim().to_owned()))?;
    let cost = |module: &str, what: &'static str, v: &Option<Spanned<f64>>, default: f64| match v {
        None => micros(module, what, default).map_err(|e| err(None, e.to_string())),
        Some(s) => micros(module, what, *s.get_ref()).map_err(|e| err(Some(s.span()), e.to_string())),
    };
    let steps = |list: &[Spanned<ImportEntry>], kind: ListKind| {
        list.iter()
            .map(|e| e.get_ref().step(kind, base).map_err(|msg| err(Some(e.span()), msg)))
            .collect::<Result<Vec<StepSpec>, ManifestError>>()
    };
    let imports = |list: &[Spanned<ImportEntry>]| {
        steps(list, ListKind::Body).map(|s| {
            s.into_iter()
                .filter_map(|s| match s {
                    StepSpec::Import(i) => Some(i),
                    _ => None,
                })
                .collect::<Vec<StmtSpec>>()
        })
    };
    let defaults = m.defaults.as_ref();
    let default_find = cost("[defaults]", "find_us", &defaults.and_then(|d| d.find_us.clone()), DEFAULT_FIND_US)?;
    let default_exec = cost("[defaults]", "exec_us", &defaults.and_then(|d| d.exec_us.clone()), DEFAULT_EXEC_US)?;
    let name = m.workload.and_then(|w| w.name).unwrap_or_else(|| default_name.to_owned());
    let mut b = WorkloadBuilder::new(name);
    for entry in &m.modules {
        let name = entry.name.get_ref();
        let spec = ModuleSpec {
            find: cost(name, "find_us", &entry.find_us, default_find.as_secs_f64() * 1e6)?,
            exec: cost(name, "exec_us", &entry.exec_us, default_exec.as_secs_f64() * 1e6)?,
            missing: entry.missing,
            raises: entry.raises,
            package: entry.package,
            imports: imports(&entry.imports)?,
            probe_name: if entry.unencodable { ProbeName::Unencodable } else { ProbeName::Utf8 },
            explicit: true,
        };
        if entry.missing && (entry.raises || !entry.imports.is_empty()) {
            return Err(err(
                Some(entry.name.span()),
                format!("module {name:?} is missing, so it can neither raise nor import"),
            ));
        }
        if entry.unencodable && (entry.missing || entry.raises || !entry.imports.is_empty()) {
            return Err(err(
                Some(entry.name.span()),
                format!(
                    "module {name:?} is unencodable: under a tracer CPython 3.11 fails its import before finding it, \
                     so `missing`, `raises` and `imports` mean nothing for it"
                ),
            ));
        }
        b.define(name, spec).map_err(|e| err(Some(entry.name.span()), e.to_string()))?;
    }
    // The shape of every process entry first, then every name, each where
    // its position is known.
    let main_steps = m.main.as_ref().map(|main| steps(&main.imports, ListKind::Process)).transpose()?;
    let fork_steps = m.forks.iter().map(|f| steps(&f.imports, ListKind::Process)).collect::<Result<Vec<_>, _>>()?;
    let thread_imports = m.threads.iter().map(|t| imports(&t.imports)).collect::<Result<Vec<_>, _>>()?;
    let threads = m.main.iter().chain(&m.threads);
    let lists = m
        .modules
        .iter()
        .map(|e| &e.imports)
        .chain(threads.map(|t| &t.imports))
        .chain(m.forks.iter().map(|f| &f.imports));
    for imp in lists.flatten() {
        if let Some(target) = imp.get_ref().module() {
            if !b.contains(target) {
                let msg = match super::name::validate(target) {
                    Err(e) => e.to_string(),
                    Ok(()) => BuildError::Undefined { importer: "an import".into(), target: target.to_owned() }
                        .to_string()
                        .replacen("an import imports", "import of", 1),
                };
                return Err(err(Some(imp.span()), msg));
            }
        }
        if let ImportEntry::Table(ImportTable { fork: Some(plan), .. }) = imp.get_ref() {
            if !m.forks.iter().any(|f| f.name.get_ref() == plan) {
                return Err(err(
                    Some(imp.span()),
                    format!("fork {plan:?}: no [[fork]] section has that name (add one with `name = {plan:?}`)"),
                ));
            }
        }
    }
    let Some(main_steps) = main_steps else {
        return Err(err(
            None,
            "no [main] section: add `[main]` with `imports = [...]`, the program's top-level imports".into(),
        ));
    };
    b.main_steps(main_steps);
    for (i, (t, list)) in m.threads.iter().zip(thread_imports).enumerate() {
        b.thread(t.name.clone().unwrap_or_else(|| format!("thread-{}", i + 1)), list);
    }
    for (f, list) in m.forks.iter().zip(fork_steps) {
        b.fork_plan(f.name.get_ref().clone(), list);
    }
    b.build().map_err(|e| {
        let span = match &e {
            BuildError::DuplicateFork(n) => m.forks.iter().rev().find(|f| f.name.get_ref() == n).map(|f| f.name.span()),
            BuildError::ForkCycle(c) => {
                m.forks.iter().find(|f| Some(f.name.get_ref()) == c.first()).map(|f| f.name.span())
            }
            _ => None,
        };
        err(span, e.to_string())
    })
}

pub const DEFAULT_FIND_US: f64 = 20.0;
pub const DEFAULT_EXEC_US: f64 = 50.0;

/// `LINE:COL: ` (1-based, columns in characters) of a byte offset.
fn location(text: &str, offset: usize) -> String {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    format!("{line}:{col}:")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(text: &str) -> String {
        parse(text, "m.toml", "m").expect_err("manifest should be rejected").to_string()
    }

    #[test]
    fn parses_a_full_manifest() {
        let w = parse(
            r#"
            [workload]
            name = "x"
            [defaults]
            find_us = 1
            [[module]]
            name = "pkg.a"
            exec_us = 2.5
            imports = ["pkg.b", { module = "opt", catch = true }]
            [[module]]
            name = "pkg.b"
            [[module]]
            name = "opt"
            missing = true
            [main]
            imports = ["pkg.a"]
            [[thread]]
            imports = [{ module = "pkg", from = ["a"] }]
            "#,
            "m.toml",
            "m",
        )
        .unwrap();
        assert_eq!(w.name, "x");
        let a = w.find("pkg.a").unwrap();
        assert_eq!(w.module(a).find().as_micros(), 1);
        assert_eq!(w.module(a).exec().as_nanos(), 2500);
        assert_eq!(w.body(a).len(), 2);
        assert!(w.body(a)[1].catch);
        assert!(w.module(w.find("opt").unwrap()).missing);
        assert_eq!(w.threads()[0].name, "thread-1");
    }

    #[test]
    fn syntax_errors_have_line_and_column() {
        let e = error("[main]\nimports = [\"a\",, \"b\"]\n");
        assert!(e.starts_with("m.toml:2:16: "), "{e}");
        assert!(!e.contains('\n'), "one line: {e}");
    }

    #[test]
    fn unknown_keys_are_rejected_with_position() {
        let e = error("[main]\nimports = []\n[[module]]\nname = \"a\"\nexec = 5\n");
        assert!(e.starts_with("m.toml:5:1: "), "{e}");
        assert!(e.contains("unknown field `exec`"), "{e}");
    }

    #[test]
    fn undefined_imports_point_at_the_import() {
        let e = error("[main]\nimports = [\"nope\"]\n");
        assert!(e.starts_with("m.toml:2:12: "), "{e}");
        assert!(e.contains("\"nope\""), "{e}");
    }

    #[test]
    fn negative_costs_and_bad_names_are_rejected() {
        let e = error("[main]\nimports = []\n[[module]]\nname = \"a\"\nfind_us = -3\n");
        assert!(e.starts_with("m.toml:5:11: ") && e.contains("find_us"), "{e}");
        let e = error("[main]\nimports = []\n[[module]]\nname = \"a-b.c\"\n");
        assert!(e.starts_with("m.toml:4:8: ") && e.contains("not a Python identifier"), "{e}");
        let e = error("[main]\nimports = [\"9x\"]\n");
        assert!(e.contains("not a Python identifier"), "{e}");
        let e = error("[main]\nimports = [{ module = \"a\", cach = true }]\n");
        assert!(e.starts_with("m.toml:2:28: ") && e.contains("unknown field `cach`"), "{e}");
    }

    #[test]
    fn importlib_edges_unencodable_names_and_processes_parse() {
        let w = parse(
            r#"
            [[module]]
            name = "app"
            imports = [{ module = "opt", via = "importlib", catch = true }, { module = "app.x", via = "import" }]
            [[module]]
            name = "app.x"
            [[module]]
            name = "opt"
            [[module]]
            name = "bad"
            unencodable = true
            [main]
            imports = ["app", { module = "bad", catch = true }, { fork = "w" }, { exec = "refpkg", args = ["--scale", "0"], wait = true }]
            [[fork]]
            name = "w"
            imports = ["opt", { fork = "g", wait = true }]
            [[fork]]
            name = "g"
            "#,
            "m.toml",
            "m",
        )
        .unwrap();
        let app = w.find("app").unwrap();
        assert_eq!((w.body(app)[0].via, w.body(app)[1].via), (Via::Importlib, Via::Import));
        assert_eq!(w.module(w.find("bad").unwrap()).probe_name, ProbeName::Unencodable);
        let main = w.main_process();
        assert_eq!(main.spawns.len(), 2);
        assert_eq!(main.spawns[0].after, 2);
        assert_eq!(
            main.spawns[1].kind,
            crate::workload::SpawnKind::Exec(ExecSpec {
                workload: "refpkg".into(),
                args: vec!["--scale".into(), "0".into()]
            })
        );
        assert!(main.spawns[1].wait && !main.spawns[0].wait);
        assert_eq!(w.fork_plan(0).spawns.len(), 1);
    }

    #[test]
    fn process_entries_are_checked_where_they_are() {
        let e = error("[main]\nimports = []\n[[module]]\nname = \"a\"\nimports = [{ fork = \"w\" }]\n");
        assert!(e.starts_with("m.toml:5:12: ") && e.contains("only [main] and [[fork]]"), "{e}");
        let e = error("[main]\nimports = [{ fork = \"ghost\" }]\n");
        assert!(e.starts_with("m.toml:2:12: ") && e.contains("no [[fork]] section"), "{e}");
        let e = error("[main]\nimports = [{ exec = \"no/such.toml\" }]\n");
        assert!(e.starts_with("m.toml:2:12: ") && e.contains("no built-in workload"), "{e}");
        let e = error("[main]\nimports = [{ module = \"a\", fork = \"w\" }]\n[[module]]\nname = \"a\"\n");
        assert!(e.contains("one of"), "{e}");
        let e = error("[main]\nimports = [{ fork = \"w\", args = [] }]\n[[fork]]\nname = \"w\"\n");
        assert!(e.contains("`args` belongs to `exec`"), "{e}");
        let e = error("[main]\nimports = [{ module = \"a\", via = \"importlb\" }]\n[[module]]\nname = \"a\"\n");
        assert!(e.starts_with("m.toml:2:") && e.contains("importlib"), "{e}");
        let e = error(
            "[main]\nimports = [{ module = \"a\", via = \"importlib\", from = [\"b\"] }]\n[[module]]\nname = \"a.b\"\n",
        );
        assert!(e.contains("has no from-list"), "{e}");
        let e = error("[main]\nimports = []\n[[fork]]\nname = \"a\"\nimports = [{ fork = \"a\" }]\n");
        assert!(e.starts_with("m.toml:4:8: ") && e.contains("a -> a"), "{e}");
        let e = error("[main]\nimports = []\n[[module]]\nname = \"u\"\nunencodable = true\nraises = true\n");
        assert!(e.starts_with("m.toml:4:8: ") && e.contains("unencodable"), "{e}");
        assert!(!e.contains('\n'), "one line: {e}");
    }

    #[test]
    fn exec_manifests_are_found_next_to_the_manifest() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("child.toml"), "[main]\nimports = []\n").unwrap();
        let parent = dir.path().join("parent.toml");
        std::fs::write(&parent, "[main]\nimports = [{ exec = \"child.toml\" }]\n").unwrap();
        let w = load(&parent).unwrap();
        let crate::workload::SpawnKind::Exec(spec) = &w.main_process().spawns[0].kind else { panic!("an exec") };
        assert!(Path::new(&spec.workload).is_absolute(), "{}", spec.workload);
        assert!(spec.workload.ends_with("child.toml"));
    }

    #[test]
    fn missing_main_is_explained() {
        assert!(error("[[module]]\nname = \"a\"\n").contains("no [main] section"));
    }
}
