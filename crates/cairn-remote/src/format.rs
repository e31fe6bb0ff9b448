//! The remote's layout and documents (specified in docs/remote-format.md).
//!
//! ```text
//! config.json                  format version, chunker parameters, encryption ("none")
//! packs/<2 hex>/<sha256>       many chunks back to back; named by the SHA-256 of its bytes
//! index/<pack sha256>.json     the chunks in that pack: sha256, offset, length
//! snapshots/<ID>.json          a snapshot: its manifest's chunks, each file's chunks,
//!                              every pack it needs with its size; written last
//! locks/                       prune's lock and the markers of running pushes
//! tmp/                         a file:// remote's temp files (never read)
//! ```

use std::collections::BTreeMap;

use cairn_engine::checksum::Checksum;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::chunk::ChunkerParams;

pub const FORMAT_VERSION: u64 = 1;
pub const CONFIG_KEY: &str = "config.json";
/// A pack is sent once it holds this much (one request per ~16 MiB).
pub const TARGET_PACK_BYTES: usize = 16 * 1024 * 1024;
/// The most a pack can hold: the target plus one largest chunk.
pub const MAX_PACK_BYTES: usize = TARGET_PACK_BYTES + crate::chunk::CDC_MAX;
/// A snapshot document larger than this is refused unread (a hostile or
/// damaged remote must not make a reader allocate without bound).
pub const MAX_DOC_BYTES: usize = 256 * 1024 * 1024;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteRoot {
    pub format_version: u64,
    pub chunker: ChunkerParams,
    /// `"none"`; room for client-side encryption (a key id, a KDF).
    pub encryption: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackIndex {
    pub format_version: u64,
    pub pack: String,
    pub size: u64,
    pub chunks: Vec<IndexedChunk>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexedChunk {
    pub sha256: Checksum,
    pub offset: u64,
    pub length: u64,
}

/// A content stored as chunks: its size, SHA-256 and chunk list.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Blob {
    pub size: u64,
    pub sha256: Checksum,
    pub chunks: Vec<Checksum>,
}

/// One regular file of a store with content: the index of its entry in
/// the manifest's store record, and its chunks.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileChunks {
    pub store: String,
    pub entry: usize,
    pub chunks: Vec<Checksum>,
}

/// A snapshot on the remote. `C` is how its files' chunks are held: as
/// read back, one [`FileChunks`] each; as push builds it, [`Contents`]
/// (the same JSON from a flat list a third the size in memory).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotDoc<C = Vec<FileChunks>> {
    pub format_version: u64,
    pub id: String,
    pub created_at: DateTime<Utc>,
    pub host: String,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_of: Option<String>,
    /// The store names, in manifest order.
    pub stores: Vec<String>,
    /// Bytes of the stores' files (as the manifest records them).
    pub bytes: u64,
    pub files: usize,
    pub pushed_at: DateTime<Utc>,
    /// `manifest.json` exactly as the local snapshot holds it.
    pub manifest: Blob,
    pub contents: C,
    /// Every pack a chunk of this snapshot lives in, with its size.
    pub packs: BTreeMap<String, u64>,
}

/// Each file's chunks as push collects them: every chunk in one list and
/// a fixed row per file, instead of a `String` and a `Vec` per file (at
/// 100,000 files, 4 MiB instead of 14). Serialized exactly as the
/// `Vec<FileChunks>` a reader parses.
#[derive(Debug, Default)]
pub struct Contents {
    stores: Vec<String>,
    /// (store, entry, end of its chunks in `chunks`).
    files: Vec<(u32, u32, usize)>,
    chunks: Vec<Checksum>,
}

impl Contents {
    pub fn new(stores: Vec<String>) -> Contents {
        Contents {
            stores,
            ..Default::default()
        }
    }

    /// Appends a chunk to the file being added; call [`Contents::end_file`] after its last.
    pub fn push_chunk(&mut self, hash: Checksum) {
        self.chunks.push(hash);
    }

    /// The chunks pushed since the last file end are entry `entry` of store `store`.
    pub fn end_file(&mut self, store: u32, entry: u32) {
        self.files.push((store, entry, self.chunks.len()));
    }

    /// Every chunk of every file, with repeats.
    pub fn chunks(&self) -> &[Checksum] {
        &self.chunks
    }

    fn each(&self) -> impl Iterator<Item = FileChunksRef<'_>> {
        let mut start = 0;
        self.files.iter().map(move |&(store, entry, end)| {
            let chunks = self.chunks.get(start..end).unwrap_or_default();
            start = end;
            FileChunksRef {
                store: self.stores.get(store as usize).map_or("", String::as_str),
                entry: entry as usize,
                chunks,
            }
        })
    }
}

#[derive(Serialize)]
struct FileChunksRef<'a> {
    store: &'a str,
    entry: usize,
    chunks: &'a [Checksum],
}

impl Serialize for Contents {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.each())
    }
}

/// A lock or a push marker under `locks/`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LockDoc {
    pub host: String,
    pub pid: u32,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub purpose: String,
}

pub fn pack_key(pack: &str) -> String {
    format!("packs/{}/{pack}", pack.get(..2).unwrap_or("00"))
}

pub fn index_key(pack: &str) -> String {
    format!("index/{pack}.json")
}

pub fn snapshot_key(id: &str) -> String {
    format!("snapshots/{id}.json")
}

/// A pack id from a `packs/..` key (`None` for anything else there).
pub fn pack_of_key(key: &str) -> Option<&str> {
    let name = key.strip_prefix("packs/")?.rsplit('/').next()?;
    (name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit())).then_some(name)
}

pub fn index_of_key(key: &str) -> Option<&str> {
    let name = key.strip_prefix("index/")?.strip_suffix(".json")?;
    (name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit())).then_some(name)
}

pub fn snapshot_of_key(key: &str) -> Option<&str> {
    key.strip_prefix("snapshots/")?.strip_suffix(".json")
}

pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contents_serialize_as_the_file_chunks_a_reader_parses() {
        let h = |n: u8| Checksum::of(&[n]);
        let mut c = Contents::new(vec!["db".into(), "chroma".into()]);
        c.push_chunk(h(1));
        c.push_chunk(h(2));
        c.end_file(0, 0);
        c.end_file(1, 3); // an empty file: no chunks
        c.push_chunk(h(1));
        c.end_file(1, 7);
        let text = serde_json::to_string(&c).unwrap();
        let back: Vec<FileChunks> = serde_json::from_str(&text).unwrap();
        let rows: Vec<(&str, usize, Vec<Checksum>)> = back
            .iter()
            .map(|f| (f.store.as_str(), f.entry, f.chunks.clone()))
            .collect();
        assert_eq!(
            rows,
            [
                ("db", 0, vec![h(1), h(2)]),
                ("chroma", 3, vec![]),
                ("chroma", 7, vec![h(1)]),
            ]
        );
    }
}
