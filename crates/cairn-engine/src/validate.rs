//! The Validate stage: a snapshot against its manifest, then each plug-in's
//! own check. Every problem is collected (with a stable code), none stops
//! the run; a snapshot is valid when the list is empty.
//!
//! Each deep validation leaves its result beside the manifest, in
//! `validated.json` (a [`ValidationRecord`]): `list` shows it, a quick
//! validation repeats the checksum mismatches it found (which sizes alone
//! cannot see), and the next snapshot copies a file it found damaged
//! instead of hard-linking it. The record is not part of the manifest (nor
//! of its digest): it is the snapshot's last known state, rewritten by
//! every deep validation.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs::Metadata;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::fsutil;
use crate::id::SnapshotId;
use crate::manifest::{self, Entry, EntryKind, Manifest, RawPath, StoreRecord, StoreStatus};
use crate::plugin::{Depth, StoreHandler};
use crate::problem::{codes, Problem};
use crate::repo::{Repository, PINNED_MARKER, STORES_DIR, VALIDATION_RECORD};
use crate::stores::Stores;

#[derive(Debug, Clone)]
pub struct ValidationReport {
    pub id: String,
    pub valid: bool,
    pub errors: Vec<Problem>,
}

impl ValidationReport {
    pub(crate) fn new(id: &SnapshotId, errors: Vec<Problem>) -> Self {
        ValidationReport {
            id: id.to_string(),
            valid: errors.is_empty(),
            errors,
        }
    }
}

/// Validates one snapshot; also returns its manifest when it could be read.
/// A deep validation records its result in the snapshot's directory
/// ([`ValidationRecord`]); a quick one adds the checksum mismatches the
/// last deep one recorded, since sizes cannot show them.
pub fn validate_snapshot(
    repo: &Repository,
    stores: &Stores,
    id: &SnapshotId,
    depth: Depth,
) -> (ValidationReport, Option<Manifest>) {
    let dir = repo.snapshot_dir(id);
    if !dir.is_dir() {
        let p = Problem::new(
            codes::SNAPSHOT_MISSING,
            format!("{} does not exist", dir.display()),
        );
        return (ValidationReport::new(id, vec![p]), None);
    }
    let manifest = match Manifest::read_from(&dir, id.as_str()) {
        Ok(m) => m,
        Err(p) => {
            let problems = vec![p];
            if depth == Depth::Deep {
                write_record(&dir, depth, &problems);
            }
            return (ValidationReport::new(id, problems), None);
        }
    };
    let mut problems = check_layout(&dir, &manifest);
    if depth == Depth::Deep {
        crate::progress::begin("validate", Some(manifest.total_bytes()));
    }
    for record in manifest
        .stores
        .iter()
        .filter(|r| r.status == StoreStatus::Captured)
    {
        let root = dir.join(STORES_DIR).join(&record.name);
        let found = match stores.for_record(record) {
            Ok(handler) => check_store(&*handler, &root, record, depth),
            Err(e) => {
                // The files can still be checked; the kind's own checks cannot.
                let mut found = check_files(&root, record, depth);
                found.push(kind_unavailable(stores, record, &e));
                found
            }
        };
        problems.extend(found);
    }
    crate::progress::finish();
    match depth {
        Depth::Deep => write_record(&dir, depth, &problems),
        Depth::Quick => {
            if let Some(record) = read_record(&dir) {
                problems.extend(record.unseen_by_quick(&problems));
            }
        }
    }
    (ValidationReport::new(id, problems), Some(manifest))
}

/// The result of a snapshot's last deep validation, as `validated.json`
/// in its directory holds it.
#[derive(Debug, Clone)]
pub struct ValidationRecord {
    pub validated_at: DateTime<Utc>,
    pub depth: Depth,
    pub problems: Vec<RecordedProblem>,
}

/// A [`Problem`] as read back from a record (its code a string: it may be
/// a code of a plug-in this binary does not link).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedProblem {
    pub code: String,
    pub store: Option<String>,
    pub path: Option<String>,
    pub detail: String,
}

impl ValidationRecord {
    pub fn valid(&self) -> bool {
        self.problems.is_empty()
    }

    /// The paths of `store` whose copy this validation found damaged
    /// (missing, resized, rehashed, unreadable, of another type): never
    /// to be hard-linked into another snapshot.
    pub(crate) fn damaged_files(&self, store: &str) -> HashSet<String> {
        self.problems
            .iter()
            .filter(|p| p.store.as_deref() == Some(store))
            .filter(|p| codes::ABOUT_FILES.contains(&p.code.as_str()))
            .filter_map(|p| p.path.clone())
            .collect()
    }

    /// What a deep validation found that a quick one cannot see (a file's
    /// bytes, at its recorded size), unless `found` already reports that
    /// file: the damage is still there until a deep validation or a
    /// repair says otherwise.
    fn unseen_by_quick(&self, found: &[Problem]) -> Vec<Problem> {
        if self.depth != Depth::Deep {
            return Vec::new();
        }
        self.problems
            .iter()
            .filter(|p| p.code == codes::FILE_CHECKSUM_MISMATCH)
            .filter(|p| !found.iter().any(|f| f.store == p.store && f.path == p.path))
            .map(|p| {
                let mut problem = Problem::new(
                    codes::FILE_CHECKSUM_MISMATCH,
                    format!(
                        "found by the deep validation of {} (a quick validation does not hash): {}",
                        self.validated_at
                            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                        p.detail
                    ),
                );
                problem.store = p.store.clone();
                problem.path = p.path.clone();
                problem
            })
            .collect()
    }
}

/// The snapshot's last recorded validation; `None` when there is none (a
/// snapshot made before records existed) or it cannot be read.
pub fn last_validation(repo: &Repository, id: &SnapshotId) -> Option<ValidationRecord> {
    read_record(&repo.snapshot_dir(id))
}

/// `validated.json` on disk. Field names are the file format: a record
/// written by one version of Cairn is read by the next.
#[derive(Serialize, Deserialize)]
struct RecordFile {
    format: u32,
    validated_at: DateTime<Utc>,
    depth: String,
    valid: bool,
    problems: Vec<RecordFileProblem>,
}

#[derive(Serialize, Deserialize)]
struct RecordFileProblem {
    code: String,
    #[serde(default)]
    store: Option<String>,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    detail: String,
}

const RECORD_FORMAT: u32 = 1;
/// A record lists every damaged file; past this it is not read (and the
/// snapshot shows no known result).
const MAX_RECORD_BYTES: u64 = 64 << 20;

fn depth_name(depth: Depth) -> &'static str {
    match depth {
        Depth::Deep => "deep",
        Depth::Quick => "quick",
    }
}

pub(crate) fn read_record(dir: &Path) -> Option<ValidationRecord> {
    let path = dir.join(VALIDATION_RECORD);
    let file = fsutil::open_nofollow(&path).ok()?;
    let mut bytes = Vec::new();
    file.take(MAX_RECORD_BYTES + 1)
        .read_to_end(&mut bytes)
        .ok()?;
    if bytes.len() as u64 > MAX_RECORD_BYTES {
        tracing::warn!(path = %path.display(), "validation record too large; ignored");
        return None;
    }
    let parsed: RecordFile = match serde_json::from_slice(&bytes) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "validation record unreadable; ignored");
            return None;
        }
    };
    let depth = match parsed.depth.as_str() {
        "deep" => Depth::Deep,
        "quick" => Depth::Quick,
        _ => return None,
    };
    Some(ValidationRecord {
        validated_at: parsed.validated_at,
        depth,
        problems: parsed
            .problems
            .into_iter()
            .map(|p| RecordedProblem {
                code: p.code,
                store: p.store,
                path: p.path,
                detail: p.detail,
            })
            .collect(),
    })
}

/// Records a validation's result in the snapshot's directory, atomically
/// (read-only, like the snapshot's files). Best effort: a validation run
/// by a user who cannot write the repository still reports; it only
/// leaves no record.
pub(crate) fn write_record(dir: &Path, depth: Depth, problems: &[Problem]) {
    let record = RecordFile {
        format: RECORD_FORMAT,
        validated_at: Utc::now(),
        depth: depth_name(depth).to_owned(),
        valid: problems.is_empty(),
        problems: problems
            .iter()
            .map(|p| RecordFileProblem {
                code: p.code.to_owned(),
                store: p.store.clone(),
                path: p.path.clone(),
                detail: p.detail.clone(),
            })
            .collect(),
    };
    let path = dir.join(VALIDATION_RECORD);
    let written = serde_json::to_vec_pretty(&record)
        .map_err(|e| crate::Error::io("encode", &path, std::io::Error::other(e)))
        .and_then(|bytes| fsutil::write_atomic(&path, &bytes))
        .and_then(|()| fsutil::make_read_only(&path));
    if let Err(e) = written {
        tracing::warn!(error = %e, "could not record the validation result");
    }
}

/// The name [`fsutil::write_atomic`] gives the record while writing it:
/// a validation running beside another one may meet it.
fn is_record_being_written(name: &str) -> bool {
    name.strip_prefix(&format!(".{VALIDATION_RECORD}.cairn-tmp-"))
        .is_some_and(|pid| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
}

/// One store of a snapshot, its files at `root`: every file against its
/// entry, and the kind's own check. The check (SQLite integrity_check: CPU
/// on one core) runs on its own thread beside the hashing (I/O and the
/// other cores), not after it.
pub(crate) fn check_store(
    handler: &dyn StoreHandler,
    root: &Path,
    record: &StoreRecord,
    depth: Depth,
) -> Vec<Problem> {
    std::thread::scope(|scope| {
        let kind = scope.spawn(|| {
            let started = std::time::Instant::now();
            let found = kind_check(handler, root, record, depth);
            tracing::info!(store = %record.name, check_ms = started.elapsed().as_millis() as u64, "kind check done");
            found
        });
        let started = std::time::Instant::now();
        let mut found = check_files(root, record, depth);
        tracing::info!(store = %record.name, files_ms = started.elapsed().as_millis() as u64, "files checked");
        // A panicking check is a bug; report it as a problem, not a crash.
        found.extend(kind.join().unwrap_or_else(|_| {
            vec![Problem::new(codes::READ_FAILED, "a store check panicked").in_store(&record.name)]
        }));
        found
    })
}

/// The kind's own check, its problems named by store.
pub(crate) fn kind_check(
    handler: &dyn StoreHandler,
    root: &Path,
    record: &StoreRecord,
    depth: Depth,
) -> Vec<Problem> {
    handler
        .check(root, record, depth)
        .into_iter()
        .map(|p| {
            if p.store.is_none() {
                p.in_store(&record.name)
            } else {
                p
            }
        })
        .collect()
}

/// Why a store's own checks could not run: its kind is not linked into
/// this binary, or its recorded options no longer build a handler.
pub(crate) fn kind_unavailable(
    stores: &Stores,
    record: &StoreRecord,
    error: &crate::Error,
) -> Problem {
    let detail = if stores.registry().get(&record.kind).is_none() {
        format!(
            "no plug-in for kind {:?} is linked into this cairn; its files were checked, its own checks were not",
            record.kind
        )
    } else {
        format!("its files were checked, its own checks could not run: {error}")
    };
    Problem::new(codes::STORE_KIND_UNKNOWN, detail).in_store(&record.name)
}

/// Top level of a snapshot dir: the manifest, `stores/` with one directory
/// per captured store, the pin marker and the validation record. Anything
/// else is unexpected.
pub(crate) fn check_layout(dir: &Path, manifest: &Manifest) -> Vec<Problem> {
    let mut problems = Vec::new();
    let captured: BTreeSet<&str> = manifest
        .stores
        .iter()
        .filter(|s| s.status == StoreStatus::Captured)
        .map(|s| s.name.as_str())
        .collect();
    for (rel, meta) in list_shallow(dir) {
        let ok = match rel.as_str() {
            manifest::FILE_NAME | PINNED_MARKER | VALIDATION_RECORD => meta.is_file(),
            STORES_DIR => meta.is_dir(),
            name => is_record_being_written(name) && meta.is_file(),
        };
        if !ok {
            problems.push(Problem::new(codes::FILE_UNEXPECTED, "not part of a snapshot").at(rel));
        }
    }
    let stores_dir = dir.join(STORES_DIR);
    for (name, meta) in list_shallow(&stores_dir) {
        if !(meta.is_dir() && captured.contains(name.as_str())) {
            problems.push(
                Problem::new(
                    codes::FILE_UNEXPECTED,
                    "no captured store of this name in the manifest",
                )
                .at(format!("{STORES_DIR}/{name}")),
            );
        }
    }
    problems
}

fn list_shallow(dir: &Path) -> Vec<(String, Metadata)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<(String, Metadata)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let meta = std::fs::symlink_metadata(e.path()).ok()?;
            Some((e.file_name().to_string_lossy().into_owned(), meta))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// One store's files against its manifest entries: presence, type, size,
/// symlink target, hard links sharing their inode, nothing unlisted, and
/// (deep) every byte's SHA-256 (once per inode).
///
/// The tree is walked once and each path looked up among the entries as it
/// is met, so memory is one index slot per entry, not a second listing of
/// the tree beside the manifest.
pub(crate) fn check_files(root: &Path, record: &StoreRecord, depth: Depth) -> Vec<Problem> {
    let store = record.name.as_str();
    let index: HashMap<&RawPath, usize> = record
        .entries
        .iter()
        .enumerate()
        .map(|(i, e)| (&e.path, i))
        .collect();
    let mut seen = vec![false; record.entries.len()];
    // The inode of each file met, for the hard links' check.
    let mut inodes: Vec<Option<(u64, u64)>> = vec![None; record.entries.len()];
    let mut unexpected = Vec::new();
    // (entry index, problem): reported in manifest order whatever the walk's.
    let mut entry_problems: Vec<(usize, Problem)> = Vec::new();
    let mut to_hash: Vec<&Entry> = Vec::new();
    let walked = crate::tree::walk_tree(root, &mut |rel, meta| {
        let Some(&i) = index.get(rel) else {
            unexpected.push(
                Problem::new(
                    codes::FILE_UNEXPECTED,
                    "present in the snapshot but not in its manifest",
                )
                .in_store(store)
                .at(rel),
            );
            return Ok(());
        };
        seen[i] = true;
        let entry = &record.entries[i];
        match check_entry(root, entry, meta) {
            Some(p) => entry_problems.push((i, p.in_store(store).at(&entry.path))),
            None if entry.kind == EntryKind::File => {
                inodes[i] = Some((meta.dev(), meta.ino()));
                if depth == Depth::Deep && entry.link_of.is_none() {
                    to_hash.push(entry);
                }
            }
            None => {}
        }
        Ok(())
    });
    if let Err(e) = walked {
        return vec![Problem::new(codes::READ_FAILED, e.to_string()).in_store(store)];
    }
    for (i, entry) in record.entries.iter().enumerate() {
        if !seen[i] {
            entry_problems.push((
                i,
                Problem::new(
                    codes::FILE_MISSING,
                    "listed in the manifest but not in the snapshot",
                )
                .in_store(store)
                .at(&entry.path),
            ));
        }
    }
    // A hard link is the very inode of the entry it links (whose bytes
    // are hashed once, above).
    for (i, entry) in record.entries.iter().enumerate() {
        let Some(first) = &entry.link_of else {
            continue;
        };
        let first_inode = index.get(first).and_then(|&f| inodes[f]);
        if let (Some(this), Some(that)) = (inodes[i], first_inode) {
            if this != that {
                entry_problems.push((
                    i,
                    Problem::new(
                        codes::HARD_LINK_MISMATCH,
                        format!("manifest says a hard link of {first}, found another file"),
                    )
                    .in_store(store)
                    .at(&entry.path),
                ));
            }
        }
    }
    entry_problems.sort_by_key(|(i, _)| *i);
    let mut problems = unexpected;
    problems.extend(entry_problems.into_iter().map(|(_, p)| p));
    problems.extend(hash_all(root, store, &to_hash));
    problems
}

/// What can be checked of one entry without reading its bytes: its type,
/// a file's size, a symlink's target.
fn check_entry(root: &Path, entry: &Entry, meta: &Metadata) -> Option<Problem> {
    let actual_kind = if meta.is_dir() {
        Some(EntryKind::Dir)
    } else if meta.is_symlink() {
        Some(EntryKind::Symlink)
    } else if meta.is_file() {
        Some(EntryKind::File)
    } else {
        None
    };
    if actual_kind != Some(entry.kind) {
        return Some(Problem::new(
            codes::FILE_TYPE_MISMATCH,
            format!(
                "manifest says {}, found {}",
                entry.kind.name(),
                actual_kind.map_or("a FIFO, socket or device", EntryKind::name)
            ),
        ));
    }
    match entry.kind {
        EntryKind::File => {
            let expected = entry.size.unwrap_or(0);
            (meta.size() != expected).then(|| {
                Problem::new(
                    codes::FILE_SIZE_MISMATCH,
                    format!("manifest says {expected} bytes, found {}", meta.size()),
                )
            })
        }
        EntryKind::Symlink => {
            let actual = std::fs::read_link(root.join(&entry.path))
                .map(|t| RawPath::from(t.as_path()))
                .unwrap_or_default();
            (Some(&actual) != entry.target.as_ref()).then(|| {
                Problem::new(
                    codes::SYMLINK_TARGET_MISMATCH,
                    format!(
                        "manifest says -> {:?}, found -> {actual:?}",
                        entry.target.clone().unwrap_or_default()
                    ),
                )
            })
        }
        EntryKind::Dir => None,
    }
}

/// Hashes files on every core.
fn hash_all(root: &Path, store: &str, entries: &[&Entry]) -> Vec<Problem> {
    crate::parallel::filter_map_largest_first(
        entries,
        |e| e.size.unwrap_or(0),
        |e| hash_one(root, store, e),
    )
}

fn hash_one(root: &Path, store: &str, entry: &Entry) -> Option<Problem> {
    let path = root.join(&entry.path);
    match crate::progress::verifying(|| fsutil::hash_file(&path)) {
        Ok((_, sha)) if Some(sha) == entry.sha256 => None,
        Ok((_, sha)) => Some(Problem::checksum_mismatch(
            store,
            &entry.path,
            entry.sha256.as_ref(),
            &sha,
        )),
        Err(e) => Some(
            Problem::new(codes::READ_FAILED, e.to_string())
                .in_store(store)
                .at(&entry.path),
        ),
    }
}

/// A restored copy of one store (a drill's) against what its manifest
/// records of each entry beyond its bytes: the mode (setuid and setgid
/// only where the recorded owner came back), the owner when this process
/// could give it (root), and every recorded extended attribute this
/// process could set. The snapshot's own copies are 0400 and root's by
/// design; only a restored tree can be compared this way.
pub(crate) fn check_restored_metadata(root: &Path, record: &StoreRecord) -> Vec<Problem> {
    let store = record.name.as_str();
    let root_user = rustix::process::geteuid().is_root();
    let index: HashMap<&RawPath, usize> = record
        .entries
        .iter()
        .enumerate()
        .map(|(i, e)| (&e.path, i))
        .collect();
    let mut problems: Vec<(usize, Problem)> = Vec::new();
    let walked = crate::tree::walk_tree(root, &mut |rel, meta| {
        let Some(&i) = index.get(rel) else {
            return Ok(()); // check_files reports it
        };
        let entry = &record.entries[i];
        if entry.kind == EntryKind::Symlink {
            return Ok(());
        }
        let mut wrong = Vec::new();
        let owner_kept =
            entry.uid.is_none_or(|u| u == meta.uid()) && entry.gid.is_none_or(|g| g == meta.gid());
        let expected = if owner_kept {
            entry.mode
        } else {
            entry.mode & !0o6000
        };
        if fsutil::mode_bits(meta) != expected {
            wrong.push(format!(
                "mode {:04o}, manifest says {expected:04o}",
                fsutil::mode_bits(meta)
            ));
        }
        if root_user && !owner_kept {
            wrong.push(format!(
                "owner {}:{}, manifest says {}:{}",
                meta.uid(),
                meta.gid(),
                entry.uid.unwrap_or_default(),
                entry.gid.unwrap_or_default()
            ));
        }
        let path = root.join(rel);
        for x in &entry.xattrs {
            let name = x.name.as_bytes();
            let settable = root_user
                || name.starts_with(b"user.")
                || name == crate::xattr::ACL_ACCESS
                || name == crate::xattr::ACL_DEFAULT;
            if settable && crate::xattr::read_path(&path, name).as_deref() != Some(&x.value[..]) {
                wrong.push(format!("extended attribute {} is not as recorded", x.name));
            }
        }
        if !wrong.is_empty() {
            problems.push((
                i,
                Problem::new(codes::METADATA_MISMATCH, wrong.join("; "))
                    .in_store(store)
                    .at(&entry.path),
            ));
        }
        Ok(())
    });
    if let Err(e) = walked {
        return vec![Problem::new(codes::READ_FAILED, e.to_string()).in_store(store)];
    }
    problems.sort_by_key(|(i, _)| *i);
    problems.into_iter().map(|(_, p)| p).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{Shape, Xattr};
    use std::os::unix::fs::PermissionsExt;

    fn record(entries: Vec<Entry>) -> StoreRecord {
        StoreRecord {
            entries,
            kind: "chroma-dir".into(),
            metadata: Default::default(),
            name: "chroma".into(),
            options: Default::default(),
            root: None,
            shape: Shape::Dir,
            source: "/data/chroma".into(),
            status: StoreStatus::Captured,
            warnings: Vec::new(),
        }
    }

    #[test]
    fn a_restored_copy_is_compared_on_mode_owner_attributes_and_links() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        std::fs::write(&a, b"abc").unwrap();
        std::fs::hard_link(&a, dir.path().join("b")).unwrap();
        std::fs::write(dir.path().join("c"), b"abc").unwrap();
        std::fs::set_permissions(&a, std::fs::Permissions::from_mode(0o640)).unwrap();
        let meta = std::fs::metadata(&a).unwrap();
        let file = |path: &str| Entry {
            mode: 0o640,
            size: Some(3),
            sha256: Some(crate::checksum::Checksum::of(b"abc")),
            uid: Some(meta.uid()),
            gid: Some(meta.gid()),
            ..Entry::new(path, EntryKind::File)
        };
        let mut entries = vec![
            file("a"),
            Entry {
                link_of: Some("a".into()),
                ..file("b")
            },
            Entry {
                mode: 0o644,
                ..file("c")
            },
        ];
        std::fs::set_permissions(dir.path().join("c"), std::fs::Permissions::from_mode(0o644))
            .unwrap();
        let rec = record(entries.clone());
        assert_eq!(check_files(dir.path(), &rec, Depth::Deep), vec![]);
        assert_eq!(check_restored_metadata(dir.path(), &rec), vec![]);

        // `c` recorded as a link of `a`, a mode that differs, an attribute
        // that is not there.
        entries[2].link_of = Some("a".into());
        entries[0].mode = 0o600;
        entries[0].xattrs = vec![Xattr {
            name: "user.origin".into(),
            value: b"seed".to_vec(),
        }];
        let rec = record(entries);
        let files = check_files(dir.path(), &rec, Depth::Quick);
        assert_eq!(files.len(), 1, "{files:?}");
        assert_eq!(files[0].code, codes::HARD_LINK_MISMATCH);
        let meta_problems = check_restored_metadata(dir.path(), &rec);
        assert_eq!(meta_problems.len(), 1, "{meta_problems:?}");
        assert_eq!(meta_problems[0].code, codes::METADATA_MISMATCH);
        assert!(
            meta_problems[0].detail.contains("mode 0640"),
            "{meta_problems:?}"
        );
        assert!(
            meta_problems[0].detail.contains("user.origin"),
            "{meta_problems:?}"
        );
    }

    #[test]
    fn a_record_reads_back_and_garbage_is_no_record() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_record(dir.path()).is_none());
        let found = vec![Problem::checksum_mismatch(
            "chroma",
            "seg/a.bin",
            None,
            &crate::checksum::Checksum::from_hasher(sha2::Sha256::default()),
        )];
        write_record(dir.path(), Depth::Deep, &found);
        let record = read_record(dir.path()).unwrap();
        assert!(!record.valid());
        assert_eq!(record.depth, Depth::Deep);
        assert_eq!(record.problems[0].code, codes::FILE_CHECKSUM_MISMATCH);
        assert_eq!(
            record.damaged_files("chroma"),
            HashSet::from(["seg/a.bin".to_owned()])
        );
        assert!(record.damaged_files("db").is_empty());
        // Rewritten over the read-only record of the last run.
        write_record(dir.path(), Depth::Deep, &[]);
        assert!(read_record(dir.path()).unwrap().valid());

        let path = dir.path().join(VALIDATION_RECORD);
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, b"{\"format\": 1, \"valid\": tru").unwrap();
        assert!(read_record(dir.path()).is_none());
    }

    #[test]
    fn only_the_records_own_temporary_name_is_part_of_the_layout() {
        assert!(is_record_being_written(".validated.json.cairn-tmp-1234"));
        for name in [
            ".validated.json.cairn-tmp-",
            ".validated.json.cairn-tmp-12x",
            ".pinned.cairn-tmp-1234",
            "validated.json.cairn-tmp-1234",
        ] {
            assert!(!is_record_being_written(name), "{name}");
        }
    }
}
