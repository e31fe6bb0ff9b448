//! Finding one of a million entries by its path, in a few bytes each.
//!
//! The entries already hold their paths, so the table holds only
//! positions (9 bytes a slot with its control byte) and reads a path back
//! from the list when it compares. The std `HashMap`s this replaced held
//! 17 bytes a slot (`&RawPath` to a position, the validation's), 25 (a
//! path to its entry, the shape check's) and 121 (an owned path and the
//! parent's record, the parent index): at a million entries, with a
//! table's spare slots, the last was 240 MB on its own.
//!
//! The list is not borrowed by the index (it may be the caller's own
//! field), so every call is given `path_at`, the path at a position; it
//! must be the list the index was built over, unchanged.

use std::hash::{BuildHasher, RandomState};

use hashbrown::HashTable;

use crate::manifest::Entry;

/// Positions in a list of paths, found by path.
#[derive(Default)]
pub(crate) struct PathIndex {
    table: HashTable<usize>,
    /// Seeded per process: names come from a hostile tree, and a fixed
    /// hash would let its owner pick names that all collide.
    hasher: RandomState,
}

impl std::fmt::Debug for PathIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PathIndex({} paths)", self.table.len())
    }
}

impl PathIndex {
    /// An empty index with room for `len` paths.
    pub(crate) fn with_capacity(len: usize) -> PathIndex {
        PathIndex {
            table: HashTable::with_capacity(len),
            hasher: RandomState::new(),
        }
    }

    /// Every position `0..len`; a path listed twice is found at its first
    /// position.
    pub(crate) fn build<'a>(len: usize, path_at: impl Fn(usize) -> &'a [u8]) -> PathIndex {
        let mut index = PathIndex::with_capacity(len);
        for pos in 0..len {
            let _ = index.insert(pos, &path_at);
        }
        index
    }

    /// Adds `pos`; `Err` with the position already holding its path.
    pub(crate) fn insert<'a>(
        &mut self,
        pos: usize,
        path_at: impl Fn(usize) -> &'a [u8],
    ) -> Result<(), usize> {
        let path = path_at(pos);
        let hasher = &self.hasher;
        match self.table.entry(
            hasher.hash_one(path),
            |&i| path_at(i) == path,
            |&i| hasher.hash_one(path_at(i)),
        ) {
            hashbrown::hash_table::Entry::Occupied(held) => Err(*held.get()),
            hashbrown::hash_table::Entry::Vacant(slot) => {
                slot.insert(pos);
                Ok(())
            }
        }
    }

    /// Where `path` is.
    pub(crate) fn find<'a>(
        &self,
        path: &[u8],
        path_at: impl Fn(usize) -> &'a [u8],
    ) -> Option<usize> {
        self.table
            .find(self.hasher.hash_one(path), |&i| path_at(i) == path)
            .copied()
    }

    /// Takes `path` out of the index (its entry stays in the list); where
    /// it was.
    pub(crate) fn remove<'a>(
        &mut self,
        path: &[u8],
        path_at: impl Fn(usize) -> &'a [u8],
    ) -> Option<usize> {
        let found = self
            .table
            .find_entry(self.hasher.hash_one(path), |&i| path_at(i) == path)
            .ok()?;
        Some(found.remove().0)
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }
}

/// A store's entries, found by path.
pub(crate) struct EntriesByPath<'a> {
    entries: &'a [Entry],
    index: PathIndex,
}

impl<'a> EntriesByPath<'a> {
    pub(crate) fn new(entries: &'a [Entry]) -> Self {
        let index = PathIndex::build(entries.len(), |i| entries[i].path.as_bytes());
        EntriesByPath { entries, index }
    }

    /// The position of `path`'s entry.
    pub(crate) fn position(&self, path: &[u8]) -> Option<usize> {
        let entries = self.entries;
        self.index.find(path, |i| entries[i].path.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_every_path_and_nothing_else() {
        let paths: Vec<Vec<u8>> = (0..5000u32)
            .map(|i| format!("blobs/{:04}/{i:06}.bin", i / 100).into_bytes())
            .collect();
        let at = |i: usize| paths[i].as_slice();
        let index = PathIndex::build(paths.len(), at);
        assert_eq!(index.len(), paths.len());
        for (i, p) in paths.iter().enumerate() {
            assert_eq!(index.find(p, at), Some(i));
        }
        for absent in [&b"blobs/0000"[..], b"", b"blobs/0000/000000.bi", b"\xff"] {
            assert_eq!(index.find(absent, at), None, "{absent:?}");
        }
    }

    #[test]
    fn a_path_listed_twice_is_refused_and_found_at_its_first_place() {
        let paths: [&[u8]; 4] = [b"a", b"b", b"a", b"c\xff"];
        let at = |i: usize| paths[i];
        let mut index = PathIndex::with_capacity(0);
        assert_eq!(index.insert(0, at), Ok(()));
        assert_eq!(index.insert(1, at), Ok(()));
        assert_eq!(index.insert(2, at), Err(0));
        assert_eq!(index.insert(3, at), Ok(()));
        assert_eq!(index.find(b"a", at), Some(0));
        assert_eq!(PathIndex::build(4, at).find(b"a", at), Some(0));
    }

    #[test]
    fn a_removed_path_is_no_longer_found_and_the_others_still_are() {
        let paths: Vec<String> = (0..100).map(|i| format!("f{i}")).collect();
        let at = |i: usize| paths[i].as_bytes();
        let mut index = PathIndex::build(paths.len(), at);
        assert_eq!(index.remove(b"f42", at), Some(42));
        assert_eq!(index.remove(b"f42", at), None);
        assert_eq!(index.find(b"f42", at), None);
        assert_eq!(index.len(), 99);
        for i in (0..100).filter(|i| *i != 42) {
            assert_eq!(index.find(paths[i].as_bytes(), at), Some(i));
        }
    }
}
