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
use crate::format::{self, SnapshotDoc};
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
    let map = indexes(remote, &doc, id.as_str())?;
    let manifest = fetch_manifest(remote, &map, &doc, id.as_str(), &snap)?;
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

    // Where each chunk goes.
    let mut wanted: BTreeMap<u32, HashMap<Checksum, Vec<Dest>>> = BTreeMap::new();
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
                .entry(*hash)
                .or_default()
                .push(Dest { file, offset });
            offset += loc.length;
        }
    }

    cairn_engine::progress::begin("pull", Some(out.bytes));
    for (pack_n, chunks) in &wanted {
        cairn_engine::cancel::check()?;
        let (pack, size) = &map.packs[*pack_n as usize];
        let key = format::pack_key(pack);
        let needed: u64 = chunks
            .keys()
            .filter_map(|h| map.chunks.get(h))
            .map(|l| l.length)
            .sum();
        // Whole when most of it is wanted (one request, checked against
        // its name); chunk by chunk otherwise (each checked against its hash).
        let whole = if needed * 2 >= *size || chunks.len() > 64 {
            let bytes = remote.backend.get(&key)?.ok_or_else(|| {
                unsound(
                    id.as_str(),
                    Problem::new(BLOB_MISSING, "not on the remote").at(&key),
                )
            })?;
            if bytes.len() as u64 != *size {
                return Err(unsound(
                    id.as_str(),
                    Problem::new(
                        BLOB_SIZE_MISMATCH,
                        format!("{} bytes, the snapshot records {size}", bytes.len()),
                    )
                    .at(&key),
                ));
            }
            if Checksum::of(&bytes).to_hex() != *pack {
                return Err(unsound(
                    id.as_str(),
                    Problem::new(BLOB_CHECKSUM_MISMATCH, "its bytes do not hash to its name")
                        .at(&key),
                ));
            }
            Some(bytes)
        } else {
            None
        };
        for (hash, dests) in chunks {
            let Some(loc) = map.chunks.get(hash) else {
                continue;
            };
            let data = match &whole {
                Some(bytes) => usize::try_from(loc.offset)
                    .ok()
                    .zip(usize::try_from(loc.offset + loc.length).ok())
                    .and_then(|(a, b)| bytes.get(a..b))
                    .map(<[u8]>::to_vec)
                    .unwrap_or_default(),
                None => remote.backend.get_range(&key, loc.offset, loc.length)?,
            };
            if Checksum::of(&data) != *hash {
                return Err(unsound(
                    id.as_str(),
                    Problem::new(
                        BLOB_CHECKSUM_MISMATCH,
                        format!(
                            "chunk {hash} at offset {} does not match its hash",
                            loc.offset
                        ),
                    )
                    .at(&key),
                ));
            }
            for d in dests {
                let path = &files[d.file];
                let f = OpenOptions::new()
                    .write(true)
                    .open(path)
                    .map_err(cairn_engine::error::io_at("open", path))?;
                f.write_all_at(&data, d.offset)
                    .map_err(cairn_engine::error::io_at("write", path))?;
            }
            cairn_engine::progress::advance(data.len() as u64 * dests.len() as u64);
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
