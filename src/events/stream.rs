//! The `importprobe-events` stream: the format in which raw probe firings
//! leave a streaming tracer (`scripts/import-events.bt` and its DTrace twin)
//! and in which `importprobe trace --save-events` keeps them.
//!
//! # Format (`importprobe-events v2`)
//!
//! Line oriented, bytes (not necessarily UTF-8 as a whole):
//!
//! ```text
//! # importprobe-events v2
//! P <pid> <ppid> <len> <command>\n                                    (optional)
//! E <ts_ns> <pid> <tid> <seq> <depth> start - <N> <len> <name>\n
//! E <ts_ns> <pid> <tid> <seq> <depth> done <found> <N> <len> <name>\n
//! # end
//! ```
//!
//! - Fields are separated by exactly one space and are unsigned decimals,
//!   except `start`/`done`, `found` (`-` on start, `0`/`1` on done) and the
//!   name flag `N`: 0 the full name, 1 cut at the tracer's string limit (the
//!   `len` bytes are a prefix; newer bpftrace prints a `..` trailer after it,
//!   which is accepted), 2 no name (the probe got NULL; `len` is 0).
//! - `ts_ns` is CLOCK_MONOTONIC; `seq` counts events per thread from 0, so a
//!   gap shows lost events; `depth` is the number of open pairs on the
//!   thread when the event fired.
//! - The module name comes last and is length-prefixed: any byte a name may
//!   hold (spaces, tabs, newlines, text that looks like an event) stays
//!   unambiguous.
//! - `P` lines name a process (`ppid` 0 = unknown); importprobe writes them,
//!   the scripts do not.
//! - Version 1 (`# importprobe-events v1`) is the same with a `trunc` flag
//!   of 0/1 in place of `N`.
//! - Blank lines and bpftrace's attach line are ignored. bpftrace's `Lost N
//!   events` and gaps in `seq` are counted as lost events, and a stream cut
//!   short (no `# end`: the tracer was killed before END) keeps what it has,
//!   with a warning. Anything else that does not parse is an error naming
//!   its line: a corrupt stream is never half-guessed.

use super::cursor::{is_attach_line, lossy, lost_events, Cursor, SyntaxError};
use super::{EventKind, ImportEvent, NameState, Origin, ProcessInfo, Recording};
use std::collections::HashMap;
use std::io::Write;

/// The first line of a stream this version writes.
pub const HEADER: &str = "# importprobe-events v2";
/// The first line of a version 1 stream (still read).
pub const HEADER_V1: &str = "# importprobe-events v1";
/// The last line of a complete stream.
pub const TRAILER: &str = "# end";

/// Why a stream was rejected.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("line {line}: expected the header `{HEADER}` before any event")]
    MissingHeader { line: usize },
    #[error(transparent)]
    Syntax(#[from] SyntaxError),
    #[error("line {line}: data after the `{TRAILER}` trailer")]
    AfterTrailer { line: usize },
}

/// Parses a whole stream into a recording; every event is checked, none is
/// invented. Each thread's events come out in firing order.
pub fn parse(data: &[u8]) -> Result<Recording, StreamError> {
    let mut c = Cursor::new(data);
    let mut version = None;
    let mut ended = false;
    let mut events: Vec<(ImportEvent, u64, usize)> = Vec::new();
    let mut rec = Recording::new(Origin::Stream, Vec::new());
    while !c.at_end() {
        let line = c.line();
        if c.rest().starts_with(b"E ") || c.rest().starts_with(b"P ") {
            if ended {
                return Err(StreamError::AfterTrailer { line });
            }
            let Some(v) = version else { return Err(StreamError::MissingHeader { line }) };
            match event_or_process(&mut c, v) {
                Ok(Item::Event(ev, seq)) => events.push((ev, seq, line)),
                Ok(Item::Process(p)) => rec.processes.push(p),
                // The tracer was killed while writing its last line.
                Err(SyntaxError::Truncated { .. }) if !c.rest().contains(&b'\n') => {
                    rec.warnings
                        .push(format!("line {line}: the stream ends inside an event (tracer killed?); it is left out"));
                    break;
                }
                Err(e) => return Err(e.into()),
            }
            continue;
        }
        let text = c.plain_line();
        if text.is_empty() || is_attach_line(text) {
            continue;
        }
        if let Some(n) = lost_events(text) {
            rec.lost_events += n;
            continue;
        }
        match (version, ended) {
            (None, _) if text == HEADER.as_bytes() => version = Some(2),
            (None, _) if text == HEADER_V1.as_bytes() => version = Some(1),
            (None, _) => return Err(StreamError::MissingHeader { line }),
            (Some(_), false) if text == TRAILER.as_bytes() => ended = true,
            (Some(_), true) => return Err(StreamError::AfterTrailer { line }),
            (Some(_), false) => return Err(SyntaxError::UnexpectedLine { line, text: lossy(text) }.into()),
        }
    }
    if version.is_none() {
        return Err(StreamError::MissingHeader { line: 1 });
    }
    if !ended {
        rec.warnings.push(format!(
            "the stream ends without `{TRAILER}`: the tracer stopped before its END block, so the last events may be missing"
        ));
    }
    let (ordered, gaps) = in_firing_order(events);
    if gaps > 0 {
        rec.warnings.push(format!("{gaps} gap(s) in the per-thread event numbers: events were lost"));
    }
    rec.lost_events += gaps_lost(&ordered);
    rec.events = ordered.into_iter().map(|(e, _, _)| e).collect();
    Ok(rec)
}

enum Item {
    Event(ImportEvent, u64),
    Process(ProcessInfo),
}

fn event_or_process(c: &mut Cursor, version: u8) -> Result<Item, SyntaxError> {
    let line = c.line();
    if c.eat(b"P ") {
        let pid = c.number("pid", b" ")?;
        let ppid: u32 = c.number("ppid", b" ")?;
        let len = c.number("len", b" ")?;
        let command = c.name(len, NameState::Full, b"\n")?;
        return Ok(Item::Process(ProcessInfo { pid, ppid: (ppid != 0).then_some(ppid), command }));
    }
    c.eat(b"E ");
    let ts_ns = c.number("ts_ns", b" ")?;
    let pid = c.number("pid", b" ")?;
    let tid = c.number("tid", b" ")?;
    let seq = c.number("seq", b" ")?;
    let depth = c.number("depth", b" ")?;
    let bad = |field, raw: &[u8]| SyntaxError::BadField { line, field, value: lossy(raw) };
    let kind = match c.field("event", b" ")? {
        b"start" => EventKind::Start,
        b"done" => EventKind::Done,
        other => return Err(bad("event", other)),
    };
    let found = match (kind, c.field("found", b" ")?) {
        (EventKind::Start, b"-") => None,
        (EventKind::Done, b"0") => Some(false),
        (EventKind::Done, b"1") => Some(true),
        (_, other) => return Err(bad("found", other)),
    };
    let flag_field = if version == 1 { "trunc" } else { "name flag" };
    let raw = c.field(flag_field, b" ")?;
    let name = match (version, raw) {
        (_, b"0") => NameState::Full,
        (_, b"1") => NameState::Cut,
        (2, b"2") => NameState::Missing,
        (_, other) => return Err(bad(flag_field, other)),
    };
    let len: usize = c.number("len", b" ")?;
    if name == NameState::Missing && len != 0 {
        return Err(bad("len", len.to_string().as_bytes()));
    }
    let module = c.name(len, name, b"\n")?;
    Ok(Item::Event(ImportEvent { ts_ns, pid, tid, depth, kind, module, found, name }, seq))
}

/// Puts the events back in firing order.
///
/// bpftrace and DTrace drain their per-CPU buffers one after another, so a
/// thread that migrated between CPUs can appear out of order in the text
/// (seen here: event 1 of a thread printed before its event 0). Each event
/// carries its per-thread number, so the order is restored exactly. Returns
/// the events and the number of gaps left after that.
fn in_firing_order(mut events: Vec<(ImportEvent, u64, usize)>) -> (Vec<(ImportEvent, u64, usize)>, usize) {
    events.sort_by_key(|(ev, seq, _)| (ev.pid, ev.tid, *seq));
    let mut gaps = 0;
    for w in events.windows(2) {
        let ((a, sa, _), (b, sb, _)) = (&w[0], &w[1]);
        if (a.pid, a.tid) == (b.pid, b.tid) && *sb != sa + 1 {
            gaps += 1;
        }
    }
    // Across threads the timestamps give the order; within a thread the
    // numbers already did (the sort is stable).
    events.sort_by_key(|(ev, _, _)| ev.ts_ns);
    (events, gaps)
}

/// Events missing from the per-thread numbering (each thread from 0).
fn gaps_lost(events: &[(ImportEvent, u64, usize)]) -> u64 {
    let mut last: HashMap<(u32, u32), (u64, u64)> = HashMap::new(); // (max seq, count)
    for (e, seq, _) in events {
        let entry = last.entry((e.pid, e.tid)).or_insert((0, 0));
        entry.0 = entry.0.max(*seq);
        entry.1 += 1;
    }
    last.values().map(|&(max, count)| (max + 1).saturating_sub(count)).sum()
}

/// Writes a recording as an `importprobe-events v2` stream (processes
/// first), numbering each thread's events anew.
pub fn write(rec: &Recording, out: &mut impl Write) -> std::io::Result<()> {
    writeln!(out, "{HEADER}")?;
    for p in &rec.processes {
        write!(out, "P {} {} {} ", p.pid, p.ppid.unwrap_or(0), p.command.len())?;
        out.write_all(p.command.as_bytes())?;
        out.write_all(b"\n")?;
    }
    let mut seq: HashMap<(u32, u32), u64> = HashMap::new();
    for e in rec.events.iter().filter(|e| e.kind != EventKind::Cached) {
        let n = seq.entry((e.pid, e.tid)).or_default();
        let found = match e.found {
            None => "-",
            Some(true) => "1",
            Some(false) => "0",
        };
        let kind = if e.kind == EventKind::Start { "start" } else { "done" };
        write!(
            out,
            "E {} {} {} {} {} {kind} {found} {} {} ",
            e.ts_ns,
            e.pid,
            e.tid,
            n,
            e.depth,
            e.name.flag(),
            e.module.len()
        )?;
        out.write_all(e.module.as_bytes())?;
        out.write_all(b"\n")?;
        *n += 1;
    }
    if rec.lost_events > 0 {
        writeln!(out, "Lost {} events", rec.lost_events)?;
    }
    writeln!(out, "{TRAILER}")
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
        let mut v = b"Attaching 4 probes...\n# importprobe-events v2\n".to_vec();
        v.extend_from_slice(body);
        v.extend_from_slice(b"# end\n\n\n");
        v
    }

    fn pair(name: &[u8]) -> Vec<u8> {
        [ev("start", "-", 0, 0, name), ev("done", "1", 0, 1, name)].concat()
    }

    fn events(data: &[u8]) -> Vec<ImportEvent> {
        parse(data).unwrap().events
    }

    #[test]
    fn parses_odd_names_byte_exact() {
        for name in
            [&b"with space"[..], b"tab\there", b"new\nline", b"0 done fake 1", b"E 1 2 3 4 0 done 1 0 1 x", b"\n"]
        {
            let events = events(&stream(&pair(name)));
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
        let events = events(&stream(&body));
        assert_eq!(events.iter().map(|e| e.depth).collect::<Vec<_>>(), [0, 1, 1, 0]);
        assert_eq!(events[2].found, Some(false));
    }

    #[test]
    fn cut_and_missing_names_are_flagged() {
        let body = b"E 5 1 1 0 0 start - 1 3 abc\nE 6 1 1 1 0 done 1 1 3 abc..\nE 7 1 1 2 0 start - 2 0 \nE 8 1 1 3 0 done 0 2 0 \n";
        let evs = events(&stream(body));
        assert!(evs[..2].iter().all(|e| e.name == NameState::Cut && e.module == "abc"));
        assert!(evs[2..].iter().all(|e| e.name == NameState::Missing && e.module.is_empty()));
        // A cut inside a multi-byte character drops the partial character.
        let mut body = b"E 5 1 1 0 0 start - 1 2 a".to_vec();
        body.extend_from_slice(&"é".as_bytes()[..1]);
        body.push(b'\n');
        assert_eq!(events(&stream(&body))[0].module, "a");
        // ... but only when the event says it was cut.
        let at = body.windows(4).position(|w| w == b" 1 2").unwrap();
        body[at + 1] = b'0';
        assert!(matches!(parse(&stream(&body)), Err(StreamError::Syntax(SyntaxError::BadUtf8 { .. }))));
        // A missing name has no bytes.
        assert!(parse(&stream(b"E 7 1 1 0 0 start - 2 1 x\n")).is_err());
    }

    #[test]
    fn version_1_is_still_read() {
        let v1 = b"# importprobe-events v1\nE 5 1 1 0 0 start - 1 3 abc\nE 6 1 1 1 0 done 1 0 3 abc\n# end\n";
        let rec = parse(v1).unwrap();
        assert_eq!(rec.events.len(), 2);
        assert_eq!(rec.events[0].name, NameState::Cut);
        let bad = b"# importprobe-events v1\nE 5 1 1 0 0 start - 2 0 \n# end\n";
        assert!(parse(bad).is_err(), "no missing-name flag in v1");
    }

    #[test]
    fn restores_the_order_of_a_thread_that_migrated_between_cpus() {
        let body = [ev("done", "1", 0, 1, b"mod"), ev("start", "-", 0, 0, b"mod")].concat();
        let events = events(&stream(&body));
        assert_eq!(events.iter().map(|e| e.kind).collect::<Vec<_>>(), [EventKind::Start, EventKind::Done]);
    }

    #[test]
    fn lost_events_and_gaps_are_counted_not_hidden() {
        let body = [ev("start", "-", 0, 0, b"a"), b"Lost 3 events\n".to_vec(), ev("done", "1", 0, 2, b"a")].concat();
        let rec = parse(&stream(&body)).unwrap();
        assert_eq!(rec.events.len(), 2);
        assert_eq!(rec.lost_events, 3 + 1, "bpftrace's count plus one missing number");
        assert!(rec.warnings.iter().any(|w| w.contains("gap")), "{:?}", rec.warnings);
    }

    #[test]
    fn a_stream_cut_short_keeps_what_it_has() {
        let cut = [b"# importprobe-events v2\n".to_vec(), pair(b"a"), b"E 1 1 1 0 0 start - 0 9 mo".to_vec()].concat();
        let rec = parse(&cut).unwrap();
        assert_eq!(rec.events.len(), 2);
        assert_eq!(rec.warnings.len(), 2, "{:?}", rec.warnings);
        let no_trailer = [b"# importprobe-events v2\n".to_vec(), pair(b"a")].concat();
        assert!(parse(&no_trailer).unwrap().warnings[0].contains("without `# end`"));
    }

    #[test]
    fn processes_round_trip_through_the_writer() {
        let mut rec = parse(&stream(&pair(b"new\nline"))).unwrap();
        rec.processes.push(ProcessInfo { pid: 7, ppid: Some(1), command: "python3 -c 'import a'".into() });
        let mut out = Vec::new();
        write(&rec, &mut out).unwrap();
        let back = parse(&out).unwrap();
        assert_eq!(back.events, rec.events);
        assert_eq!(back.processes, rec.processes);
        assert!(back.warnings.is_empty());
    }

    #[test]
    fn rejects_corruption() {
        let ok = stream(&pair(b"mod"));
        assert!(parse(&ok).is_ok());
        type Case = (Vec<u8>, fn(&StreamError) -> bool);
        use StreamError::Syntax as S;
        let cases: Vec<Case> = vec![
            // Length one too short: the name is followed by a byte that is not a newline.
            (stream(b"E 1 1 1 0 0 start - 0 2 mod\n"), |e| matches!(e, S(SyntaxError::BadLength { line: 3, .. }))),
            // Length too long runs into the next event.
            (stream(b"E 1 1 1 0 0 start - 0 9 mod\nE 2 1 1 1 0 done 1 0 3 mod\n"), |e| {
                matches!(e, S(SyntaxError::BadLength { line: 3, .. }))
            }),
            (stream(b"E 1 1 1 0 0 start - 0 7 mod\n"), |e| matches!(e, S(SyntaxError::BadLength { .. }))),
            (stream(b"E 1 1 1 0 0\n"), |e| matches!(e, S(SyntaxError::Truncated { line: 3, .. }))),
            (stream(b"E 1 -1 1 0 0 start - 0 1 a\n"), |e| matches!(e, S(SyntaxError::BadField { field: "pid", .. }))),
            (stream(b"E 1 1 1 0 0 begin - 0 1 a\n"), |e| matches!(e, S(SyntaxError::BadField { field: "event", .. }))),
            (stream(b"E 1 1 1 0 0 done - 0 1 a\n"), |e| matches!(e, S(SyntaxError::BadField { field: "found", .. }))),
            (stream(b"E 1 1 1 0 0 start 1 0 1 a\n"), |e| matches!(e, S(SyntaxError::BadField { field: "found", .. }))),
            (stream(b"E 1 1 1 0 0 done 2 0 1 a\n"), |e| matches!(e, S(SyntaxError::BadField { field: "found", .. }))),
            (stream(b"E 1 1 1 0 0 start - 3 1 a\n"), |e| matches!(e, S(SyntaxError::BadField { .. }))),
            (stream(b"E 1 1 1 0 0 start - 0 x a\n"), |e| matches!(e, S(SyntaxError::BadField { field: "len", .. }))),
            (stream(b"E 1 1 1 0 0  start - 0 1 a\n"), |e| matches!(e, S(SyntaxError::BadField { .. }))),
            (stream(b"E 99999999999999999999999 1 1 0 0 start - 0 1 a\n"), |e| {
                matches!(e, S(SyntaxError::BadField { field: "ts_ns", .. }))
            }),
            (stream(b"0 done fake 1\n"), |e| matches!(e, S(SyntaxError::UnexpectedLine { line: 3, .. }))),
            (pair(b"a"), |e| matches!(e, StreamError::MissingHeader { line: 1 })),
            (Vec::new(), |e| matches!(e, StreamError::MissingHeader { .. })),
            ([ok.clone(), pair(b"a")].concat(), |e| matches!(e, StreamError::AfterTrailer { .. })),
        ];
        for (input, check) in cases {
            let err = parse(&input).expect_err(&String::from_utf8_lossy(&input));
            assert!(check(&err), "{err:?} for {:?}", String::from_utf8_lossy(&input));
        }
    }

    #[test]
    fn line_numbers_count_newlines_in_names() {
        let body = [pair(b"x\ny\nz"), b"garbage\n".to_vec()].concat();
        // header 1-2, events 3-5 and 6-8, garbage on 9
        match parse(&stream(&body)) {
            Err(StreamError::Syntax(SyntaxError::UnexpectedLine { line, .. })) => assert_eq!(line, 9),
            other => panic!("{other:?}"),
        }
    }
}
