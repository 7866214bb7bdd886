//! What `importprobe report` reads: an `importprobe-events v1` stream (from
//! the import-events script) or a ground-truth JSON lines file (from
//! `importprobe run --truth`), told apart by their first line.

use crate::events::{stream, truth, ImportEvent};

/// The two inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    /// `importprobe-events v1`, from a tracer.
    Stream,
    /// JSON lines, from the simulator.
    Truth,
}

/// Why an input could not be read.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("event stream: {0}")]
    Stream(#[from] stream::StreamError),
    #[error("ground truth: {0:#}")]
    Truth(anyhow::Error),
}

/// Which kind `data` is: JSON lines start with `{`, anything else is taken
/// for a stream (whose parser says precisely what is wrong with it).
pub fn detect(data: &[u8]) -> InputKind {
    let first = data.split(|&b| b == b'\n').map(|l| l.trim_ascii()).find(|l| !l.is_empty());
    match first {
        Some(line) if line.starts_with(b"{") => InputKind::Truth,
        _ => InputKind::Stream,
    }
}

/// Parses `data` as whichever kind it is.
pub fn parse(data: &[u8]) -> Result<(InputKind, Vec<ImportEvent>), InputError> {
    let kind = detect(data);
    let events = match kind {
        InputKind::Stream => stream::parse(data)?,
        InputKind::Truth => truth::parse(data).map_err(InputError::Truth)?,
    };
    Ok((kind, events))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::EventKind;

    #[test]
    fn tells_streams_from_ground_truth() {
        let stream = b"Attaching 4 probes...\n# importprobe-events v1\nE 10 1 1 0 0 start - 0 3 a b\nE 20 1 1 1 0 done 0 0 3 a b\n# end\n";
        let (kind, evs) = parse(stream).unwrap();
        assert_eq!(kind, InputKind::Stream);
        assert_eq!(evs.len(), 2);
        assert_eq!(evs[0].module, "a b");
        assert_eq!(evs[1].found, Some(false));

        let truth =
            b"\n{\"ts_ns\":5,\"pid\":1,\"tid\":1,\"depth\":0,\"event\":\"start\",\"module\":\"x\",\"found\":null}\n";
        let (kind, evs) = parse(truth).unwrap();
        assert_eq!(kind, InputKind::Truth);
        assert_eq!(evs[0].kind, EventKind::Start);
    }

    #[test]
    fn broken_inputs_are_errors() {
        assert!(matches!(parse(b"hello\n"), Err(InputError::Stream(_))));
        assert!(matches!(parse(b"{oops\n"), Err(InputError::Truth(_))));
        let cut = b"# importprobe-events v1\nE 10 1 1 0 0 start - 0 1 a\n";
        assert!(matches!(parse(cut), Err(InputError::Stream(stream::StreamError::MissingTrailer))));
    }
}
