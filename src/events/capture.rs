//! The `importprobe-capture` dump: what `scripts/import-capture.bt` (the
//! collector `importprobe trace` runs by default) prints at END after
//! keeping every probe firing in kernel maps, one map update per event.
//!
//! # Format (`importprobe-capture v1`)
//!
//! ```text
//! # importprobe-capture v1
//! @s[<tid>, <ts_ns>]: (<pid>, <N>, <len>, <name>)
//! @d[<tid>, <ts_ns>]: (<pid>, <found>)
//! # end
//! ```
//!
//! `@s` holds the starts, `@d` the dones, keyed by thread and timestamp
//! (unique per event on a thread), in any order: bpftrace prints maps sorted
//! by key, DTrace by its own rules. `N` and `len` are the stream's name flag
//! and exact byte count (see [`super::stream`]): the name is followed by
//! exactly `)\n`. Depth and order are rebuilt here from the timestamps.

use super::cursor::{is_attach_line, lossy, lost_events, Cursor, SyntaxError};
use super::{EventKind, ImportEvent, NameState, Origin, Recording};
use std::collections::HashMap;

/// The first line of a dump.
pub const HEADER: &str = "# importprobe-capture v1";
/// The last line of a complete dump.
pub const TRAILER: &str = "# end";

/// Why a dump was rejected.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("line {line}: expected the header `{HEADER}` first")]
    MissingHeader { line: usize },
    #[error(transparent)]
    Syntax(#[from] SyntaxError),
    #[error("line {line}: two events of thread {tid} at {ts_ns} ns")]
    Duplicate { line: usize, tid: u32, ts_ns: u64 },
    #[error("the dump ends without `{TRAILER}`: the tracer was stopped before it printed its maps")]
    MissingTrailer,
}

/// Parses a dump into a recording (each thread's events in firing order).
pub fn parse(data: &[u8]) -> Result<Recording, CaptureError> {
    let mut c = Cursor::new(data);
    let mut started = false;
    let mut ended = false;
    let mut rec = Recording::new(Origin::Capture, Vec::new());
    let mut seen: HashMap<(u32, u64), usize> = HashMap::new();
    while !c.at_end() {
        let line = c.line();
        let kind = if c.eat(b"@s[") {
            Some(EventKind::Start)
        } else if c.eat(b"@d[") {
            Some(EventKind::Done)
        } else {
            None
        };
        let Some(kind) = kind else {
            let text = c.plain_line();
            if text.is_empty() || is_attach_line(text) {
                continue;
            }
            if let Some(n) = lost_events(text) {
                rec.lost_events += n;
            } else if !started && text == HEADER.as_bytes() {
                started = true;
            } else if !started {
                return Err(CaptureError::MissingHeader { line });
            } else if text == TRAILER.as_bytes() {
                ended = true;
            } else if !ended {
                // bpftrace prints `@name: ...` for maps a script forgot to
                // clear; anything else is not ours.
                return Err(SyntaxError::UnexpectedLine { line, text: lossy(text) }.into());
            }
            continue;
        };
        if !started {
            return Err(CaptureError::MissingHeader { line });
        }
        let ev = record(&mut c, kind)?;
        match seen.get(&(ev.tid, ev.ts_ns)) {
            // A map holds one entry per key: the same entry printed again
            // is the dump repeating itself (bpftrace 0.17, its END cut short,
            // printed @s from END and again at exit), not an event.
            Some(&i) if rec.events[i] == ev => continue,
            Some(_) => return Err(CaptureError::Duplicate { line, tid: ev.tid, ts_ns: ev.ts_ns }),
            None => {
                seen.insert((ev.tid, ev.ts_ns), rec.events.len());
            }
        }
        rec.events.push(ev);
    }
    if !started {
        return Err(CaptureError::MissingHeader { line: 1 });
    }
    if !ended {
        return Err(CaptureError::MissingTrailer);
    }
    rec.events.sort_by_key(|e| (e.ts_ns, e.tid));
    set_depths(&mut rec.events);
    Ok(rec)
}

/// One record after its `@s[` / `@d[`.
fn record(c: &mut Cursor, kind: EventKind) -> Result<ImportEvent, SyntaxError> {
    let line = c.line();
    let tid = c.number("tid", b", ")?;
    let ts_ns = c.number("ts_ns", b"]: (")?;
    if kind == EventKind::Done {
        let pid = c.number("pid", b", ")?;
        let found = match c.field("found", b")\n")? {
            b"0" => false,
            b"1" => true,
            other => return Err(SyntaxError::BadField { line, field: "found", value: lossy(other) }),
        };
        return Ok(ImportEvent::done(ts_ns, pid, tid, 0, String::new(), found));
    }
    let pid = c.number("pid", b", ")?;
    let flag: u8 = c.number("name flag", b", ")?;
    let name = NameState::from_flag(flag).ok_or_else(|| SyntaxError::BadField {
        line,
        field: "name flag",
        value: flag.to_string(),
    })?;
    let len: usize = c.number("len", b", ")?;
    let module = c.name(len, name, b")\n")?;
    Ok(ImportEvent { name, ..ImportEvent::start(ts_ns, pid, tid, 0, module) })
}

/// Depth of each event from its thread's open starts (what the streaming
/// script counts in the kernel), and each done's module from the start it
/// closes (the capture keeps names once per pair).
fn set_depths(events: &mut [ImportEvent]) {
    let mut open: HashMap<u32, Vec<(String, NameState)>> = HashMap::new();
    for e in events.iter_mut() {
        let stack = open.entry(e.tid).or_default();
        match e.kind {
            EventKind::Start => {
                e.depth = stack.len() as u32;
                stack.push((e.module.clone(), e.name));
            }
            _ => match stack.pop() {
                Some((module, name)) => {
                    e.depth = stack.len() as u32;
                    e.module = module;
                    e.name = name;
                }
                // Began before tracing: its name was never captured.
                None => e.name = NameState::Missing,
            },
        }
    }
}

/// Adds a warning when the capture holds as many starts as its maps could:
/// later imports may have been dropped.
pub fn check_limit(rec: &mut Recording, max_imports: usize) {
    let starts = rec.events.iter().filter(|e| e.kind == EventKind::Start).count();
    if starts >= max_imports {
        rec.warnings.push(format!(
            "the capture filled its maps ({starts} imports, the limit): imports after that were not recorded; rerun with a larger --max-imports"
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DUMP: &[u8] = b"Attaching 4 probes...\n# importprobe-capture v1\n\
        @s[7, 100]: (7, 0, 3, a.b)\n@s[7, 110]: (7, 0, 1, a)\n@s[8, 150]: (7, 0, 8, new\nline)\n\
        @s[7, 300]: (7, 1, 3, abc..)\n@s[7, 400]: (7, 2, 0, )\n\n\
        @d[7, 120]: (7, 1)\n@d[7, 200]: (7, 1)\n@d[8, 160]: (7, 0)\n@d[7, 310]: (7, 1)\n@d[7, 410]: (7, 0)\n\n# end\n";

    #[test]
    fn rebuilds_order_depths_and_names() {
        let rec = parse(DUMP).unwrap();
        let got: Vec<(u64, u32, EventKind, &str, u32)> =
            rec.events.iter().map(|e| (e.ts_ns, e.tid, e.kind, e.module.as_str(), e.depth)).collect();
        assert_eq!(
            got,
            [
                (100, 7, EventKind::Start, "a.b", 0),
                (110, 7, EventKind::Start, "a", 1),
                (120, 7, EventKind::Done, "a", 1),
                (150, 8, EventKind::Start, "new\nline", 0),
                (160, 8, EventKind::Done, "new\nline", 0),
                (200, 7, EventKind::Done, "a.b", 0),
                (300, 7, EventKind::Start, "abc", 0),
                (310, 7, EventKind::Done, "abc", 0),
                (400, 7, EventKind::Start, "", 0),
                (410, 7, EventKind::Done, "", 0),
            ]
        );
        assert_eq!(rec.events[6].name, NameState::Cut);
        assert_eq!(rec.events[9].name, NameState::Missing);
        assert_eq!(rec.events[4].found, Some(false));
        let f = super::super::forest::Forest::build(&rec);
        assert!(f.anomalies.is_empty(), "{:?}", f.anomalies);
    }

    #[test]
    fn hostile_names_cannot_forge_records() {
        let name = b"x)\n@s[7, 999]: (7, 0, 1, y";
        let mut dump = b"# importprobe-capture v1\n".to_vec();
        dump.extend_from_slice(format!("@s[7, 1]: (7, 0, {}, ", name.len()).as_bytes());
        dump.extend_from_slice(name);
        dump.extend_from_slice(b")\n@d[7, 2]: (7, 1)\n# end\n");
        let rec = parse(&dump).unwrap();
        assert_eq!(rec.events.len(), 2);
        assert_eq!(rec.events[0].module.as_bytes(), name);
    }

    #[test]
    fn an_entry_the_dump_prints_twice_is_one_event() {
        let twice =
            b"# importprobe-capture v1\n@s[1, 2]: (1, 0, 1, a)\n@s[1, 2]: (1, 0, 1, a)\n@d[1, 5]: (1, 1)\n# end\n";
        let rec = parse(twice).unwrap();
        assert_eq!(rec.events.len(), 2);
        assert_eq!(rec.lost_events, 0);
    }

    #[test]
    fn broken_dumps_are_errors() {
        assert!(matches!(parse(b"@s[1, 2]: (1, 0, 1, a)\n"), Err(CaptureError::MissingHeader { .. })));
        assert!(matches!(
            parse(b"# importprobe-capture v1\n@s[1, 2]: (1, 0, 1, a)\n"),
            Err(CaptureError::MissingTrailer)
        ));
        let dup = b"# importprobe-capture v1\n@s[1, 2]: (1, 0, 1, a)\n@d[1, 2]: (1, 1)\n# end\n";
        assert!(matches!(parse(dup), Err(CaptureError::Duplicate { .. })));
        let other_name = b"# importprobe-capture v1\n@s[1, 2]: (1, 0, 1, a)\n@s[1, 2]: (1, 0, 1, b)\n# end\n";
        assert!(matches!(parse(other_name), Err(CaptureError::Duplicate { .. })));
        let bad_len = b"# importprobe-capture v1\n@s[1, 2]: (1, 0, 5, a)\n# end\n";
        assert!(matches!(parse(bad_len), Err(CaptureError::Syntax(_))));
        let junk = b"# importprobe-capture v1\n@x: 3\n# end\n";
        assert!(matches!(parse(junk), Err(CaptureError::Syntax(SyntaxError::UnexpectedLine { .. }))));
    }

    #[test]
    fn a_full_capture_says_so() {
        let mut rec = parse(DUMP).unwrap();
        check_limit(&mut rec, 10);
        assert!(rec.warnings.is_empty());
        check_limit(&mut rec, 4);
        assert!(rec.warnings[0].contains("filled its maps"));
    }
}
