//! Parsers of the bundled scripts' outputs that more than one test file
//! reads (tests/scripts.rs, tests/accuracy.rs): one parser per output.

use importprobe::events::NameState;

pub fn num(s: &str, what: &str, line: &str) -> u64 {
    s.trim().parse().unwrap_or_else(|_| panic!("bad {what} {s:?} in line {line:?}"))
}

/// A shown name without the `..` trailer bpftrace 0.19-0.23 prints after a
/// string that filled its buffer (the name flag says it was cut).
pub fn uncut(shown: &str, state: NameState) -> &str {
    if state == NameState::Cut {
        shown.strip_suffix("..").unwrap_or(shown)
    } else {
        shown
    }
}

pub fn flag(n: u64, line: &str) -> NameState {
    NameState::from_flag(n as u8).unwrap_or_else(|| panic!("bad name flag {n} in {line:?}"))
}

#[derive(Debug)]
pub struct TreeLine {
    pub tid: u32,
    pub self_us: u64,
    pub cum_us: u64,
    pub depth: u32,
    pub found: bool,
    pub name: NameState,
    pub module: String,
}

/// `TID SELF | CUM | DEP F N | <indent>MODULE`, indent 2 per depth up to
/// 31; deeper: 64 spaces, then `[depth] `.
pub fn parse_tree(out: &str) -> Vec<TreeLine> {
    let mut lines = Vec::new();
    for line in out.lines() {
        if line.is_empty() || line.starts_with("TID ") {
            continue;
        }
        let parts: Vec<&str> = line.splitn(4, " | ").collect();
        assert_eq!(parts.len(), 4, "tree line {line:?}");
        let (tid, self_us) = parts[0].split_once(' ').unwrap_or_else(|| panic!("{line:?}"));
        let flags: Vec<&str> = parts[2].split_whitespace().collect();
        assert_eq!(flags.len(), 3, "{line:?}");
        let depth = num(flags[0], "depth", line) as u32;
        let indent = 2 * depth.min(32) as usize;
        let rest = parts[3];
        assert!(rest.len() >= indent && rest[..indent].bytes().all(|b| b == b' '), "indent of {line:?}");
        let mut module = &rest[indent..];
        if depth >= 32 {
            let tag = format!("[{depth}] ");
            module = module.strip_prefix(tag.as_str()).unwrap_or_else(|| panic!("missing {tag:?} in {line:?}"));
        } else {
            assert!(!module.starts_with(' '), "indent too deep in {line:?}");
        }
        let name = flag(num(flags[2], "name flag", line), line);
        lines.push(TreeLine {
            tid: num(tid, "tid", line) as u32,
            self_us: num(self_us, "self", line),
            cum_us: num(parts[1], "cum", line),
            depth,
            found: num(flags[1], "found", line) == 1,
            name,
            module: uncut(module, name).to_string(),
        });
    }
    lines
}

/// `@import_cumulative_us[name, found, N, tid, #, depth, self_us]: cum_us`
pub fn parse_latency(out: &str) -> Vec<(String, [u64; 6], u64)> {
    let mut v = Vec::new();
    for line in out.lines() {
        let Some(rest) = line.strip_prefix("@import_cumulative_us[") else { continue };
        let (inner, cum) = rest.rsplit_once("]: ").unwrap_or_else(|| panic!("{line:?}"));
        let fields: Vec<&str> = inner.rsplitn(7, ", ").collect();
        assert_eq!(fields.len(), 7, "{line:?}");
        let mut nums = [0u64; 6];
        for (i, f) in fields[..6].iter().rev().enumerate() {
            nums[i] = num(f, "field", line);
        }
        v.push((fields[6].to_string(), nums, num(cum, "cum", line)));
    }
    v
}
