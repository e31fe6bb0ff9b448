//! Restore step 2: every selected store copied onto its target's
//! filesystem and verified, before anything live changes.

use std::fs::{self, File};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::plan::RestorePlan;
use crate::error::{io_at, Error, Result};
use crate::id::SnapshotId;
use crate::manifest::{Entry, EntryKind, Shape, StoreRecord};
use crate::plugin::{Depth, StoreHandler};
use crate::problem::{codes, Problem};
use crate::repo::STORES_DIR;
use crate::{fsutil, replace, validate};

/// A plan whose every store is staged and verified on its target's
/// filesystem. Dropping it removes the staged copies.
pub struct StagedRestore<'a> {
    pub(super) plan: RestorePlan<'a>,
    /// One per `plan.jobs`, in the same order.
    pub(super) staged: Vec<Staged>,
    /// What the kinds' own checks found in files that match their
    /// manifest; accepted only where [`RestorePlan::accepts_kind_problems`].
    pub(super) kind_problems: Vec<Problem>,
}

impl<'a> RestorePlan<'a> {
    /// Stages and verifies every store at once, one thread each (an SQLite
    /// file is copied and hashed on one core, so a tree staged beside it
    /// uses the others), each followed by its kind's own check of the
    /// staged copy. Any problem refuses the restore with every store's
    /// problems, and leaves no trace: not even the empty directories
    /// staging created (a restore elsewhere, a missing parent).
    pub fn stage(self) -> Result<StagedRestore<'a>> {
        let snap_dir = self.repo.snapshot_dir(&self.id);
        crate::progress::begin(
            "restore",
            Some(
                self.jobs
                    .iter()
                    .map(|j| self.record(j).bytes())
                    .fold(0, u64::saturating_add),
            ),
        );
        let new_dirs = dirs_staging_will_create(&self);
        let plan = &self;
        let results = crate::parallel::each_on_its_own_thread(
            self.jobs.iter().collect(),
            |job| {
                let started = std::time::Instant::now();
                let record = plan.record(job);
                let root = snap_dir.join(STORES_DIR).join(&record.name);
                let staged = stage_store(&plan.id, &root, record, &*job.handler, &job.target);
                tracing::info!(
                    store = %record.name,
                    target = %job.target.display(),
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "staged and verified"
                );
                staged
            },
            |i| {
                Err(StageError::Fatal(
                    Error::Plugin {
                        message: "staging panicked".into(),
                    }
                    .in_store(&plan.record(&plan.jobs[i]).name),
                ))
            },
        );
        let (staged, kind_problems) = collect_staged(&self.id, results)
            .and_then(|(staged, kind_problems)| {
                if kind_problems.is_empty() || self.accepts_kind_problems() {
                    Ok((staged, kind_problems))
                } else {
                    Err(Error::Unsound {
                        id: self.id.to_string(),
                        problems: kind_problems,
                    })
                }
            })
            .inspect_err(|_| {
                for dir in &new_dirs {
                    let _ = fs::remove_dir(dir);
                }
            })?;
        crate::progress::finish();
        Ok(StagedRestore {
            plan: self,
            staged,
            kind_problems,
        })
    }
}

pub(super) enum StageError {
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
pub(super) struct Staged {
    /// Holds the store's entries, laid out as in the snapshot.
    dir: PathBuf,
    /// The staged file (file shape) or `dir` itself (dir shape).
    pub(super) content: PathBuf,
}

impl Drop for Staged {
    fn drop(&mut self) {
        let _ = fsutil::remove_any(&self.dir);
    }
}

/// The directories that staging creates because they do not exist yet
/// (a file store's parent, a directory store itself, the directory restored into),
/// deepest first, so a failed staging can remove them again.
fn dirs_staging_will_create(plan: &RestorePlan<'_>) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    let wanted = plan
        .jobs
        .iter()
        .filter_map(|job| match plan.record(job).shape {
            Shape::File => job.target.parent().map(Path::to_owned),
            Shape::Dir => Some(job.target.clone()),
        })
        .chain(plan.to.clone());
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

/// Every store staged with what its kind's check found, or the first
/// failure in config order (the staged copies are then removed as they
/// drop). A damaged snapshot is refused with the problems of every store,
/// not only the first one's.
fn collect_staged(
    id: &SnapshotId,
    results: Vec<Result<(Staged, Vec<Problem>), StageError>>,
) -> Result<(Vec<Staged>, Vec<Problem>)> {
    let mut staged = Vec::new();
    let mut problems = Vec::new();
    let mut kind_problems = Vec::new();
    let mut first_fatal = None;
    for result in results {
        match result {
            Ok((s, found)) => {
                staged.push(s);
                kind_problems.extend(found);
            }
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
        problems.extend(kind_problems);
        return Err(Error::Unsound {
            id: id.to_string(),
            problems,
        });
    }
    Ok((staged, kind_problems))
}

/// Stages a store (every file verified against its hash), then runs its
/// kind's check on the staged copy; what the check finds is returned
/// beside the copy, for the caller to accept or refuse.
pub(super) fn stage_store(
    id: &SnapshotId,
    root: &Path,
    record: &StoreRecord,
    handler: &dyn StoreHandler,
    target: &Path,
) -> Result<(Staged, Vec<Problem>), StageError> {
    let staged = stage_files(id, root, record, target)?;
    let started = std::time::Instant::now();
    let problems = validate::kind_check(handler, &staged.dir, record, Depth::Deep);
    tracing::info!(store = %record.name, check_ms = started.elapsed().as_millis() as u64, "staged copy checked");
    Ok((staged, problems))
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
    let staging_name = format!("{}{id}-{}-{pid}", replace::STAGING_PREFIX, record.name);
    let staged = match record.shape {
        Shape::File => {
            let parent = target.parent().unwrap_or(Path::new("/"));
            fs::create_dir_all(parent).map_err(io_at("create directory", parent))?;
            let dir = parent.join(&staging_name);
            fsutil::create_dir_private(&dir)?;
            let Some(entry) = record.entries.first() else {
                return Err(StageError::Problems(vec![Problem::new(
                    codes::FILE_MISSING,
                    "a single-file store with no entry in the manifest",
                )
                .in_store(&record.name)]));
            };
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
    entry: &Entry,
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
fn file_mode(record: &StoreRecord, entry: &Entry, owner: Option<&fs::Metadata>) -> u32 {
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
