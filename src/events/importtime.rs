//! CPython's `-X importtime` format, read and written byte for byte.
//!
//! ```text
//! import time: self [us] | cumulative | imported package
//! import time:       105 |        105 |   _io
//! import time: cached    | cached     |  sys
//! ```
//!
//! `Python/import.c` prints `"import time: %9ld | %10ld | %*s%s\n"` (an
//! indent of two spaces per nesting level) when an import's probe pair
//! ends, so children come before their parent; self and cumulative are
//! microseconds rounded up. CPython 3.14's `-X importtime=2` also prints
//! `"import time: cached    | cached     | %*s\n"` for a module that was
//! already loaded: there the level is a field *width* for the name, so the
//! padding is `2 * level - len(name)` spaces, none for a long name.
//!
//! A log has no absolute times: [`to_recording`] lays the imports out one
//! after another (children first within their parent, the parent's own time
//! after them) and keeps what CPython printed, so [`render`] gives the log
//! back unchanged. CPython shares the nesting level between threads, so a
//! log written while several threads imported can have levels that fit no
//! tree: then the imports are kept without nesting, with a warning, rather
//! than guessed into a tree.

use super::forest::{Forest, ImportState};
use super::{EventKind, ImportEvent, NameState, Origin, ProcessInfo, Recording};

/// The header CPython prints before the first line.
pub const HEADER: &str = "import time: self [us] | cumulative | imported package\n";

const PREFIX: &str = "import time:";

/// What CPython printed for one import (kept for rendering it back).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logged {
    /// `None` on a `cached` line.
    pub self_us: Option<u64>,
    pub cumulative_us: Option<u64>,
    /// Spaces between `| ` and the name.
    pub pad: usize,
}

/// One `-X importtime` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportTimeLine {
    /// `None` for a `cached` line.
    pub self_us: Option<u64>,
    pub cumulative_us: Option<u64>,
    /// Spaces between `| ` and the name.
    pub pad: usize,
    pub module: String,
}

impl ImportTimeLine {
    pub fn is_cached(&self) -> bool {
        self.self_us.is_none()
    }

    /// The nesting level: the indent for an import line; for a cached line
    /// the field width when the name was padded, else unknown (`None`).
    pub fn level(&self) -> Option<u32> {
        if !self.is_cached() {
            return Some((self.pad / 2) as u32);
        }
        let width = self.pad + self.module.chars().count();
        (self.pad > 0 && width % 2 == 0).then_some((width / 2) as u32)
    }
}

/// One import line, `self_us` and `cum_us` already rounded up to
/// microseconds, the name indented two spaces per level.
pub fn line(self_us: u64, cum_us: u64, level: usize, module: &str) -> String {
    format!("{PREFIX} {self_us:>9} | {cum_us:>10} | {:indent$}{module}\n", "", indent = level * 2)
}

/// A `-X importtime=2` cached line: the name right-aligned in a field two
/// columns per level wide, as CPython's `%*s` does.
pub fn cached_line(level: usize, module: &str) -> String {
    format!("{PREFIX} cached    | cached     | {module:>width$}\n", width = level * 2)
}

/// Parses one line (without its line end); `None` for the header and for
/// any other text.
pub fn parse_line(text: &str) -> Option<ImportTimeLine> {
    let rest = text.strip_prefix(PREFIX)?;
    let mut fields = rest.splitn(3, '|');
    let (own, cum) = (fields.next()?.trim(), fields.next()?.trim());
    let name_part = fields.next()?.strip_prefix(' ')?;
    let pad = name_part.len() - name_part.trim_start_matches(' ').len();
    let module = &name_part[pad..];
    if module.is_empty() {
        return None;
    }
    let (self_us, cumulative_us) = if own == "cached" && cum == "cached" {
        (None, None)
    } else {
        let (s, c) = (own.parse().ok()?, cum.parse().ok()?);
        if pad % 2 != 0 {
            return None;
        }
        (Some(s), Some(c))
    };
    Some(ImportTimeLine { self_us, cumulative_us, pad, module: module.to_owned() })
}

/// Every importtime line of a text (a program's stderr: other lines are
/// skipped), with the 1-based line number it came from.
pub fn parse_log(text: &str) -> Vec<(usize, ImportTimeLine)> {
    text.split('\n')
        .enumerate()
        .filter_map(|(i, l)| parse_line(l.strip_suffix('\r').unwrap_or(l)).map(|p| (i + 1, p)))
        .collect()
}

/// Whether a text looks like an `-X importtime` log.
pub fn is_log(text: &str) -> bool {
    text.lines().take(2000).any(|l| l.starts_with(PREFIX))
}

/// A node of the tree rebuilt from the post-order lines.
struct Node {
    line: ImportTimeLine,
    level: u32,
    children: Vec<usize>,
}

/// Rebuilds the import trees of a log and lays them out as events on one
/// thread, keeping what CPython printed for [`render`].
pub fn to_recording(lines: &[(usize, ImportTimeLine)]) -> Recording {
    let mut warnings = Vec::new();
    let (nodes, roots) = match rebuild(lines) {
        Ok(tree) => tree,
        Err(why) => {
            warnings.push(format!(
                "{why}: several threads imported at once (CPython shares the indentation level between threads), \
                 so the imports are listed without nesting rather than guessed into a tree"
            ));
            flat(lines)
        }
    };
    if let Some(open) = dangling(&nodes, &roots) {
        warnings.push(open);
    }
    let mut rec = Recording::new(Origin::ImportTime, Vec::with_capacity(nodes.len() * 2));
    rec.processes.push(ProcessInfo { pid: 0, ppid: None, command: "-X importtime log".into() });
    rec.warnings = warnings;
    let mut clock = 0u64;
    for &r in &roots {
        clock = layout(&nodes, r, clock, 0, &mut rec);
    }
    rec
}

/// Post-order lines (children before their parent, each at its level) back
/// into trees. `Err` names the first line whose level fits no tree.
fn rebuild(lines: &[(usize, ImportTimeLine)]) -> Result<(Vec<Node>, Vec<usize>), String> {
    let mut nodes: Vec<Node> = Vec::with_capacity(lines.len());
    // pending[l]: finished imports at level l still waiting for their parent.
    let mut pending: Vec<Vec<usize>> = Vec::new();
    for (line_no, l) in lines {
        // A cached line of unknown level belongs to the innermost import
        // still running: the level just below the deepest pending one, or 0.
        let level = match l.level() {
            Some(v) => v,
            None => pending.iter().rposition(|p| !p.is_empty()).map_or(0, |deepest| deepest as u32),
        } as usize;
        if pending.len() < level + 2 {
            pending.resize_with(level + 2, Vec::new);
        }
        if let Some(deeper) = pending.iter().skip(level + 2).position(|p| !p.is_empty()) {
            return Err(format!(
                "line {line_no}: {:?} at level {level} closes imports at level {} whose parent never printed",
                l.module,
                level + 2 + deeper
            ));
        }
        let children = if l.is_cached() { Vec::new() } else { std::mem::take(&mut pending[level + 1]) };
        if l.is_cached() && !pending[level + 1].is_empty() && l.level().is_some() {
            return Err(format!("line {line_no}: cached {:?} at level {level} after deeper imports", l.module));
        }
        let id = nodes.len();
        nodes.push(Node { line: l.clone(), level: level as u32, children });
        pending[level].push(id);
    }
    // What is left: roots at level 0, and imports whose parent never
    // finished (the log ends inside an import); those become roots too.
    let mut roots: Vec<usize> = pending.into_iter().flatten().collect();
    roots.sort_unstable();
    Ok((nodes, roots))
}

/// One root per line, at its printed level: the fallback for logs whose
/// levels fit no tree.
fn flat(lines: &[(usize, ImportTimeLine)]) -> (Vec<Node>, Vec<usize>) {
    let nodes: Vec<Node> = lines
        .iter()
        .map(|(_, l)| Node { level: l.level().unwrap_or(0), line: l.clone(), children: Vec::new() })
        .collect();
    let roots = (0..nodes.len()).collect();
    (nodes, roots)
}

/// A warning when some root is not at level 0: the log ended (or began)
/// inside an import whose own line is missing.
fn dangling(nodes: &[Node], roots: &[usize]) -> Option<String> {
    let deep = roots.iter().filter(|&&r| nodes[r].level > 0).count();
    (deep > 0).then(|| {
        format!(
            "{deep} import(s) printed at a nesting level > 0 have no parent line: the log is cut (the process ended \
             during an import?) or its levels are shared between threads"
        )
    })
}

/// Lays a node out from `start`: its children one after another, then its
/// own time; returns its end. Emits start/done (or cached) events.
fn layout(nodes: &[Node], id: usize, start: u64, depth: u32, rec: &mut Recording) -> u64 {
    let n = &nodes[id];
    let l = &n.line;
    let ev = |ts, kind| ImportEvent {
        ts_ns: ts,
        pid: 0,
        tid: 0,
        depth,
        kind,
        module: l.module.clone(),
        found: (kind != EventKind::Start).then_some(true),
        name: NameState::Full,
    };
    let logged = Logged { self_us: l.self_us, cumulative_us: l.cumulative_us, pad: l.pad };
    if l.is_cached() {
        rec.logged.push((rec.events.len(), logged));
        let mut e = ev(start, EventKind::Cached);
        e.found = None;
        rec.events.push(e);
        return start;
    }
    rec.events.push(ev(start, EventKind::Start));
    let mut clock = start;
    for &c in &n.children {
        clock = layout(nodes, c, clock, depth + 1, rec);
    }
    let end = (start + l.cumulative_us.unwrap_or(0) * 1000).max(clock);
    rec.logged.push((rec.events.len(), logged));
    rec.events.push(ev(end, EventKind::Done));
    end
}

/// The `-X importtime` output of a forest: one line per import that ended,
/// in the order they ended, children before parents; what CPython printed
/// when the forest was read from a log (byte for byte), else microseconds
/// rounded up as CPython does. Unfinished imports have no line, as in
/// CPython. Empty without imports.
pub fn render(forest: &Forest) -> String {
    let mut out = String::new();
    for id in forest.in_done_order() {
        if out.is_empty() {
            out.push_str(HEADER);
        }
        let imp = &forest.imports[id];
        let module = if imp.name == NameState::Full { super::escape(&imp.module) } else { imp.display_name() };
        match (&imp.logged, imp.state) {
            (Some(l), ImportState::Cached) => {
                out.push_str(&format!("{PREFIX} cached    | cached     | {}{module}\n", " ".repeat(l.pad)))
            }
            (None, ImportState::Cached) => out.push_str(&cached_line(imp.depth as usize, &module)),
            (Some(l), _) => out.push_str(&format!(
                "{PREFIX} {:>9} | {:>10} | {}{module}\n",
                l.self_us.unwrap_or(0),
                l.cumulative_us.unwrap_or(0),
                " ".repeat(l.pad)
            )),
            (None, _) => out.push_str(&line(
                forest.self_ns(id).div_ceil(1000),
                forest.cumulative_ns(id).div_ceil(1000),
                imp.depth as usize,
                &module,
            )),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::forest::tests::{forest, package_and_failure, two_threads};

    fn read(text: &str) -> Forest {
        Forest::build(&to_recording(&parse_log(text)))
    }

    #[test]
    fn writes_cpythons_layout() {
        assert_eq!(line(105, 105, 1, "_io"), "import time:       105 |        105 |   _io\n");
        assert_eq!(line(1234, 12345, 0, "json"), "import time:      1234 |      12345 | json\n");
        assert_eq!(cached_line(2, "sys"), "import time: cached    | cached     |  sys\n");
        assert_eq!(cached_line(1, "encodings"), "import time: cached    | cached     | encodings\n");
    }

    #[test]
    fn renders_a_trace_children_first_with_self_time_and_failures() {
        assert_eq!(
            render(&forest(package_and_failure())),
            format!(
                "{HEADER}{}{}{}{}",
                "import time:         3 |          3 |   a\n",
                "import time:         4 |          4 |   json\n",
                "import time:         5 |         11 | a.b\n",
                "import time:         1 |          1 | nope\n",
            )
        );
        let text = render(&forest(two_threads()));
        let modules: Vec<&str> = text.lines().skip(1).map(|l| l.rsplit('|').next().unwrap()).collect();
        assert_eq!(modules, ["   x.sub", "   y.sub", " y", " x"]);
        assert_eq!(render(&Forest::default()), "");
    }

    const LOG_311: &str = "\
import time: self [us] | cumulative | imported package
import time:       235 |        235 |   _io
import time:        61 |         61 |   marshal
import time:       503 |       1256 | _frozen_importlib_external
import time:       105 |        105 |     _codecs
import time:       650 |        755 |   codecs
import time:       240 |        995 | encodings
";

    #[test]
    fn a_log_round_trips_byte_for_byte_and_nests() {
        let f = read(LOG_311);
        assert_eq!(render(&f), LOG_311);
        assert!(f.warnings.is_empty(), "{:?}", f.warnings);
        let names: Vec<&str> = f.roots.iter().map(|&r| f.imports[r].module.as_str()).collect();
        assert_eq!(names, ["_frozen_importlib_external", "encodings"]);
        let enc = f.roots[1];
        assert_eq!(f.imports[f.imports[enc].children[0]].module, "codecs");
        assert_eq!(f.cumulative_ns(enc), 995_000);
        // Laid out in order: encodings starts when the first import ends.
        assert_eq!(f.imports[enc].start_ns, 1_256_000);
        assert!(f.is_laid_out());
    }

    #[test]
    fn cached_lines_of_3_14_are_kept_and_round_trip() {
        let log = "\
import time: self [us] | cumulative | imported package
import time: cached    | cached     | _imp
import time:       139 |        139 |   _io
import time: cached    | cached     |  sys
import time:        32 |         32 |     _codecs
import time:       373 |        405 |   codecs
import time: cached    | cached     | encodings
import time:       324 |        324 |   encodings.aliases
import time:       500 |       1229 | encodings
";
        let f = read(log);
        assert_eq!(render(&f), log);
        let cached: Vec<&str> =
            f.imports.iter().filter(|i| i.state == ImportState::Cached).map(|i| i.module.as_str()).collect();
        assert_eq!(cached, ["_imp", "sys", "encodings"]);
        // ` sys` is width 4: level 2, inside the import running then.
        let sys = f.imports.iter().position(|i| i.module == "sys").unwrap();
        assert_eq!(f.imports[sys].depth, 2);
    }

    #[test]
    fn other_lines_crlf_and_odd_names_are_handled() {
        let log = "Traceback (most recent call last):\r\nimport time: self [us] | cumulative | imported package\r\n\
                   import time:         7 |          7 | a|b\r\nwarning: something\r\n";
        let lines = parse_log(log);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].0, 3);
        assert_eq!(lines[0].1.module, "a|b");
        assert!(parse_line("import time:  12 |  x | y").is_none());
        assert!(parse_line("import time:   1 |   1 |  odd-indent").is_none());
    }

    #[test]
    fn levels_shared_between_threads_give_no_invented_tree() {
        // Thread 2's import printed at level 2 while thread 1 is at level 0.
        let log = "\
import time:         5 |          5 |     b
import time:        10 |         15 | a
";
        let f = read(log);
        assert_eq!(f.roots.len(), 2, "listed, not nested");
        assert!(f.warnings[0].contains("several threads"), "{:?}", f.warnings);
        assert_eq!(render(&f), format!("{HEADER}{log}"));
    }

    #[test]
    fn a_cut_log_keeps_orphans_as_roots_with_a_warning() {
        let f = read("import time:         5 |          5 |   child\n");
        assert_eq!(f.roots.len(), 1);
        assert!(f.warnings[0].contains("no parent line"), "{:?}", f.warnings);
    }
}
