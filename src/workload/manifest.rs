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
//! imports = ["pkg.b", { module = "opt", catch = true }, { module = "pkg.sub", from = ["leaf"] }]
//!
//! [[module]]
//! name = "opt"
//! missing = true        # ModuleNotFoundError
//!
//! [main]                # the main thread's top-level imports
//! imports = ["pkg.a"]
//!
//! [[thread]]            # started together after main's imports
//! name = "worker-1"
//! imports = ["pkg.a"]
//! ```
//!
//! Every mistake is reported as one line `FILE:LINE:COL: message`.

use super::{micros, BuildError, ModuleSpec, StmtSpec, Workload, WorkloadBuilder};
use serde::Deserialize;
use std::ops::Range;
use std::path::Path;
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
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ThreadEntry {
    name: Option<String>,
    #[serde(default)]
    imports: Vec<Spanned<ImportEntry>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ImportEntry {
    Plain(String),
    Table(ImportTable),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportTable {
    module: String,
    #[serde(default)]
    from: Vec<String>,
    #[serde(default)]
    catch: bool,
}

impl ImportEntry {
    fn module(&self) -> &str {
        match self {
            ImportEntry::Plain(m) => m,
            ImportEntry::Table(t) => &t.module,
        }
    }
    fn spec(entry: &Spanned<ImportEntry>) -> StmtSpec {
        match entry.get_ref() {
            ImportEntry::Plain(m) => StmtSpec::import(m.clone()),
            ImportEntry::Table(t) => StmtSpec { target: t.module.clone(), from: t.from.clone(), catch: t.catch },
        }
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

/// Compiles manifest text; `path` is only used in error messages.
pub fn parse(text: &str, path: &str, default_name: &str) -> Result<Workload, ManifestError> {
    let err = |span: Option<Range<usize>>, message: String| ManifestError {
        path: path.to_owned(),
        location: span.map(|s| location(text, s.start)).unwrap_or_default(),
        message,
    };
    let m: Manifest =
        toml::from_str(text).map_err(|e| err(e.span(), e.message().replace('\n', " ").trim().to_owned()))?;
    let cost = |module: &str, what: &'static str, v: &Option<Spanned<f64>>, default: f64| match v {
        None => micros(module, what, default).map_err(|e| err(None, e.to_string())),
        Some(s) => micros(module, what, *s.get_ref()).map_err(|e| err(Some(s.span()), e.to_string())),
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
            imports: entry.imports.iter().map(ImportEntry::spec).collect(),
            explicit: true,
        };
        if entry.missing && (entry.raises || !entry.imports.is_empty()) {
            return Err(err(
                Some(entry.name.span()),
                format!("module {name:?} is missing, so it can neither raise nor import"),
            ));
        }
        b.define(name, spec).map_err(|e| err(Some(entry.name.span()), e.to_string()))?;
    }
    // Check every import target here, where its position is known.
    let threads = m.main.iter().chain(&m.threads);
    for imp in m.modules.iter().flat_map(|e| &e.imports).chain(threads.flat_map(|t| &t.imports)) {
        let target = imp.get_ref().module();
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
    let Some(main) = m.main else {
        return Err(err(
            None,
            "no [main] section: add `[main]` with `imports = [...]`, the program's top-level imports".into(),
        ));
    };
    b.main_imports(main.imports.iter().map(ImportEntry::spec).collect());
    for (i, t) in m.threads.iter().enumerate() {
        b.thread(
            t.name.clone().unwrap_or_else(|| format!("thread-{}", i + 1)),
            t.imports.iter().map(ImportEntry::spec).collect(),
        );
    }
    b.build().map_err(|e| err(None, e.to_string()))
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
        assert_eq!(w.module(a).find.as_micros(), 1);
        assert_eq!(w.module(a).exec.as_nanos(), 2500);
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
        assert!(e.starts_with("m.toml:2:11: "), "{e}");
    }

    #[test]
    fn missing_main_is_explained() {
        assert!(error("[[module]]\nname = \"a\"\n").contains("no [main] section"));
    }
}
