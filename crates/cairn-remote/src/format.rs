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

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotDoc {
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
    pub contents: Vec<FileChunks>,
    /// Every pack a chunk of this snapshot lives in, with its size.
    pub packs: BTreeMap<String, u64>,
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
