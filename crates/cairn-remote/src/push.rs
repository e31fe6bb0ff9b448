//! `cairn push`: a local snapshot onto a remote, uploading only chunks
//! the remote lacks.
//!
//! Order is what makes a push safe to kill at any moment: packs first
//! (each named by its content's SHA-256), each pack's index after its
//! pack, then a listing confirms every pack the snapshot needs is there
//! with its size, and only then `snapshots/<ID>.json` is created (a
//! conditional create). Until that document exists the snapshot is not
//! on the remote; what was uploaded stays, and a rerun finds it in the
//! indexes and sends only the rest.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::atomic::Ordering;

use cairn_engine::checksum::Checksum;
use cairn_engine::manifest::{EntryKind, Manifest, RawPath, StoreStatus};
use cairn_engine::problem::codes;
use cairn_engine::{Error, Problem, Repository, Result, SnapshotId};
use chrono::Utc;
use sha2::{Digest, Sha256};

use crate::chunk::{self, ChunkError};
use crate::format::{self, Blob, Contents, IndexedChunk, PackIndex, SnapshotDoc};
use crate::remote::{ChunkMap, Held, Loc, Remote};

/// What one push did.
#[derive(Debug, Clone, Default)]
pub struct PushOutcome {
    pub id: String,
    /// The snapshot was already on the remote: nothing sent.
    pub already_there: bool,
    pub chunks: u64,
    pub new_chunks: u64,
    /// Bytes of the snapshot's files.
    pub bytes: u64,
    /// Bytes of new chunks (what deduplication did not save).
    pub new_chunk_bytes: u64,
    pub packs_uploaded: u64,
    /// Bytes sent and requests made, everything included.
    pub bytes_uploaded: u64,
    pub requests: u64,
}

/// A test hook: `CAIRN_REMOTE_CRASH_AFTER_PACKS=N` aborts the process
/// (no cleanup, like `kill -9`) right after the Nth pack is uploaded.
const CRASH_ENV: &str = "CAIRN_REMOTE_CRASH_AFTER_PACKS";

struct Packer<'a> {
    remote: &'a Remote,
    map: &'a mut ChunkMap,
    buf: Vec<u8>,
    pending: Vec<IndexedChunk>,
    pending_set: HashSet<Checksum>,
    new_chunks: u64,
    new_chunk_bytes: u64,
    packs_uploaded: u64,
    crash_after: Option<u64>,
    marker: &'a Held<'a>,
}

impl Packer<'_> {
    fn add(&mut self, data: &[u8]) -> Result<Checksum> {
        let hash = Checksum::of(data);
        if self.map.chunks.contains_key(&hash) || self.pending_set.contains(&hash) {
            return Ok(hash);
        }
        self.pending.push(IndexedChunk {
            sha256: hash,
            offset: self.buf.len() as u64,
            length: data.len() as u64,
        });
        self.pending_set.insert(hash);
        if self.buf.capacity() == 0 {
            // Once per pack, whole: growing by doubling would copy it and
            // leave freed blocks of every size behind in the heap.
            self.buf.reserve_exact(format::MAX_PACK_BYTES);
        }
        self.buf.extend_from_slice(data);
        self.new_chunks += 1;
        self.new_chunk_bytes += data.len() as u64;
        if self.buf.len() >= format::TARGET_PACK_BYTES {
            self.flush()?;
        }
        Ok(hash)
    }

    /// Sends the pack, then its index; the chunks are then the remote's.
    fn flush(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        // Taken, not replaced: the next pack's buffer is allocated only
        // after this one is sent and freed, so one pack is held at a time.
        let bytes = std::mem::take(&mut self.buf);
        let pack = Checksum::of(&bytes).to_hex();
        let index = PackIndex {
            format_version: format::FORMAT_VERSION,
            pack: pack.clone(),
            size: bytes.len() as u64,
            chunks: std::mem::take(&mut self.pending),
        };
        self.remote.backend.put(&format::pack_key(&pack), bytes)?;
        self.remote.backend.put(
            &format::index_key(&pack),
            serde_json::to_vec(&index).unwrap_or_default(),
        )?;
        self.map.add_pack(&index);
        self.pending_set.clear();
        self.packs_uploaded += 1;
        self.marker.renew_if_due()?;
        if self.crash_after == Some(self.packs_uploaded) {
            std::process::abort();
        }
        Ok(())
    }
}

/// One regular file of the snapshot to send.
struct ToSend {
    /// Index of its store in the manifest.
    store: u32,
    /// Index of its entry in the store's record.
    entry: u32,
    path: RawPath,
    /// Size and SHA-256 the manifest records.
    expected: Option<(u64, Checksum)>,
}

/// The plain files of captured stores (a hard link's content is its first
/// path's), in manifest order.
fn files_to_send(manifest: &Manifest) -> Vec<ToSend> {
    let mut out = Vec::new();
    for (s, record) in manifest.stores.iter().enumerate() {
        if record.status != StoreStatus::Captured {
            continue;
        }
        for (i, entry) in record.entries.iter().enumerate() {
            if entry.kind != EntryKind::File || entry.link_of().is_some() {
                continue;
            }
            out.push(ToSend {
                store: u32::try_from(s).unwrap_or(u32::MAX),
                entry: u32::try_from(i).unwrap_or(u32::MAX),
                path: entry.path.clone(),
                expected: entry.size.zip(entry.sha256),
            });
        }
    }
    out
}

/// Chunks `path` into `contents`, checking its bytes against the
/// manifest's size and SHA-256 as they are read: a damaged local copy is
/// never sent.
fn chunk_file(
    packer: &mut Packer<'_>,
    contents: &mut Contents,
    path: &Path,
    file: &ToSend,
    store: &str,
    id: &str,
) -> Result<()> {
    let damaged = |code: &'static str, detail: String| Error::Unsound {
        id: id.to_owned(),
        problems: vec![Problem::new(code, detail).in_store(store).at(&file.path)],
    };
    let reader = match cairn_engine::fsutil::open_nofollow(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(damaged(
                codes::FILE_MISSING,
                "listed in the manifest but not in the snapshot".into(),
            ))
        }
        Err(e) => return Err(Error::io("open", path, e)),
    };
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let read_failed = |e: std::io::Error| Error::io("read", path, e);
    chunk::for_each_chunk::<ChunkError>(reader, |data| {
        cairn_engine::cancel::check()?;
        hasher.update(data);
        size += data.len() as u64;
        cairn_engine::progress::advance(data.len() as u64);
        contents.push_chunk(packer.add(data)?);
        Ok(())
    })
    .map_err(|e| e.into_error(read_failed))?;
    if let Some((want_size, want_sha)) = file.expected {
        let got = Checksum::from_hasher(hasher);
        if size != want_size {
            return Err(damaged(
                codes::FILE_SIZE_MISMATCH,
                format!(
                    "manifest says {want_size} bytes, the snapshot's copy has {size}; not pushed"
                ),
            ));
        }
        if got != want_sha {
            return Err(damaged(
                codes::FILE_CHECKSUM_MISMATCH,
                format!("manifest says sha256 {want_sha}, the snapshot's copy hashes to {got}; not pushed"),
            ));
        }
    }
    Ok(())
}

/// Pushes snapshot `id` of `repo` to `remote`.
pub fn push(remote: &Remote, repo: &Repository, id: &SnapshotId) -> Result<PushOutcome> {
    let start_requests = remote.backend.stats.requests.load(Ordering::Relaxed);
    let start_up = remote.backend.stats.bytes_up.load(Ordering::Relaxed);
    let finish = |mut out: PushOutcome| {
        out.requests = remote.backend.stats.requests.load(Ordering::Relaxed) - start_requests;
        out.bytes_uploaded = remote.backend.stats.bytes_up.load(Ordering::Relaxed) - start_up;
        out
    };
    let dir = repo.snapshot_dir(id);
    let manifest = Manifest::read_from(&dir, id.as_str()).map_err(|p| Error::Unsound {
        id: id.to_string(),
        problems: vec![p],
    })?;
    let mut out = PushOutcome {
        id: id.to_string(),
        bytes: manifest.total_bytes(),
        ..Default::default()
    };
    remote.ensure_root()?;
    let marker = remote.push_marker()?;
    let key = format::snapshot_key(id.as_str());
    let mut replace_broken = false;
    if remote
        .backend
        .list("snapshots/")?
        .iter()
        .any(|l| l.key == key)
    {
        // A document there but unreadable is one an SFTP push could not
        // finish writing (no atomic upload there): it is written again.
        match remote.doc(id.as_str()) {
            Ok(_) => {
                out.already_there = true;
                return Ok(finish(out));
            }
            Err(Error::RemoteFormat { message, .. }) => {
                tracing::warn!(remote = %remote.config.name, %message, "rewriting an unreadable snapshot document");
                replace_broken = true;
            }
            Err(e) => return Err(e),
        }
    }

    // What push needs of the manifest, taken before anything is read, so
    // the parsed manifest (the largest thing here at 100,000 files) is
    // freed before packs are built.
    let to_send = files_to_send(&manifest);
    let mut doc = SnapshotDoc {
        format_version: format::FORMAT_VERSION,
        id: id.to_string(),
        created_at: manifest.created_at,
        host: manifest.host.clone(),
        tags: manifest.tags.clone(),
        restore_of: manifest.restore_of.clone(),
        stores: manifest.stores.iter().map(|s| s.name.clone()).collect(),
        bytes: manifest.total_bytes(),
        files: manifest.stores.iter().map(|s| s.files()).sum(),
        pushed_at: Utc::now(),
        manifest: Blob {
            size: 0,
            sha256: Checksum::of(b""),
            chunks: Vec::new(),
        },
        contents: Contents::new(manifest.stores.iter().map(|s| s.name.clone()).collect()),
        packs: BTreeMap::new(),
    };
    drop(manifest);

    let mut map = remote.chunk_map()?;
    let crash_after = std::env::var(CRASH_ENV).ok().and_then(|v| v.parse().ok());
    let mut packer = Packer {
        remote,
        map: &mut map,
        buf: Vec::new(),
        pending: Vec::new(),
        pending_set: HashSet::new(),
        new_chunks: 0,
        new_chunk_bytes: 0,
        packs_uploaded: 0,
        crash_after,
        marker: &marker,
    };

    cairn_engine::progress::begin("push", Some(doc.bytes));
    for file in &to_send {
        let store = &doc.stores[file.store as usize];
        let path = repo.store_dir(id, store).join(file.path.as_path());
        chunk_file(
            &mut packer,
            &mut doc.contents,
            &path,
            file,
            store,
            id.as_str(),
        )?;
        doc.contents.end_file(file.store, file.entry);
    }
    drop(to_send);
    // The manifest itself, byte for byte (its digest covers its content).
    // Streamed, not read whole: a 100,000-file manifest is tens of MiB.
    let manifest_path = dir.join(cairn_engine::manifest::FILE_NAME);
    let manifest_file = cairn_engine::fsutil::open_nofollow(&manifest_path)
        .map_err(cairn_engine::error::io_at("open", &manifest_path))?;
    let mut manifest_hasher = Sha256::new();
    chunk::for_each_chunk::<ChunkError>(manifest_file, |data| {
        manifest_hasher.update(data);
        doc.manifest.size += data.len() as u64;
        doc.manifest.chunks.push(packer.add(data)?);
        Ok(())
    })
    .map_err(|e| e.into_error(|e| Error::io("read", &manifest_path, e)))?;
    doc.manifest.sha256 = Checksum::from_hasher(manifest_hasher);
    packer.flush()?;
    cairn_engine::progress::finish();
    out.new_chunks = packer.new_chunks;
    out.new_chunk_bytes = packer.new_chunk_bytes;
    out.packs_uploaded = packer.packs_uploaded;
    drop(packer);

    let mut seen = HashSet::new();
    for hash in doc.contents.chunks().iter().chain(&doc.manifest.chunks) {
        if !seen.insert(*hash) {
            continue;
        }
        let Some(Loc { pack, .. }) = map.chunks.get(hash) else {
            return Err(remote.format_error(format!("chunk {hash} was packed but is in no index")));
        };
        let (pack, size) = &map.packs[*pack as usize];
        doc.packs.insert(pack.clone(), *size);
    }
    out.chunks = seen.len() as u64;
    drop((seen, map));
    confirm(remote, &doc.packs)?;
    doc.pushed_at = Utc::now();
    let bytes = serde_json::to_vec(&doc).unwrap_or_default();
    if replace_broken {
        remote.backend.put(&key, bytes)?;
    } else if !remote.backend.put_new(&key, bytes)? {
        // Another push of the same snapshot finished first.
        let theirs = remote.doc(id.as_str())?;
        if theirs.manifest.sha256 != doc.manifest.sha256 {
            return Err(remote.format_error(format!(
                "{key} already holds a different snapshot with this id (manifest sha256 {})",
                theirs.manifest.sha256
            )));
        }
    }
    Ok(finish(out))
}

/// From two listings, not one request per object: every pack the
/// snapshot needs is there with its size, and so is its index.
fn confirm(remote: &Remote, needed: &BTreeMap<String, u64>) -> Result<()> {
    let packs = remote.listing("packs/")?;
    let indexes = remote.listing("index/")?;
    for (pack, size) in needed {
        let found = packs.get(&format::pack_key(pack)).map(|l| l.size);
        if found != Some(*size) || !indexes.contains_key(&format::index_key(pack)) {
            return Err(Error::RemoteUnreachable {
                remote: remote.config.name.clone(),
                url: remote.config.url.clone(),
                message: format!(
                    "after upload, {} is {} (expected {size} bytes) or its index is missing; the snapshot was not published, run push again",
                    format::pack_key(pack),
                    found.map_or("missing".to_owned(), |s| format!("{s} bytes"))
                ),
            });
        }
    }
    Ok(())
}
