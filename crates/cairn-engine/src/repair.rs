//! `cairn repair`: damaged snapshot files rewritten in place from bytes
//! proven to be the right ones.
//!
//! A flipped bit on the backup disk damages one inode, and every snapshot
//! that hard-linked it since. Under the repository lock, each snapshot
//! asked for is deep-validated; for every file whose bytes, size or
//! presence differ from its manifest entry, the correct bytes are looked
//! for — the live file of that store, read through the store's safely
//! resolved path (`dirfd::resolve_existing`, then by descriptor), or an
//! intact copy of the same SHA-256 in any snapshot (never one sharing the
//! damaged inode) — each copied into a private work directory in `tmp/`
//! and hashed there: only bytes whose size and SHA-256 are the manifest's
//! go on. The damaged file is then rewritten *in place*: the same inode,
//! made writable, written, synced and made read-only again, so every
//! snapshot sharing it by hard link is healed at once (a missing file is
//! created, 0400). The snapshot is deep-validated again, and so is every
//! other snapshot whose last validation recorded damage in a file now
//! healed, so their records (and `list`) say what is true.
//!
//! What could not be repaired is listed with why; nothing here is an
//! error unless the run itself cannot go on (the lock, `tmp/`).

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fs::{File, Permissions};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::checksum::Checksum;
use crate::config::Config;
use crate::dirfd::{self, DirFd};
use crate::error::{io_at, Error, Result};
use crate::fsutil;
use crate::id::SnapshotId;
use crate::manifest::{Entry, EntryKind, Manifest, RawPath, Shape, StoreRecord, StoreStatus};
use crate::plugin::Depth;
use crate::problem::{codes, Problem};
use crate::repo::Repository;
use crate::stores::Stores;
use crate::validate::{self, ValidationReport};

/// The problems `repair` rewrites a file for: its bytes, its size or its
/// presence differ from the manifest. Anything else (a kind's own check
/// failing on bytes that match, an unlisted file, a link where a file was)
/// is not a damaged copy.
pub const REPAIRABLE: &[&str] = &[
    codes::FILE_CHECKSUM_MISMATCH,
    codes::FILE_SIZE_MISMATCH,
    codes::FILE_MISSING,
];

/// True for a problem code [`run`] can repair (see [`REPAIRABLE`]).
pub fn is_repairable(code: &str) -> bool {
    REPAIRABLE.contains(&code)
}

/// Which snapshots to repair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Which {
    Id(String),
    /// The newest snapshot not dated in the future.
    Latest,
    All,
}

#[derive(Debug, Clone)]
pub struct RepairRequest {
    pub which: Which,
    /// Find a verified source for every damaged file, rewrite nothing.
    pub dry_run: bool,
}

#[derive(Debug)]
pub struct RepairOutcome {
    pub dry_run: bool,
    /// One per snapshot asked for, oldest first.
    pub snapshots: Vec<SnapshotRepair>,
    /// Other snapshots whose last validation recorded damage in a file
    /// this run healed (a hard link to it), validated again.
    pub revalidated: Vec<ValidationReport>,
}

impl RepairOutcome {
    /// Every snapshot asked for is sound now (for a dry run: was sound).
    pub fn is_sound(&self) -> bool {
        self.snapshots.iter().all(SnapshotRepair::is_sound)
    }
}

#[derive(Debug)]
pub struct SnapshotRepair {
    pub id: String,
    /// What the validation before the repair found.
    pub found: Vec<Problem>,
    /// Files rewritten and verified (dry run: the ones that would be).
    pub repaired: Vec<Repaired>,
    /// Every problem left, each with why it was not repaired.
    pub unrepaired: Vec<Unrepaired>,
    /// The validation after the repair (dry run, or nothing rewritten:
    /// the one before).
    pub after: ValidationReport,
}

impl SnapshotRepair {
    pub fn is_sound(&self) -> bool {
        self.after.valid
    }
}

/// A damaged file and where its correct bytes came from.
#[derive(Debug)]
pub struct Repaired {
    pub problem: Problem,
    pub from: Source,
}

#[derive(Debug, Clone)]
pub enum Source {
    /// The store's live file (its configured path, for messages).
    Live(PathBuf),
    /// An intact copy in a snapshot.
    Snapshot {
        id: String,
        store: String,
        path: String,
    },
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Live(path) => write!(f, "the live file {}", path.display()),
            Source::Snapshot { id, store, path } => {
                write!(f, "the intact copy in snapshot {id} ({store}/{path})")
            }
        }
    }
}

#[derive(Debug)]
pub struct Unrepaired {
    pub problem: Problem,
    pub reason: String,
}

/// `cairn repair`: see the module docs.
pub fn run(cfg: &Config, stores: &Stores, req: &RepairRequest) -> Result<RepairOutcome> {
    let repo = Repository::new(&cfg.repository);
    // Parsed and looked up before anything is created or locked.
    match &req.which {
        Which::Id(text) => {
            repo.resolve(text)?;
        }
        Which::Latest => {
            repo.latest()?.ok_or_else(|| Error::NoSnapshots {
                repo: repo.root().to_owned(),
            })?;
        }
        Which::All => {
            if repo.list()?.ids.is_empty() {
                return Ok(RepairOutcome {
                    dry_run: req.dry_run,
                    snapshots: Vec::new(),
                    revalidated: Vec::new(),
                });
            }
        }
    }
    let _lock = repo.lock(cfg.lock_wait)?;
    // Again under the lock: a prune may have run meanwhile.
    let ids = match &req.which {
        Which::Id(text) => vec![repo.resolve(text)?],
        Which::Latest => vec![repo.latest()?.ok_or_else(|| Error::NoSnapshots {
            repo: repo.root().to_owned(),
        })?],
        Which::All => repo.list()?.ids,
    };
    crate::cancel::check()?;
    let work = Work::create(&repo)?;
    let result = (|| {
        let mut outcome = RepairOutcome {
            dry_run: req.dry_run,
            snapshots: Vec::new(),
            revalidated: Vec::new(),
        };
        let mut healed: HashSet<(u64, u64)> = HashSet::new();
        for id in &ids {
            crate::cancel::check()?;
            let repaired = repair_snapshot(&repo, stores, id, &work, req.dry_run, &mut healed)?;
            outcome.snapshots.push(repaired);
        }
        if !healed.is_empty() {
            outcome.revalidated = revalidate_sharing(&repo, stores, &healed)?;
        }
        Ok(outcome)
    })();
    work.remove();
    result
}

/// One snapshot: validate, find and verify each damaged file's bytes,
/// rewrite, validate again.
fn repair_snapshot(
    repo: &Repository,
    stores: &Stores,
    id: &SnapshotId,
    work: &Work,
    dry_run: bool,
    healed: &mut HashSet<(u64, u64)>,
) -> Result<SnapshotRepair> {
    let (before, manifest) = validate::validate_snapshot(repo, stores, id, Depth::Deep);
    let mut repaired: Vec<Repaired> = Vec::new();
    let mut reasons: HashMap<(String, String), String> = HashMap::new();
    if let Some(manifest) = &manifest {
        let damaged: Vec<&Problem> = before
            .errors
            .iter()
            .filter(|p| is_repairable(p.code) && p.store.is_some() && p.path.is_some())
            .collect();
        let copies = if damaged.is_empty() {
            Copies::default()
        } else {
            Copies::index(repo, manifest, &damaged)
        };
        crate::progress::begin("repair", None);
        for problem in damaged {
            crate::cancel::check()?;
            let (Some(store), Some(path)) = (problem.store.as_deref(), problem.path.as_deref())
            else {
                continue;
            };
            match repair_file(
                repo, stores, id, manifest, store, path, &copies, work, dry_run,
            ) {
                Ok((from, inode)) => {
                    healed.extend(inode);
                    repaired.push(Repaired {
                        problem: problem.clone(),
                        from,
                    });
                }
                Err(reason) => {
                    reasons.insert((store.to_owned(), path.to_owned()), reason);
                }
            }
        }
        crate::progress::finish();
    }
    let after = if repaired.is_empty() || dry_run {
        before.clone()
    } else {
        validate::validate_snapshot(repo, stores, id, Depth::Deep).0
    };
    // Every problem left, with why: a file rewritten that still fails is
    // not repaired.
    let mut unrepaired = Vec::new();
    let mut still_bad: HashSet<(String, String)> = HashSet::new();
    for problem in &after.errors {
        let key = (
            problem.store.clone().unwrap_or_default(),
            problem.path.clone().unwrap_or_default(),
        );
        let rewritten = repaired
            .iter()
            .find(|r| r.problem.store == problem.store && r.problem.path == problem.path);
        let reason = match (rewritten, reasons.get(&key)) {
            (Some(r), _) if !dry_run => {
                still_bad.insert(key);
                format!(
                    "rewritten from {}, but the validation after the repair still finds it damaged: the backup disk may not keep what is written",
                    r.from
                )
            }
            (Some(_), _) => continue,
            (None, Some(reason)) => reason.clone(),
            (None, None) => not_repairable(problem, manifest.is_some()),
        };
        unrepaired.push(Unrepaired {
            problem: problem.clone(),
            reason,
        });
    }
    repaired.retain(|r| {
        !still_bad.contains(&(
            r.problem.store.clone().unwrap_or_default(),
            r.problem.path.clone().unwrap_or_default(),
        ))
    });
    Ok(SnapshotRepair {
        id: id.to_string(),
        found: before.errors,
        repaired,
        unrepaired,
        after,
    })
}

/// Why a problem is none of repair's business.
fn not_repairable(problem: &Problem, manifest_read: bool) -> String {
    if !manifest_read {
        "the manifest cannot be read, so there is no record of what the files should hold".into()
    } else if is_repairable(problem.code) {
        // A repairable code without a store and path: nothing to rewrite.
        "not a file of a store".into()
    } else if problem.is_about_files() {
        "not a damaged copy of a file (repair rewrites only files whose bytes, size or presence differ from the manifest); remove or restore it by hand".into()
    } else {
        "the files match their manifest: their kind's check fails on the bytes as they were captured (the source was damaged then), which repair cannot change".into()
    }
}

/// Finds verified bytes for one damaged file and, unless `dry_run`,
/// rewrites it in place. The inode rewritten (to heal its other links'
/// records), or why nothing was.
#[allow(clippy::too_many_arguments)]
fn repair_file(
    repo: &Repository,
    stores: &Stores,
    id: &SnapshotId,
    manifest: &Manifest,
    store: &str,
    path: &str,
    copies: &Copies,
    work: &Work,
    dry_run: bool,
) -> std::result::Result<(Source, Option<(u64, u64)>), String> {
    let record = manifest
        .store(store)
        .filter(|r| r.status == StoreStatus::Captured)
        .ok_or_else(|| format!("the manifest has no captured store {store:?}"))?;
    let entry = record
        .entries
        .iter()
        .find(|e| e.path == path)
        .ok_or_else(|| "not an entry of the manifest".to_owned())?;
    let (EntryKind::File, Some(sha256), Some(size)) = (entry.kind, entry.sha256, entry.size) else {
        return Err(format!(
            "{} in the manifest: repair rewrites files only",
            entry.kind.name()
        ));
    };
    let root = repo.store_dir(id, store);
    // The damaged file's inode, if it is still there: a copy sharing it
    // is the same damaged bytes.
    let damaged = std::fs::symlink_metadata(root.join(path))
        .ok()
        .filter(|m| m.is_file())
        .map(|m| (m.dev(), m.ino()));

    let mut tried: Vec<String> = Vec::new();
    let mut verified: Option<(Source, Verified)> = None;
    match open_live(stores, record, entry) {
        Ok((file, shown)) => match work.verify(file, &shown, sha256, size) {
            Ok(Ok(v)) => verified = Some((Source::Live(shown), v)),
            Ok(Err(found)) => tried.push(format!(
                "the live file {} holds other bytes now ({found})",
                shown.display()
            )),
            Err(e) => tried.push(format!(
                "the live file could not be copied to verify it: {e}"
            )),
        },
        Err(why) => tried.push(why),
    }
    if verified.is_none() {
        let mut same_inode: Vec<String> = Vec::new();
        let mut bad: Vec<String> = Vec::new();
        for copy in copies.of(&sha256) {
            if copy.id == *id && copy.store == store && copy.path == path {
                continue;
            }
            let source = Source::Snapshot {
                id: copy.id.to_string(),
                store: copy.store.clone(),
                path: copy.path.clone(),
            };
            let opened = open_in_snapshot(&repo.store_dir(&copy.id, &copy.store), &copy.path);
            let (file, shown) = match opened {
                Ok(Some(opened)) => opened,
                Ok(None) => continue,
                Err(e) => {
                    bad.push(format!("{} ({e})", copy.id));
                    continue;
                }
            };
            if let Ok(meta) = file.metadata() {
                if Some((meta.dev(), meta.ino())) == damaged {
                    same_inode.push(copy.id.to_string());
                    continue;
                }
            }
            match work.verify(file, &shown, sha256, size) {
                Ok(Ok(v)) => {
                    verified = Some((source, v));
                    break;
                }
                Ok(Err(found)) => bad.push(format!("{} ({found})", copy.id)),
                Err(e) => bad.push(format!("{} ({e})", copy.id)),
            }
        }
        if verified.is_none() {
            if copies
                .of(&sha256)
                .iter()
                .all(|c| c.id == *id && c.path == path && c.store == store)
            {
                tried.push("no other snapshot holds a copy with this SHA-256".into());
            }
            if !same_inode.is_empty() {
                tried.push(format!(
                    "the copies in {} are this same damaged file (hard links)",
                    same_inode.join(", ")
                ));
            }
            if !bad.is_empty() {
                tried.push(format!("the copies in {} are damaged too", bad.join(", ")));
            }
        }
    }
    let Some((source, verified)) = verified else {
        return Err(format!("no intact copy found: {}", tried.join("; ")));
    };
    if dry_run {
        work.discard(verified);
        return Ok((source, None));
    }
    let written = rewrite_in_place(&root, path, &verified, size);
    work.discard(verified);
    match written {
        Ok(inode) => {
            tracing::info!(snapshot = %id, store, path, from = %source, "repaired in place");
            Ok((source, Some(inode)))
        }
        Err(e) => Err(format!(
            "verified bytes found in {source}, but rewriting failed: {e}"
        )),
    }
}

/// The store's live file for `entry`, by the store's configured path
/// resolved safely and opened by descriptor (a FIFO or a link in its
/// place is refused, never read).
fn open_live(
    stores: &Stores,
    record: &StoreRecord,
    entry: &Entry,
) -> std::result::Result<(File, PathBuf), String> {
    let Some(store) = stores.get(&record.name) else {
        return Err(format!(
            "store {} is not in the config, so there is no live file",
            record.name
        ));
    };
    if store.config.kind != record.kind {
        return Err(format!(
            "store {} is kind {} in the config, {} in the snapshot",
            record.name, store.config.kind, record.kind
        ));
    }
    let configured = &store.config.path;
    let resolved = dirfd::resolve_existing(configured, store.config.follow_symlink)
        .map_err(|e| format!("the live store cannot be opened: {e}"))?
        .ok_or_else(|| format!("the live store {} does not exist", configured.display()))?;
    let (opened, shown) = match record.shape {
        Shape::File => (
            resolved.parent.open_file(&resolved.name),
            configured.clone(),
        ),
        Shape::Dir => {
            let shown = configured.join(&entry.path);
            let opened = resolved.open_dir().and_then(|dir| {
                let (parent, leaf) = dir.parent_beneath(&entry.path)?;
                parent.open_file(leaf)
            });
            (opened, shown)
        }
    };
    match opened {
        Ok((file, _)) => Ok((file, shown)),
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            Err(format!("the live file {} is gone", shown.display()))
        }
        Err(e) => Err(format!("the live file cannot be opened: {e}")),
    }
}

/// A file of a snapshot's store, opened below the store's directory
/// without following a link; `None` when it is not there.
fn open_in_snapshot(root: &Path, rel: &str) -> Result<Option<(File, PathBuf)>> {
    let opened = DirFd::open_trusted(root).and_then(|dir| {
        let rel = RawPath::from(rel);
        let (parent, leaf) = dir.parent_beneath(&rel)?;
        parent.open_file(leaf)
    });
    match opened {
        Ok((file, _)) => Ok(Some((file, root.join(rel)))),
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Rewrites the snapshot file at `root/rel` with the verified bytes: the
/// same inode when it exists (every hard link to it healed), else a new
/// file; synced, read-only. Returns the inode written.
fn rewrite_in_place(root: &Path, rel: &str, verified: &Verified, size: u64) -> Result<(u64, u64)> {
    let store = DirFd::open_trusted(root)?;
    let raw = RawPath::from(rel);
    let (dir, leaf) = store.parent_beneath(&raw)?;
    let shown = root.join(rel);
    let (out, created) = match dir.open_file(leaf) {
        Ok((read_only, stat)) => {
            // fchmod through the read-only descriptor: the inode, not
            // whatever the name points at by the time of the next call.
            read_only
                .set_permissions(Permissions::from_mode(0o600))
                .map_err(io_at("chmod", &shown))?;
            let writable = dir.open_existing_rw(leaf).and_then(|f| {
                let now = f.metadata().map_err(io_at("stat", &shown))?;
                if (now.dev(), now.ino()) == (stat.st_dev, stat.st_ino) {
                    Ok(f)
                } else {
                    Err(Error::io(
                        "open",
                        &shown,
                        std::io::Error::other("replaced while being repaired"),
                    ))
                }
            });
            match writable {
                Ok(f) => (f, false),
                Err(e) => {
                    let _ = read_only
                        .set_permissions(Permissions::from_mode(fsutil::SNAPSHOT_FILE_MODE));
                    return Err(e);
                }
            }
        }
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            (dir.create_file(leaf)?, true)
        }
        Err(e) => return Err(e),
    };
    // Short and whole: a signal waits for the rewrite to end, so a file is
    // never left half old damage, half new bytes.
    let written = crate::cancel::shielded(|| -> Result<()> {
        let src = verified.reopen()?;
        // Emptied first: the copy writes only the source's data extents,
        // and a hole must not keep the damaged bytes that were there.
        out.set_len(0).map_err(io_at("truncate", &shown))?;
        let (n, _) = fsutil::copy_sparse(
            &src,
            fsutil::Extents::MayHaveHoles,
            &verified.shown,
            &out,
            &shown,
        )?;
        if n != size {
            return Err(Error::io(
                "write",
                &shown,
                std::io::Error::other(format!("wrote {n} bytes, expected {size}")),
            ));
        }
        out.set_len(size).map_err(io_at("truncate", &shown))?;
        out.sync_all().map_err(io_at("sync", &shown))
    });
    let sealed = out
        .set_permissions(Permissions::from_mode(fsutil::SNAPSHOT_FILE_MODE))
        .map_err(io_at("chmod", &shown));
    written?;
    sealed?;
    if created {
        dir.sync()?;
    }
    let meta = out.metadata().map_err(io_at("stat", &shown))?;
    Ok((meta.dev(), meta.ino()))
}

/// Where each content the damaged files need can be found: every file
/// entry of every snapshot with one of those SHA-256s (one pass over the
/// manifests; only the matches are kept).
#[derive(Default)]
struct Copies {
    by_sha: HashMap<Checksum, Vec<Copy>>,
}

struct Copy {
    id: SnapshotId,
    store: String,
    path: String,
}

impl Copies {
    fn index(repo: &Repository, manifest: &Manifest, damaged: &[&Problem]) -> Copies {
        let wanted: HashSet<Checksum> = damaged
            .iter()
            .filter_map(|p| {
                let record = manifest.store(p.store.as_deref()?)?;
                let path = p.path.as_deref()?;
                record.entries.iter().find(|e| e.path == path)?.sha256
            })
            .collect();
        let mut by_sha: HashMap<Checksum, Vec<Copy>> = HashMap::new();
        let ids = repo.list().map(|l| l.ids).unwrap_or_default();
        // Newest first: the likeliest to be on sound sectors written lately.
        for id in ids.into_iter().rev() {
            let Ok(m) = Manifest::read_from(&repo.snapshot_dir(&id), id.as_str()) else {
                continue;
            };
            for record in m
                .stores
                .iter()
                .filter(|r| r.status == StoreStatus::Captured)
            {
                for entry in &record.entries {
                    if let Some(sha) = entry.sha256.filter(|s| wanted.contains(s)) {
                        if entry.kind == EntryKind::File {
                            by_sha.entry(sha).or_default().push(Copy {
                                id: id.clone(),
                                store: record.name.clone(),
                                path: String::from(&entry.path),
                            });
                        }
                    }
                }
            }
        }
        Copies { by_sha }
    }

    fn of(&self, sha: &Checksum) -> &[Copy] {
        self.by_sha.get(sha).map_or(&[], Vec::as_slice)
    }
}

/// A private, randomly named directory in `tmp/` where candidate bytes
/// are copied and hashed before anything is rewritten. `prune` removes
/// it if a crash leaves it.
struct Work {
    tmp: DirFd,
    name: std::ffi::OsString,
    dir: DirFd,
    next: std::cell::Cell<u64>,
}

/// Candidate bytes copied into the work directory whose size and SHA-256
/// are the manifest's.
struct Verified {
    name: std::ffi::OsString,
    dir: DirFd,
    shown: PathBuf,
}

impl Verified {
    fn reopen(&self) -> Result<File> {
        self.dir.open_file(&self.name).map(|(f, _)| f)
    }
}

impl Work {
    fn create(repo: &Repository) -> Result<Work> {
        let tmp = DirFd::open_trusted(&repo.tmp_dir())?;
        let (name, dir) = tmp.create_unique_dir("repair-")?;
        Ok(Work {
            tmp,
            name,
            dir,
            next: std::cell::Cell::new(0),
        })
    }

    /// Copies `src` into the work directory, hashing it: the verified
    /// copy, or (inner `Err`) what it held instead.
    fn verify(
        &self,
        src: File,
        shown: &Path,
        sha256: Checksum,
        size: u64,
    ) -> Result<std::result::Result<Verified, String>> {
        // Of another size: other bytes, known without copying them.
        if let Ok(meta) = src.metadata() {
            if meta.len() != size {
                return Ok(Err(format!("{} bytes, not {size}", meta.len())));
            }
        }
        let n = self.next.get();
        self.next.set(n + 1);
        let name = std::ffi::OsString::from(format!("candidate-{n}"));
        let verified = Verified {
            shown: self.dir.shown(&name),
            name,
            dir: self.dir.clone(),
        };
        let out = self.dir.create_file(&verified.name)?;
        let copied = fsutil::copy_sparse(
            &src,
            fsutil::Extents::MayHaveHoles,
            shown,
            &out,
            &verified.shown,
        );
        let (got_size, got_sha) = match copied {
            Ok(found) => found,
            Err(e) => {
                self.discard(verified);
                return Err(e);
            }
        };
        if got_size == size && got_sha == sha256 {
            Ok(Ok(verified))
        } else {
            self.discard(verified);
            Ok(Err(format!("{got_size} bytes, sha256 {got_sha}")))
        }
    }

    fn discard(&self, verified: Verified) {
        let _ = self.dir.remove_tree(OsStr::new(&verified.name));
    }

    fn remove(self) {
        if let Err(e) = self.tmp.remove_tree(&self.name) {
            tracing::warn!(error = %e, "could not remove repair's work directory");
        }
    }
}

/// Every other snapshot whose last validation recorded damage in a file
/// that is now one of the healed inodes: validated again, so its record
/// (and `list`) shows the repair.
fn revalidate_sharing(
    repo: &Repository,
    stores: &Stores,
    healed: &HashSet<(u64, u64)>,
) -> Result<Vec<ValidationReport>> {
    let mut reports = Vec::new();
    for id in repo.list()?.ids {
        crate::cancel::check()?;
        let Some(record) = validate::last_validation(repo, &id) else {
            continue;
        };
        let shares = record.problems.iter().any(|p| {
            let (Some(store), Some(path)) = (p.store.as_deref(), p.path.as_deref()) else {
                return false;
            };
            // Names from a file on disk: joined only when they are plain
            // relative paths.
            if !is_repairable(&p.code)
                || store.contains('/')
                || crate::manifest::check_rel_path(store).is_err()
                || crate::manifest::check_rel_path(path).is_err()
            {
                return false;
            }
            std::fs::symlink_metadata(repo.store_dir(&id, store).join(path))
                .is_ok_and(|m| healed.contains(&(m.dev(), m.ino())))
        });
        if shares {
            // A snapshot asked for too: validated after its own repair,
            // and healed again by a later one's.
            reports.push(validate::validate_snapshot(repo, stores, &id, Depth::Deep).0);
        }
    }
    Ok(reports)
}
