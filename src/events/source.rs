//! Reading any recording importprobe knows, told apart by its content: an
//! `importprobe-events` stream, an `importprobe-capture` dump, the
//! simulator's ground truth, or a CPython `-X importtime` log (any CPython
//! from 3.7 on, as a program wrote it to stderr: other lines around it,
//! CRLF line ends, UTF-16 with a byte-order mark as PowerShell writes it).

use super::{capture, importtime, stream, truth, Origin, Recording};
use std::borrow::Cow;

/// Why an input could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("event stream: {0}")]
    Stream(#[from] stream::StreamError),
    #[error("capture: {0}")]
    Capture(#[from] capture::CaptureError),
    #[error("ground truth: {0:#}")]
    Truth(anyhow::Error),
    #[error("the input is empty")]
    Empty,
    #[error(
        "not an importprobe event stream, capture, ground truth or -X importtime log (it starts with {0:?}); \
         record one with `importprobe trace --save-events FILE`, or `python -X importtime ... 2> FILE`"
    )]
    Unknown(String),
}

/// Which kind of input a text is.
pub fn detect(text: &[u8]) -> Option<Origin> {
    let lines = || text.split(|&b| b == b'\n').map(|l| l.trim_ascii()).filter(|l| !l.is_empty());
    let first = lines().find(|l| !super::cursor::is_attach_line(l))?;
    if first.starts_with(b"# importprobe-events") {
        Some(Origin::Stream)
    } else if first.starts_with(b"# importprobe-capture") {
        Some(Origin::Capture)
    } else if first.starts_with(b"{") {
        Some(Origin::Truth)
    } else if lines().take(5000).any(|l| l.starts_with(b"import time:")) {
        Some(Origin::ImportTime)
    } else {
        None
    }
}

/// Text as UTF-8: a UTF-16 (LE or BE) or UTF-8 byte-order mark is honoured;
/// anything else is taken as UTF-8.
pub fn decode(data: &[u8]) -> Cow<'_, [u8]> {
    let utf16 = |bytes: &[u8], le: bool| {
        let units = bytes.chunks_exact(2).map(|c| {
            if le {
                u16::from_le_bytes([c[0], c[1]])
            } else {
                u16::from_be_bytes([c[0], c[1]])
            }
        });
        Cow::Owned(char::decode_utf16(units).map(|r| r.unwrap_or('\u{fffd}')).collect::<String>().into_bytes())
    };
    match data {
        [0xff, 0xfe, rest @ ..] => utf16(rest, true),
        [0xfe, 0xff, rest @ ..] => utf16(rest, false),
        [0xef, 0xbb, 0xbf, rest @ ..] => Cow::Borrowed(rest),
        _ => Cow::Borrowed(data),
    }
}

/// Reads any supported input.
pub fn load(data: &[u8]) -> Result<Recording, SourceError> {
    let text = decode(data);
    let origin = detect(&text).ok_or_else(|| {
        let head = String::from_utf8_lossy(&text[..text.len().min(60)]).into_owned();
        if head.trim().is_empty() {
            SourceError::Empty
        } else {
            SourceError::Unknown(head)
        }
    })?;
    Ok(match origin {
        Origin::Stream => stream::parse(&text)?,
        Origin::Capture => capture::parse(&text)?,
        Origin::Truth => truth::parse(&text).map_err(SourceError::Truth)?,
        Origin::ImportTime => importtime::to_recording(&importtime::parse_log(&String::from_utf8_lossy(&text))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::EventKind;

    #[test]
    fn tells_every_kind_apart() {
        let stream = b"Attaching 4 probes...\n# importprobe-events v2\nE 10 1 1 0 0 start - 0 3 a b\nE 20 1 1 1 0 done 0 0 3 a b\n# end\n";
        let rec = load(stream).unwrap();
        assert_eq!(rec.origin, Origin::Stream);
        assert_eq!(rec.events[0].module, "a b");
        let truth =
            b"\n{\"ts_ns\":5,\"pid\":1,\"tid\":1,\"depth\":0,\"event\":\"start\",\"module\":\"x\",\"found\":null}\n";
        let rec = load(truth).unwrap();
        assert_eq!((rec.origin, rec.events[0].kind), (Origin::Truth, EventKind::Start));
        let capture = b"# importprobe-capture v1\n@s[1, 5]: (1, 0, 1, a)\n@d[1, 6]: (1, 1)\n# end\n";
        assert_eq!(load(capture).unwrap().origin, Origin::Capture);
        let log = b"hello\nimport time: self [us] | cumulative | imported package\nimport time:   3 |   3 | a\n";
        let rec = load(log).unwrap();
        assert_eq!(rec.origin, Origin::ImportTime);
        assert_eq!(rec.events.len(), 2);
    }

    #[test]
    fn reads_utf16_as_powershell_writes_it() {
        let text =
            "import time: self [us] | cumulative | imported package\r\nimport time:         3 |          3 | é\r\n";
        let mut le = vec![0xff, 0xfe];
        le.extend(text.encode_utf16().flat_map(|u| u.to_le_bytes()));
        let rec = load(&le).unwrap();
        assert_eq!(rec.events[0].module, "é");
        let mut be = vec![0xfe, 0xff];
        be.extend(text.encode_utf16().flat_map(|u| u.to_be_bytes()));
        assert_eq!(load(&be).unwrap().events.len(), 2);
    }

    #[test]
    fn unknown_and_empty_inputs_say_what_to_do() {
        assert!(matches!(load(b""), Err(SourceError::Empty)));
        let e = load(b"hello world\n").unwrap_err().to_string();
        assert!(e.contains("--save-events") && e.contains("hello world"), "{e}");
        assert!(matches!(load(b"{oops\n"), Err(SourceError::Truth(_))));
    }
}
