//! Restore step 2: every selected store copied onto its target's
//! filesystem and verified, before anything live changes.

use std::ffi::OsString;
use std::path::Path;

use super::plan::RestorePlan;
use super::target::Target;
use crate::dirfd::{DirFd, ParentCache};
use crate::error::{io_at, Error, Result};
use crate::id::SnapshotId;
use crate::manifest::{Entry, EntryKind, RawPath, Shape, StoreRecord};
use crate::plugin::{Depth, StoreHandler};
use crate::problem::{codes, Problem};
use crate::repo::STORES_DIR;
use crate::{fsutil, replace, validate, xattr};

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
    /// staged copy; beside them, the snapshot's listing is checked
    /// ([`RestorePlan::check_snapshot`]). Any problem refuses the
    /// restore with every store's problems, and leaves no trace: not even
    /// the empty directories staging created (a restore elsewhere, a
    /// missing parent).
    pub fn stage(self) -> Result<StagedRestore<'a>> {
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
        // The snapshot's listing (missing, retyped, resized or unlisted
        // entries) is checked beside the copy: it is a walk of `stat`s
        // that would otherwise hold up every store's first byte.
        let (listing, results) = std::thread::scope(|scope| {
            let listing = scope.spawn(|| plan.check_snapshot());
            let results = plan.stage_each();
            (listing.join(), results)
        });
        let listing = listing.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        if let Err(refused) = listing {
            // What the listing found is the refusal, as it was when it ran
            // first: a file missing is not also reported as unreadable.
            drop(results);
            super::plan::remove_created(&self.jobs);
            return Err(refused);
        }
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

    /// Every store staged on a thread of its own, in job order.
    fn stage_each(&self) -> Vec<Result<(Staged, Vec<Problem>), StageError>> {
        let snap_dir = self.repo.snapshot_dir(&self.id);
        let plan = self;
        crate::parallel::each_on_its_own_thread(
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
        )
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
    /// What of the recorded metadata could not be given back (owners as
    /// another user than root, attributes the file system refuses).
    pub(super) not_kept: Vec<String>,
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

/// Stages a store (every file verified against its hash), then syncs it
/// while its kind's check runs on the staged copy; what the check finds
/// is returned beside the copy, for the caller to accept or refuse.
pub(super) fn stage_store(
    id: &SnapshotId,
    root: &Path,
    record: &StoreRecord,
    handler: &dyn StoreHandler,
    target: &Target,
) -> Result<(Staged, Vec<Problem>), StageError> {
    let staged = stage_files(root, record, target)?;
    let started = std::time::Instant::now();
    let dir = staged.dir.fd_path("");
    // The disk writes the staged copy while the CPU checks it from the
    // page cache: both are done before anything live is touched, and the
    // sync's error is the restore's (nothing later syncs the staging).
    let (synced, problems) = std::thread::scope(|scope| {
        let sync = scope.spawn(|| fsutil::sync_filesystem(&dir));
        let problems = validate::kind_check(handler, &dir, record, Depth::Deep);
        (sync.join(), problems)
    });
    synced.unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
    tracing::info!(store = %record.name, snapshot = %id, check_ms = started.elapsed().as_millis() as u64, "staged copy synced and checked");
    // A stop request interrupts a kind's check (SQLite's), which then
    // reports a failure that is not the copy's: the stop is the answer.
    // (The CLI reports any error after a signal as the stop anyway; this
    // keeps the engine's own answer right for every caller.)
    crate::cancel::check()?;
    Ok((staged, problems))
}

/// Copies a store's snapshot content (at `root`, in the repository) into a
/// fresh staging directory on the target's filesystem, verifying every
/// file's hash on the way, with owners, modes and times applied through
/// descriptors ([`stage_store`] syncs it).
fn stage_files(root: &Path, record: &StoreRecord, target: &Target) -> Result<Staged, StageError> {
    let (host, created_host) = match record.shape {
        Shape::File => (target.parent.clone(), None),
        Shape::Dir => match target.open_or_create_dir()? {
            (dir, true) => (dir, Some((target.parent.clone(), target.name.clone()))),
            (dir, false) => (dir, None),
        },
    };
    let (name, dir) = host.create_unique_dir(replace::STAGING_PREFIX)?;
    // The staging directory inherited the host's default ACL, if any; off
    // it comes, so nothing staged inherits an ACL, and no file needs one
    // taken off (two system calls per file).
    let acls_inherited = !xattr::clear_default_acl(dir.fd());
    let mut staged = Staged {
        host,
        name,
        dir,
        created_host,
        swapped: std::cell::Cell::new(false),
        not_kept: Vec::new(),
    };
    if record.shape == Shape::File && record.entries.len() != 1 {
        return Err(StageError::Problems(vec![Problem::new(
            codes::MANIFEST_INVALID,
            "a single-file store must have exactly one entry",
        )
        .in_store(&record.name)]));
    }
    // A live restore of a manifest that records no owners (older than
    // version 3) gives what it writes to the owner of what it replaces (a
    // file store: the live file; a directory store: the live directory).
    // A replaced file keeps the live file's owner and mode whatever the
    // manifest says, as a kept directory does.
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
    let replaced_file = match (record.shape, target.live) {
        (Shape::File, true) => live_owner.as_ref(),
        _ => None,
    };
    let ctx = Apply {
        live_owner: live_owner.as_ref(),
        replaced_file,
        acls_inherited,
        not_kept: std::sync::Mutex::new(NotKept::default()),
    };

    // Directories and links first, in manifest order (parents first), then
    // every file on every core, verified against its hash while copying,
    // then the hard links between them.
    let mut files = Vec::new();
    let mut links = Vec::new();
    for entry in &record.entries {
        match entry.kind {
            EntryKind::Dir => {
                let (parent, leaf) = staged.dir.parent_beneath(&entry.path)?;
                parent.create_dir(leaf)?;
            }
            EntryKind::Symlink => {
                let (parent, leaf) = staged.dir.parent_beneath(&entry.path)?;
                let to = entry.target().map(RawPath::as_path);
                parent.symlink(to.unwrap_or(Path::new("")), leaf)?;
            }
            EntryKind::File if entry.link_of().is_some() => links.push(entry),
            EntryKind::File => files.push(entry),
        }
    }
    // The snapshot's copy is in the repository, which only its owner
    // changes: its directories can be held open (as the private staging
    // directory's can) while their files are copied.
    let source = match DirFd::open_trusted(root) {
        Ok(dir) => dir,
        Err(e) => {
            return Err(StageError::Problems(vec![Problem::new(
                codes::READ_FAILED,
                e.to_string(),
            )
            .in_store(&record.name)]))
        }
    };
    let verified = crate::parallel::filter_map_largest_first(
        &files,
        |e| e.size.unwrap_or(0),
        || (ParentCache::new(&source), ParentCache::new(&staged.dir)),
        |(sources, staging), e| stage_file(&record.name, sources, staging, e, &ctx).transpose(),
    );
    let mut problems = Vec::new();
    for result in verified {
        problems.push(result?);
    }
    if !problems.is_empty() {
        return Err(StageError::Problems(problems));
    }
    // A later name of an inode: linked to its first name's staged file
    // (verified above; the reader checked it is a file entry of the same
    // size and sha256), so it shares its content, owner, mode and
    // attributes, as it did.
    for entry in links {
        let Some(first) = entry.link_of() else {
            continue;
        };
        let (from_dir, from) = staged.dir.parent_beneath(first)?;
        let (to_dir, to) = staged.dir.parent_beneath(&entry.path)?;
        from_dir.link(from, &to_dir, to)?;
    }
    apply_metadata(record, &staged.dir, &ctx)?;
    let not_kept = ctx.not_kept.into_inner().unwrap_or_else(|e| e.into_inner());
    staged.not_kept = not_kept.messages();
    Ok(staged)
}

/// Whose a live restore's files become when the manifest does not say,
/// and a replaced file's mode.
struct Owner {
    uid: u32,
    gid: u32,
    mode: u32,
}

/// How metadata is applied to one store's staged entries, and what could
/// not be.
struct Apply<'a> {
    /// For entries without a recorded owner (manifests before version 3).
    live_owner: Option<&'a Owner>,
    /// A file store's live file: it keeps its owner and mode.
    replaced_file: Option<&'a Owner>,
    /// Whether what is staged may have inherited an ACL that it must not
    /// keep (the staging directory's default ACL could not be cleared).
    acls_inherited: bool,
    not_kept: std::sync::Mutex<NotKept>,
}

/// What a restore could not give back as recorded, reported per store.
#[derive(Default)]
struct NotKept {
    /// Entries whose recorded owner could not be given (not root).
    owners: usize,
    /// Files whose setuid/setgid bits were dropped with their owner.
    special_bits: usize,
    /// Extended attributes that could not be set, by name, and on how
    /// many entries.
    xattrs: std::collections::BTreeMap<RawPath, usize>,
}

impl NotKept {
    fn messages(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.owners > 0 {
            out.push(format!(
                "the owner and group of {} entries were not restored (only root can give files away): they belong to uid {}",
                self.owners,
                rustix::process::geteuid().as_raw()
            ));
        }
        if self.special_bits > 0 {
            out.push(format!(
                "the setuid/setgid bits of {} files were dropped, since their owner could not be restored",
                self.special_bits
            ));
        }
        if !self.xattrs.is_empty() {
            let names: Vec<String> = self
                .xattrs
                .iter()
                .map(|(name, n)| format!("{name} ({n})"))
                .collect();
            out.push(format!(
                "extended attributes not restored (root is needed for trusted. and security.capability, and the file system must support them): {}",
                names.join(", ")
            ));
        }
        out
    }
}

impl Apply<'_> {
    fn note(&self, f: impl FnOnce(&mut NotKept)) {
        let mut guard = self.not_kept.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut guard);
    }

    /// Gives an entry its owner: the recorded one, else (an older
    /// manifest) a live restore's owner. `Some(true)` when the recorded
    /// owner was given, `Some(false)` when it could not be (reported),
    /// `None` when none is recorded.
    fn chown(
        &self,
        entry: &Entry,
        chown: impl FnOnce(u32, u32) -> std::io::Result<()>,
    ) -> Option<bool> {
        if let Some(o) = self.replaced_file {
            // Only root can give files away; for anyone else this is EPERM,
            // and the file stays the restoring user's.
            let _ = chown(o.uid, o.gid);
            return None;
        }
        match (entry.uid, entry.gid) {
            (Some(uid), Some(gid)) => match chown(uid, gid) {
                Ok(()) => Some(true),
                Err(_) => {
                    self.note(|n| n.owners += 1);
                    Some(false)
                }
            },
            _ => {
                if let Some(o) = self.live_owner {
                    let _ = chown(o.uid, o.gid);
                }
                None
            }
        }
    }

    /// The mode to set after the owner: a replaced file keeps the live
    /// one; setuid and setgid only with the recorded owner.
    fn mode(&self, entry: &Entry, owned: Option<bool>) -> u32 {
        if let Some(o) = self.replaced_file {
            return o.mode;
        }
        if owned == Some(false) && entry.mode & 0o6000 != 0 {
            self.note(|n| n.special_bits += 1);
            return entry.mode & !0o6000;
        }
        entry.mode
    }

    fn xattrs(&self, fd: impl std::os::fd::AsFd, entry: &Entry, shown: &Path) -> Result<()> {
        let not_set = xattr::apply(fd, entry.xattrs(), shown, self.acls_inherited)?;
        if !not_set.is_empty() {
            self.note(|n| {
                for name in not_set {
                    *n.xattrs.entry(name).or_default() += 1;
                }
            });
        }
        Ok(())
    }
}

/// Copies one snapshot file into staging, holes kept; `Some(problem)`
/// when its bytes are not what the manifest recorded. Then, through the
/// new file's descriptor: owner (chown clears setuid, setgid and file
/// capabilities, so it goes first), extended attributes and ACLs, mode
/// (which also sets an ACL's mask to the recorded group bits), mtime.
fn stage_file(
    store: &str,
    sources: &mut ParentCache<'_>,
    staging: &mut ParentCache<'_>,
    entry: &Entry,
    ctx: &Apply<'_>,
) -> Result<Option<Problem>> {
    let (file, stat, src) = match sources.open_file(&entry.path) {
        Ok(opened) => opened,
        Err(e) => {
            let why = match e {
                Error::Io { source, .. } => source.to_string(),
                other => other.to_string(),
            };
            return Ok(Some(
                Problem::new(
                    codes::READ_FAILED,
                    format!("cannot open without following links: {why}"),
                )
                .in_store(store)
                .at(&entry.path),
            ));
        }
    };
    let (parent, leaf) = staging.parent_of(&entry.path)?;
    let dst = parent.shown(leaf);
    let out = parent.create_file(leaf)?;
    let (size, sha) = fsutil::copy_sparse(
        &file,
        fsutil::Extents::of_stat(&file, &stat),
        &src,
        &out,
        &dst,
    )?;
    if Some(sha) != entry.sha256 || Some(size) != entry.size {
        return Ok(Some(Problem::checksum_mismatch(
            store,
            entry.path.shown().as_ref(),
            entry.sha256.as_ref(),
            &sha,
        )));
    }
    let owned = ctx.chown(entry, |uid, gid| {
        std::os::unix::fs::fchown(&out, Some(uid), Some(gid))
    });
    ctx.xattrs(&out, entry, &dst)?;
    use std::os::unix::fs::PermissionsExt;
    out.set_permissions(std::fs::Permissions::from_mode(ctx.mode(entry, owned)))
        .map_err(io_at("chmod", &dst))?;
    out.set_modified(fsutil::system_time_from_ns(entry.mtime_ns))
        .map_err(io_at("set mtime of", &dst))?;
    Ok(None)
}

/// Directories and symlinks after every file is in (files got theirs
/// through their own descriptors while staging): owners, then for
/// directories, deepest first so adding children does not bump an mtime
/// already set, attributes and ACLs (a default ACL only now, so the files
/// staged inside did not inherit it), mode and mtime; a symlink's own
/// mtime. All by descriptor inside the private staging directory.
fn apply_metadata(record: &StoreRecord, staging: &DirFd, ctx: &Apply<'_>) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for entry in record
        .entries
        .iter()
        .rev()
        .filter(|e| e.kind != EntryKind::File)
    {
        match entry.kind {
            EntryKind::Symlink => {
                let (parent, leaf) = staging.parent_beneath(&entry.path)?;
                ctx.chown(entry, |uid, gid| {
                    parent
                        .chown_child(leaf, uid, gid)
                        .map_err(std::io::Error::other)
                });
                parent.set_mtime_child(leaf, entry.mtime_ns)?;
            }
            EntryKind::Dir => {
                let dir = staging.open_beneath(entry.path.as_bytes())?.as_file()?;
                let shown = staging.shown(entry.path.as_path());
                let owned = ctx.chown(entry, |uid, gid| {
                    std::os::unix::fs::fchown(&dir, Some(uid), Some(gid))
                });
                ctx.xattrs(&dir, entry, &shown)?;
                dir.set_permissions(std::fs::Permissions::from_mode(ctx.mode(entry, owned)))
                    .map_err(io_at("chmod", &shown))?;
                let _ = dir.set_modified(fsutil::system_time_from_ns(entry.mtime_ns));
            }
            EntryKind::File => {}
        }
    }
    Ok(())
}

/// A directory store's directory that this restore created: given the
/// owner, attributes, mode and mtime the snapshot recorded of it, after
/// its contents are in. Returns what could not be given back.
pub(super) fn apply_root(record: &StoreRecord, dir: &DirFd) -> Result<Vec<String>> {
    use std::os::unix::fs::PermissionsExt;
    let Some(root) = &record.root else {
        return Ok(Vec::new());
    };
    let shown = dir.shown_self();
    let file = dir.as_file()?;
    let mut not_kept = Vec::new();
    let owned = std::os::unix::fs::fchown(&file, Some(root.uid), Some(root.gid)).is_ok();
    if !owned {
        not_kept.push(format!(
            "the store's directory was not given to uid {} gid {} (only root can give files away)",
            root.uid, root.gid
        ));
    }
    // Made by the restore in a live directory: it may have inherited.
    let not_set = xattr::apply(&file, &root.xattrs, shown, true)?;
    if !not_set.is_empty() {
        let names: Vec<String> = not_set.iter().map(|n| n.to_string()).collect();
        not_kept.push(format!(
            "extended attributes of the store's directory not restored: {}",
            names.join(", ")
        ));
    }
    let mode = if owned {
        root.mode
    } else {
        root.mode & !0o6000
    };
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(io_at("chmod", shown))?;
    let _ = file.set_modified(fsutil::system_time_from_ns(root.mtime_ns));
    Ok(not_kept)
}
