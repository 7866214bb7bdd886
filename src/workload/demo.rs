//! The default workload: the start-up of a made-up web service, `shopapp`.
//!
//! About three hundred modules with stdlib-like and third-party-like names
//! and realistic costs (extension modules are quick, big packages slow), so
//! `importprobe run` is worth tracing. It contains one import cycle
//! (`shopapp.models` <-> `shopapp.db`), one missing optional dependency
//! (`ujson`, and `yaml._yaml`), one module that raises
//! (`shopapp.plugins.legacy`), a pool of four threads importing plugins, and
//! an optional dependency loaded with `importlib.import_module()` the way
//! pandas' `import_optional_dependency` loads numexpr: `fastjson` fires no
//! probe, its submodules fire inside `shopapp.compat._optional`, whose self
//! time holds `fastjson`'s own body.

use super::{ModuleSpec, StmtSpec, Workload, WorkloadBuilder};
use std::time::Duration;

/// `(name, find µs, exec µs, imports)`; an import written `?name` is wrapped
/// in `try/except ImportError`, one written `!name` is
/// `importlib.import_module("name")`.
type Row = (&'static str, u64, u64, &'static [&'static str]);

const STDLIB: &[Row] = &[
    ("_stat", 5, 8, &[]),
    ("stat", 30, 40, &["_stat"]),
    ("genericpath", 25, 30, &[]),
    ("posixpath", 30, 60, &["genericpath"]),
    ("_collections_abc", 35, 420, &[]),
    ("os", 40, 380, &["stat", "_collections_abc", "posixpath"]),
    ("types", 30, 110, &[]),
    ("_operator", 5, 12, &[]),
    ("operator", 30, 90, &["_operator"]),
    ("itertools", 5, 10, &[]),
    ("keyword", 25, 20, &[]),
    ("reprlib", 25, 40, &[]),
    ("_collections", 5, 12, &[]),
    ("collections", 40, 520, &["_collections_abc", "itertools", "keyword", "operator", "reprlib", "_collections"]),
    ("_functools", 5, 10, &[]),
    ("functools", 35, 260, &["collections", "_functools"]),
    ("enum", 35, 600, &["types", "functools"]),
    ("_sre", 5, 15, &[]),
    ("re._constants", 30, 70, &[]),
    ("re._parser", 30, 120, &["re._constants"]),
    ("re._casefix", 25, 30, &[]),
    ("re._compiler", 30, 110, &["_sre", "re._parser", "re._casefix"]),
    ("copyreg", 25, 30, &[]),
    ("re", 40, 240, &["enum", "re._compiler", "copyreg"]),
    ("collections.abc", 25, 15, &[]),
    ("warnings", 30, 140, &[]),
    ("contextlib", 35, 190, &["collections", "functools"]),
    ("_weakrefset", 25, 50, &[]),
    ("weakref", 30, 230, &["_weakrefset"]),
    ("copy", 30, 60, &["weakref", "?org.python.core"]),
    ("org.python.core", 0, 0, &[]),
    ("_json", 5, 25, &[]),
    ("json.scanner", 30, 40, &["re", "_json"]),
    ("json.decoder", 30, 70, &["re", "json.scanner"]),
    ("json.encoder", 30, 60, &["re"]),
    ("json", 40, 90, &["json.decoder", "json.encoder"]),
    ("_struct", 5, 12, &[]),
    ("struct", 25, 30, &["_struct"]),
    ("binascii", 5, 10, &[]),
    ("base64", 30, 160, &["struct", "binascii"]),
    ("_string", 5, 8, &[]),
    ("string", 30, 120, &["_string", "re"]),
    ("time", 5, 10, &[]),
    ("_datetime", 8, 90, &[]),
    ("datetime", 30, 70, &["time", "_datetime"]),
    ("math", 5, 20, &[]),
    ("_random", 5, 10, &[]),
    ("bisect", 25, 20, &[]),
    ("_sha512", 5, 10, &[]),
    ("random", 35, 330, &["warnings", "math", "os", "bisect", "_random", "_sha512"]),
    ("_threading_local", 25, 40, &[]),
    ("threading", 40, 380, &["os", "functools", "_weakrefset", "itertools"]),
    ("traceback", 35, 210, &["collections.abc", "itertools", "contextlib"]),
    ("_socket", 8, 120, &[]),
    ("select", 5, 15, &[]),
    ("selectors", 30, 150, &["select", "collections.abc"]),
    ("errno", 5, 8, &[]),
    ("array", 5, 12, &[]),
    ("socket", 40, 520, &["_socket", "os", "selectors", "errno", "array", "enum"]),
    ("_ssl", 10, 900, &[]),
    ("ssl", 40, 780, &["_ssl", "socket", "base64", "collections", "enum", "warnings"]),
    ("ipaddress", 35, 330, &["functools"]),
    ("urllib", 25, 10, &[]),
    ("urllib.parse", 35, 280, &["re", "collections", "warnings", "ipaddress"]),
    ("email", 25, 15, &[]),
    ("email.errors", 25, 40, &[]),
    ("email._policybase", 30, 90, &["email.errors"]),
    ("email.message", 35, 250, &["re", "email._policybase", "email.errors"]),
    ("email.parser", 30, 60, &["email.message", "email._policybase"]),
    ("http", 30, 210, &["enum"]),
    ("http.client", 40, 620, &["email.parser", "email.message", "http", "socket", "ssl", "urllib.parse"]),
    ("_locale", 5, 10, &[]),
    ("locale", 30, 260, &["_locale", "re", "functools"]),
    ("calendar", 30, 230, &["datetime", "locale"]),
    ("typing", 45, 1400, &["collections.abc", "functools", "operator", "re", "types", "warnings", "contextlib"]),
    ("dataclasses", 35, 420, &["re", "copy", "types", "inspect", "keyword", "functools"]),
    ("ast", 35, 410, &["_ast", "contextlib", "enum"]),
    ("_ast", 5, 80, &[]),
    ("dis", 30, 260, &["opcode", "collections", "io"]),
    ("opcode", 25, 60, &["_opcode"]),
    ("_opcode", 5, 10, &[]),
    ("io", 30, 40, &[]),
    ("token", 25, 30, &[]),
    ("tokenize", 35, 330, &["re", "token", "codecs_sim"]),
    ("codecs_sim", 25, 40, &[]),
    ("linecache", 30, 40, &["tokenize"]),
    (
        "inspect",
        45,
        900,
        &["ast", "dis", "collections.abc", "enum", "linecache", "os", "re", "tokenize", "token", "types", "functools"],
    ),
    ("fnmatch", 25, 40, &["re"]),
    ("ntpath", 30, 90, &["genericpath"]),
    ("urllib.request_sim", 35, 120, &["urllib.parse"]),
    ("pathlib", 40, 520, &["fnmatch", "ntpath", "posixpath", "re", "urllib.parse", "collections.abc"]),
    ("_decimal", 10, 1100, &["numbers"]),
    ("numbers", 30, 220, &[]),
    ("decimal", 30, 30, &["_decimal"]),
    ("logging", 45, 820, &["re", "traceback", "weakref", "collections.abc", "string", "threading", "time"]),
    ("argparse", 40, 610, &["os", "re", "warnings"]),
    ("uuid", 35, 300, &["os", "_uuid"]),
    ("_uuid", 5, 15, &[]),
    ("hashlib", 35, 240, &["_hashlib"]),
    ("_hashlib", 10, 420, &[]),
    ("concurrent", 25, 10, &[]),
    ("concurrent.futures", 35, 90, &["concurrent.futures._base"]),
    ("concurrent.futures._base", 35, 230, &["collections", "logging", "threading", "time", "types"]),
    ("queue", 30, 110, &["threading", "collections", "heapq", "_queue"]),
    ("heapq", 25, 30, &["_heapq"]),
    ("_heapq", 5, 10, &[]),
    ("_queue", 5, 10, &[]),
];

const THIRD_PARTY: &[Row] = &[
    ("certifi", 60, 90, &["certifi.core"]),
    ("certifi.core", 40, 60, &["os"]),
    ("idna", 60, 80, &["idna.core"]),
    ("idna.core", 40, 520, &["re", "idna.idnadata"]),
    ("idna.idnadata", 40, 900, &[]),
    ("charset_normalizer", 60, 210, &["charset_normalizer.api"]),
    ("charset_normalizer.api", 40, 180, &["logging", "charset_normalizer.cd", "charset_normalizer.models"]),
    ("charset_normalizer.cd", 40, 260, &["charset_normalizer.constant"]),
    ("charset_normalizer.constant", 40, 640, &["re"]),
    ("charset_normalizer.models", 40, 120, &["json"]),
    ("urllib3", 70, 160, &["urllib3.exceptions", "urllib3.connectionpool", "urllib3.poolmanager"]),
    ("urllib3.exceptions", 40, 90, &[]),
    ("urllib3.util", 40, 60, &["urllib3.util.ssl_", "urllib3.util.url", "urllib3.util.retry"]),
    ("urllib3.util.ssl_", 40, 180, &["ssl", "hashlib"]),
    ("urllib3.util.url", 40, 150, &["re", "urllib3.exceptions"]),
    ("urllib3.util.retry", 40, 200, &["logging", "random", "email"]),
    ("urllib3.connection", 40, 210, &["http.client", "socket", "urllib3.util"]),
    ("urllib3.connectionpool", 40, 260, &["queue", "urllib3.connection", "urllib3.util"]),
    ("urllib3.poolmanager", 40, 170, &["urllib3.connectionpool", "urllib3.util"]),
    ("requests", 80, 260, &["urllib3", "charset_normalizer", "requests.exceptions", "requests.api"]),
    ("requests.compat", 40, 60, &["json", "http", "urllib.parse"]),
    ("requests.exceptions", 40, 50, &["requests.compat"]),
    ("requests.certs", 40, 20, &["certifi"]),
    ("requests.models", 40, 330, &["datetime", "encodings_idna", "idna", "requests.compat", "requests.exceptions"]),
    ("encodings_idna", 40, 60, &["idna"]),
    ("requests.adapters", 40, 190, &["urllib3.poolmanager", "requests.certs", "requests.models"]),
    ("requests.sessions", 40, 240, &["requests.adapters", "requests.models", "requests.compat"]),
    ("requests.api", 40, 40, &["requests.sessions"]),
    (
        "yaml",
        70,
        300,
        &[
            "yaml.error",
            "yaml.reader",
            "yaml.scanner",
            "yaml.parser",
            "yaml.composer",
            "yaml.constructor",
            "yaml.resolver",
            "?yaml._yaml",
        ],
    ),
    ("yaml.error", 40, 50, &[]),
    ("yaml.reader", 40, 90, &["codecs_sim", "re"]),
    ("yaml.scanner", 40, 310, &[]),
    ("yaml.parser", 40, 180, &[]),
    ("yaml.composer", 40, 60, &[]),
    ("yaml.constructor", 40, 420, &["collections.abc", "datetime", "base64", "binascii", "re", "types"]),
    ("yaml.resolver", 40, 190, &["re"]),
    ("yaml._yaml", 45, 0, &[]),
    ("click", 70, 180, &["click.core", "click.decorators", "click.types"]),
    ("click.core", 40, 700, &["enum", "inspect", "os", "typing", "click.types"]),
    ("click.types", 40, 340, &["os", "typing", "datetime"]),
    ("click.decorators", 40, 120, &["inspect", "click.core"]),
];

const SHOPAPP: &[Row] = &[
    ("shopapp", 60, 40, &[]),
    ("shopapp.config", 45, 220, &["os", "pathlib", "yaml", "dataclasses"]),
    ("shopapp.log", 40, 120, &["logging"]),
    ("shopapp.models", 45, 480, &["dataclasses", "decimal", "datetime", "shopapp.db", "sqlalchemy.orm"]),
    ("shopapp.db", 45, 260, &["sqlalchemy", "shopapp.models"]),
    ("shopapp.serialize", 40, 90, &["json", "?ujson", "shopapp.compat._optional"]),
    ("ujson", 55, 0, &[]),
    ("shopapp.compat", 35, 20, &[]),
    ("shopapp.compat._optional", 40, 110, &["importlib_sim", "!fastjson"]),
    ("fastjson", 60, 240, &["fastjson.core", "fastjson.encoder"]),
    ("fastjson.core", 40, 380, &["re", "decimal"]),
    ("fastjson.encoder", 40, 160, &["fastjson.core"]),
    ("shopapp.api", 45, 380, &["requests", "shopapp.serialize", "shopapp.models"]),
    ("shopapp.plugins", 45, 60, &["importlib_sim"]),
    ("importlib_sim", 30, 40, &[]),
    ("shopapp.plugins.base", 40, 150, &["shopapp.log", "uuid"]),
    ("shopapp.plugins.legacy", 40, 300, &["shopapp.plugins.base"]),
    ("shopapp.cli", 45, 260, &["argparse", "click", "shopapp.config", "shopapp.log", "shopapp.api", "shopapp.plugins"]),
];

/// Plugins the worker pool imports, two per worker, sharing `base`.
const PLUGINS: &[&str] = &["payments", "shipping", "search", "email", "reports", "audit", "cache", "metrics"];

/// Subpackages of the big ORM-like dependency, each with many modules.
const SQLA: &[(&str, usize, u64)] = &[
    ("sql", 24, 260),
    ("orm", 28, 340),
    ("engine", 14, 220),
    ("pool", 5, 150),
    ("event", 5, 110),
    ("util", 12, 180),
    ("dialects", 8, 120),
];

/// Builds the demo workload.
pub fn build() -> Workload {
    let mut b = WorkloadBuilder::new("demo");
    for &(name, find, exec, imports) in STDLIB.iter().chain(THIRD_PARTY).chain(SHOPAPP) {
        let missing = matches!(name, "org.python.core" | "ujson" | "yaml._yaml");
        let spec = ModuleSpec {
            find: Duration::from_micros(find),
            exec: Duration::from_micros(exec),
            missing,
            raises: name == "shopapp.plugins.legacy",
            imports: imports.iter().map(|i| stmt(i)).collect(),
            ..Default::default()
        };
        b.define(name, spec).expect("demo modules are unique");
    }
    // The ORM: sqlalchemy imports each subpackage, which imports its modules
    // in order, each module importing the previous one and a stdlib module.
    let stdlib_pick =
        ["typing", "collections", "functools", "re", "weakref", "threading", "logging", "operator", "itertools"];
    let mut top = vec![];
    for (i, &(sub, n, exec)) in SQLA.iter().enumerate() {
        let pkg = format!("sqlalchemy.{sub}");
        let mods: Vec<String> = (0..n).map(|k| format!("{pkg}.{}", module_word(k))).collect();
        for (k, m) in mods.iter().enumerate() {
            let mut imports = vec![StmtSpec::import(stdlib_pick[(i + k) % stdlib_pick.len()])];
            if k > 0 {
                imports.push(StmtSpec::import(mods[k - 1].clone()));
            }
            if sub != "util" {
                imports.push(StmtSpec::import(format!("sqlalchemy.util.{}", module_word(k % 12))));
            }
            let spec = ModuleSpec {
                find: Duration::from_micros(40),
                exec: Duration::from_micros(exec + 13 * k as u64 % 90),
                imports,
                ..Default::default()
            };
            b.define(m, spec).expect("unique");
        }
        let spec = ModuleSpec {
            find: Duration::from_micros(45),
            exec: Duration::from_micros(80),
            imports: vec![StmtSpec::import(mods[n - 1].clone())],
            package: Some(true),
            ..Default::default()
        };
        b.define(&pkg, spec).expect("unique");
        top.push(StmtSpec::import(pkg));
    }
    b.define(
        "sqlalchemy",
        ModuleSpec {
            find: Duration::from_micros(70),
            exec: Duration::from_micros(300),
            imports: top,
            package: Some(true),
            ..Default::default()
        },
    )
    .expect("unique");
    for p in PLUGINS {
        let spec = ModuleSpec {
            find: Duration::from_micros(40),
            exec: Duration::from_micros(800 + 150 * p.len() as u64),
            imports: vec![
                StmtSpec::import("shopapp.plugins.base"),
                StmtSpec::import("json"),
                StmtSpec::import("concurrent.futures"),
            ],
            ..Default::default()
        };
        b.define(&format!("shopapp.plugins.{p}"), spec).expect("unique");
    }
    b.main_imports(vec![
        StmtSpec::import("threading"),
        StmtSpec::import("shopapp.cli"),
        StmtSpec::import("shopapp.plugins.legacy").caught(),
    ]);
    for (w, pair) in PLUGINS.chunks(2).enumerate() {
        b.thread(
            format!("plugin-loader-{}", w + 1),
            pair.iter().map(|p| StmtSpec::import(format!("shopapp.plugins.{p}"))).collect(),
        );
    }
    b.build().expect("the demo only imports modules it defines")
}

fn stmt(spec: &str) -> StmtSpec {
    if let Some(name) = spec.strip_prefix('!') {
        return StmtSpec::import_module(name);
    }
    match spec.strip_prefix('?') {
        Some(name) => StmtSpec::import(name).caught(),
        None => StmtSpec::import(spec),
    }
}

/// Plausible module names for the generated ORM modules.
fn module_word(k: usize) -> String {
    const WORDS: &[&str] = &[
        "base",
        "elements",
        "schema",
        "types",
        "compiler",
        "functions",
        "operators",
        "selectable",
        "expression",
        "dml",
        "ddl",
        "visitors",
        "annotation",
        "traversals",
        "cache_key",
        "roles",
        "coercions",
        "lambdas",
        "naming",
        "sqltypes",
        "type_api",
        "default_comparator",
        "crud",
        "util_sql",
        "session",
        "mapper",
        "query",
        "relationships",
        "attributes",
        "strategies",
        "loading",
    ];
    match WORDS.get(k) {
        Some(w) => (*w).to_owned(),
        None => format!("mod{k}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_has_the_advertised_shape() {
        let w = build();
        assert!((250..=400).contains(&w.module_count()), "{} modules", w.module_count());
        assert_eq!(w.threads().len(), 4);
        assert!(w.module(w.find("ujson").unwrap()).missing);
        assert!(w.module(w.find("shopapp.plugins.legacy").unwrap()).raises);
        let optional = w.find("shopapp.compat._optional").unwrap();
        let via: Vec<_> = w.body(optional).iter().map(|s| (w.name(s.target).into_owned(), s.via)).collect();
        assert!(via.contains(&("fastjson".to_owned(), crate::workload::Via::Importlib)), "{via:?}");
    }
}
