//! bpftrace reads its per-CPU output buffers one after another, so a thread
//! that migrated between CPUs can show its events out of firing order in
//! the `import-events` stream (seen here: `thread 27344: event number 1,
//! expected 0`). The stream parser rejects that as a gap. Each event carries
//! its timestamp and per-thread number, so the order can be restored before
//! parsing: only when the plain parse reports a gap, and only by moving
//! whole event records; a real lost event still shows as a gap.

use crate::events::stream::{self, StreamError};
use crate::events::ImportEvent;

/// Said in a trace check's details when the order had to be restored.
pub const NOTE: &str =
    "bpftrace printed some events out of order (per-CPU buffers); order restored by timestamp and event number";

/// Parses a stream; on a sequence gap, parses it again with its event
/// records in (timestamp, number) order. The flag says whether that was
/// needed.
pub fn parse(data: &[u8]) -> Result<(Vec<ImportEvent>, bool), StreamError> {
    match stream::parse(data) {
        Err(StreamError::SequenceGap { .. }) => {
            let sorted = restore_order(data);
            stream::parse(&sorted[..]).map(|events| (events, true))
        }
        other => other.map(|events| (events, false)),
    }
}

/// The stream with each run of consecutive event records sorted by
/// (timestamp, per-thread number); other lines stay where they are. A
/// record that cannot be split leaves the whole stream unchanged (the
/// parser then says what is wrong with it).
pub fn restore_order(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut run: Vec<(u64, u64, &[u8])> = Vec::new();
    let flush = |run: &mut Vec<(u64, u64, &[u8])>, out: &mut Vec<u8>| {
        run.sort_by_key(|r| (r.0, r.1));
        for r in run.drain(..) {
            out.extend_from_slice(r.2);
        }
    };
    let mut at = 0;
    while at < data.len() {
        if data[at..].starts_with(b"E ") {
            let Some((end, ts, seq)) = record(data, at) else { return data.to_vec() };
            run.push((ts, seq, &data[at..end]));
            at = end;
            continue;
        }
        flush(&mut run, &mut out);
        let end = data[at..].iter().position(|&b| b == b'\n').map_or(data.len(), |e| at + e + 1);
        out.extend_from_slice(&data[at..end]);
        at = end;
    }
    flush(&mut run, &mut out);
    out
}

/// One event record starting at `at`: `E ts pid tid seq depth kind found
/// trunc len NAME\n` (NAME is `len` raw bytes, `..` may follow a cut one).
/// Returns its end, timestamp and number.
fn record(data: &[u8], at: usize) -> Option<(usize, u64, u64)> {
    let rest = &data[at..];
    let mut pos = 2;
    let mut fields: Vec<&[u8]> = Vec::with_capacity(9);
    for _ in 0..9 {
        let sp = rest[pos..].iter().position(|&b| b == b' ' || b == b'\n')?;
        if rest[pos + sp] != b' ' {
            return None;
        }
        fields.push(&rest[pos..pos + sp]);
        pos += sp + 1;
    }
    let num = |f: &[u8]| std::str::from_utf8(f).ok()?.parse::<u64>().ok();
    let (ts, seq, len) = (num(fields[0])?, num(fields[3])?, num(fields[8])? as usize);
    pos = pos.checked_add(len)?;
    if fields[7] == b"1" && rest.get(pos..pos + 3) == Some(&b"..\n"[..]) {
        pos += 2;
    }
    (rest.get(pos) == Some(&b'\n')).then_some((at + pos + 1, ts, seq))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "Attaching 4 probes...\n# importprobe-events v1\n";

    #[test]
    fn restores_a_migrated_threads_order() {
        // Thread 9's second event (seq 1) was printed before its first.
        let body = "E 300 1 9 1 0 done 1 0 3 a\nb\nE 100 1 8 0 0 start - 0 1 x\nE 200 1 9 0 0 start - 0 3 a\nb\n\
                    E 400 1 8 1 0 done 0 0 1 x\n";
        let data = format!("{HEAD}{body}# end\n");
        assert!(matches!(stream::parse(data.as_bytes()), Err(StreamError::SequenceGap { .. })));
        let (events, reordered) = parse(data.as_bytes()).unwrap();
        assert!(reordered);
        let order: Vec<(u32, u64)> = events.iter().map(|e| (e.tid, e.ts_ns)).collect();
        assert_eq!(order, [(8, 100), (9, 200), (9, 300), (8, 400)]);
        assert_eq!(events[1].module, "a\nb");
    }

    #[test]
    fn a_real_gap_stays_a_gap() {
        let data = format!("{HEAD}E 100 1 9 0 0 start - 0 1 a\nE 300 1 9 2 0 done 1 0 1 a\n# end\n");
        assert!(matches!(parse(data.as_bytes()), Err(StreamError::SequenceGap { .. })));
    }

    #[test]
    fn an_ordered_stream_is_parsed_as_is() {
        let data = format!("{HEAD}E 100 1 9 0 0 start - 1 3 abc..\nE 300 1 9 1 0 done 1 1 3 abc..\n# end\n");
        let (events, reordered) = parse(data.as_bytes()).unwrap();
        assert!(!reordered);
        assert_eq!(events.len(), 2);
        assert_eq!(restore_order(data.as_bytes()), data.as_bytes());
    }
}
