//! Module names stored once: a byte arena of NUL-terminated names in id
//! order, which becomes the [`super::Workload`]'s name table as it is, and
//! an index from name to id (no `String` key a module).
//!
//! While names arrive in increasing byte order, as generated workloads
//! define them, the arena itself is the index: a new name greater than the
//! last is new, and lookups search the sorted arena. The first name out of
//! order builds a hash table. (A hash table's random accesses, a cache and
//! TLB miss each, cost more than the rest of a million defines together.)

use super::ModId;
use hashbrown::{DefaultHashBuilder, HashTable};
use std::hash::BuildHasher;
use std::ops::Range;

#[derive(Default)]
pub(super) struct Interner {
    /// Every name followed by one NUL, name `i` starting at `starts[i]`.
    bytes: Vec<u8>,
    starts: Vec<u32>,
    /// `None` while the names are sorted.
    index: Option<HashTable<ModId>>,
    /// Names announced by [`Interner::reserve`], for the hash table's size.
    expected: usize,
    hasher: DefaultHashBuilder,
}

impl std::fmt::Debug for Interner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Interner").field("names", &self.starts.len()).finish_non_exhaustive()
    }
}

impl Interner {
    /// Room for `more` names of about `bytes_each` bytes.
    pub fn reserve(&mut self, more: usize, bytes_each: usize) {
        self.bytes.reserve(more * (bytes_each + 1));
        self.starts.reserve(more);
        self.expected = self.starts.len() + more;
        if let Some(index) = &mut self.index {
            let (bytes, starts, hasher) = (&self.bytes, &self.starts, &self.hasher);
            index.reserve(more, |&k| hasher.hash_one(name_of(bytes, starts, k)));
        }
    }

    pub fn get(&self, name: &[u8]) -> Option<ModId> {
        match &self.index {
            Some(index) => {
                let hash = self.hasher.hash_one(name);
                index.find(hash, |&id| self.name(id) == name).copied()
            }
            None => {
                // A name past the last, the usual question while defining.
                match self.starts.len().checked_sub(1) {
                    Some(last) if name > self.name(last as ModId) => return None,
                    None => return None,
                    _ => {}
                }
                let mut lo = 0usize;
                let mut hi = self.starts.len();
                while lo < hi {
                    let mid = lo + (hi - lo) / 2;
                    match self.name(mid as ModId).cmp(name) {
                        std::cmp::Ordering::Less => lo = mid + 1,
                        std::cmp::Ordering::Greater => hi = mid,
                        std::cmp::Ordering::Equal => return Some(mid as ModId),
                    }
                }
                None
            }
        }
    }

    /// Adds a name that is not there yet; its id is the number of names before it.
    pub fn insert(&mut self, name: &[u8]) -> ModId {
        debug_assert!(self.get(name).is_none());
        let id = self.starts.len() as ModId;
        if self.index.is_none() && id > 0 && name < self.name(id - 1) {
            self.hash_all();
        }
        self.starts.push(self.bytes.len() as u32);
        self.bytes.extend_from_slice(name);
        self.bytes.push(0);
        if let Some(index) = &mut self.index {
            let (bytes, starts, hasher) = (&self.bytes, &self.starts, &self.hasher);
            index.insert_unique(hasher.hash_one(name), id, |&k| hasher.hash_one(name_of(bytes, starts, k)));
        }
        id
    }

    /// Leaves the sorted mode: every name so far into a hash table.
    fn hash_all(&mut self) {
        let n = self.starts.len();
        let mut index = HashTable::with_capacity(self.expected.max(n + 1));
        for id in 0..n as ModId {
            let name = name_of(&self.bytes, &self.starts, id);
            let (bytes, starts, hasher) = (&self.bytes, &self.starts, &self.hasher);
            index.insert_unique(hasher.hash_one(name), id, |&k| hasher.hash_one(name_of(bytes, starts, k)));
        }
        self.index = Some(index);
    }

    pub fn name(&self, id: ModId) -> &[u8] {
        name_of(&self.bytes, &self.starts, id)
    }

    /// Where the name and its NUL sit in the arena.
    pub fn span(&self, id: ModId) -> Range<u32> {
        let start = self.starts[id as usize];
        start..start + self.name(id).len() as u32 + 1
    }

    /// The arena, once every name is resolved (the index is dropped).
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

fn name_of<'a>(bytes: &'a [u8], starts: &[u32], id: ModId) -> &'a [u8] {
    let start = starts[id as usize] as usize;
    let end = starts.get(id as usize + 1).map_or(bytes.len(), |&e| e as usize) - 1;
    &bytes[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_found_by_bytes_and_kept_nul_terminated() {
        let mut i = Interner::default();
        assert_eq!(i.insert(b"a"), 0);
        assert_eq!(i.insert(b"a.b"), 1);
        assert_eq!(i.get(b"a.b"), Some(1));
        assert_eq!(i.get(b"a.c"), None);
        assert_eq!(i.name(0), b"a");
        assert_eq!(i.span(1), 2..6);
        assert_eq!(i.into_bytes(), b"a\0a.b\0");
    }

    #[test]
    fn names_out_of_order_switch_to_hashing_and_keep_every_id() {
        let mut i = Interner::default();
        let names: Vec<String> =
            (0..50).map(|k| format!("m{k:02}")).chain(["a".into(), "zz".into(), "b".into()]).collect();
        for (id, n) in names.iter().enumerate() {
            assert_eq!(i.get(n.as_bytes()), None, "{n}");
            assert_eq!(i.insert(n.as_bytes()) as usize, id);
            assert_eq!(i.index.is_some(), id >= 50, "{n}");
        }
        for (id, n) in names.iter().enumerate() {
            assert_eq!(i.get(n.as_bytes()), Some(id as ModId), "{n}");
        }
        assert_eq!(i.get(b"m"), None);
        assert_eq!(i.get(b"m500"), None);
    }
}
