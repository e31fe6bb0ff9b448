//! `cairn pull`: rebuild a plain local snapshot from a remote.
//!
//! The snapshot is built in a private directory under the repository's
//! `tmp/` (laid out as a repository of its own, so the engine's deep
//! validation runs on it unchanged), every chunk checked against its
//! SHA-256 as it arrives and every pack downloaded whole against its
//! name; then deep-validated (every file's SHA-256 and size, each kind's
//! own check); only a sound snapshot is moved into `snapshots/` by one
//! rename. Anything else leaves the repository as it was.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use cairn_engine::checksum::Checksum;
use cairn_engine::manifest::{EntryKind, Manifest, StoreStatus};
use cairn_engine::problem::codes;
use cairn_engine::{Depth, Error, Problem, Repository, Result, SnapshotId, Stores};

use crate::backend::Listed;
use crate::format::{self, IndexedChunk, SnapshotDoc};
use crate::packread;
use crate::remote::{ChunkMap, Remote};

pub const BLOB_MISSING: &str = "blob_missing";
pub const BLOB_SIZE_MISMATCH: &str = "blob_size_mismatch";

/// What is wrong with pack `key` as one listing shows it (`None`: absent)
/// against the `size` a snapshot records; `None` when nothing is. Pull
/// refuses on it, validate reports it.
pub(crate) fn pack_problem(key: &str, listed: Option<&Listed>, size: u64) -> Option<Problem> {
    match listed {
        None => Some(Problem::new(BLOB_MISSING, "not on the remote").at(key)),
        Some(l) if l.size != size => Some(
            Problem::new(
                BLOB_SIZE_MISMATCH,
                format!(
                    "{} bytes on the remote, the snapshot records {size}",
                    l.size
                ),
            )
            .at(key),
        ),
        Some(_) => None,
    }
}
pub const BLOB_CHECKSUM_MISMATCH: &str = "blob_checksum_mismatch";

#[derive(Debug, Clone, Default)]
pub struct PullOutcome {
    pub id: String,
    pub files: u64,
    pub bytes: u64,
    pub bytes_downloaded: u64,
    pub requests: u64,
    /// Already in the local repository: nothing downloaded.
    pub already_local: bool,
}

/// One place a chunk's bytes go.
struct Dest {
    file: usize,
    offset: u64,
}

/// A chunk of a pack and every place its bytes go.
struct Placed {
    chunk: IndexedChunk,
    dests: Vec<Dest>,
}

/// Writes a checked chunk everywhere it goes.
fn place_chunk(files: &[PathBuf], dests: &[Dest], data: &[u8]) -> Result<()> {
    for d in dests {
        let path = &files[d.file];
        let f = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(cairn_engine::error::io_at("open", path))?;
        f.write_all_at(data, d.offset)
            .map_err(cairn_engine::error::io_at("write", path))?;
    }
    cairn_engine::progress::advance(data.len() as u64 * dests.len() as u64);
    Ok(())
}

/// The few chunks wanted from a pack, one ranged read each, each checked
/// against its hash; what does not match is returned, not placed.
fn ranges(
    remote: &Remote,
    pack: &str,
    chunks: &[IndexedChunk],
    mut place: impl FnMut(usize, &[u8]) -> Result<()>,
) -> Result<Vec<Problem>> {
    let key = format::pack_key(pack);
    let mut problems = Vec::new();
    for (i, c) in chunks.iter().enumerate() {
        let data = remote.backend.get_range(&key, c.offset, c.length)?;
        if Checksum::of(&data) == c.sha256 {
            place(i, &data)?;
        } else {
            problems.push(
                Problem::new(
                    BLOB_CHECKSUM_MISMATCH,
                    format!(
                        "chunk {} at offset {} does not match its hash",
                        c.sha256, c.offset
                    ),
                )
                .at(&key),
            );
        }
    }
    Ok(problems)
}

fn unsound(id: &str, problem: Problem) -> Error {
    Error::Unsound {
        id: id.to_owned(),
        problems: vec![problem],
    }
}

/// A work directory under `tmp/` removed when this goes.
struct Work(PathBuf);
impl Drop for Work {
    fn drop(&mut self) {
        let _ = make_writable(&self.0);
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn make_writable(dir: &Path) -> std::io::Result<()> {
    // Snapshot files are 0400 and root may be someone else here; a
    // directory needs its write bit for its entries to go.
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        if meta.is_dir() {
            fs::set_permissions(entry.path(), fs::Permissions::from_mode(0o700))?;
            make_writable(&entry.path())?;
        }
    }
    Ok(())
}

/// Pulls `id` into `repo` (whose lock the caller holds).
pub fn pull(
    remote: &Remote,
    repo: &Repository,
    stores: &Stores,
    id: &SnapshotId,
) -> Result<PullOutcome> {
    let requests0 = remote.backend.stats.requests.load(Ordering::Relaxed);
    let down0 = remote.backend.stats.bytes_down.load(Ordering::Relaxed);
    let mut out = PullOutcome {
        id: id.to_string(),
        ..Default::default()
    };
    let doc = remote.doc(id.as_str())?;
    if repo.snapshot_dir(id).exists() {
        out.already_local = true;
        return Ok(out);
    }
    repo.ensure_layout()?;
    let work_dir = repo.tmp_dir().join(format!(
        "pull-{id}-{}",
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
    ));
    cairn_engine::fsutil::create_dir_private(&work_dir)?;
    let work = Work(work_dir);
    let staging = Repository::new(&work.0);
    staging.ensure_layout()?;
    let snap = staging.snapshot_dir(id);
    cairn_engine::fsutil::create_dir_private(&snap)?;

    // From one listing, before anything is downloaded: every pack there
    // with its recorded size.
    let listed = remote.listing("packs/")?;
    for (pack, size) in &doc.packs {
        let key = format::pack_key(pack);
        if let Some(problem) = pack_problem(&key, listed.get(&key), *size) {
            return Err(unsound(id.as_str(), problem));
        }
    }
    rebuild(remote, doc, id, &snap, &mut out)?;

    // Every byte against the manifest, and each kind's own check.
    let (report, _) = cairn_engine::validate::validate_snapshot(&staging, stores, id, Depth::Deep);
    if !report.valid {
        return Err(Error::Unsound {
            id: id.to_string(),
            problems: report.errors,
        });
    }
    let dest = repo.snapshot_dir(id);
    if dest.exists() {
        return Err(Error::Usage {
            message: format!(
                "snapshot {id} appeared in {} while it was pulled",
                repo.root().display()
            ),
        });
    }
    fs::rename(&snap, &dest).map_err(cairn_engine::error::io_at("publish", &dest))?;
    cairn_engine::fsutil::sync_dir(&repo.snapshots_dir())?;
    drop(work);
    out.requests = remote.backend.stats.requests.load(Ordering::Relaxed) - requests0;
    out.bytes_downloaded = remote.backend.stats.bytes_down.load(Ordering::Relaxed) - down0;
    Ok(out)
}

/// Writes snapshot `doc` into `snap` from the remote: its manifest, its
/// tree, every chunk checked. Owns what it builds (the parsed manifest,
/// the chunk map, where each chunk goes), so all of it is freed before
/// the deep validation that follows.
fn rebuild(
    remote: &Remote,
    doc: SnapshotDoc,
    id: &SnapshotId,
    snap: &Path,
    out: &mut PullOutcome,
) -> Result<()> {
    let map = indexes(remote, &doc, id.as_str())?;
    let manifest = fetch_manifest(remote, &map, &doc, id.as_str(), snap)?;
    out.files = manifest.stores.iter().map(|s| s.files() as u64).sum();
    out.bytes = manifest.total_bytes();

    // The tree: directories and symlinks now, files at their size, then
    // every chunk written where it goes, pack by pack.
    let mut files: Vec<PathBuf> = Vec::new();
    let mut slots: HashMap<(&str, usize), usize> = HashMap::new();
    let mut links: Vec<(PathBuf, PathBuf)> = Vec::new();
    let stores_dir = snap.join(cairn_engine::repo::STORES_DIR);
    cairn_engine::fsutil::create_dir_private(&stores_dir)?;
    for record in manifest
        .stores
        .iter()
        .filter(|r| r.status == StoreStatus::Captured)
    {
        let root = stores_dir.join(&record.name);
        cairn_engine::fsutil::create_dir_private(&root)?;
        for (i, entry) in record.entries.iter().enumerate() {
            let rel = entry.path.as_path();
            if rel.is_absolute()
                || rel
                    .components()
                    .any(|c| !matches!(c, std::path::Component::Normal(_)))
            {
                return Err(unsound(
                    id.as_str(),
                    Problem::new(codes::MANIFEST_INVALID, "a path that leaves its store")
                        .in_store(&record.name)
                        .at(&entry.path),
                ));
            }
            let path = root.join(rel);
            match (entry.kind, &entry.link_of) {
                (EntryKind::Dir, _) => fs::create_dir(&path)
                    .map_err(cairn_engine::error::io_at("create directory", &path))?,
                (EntryKind::Symlink, _) => {
                    let target = entry
                        .target
                        .as_ref()
                        .map(|t| t.as_path())
                        .unwrap_or(Path::new(""));
                    std::os::unix::fs::symlink(target, &path)
                        .map_err(cairn_engine::error::io_at("create symlink", &path))?
                }
                (EntryKind::File, Some(first)) => links.push((root.join(first.as_path()), path)),
                (EntryKind::File, None) => {
                    let f =
                        File::create(&path).map_err(cairn_engine::error::io_at("create", &path))?;
                    f.set_len(entry.size.unwrap_or(0))
                        .map_err(cairn_engine::error::io_at("write", &path))?;
                    slots.insert((record.name.as_str(), i), files.len());
                    files.push(path);
                }
            }
        }
    }

    // Where each chunk goes, pack by pack, in the order it lies there.
    let mut wanted: BTreeMap<u32, BTreeMap<u64, Placed>> = BTreeMap::new();
    for fc in &doc.contents {
        let Some(&file) = slots.get(&(fc.store.as_str(), fc.entry)) else {
            return Err(unsound(
                id.as_str(),
                Problem::new(
                    codes::MANIFEST_INVALID,
                    format!(
                        "the remote's chunk list names entry {} that is not a file of the manifest",
                        fc.entry
                    ),
                )
                .in_store(&fc.store),
            ));
        };
        let mut offset = 0u64;
        for hash in &fc.chunks {
            let loc = map.chunks.get(hash).ok_or_else(|| {
                unsound(
                    id.as_str(),
                    Problem::new(BLOB_MISSING, format!("chunk {hash} is in no pack index"))
                        .in_store(&fc.store),
                )
            })?;
            wanted
                .entry(loc.pack)
                .or_default()
                .entry(loc.offset)
                .or_insert_with(|| Placed {
                    chunk: IndexedChunk {
                        sha256: *hash,
                        offset: loc.offset,
                        length: loc.length,
                    },
                    dests: Vec::new(),
                })
                .dests
                .push(Dest { file, offset });
            offset += loc.length;
        }
    }

    cairn_engine::progress::begin("pull", Some(out.bytes));
    for (pack_n, placed) in &wanted {
        cairn_engine::cancel::check()?;
        let (pack, size) = &map.packs[*pack_n as usize];
        let chunks: Vec<IndexedChunk> = placed.values().map(|p| p.chunk.clone()).collect();
        let dests: Vec<&[Dest]> = placed.values().map(|p| p.dests.as_slice()).collect();
        let place = |i: usize, data: &[u8]| place_chunk(&files, dests[i], data);
        let needed: u64 = chunks.iter().map(|c| c.length).sum();
        // Streamed whole when most of it is wanted (one request, the pack
        // checked against its name too); chunk by chunk otherwise.
        let problems = if needed * 2 >= *size || chunks.len() > 64 {
            packread::stream_pack(&remote.backend, pack, *size, &chunks, place)?
        } else {
            ranges(remote, pack, &chunks, place)?
        };
        if !problems.is_empty() {
            return Err(Error::Unsound {
                id: id.to_string(),
                problems,
            });
        }
    }
    cairn_engine::progress::finish();
    for path in &files {
        let f = File::open(path).map_err(cairn_engine::error::io_at("open", path))?;
        f.sync_all()
            .map_err(cairn_engine::error::io_at("sync", path))?;
        cairn_engine::fsutil::make_read_only(path)?;
    }
    for (first, path) in &links {
        fs::hard_link(first, path).map_err(cairn_engine::error::io_at("link", path))?;
    }
    Ok(())
}

/// The indexes of the packs `doc` needs (one request each).
pub fn indexes(remote: &Remote, doc: &SnapshotDoc, id: &str) -> Result<ChunkMap> {
    let mut map = ChunkMap::default();
    for (pack, size) in &doc.packs {
        let Some(index) = remote.index(pack)? else {
            return Err(unsound(
                id,
                Problem::new(BLOB_MISSING, "not on the remote").at(format::index_key(pack)),
            ));
        };
        if index.size != *size {
            return Err(unsound(
                id,
                Problem::new(
                    BLOB_SIZE_MISMATCH,
                    format!(
                        "its index says {} bytes, the snapshot records {size}",
                        index.size
                    ),
                )
                .at(format::pack_key(pack)),
            ));
        }
        map.add_pack(&index);
    }
    Ok(map)
}

/// The manifest's bytes, chunk by chunk, checked, written as
/// `manifest.json` in `snap`, and parsed.
pub fn fetch_manifest(
    remote: &Remote,
    map: &ChunkMap,
    doc: &SnapshotDoc,
    id: &str,
    snap: &Path,
) -> Result<Manifest> {
    let bytes = manifest_bytes(remote, map, doc, id)?;
    let path = snap.join(cairn_engine::manifest::FILE_NAME);
    fs::write(&path, &bytes).map_err(cairn_engine::error::io_at("write", &path))?;
    File::open(&path)
        .and_then(|f| f.sync_all())
        .map_err(cairn_engine::error::io_at("sync", &path))?;
    cairn_engine::fsutil::make_read_only(&path)?;
    Manifest::parse(&bytes, id).map_err(|p| unsound(id, p))
}

pub fn manifest_bytes(
    remote: &Remote,
    map: &ChunkMap,
    doc: &SnapshotDoc,
    id: &str,
) -> Result<Vec<u8>> {
    let mut bytes = Vec::with_capacity(
        usize::try_from(doc.manifest.size)
            .unwrap_or(0)
            .min(format::MAX_DOC_BYTES),
    );
    for hash in &doc.manifest.chunks {
        let loc = map.chunks.get(hash).ok_or_else(|| {
            unsound(
                id,
                Problem::new(
                    BLOB_MISSING,
                    format!("manifest chunk {hash} is in no pack index"),
                ),
            )
        })?;
        let (pack, _) = &map.packs[loc.pack as usize];
        let key = format::pack_key(pack);
        let data = remote.backend.get_range(&key, loc.offset, loc.length)?;
        if Checksum::of(&data) != *hash {
            return Err(unsound(
                id,
                Problem::new(
                    BLOB_CHECKSUM_MISMATCH,
                    format!("manifest chunk {hash} does not match its hash"),
                )
                .at(&key),
            ));
        }
        bytes.extend_from_slice(&data);
        if bytes.len() > format::MAX_DOC_BYTES {
            return Err(unsound(
                id,
                Problem::new(codes::MANIFEST_INVALID, "the manifest is too large"),
            ));
        }
    }
    if bytes.len() as u64 != doc.manifest.size || Checksum::of(&bytes) != doc.manifest.sha256 {
        return Err(unsound(
            id,
            Problem::new(
                codes::MANIFEST_DIGEST_MISMATCH,
                "the manifest rebuilt from the remote is not the one pushed",
            )
            .at(cairn_engine::manifest::FILE_NAME),
        ));
    }
    Ok(bytes)
}
