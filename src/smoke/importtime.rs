//! Reading CPython's `-X importtime` lines back: `import time: SELF | CUM |
//! <2 spaces per level>NAME`, one line per import pair, printed when the pair
//! ends (children before their parent).

/// One `-X importtime` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportTimeLine {
    pub self_us: u64,
    pub cumulative_us: u64,
    /// Nesting level (indent / 2) = the pair's depth.
    pub level: u32,
    pub module: String,
}

const PREFIX: &str = "import time:";

/// Parses one line; `None` for the header and for any other text.
pub fn parse_line(line: &str) -> Option<ImportTimeLine> {
    let rest = line.strip_prefix(PREFIX)?;
    let mut fields = rest.splitn(3, '|');
    let self_us = fields.next()?.trim().parse().ok()?;
    let cumulative_us = fields.next()?.trim().parse().ok()?;
    // "| " then 2 spaces per level, then the name.
    let name_part = fields.next()?.strip_prefix(' ')?;
    let indent = name_part.len() - name_part.trim_start_matches(' ').len();
    let module = &name_part[indent..];
    if module.is_empty() || indent % 2 != 0 {
        return None;
    }
    Some(ImportTimeLine { self_us, cumulative_us, level: (indent / 2) as u32, module: module.to_owned() })
}

/// Every importtime line in a text (e.g. a program's stderr).
pub fn parse_all<'a>(lines: impl IntoIterator<Item = &'a str>) -> Vec<ImportTimeLine> {
    lines.into_iter().filter_map(parse_line).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cpythons_lines() {
        let text = "\
import time: self [us] | cumulative | imported package
import time:       235 |        235 |   _io
import time:       503 |       1256 | _frozen_importlib_external
import time:       105 |        105 |     _codecs
something else";
        let lines = parse_all(text.lines());
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0], ImportTimeLine { self_us: 235, cumulative_us: 235, level: 1, module: "_io".into() });
        assert_eq!((lines[1].level, lines[1].cumulative_us), (0, 1256));
        assert_eq!((lines[2].level, lines[2].module.as_str()), (2, "_codecs"));
    }

    #[test]
    fn round_trips_the_simulators_format() {
        let line = crate::report::importtime::line(12, 345, 3, "a.b");
        let parsed = parse_line(line.trim_end()).unwrap();
        assert_eq!(parsed, ImportTimeLine { self_us: 12, cumulative_us: 345, level: 3, module: "a.b".into() });
    }
}
