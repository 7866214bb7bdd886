//! Ground-truth files: one [`ImportEvent`] as JSON per line (`--truth FILE`).

use super::ImportEvent;
use anyhow::Context;
use std::io::BufRead;
use std::path::Path;

/// Reads a ground-truth file written by `importprobe run --truth`.
pub fn read(path: &Path) -> anyhow::Result<Vec<ImportEvent>> {
    let file = std::fs::File::open(path).with_context(|| format!("cannot open ground truth {}", path.display()))?;
    parse(std::io::BufReader::new(file)).with_context(|| format!("in ground truth {}", path.display()))
}

/// Parses JSON lines; blank lines are skipped.
pub fn parse(input: impl BufRead) -> anyhow::Result<Vec<ImportEvent>> {
    let mut events = Vec::new();
    for (i, line) in input.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        events.push(serde_json::from_str(&line).with_context(|| format!("line {}", i + 1))?);
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::EventKind;

    #[test]
    fn round_trips_json_lines() {
        let ev = ImportEvent {
            ts_ns: 5,
            pid: 1,
            tid: 2,
            depth: 0,
            kind: EventKind::Done,
            module: "a b\n\"c\"".into(),
            found: Some(false),
            truncated: false,
        };
        let line = serde_json::to_string(&ev).unwrap();
        assert!(line.contains("\"event\":\"done\""), "{line}");
        assert_eq!(parse(format!("{line}\n\n").as_bytes()).unwrap(), vec![ev]);
        assert!(parse(&b"{not json"[..]).is_err());
    }
}
