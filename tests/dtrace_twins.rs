//! Static checks of the DTrace twins, on every host: each bundled bpftrace
//! script has a twin, and every probe a `.d` script uses exists in
//! `probes/python.d` (dash-spelled) and is the one its `.bt` twin uses.
//! Their outputs are compared for real, by the same test code, in
//! `tests/scripts.rs` wherever DTrace runs (the compatibility matrix's sid
//! chroot).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Source without `/* */` and `//` comments (string literals kept).
fn strip_comments(src: &str) -> String {
    let mut out = String::new();
    let mut chars = src.chars().peekable();
    let mut in_str = false;
    while let Some(c) = chars.next() {
        if in_str {
            out.push(c);
            if c == '\\' {
                out.extend(chars.next());
            } else if c == '"' {
                in_str = false;
            }
        } else if c == '"' {
            in_str = true;
            out.push(c);
        } else if c == '/' && chars.peek() == Some(&'*') {
            chars.next();
            let mut prev = ' ';
            for c in chars.by_ref() {
                if prev == '*' && c == '/' {
                    break;
                }
                prev = c;
            }
        } else if c == '/' && chars.peek() == Some(&'/') {
            for c in chars.by_ref() {
                if c == '\n' {
                    out.push('\n');
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Probe names the provider file declares, double-underscore spelled.
fn provider_probes() -> BTreeSet<String> {
    let src = strip_comments(&read(&root().join("probes/python.d")));
    src.split(';')
        .filter_map(|decl| {
            let decl = decl.trim();
            let decl = decl.rsplit('{').next().unwrap().trim();
            let name = decl.strip_prefix("probe ")?;
            Some(name.split('(').next().unwrap().trim().to_string())
        })
        .collect()
}

/// `python$target:::import-find-load-start` -> `import__find__load__start`.
fn d_probes(src: &str) -> BTreeSet<String> {
    let code = strip_comments(src);
    code.match_indices("python$target:::")
        .map(|(i, m)| {
            let tail = &code[i + m.len()..];
            let name: String =
                tail.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').collect();
            assert!(!name.contains("__"), "DTrace spells probes with dashes: {name}");
            name.replace('-', "__")
        })
        .collect()
}

fn bt_probes(src: &str) -> BTreeSet<String> {
    let code = strip_comments(src);
    code.match_indices("usdt:$1:python:")
        .map(|(i, m)| code[i + m.len()..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect())
        .collect()
}

fn twins() -> Vec<(PathBuf, PathBuf)> {
    let mut v: Vec<(PathBuf, PathBuf)> = std::fs::read_dir(root().join("scripts"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "bt"))
        .map(|bt| (bt.clone(), bt.with_extension("d")))
        .collect();
    v.sort();
    v
}

#[test]
fn every_script_has_a_dtrace_twin() {
    let t = twins();
    assert_eq!(t.len(), importprobe::tracer::scripts::BUNDLED.len(), "{t:?}");
    for (bt, d) in t {
        assert!(d.exists(), "{} has no DTrace twin {}", bt.display(), d.display());
    }
}

#[test]
fn twins_use_only_declared_probes() {
    let declared = provider_probes();
    assert!(declared.contains("import__find__load__start") && declared.contains("import__find__load__done"));
    for (bt, d) in twins() {
        let (bt_src, d_src) = (read(&bt), read(&d));
        let used_d = d_probes(&d_src);
        let used_bt = bt_probes(&bt_src);
        assert!(!used_d.is_empty() && !used_bt.is_empty(), "{}", d.display());
        for p in used_d.iter().chain(&used_bt) {
            assert!(declared.contains(p), "{p} is not in probes/python.d");
        }
        assert_eq!(used_d, used_bt, "{} and its twin use different probes", d.display());
    }
}

#[test]
fn probe_extraction_sees_through_comments() {
    assert!(d_probes("/* python$target:::import-find-load-start */").is_empty());
    assert_eq!(
        d_probes("python$target:::import-find-load-done /x/ {}"),
        BTreeSet::from(["import__find__load__done".into()])
    );
}
