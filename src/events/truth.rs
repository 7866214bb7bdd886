//! Ground-truth files: one [`ImportEvent`] as JSON per line, written by
//! `importprobe run --truth FILE` as the simulator fires each probe, and
//! optionally `{"process": {...}}` lines naming the processes it started.

use super::{ImportEvent, Origin, ProcessInfo, Recording};
use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// One line of a truth file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TruthLine {
    Process { process: ProcessInfo },
    Event(ImportEvent),
}

/// Reads a ground-truth file written by `importprobe run --truth`.
pub fn read(path: &Path) -> anyhow::Result<Recording> {
    let data = std::fs::read(path).with_context(|| format!("cannot read ground truth {}", path.display()))?;
    parse(&data).with_context(|| format!("in ground truth {}", path.display()))
}

/// Parses JSON lines; blank lines are skipped.
pub fn parse(data: &[u8]) -> anyhow::Result<Recording> {
    let mut rec = Recording::new(Origin::Truth, Vec::new());
    for (i, line) in data.split(|&b| b == b'\n').enumerate() {
        if line.trim_ascii().is_empty() {
            continue;
        }
        match serde_json::from_slice(line).with_context(|| format!("line {}", i + 1))? {
            TruthLine::Event(e) => rec.events.push(e),
            TruthLine::Process { process } => rec.processes.push(process),
        }
    }
    Ok(rec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::NameState;

    #[test]
    fn round_trips_json_lines() {
        let mut ev = ImportEvent::done(5, 1, 2, 0, "a b\n\"c\"", false);
        let line = serde_json::to_string(&ev).unwrap();
        assert!(line.contains("\"event\":\"done\"") && !line.contains("name"), "{line}");
        ev.name = NameState::Missing;
        let missing = serde_json::to_string(&ev).unwrap();
        assert!(missing.contains("\"name\":\"missing\""), "{missing}");
        let proc_line = r#"{"process":{"pid":9,"ppid":1,"command":"sim child"}}"#;
        let rec = parse(format!("{line}\n\n{missing}\n{proc_line}\n").as_bytes()).unwrap();
        assert_eq!(rec.events.len(), 2);
        assert_eq!(rec.events[1], ev);
        assert_eq!(rec.processes[0].ppid, Some(1));
        assert!(parse(b"{not json").is_err());
    }
}
