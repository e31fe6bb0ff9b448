//! Restore step 2: every selected store copied onto its target's
//! filesystem and verified, before anything live changes.

use std::ffi::OsString;
use std::path::Path;

use super::plan::RestorePlan;
use super::target::Target;
use crate::dirfd::DirFd;
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
                    target = %job.target.shown.display(),
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
                // The staged copies removed themselves as they dropped; the
                // directories created to reach the targets go too.
                super::plan::remove_created(&self.jobs);
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

/// A verified copy of one store, on the target's filesystem, in a 0700
/// directory with an unpredictable name, held open. Dropping it removes
/// whatever is left of that directory.
pub(super) struct Staged {
    /// Where the staging directory is: a file store's directory, or a
    /// directory store's own directory.
    pub(super) host: DirFd,
    /// The staging directory's name in `host`.
    pub(super) name: OsString,
    /// The staging directory, laid out as the snapshot's store directory.
    pub(super) dir: DirFd,
    /// A directory store's directory that this staging created (its
    /// parent and name): removed again unless the swap kept it.
    pub(super) created_host: Option<(DirFd, OsString)>,
    /// Set once the content is swapped in: the host is the live store now.
    pub(super) swapped: std::cell::Cell<bool>,
}

impl Drop for Staged {
    fn drop(&mut self) {
        let _ = self.host.remove_tree(&self.name);
        if let (Some((parent, name)), false) = (&self.created_host, self.swapped.get()) {
            let _ = parent.remove_empty_dir(name);
        }
    }
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
    target: &Target,
) -> Result<(Staged, Vec<Problem>), StageError> {
    let staged = stage_files(root, record, target)?;
    let started = std::time::Instant::now();
    let problems = validate::kind_check(handler, &staged.dir.fd_path(""), record, Depth::Deep);
    tracing::info!(store = %record.name, snapshot = %id, check_ms = started.elapsed().as_millis() as u64, "staged copy checked");
    Ok((staged, problems))
}

/// Copies a store's snapshot content (at `root`, in the repository) into a
/// fresh staging directory on the target's filesystem, verifying every
/// file's hash on the way, with owners, modes and times applied through
/// descriptors, and the copy synced.
fn stage_files(root: &Path, record: &StoreRecord, target: &Target) -> Result<Staged, StageError> {
    let (host, created_host) = match record.shape {
        Shape::File => (target.parent.clone(), None),
        Shape::Dir => match target.open_or_create_dir()? {
            (dir, true) => (dir, Some((target.parent.clone(), target.name.clone()))),
            (dir, false) => (dir, None),
        },
    };
    let (name, dir) = host.create_unique_dir(replace::STAGING_PREFIX)?;
    let staged = Staged {
        host,
        name,
        dir,
        created_host,
        swapped: std::cell::Cell::new(false),
    };
    if record.shape == Shape::File && record.entries.len() != 1 {
        return Err(StageError::Problems(vec![Problem::new(
            codes::MANIFEST_INVALID,
            "a single-file store must have exactly one entry",
        )
        .in_store(&record.name)]));
    }
    // A live restore gives what it writes to the owner of what it
    // replaces (a file store: the live file; a directory store: the live
    // directory), and a replaced file keeps the live file's mode. A
    // restore elsewhere adopts no one's ownership.
    let live_owner = if target.live {
        match record.shape {
            Shape::File => target.parent.stat(target.name()).ok(),
            Shape::Dir => staged.host.stat_self().ok(),
        }
        .map(|st| Owner {
            uid: st.st_uid,
            gid: st.st_gid,
            mode: st.st_mode & 0o7777,
        })
    } else {
        None
    };

    // Directories and links first, in manifest order (parents first), then
    // every file on every core, verified against its hash while copying.
    let mut files = Vec::new();
    for entry in &record.entries {
        match entry.kind {
            EntryKind::Dir => {
                let (parent, leaf) = staged.dir.parent_beneath(&entry.path)?;
                parent.create_dir(leaf)?;
            }
            EntryKind::Symlink => {
                let (parent, leaf) = staged.dir.parent_beneath(&entry.path)?;
                let to = entry.target.as_deref().unwrap_or_default();
                parent.symlink(Path::new(to), leaf)?;
            }
            EntryKind::File => files.push(entry),
        }
    }
    let verified = crate::parallel::filter_map_largest_first(
        &files,
        |e| e.size.unwrap_or(0),
        |e| {
            let mode = match (record.shape, &live_owner) {
                (Shape::File, Some(o)) => o.mode,
                _ => e.mode,
            };
            stage_file(
                &record.name,
                &root.join(&e.path),
                &staged.dir,
                e,
                mode,
                live_owner.as_ref(),
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
    apply_metadata(record, &staged.dir, live_owner.as_ref())?;
    fsutil::sync_filesystem(&staged.dir.fd_path(""))?;
    Ok(staged)
}

/// Whose a live restore's files become, and a replaced file's mode.
struct Owner {
    uid: u32,
    gid: u32,
    mode: u32,
}

/// Copies one snapshot file into staging; `Some(problem)` when its bytes
/// are not what the manifest recorded.
fn stage_file(
    store: &str,
    src: &Path,
    staging: &DirFd,
    entry: &Entry,
    mode: u32,
    owner: Option<&Owner>,
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
    let (parent, leaf) = staging.parent_beneath(&entry.path)?;
    let dst = parent.shown(leaf);
    let mut out = parent.create_file(leaf)?;
    let (size, sha) = fsutil::copy_into(&mut file, src, &mut out, &dst)?;
    if Some(sha) != entry.sha256 || Some(size) != entry.size {
        return Ok(Some(Problem::checksum_mismatch(
            store,
            &entry.path,
            entry.sha256.as_ref(),
            &sha,
        )));
    }
    // Owner before mode: chown clears setuid and setgid.
    if let Some(o) = owner {
        // Only root can give files away; for anyone else this is EPERM,
        // and the file stays the restoring user's.
        let _ = std::os::unix::fs::fchown(&out, Some(o.uid), Some(o.gid));
    }
    use std::os::unix::fs::PermissionsExt;
    out.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(io_at("chmod", &dst))?;
    out.set_modified(fsutil::system_time_from_ns(entry.mtime_ns))
        .map_err(io_at("set mtime of", &dst))?;
    Ok(None)
}

/// Directories and symlinks after every file is in (files got their mode,
/// mtime and owner through their own descriptors while staging): owners
/// (a live restore run as root), then directory modes and mtimes deepest
/// first, so adding children does not bump an mtime already set. All by
/// descriptor inside the private staging directory.
fn apply_metadata(record: &StoreRecord, staging: &DirFd, owner: Option<&Owner>) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(o) = owner {
        for entry in record.entries.iter().filter(|e| e.kind != EntryKind::File) {
            let (parent, leaf) = staging.parent_beneath(&entry.path)?;
            // Only root can give files away; for anyone else this is EPERM.
            let _ = parent.chown_child(leaf, o.uid, o.gid);
        }
    }
    for entry in record
        .entries
        .iter()
        .rev()
        .filter(|e| e.kind == EntryKind::Dir)
    {
        let dir = staging.open_beneath(&entry.path)?.as_file()?;
        let shown = staging.shown(&entry.path);
        let _ = dir.set_modified(fsutil::system_time_from_ns(entry.mtime_ns));
        dir.set_permissions(std::fs::Permissions::from_mode(entry.mode))
            .map_err(io_at("chmod", &shown))?;
    }
    Ok(())
}
