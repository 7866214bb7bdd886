//! Deliberately wrong ground truth, so that `importprobe smoke` can show (and
//! its tests can prove) that a correct trace which no longer matches the
//! truth is caught. Used by the hidden `importprobe run --tamper-truth`.

use crate::events::{truth, EventKind, ImportEvent};
use std::io::Write;
use std::path::Path;

/// How to corrupt the ground truth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Tamper {
    /// Drop the middle event.
    Drop,
    /// Flip the found flag of the first done event.
    Flip,
}

impl Tamper {
    pub fn as_str(self) -> &'static str {
        match self {
            Tamper::Drop => "drop",
            Tamper::Flip => "flip",
        }
    }
}

/// Applies `how` to the events; false when there was nothing to corrupt.
pub fn corrupt(events: &mut Vec<ImportEvent>, how: Tamper) -> bool {
    match how {
        Tamper::Drop if !events.is_empty() => {
            events.remove(events.len() / 2);
            true
        }
        Tamper::Flip => match events.iter_mut().find(|e| e.kind == EventKind::Done) {
            Some(e) => {
                e.found = e.found.map(|f| !f);
                true
            }
            None => false,
        },
        Tamper::Drop => false,
    }
}

/// Rewrites a ground-truth file with one event corrupted.
pub fn corrupt_file(path: &Path, how: Tamper) -> anyhow::Result<()> {
    let mut rec = truth::read(path)?;
    if !corrupt(&mut rec.events, how) {
        anyhow::bail!("nothing to tamper with in {}", path.display());
    }
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    for p in &rec.processes {
        serde_json::to_writer(&mut out, &truth::TruthLine::Process { process: p.clone() })?;
        out.write_all(b"\n")?;
    }
    for e in &rec.events {
        serde_json::to_writer(&mut out, e)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: EventKind, module: &str, found: Option<bool>) -> ImportEvent {
        ImportEvent { kind, found, ..ImportEvent::start(1, 1, 1, 0, module) }
    }

    #[test]
    fn drops_one_and_flips_one() {
        let orig = vec![
            ev(EventKind::Start, "a", None),
            ev(EventKind::Done, "a", Some(true)),
            ev(EventKind::Start, "b", None),
        ];
        let mut dropped = orig.clone();
        assert!(corrupt(&mut dropped, Tamper::Drop));
        assert_eq!(dropped.len(), 2);
        assert_eq!(dropped[1].module, "b");
        let mut flipped = orig.clone();
        assert!(corrupt(&mut flipped, Tamper::Flip));
        assert_eq!(flipped[1].found, Some(false));
        assert!(!corrupt(&mut Vec::new(), Tamper::Drop));
    }
}
