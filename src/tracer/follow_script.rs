//! Restricting a bpftrace script to one process tree.
//!
//! `bpftrace -p PID` attaches USDT probes for that one process: its
//! children are not traced. Without `-p`, a `usdt:/path:provider:name`
//! probe is attached to the file (uprobes are per inode), so it fires in
//! every process that maps it, started before or after bpftrace. A tree is
//! traced by attaching that way and keeping, in a BPF map, the set of
//! processes in the tree:
//!
//! - seeded in `BEGIN` with the roots;
//! - grown in `tracepoint:task:task_newtask`, which fires in the parent
//!   before the child can run, for every new task whose parent is in the
//!   set, threads (`CLONE_THREAD`) excepted: the set holds processes, and
//!   usdt probes look up `pid`, the process id;
//! - shrunk in `tracepoint:sched:sched_process_free`, when a process is
//!   reaped and its pid may be reused by a process outside the tree (also
//!   keeping the map far below its key limit, `BPFTRACE_MAP_KEYS_MAX`,
//!   4096 by default: beyond it, new children would silently be missed).
//!
//! Each usdt probe gets the predicate `@importprobe_tree[pid]`, combined
//! with its own. The transformation keeps every line of the script where it
//! was (additions go on existing lines or at the end), so bpftrace's
//! messages still point at the script's own line numbers.
//!
//! Syntax differs between bpftrace releases ([`Dialect`]); what is emitted
//! was checked warning-free on bpftrace 0.17, 0.23 and 0.27.

use std::path::{Path, PathBuf};
use thiserror::Error;

/// The map holding the tree's processes.
pub const TREE_MAP: &str = "@importprobe_tree";

/// The line a restricted script prints first, from `BEGIN`, once the tree's
/// roots are in [`TREE_MAP`]. bpftrace runs `BEGIN` before it attaches the
/// other probes but prints its output only once all are attached, so
/// seeing this line means the filter is complete: a held command may go.
/// Callers drop it from the script's output ([`is_ready_line`]).
pub const READY_LINE: &str = "importprobe: tree filter ready";

/// True for [`READY_LINE`] (with or without its newline).
pub fn is_ready_line(line: &[u8]) -> bool {
    line.strip_suffix(b"\n").unwrap_or(line) == READY_LINE.as_bytes()
}

/// What a bpftrace release accepts and does, as far as tree tracing cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dialect {
    /// Tracepoint fields are `args.field` (0.19+, where `args` became a
    /// record) rather than `args->field` (the only form 0.17 knows).
    pub args_record: bool,
    /// `delete()` returns whether it deleted (0.24+); 0.27 warns when that
    /// value is discarded, and 0.17 and 0.23 refuse to assign it.
    pub delete_returns: bool,
    /// bpftrace refuses semaphore-guarded USDT probes unless the kernel
    /// counts semaphores itself (uprobes registered with `ref_ctr_offset`,
    /// Linux 4.20+): 0.24 and later. The kernel then raises them in every
    /// process that maps the object, new ones included. Older releases use
    /// the kernel's counting when it has it (seen with 0.17 and 0.23 on
    /// Linux 6.18), and otherwise write the semaphores of the processes
    /// they find at start-up only; there, the follower's raising
    /// ([`super::follow::FollowOptions::raise_semaphores`]) is what makes
    /// exec'd children fire.
    pub requires_kernel_semaphores: bool,
}

impl Dialect {
    /// The dialect of bpftrace `major.minor`.
    pub fn of(major: u32, minor: u32) -> Dialect {
        let at_least = |m: u32| (major, minor) >= (0, m);
        Dialect { args_record: at_least(19), delete_returns: at_least(24), requires_kernel_semaphores: at_least(24) }
    }

    /// The dialect of a version as `bpftrace --version` prints it
    /// (`bpftrace v0.17.0`, `v0.23.2`, `0.27.1`).
    pub fn for_version(version: &str) -> Result<Dialect, TreeScriptError> {
        let bad = || TreeScriptError::Version(version.to_owned());
        let v = version.trim();
        let v = v.strip_prefix("bpftrace").unwrap_or(v).trim();
        let v = v.strip_prefix('v').unwrap_or(v);
        let mut parts = v.split(|c: char| !c.is_ascii_digit());
        let major = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        let minor = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        Ok(Dialect::of(major, minor))
    }

    fn field(&self, name: &str) -> String {
        if self.args_record {
            format!("args.{name}")
        } else {
            format!("args->{name}")
        }
    }
}

/// Why a script could not be restricted to a tree.
#[derive(Debug, Error)]
pub enum TreeScriptError {
    #[error("no pid to restrict the trace to")]
    NoRoots,
    #[error("no object to attach the usdt probes to (give the files that carry the probes, e.g. /usr/bin/python3.11)")]
    NoObjects,
    #[error("{}: the probe object must be an absolute path", .0.display())]
    RelativeObject(PathBuf),
    #[error("{}: cannot use it as a probe object: {source}", path.display())]
    MissingObject { path: PathBuf, source: std::io::Error },
    #[error("{}: bpftrace cannot take this path (it holds a double quote, a backslash or a line break)", .0.display())]
    UnquotablePath(PathBuf),
    #[error("the script has no usdt:$1:PROVIDER:NAME probe to restrict")]
    NoUsdtProbes,
    #[error("line {line}: {what}")]
    Layout { line: usize, what: String },
    #[error("cannot tell the bpftrace version from {0:?}")]
    Version(String),
}

/// Returns `source` attached system-wide to `objects` and acting only for
/// the processes of the tree rooted at `roots` (and their descendants from
/// the moment bpftrace starts).
///
/// Each usdt probe must be written `usdt:$1:PROVIDER:NAME`, alone on its
/// line, followed by at most one predicate line `/.../`, then a line
/// starting with `{` (the layout of importprobe's bundled scripts); `$1`
/// becomes one attach point per object. Any other `usdt:` probe is refused:
/// it would trace outside the tree.
pub fn restrict_to_tree(
    source: &str,
    roots: &[u32],
    objects: &[PathBuf],
    dialect: Dialect,
) -> Result<String, TreeScriptError> {
    if roots.is_empty() {
        return Err(TreeScriptError::NoRoots);
    }
    let objects = distinct_objects(objects)?;
    let mut lines: Vec<String> = source.lines().map(str::to_owned).collect();
    let code = code_lines(source);
    let filter = format!("{TREE_MAP}[pid]");

    let mut probes = 0;
    let mut i = 0;
    while i < code.len() {
        let header = code[i].trim();
        if !header.starts_with("usdt:") {
            i += 1;
            continue;
        }
        let Some(probe) = header.strip_prefix("usdt:$1:").filter(|p| is_provider_and_name(p)) else {
            return Err(layout(i, format!("only usdt:$1:PROVIDER:NAME probes, alone on their line, can be restricted to a tree, not {header:?}")));
        };
        let attach: Vec<String> = objects.iter().map(|o| format!("usdt:\"{}\":{probe}", o.display())).collect();
        let next = next_code_line(&code, i + 1).ok_or_else(|| layout(i, format!("{header} has no body")))?;
        let after = code[next].trim();
        if let Some(predicate) = after.strip_prefix('/').and_then(|p| p.strip_suffix('/')).filter(|_| after.len() > 1) {
            let body = next_code_line(&code, next + 1).filter(|&b| code[b].trim_start().starts_with('{'));
            if body.is_none() {
                return Err(layout(next, format!("the predicate of {header} must be one line, followed by {{")));
            }
            lines[i] = attach.join(", ");
            lines[next] = format!("/{filter} && ({})/", predicate.trim());
        } else if after.starts_with('{') {
            lines[i] = format!("{} /{filter}/", attach.join(", "));
        } else {
            return Err(layout(next, format!("{header} must be followed by a predicate line /.../ or by {{")));
        }
        probes += 1;
        i = next + 1;
    }
    if probes == 0 {
        return Err(TreeScriptError::NoUsdtProbes);
    }

    let mut seeds: String = roots.iter().map(|pid| format!(" {TREE_MAP}[(uint64){pid}] = 1;")).collect();
    seeds.push_str(&format!(" printf(\"{READY_LINE}\\n\");"));
    let clear = format!(" clear({TREE_MAP});");
    let mut appended = String::new();
    for (block, statements) in [("BEGIN", &seeds), ("END", &clear)] {
        match find_block_brace(&code, block)? {
            Some((line, col)) => lines[line].insert_str(col + 1, statements),
            None => appended.push_str(&format!("\n{block}\n{{\n\t{}\n}}\n", statements.trim())),
        }
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out.push_str("\n// Added by importprobe: the processes of the traced tree.");
    out.push_str(&appended);
    out.push_str(&tree_probes(dialect));
    Ok(out)
}

/// The probes maintaining the tree's map.
fn tree_probes(d: Dialect) -> String {
    let child = d.field("pid");
    let flags = d.field("clone_flags");
    let freed = d.field("pid");
    let delete = format!("delete({TREE_MAP}[(uint64){freed}]);");
    let delete = if d.delete_returns { format!("$gone = {delete}") } else { delete };
    format!(
        "
tracepoint:task:task_newtask
/{TREE_MAP}[pid] && !({flags} & 0x10000)/
{{
\t// A new process (not a CLONE_THREAD thread) of a process in the tree.
\t{TREE_MAP}[(uint64){child}] = 1;
}}

tracepoint:sched:sched_process_free
/{TREE_MAP}[(uint64){freed}]/
{{
\t// Reaped: its pid may go to a process outside the tree.
\t{delete}
}}
"
    )
}

fn layout(line: usize, what: String) -> TreeScriptError {
    TreeScriptError::Layout { line: line + 1, what }
}

/// `python:import__find__load__start`: two identifiers.
fn is_provider_and_name(p: &str) -> bool {
    let ident = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    matches!(p.split_once(':'), Some((provider, name)) if ident(provider) && ident(name))
}

/// The objects, absolute, bpftrace-quotable, each file once (bpftrace 0.23
/// fails to load a program that attaches to one file twice, and a venv's
/// `python` is usually a symlink to the system one).
fn distinct_objects(objects: &[PathBuf]) -> Result<Vec<PathBuf>, TreeScriptError> {
    use std::os::unix::fs::MetadataExt;
    if objects.is_empty() {
        return Err(TreeScriptError::NoObjects);
    }
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for path in objects {
        if !path.is_absolute() {
            return Err(TreeScriptError::RelativeObject(path.clone()));
        }
        if path.to_string_lossy().contains(['"', '\\', '\n', '\r']) {
            return Err(TreeScriptError::UnquotablePath(path.clone()));
        }
        let meta =
            std::fs::metadata(path).map_err(|source| TreeScriptError::MissingObject { path: path.clone(), source })?;
        if !seen.contains(&(meta.dev(), meta.ino())) {
            seen.push((meta.dev(), meta.ino()));
            out.push(path.clone());
        }
    }
    Ok(out)
}

/// The index of the first line at or after `from` with code on it.
fn next_code_line(code: &[String], from: usize) -> Option<usize> {
    (from..code.len()).find(|&i| !code[i].trim().is_empty())
}

/// Where the `{` opening the `BEGIN` or `END` block is: (line, byte column).
fn find_block_brace(code: &[String], block: &str) -> Result<Option<(usize, usize)>, TreeScriptError> {
    for (i, line) in code.iter().enumerate() {
        let Some(rest) = line.trim_start().strip_prefix(block) else { continue };
        let rest = rest.trim_start();
        if !(rest.is_empty() || rest.starts_with('{')) {
            continue; // BEGIN_x, or a probe list: not the block
        }
        return match line.find('{') {
            Some(col) => Ok(Some((i, col))),
            None => match next_code_line(code, i + 1) {
                Some(next) if code[next].trim_start().starts_with('{') => {
                    Ok(Some((next, code[next].find('{').unwrap_or(0))))
                }
                _ => Err(layout(i, format!("{block} must be followed by {{"))),
            },
        };
    }
    Ok(None)
}

/// The script's lines with comments blanked out (string literals kept), so
/// that probe headers are recognised only in code. Byte positions are kept.
fn code_lines(source: &str) -> Vec<String> {
    #[derive(PartialEq)]
    enum State {
        Code,
        Block,
        Line,
        Str,
    }
    let mut state = State::Code;
    let mut out = Vec::new();
    for line in source.lines() {
        let bytes = line.as_bytes();
        let mut code = Vec::with_capacity(bytes.len());
        let mut j = 0;
        if state == State::Line {
            state = State::Code;
        }
        while j < bytes.len() {
            let (b, next) = (bytes[j], bytes.get(j + 1).copied());
            match state {
                State::Code if b == b'/' && next == Some(b'*') => {
                    state = State::Block;
                    code.extend_from_slice(b"  ");
                    j += 2;
                    continue;
                }
                State::Code if b == b'/' && next == Some(b'/') => state = State::Line,
                State::Code if b == b'"' => state = State::Str,
                State::Block if b == b'*' && next == Some(b'/') => {
                    state = State::Code;
                    code.extend_from_slice(b"  ");
                    j += 2;
                    continue;
                }
                State::Str if b == b'\\' && next.is_some() => {
                    code.extend_from_slice(&bytes[j..j + 2]);
                    j += 2;
                    continue;
                }
                State::Str if b == b'"' => state = State::Code,
                _ => {}
            }
            code.push(if matches!(state, State::Block | State::Line) { b' ' } else { b });
            j += 1;
        }
        out.push(String::from_utf8_lossy(&code).into_owned());
    }
    out
}

/// Whether `path` is one of the objects a restricted script attaches to
/// (same file, symlinks followed): lets callers warn about a process whose
/// probes live in a file the script does not attach to.
pub fn attaches_to(objects: &[PathBuf], path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(target) = std::fs::metadata(path) else { return false };
    objects.iter().filter_map(|o| std::fs::metadata(o).ok()).any(|m| (m.dev(), m.ino()) == (target.dev(), target.ino()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const V017: Dialect = Dialect { args_record: false, delete_returns: false, requires_kernel_semaphores: false };

    fn sh() -> Vec<PathBuf> {
        vec![PathBuf::from("/bin/sh")]
    }

    #[test]
    fn dialects_follow_the_version() {
        assert_eq!(Dialect::for_version("bpftrace v0.17.0").unwrap(), V017);
        let d23 = Dialect::for_version("v0.23.2").unwrap();
        assert!(d23.args_record && !d23.delete_returns && !d23.requires_kernel_semaphores);
        let d27 = Dialect::for_version("0.27.1-1").unwrap();
        assert!(d27.args_record && d27.delete_returns && d27.requires_kernel_semaphores);
        assert!(Dialect::for_version("v1.0.0").unwrap().delete_returns);
        assert!(matches!(Dialect::for_version("bpftrace"), Err(TreeScriptError::Version(_))));
    }

    #[test]
    fn predicates_every_usdt_probe_and_keeps_line_numbers() {
        let src = "\
#!/usr/bin/env bpftrace
/* usdt:$1:python:in_a_comment
 */
BEGIN
{
\tprintf(\"hi\\n\");
}

usdt:$1:python:import__find__load__start
/@depth[tid] < 5/
{
\t@depth[tid]++;
}

usdt:$1:python:import__find__load__done  // trailing comment
{
\t@depth[tid]--;
}

END { clear(@depth); }";
        let out = restrict_to_tree(src, &[42, 7], &sh(), V017).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "#!/usr/bin/env bpftrace");
        assert_eq!(lines[1], "/* usdt:$1:python:in_a_comment");
        assert_eq!(
            lines[4],
            "{ @importprobe_tree[(uint64)42] = 1; @importprobe_tree[(uint64)7] = 1; printf(\"importprobe: tree filter ready\\n\");"
        );
        assert_eq!(lines[8], "usdt:\"/bin/sh\":python:import__find__load__start");
        assert_eq!(lines[9], "/@importprobe_tree[pid] && (@depth[tid] < 5)/");
        assert_eq!(lines[14], "usdt:\"/bin/sh\":python:import__find__load__done /@importprobe_tree[pid]/");
        assert_eq!(lines[19], "END { clear(@importprobe_tree); clear(@depth); }");
        assert!(
            out.contains("tracepoint:task:task_newtask\n/@importprobe_tree[pid] && !(args->clone_flags & 0x10000)/")
        );
        assert!(out.contains("\tdelete(@importprobe_tree[(uint64)args->pid]);"));
        // Nothing added before the end but on existing lines.
        assert_eq!(
            src.lines().count(),
            out.lines().position(|l| l.starts_with("// Added by importprobe")).unwrap() - 1
        );
    }

    #[test]
    fn adds_begin_and_end_when_missing_and_speaks_the_dialect() {
        let src = "usdt:$1:python:import__find__load__start\n{ @n = count(); }\n";
        let objects = vec![PathBuf::from("/bin/sh"), PathBuf::from("/bin/../bin/sh"), PathBuf::from("/bin/true")];
        let out = restrict_to_tree(src, &[1], &objects, Dialect::of(0, 27)).unwrap();
        assert!(out.starts_with(
            "usdt:\"/bin/sh\":python:import__find__load__start, usdt:\"/bin/true\":python:import__find__load__start /@importprobe_tree[pid]/\n"
        ));
        assert!(out.contains(
            "\nBEGIN\n{\n\t@importprobe_tree[(uint64)1] = 1; printf(\"importprobe: tree filter ready\\n\");\n}\n"
        ));
        assert!(is_ready_line(b"importprobe: tree filter ready\n") && !is_ready_line(b"# importprobe-events v1\n"));
        assert!(out.contains("\nEND\n{\n\tclear(@importprobe_tree);\n}\n"));
        assert!(out.contains("!(args.clone_flags & 0x10000)"));
        assert!(out.contains("$gone = delete(@importprobe_tree[(uint64)args.pid]);"));
    }

    #[test]
    fn refuses_what_it_cannot_restrict() {
        let ok = "usdt:$1:python:x\n{ }\n";
        assert!(matches!(restrict_to_tree(ok, &[], &sh(), V017), Err(TreeScriptError::NoRoots)));
        assert!(matches!(restrict_to_tree(ok, &[1], &[], V017), Err(TreeScriptError::NoObjects)));
        let rel = [PathBuf::from("python3")];
        assert!(matches!(restrict_to_tree(ok, &[1], &rel, V017), Err(TreeScriptError::RelativeObject(_))));
        let quote = [PathBuf::from("/tmp/a\"b")];
        assert!(matches!(restrict_to_tree(ok, &[1], &quote, V017), Err(TreeScriptError::UnquotablePath(_))));
        let gone = [PathBuf::from("/nonexistent/python")];
        assert!(matches!(restrict_to_tree(ok, &[1], &gone, V017), Err(TreeScriptError::MissingObject { .. })));
        assert!(matches!(restrict_to_tree("BEGIN { }", &[1], &sh(), V017), Err(TreeScriptError::NoUsdtProbes)));
        for (src, line) in [
            ("usdt:*:python:x\n{ }\n", 1),
            ("usdt:$1:python:x { }\n", 1),
            ("usdt:$1:python:x,\nusdt:$1:python:y\n{ }\n", 1),
            ("usdt:$1:python:x\n/a &&\n b/\n{ }\n", 2),
            ("usdt:$1:python:x\nprintf(\"\");\n", 2),
            ("usdt:$1:python:x\n", 1),
            ("usdt:$1:python:x\n{ }\nBEGIN\nprintf(\"\");\n", 3),
        ] {
            match restrict_to_tree(src, &[1], &sh(), V017) {
                Err(TreeScriptError::Layout { line: l, .. }) => assert_eq!(l, line, "{src:?}"),
                other => panic!("{src:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn comments_and_strings_are_not_code() {
        let code = code_lines("a /* b\nc */ d // e\n\"f // g\" h\n");
        assert_eq!(code, ["a     ", "     d     ", "\"f // g\" h"]);
    }

    #[test]
    fn knows_the_objects_it_attaches_to() {
        assert!(attaches_to(&sh(), Path::new("/bin/../bin/sh")));
        assert!(!attaches_to(&sh(), Path::new("/bin/true")));
        assert!(!attaches_to(&sh(), Path::new("/nonexistent")));
    }

    #[test]
    fn the_bundled_scripts_can_be_restricted() {
        for s in crate::tracer::scripts::BUNDLED {
            let out = restrict_to_tree(s.bpftrace, &[1], &sh(), V017).unwrap_or_else(|e| panic!("{}: {e}", s.name));
            assert_eq!(out.matches("usdt:\"/bin/sh\":python:import__find__load__").count(), 2, "{}", s.name);
            // Both usdt probes and the fork tracepoint.
            assert_eq!(out.matches("/@importprobe_tree[pid]").count(), 3, "{}", s.name);
        }
    }
}
