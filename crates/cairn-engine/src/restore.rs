//! The Restore stage: gates, staging, pre-restore snapshot, swap, rollback.
//!
//! Order of work, and why:
//! 1. Gates (confirmation, repository lock, manifest digest + presence +
//!    sizes, the service visibly running) refuse before anything is written.
//! 2. Staging copies every store onto the *target's own filesystem* (a file
//!    store beside its file, a directory store inside its directory, since a
//!    bind mount is a filesystem of its own) and verifies each file's SHA-256
//!    while copying, then runs the plug-in's check on the staged copy. A bad
//!    snapshot is found here, before anything live changes.
//! 3. A pre-restore snapshot of the live stores is the way back.
//! 4. Swap, store by store, each one atomic (rename) or, for directories,
//!    reversible (old contents parked in a hidden directory until the new
//!    ones are in). A failure rolls back the stores already swapped from the
//!    pre-restore snapshot.

use std::fs::{self, File};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::config::{Config, StoreConfig};
use crate::error::{io_at, Error, ExitClass, Result};
use crate::id::SnapshotId;
use crate::manifest::{EntryKind, Manifest, Shape, StoreRecord, StoreStatus};
use crate::plugin::{Depth, Registry, StoreHandler, SwapCtx, SwapReport};
use crate::problem::{codes, Problem};
use crate::repo::{Repository, STORES_DIR};
use crate::snapshot::{self, Plan};
use crate::{fault, fsutil, validate};

pub const PRE_RESTORE_TAG: &str = "pre-restore";
/// Restore's work directories inside a directory store. Snapshots never
/// capture them (see `tree::capture_tree`): a pre-restore snapshot is taken
/// while staged content sits there, and a crash can leave them behind.
pub const STAGING_PREFIX: &str = ".cairn-restore-";
pub const PARKED_PREFIX: &str = ".cairn-old-";

#[derive(Debug, Default)]
pub struct RestoreRequest {
    pub id: String,
    pub only: Vec<String>,
    pub skip: Vec<String>,
    pub confirm_service_stopped: bool,
    pub no_pre_snapshot: bool,
    /// `--to DIR`: restore into `DIR/<store>/…`, never touching live paths.
    pub to: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
pub struct RestoreOutcome {
    pub id: String,
    pub pre_restore_snapshot: Option<String>,
    /// `"live"`, or the `--to` directory.
    pub target: String,
    pub stores: Vec<StoreOutcome>,
    pub rolled_back: bool,
    /// What failed, when a store could not be swapped in.
    pub failure: Option<String>,
    /// What the operator must do by hand, when rollback itself failed.
    pub rollback_failure: Option<String>,
}

impl RestoreOutcome {
    /// Exit 0 only when every selected store is in and checked sound.
    pub fn is_sound(&self) -> bool {
        self.failure.is_none()
            && self
                .stores
                .iter()
                .all(|s| s.skipped.is_some() || (s.restored && s.integrity_ok != Some(false)))
    }
}

#[derive(Debug, Serialize)]
pub struct StoreOutcome {
    pub name: String,
    pub restored: bool,
    /// `None` when the kind has no post-restore integrity check.
    pub integrity_ok: Option<bool>,
    /// Where the store went.
    pub path: String,
    /// Why a store was left alone (e.g. absent in the snapshot).
    pub skipped: Option<String>,
    pub detail: Option<String>,
}

/// One store on its way in.
struct Job<'a> {
    record: &'a StoreRecord,
    handler: Box<dyn StoreHandler>,
    /// The file (file shape) or directory (dir shape) being restored.
    target: PathBuf,
    config: Option<&'a StoreConfig>,
}

pub fn run(cfg: &Config, registry: &Registry, req: RestoreRequest) -> Result<RestoreOutcome> {
    let id = SnapshotId::parse(&req.id)?;
    let live = req.to.is_none();
    if live && !req.confirm_service_stopped {
        return Err(Error::refused(
            "restoring into the live paths needs --confirm-service-stopped; nothing was touched",
            Some("stop the service that writes these stores (e.g. `systemctl stop <service>` or `docker compose stop`), then rerun with --confirm-service-stopped; or restore elsewhere with --to DIR"),
        ));
    }
    let repo = Repository::new(&cfg.repository);
    let lock = repo.lock(cfg.lock_wait)?;
    let id = repo.resolve(id.as_str())?;
    let snap_dir = repo.snapshot_dir(&id);

    let manifest =
        Manifest::read_from(&snap_dir, id.as_str()).map_err(|p| unsound_refusal(&id, &[p]))?;
    let records = select_records(&manifest, &req.only, &req.skip)?;

    // Up front: presence, types and sizes (no hashing; staging hashes).
    let mut problems = Vec::new();
    for record in records.iter().filter(|r| r.status == StoreStatus::Captured) {
        let root = snap_dir.join(STORES_DIR).join(&record.name);
        problems.extend(validate::check_files(&root, record, Depth::Quick));
    }
    if !problems.is_empty() {
        return Err(unsound_refusal(&id, &problems));
    }

    let mut outcomes = Vec::new();
    let mut jobs = Vec::new();
    for record in &records {
        if record.status == StoreStatus::Absent {
            outcomes.push(StoreOutcome {
                name: record.name.clone(),
                restored: false,
                integrity_ok: None,
                path: String::new(),
                skipped: Some("absent in the snapshot; live store left alone".into()),
                detail: None,
            });
            continue;
        }
        jobs.push(plan_job(cfg, registry, record, req.to.as_deref())?);
    }

    if live {
        for job in &jobs {
            if let Some(reason) = job.handler.in_use(&job.target)? {
                return Err(Error::refused(
                    format!("store {}: {reason}; nothing was touched", job.record.name),
                    Some("stop every process that has the store open (the service, workers, shells), then rerun"),
                ));
            }
        }
    }

    // Stage and verify everything before anything live changes: every
    // store at once, one thread each (an SQLite file is copied and hashed
    // on one core, so a tree staged beside it uses the others), each
    // followed by its kind's own check of the staged copy.
    crate::progress::begin("restore", Some(jobs.iter().map(|j| j.record.bytes()).sum()));
    let new_dirs = dirs_staging_will_create(&jobs, req.to.as_deref());
    let results = crate::parallel::each_on_its_own_thread(
        jobs.iter().collect(),
        |job: &Job<'_>| {
            let started = std::time::Instant::now();
            let root = snap_dir.join(STORES_DIR).join(&job.record.name);
            let staged = stage(&id, &root, job.record, job.handler.as_ref(), &job.target);
            tracing::info!(
                store = %job.record.name,
                target = %job.target.display(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "staged and verified"
            );
            staged
        },
        |i| {
            Err(StageError::Fatal(Error::store(
                &jobs[i].record.name,
                crate::ExitClass::Io,
                "staging panicked",
            )))
        },
    );
    let staged = collect_staged(&id, results).inspect_err(|_| {
        // Refused or failed before anything was swapped: leave no trace,
        // not even the empty directories staging created (`--to DIR`).
        for dir in &new_dirs {
            let _ = fs::remove_dir(dir);
        }
    })?;

    crate::progress::finish();
    let pre_restore_snapshot = if live && !req.no_pre_snapshot {
        let stores = jobs.iter().filter_map(|j| j.config);
        let plan = Plan::new(registry, stores, None, vec![PRE_RESTORE_TAG.to_owned()])?
            .pre_restore(id.as_str());
        Some(snapshot::capture(&repo, &lock, &plan)?.id)
    } else {
        None
    };

    let mut outcome = RestoreOutcome {
        id: id.to_string(),
        pre_restore_snapshot,
        target: req
            .to
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "live".into()),
        stores: outcomes,
        rolled_back: false,
        failure: None,
        rollback_failure: None,
    };

    let mut swapped: Vec<&Job<'_>> = Vec::new();
    for (job, staged) in jobs.iter().zip(staged.iter()) {
        match swap(job.record, job.handler.as_ref(), &job.target, staged) {
            Ok(report) => {
                tracing::info!(store = %job.record.name, integrity_ok = ?report.integrity_ok, "swapped in");
                swapped.push(job);
                outcome.stores.push(StoreOutcome {
                    name: job.record.name.clone(),
                    restored: true,
                    integrity_ok: report.integrity_ok,
                    path: job.target.display().to_string(),
                    skipped: None,
                    detail: report.detail,
                });
            }
            Err(e) => {
                outcome.failure = Some(format!("store {}: {e}", job.record.name));
                outcome.stores.push(StoreOutcome {
                    name: job.record.name.clone(),
                    restored: false,
                    integrity_ok: None,
                    path: job.target.display().to_string(),
                    skipped: None,
                    detail: Some(e.to_string()),
                });
                break;
            }
        }
    }
    drop(staged);

    if outcome.failure.is_some() && !swapped.is_empty() {
        roll_back(&repo, &mut outcome, &swapped);
    }
    drop(lock);
    Ok(outcome)
}

fn unsound_refusal(id: &SnapshotId, problems: &[Problem]) -> Error {
    // Each kind of problem once per store, in the order found.
    let mut kinds: Vec<String> = Vec::new();
    for p in problems {
        let kind = match &p.store {
            Some(store) => format!("{} [{store}]", p.code),
            None => p.code.to_owned(),
        };
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    let first = problems.first().map(|p| p.to_string()).unwrap_or_default();
    Error::refused(
        format!(
            "snapshot {id} is not sound ({}); nothing was touched. First problem: {first}",
            kinds.join(", ")
        ),
        Some("run `cairn validate <ID>` for every problem, and restore another snapshot"),
    )
}

fn select_records<'m>(
    manifest: &'m Manifest,
    only: &[String],
    skip: &[String],
) -> Result<Vec<&'m StoreRecord>> {
    for name in only.iter().chain(skip) {
        if manifest.store(name).is_none() {
            return Err(Error::Usage {
                message: format!(
                    "snapshot {} has no store named {name:?} (it has: {})",
                    manifest.id,
                    manifest
                        .stores
                        .iter()
                        .map(|s| s.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
    }
    let selected: Vec<&StoreRecord> = manifest
        .stores
        .iter()
        .filter(|s| only.is_empty() || only.contains(&s.name))
        .filter(|s| !skip.contains(&s.name))
        .collect();
    if selected.is_empty() {
        return Err(Error::Usage {
            message: "no stores selected (check --only/--skip)".into(),
        });
    }
    Ok(selected)
}

fn plan_job<'a>(
    cfg: &'a Config,
    registry: &Registry,
    record: &'a StoreRecord,
    to: Option<&Path>,
) -> Result<Job<'a>> {
    let config = cfg.store(&record.name);
    let handler = match (to, config) {
        (None, None) => {
            return Err(Error::Usage {
                message: format!(
                    "store {:?} is in the snapshot but not in {}; restore it with --to DIR, or leave it out with --skip {}",
                    record.name,
                    cfg.file.display(),
                    record.name
                ),
            })
        }
        (_, Some(c)) if c.kind == record.kind => registry.build(c)?.1,
        (None, Some(c)) => {
            return Err(Error::Usage {
                message: format!(
                    "store {:?} is kind {} in the snapshot but kind {} in {}",
                    record.name,
                    record.kind,
                    c.kind,
                    cfg.file.display()
                ),
            })
        }
        (Some(_), _) => {
            let synthetic = StoreConfig::from_record(&record.name, &record.kind, Path::new(&record.source));
            registry.build(&synthetic)?.1
        }
    };
    let target = match to {
        Some(dir) => {
            let store_dir = dir.join(&record.name);
            if fs::read_dir(&store_dir)
                .map(|mut d| d.next().is_some())
                .unwrap_or(false)
            {
                return Err(Error::Usage {
                    message: format!(
                        "--to: {} is not empty; restore into an empty or new directory",
                        store_dir.display()
                    ),
                });
            }
            match record.shape {
                Shape::Dir => store_dir,
                Shape::File => store_dir.join(&record.entries[0].path),
            }
        }
        // Checked above: a live restore has the store's config.
        // Through a symlinked path to what it names, as snapshot does: the
        // link itself stays, its target is what gets replaced.
        None => config
            .map(|c| fs::canonicalize(&c.path).unwrap_or_else(|_| c.path.clone()))
            .unwrap_or_default(),
    };
    Ok(Job {
        record,
        handler,
        target,
        config: if to.is_none() { config } else { None },
    })
}

enum StageError {
    /// The snapshot's content is not what its manifest says.
    Problems(Vec<Problem>),
    Fatal(Error),
}

impl From<Error> for StageError {
    fn from(e: Error) -> Self {
        StageError::Fatal(e)
    }
}

/// A verified copy of one store, on the target's filesystem. Dropping it
/// removes whatever is left of the staging directory.
struct Staged {
    /// Holds the store's entries, laid out as in the snapshot.
    dir: PathBuf,
    /// The staged file (file shape) or `dir` itself (dir shape).
    content: PathBuf,
}

impl Drop for Staged {
    fn drop(&mut self) {
        let _ = fsutil::remove_any(&self.dir);
    }
}

/// The directories that staging creates because they do not exist yet
/// (a file store's parent, a directory store itself, `--to DIR`),
/// deepest first, so a failed staging can remove them again.
fn dirs_staging_will_create(jobs: &[Job<'_>], to: Option<&Path>) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    let wanted = jobs
        .iter()
        .filter_map(|job| match job.record.shape {
            Shape::File => job.target.parent().map(Path::to_owned),
            Shape::Dir => Some(job.target.clone()),
        })
        .chain(to.map(Path::to_owned));
    for dir in wanted {
        // Every missing ancestor is created too (create_dir_all).
        for missing in dir.ancestors().take_while(|d| fsutil::is_absent(d)) {
            if !dirs.iter().any(|d| d == missing) {
                dirs.push(missing.to_owned());
            }
        }
    }
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    dirs
}

/// Every store staged, or the first failure in config order (the staged
/// copies are then removed as they drop). A damaged snapshot is refused
/// with the problems of every store, not only the first one's.
fn collect_staged(
    id: &SnapshotId,
    results: Vec<Result<Staged, StageError>>,
) -> Result<Vec<Staged>> {
    let mut staged = Vec::new();
    let mut problems = Vec::new();
    let mut first_fatal = None;
    for result in results {
        match result {
            Ok(s) => staged.push(s),
            Err(StageError::Problems(p)) => problems.extend(p),
            Err(StageError::Fatal(e)) if problems.is_empty() => {
                first_fatal.get_or_insert(e);
            }
            Err(StageError::Fatal(_)) => {}
        }
    }
    if let Some(e) = first_fatal {
        return Err(e);
    }
    if !problems.is_empty() {
        return Err(unsound_refusal(id, &problems));
    }
    Ok(staged)
}

/// Stages a store and runs its kind's check on the staged copy.
fn stage(
    id: &SnapshotId,
    root: &Path,
    record: &StoreRecord,
    handler: &dyn StoreHandler,
    target: &Path,
) -> Result<Staged, StageError> {
    let staged = stage_files(id, root, record, target)?;
    let problems = check_staged(handler, &staged.dir, record);
    if problems.is_empty() {
        Ok(staged)
    } else {
        Err(StageError::Problems(problems))
    }
}

/// The kind's own check on a staged copy, problems named by store.
fn check_staged(handler: &dyn StoreHandler, base: &Path, record: &StoreRecord) -> Vec<Problem> {
    let started = std::time::Instant::now();
    let problems: Vec<Problem> = handler
        .check(base, record, Depth::Deep)
        .into_iter()
        .map(|p| p.in_store(&record.name))
        .collect();
    tracing::info!(store = %record.name, check_ms = started.elapsed().as_millis() as u64, "staged copy checked");
    problems
}

/// Copies a store's snapshot content onto the target's filesystem,
/// verifying every file's hash on the way, with modes and times applied
/// and the copy synced.
fn stage_files(
    id: &SnapshotId,
    root: &Path,
    record: &StoreRecord,
    target: &Path,
) -> Result<Staged, StageError> {
    let pid = std::process::id();
    let staging_name = format!("{STAGING_PREFIX}{id}-{}-{pid}", record.name);
    let staged = match record.shape {
        Shape::File => {
            let parent = target.parent().unwrap_or(Path::new("/"));
            fs::create_dir_all(parent).map_err(io_at("create directory", parent))?;
            let dir = parent.join(&staging_name);
            fsutil::create_dir_private(&dir)?;
            let entry = &record.entries[0];
            Staged {
                content: dir.join(&entry.path),
                dir,
            }
        }
        Shape::Dir => {
            fs::create_dir_all(target).map_err(io_at("create directory", target))?;
            let dir = target.join(&staging_name);
            fsutil::create_dir_private(&dir)?;
            Staged {
                content: dir.clone(),
                dir,
            }
        }
    };
    // Entries are laid out under the staging directory as under the
    // snapshot's store directory.
    let base = staged.dir.clone();
    // A replaced file keeps the live file's owner and mode; new entries in
    // a kept directory take the directory's owner.
    let owner = fs::metadata(target).ok();

    // Directories and links first, in manifest order (parents first), then
    // every file on every core, verified against its hash while copying.
    let mut files = Vec::new();
    for entry in &record.entries {
        let dst = base.join(&entry.path);
        match entry.kind {
            EntryKind::Dir => fsutil::create_dir_private(&dst)?,
            EntryKind::Symlink => {
                let target = entry.target.as_deref().unwrap_or_default();
                std::os::unix::fs::symlink(target, &dst).map_err(io_at("create symlink", &dst))?;
            }
            EntryKind::File => files.push(entry),
        }
    }
    let verified = crate::parallel::filter_map_largest_first(
        &files,
        |e| e.size.unwrap_or(0),
        |e| {
            let dst = base.join(&e.path);
            let mode = file_mode(record, e, owner.as_ref());
            stage_file(
                &record.name,
                &root.join(&e.path),
                &dst,
                e,
                mode,
                owner.as_ref(),
            )
            .transpose()
        },
    );
    let mut problems = Vec::new();
    for result in verified {
        problems.push(result?);
    }
    if !problems.is_empty() {
        return Err(StageError::Problems(problems));
    }
    apply_metadata(record, &base, owner.as_ref())?;
    fsutil::sync_filesystem(&staged.dir)?;
    Ok(staged)
}

/// Copies one snapshot file to staging; `Some(problem)` when its bytes are
/// not what the manifest recorded.
fn stage_file(
    store: &str,
    src: &Path,
    dst: &Path,
    entry: &crate::Entry,
    mode: u32,
    owner: Option<&fs::Metadata>,
) -> Result<Option<Problem>> {
    let mut file = match fsutil::open_nofollow(src) {
        Ok(f) => f,
        Err(e) => {
            return Ok(Some(
                Problem::new(
                    codes::READ_FAILED,
                    format!("cannot open without following links: {e}"),
                )
                .in_store(store)
                .at(entry.path.clone()),
            ))
        }
    };
    let (out, size, sha) = fsutil::copy_hashed(&mut file, src, dst)?;
    if Some(sha) == entry.sha256 && Some(size) == entry.size {
        use std::os::unix::fs::PermissionsExt;
        out.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(io_at("chmod", dst))?;
        out.set_modified(fsutil::system_time_from_ns(entry.mtime_ns))
            .map_err(io_at("set mtime of", dst))?;
        if let Some(o) = owner {
            // Only root can give files away; for anyone else this is a
            // no-op or EPERM, and the file stays the restoring user's.
            let _ = std::os::unix::fs::fchown(&out, Some(o.uid()), Some(o.gid()));
        }
        return Ok(None);
    }
    Ok(Some(Problem::checksum_mismatch(
        store,
        &entry.path,
        entry.sha256.as_ref(),
        &sha,
    )))
}

/// The mode a restored file gets: a replaced file keeps the live file's
/// mode; anything else gets the mode recorded from its source.
fn file_mode(record: &StoreRecord, entry: &crate::Entry, owner: Option<&fs::Metadata>) -> u32 {
    match (record.shape, owner) {
        (Shape::File, Some(o)) => o.mode() & 0o7777,
        _ => entry.mode,
    }
}

/// Directories and symlinks after every file is in (files got their mode,
/// mtime and owner through their own descriptors while staging): owners
/// from the live target when running as root, then directory modes and
/// mtimes deepest first, so adding children does not bump an mtime
/// already set.
fn apply_metadata(record: &StoreRecord, base: &Path, owner: Option<&fs::Metadata>) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(o) = owner {
        for entry in record.entries.iter().filter(|e| e.kind != EntryKind::File) {
            // Only root can give files away; for anyone else this is a
            // no-op or EPERM, and the entries stay the restoring user's.
            let _ = std::os::unix::fs::lchown(base.join(&entry.path), Some(o.uid()), Some(o.gid()));
        }
    }
    for entry in record
        .entries
        .iter()
        .rev()
        .filter(|e| e.kind == EntryKind::Dir)
    {
        let path = base.join(&entry.path);
        if let Ok(f) = File::open(&path) {
            let _ = f.set_modified(fsutil::system_time_from_ns(entry.mtime_ns));
        }
        fs::set_permissions(&path, fs::Permissions::from_mode(entry.mode))
            .map_err(io_at("chmod", &path))?;
    }
    Ok(())
}

fn swap(
    record: &StoreRecord,
    handler: &dyn StoreHandler,
    target: &Path,
    staged: &Staged,
) -> Result<SwapReport> {
    fault::check_swap(&record.name, target)?;
    handler.restore(&SwapCtx {
        store: &record.name,
        shape: record.shape,
        staged: &staged.content,
        live: target,
        record,
    })
}

/// The generic swap every plug-in gets by default.
pub fn swap_generic(swap: &SwapCtx<'_>) -> Result<()> {
    match swap.shape {
        Shape::File => replace_file(swap.staged, swap.live),
        Shape::Dir => replace_dir_contents(swap.staged, swap.live),
    }
}

/// Atomically replaces `live` with `staged` (same filesystem): a reader
/// sees the old file or the new one, never a mix.
pub fn replace_file(staged: &Path, live: &Path) -> Result<()> {
    fs::rename(staged, live).map_err(io_at("rename into place", live))?;
    fsutil::sync_dir(live.parent().unwrap_or(Path::new("/")))
}

/// Replaces the contents of `live` with those of `staged` (a directory
/// inside `live`), keeping `live` itself: its inode, owner and mode stay,
/// so a bind-mounted volume keeps working. Old contents are parked in a
/// hidden directory until the new ones are all in; on failure they are
/// moved back.
pub fn replace_dir_contents(staged: &Path, live: &Path) -> Result<()> {
    let parked = live.join(format!("{PARKED_PREFIX}{}", std::process::id()));
    fsutil::create_dir_private(&parked)?;
    let staged_name = staged.file_name().map(|n| n.to_owned());
    let parked_name = parked.file_name().map(|n| n.to_owned());

    let old: Vec<_> = children(live)?
        .into_iter()
        .filter(|n| Some(n) != staged_name.as_ref() && Some(n) != parked_name.as_ref())
        .collect();
    let new = children(staged)?;

    let result = (|| {
        move_all(&old, live, &parked)?;
        move_all(&new, staged, live)
    })();
    if let Err(e) = result {
        // Put the old contents back: whatever of the new is in goes back to
        // staging first, so no name collides.
        let _ = move_present(&new, live, staged);
        let _ = move_present(&old, &parked, live);
        let _ = fs::remove_dir(&parked);
        return Err(e);
    }
    fsutil::sync_dir(live)?;
    fsutil::remove_any(&parked)?;
    fsutil::sync_dir(live)
}

fn children(dir: &Path) -> Result<Vec<std::ffi::OsString>> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_at("read directory", dir))? {
        names.push(entry.map_err(io_at("read directory", dir))?.file_name());
    }
    names.sort();
    Ok(names)
}

fn move_all(names: &[std::ffi::OsString], from: &Path, to: &Path) -> Result<()> {
    for name in names {
        let dst = to.join(name);
        fs::rename(from.join(name), &dst).map_err(io_at("move into place", &dst))?;
    }
    Ok(())
}

fn move_present(names: &[std::ffi::OsString], from: &Path, to: &Path) -> Result<()> {
    for name in names {
        let src = from.join(name);
        if !fsutil::is_absent(&src) {
            fs::rename(&src, to.join(name)).map_err(io_at("move back", &src))?;
        }
    }
    Ok(())
}

/// Puts the already-swapped stores back from the pre-restore snapshot.
fn roll_back(repo: &Repository, outcome: &mut RestoreOutcome, swapped: &[&Job<'_>]) {
    let Some(pre_id) = outcome.pre_restore_snapshot.clone() else {
        outcome.rollback_failure = Some(format!(
            "no pre-restore snapshot was taken (--no-pre-snapshot), so {} stay restored from {}; restore them again or fix by hand",
            swapped.iter().map(|j| j.record.name.as_str()).collect::<Vec<_>>().join(", "),
            outcome.id
        ));
        return;
    };
    let result = (|| -> Result<()> {
        let pre = repo.resolve(&pre_id)?;
        let manifest = Manifest::read_from(&repo.snapshot_dir(&pre), pre.as_str())
            .map_err(|p| Error::store("", ExitClass::Unsound, p.to_string()))?;
        for job in swapped {
            let Some(record) = manifest.store(&job.record.name) else {
                continue;
            };
            if record.status == StoreStatus::Absent {
                // The store did not exist before the restore.
                if record.shape == Shape::File {
                    fsutil::remove_any(&job.target)?;
                }
                continue;
            }
            let root = repo.store_dir(&pre, &record.name);
            let handler = job.handler.as_ref();
            let staged = match stage(&pre, &root, record, handler, &job.target) {
                Ok(s) => s,
                Err(StageError::Problems(p)) => {
                    let first = p.first().map(|p| p.to_string()).unwrap_or_default();
                    return Err(Error::store(
                        &record.name,
                        ExitClass::Unsound,
                        format!("pre-restore snapshot {pre} is not sound: {first}"),
                    ));
                }
                Err(StageError::Fatal(e)) => return Err(e),
            };
            swap(record, handler, &job.target, &staged)?;
            if let Some(s) = outcome
                .stores
                .iter_mut()
                .find(|s| s.name == job.record.name)
            {
                s.restored = false;
                s.detail = Some(format!("rolled back to pre-restore snapshot {pre}"));
            }
        }
        Ok(())
    })();
    match result {
        Ok(()) => outcome.rolled_back = true,
        Err(e) => {
            outcome.rollback_failure = Some(format!(
                "rollback from {pre_id} failed: {e}. Finish by hand: `cairn restore {pre_id} --confirm-service-stopped --no-pre-snapshot`"
            ))
        }
    }
}
