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

use crate::dirfd::{DirFd, ParentCache};
use crate::fsutil;
use crate::id::SnapshotId;
use crate::manifest::{self, Entry, EntryKind, Manifest, RawPath, StoreRecord, StoreStatus};
use crate::path_index::EntriesByPath;
use crate::plugin::{Depth, StoreHandler};
use crate::problem::{codes, Problem};
use crate::repo::{Repository, PINNED_MARKER, STORES_DIR, VALIDATION_RECORD};
use crate::share::Subset;
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
    validate_snapshot_share(repo, stores, id, depth, None)
}

/// [`validate_snapshot`], reading the bytes of only the files in `subset`
/// (`cairn validate --subset n/t`; deep only). Every file is still checked
/// for presence, type and size, and a store's own check runs when one of
/// its files is in the share or its last record lists a finding of that
/// check. The record written keeps what earlier runs found in the files
/// this one did not read (their damage is still there until a read or a
/// repair says otherwise), so `--subset 1/7` … `7/7` on seven nights leave
/// the record a full deep validation would.
pub fn validate_snapshot_subset(
    repo: &Repository,
    stores: &Stores,
    id: &SnapshotId,
    subset: Subset,
) -> (ValidationReport, Option<Manifest>) {
    validate_snapshot_share(repo, stores, id, Depth::Deep, Some(subset))
}

fn validate_snapshot_share(
    repo: &Repository,
    stores: &Stores,
    id: &SnapshotId,
    depth: Depth,
    subset: Option<Subset>,
) -> (ValidationReport, Option<Manifest>) {
    let subset = subset.filter(|s| depth == Depth::Deep && s.t() > 1);
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
    // What the last deep run found: a subset run keeps what lies outside
    // its share, and re-runs a kind's check that found something.
    let previous = subset.and_then(|_| read_record(&dir));
    let reading = match subset {
        Some(share) => Reading::Subset(share),
        None if depth == Depth::Deep => Reading::All,
        None => Reading::Sizes,
    };
    for record in manifest
        .stores
        .iter()
        .filter(|r| r.status == StoreStatus::Captured)
    {
        let root = dir.join(STORES_DIR).join(&record.name);
        let kind = match subset {
            Some(share) => {
                let touched = record
                    .entries
                    .iter()
                    .any(|e| e.kind == EntryKind::File && share.contains(&record.name, &e.path));
                let found_before = previous
                    .as_ref()
                    .is_some_and(|r| r.kind_found_something(&record.name));
                KindCheck::Run(Depth::Deep).only_if(touched || found_before)
            }
            None => KindCheck::Run(depth),
        };
        let found = match stores.for_record(record) {
            Ok(handler) => check_store_reading(&*handler, &root, record, reading, kind),
            Err(e) => {
                // The files can still be checked; the kind's own checks cannot.
                let mut found = check_files_reading(&root, record, reading).problems;
                found.push(kind_unavailable(stores, record, &e));
                found
            }
        };
        problems.extend(found);
    }
    crate::progress::finish();
    if let (Some(share), Some(previous)) = (subset, &previous) {
        problems.extend(previous.unread_by(share, &problems));
    }
    match depth {
        Depth::Deep => write_record_read(
            &dir,
            depth,
            &problems,
            RecordRead {
                subset,
                rotation: None,
            },
        ),
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
    /// The share of files whose bytes this run read (`validate --subset`);
    /// `None`: every file (or, for a new snapshot's own validation, see
    /// `rotation`).
    pub subset: Option<Subset>,
    /// A new snapshot's own validation: the share of the copies it reused
    /// from its parent that it re-read (every copy it wrote was re-read).
    /// The next snapshot reads the next share.
    pub rotation: Option<Subset>,
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

    /// Whether this run's record holds a finding of `store`'s own check
    /// (a code the engine does not report itself).
    fn kind_found_something(&self, store: &str) -> bool {
        self.problems
            .iter()
            .any(|p| p.store.as_deref() == Some(store) && engine_code(&p.code).is_none())
    }

    /// What this record found in bytes that a run reading only `share`
    /// did not read again: checksum mismatches and read failures of files
    /// outside the share, unless `found` already names the file. (Every
    /// other finding about files — missing, resized, retyped — is seen by
    /// every run, whatever its share.)
    fn unread_by(&self, share: Subset, found: &[Problem]) -> Vec<Problem> {
        self.problems
            .iter()
            .filter_map(|p| {
                let code = engine_code(&p.code)
                    .filter(|c| [codes::FILE_CHECKSUM_MISMATCH, codes::READ_FAILED].contains(c))?;
                let (store, path) = (p.store.as_deref()?, p.path.as_deref()?);
                if share.contains(store, &RawPath::from(path))
                    || found.iter().any(|f| {
                        f.store.as_deref() == Some(store) && f.path.as_deref() == Some(path)
                    })
                {
                    return None;
                }
                let mut problem = Problem::new(
                    code,
                    format!(
                        "found by the validation of {}, not in share {share} read now: {}",
                        self.validated_at
                            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                        p.detail
                    ),
                );
                problem.store = p.store.clone();
                problem.path = p.path.clone();
                Some(problem)
            })
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
    /// `n/t`: only the files of that share had their bytes read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    subset: Option<String>,
    /// `n/t`: a new snapshot's own validation, which re-read that share
    /// of the copies reused from its parent (and every copy it wrote).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rotation: Option<String>,
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
    let share = |s: &Option<String>| s.as_deref().and_then(|s| Subset::parse(s).ok());
    Some(ValidationRecord {
        subset: share(&parsed.subset),
        rotation: share(&parsed.rotation),
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
    write_record_read(dir, depth, problems, RecordRead::default())
}

/// What a validation read, as its record says.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RecordRead {
    pub subset: Option<Subset>,
    pub rotation: Option<Subset>,
}

/// [`write_record`], saying what was read. A snapshot's rotation share
/// outlives later validations of it (each rewrites the record): the next
/// snapshot continues the rotation from it.
pub(crate) fn write_record_read(dir: &Path, depth: Depth, problems: &[Problem], read: RecordRead) {
    let rotation = read
        .rotation
        .or_else(|| read_record(dir).and_then(|r| r.rotation));
    let record = RecordFile {
        subset: read.subset.map(|s| s.to_string()),
        rotation: rotation.map(|s| s.to_string()),
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

/// The engine's own code spelled `code`, `None` for a kind's code.
fn engine_code(code: &str) -> Option<&'static str> {
    [
        codes::SNAPSHOT_MISSING,
        codes::MANIFEST_MISSING,
        codes::MANIFEST_INVALID,
        codes::MANIFEST_DIGEST_MISMATCH,
        codes::MANIFEST_UNSUPPORTED_VERSION,
        codes::FILE_MISSING,
        codes::FILE_SIZE_MISMATCH,
        codes::FILE_CHECKSUM_MISMATCH,
        codes::FILE_UNEXPECTED,
        codes::FILE_TYPE_MISMATCH,
        codes::SYMLINK_TARGET_MISMATCH,
        codes::HARD_LINK_MISMATCH,
        codes::READ_FAILED,
        codes::METADATA_MISMATCH,
        codes::STORE_KIND_UNKNOWN,
    ]
    .into_iter()
    .find(|c| *c == code)
}

/// Which files' bytes a validation reads.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Reading<'a> {
    /// None: presence, type and size only (`--quick`).
    Sizes,
    /// Every file's.
    All,
    /// Only the files of one share (`validate --subset`).
    Subset(Subset),
    /// A snapshot just built: every copy it wrote; of the copies it
    /// reused from its parent, those of the rotation's `share`, and any
    /// that is not verifiably the parent's copy (see [`Reused`]).
    NewSnapshot { reused: &'a Reused, share: Subset },
}

/// For each entry of a store just captured (same order), the inode of the
/// parent's copy it was hard-linked from, or 0 for a copy written now
/// (no file has inode 0). One word per entry.
#[derive(Debug, Clone, Default)]
pub struct Reused {
    pub(crate) inodes: Vec<u64>,
}

impl Reused {
    /// Whether every entry is a verified reuse (`false` when none).
    fn all(&self, record: &StoreRecord) -> bool {
        let files = record
            .entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.kind == EntryKind::File && e.link_of().is_none());
        let mut any = false;
        for (i, _) in files {
            if self.inodes.get(i).copied().unwrap_or(0) == 0 {
                return false;
            }
            any = true;
        }
        any
    }
}

/// Whether a store's own check runs, and how deep.
#[derive(Debug, Clone, Copy)]
pub(crate) enum KindCheck {
    Run(Depth),
    Skip,
    /// A new snapshot's store: the check is skipped when every file is the
    /// parent's verified copy (the parent's validation checked those very
    /// bytes, and the parent's record has no finding for the store);
    /// otherwise it runs deep.
    UnlessAllReused {
        parent_clean: bool,
    },
}

impl KindCheck {
    fn only_if(self, run: bool) -> Self {
        if run {
            self
        } else {
            KindCheck::Skip
        }
    }
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
    let reading = match depth {
        Depth::Deep => Reading::All,
        Depth::Quick => Reading::Sizes,
    };
    check_store_reading(handler, root, record, reading, KindCheck::Run(depth))
}

/// [`check_store`], reading what `reading` says and running the kind's
/// check as `kind` says.
pub(crate) fn check_store_reading(
    handler: &dyn StoreHandler,
    root: &Path,
    record: &StoreRecord,
    reading: Reading<'_>,
    kind: KindCheck,
) -> Vec<Problem> {
    let timed_kind_check = |depth: Depth| {
        let started = std::time::Instant::now();
        let found = kind_check(handler, root, record, depth);
        tracing::info!(store = %record.name, check_ms = started.elapsed().as_millis() as u64, "kind check done");
        found
    };
    let timed_files = || {
        let started = std::time::Instant::now();
        let checked = check_files_reading(root, record, reading);
        tracing::info!(store = %record.name, files_ms = started.elapsed().as_millis() as u64, "files checked");
        checked
    };
    let depth = match kind {
        KindCheck::Skip => return timed_files().problems,
        KindCheck::Run(depth) => depth,
        KindCheck::UnlessAllReused { parent_clean } => {
            let all_reused = match reading {
                Reading::NewSnapshot { reused, .. } => reused.all(record),
                _ => false,
            };
            if parent_clean && all_reused {
                // Files first: the check is needed only if one of them
                // turns out not to be the parent's verified copy.
                let checked = timed_files();
                let mut found = checked.problems;
                if checked.not_verified_reuses > 0 {
                    found.extend(timed_kind_check(Depth::Deep));
                } else {
                    tracing::info!(store = %record.name, "every file is the parent's verified copy; kind check not needed");
                }
                return found;
            }
            Depth::Deep
        }
    };
    std::thread::scope(|scope| {
        let kind = scope.spawn(|| timed_kind_check(depth));
        let mut found = timed_files().problems;
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
    let captured: BTreeSet<&str> = manifest
        .stores
        .iter()
        .filter(|s| s.status == StoreStatus::Captured)
        .map(|s| s.name.as_str())
        .collect();
    check_layout_of(dir, &captured)
}

/// [`check_layout`] for the names of the captured stores.
pub(crate) fn check_layout_of(dir: &Path, captured: &BTreeSet<&str>) -> Vec<Problem> {
    let mut problems = Vec::new();
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
    let reading = match depth {
        Depth::Deep => Reading::All,
        Depth::Quick => Reading::Sizes,
    };
    check_files_reading(root, record, reading).problems
}

/// What [`check_files_reading`] found.
pub(crate) struct FilesChecked {
    pub problems: Vec<Problem>,
    /// Entries a new snapshot reused from its parent that were not found
    /// to be the parent's copy as it was (another inode, writable): read
    /// in full instead.
    pub not_verified_reuses: usize,
}

/// [`check_files`], reading the bytes `reading` says.
pub(crate) fn check_files_reading(
    root: &Path,
    record: &StoreRecord,
    reading: Reading<'_>,
) -> FilesChecked {
    let store = record.name.as_str();
    let mut not_verified_reuses = 0;
    let index = EntriesByPath::new(&record.entries);
    let mut seen = vec![false; record.entries.len()];
    // The inode met of each file a hard link names or is, for the hard
    // links' check; only those, as there are few.
    let mut inodes: HashMap<usize, Option<(u64, u64)>> = HashMap::new();
    for (i, entry) in record.entries.iter().enumerate() {
        if let Some(first) = entry.link_of() {
            inodes.insert(i, None);
            if let Some(f) = index.position(first.as_bytes()) {
                inodes.insert(f, None);
            }
        }
    }
    let mut unexpected = Vec::new();
    // (entry index, problem): reported in manifest order whatever the walk's.
    let mut entry_problems: Vec<(usize, Problem)> = Vec::new();
    let mut to_hash: Vec<&Entry> = Vec::new();
    let walked = crate::tree::walk_tree(root, &mut |rel, meta| {
        let Some(i) = index.position(rel.as_bytes()) else {
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
                if let Some(inode) = inodes.get_mut(&i) {
                    *inode = Some((meta.dev(), meta.ino()));
                }
                let read = match reading {
                    Reading::Sizes => false,
                    Reading::All => true,
                    Reading::Subset(share) => share.contains(store, &entry.path),
                    Reading::NewSnapshot { reused, share } => {
                        match reused.inodes.get(i).copied().unwrap_or(0) {
                            // Written now: re-read, as hashed when written.
                            0 => true,
                            parent_ino => {
                                // The parent's copy, still as the parent
                                // validated it: the very inode (its size
                                // checked above), never made writable.
                                let verified = meta.ino() == parent_ino && meta.mode() & 0o222 == 0;
                                if !verified {
                                    not_verified_reuses += 1;
                                }
                                !verified || share.contains(store, &entry.path)
                            }
                        }
                    }
                };
                if read && entry.link_of().is_none() {
                    to_hash.push(entry);
                }
            }
            None => {}
        }
        Ok(())
    });
    if let Err(e) = walked {
        return FilesChecked {
            problems: vec![Problem::new(codes::READ_FAILED, e.to_string()).in_store(store)],
            not_verified_reuses,
        };
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
        let Some(first) = entry.link_of() else {
            continue;
        };
        let inode_of = |i| inodes.get(&i).copied().flatten();
        let first_inode = index.position(first.as_bytes()).and_then(inode_of);
        if let (Some(this), Some(that)) = (inode_of(i), first_inode) {
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
    FilesChecked {
        problems,
        not_verified_reuses,
    }
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
            (Some(&actual) != entry.target()).then(|| {
                Problem::new(
                    codes::SYMLINK_TARGET_MISMATCH,
                    format!(
                        "manifest says -> {:?}, found -> {actual:?}",
                        entry.target().cloned().unwrap_or_default()
                    ),
                )
            })
        }
        EntryKind::Dir => None,
    }
}

/// Hashes files on every core. The snapshot is in the repository, which
/// only its owner changes, so each worker holds the directory it is in
/// open from one file to the next, and opens a file by its name alone.
fn hash_all(root: &Path, store: &str, entries: &[&Entry]) -> Vec<Problem> {
    if entries.is_empty() {
        return Vec::new();
    }
    let dir = match DirFd::open_trusted(root) {
        Ok(dir) => dir,
        Err(e) => return vec![Problem::new(codes::READ_FAILED, e.to_string()).in_store(store)],
    };
    crate::parallel::filter_map_largest_first(
        entries,
        |e| e.size.unwrap_or(0),
        || ParentCache::new(&dir),
        |parents, e| hash_one(parents, store, e),
    )
}

fn hash_one(parents: &mut ParentCache<'_>, store: &str, entry: &Entry) -> Option<Problem> {
    let hashed = parents
        .open_file(&entry.path)
        .and_then(|(file, stat, shown)| {
            crate::progress::verifying(|| fsutil::hash_open(&file, &stat, &shown))
        });
    match hashed {
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
    let index = EntriesByPath::new(&record.entries);
    let mut problems: Vec<(usize, Problem)> = Vec::new();
    let walked = crate::tree::walk_tree(root, &mut |rel, meta| {
        let Some(i) = index.position(rel.as_bytes()) else {
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
        for x in entry.xattrs() {
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
        let file = |path: &str, mode: u32| {
            let mut e = Entry::new(path, EntryKind::File);
            e.mode = mode;
            e.size = Some(3);
            e.sha256 = Some(crate::checksum::Checksum::of(b"abc"));
            e.uid = Some(meta.uid());
            e.gid = Some(meta.gid());
            e
        };
        let mut entries = vec![
            file("a", 0o640),
            file("b", 0o640).with_link_of("a"),
            file("c", 0o644),
        ];
        std::fs::set_permissions(dir.path().join("c"), std::fs::Permissions::from_mode(0o644))
            .unwrap();
        let rec = record(entries.clone());
        assert_eq!(check_files(dir.path(), &rec, Depth::Deep), vec![]);
        assert_eq!(check_restored_metadata(dir.path(), &rec), vec![]);

        // `c` recorded as a link of `a`, a mode that differs, an attribute
        // that is not there.
        entries[2].set_link_of(Some("a".into()));
        entries[0].mode = 0o600;
        entries[0].set_xattrs(vec![Xattr {
            name: "user.origin".into(),
            value: b"seed".to_vec(),
        }]);
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

    /// A new snapshot's validation re-reads the copies written now and any
    /// reused copy that is not the parent's very inode as it was (another
    /// inode, made writable); a truncated one fails on its size; a reused
    /// copy that is the parent's inode, read-only, outside the rotation's
    /// share, is not re-read.
    #[test]
    fn a_new_snapshot_reads_what_it_wrote_and_reused_copies_that_fail_their_identity() {
        let dir = tempfile::tempdir().unwrap();
        let recorded = crate::checksum::Checksum::of(b"what was copied");
        let mut entries = Vec::new();
        for name in ["kept", "replaced", "writable", "truncated", "written"] {
            let path = dir.path().join(name);
            // Every file holds other bytes than recorded: whatever is read
            // is reported.
            std::fs::write(&path, b"rotten! bytes!!").unwrap();
            let mode = if name == "writable" { 0o600 } else { 0o400 };
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let mut entry = Entry::new(name, EntryKind::File);
            entry.size = Some(if name == "truncated" { 99 } else { 15 });
            entry.sha256 = Some(recorded);
            entries.push(entry);
        }
        let ino = |name: &str| std::fs::metadata(dir.path().join(name)).unwrap().ino();
        let reused = Reused {
            inodes: vec![
                ino("kept"),
                ino("replaced") + 1,
                ino("writable"),
                ino("truncated"),
                0,
            ],
        };
        let rec = record(entries);
        let share = (1..=7)
            .filter_map(|n| Subset::new(n, 7))
            .find(|s| !s.contains(&rec.name, &RawPath::from("kept")))
            .unwrap();
        let checked = check_files_reading(
            dir.path(),
            &rec,
            Reading::NewSnapshot {
                reused: &reused,
                share,
            },
        );
        let mut found: Vec<(&str, String)> = checked
            .problems
            .iter()
            .map(|p| (p.code, p.path.clone().unwrap_or_default()))
            .collect();
        found.sort();
        assert_eq!(
            found,
            [
                (codes::FILE_CHECKSUM_MISMATCH, "replaced".to_owned()),
                (codes::FILE_CHECKSUM_MISMATCH, "writable".to_owned()),
                (codes::FILE_CHECKSUM_MISMATCH, "written".to_owned()),
                (codes::FILE_SIZE_MISMATCH, "truncated".to_owned()),
            ]
        );
        assert_eq!(checked.not_verified_reuses, 2);

        // In its share, the kept copy is re-read too.
        let own = Subset::new(share_of_kept(&rec), 7).unwrap();
        let checked = check_files_reading(
            dir.path(),
            &rec,
            Reading::NewSnapshot {
                reused: &reused,
                share: own,
            },
        );
        assert!(
            checked
                .problems
                .iter()
                .any(|p| p.path.as_deref() == Some("kept")),
            "{:?}",
            checked.problems
        );
    }

    fn share_of_kept(rec: &StoreRecord) -> u32 {
        crate::share::share_of(&rec.name, &RawPath::from("kept"), 7)
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
