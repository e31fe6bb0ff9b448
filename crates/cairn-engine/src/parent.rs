//! The parent snapshot as the next snapshot sees it: per store, the files
//! it may reuse, found by path.
//!
//! Memory is the point of this module. At a million files, the parent's
//! manifest parsed into entries, and an index built from them beside, held
//! 600 MiB next to the new snapshot's own entries. So the parent's
//! manifest is streamed (`Manifest::read_streamed`: the digest checked over
//! every byte, as for any manifest read) and each store's entries become
//! reusable-file records as they are read, never a list of entries. The
//! records are kept in chunks in the order the parent captured them, which
//! is the order the next capture meets the same files, and a chunk is freed
//! once every record in it has been used: the parent's index shrinks while
//! the new snapshot's entries grow.

use std::collections::HashSet;
use std::path::PathBuf;

use serde::de::{Deserializer, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::checksum::Checksum;
use crate::id::SnapshotId;
use crate::manifest::{Entry, EntryKind, Manifest, RawPath, SourceStat, StoreStatus, Xattr};
use crate::path_index::PathIndex;
use crate::repo::Repository;

/// The previous snapshot of the same store, to reuse unchanged files from.
#[derive(Debug, Default)]
pub(crate) struct Parent {
    /// The store's directory in the parent snapshot.
    pub root: PathBuf,
    /// What its file entries recorded, by path.
    pub files: ParentFiles,
    /// What the plug-in recorded in the parent's store record
    /// (`CaptureCtx::metadata_mut` then), for a plug-in that proves
    /// reuse by its own means (`CaptureCtx::parent_metadata`).
    pub metadata: Map<String, Value>,
    /// The parent's last validation recorded no finding for this store.
    pub clean: bool,
}

/// The part of a parent's file entry that decides reuse: the source's
/// identity when it was copied, and the copy's hash; and its extended
/// attributes, unchanged as long as the ctime is.
#[derive(Debug, Clone)]
pub(crate) struct ParentFile {
    pub size: u64,
    pub mtime_ns: i128,
    pub source_stat: SourceStat,
    pub sha256: Checksum,
    pub xattrs: Vec<Xattr>,
}

impl ParentFile {
    /// `None` for entries that cannot be reused (not a file, or copied
    /// without a record of its source, or by a Cairn that recorded no
    /// owner and attributes).
    pub fn of(entry: &Entry) -> Option<Self> {
        Some(ParentFile {
            size: entry.size?,
            mtime_ns: entry.mtime_ns,
            source_stat: entry.source_stat?,
            sha256: entry.sha256?,
            xattrs: entry.xattrs().to_vec(),
        })
        .filter(|_| entry.kind == EntryKind::File && entry.uid.is_some())
    }
}

/// Records a chunk holds (7 MiB of them): a chunk must be large enough
/// that the allocator maps it on its own and unmaps it when freed (the
/// CLI fixes glibc's threshold for that at 4 MiB); a smaller one would go
/// back to the heap's free lists, where the new entries, one large
/// mapping themselves, never reuse it.
const CHUNK: usize = 65_536;

/// A parent's reusable files, found by path: chunks of records in the
/// parent's order and a [`PathIndex`] of them (a 9-byte slot a file,
/// where a `HashMap` of the same records had a 121-byte one). A record
/// is dropped by [`ParentFiles::forget`] once it can no longer be
/// wanted, and its chunk with the last of them.
#[derive(Debug, Default)]
pub(crate) struct ParentFiles {
    chunks: Vec<Chunk>,
    /// Records ever added: the next one's position.
    added: usize,
    index: PathIndex,
}

#[derive(Debug)]
struct Chunk {
    records: Vec<(RawPath, ParentFile)>,
    /// Records of this chunk still in the index.
    live: usize,
}

impl ParentFiles {
    /// The path at `pos`; empty once its chunk is freed (a position the
    /// index no longer holds, so never asked for).
    fn path_at(chunks: &[Chunk], pos: usize) -> &[u8] {
        chunks
            .get(pos / CHUNK)
            .and_then(|c| c.records.get(pos % CHUNK))
            .map_or(&[], |(path, _)| path.as_bytes())
    }

    /// Adds the record of `path`, unless a record of it is already there
    /// (never in a manifest whose shape was checked: the first is kept).
    pub fn add(&mut self, path: RawPath, file: ParentFile) {
        let chunks = &self.chunks;
        if self
            .index
            .find(path.as_bytes(), |i| Self::path_at(chunks, i))
            .is_some()
        {
            return;
        }
        if self.chunks.last().is_none_or(|c| c.records.len() == CHUNK) {
            self.chunks.push(Chunk {
                records: Vec::with_capacity(CHUNK),
                live: 0,
            });
        }
        let Some(chunk) = self.chunks.last_mut() else {
            return;
        };
        chunk.records.push((path, file));
        chunk.live += 1;
        let pos = self.added;
        self.added += 1;
        let chunks = &self.chunks;
        // Cannot be refused: the path was just found absent.
        let _ = self.index.insert(pos, |i| Self::path_at(chunks, i));
    }

    pub fn get(&self, rel: &RawPath) -> Option<&ParentFile> {
        let chunks = &self.chunks;
        let pos = self
            .index
            .find(rel.as_bytes(), |i| Self::path_at(chunks, i))?;
        chunks[pos / CHUNK].records.get(pos % CHUNK).map(|(_, f)| f)
    }

    /// Never found again: the record's path and attributes are freed
    /// now, and its chunk once the chunk's last record is forgotten.
    pub fn forget(&mut self, rel: &[u8]) {
        let chunks = &self.chunks;
        let Some(pos) = self.index.remove(rel, |i| Self::path_at(chunks, i)) else {
            return;
        };
        let Some(chunk) = self.chunks.get_mut(pos / CHUNK) else {
            return;
        };
        if let Some((path, file)) = chunk.records.get_mut(pos % CHUNK) {
            *path = RawPath::default();
            file.xattrs = Vec::new();
        }
        chunk.live -= 1;
        if chunk.live == 0 {
            chunk.records = Vec::new();
        }
    }

    /// Forgets every file whose readable path `damaged` names.
    fn forget_shown(&mut self, damaged: &HashSet<String>) -> Vec<String> {
        if damaged.is_empty() {
            return Vec::new();
        }
        let named: Vec<RawPath> = self
            .chunks
            .iter()
            .flat_map(|c| &c.records)
            .map(|(path, _)| path)
            .filter(|path| !path.is_empty() && damaged.contains(&*path.shown()))
            .cloned()
            .collect();
        for path in &named {
            self.forget(path.as_bytes());
        }
        named.iter().map(String::from).collect()
    }

    /// Records still to be found.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.index.len()
    }

    /// Chunks still held (a test's view of what is freed).
    #[cfg(test)]
    fn chunks_held(&self) -> usize {
        self.chunks.iter().filter(|c| !c.records.is_empty()).count()
    }
}

impl FromIterator<(RawPath, ParentFile)> for ParentFiles {
    fn from_iter<I: IntoIterator<Item = (RawPath, ParentFile)>>(iter: I) -> Self {
        let mut files = ParentFiles::default();
        for (path, file) in iter {
            files.add(path, file);
        }
        files
    }
}

/// A store's entries as they are read: each reusable file's record kept,
/// every entry dropped once read.
impl<'de> Deserialize<'de> for ParentFiles {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Files;
        impl<'de> Visitor<'de> for Files {
            type Value = ParentFiles;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a list of entries")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ParentFiles, A::Error> {
                let mut files = ParentFiles::default();
                while let Some(entry) = seq.next_element::<Entry>()? {
                    if let Some(file) = ParentFile::of(&entry) {
                        files.add(entry.path, file);
                    }
                }
                Ok(files)
            }
        }
        deserializer.deserialize_seq(Files)
    }
}

/// What the next snapshot reads of the newest one's manifest. Its paths
/// are only keys here (what is linked is the name the new walk met, in
/// the parent's store directory), so of the shape check only the id and
/// the version matter; the digest is checked over every byte as always.
#[derive(Deserialize)]
pub(crate) struct ParentManifest {
    format_version: u64,
    id: String,
    stores: Vec<ParentStore>,
}

#[derive(Deserialize)]
struct ParentStore {
    #[serde(default)]
    entries: ParentFiles,
    kind: String,
    #[serde(default)]
    metadata: Map<String, Value>,
    name: String,
    status: StoreStatus,
}

impl ParentManifest {
    /// The manifest of snapshot `id`, streamed; `None` when it cannot be
    /// read or does not check (the next snapshot then copies everything).
    pub(crate) fn read(repo: &Repository, id: &SnapshotId) -> Option<ParentManifest> {
        let dir = repo.snapshot_dir(id);
        if let Some(read) = Manifest::read_streamed::<ParentManifest>(&dir)
            .filter(|m| m.id == id.as_str())
            .filter(|m| {
                (crate::manifest::OLDEST_FORMAT_VERSION..=crate::manifest::FORMAT_VERSION)
                    .contains(&m.format_version)
            })
        {
            return Some(read);
        }
        // In Cairn's layout but not read: damaged, or another snapshot's
        // or version. The whole-file path would only read it all again to
        // say so.
        if Manifest::starts_as_written(&dir) {
            return None;
        }
        // Another layout (a manifest reformatted by hand): read whole, as
        // every such manifest is, within that path's size limit.
        let manifest = Manifest::read_from(&dir, id.as_str()).ok()?;
        Some(ParentManifest {
            format_version: manifest.format_version,
            id: manifest.id,
            stores: manifest
                .stores
                .into_iter()
                .map(|s| ParentStore {
                    entries: s
                        .entries
                        .iter()
                        .filter_map(|e| ParentFile::of(e).map(|f| (e.path.clone(), f)))
                        .collect(),
                    kind: s.kind,
                    metadata: s.metadata,
                    name: s.name,
                    status: s.status,
                })
                .collect(),
        })
    }

    /// The parent index of one store, moved out (each store is looked up
    /// once).
    ///
    /// A file the parent's last validation found damaged (its record, read
    /// once per store) is left out of the index, so it is copied from the
    /// source again instead of hard-linked: damage on the backup disk never
    /// spreads into the next snapshot. `warnings` gets a line saying so.
    pub(crate) fn take_store(
        &mut self,
        repo: &Repository,
        id: &SnapshotId,
        store: &str,
        kind: &str,
        warnings: &mut Vec<String>,
    ) -> Option<Parent> {
        let record = self.stores.iter_mut().find(|s| s.name == store)?;
        if record.kind != kind || record.status != StoreStatus::Captured {
            return None;
        }
        let last = crate::validate::last_validation(repo, id);
        let damaged = last
            .as_ref()
            .map(|r| r.damaged_files(store))
            .unwrap_or_default();
        let clean = last
            .as_ref()
            .is_some_and(|r| !r.problems.iter().any(|p| p.store.as_deref() == Some(store)));
        let mut files = std::mem::take(&mut record.entries);
        let not_reused = files.forget_shown(&damaged);
        if !not_reused.is_empty() {
            tracing::warn!(store, parent = %id, files = not_reused.len(), "not reusing copies the parent's last validation found damaged");
            let shown: Vec<&str> = not_reused.iter().take(3).map(String::as_str).collect();
            warnings.push(format!(
                "{} file{} copied from the source instead of reused from snapshot {id}, whose last validation found {} damaged: {}{}",
                not_reused.len(),
                if not_reused.len() == 1 { "" } else { "s" },
                if not_reused.len() == 1 { "its copy" } else { "their copies" },
                shown.join(", "),
                if not_reused.len() > shown.len() { ", …" } else { "" }
            ));
        }
        Some(Parent {
            root: repo.store_dir(id, store),
            files,
            metadata: std::mem::take(&mut record.metadata),
            clean,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(i: usize) -> (RawPath, ParentFile) {
        (
            RawPath::from(format!("blobs/{:04}/{i:06}.bin", i / 100)),
            ParentFile {
                size: i as u64,
                mtime_ns: 1,
                source_stat: SourceStat {
                    ctime_ns: 1,
                    dev: 1,
                    ino: i as u64,
                },
                sha256: Checksum::of(b"x"),
                xattrs: Vec::new(),
            },
        )
    }

    #[test]
    fn every_record_is_found_until_forgotten_and_a_chunk_goes_with_its_last() {
        let n = CHUNK * 2 + 10;
        let mut files: ParentFiles = (0..n).map(record).collect();
        assert_eq!(files.len(), n);
        assert_eq!(files.chunks_held(), 3);
        for i in [0, CHUNK - 1, CHUNK, n - 1] {
            assert_eq!(files.get(&record(i).0).map(|f| f.size), Some(i as u64));
        }
        assert!(files.get(&RawPath::from("blobs/none")).is_none());
        // All of the first chunk but one: still held.
        for i in 0..CHUNK - 1 {
            files.forget(record(i).0.as_bytes());
        }
        assert_eq!(files.chunks_held(), 3);
        assert!(files.get(&record(0).0).is_none());
        assert_eq!(
            files.get(&record(CHUNK - 1).0).map(|f| f.size),
            Some(CHUNK as u64 - 1)
        );
        // Its last one: freed, and every other record still found.
        files.forget(record(CHUNK - 1).0.as_bytes());
        files.forget(record(CHUNK - 1).0.as_bytes());
        assert_eq!(files.chunks_held(), 2);
        assert_eq!(files.len(), n - CHUNK);
        for i in CHUNK..n {
            assert_eq!(files.get(&record(i).0).map(|f| f.size), Some(i as u64));
        }
    }

    #[test]
    fn a_path_listed_twice_keeps_its_first_record() {
        let (path, mut second) = record(7);
        second.size = 99;
        let files: ParentFiles = [record(7), (path.clone(), second), record(8)]
            .into_iter()
            .collect();
        assert_eq!(files.len(), 2);
        assert_eq!(files.get(&path).map(|f| f.size), Some(7));
    }

    /// A snapshot's manifest with two reusable files, a directory and a
    /// file copied without a record of its source (not reusable).
    fn manifest(id: &str) -> Manifest {
        let file = |path: &str, ino: u64, stat: bool| {
            let mut e = Entry::new(path, EntryKind::File);
            e.mode = 0o644;
            e.mtime_ns = 5;
            e.size = Some(3);
            e.sha256 = Some(Checksum::of(path.as_bytes()));
            e.uid = Some(1000);
            e.gid = Some(1000);
            e.source_stat = stat.then_some(SourceStat {
                ctime_ns: 6,
                dev: 1,
                ino,
            });
            e
        };
        let mut dir = Entry::new("seg", EntryKind::Dir);
        dir.mode = 0o755;
        dir.uid = Some(1000);
        dir.gid = Some(1000);
        Manifest {
            created_at: "2026-12-02T18:00:00Z".parse().unwrap(),
            format_version: crate::manifest::FORMAT_VERSION,
            host: "h".into(),
            id: id.into(),
            restore_of: None,
            stores: vec![crate::manifest::StoreRecord {
                entries: vec![
                    dir,
                    file("seg/a.bin", 11, true),
                    file("seg/b.bin", 12, true),
                    file("seg/racy.bin", 13, false),
                ],
                kind: "chroma-dir".into(),
                metadata: Default::default(),
                name: "chroma".into(),
                options: Default::default(),
                root: None,
                shape: crate::manifest::Shape::Dir,
                source: "/data/chroma".into(),
                status: StoreStatus::Captured,
                warnings: Vec::new(),
            }],
            tags: Vec::new(),
            tool_version: "0.0.0".into(),
        }
    }

    fn reusable(repo: &Repository, id: &SnapshotId) -> Option<Vec<(String, Checksum)>> {
        let mut read = ParentManifest::read(repo, id)?;
        let parent = read.take_store(repo, id, "chroma", "chroma-dir", &mut Vec::new())?;
        let found: Vec<(String, Checksum)> = ["seg", "seg/a.bin", "seg/b.bin", "seg/racy.bin"]
            .into_iter()
            .filter_map(|p| {
                let f = parent.files.get(&RawPath::from(p))?;
                Some((p.to_owned(), f.sha256))
            })
            .collect();
        Some(found)
    }

    #[test]
    fn the_parent_is_read_streamed_or_reformatted_alike_and_never_when_damaged() {
        let tmp = tempfile::tempdir().unwrap();
        let repo = Repository::new(tmp.path());
        let id = SnapshotId::parse("20261202T180000Z").unwrap();
        let dir = repo.snapshot_dir(&id);
        std::fs::create_dir_all(&dir).unwrap();
        let m = manifest(id.as_str());
        m.write_to(&dir).unwrap();
        let expected = vec![
            ("seg/a.bin".to_owned(), Checksum::of(b"seg/a.bin")),
            ("seg/b.bin".to_owned(), Checksum::of(b"seg/b.bin")),
        ];
        // As Cairn wrote it: the streamed path.
        assert!(Manifest::read_streamed::<ParentManifest>(&dir).is_some());
        assert_eq!(reusable(&repo, &id), Some(expected.clone()));
        // A store of another kind, or one not in it, has no parent.
        let mut read = ParentManifest::read(&repo, &id).unwrap();
        assert!(read
            .take_store(&repo, &id, "chroma", "sqlite", &mut Vec::new())
            .is_none());
        assert!(read
            .take_store(&repo, &id, "other", "chroma-dir", &mut Vec::new())
            .is_none());

        let path = dir.join(crate::manifest::FILE_NAME);
        let bytes = std::fs::read(&path).unwrap();
        let rewrite = |bytes: &[u8]| {
            std::fs::remove_file(&path).unwrap();
            std::fs::write(&path, bytes).unwrap();
        };
        // Reformatted by hand: the streamed path refuses it, the whole
        // read takes it, and the same files are reusable.
        let value: Value = serde_json::from_slice(&bytes).unwrap();
        rewrite(&serde_json::to_vec_pretty(&value).unwrap());
        assert!(Manifest::read_streamed::<ParentManifest>(&dir).is_none());
        assert_eq!(reusable(&repo, &id), Some(expected));
        // One byte changed (a size, inside the digest): nothing is reused.
        let text = String::from_utf8(bytes.clone()).unwrap();
        rewrite(text.replacen("\"size\":3", "\"size\":4", 1).as_bytes());
        assert!(reusable(&repo, &id).is_none());
        // A manifest that says it is another snapshot's: nothing either.
        rewrite(&bytes);
        let other = SnapshotId::parse("20261202T190000Z").unwrap();
        std::fs::create_dir_all(repo.snapshot_dir(&other)).unwrap();
        std::fs::copy(
            &path,
            repo.snapshot_dir(&other).join(crate::manifest::FILE_NAME),
        )
        .unwrap();
        assert!(reusable(&repo, &other).is_none());
        assert!(reusable(&repo, &id).is_some());
    }

    #[test]
    fn a_damaged_file_is_forgotten_by_its_readable_path() {
        let mut files: ParentFiles = (0..10).map(record).collect();
        let odd = RawPath::from_bytes(&b"seg/caf\xe9"[..]);
        files.add(odd.clone(), record(10).1);
        let damaged = HashSet::from([
            "blobs/0000/000003.bin".to_owned(),
            "seg/caf\\xe9".to_owned(),
            "not/in/the/parent".to_owned(),
        ]);
        let mut forgotten = files.forget_shown(&damaged);
        forgotten.sort();
        assert_eq!(forgotten, ["blobs/0000/000003.bin", "seg/caf\\xe9"]);
        assert!(files.get(&record(3).0).is_none());
        assert!(files.get(&odd).is_none());
        assert_eq!(files.len(), 9);
    }
}
