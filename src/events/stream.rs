//! Parser for the event stream of `scripts/import-events.bt` (and its DTrace
//! twin): the one format in which raw probe firings leave the tracer.
//!
//! # Format (`importprobe-events v1`)
//!
//! Line oriented, bytes (not necessarily UTF-8 as a whole):
//!
//! ```text
//! # importprobe-events v1
//! E <ts_ns> <pid> <tid> <seq> <depth> start - <trunc> <len> <name>\n
//! E <ts_ns> <pid> <tid> <seq> <depth> done <found> <trunc> <len> <name>\n
//! # end
//! ```
//!
//! - Fields are separated by exactly one space and are unsigned decimals,
//!   except `event` (`start`/`done`), `found` (`-` on start, `0`/`1` on done)
//!   and `trunc` (`0`/`1`).
//! - `ts_ns` is CLOCK_MONOTONIC (bpftrace `nsecs`); `seq` counts events per
//!   thread from 0, so a lost event shows as a gap; `depth` is the number of
//!   open pairs on the thread when the event fired.
//! - The module name comes last and is length-prefixed: `<len>` raw bytes
//!   (which may contain spaces, tabs, newlines or text that looks like an
//!   event), then `\n`. `trunc` = 1 means the tracer cut the name at its
//!   string limit; the `len` bytes are then a prefix (newer bpftrace prints a
//!   `..` trailer after a cut string, which is accepted before the `\n`).
//! - Outside events, blank lines and bpftrace's `Attaching N probes...` are
//!   ignored; any other line is an error, and so is a missing header or
//!   `# end` trailer (bpftrace killed before `END`). `Lost N events` from
//!   bpftrace is reported as [`StreamError::Lost`].

use super::{EventKind, ImportEvent};
use std::io::BufRead;

/// The first line of a stream.
pub const HEADER: &str = "# importprobe-events v1";
/// The last line of a complete stream.
pub const TRAILER: &str = "# end";

/// Why a stream was rejected; `line` is the 1-based line where the problem
/// starts (newlines inside module names count as lines).
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("cannot read the event stream: {0}")]
    Io(#[from] std::io::Error),
    #[error("line {line}: expected the header `{HEADER}` before any event")]
    MissingHeader { line: usize },
    #[error("line {line}: unexpected line {text:?}")]
    UnexpectedLine { line: usize, text: String },
    #[error("line {line}: bad {field} field {value:?}")]
    BadField { line: usize, field: &'static str, value: String },
    #[error("line {line}: event line ends early: {reason}")]
    Truncated { line: usize, reason: &'static str },
    #[error("line {line}: module name of {len} bytes is not followed by a newline (bad length?)")]
    BadLength { line: usize, len: usize },
    #[error("line {line}: module name is not valid UTF-8")]
    BadUtf8 { line: usize },
    #[error("line {line}: thread {tid}: event number {got}, expected {expected} (events lost?)")]
    SequenceGap { line: usize, tid: u32, expected: u64, got: u64 },
    #[error("line {line}: the tracer lost {count} events")]
    Lost { line: usize, count: u64 },
    #[error("line {line}: data after the `{TRAILER}` trailer")]
    AfterTrailer { line: usize },
    #[error("the stream ends without the `{TRAILER}` trailer (tracer killed before END?)")]
    MissingTrailer,
}

/// Parses a whole stream; every event is checked, none is invented.
pub fn parse(mut input: impl BufRead) -> Result<Vec<ImportEvent>, StreamError> {
    let mut data = Vec::new();
    input.read_to_end(&mut data)?;
    Parser { data: &data, pos: 0, line: 1 }.run()
}

/// Puts the events back in firing order and checks that no thread lost one.
///
/// bpftrace drains its per-CPU buffers one after another, so a thread that
/// migrated between CPUs can appear out of order in the text (seen here:
/// event 1 of a thread printed before its event 0). Each event carries its
/// per-thread number, so the order is restored exactly; a number that is
/// missing after that is a lost event, reported at the line of the event
/// that follows the gap.
fn in_firing_order(mut events: Vec<(ImportEvent, u64, usize)>) -> Result<Vec<ImportEvent>, StreamError> {
    events.sort_by_key(|(ev, seq, _)| (ev.pid, ev.tid, *seq));
    let mut expected = 0;
    for (i, (ev, seq, line)) in events.iter().enumerate() {
        let first_of_thread = i == 0 || (events[i - 1].0.pid, events[i - 1].0.tid) != (ev.pid, ev.tid);
        if first_of_thread {
            expected = 0;
        }
        if *seq != expected {
            return Err(StreamError::SequenceGap { line: *line, tid: ev.tid, expected, got: *seq });
        }
        expected += 1;
    }
    // Across threads, the timestamps give the order; within a thread the
    // numbers already did (the sort is stable).
    events.sort_by_key(|(ev, _, _)| ev.ts_ns);
    Ok(events.into_iter().map(|(ev, _, _)| ev).collect())
}

struct Parser<'a> {
    data: &'a [u8],
    pos: usize,
    line: usize,
}

#[derive(PartialEq)]
enum State {
    BeforeHeader,
    Events,
    AfterTrailer,
}

impl Parser<'_> {
    fn run(mut self) -> Result<Vec<ImportEvent>, StreamError> {
        let mut events = Vec::new();
        let mut state = State::BeforeHeader;
        while self.pos < self.data.len() {
            let line = self.line;
            if self.data[self.pos..].starts_with(b"E ") {
                match state {
                    State::BeforeHeader => return Err(StreamError::MissingHeader { line }),
                    State::AfterTrailer => return Err(StreamError::AfterTrailer { line }),
                    State::Events => {}
                }
                let (ev, seq) = self.event()?;
                events.push((ev, seq, line));
                continue;
            }
            let text = self.plain_line();
            if text.is_empty() || is_attaching(text) {
                continue;
            }
            if let Some(count) = lost_events(text) {
                return Err(StreamError::Lost { line, count });
            }
            match (&state, text) {
                (State::BeforeHeader, t) if t == HEADER.as_bytes() => state = State::Events,
                (State::BeforeHeader, _) => return Err(StreamError::MissingHeader { line }),
                (State::Events, t) if t == TRAILER.as_bytes() => state = State::AfterTrailer,
                (State::AfterTrailer, _) => return Err(StreamError::AfterTrailer { line }),
                (State::Events, t) => {
                    return Err(StreamError::UnexpectedLine { line, text: String::from_utf8_lossy(t).into() })
                }
            }
        }
        match state {
            State::AfterTrailer => in_firing_order(events),
            State::BeforeHeader if self.data.is_empty() => Err(StreamError::MissingHeader { line: 1 }),
            State::BeforeHeader => Err(StreamError::MissingHeader { line: self.line }),
            State::Events => Err(StreamError::MissingTrailer),
        }
    }

    /// Consumes one line that is not an event, without its newline.
    fn plain_line(&mut self) -> &[u8] {
        let rest = &self.data[self.pos..];
        let end = rest.iter().position(|&b| b == b'\n');
        self.pos += end.map_or(rest.len(), |e| e + 1);
        self.line += 1;
        let text = &rest[..end.unwrap_or(rest.len())];
        text.strip_suffix(b"\r").unwrap_or(text)
    }

    /// Consumes one space-terminated field of an event line.
    fn field(&mut self, name: &'static str) -> Result<&[u8], StreamError> {
        let rest = &self.data[self.pos..];
        match rest.iter().position(|&b| b == b' ' || b == b'\n') {
            Some(i) if rest[i] == b' ' => {
                self.pos += i + 1;
                Ok(&rest[..i])
            }
            Some(_) => Err(StreamError::Truncated { line: self.line, reason: name }),
            None => Err(StreamError::Truncated { line: self.line, reason: name }),
        }
    }

    fn number<T: std::str::FromStr>(&mut self, name: &'static str) -> Result<T, StreamError> {
        let line = self.line;
        let raw = self.field(name)?;
        let bad = || StreamError::BadField { line, field: name, value: String::from_utf8_lossy(raw).into() };
        // Plain digits only: no sign, no spaces, no leading `+`.
        if raw.is_empty() || !raw.iter().all(u8::is_ascii_digit) {
            return Err(bad());
        }
        std::str::from_utf8(raw).ok().and_then(|s| s.parse().ok()).ok_or_else(bad)
    }

    fn event(&mut self) -> Result<(ImportEvent, u64), StreamError> {
        let line = self.line;
        self.pos += 2; // "E "
        let ts_ns = self.number("ts_ns")?;
        let pid = self.number("pid")?;
        let tid = self.number("tid")?;
        let seq = self.number("seq")?;
        let depth = self.number("depth")?;
        let bad = |field, raw: &[u8]| StreamError::BadField { line, field, value: String::from_utf8_lossy(raw).into() };
        let kind = match self.field("event")? {
            b"start" => EventKind::Start,
            b"done" => EventKind::Done,
            other => return Err(bad("event", other)),
        };
        let found = match (kind, self.field("found")?) {
            (EventKind::Start, b"-") => None,
            (EventKind::Done, b"0") => Some(false),
            (EventKind::Done, b"1") => Some(true),
            (_, other) => return Err(bad("found", other)),
        };
        let truncated = match self.field("trunc")? {
            b"0" => false,
            b"1" => true,
            other => return Err(bad("trunc", other)),
        };
        let len: usize = self.number("len")?;
        let rest = &self.data[self.pos..];
        if rest.len() < len {
            return Err(StreamError::Truncated { line, reason: "module name" });
        }
        let (name, after) = rest.split_at(len);
        let tail = if truncated && after.starts_with(b"..\n") { 3 } else { 1 };
        match after.first() {
            None => return Err(StreamError::Truncated { line, reason: "newline after module name" }),
            Some(b'\n') => {}
            Some(_) if tail == 3 => {}
            Some(_) => return Err(StreamError::BadLength { line, len }),
        }
        self.pos += len + tail;
        self.line += 1 + name.iter().filter(|&&b| b == b'\n').count();
        let module = module_name(name, truncated).ok_or(StreamError::BadUtf8 { line })?;
        Ok((ImportEvent { ts_ns, pid, tid, depth, kind, module, found, truncated }, seq))
    }
}

/// CPython hands the probe UTF-8; a cut may split the last character, which
/// is then dropped (the event says `truncated`).
fn module_name(raw: &[u8], truncated: bool) -> Option<String> {
    match std::str::from_utf8(raw) {
        Ok(s) => Some(s.to_owned()),
        Err(e) if truncated && e.error_len().is_none() => {
            Some(std::str::from_utf8(&raw[..e.valid_up_to()]).ok()?.to_owned())
        }
        Err(_) => None,
    }
}

/// bpftrace's `Attaching 3 probes...` / `Attaching 1 probe...`.
fn is_attaching(text: &[u8]) -> bool {
    let Some(rest) = text.strip_prefix(b"Attaching ") else { return false };
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    digits > 0 && matches!(&rest[digits..], b" probes..." | b" probe...")
}

/// bpftrace's `Lost 12 events`.
fn lost_events(text: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(text).ok()?;
    s.strip_prefix("Lost ")?.strip_suffix(" events")?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: &str, found: &str, depth: u32, seq: u64, name: &[u8]) -> Vec<u8> {
        let mut v = format!("E 1000{seq} 7 8 {seq} {depth} {kind} {found} 0 {} ", name.len()).into_bytes();
        v.extend_from_slice(name);
        v.push(b'\n');
        v
    }

    fn stream(body: &[u8]) -> Vec<u8> {
        let mut v = b"Attaching 4 probes...\n# importprobe-events v1\n".to_vec();
        v.extend_from_slice(body);
        v.extend_from_slice(b"# end\n\n\n");
        v
    }

    fn pair(name: &[u8]) -> Vec<u8> {
        [ev("start", "-", 0, 0, name), ev("done", "1", 0, 1, name)].concat()
    }

    #[test]
    fn parses_odd_names_byte_exact() {
        for name in
            [&b"with space"[..], b"tab\there", b"new\nline", b"0 done fake 1", b"E 1 2 3 4 0 done 1 0 1 x", b"\n"]
        {
            let events = parse(&stream(&pair(name))[..]).unwrap();
            assert_eq!(events.len(), 2, "{name:?}");
            assert_eq!(events[0].module.as_bytes(), name);
            assert_eq!(events[0].kind, EventKind::Start);
            assert_eq!(events[0].found, None);
            assert_eq!(events[1].found, Some(true));
            assert_eq!((events[1].ts_ns, events[1].pid, events[1].tid), (10001, 7, 8));
        }
    }

    #[test]
    fn nested_and_failed() {
        let body = [
            ev("start", "-", 0, 0, b"a"),
            ev("start", "-", 1, 1, b"a.b"),
            ev("done", "0", 1, 2, b"a.b"),
            ev("done", "1", 0, 3, b"a"),
        ]
        .concat();
        let events = parse(&stream(&body)[..]).unwrap();
        assert_eq!(events.iter().map(|e| e.depth).collect::<Vec<_>>(), [0, 1, 1, 0]);
        assert_eq!(events[2].found, Some(false));
    }

    #[test]
    fn truncated_names_are_flagged() {
        let body = b"E 5 1 1 0 0 start - 1 3 abc\nE 6 1 1 1 0 done 1 1 3 abc..\n";
        let events = parse(&stream(body)[..]).unwrap();
        assert!(events.iter().all(|e| e.truncated && e.module == "abc"));
        // A cut inside a multi-byte character drops the partial character.
        let mut body = b"E 5 1 1 0 0 start - 1 2 a".to_vec();
        body.extend_from_slice(&"é".as_bytes()[..1]);
        body.push(b'\n');
        let events = parse(&stream(&body)[..]).unwrap();
        assert_eq!(events[0].module, "a");
        // ... but only when the event says it was cut.
        let at = body.windows(4).position(|w| w == b" 1 2").unwrap();
        body[at + 1] = b'0';
        assert!(matches!(parse(&stream(&body)[..]), Err(StreamError::BadUtf8 { .. })));
    }

    #[test]
    fn restores_the_order_of_a_thread_that_migrated_between_cpus() {
        // bpftrace printed the done (from one CPU's buffer) before the start.
        let body = [ev("done", "1", 0, 1, b"mod"), ev("start", "-", 0, 0, b"mod")].concat();
        let events = parse(&stream(&body)[..]).unwrap();
        assert_eq!(events.iter().map(|e| e.kind).collect::<Vec<_>>(), [EventKind::Start, EventKind::Done]);
        // A number still missing after reordering is a lost event.
        let body = [ev("done", "1", 0, 2, b"mod"), ev("start", "-", 0, 0, b"mod")].concat();
        assert!(matches!(
            parse(&stream(&body)[..]),
            Err(StreamError::SequenceGap { line: 3, expected: 1, got: 2, .. })
        ));
    }

    #[test]
    fn rejects_corruption() {
        let ok = stream(&pair(b"mod"));
        assert!(parse(&ok[..]).is_ok());
        type Case = (Vec<u8>, fn(&StreamError) -> bool);
        let cases: Vec<Case> = vec![
            // Length one too short: the name is followed by a byte that is not a newline.
            (stream(b"E 1 1 1 0 0 start - 0 2 mod\n"), |e| matches!(e, StreamError::BadLength { line: 3, .. })),
            // Length too long swallows the next line; the missing trailer shows it.
            (stream(b"E 1 1 1 0 0 start - 0 9 mod\n"), |e| matches!(e, StreamError::MissingTrailer)),
            (stream(b"E 1 1 1 0 0 start - 0 7 mod\n"), |e| matches!(e, StreamError::BadLength { .. })),
            // Stream cut inside the name.
            (b"# importprobe-events v1\nE 1 1 1 0 0 start - 0 9 mo".to_vec(), |e| {
                matches!(e, StreamError::Truncated { line: 2, .. })
            }),
            // Stream cut inside the fields.
            (b"# importprobe-events v1\nE 1 1 1 0".to_vec(), |e| matches!(e, StreamError::Truncated { .. })),
            (stream(b"E 1 1 1 0 0\n"), |e| matches!(e, StreamError::Truncated { line: 3, .. })),
            (stream(b"E 1 -1 1 0 0 start - 0 1 a\n"), |e| matches!(e, StreamError::BadField { field: "pid", .. })),
            (stream(b"E 1 1 1 0 0 begin - 0 1 a\n"), |e| matches!(e, StreamError::BadField { field: "event", .. })),
            (stream(b"E 1 1 1 0 0 done - 0 1 a\n"), |e| matches!(e, StreamError::BadField { field: "found", .. })),
            (stream(b"E 1 1 1 0 0 start 1 0 1 a\n"), |e| matches!(e, StreamError::BadField { field: "found", .. })),
            (stream(b"E 1 1 1 0 0 done 2 0 1 a\n"), |e| matches!(e, StreamError::BadField { field: "found", .. })),
            (stream(b"E 1 1 1 0 0 start - 2 1 a\n"), |e| matches!(e, StreamError::BadField { field: "trunc", .. })),
            (stream(b"E 1 1 1 0 0 start - 0 x a\n"), |e| matches!(e, StreamError::BadField { field: "len", .. })),
            (stream(b"E 1 1 1 0 0  start - 0 1 a\n"), |e| matches!(e, StreamError::BadField { .. })),
            (stream(b"E 99999999999999999999999 1 1 0 0 start - 0 1 a\n"), |e| {
                matches!(e, StreamError::BadField { field: "ts_ns", .. })
            }),
            // A lost event (seq 0 then 2).
            (stream(&[ev("start", "-", 0, 0, b"a"), ev("done", "1", 0, 2, b"a")].concat()), |e| {
                matches!(e, StreamError::SequenceGap { expected: 1, got: 2, .. })
            }),
            (stream(b"Lost 3 events\n"), |e| matches!(e, StreamError::Lost { count: 3, .. })),
            (stream(b"0 done fake 1\n"), |e| matches!(e, StreamError::UnexpectedLine { line: 3, .. })),
            (pair(b"a"), |e| matches!(e, StreamError::MissingHeader { line: 1 })),
            (Vec::new(), |e| matches!(e, StreamError::MissingHeader { .. })),
            ([b"# importprobe-events v1\n".to_vec(), pair(b"a")].concat(), |e| {
                matches!(e, StreamError::MissingTrailer)
            }),
            ([ok.clone(), pair(b"a")].concat(), |e| matches!(e, StreamError::AfterTrailer { .. })),
        ];
        for (input, check) in cases {
            let err = parse(&input[..]).expect_err(&String::from_utf8_lossy(&input));
            assert!(check(&err), "{err:?} for {:?}", String::from_utf8_lossy(&input));
        }
    }

    #[test]
    fn line_numbers_count_newlines_in_names() {
        let body = [pair(b"x\ny\nz"), b"garbage\n".to_vec()].concat();
        // header 1-2, events 3-5 and 6-8, garbage on 9
        match parse(&stream(&body)[..]) {
            Err(StreamError::UnexpectedLine { line, .. }) => assert_eq!(line, 9),
            other => panic!("{other:?}"),
        }
    }
}
