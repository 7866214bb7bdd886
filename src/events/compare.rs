//! The event diff: what a tracer saw against what really fired.
//!
//! Events are compared per thread, in firing order, on what the probes
//! carry: kind, module, name flag, found flag and nesting depth. Alignment
//! is a longest common subsequence, so one lost event shows as one
//! `missing`, not as every later event being wrong. Timestamps are not
//! compared here (see [`super::tolerance`]); matched events are handed on
//! for that.

use super::{EventKind, ImportEvent, NameState};
use std::collections::BTreeMap;

/// Beyond this many expected×seen events per thread the alignment falls
/// back to position by position (the smoke workloads are far smaller).
const LCS_LIMIT: usize = 16_000_000;

/// How many diff lines to show per thread.
pub const SHOWN: usize = 8;

/// What must agree between a traced event and the truth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key<'a> {
    pub kind: EventKind,
    pub module: &'a str,
    pub name: NameState,
    pub depth: u32,
    pub found: Option<bool>,
}

impl<'a> Key<'a> {
    pub fn of(e: &'a ImportEvent) -> Self {
        Key { kind: e.kind, module: &e.module, name: e.name, depth: e.depth, found: e.found }
    }
}

/// One step of an alignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `expected[i]` was seen as `seen[j]`.
    Same(usize, usize),
    /// `expected[i]` was not seen.
    Missing(usize),
    /// `seen[j]` was not expected.
    Extra(usize),
}

/// The comparison of one thread.
#[derive(Debug, Clone)]
pub struct ThreadDiff<'a> {
    pub tid: u32,
    pub expected: Vec<&'a ImportEvent>,
    pub seen: Vec<&'a ImportEvent>,
    pub ops: Vec<Op>,
}

impl<'a> ThreadDiff<'a> {
    pub fn missing(&self) -> usize {
        self.ops.iter().filter(|o| matches!(o, Op::Missing(_))).count()
    }

    pub fn extra(&self) -> usize {
        self.ops.iter().filter(|o| matches!(o, Op::Extra(_))).count()
    }

    pub fn is_clean(&self) -> bool {
        self.ops.iter().all(|o| matches!(o, Op::Same(..)))
    }

    /// (expected, seen) event pairs that matched.
    pub fn matched(&self) -> impl Iterator<Item = (&'a ImportEvent, &'a ImportEvent)> + '_ {
        self.ops.iter().filter_map(|o| match *o {
            Op::Same(i, j) => Some((self.expected[i], self.seen[j])),
            _ => None,
        })
    }

    /// The first run of differences, as `- expected #i: ...` / `+ seen #j:
    /// ...` lines after the last matching event before it.
    pub fn first_difference(&self) -> Vec<String> {
        let Some(at) = self.ops.iter().position(|o| !matches!(o, Op::Same(..))) else { return Vec::new() };
        let mut lines = Vec::new();
        if let Some(Op::Same(i, _)) = at.checked_sub(1).map(|p| self.ops[p]) {
            lines.push(format!("  after expected #{i}: {}", describe(self.expected[i])));
        }
        for op in self.ops[at..].iter().take_while(|o| !matches!(o, Op::Same(..))).take(SHOWN) {
            lines.push(match *op {
                Op::Missing(i) => format!("  - expected #{i}: {}", describe(self.expected[i])),
                Op::Extra(j) => format!("  + seen     #{j}: {}", describe(self.seen[j])),
                Op::Same(..) => unreachable!(),
            });
        }
        lines
    }
}

/// `depth start module` / `depth done module found=N`, names quoted.
pub fn describe(e: &ImportEvent) -> String {
    let module = match e.name {
        NameState::Full => format!("{:?}", e.module),
        NameState::Cut => format!("{:?} (cut)", e.module),
        NameState::Missing => "<unencodable name>".to_owned(),
    };
    match e.kind {
        EventKind::Start => format!("{} start {module}", e.depth),
        EventKind::Done => {
            format!("{} done  {module} found={}", e.depth, e.found.map_or("?", |f| if f { "1" } else { "0" }))
        }
        EventKind::Cached => format!("{} cached {module}", e.depth),
    }
}

/// Groups events by thread, keeping their order.
pub fn by_thread(events: &[ImportEvent]) -> BTreeMap<u32, Vec<&ImportEvent>> {
    let mut map: BTreeMap<u32, Vec<&ImportEvent>> = BTreeMap::new();
    for e in events {
        map.entry(e.tid).or_default().push(e);
    }
    map
}

/// Compares per thread; a thread only one side has is all missing or all
/// extra.
pub fn compare<'a>(expected: &'a [ImportEvent], seen: &'a [ImportEvent]) -> Vec<ThreadDiff<'a>> {
    let exp = by_thread(expected);
    let got = by_thread(seen);
    let mut tids: Vec<u32> = exp.keys().chain(got.keys()).copied().collect();
    tids.sort_unstable();
    tids.dedup();
    tids.into_iter()
        .map(|tid| {
            let expected = exp.get(&tid).cloned().unwrap_or_default();
            let seen = got.get(&tid).cloned().unwrap_or_default();
            let ops = align(&expected, &seen);
            ThreadDiff { tid, expected, seen, ops }
        })
        .collect()
}

/// Aligns two event sequences on their [`Key`]s.
pub fn align(expected: &[&ImportEvent], seen: &[&ImportEvent]) -> Vec<Op> {
    let a: Vec<Key> = expected.iter().map(|e| Key::of(e)).collect();
    let b: Vec<Key> = seen.iter().map(|e| Key::of(e)).collect();
    lcs(&a, &b)
}

/// A longest-common-subsequence alignment of two sequences (missing before
/// extra at a difference, so a changed event reads `- old`, `+ new`).
pub fn lcs<T: PartialEq>(a: &[T], b: &[T]) -> Vec<Op> {
    // Common prefix and suffix need no table.
    let pre = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let suf = a[pre..].iter().rev().zip(b[pre..].iter().rev()).take_while(|(x, y)| x == y).count();
    let (am, bm) = (&a[pre..a.len() - suf], &b[pre..b.len() - suf]);
    let mut ops: Vec<Op> = (0..pre).map(|i| Op::Same(i, i)).collect();
    let (n, m) = (am.len(), bm.len());
    if n.saturating_mul(m) > LCS_LIMIT {
        for k in 0..n.max(m) {
            match (k < n, k < m) {
                (true, true) if am[k] == bm[k] => ops.push(Op::Same(pre + k, pre + k)),
                (true, true) => ops.extend([Op::Missing(pre + k), Op::Extra(pre + k)]),
                (true, false) => ops.push(Op::Missing(pre + k)),
                (false, _) => ops.push(Op::Extra(pre + k)),
            }
        }
    } else {
        // table[i][j] = LCS length of am[i..] and bm[j..].
        let w = m + 1;
        let mut table = vec![0u32; (n + 1) * w];
        for i in (0..n).rev() {
            for j in (0..m).rev() {
                table[i * w + j] = if am[i] == bm[j] {
                    table[(i + 1) * w + j + 1] + 1
                } else {
                    table[(i + 1) * w + j].max(table[i * w + j + 1])
                };
            }
        }
        let (mut i, mut j) = (0, 0);
        while i < n || j < m {
            if i < n && j < m && am[i] == bm[j] {
                ops.push(Op::Same(pre + i, pre + j));
                i += 1;
                j += 1;
            } else if i < n && (j == m || table[(i + 1) * w + j] >= table[i * w + j + 1]) {
                ops.push(Op::Missing(pre + i));
                i += 1;
            } else {
                ops.push(Op::Extra(pre + j));
                j += 1;
            }
        }
    }
    ops.extend((0..suf).map(|k| Op::Same(a.len() - suf + k, b.len() - suf + k)));
    ops
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn ev(tid: u32, depth: u32, kind: EventKind, module: &str, found: Option<bool>) -> ImportEvent {
        ImportEvent { ts_ns: 0, pid: 1, tid, depth, kind, module: module.into(), found, name: NameState::Full }
    }

    pub fn pair(tid: u32, depth: u32, module: &str, found: bool) -> [ImportEvent; 2] {
        [ev(tid, depth, EventKind::Start, module, None), ev(tid, depth, EventKind::Done, module, Some(found))]
    }

    fn nested() -> Vec<ImportEvent> {
        let [s, d] = pair(7, 0, "pkg.a", true);
        let [cs, cd] = pair(7, 1, "pkg", true);
        let [fs, fd] = pair(7, 0, "pkg.broken", false);
        vec![s, cs, cd, d, fs, fd]
    }

    #[test]
    fn identical_streams_are_clean() {
        let a = nested();
        let diffs = compare(&a, &a);
        assert_eq!(diffs.len(), 1);
        assert!(diffs[0].is_clean());
        assert_eq!(diffs[0].matched().count(), 6);
    }

    #[test]
    fn one_lost_event_is_one_missing() {
        let a = nested();
        let mut b = a.clone();
        b.remove(2);
        let d = &compare(&a, &b)[0];
        assert_eq!((d.missing(), d.extra()), (1, 0));
        let shown = d.first_difference();
        assert!(shown[0].contains("after expected #1"), "{shown:?}");
        assert!(shown[1].contains("- expected #2: 1 done  \"pkg\" found=1"), "{shown:?}");
    }

    #[test]
    fn a_flipped_flag_reads_minus_then_plus() {
        let a = nested();
        let mut b = a.clone();
        b[5].found = Some(true);
        let d = &compare(&a, &b)[0];
        assert_eq!((d.missing(), d.extra()), (1, 1));
        let shown = d.first_difference();
        assert!(shown[1].starts_with("  - expected #5") && shown[1].ends_with("found=0"), "{shown:?}");
        assert!(shown[2].starts_with("  + seen     #5") && shown[2].ends_with("found=1"), "{shown:?}");
    }

    #[test]
    fn threads_are_compared_separately() {
        let mut a = nested();
        a.extend(pair(8, 0, "t", true));
        let mut b = pair(8, 0, "t", true).to_vec();
        b.extend(nested());
        assert!(compare(&a, &b).iter().all(|d| d.is_clean()));
        b.extend(pair(9, 0, "x", true));
        let diffs = compare(&a, &b);
        assert_eq!(diffs.iter().map(|d| d.extra()).sum::<usize>(), 2);
    }

    #[test]
    fn lcs_aligns_inserts_and_deletes() {
        let ops = lcs(&[1, 2, 3, 4], &[1, 3, 4, 5]);
        assert_eq!(ops, [Op::Same(0, 0), Op::Missing(1), Op::Same(2, 1), Op::Same(3, 2), Op::Extra(3)]);
        assert_eq!(lcs::<u8>(&[], &[]), []);
    }
}
