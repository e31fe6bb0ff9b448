//! Where each chunk of a snapshot goes when it is pulled: one flat,
//! sorted list with a fixed-size row per chunk of each file, built from
//! the snapshot document and the chunk map, then written to a scratch
//! file ([`Spill`]) and read back one pack at a time. That is what holds
//! a 100,000-file pull under its memory bound: the document, the chunk
//! map and the list are freed before the manifest (the largest of them,
//! ~40 MiB parsed at 100,000 files) is parsed.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use cairn_engine::checksum::Checksum;
use cairn_engine::error::io_at;
use cairn_engine::problem::codes;
use cairn_engine::{Error, Problem, Result};

use crate::format::{IndexedChunk, SnapshotDoc};
use crate::pull::BLOB_MISSING;
use crate::remote::ChunkMap;

/// One chunk's bytes at one place of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// Index into the chunk map's packs; the sort key, with `offset`, so
    /// each pack is read once, front to back.
    pub pack: u32,
    pub offset: u64,
    pub length: u64,
    pub sha256: Checksum,
    /// Index of the store in the manifest (and in the document's `stores`).
    pub store: u32,
    /// Index of the file's entry in that store's record.
    pub entry: u32,
    /// Where in the file.
    pub at: u64,
}

impl Placement {
    /// Pack by pack, front to back; then by file, so a chunk's takers are
    /// in a stable order.
    pub fn order(&self) -> (u32, u64, u32, u32, u64) {
        (self.pack, self.offset, self.store, self.entry, self.at)
    }

    pub fn chunk(&self) -> IndexedChunk {
        IndexedChunk {
            sha256: self.sha256,
            offset: self.offset,
            length: self.length,
        }
    }
}

fn unsound(id: &str, problem: Problem) -> Error {
    Error::Unsound {
        id: id.to_owned(),
        problems: vec![problem],
    }
}

/// Every chunk of every file of `doc`, sorted by pack and offset. A store
/// the document does not list, or a chunk in no index, is refused here;
/// whether each entry is a file is for the caller, once the manifest is read.
pub fn placements(doc: &SnapshotDoc, map: &ChunkMap, id: &str) -> Result<Vec<Placement>> {
    let mut out = Vec::with_capacity(doc.contents.iter().map(|f| f.chunks.len()).sum());
    for fc in &doc.contents {
        let store = doc
            .stores
            .iter()
            .position(|s| *s == fc.store)
            .and_then(|i| u32::try_from(i).ok());
        let (Some(store), Ok(entry)) = (store, u32::try_from(fc.entry)) else {
            return Err(unsound(
                id,
                Problem::new(
                    codes::MANIFEST_INVALID,
                    format!(
                        "the remote's chunk list names entry {} of a store the snapshot does not have",
                        fc.entry
                    ),
                )
                .in_store(&fc.store),
            ));
        };
        let mut at = 0u64;
        for hash in &fc.chunks {
            let loc = map.chunks.get(hash).ok_or_else(|| {
                unsound(
                    id,
                    Problem::new(BLOB_MISSING, format!("chunk {hash} is in no pack index"))
                        .in_store(&fc.store),
                )
            })?;
            out.push(Placement {
                pack: loc.pack,
                offset: loc.offset,
                length: loc.length,
                sha256: *hash,
                store,
                entry,
                at,
            });
            at = at.saturating_add(loc.length);
        }
    }
    out.sort_unstable_by_key(Placement::order);
    Ok(out)
}

/// Placements on disk, in order, as fixed 68-byte records.
pub struct Spill {
    file: File,
    path: PathBuf,
    count: u64,
}

const RECORD: usize = 4 + 8 + 8 + 32 + 4 + 4 + 8;

impl Spill {
    /// Writes `sorted` to a new file `path` (removed when this goes).
    pub fn write(sorted: Vec<Placement>, path: &Path) -> Result<Spill> {
        let file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(io_at("create", path))?;
        let mut w = BufWriter::new(&file);
        for p in &sorted {
            let mut rec = [0u8; RECORD];
            rec[0..4].copy_from_slice(&p.pack.to_le_bytes());
            rec[4..12].copy_from_slice(&p.offset.to_le_bytes());
            rec[12..20].copy_from_slice(&p.length.to_le_bytes());
            rec[20..52].copy_from_slice(&p.sha256.to_bytes());
            rec[52..56].copy_from_slice(&p.store.to_le_bytes());
            rec[56..60].copy_from_slice(&p.entry.to_le_bytes());
            rec[60..68].copy_from_slice(&p.at.to_le_bytes());
            w.write_all(&rec).map_err(io_at("write", path))?;
        }
        w.flush().map_err(io_at("write", path))?;
        drop(w);
        Ok(Spill {
            file,
            path: path.to_owned(),
            count: sorted.len() as u64,
        })
    }

    /// Calls `each` with the placements of each pack in turn, in order.
    pub fn for_each_pack(
        &mut self,
        mut each: impl FnMut(&[Placement]) -> Result<()>,
    ) -> Result<()> {
        let path = &self.path;
        self.file
            .seek(SeekFrom::Start(0))
            .map_err(io_at("read", path))?;
        let mut r = BufReader::new(&self.file);
        let mut group: Vec<Placement> = Vec::new();
        for _ in 0..self.count {
            let mut rec = [0u8; RECORD];
            r.read_exact(&mut rec).map_err(io_at("read", path))?;
            let u32_at =
                |i: usize| u32::from_le_bytes([rec[i], rec[i + 1], rec[i + 2], rec[i + 3]]);
            let u64_at = |i: usize| {
                let mut b = [0u8; 8];
                b.copy_from_slice(&rec[i..i + 8]);
                u64::from_le_bytes(b)
            };
            let mut sha = [0u8; 32];
            sha.copy_from_slice(&rec[20..52]);
            let p = Placement {
                pack: u32_at(0),
                offset: u64_at(4),
                length: u64_at(12),
                sha256: Checksum::from_bytes(sha),
                store: u32_at(52),
                entry: u32_at(56),
                at: u64_at(60),
            };
            if group.last().is_some_and(|g| g.pack != p.pack) {
                each(&group)?;
                group.clear();
            }
            group.push(p);
        }
        if !group.is_empty() {
            each(&group)?;
        }
        Ok(())
    }
}

impl Drop for Spill {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The placements of one pack, and each distinct chunk among them with
/// the range of placements that take its bytes.
pub struct PackGroup<'a> {
    pub pack: u32,
    pub chunks: Vec<IndexedChunk>,
    pub takers: Vec<&'a [Placement]>,
}

/// `sorted` (from [`placements`]) cut into one group per pack.
pub fn by_pack(sorted: &[Placement]) -> Vec<PackGroup<'_>> {
    let mut groups: Vec<PackGroup<'_>> = Vec::new();
    let mut start = 0;
    while start < sorted.len() {
        let first = &sorted[start];
        let mut end = start + 1;
        while end < sorted.len()
            && sorted[end].pack == first.pack
            && sorted[end].offset == first.offset
        {
            end += 1;
        }
        match groups.last_mut() {
            Some(g) if g.pack == first.pack => {
                g.chunks.push(first.chunk());
                g.takers.push(&sorted[start..end]);
            }
            _ => groups.push(PackGroup {
                pack: first.pack,
                chunks: vec![first.chunk()],
                takers: vec![&sorted[start..end]],
            }),
        }
        start = end;
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pack: u32, offset: u64, entry: u32, at: u64) -> Placement {
        Placement {
            pack,
            offset,
            length: 10,
            sha256: Checksum::of(&offset.to_le_bytes()),
            store: 0,
            entry,
            at,
        }
    }

    #[test]
    fn a_chunk_two_files_share_is_read_once_and_placed_twice() {
        let mut v = vec![
            p(1, 20, 0, 0),
            p(0, 10, 3, 10),
            p(1, 20, 5, 0),
            p(0, 0, 3, 0),
        ];
        v.sort_unstable_by_key(Placement::order);
        let groups = by_pack(&v);
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].pack, 0);
        assert_eq!(
            groups[0]
                .chunks
                .iter()
                .map(|c| c.offset)
                .collect::<Vec<_>>(),
            [0, 10]
        );
        assert_eq!(groups[1].chunks.len(), 1, "one read of the shared chunk");
        assert_eq!(
            groups[1].takers[0]
                .iter()
                .map(|t| t.entry)
                .collect::<Vec<_>>(),
            [0, 5]
        );
    }

    #[test]
    fn a_spill_gives_back_every_placement_pack_by_pack_twice_over() {
        let dir = tempfile::tempdir().unwrap();
        let mut v = vec![
            p(1, 20, 0, 0),
            p(0, 10, 3, 10),
            p(1, 20, 5, 0),
            p(0, 0, 3, 0),
            p(7, 1 << 40, 9, 1 << 33),
        ];
        v.sort_unstable_by_key(Placement::order);
        let path = dir.path().join("spill");
        let mut spill = Spill::write(v.clone(), &path).unwrap();
        for _ in 0..2 {
            let mut back = Vec::new();
            let mut packs = Vec::new();
            spill
                .for_each_pack(|rows| {
                    packs.push(rows[0].pack);
                    assert!(rows.iter().all(|r| r.pack == rows[0].pack));
                    back.extend_from_slice(rows);
                    Ok(())
                })
                .unwrap();
            assert_eq!(back, v);
            assert_eq!(packs, [0, 1, 7]);
        }
        drop(spill);
        assert!(!path.exists(), "the scratch file goes with the spill");
    }
}
