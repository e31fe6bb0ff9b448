//! `cairn pull`: rebuild a plain local snapshot from a remote.
//!
//! The snapshot is built in a private directory under the repository's
//! `tmp/` (laid out as a repository of its own, so the engine's deep
//! validation runs on it unchanged), every chunk checked against its
//! SHA-256 as it arrives and every pack downloaded whole against its
//! name; then deep-validated (every file's SHA-256 and size, each kind's
//! own check); only a sound snapshot is moved into `snapshots/` by one
//! rename. Anything else leaves the repository as it was.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use cairn_engine::checksum::Checksum;
use cairn_engine::manifest::{EntryKind, Manifest, StoreStatus};
use cairn_engine::problem::codes;
use cairn_engine::{Depth, Error, Problem, Repository, Result, SnapshotId, Stores};

use crate::backend::Listed;
use crate::format::{self, SnapshotDoc};
use crate::packread;
use crate::placement::{self, Placement};
use crate::remote::{ChunkMap, Remote};
use sha2::{Digest, Sha256};

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
    rebuild(remote, doc, id, &snap, &work.0, &mut out)?;

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
/// tree, every chunk checked. The order bounds memory: the manifest goes
/// to disk as it arrives; the document and the chunk map become one flat
/// list of placements, written to a scratch file in `scratch`, and are
/// freed; only then is the manifest parsed (from disk, streamed) to build
/// the tree and place the chunks, pack by pack; and all of it is freed
/// before the deep validation that follows.
fn rebuild(
    remote: &Remote,
    doc: SnapshotDoc,
    id: &SnapshotId,
    snap: &Path,
    scratch: &Path,
    out: &mut PullOutcome,
) -> Result<()> {
    let map = indexes(remote, &doc, id.as_str())?;
    fetch_manifest(remote, &map, &doc, id.as_str(), snap)?;
    let sorted = placement::placements(&doc, &map, id.as_str())?;
    let mut spill = placement::Spill::write(sorted, &scratch.join("placements"))?;
    let packs = map.packs;
    let doc_stores = doc.stores;
    drop((doc.contents, map.chunks));

    let manifest = Manifest::read_from(snap, id.as_str()).map_err(|p| unsound(id.as_str(), p))?;
    if manifest
        .stores
        .iter()
        .map(|s| &s.name)
        .ne(doc_stores.iter())
    {
        return Err(unsound(
            id.as_str(),
            Problem::new(
                codes::MANIFEST_INVALID,
                "the remote's snapshot document lists other stores than its manifest",
            ),
        ));
    }
    out.files = manifest.stores.iter().map(|s| s.files() as u64).sum();
    out.bytes = manifest.total_bytes();
    let stores_dir = snap.join(cairn_engine::repo::STORES_DIR);
    let links = build_tree(&manifest, &stores_dir, id.as_str())?;
    let file_of = |p: &Placement| -> Result<PathBuf> {
        let record = manifest.stores.get(p.store as usize);
        match record.and_then(|r| r.entries.get(p.entry as usize).map(|e| (r, e))) {
            Some((r, e))
                if r.status == StoreStatus::Captured
                    && e.kind == EntryKind::File
                    && e.link_of().is_none() =>
            {
                Ok(stores_dir.join(&r.name).join(e.path.as_path()))
            }
            _ => Err(unsound(
                id.as_str(),
                Problem::new(
                    codes::MANIFEST_INVALID,
                    format!(
                        "the remote's chunk list names entry {} that is not a file of the manifest",
                        p.entry
                    ),
                )
                .in_store(doc_stores.get(p.store as usize).map_or("", String::as_str)),
            )),
        }
    };
    // Before a byte is fetched: every placement is into a file.
    spill.for_each_pack(|rows| rows.iter().try_for_each(|p| file_of(p).map(drop)))?;

    cairn_engine::progress::begin("pull", Some(out.bytes));
    spill.for_each_pack(|rows| {
        let Some(group) = placement::by_pack(rows).pop() else {
            return Ok(());
        };
        cairn_engine::cancel::check()?;
        let (pack, size) = &packs[group.pack as usize];
        let place = |i: usize, data: &[u8]| -> Result<()> {
            for p in group.takers[i] {
                let path = file_of(p)?;
                let f = OpenOptions::new()
                    .write(true)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(&path)
                    .map_err(cairn_engine::error::io_at("open", &path))?;
                f.write_all_at(data, p.at)
                    .map_err(cairn_engine::error::io_at("write", &path))?;
            }
            cairn_engine::progress::advance(data.len() as u64 * group.takers[i].len() as u64);
            Ok(())
        };
        let needed: u64 = group.chunks.iter().map(|c| c.length).sum();
        // Streamed whole when most of it is wanted (one request, the pack
        // checked against its name too); chunk by chunk otherwise.
        let problems = if needed * 2 >= *size || group.chunks.len() > 64 {
            packread::stream_pack(&remote.backend, pack, *size, &group.chunks, place)?
        } else {
            packread::read_chunks(&remote.backend, pack, &group.chunks, place)?
        };
        if !problems.is_empty() {
            return Err(Error::Unsound {
                id: id.to_string(),
                problems,
            });
        }
        Ok(())
    })?;
    cairn_engine::progress::finish();
    for record in manifest
        .stores
        .iter()
        .filter(|r| r.status == StoreStatus::Captured)
    {
        for entry in &record.entries {
            if entry.kind == EntryKind::File && entry.link_of().is_none() {
                let path = stores_dir.join(&record.name).join(entry.path.as_path());
                let f = File::open(&path).map_err(cairn_engine::error::io_at("open", &path))?;
                f.sync_all()
                    .map_err(cairn_engine::error::io_at("sync", &path))?;
                cairn_engine::fsutil::make_read_only(&path)?;
            }
        }
    }
    for (first, path) in &links {
        fs::hard_link(first, path).map_err(cairn_engine::error::io_at("link", path))?;
    }
    Ok(())
}

/// The tree of `manifest` under `stores_dir`: directories and symlinks,
/// each plain file created at its size (its chunks come after). Returns
/// the hard links to make once the files they point at are complete.
fn build_tree(manifest: &Manifest, stores_dir: &Path, id: &str) -> Result<Vec<(PathBuf, PathBuf)>> {
    let mut links = Vec::new();
    cairn_engine::fsutil::create_dir_private(stores_dir)?;
    for record in manifest
        .stores
        .iter()
        .filter(|r| r.status == StoreStatus::Captured)
    {
        let root = stores_dir.join(&record.name);
        cairn_engine::fsutil::create_dir_private(&root)?;
        // The directories made so far: an entry goes only into one of
        // them (or the store's root), so a symlink the manifest lists can
        // never be a way out of the tree for a later entry or a hard link
        // (a hostile remote could otherwise have a root pull write
        // through `a -> /etc` into `a/passwd`).
        let mut dirs: HashSet<&[u8]> = HashSet::new();
        let in_tree =
            |dirs: &HashSet<&[u8]>, path: &[u8]| match path.iter().rposition(|&b| b == b'/') {
                None => true,
                Some(cut) => dirs.contains(&path[..cut]),
            };
        for entry in &record.entries {
            let rel = entry.path.as_path();
            let outside = |what: &str| {
                unsound(
                    id,
                    Problem::new(
                        codes::MANIFEST_INVALID,
                        format!("{what} is not under a directory the manifest lists"),
                    )
                    .in_store(&record.name)
                    .at(&entry.path),
                )
            };
            if !in_tree(&dirs, entry.path.as_bytes()) {
                return Err(outside("the entry"));
            }
            if let Some(first) = entry.link_of() {
                if !in_tree(&dirs, first.as_bytes()) {
                    return Err(outside("the file it is a hard link of"));
                }
            }
            if rel.is_absolute()
                || rel
                    .components()
                    .any(|c| !matches!(c, std::path::Component::Normal(_)))
            {
                return Err(unsound(
                    id,
                    Problem::new(codes::MANIFEST_INVALID, "a path that leaves its store")
                        .in_store(&record.name)
                        .at(&entry.path),
                ));
            }
            let path = root.join(rel);
            match (entry.kind, entry.link_of()) {
                (EntryKind::Dir, _) => {
                    fs::create_dir(&path)
                        .map_err(cairn_engine::error::io_at("create directory", &path))?;
                    dirs.insert(entry.path.as_bytes());
                }
                (EntryKind::Symlink, _) => {
                    let target = entry.target().map(|t| t.as_path()).unwrap_or(Path::new(""));
                    std::os::unix::fs::symlink(target, &path)
                        .map_err(cairn_engine::error::io_at("create symlink", &path))?
                }
                (EntryKind::File, Some(first)) => links.push((root.join(first.as_path()), path)),
                (EntryKind::File, None) => {
                    // A new file, never an existing name: a symlink listed
                    // under the same path is not followed.
                    let f = OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .open(&path)
                        .map_err(cairn_engine::error::io_at("create", &path))?;
                    f.set_len(entry.size.unwrap_or(0))
                        .map_err(cairn_engine::error::io_at("write", &path))?;
                }
            }
        }
    }
    Ok(links)
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
/// `manifest.json` in `snap` as they arrive (never held whole: at 100,000
/// files it is tens of MiB), synced and made read-only.
pub fn fetch_manifest(
    remote: &Remote,
    map: &ChunkMap,
    doc: &SnapshotDoc,
    id: &str,
    snap: &Path,
) -> Result<()> {
    let path = snap.join(cairn_engine::manifest::FILE_NAME);
    let mut file = File::create(&path).map_err(cairn_engine::error::io_at("create", &path))?;
    manifest_into(remote, map, doc, id, &mut file, &path)?;
    file.sync_all()
        .map_err(cairn_engine::error::io_at("sync", &path))?;
    cairn_engine::fsutil::make_read_only(&path)
}

/// The manifest's bytes in memory, checked (for `validate --remote
/// --read-data`, which has no local directory to write them to).
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
    manifest_into(remote, map, doc, id, &mut bytes, Path::new("memory"))?;
    Ok(bytes)
}

/// The manifest's chunks into `sink` (named `shown` in a write error),
/// each against its hash, the whole against its recorded size and SHA-256.
fn manifest_into(
    remote: &Remote,
    map: &ChunkMap,
    doc: &SnapshotDoc,
    id: &str,
    sink: &mut impl std::io::Write,
    shown: &Path,
) -> Result<()> {
    let mut hasher = Sha256::new();
    let mut size = 0u64;
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
        size += data.len() as u64;
        if size > format::MAX_DOC_BYTES as u64 {
            return Err(unsound(
                id,
                Problem::new(codes::MANIFEST_INVALID, "the manifest is too large"),
            ));
        }
        hasher.update(&data);
        sink.write_all(&data)
            .map_err(cairn_engine::error::io_at("write", shown))?;
    }
    if size != doc.manifest.size || Checksum::from_hasher(hasher) != doc.manifest.sha256 {
        return Err(unsound(
            id,
            Problem::new(
                codes::MANIFEST_DIGEST_MISMATCH,
                "the manifest rebuilt from the remote is not the one pushed",
            )
            .at(cairn_engine::manifest::FILE_NAME),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use cairn_engine::manifest::{Entry, RawPath, Shape, StoreRecord};

    use super::*;

    fn manifest(entries: Vec<Entry>) -> Manifest {
        Manifest {
            created_at: chrono::Utc::now(),
            format_version: 3,
            host: "h".into(),
            id: "20260101T000000Z".into(),
            restore_of: None,
            stores: vec![StoreRecord {
                entries,
                kind: "chroma-dir".into(),
                metadata: Default::default(),
                name: "chroma".into(),
                options: Default::default(),
                root: None,
                shape: Shape::Dir,
                source: "/x".into(),
                status: StoreStatus::Captured,
                warnings: Vec::new(),
            }],
            tags: Vec::new(),
            tool_version: "t".into(),
        }
    }

    fn symlink(path: &str, target: &Path) -> Entry {
        let mut e = Entry::new(path, EntryKind::Symlink);
        e.set_target(Some(RawPath::from_bytes(
            target.as_os_str().as_encoded_bytes(),
        )));
        e
    }

    fn file(path: &str) -> Entry {
        let mut e = Entry::new(path, EntryKind::File);
        e.size = Some(4);
        e
    }

    /// A hostile remote's manifest: a symlink out of the tree, then
    /// entries through it or at its name. Nothing outside is written.
    #[test]
    fn a_listed_symlink_is_never_a_way_out_of_the_tree() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("passwd"), b"root").unwrap();
        let cases = [
            vec![symlink("a", outside.path()), file("a/passwd")],
            vec![
                symlink("a", outside.path()),
                file("b").with_link_of("a/passwd"),
            ],
            vec![symlink("p", &outside.path().join("passwd")), file("p")],
        ];
        for entries in cases {
            let work = tempfile::tempdir().unwrap();
            let got = build_tree(
                &manifest(entries.clone()),
                &work.path().join("stores"),
                "id",
            );
            assert!(got.is_err(), "{entries:?}");
            assert_eq!(
                std::fs::read(outside.path().join("passwd")).unwrap(),
                b"root"
            );
            assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 1);
        }
        // The same names under a listed directory are fine.
        let work = tempfile::tempdir().unwrap();
        let ok = manifest(vec![Entry::new("a", EntryKind::Dir), file("a/passwd")]);
        build_tree(&ok, &work.path().join("stores"), "id").unwrap();
        assert!(work.path().join("stores/chroma/a/passwd").is_file());
    }
}
