//! Where a plug-in's Snapshot stage writes: the store's directory inside
//! the snapshot being built. Every helper records a manifest entry, so what
//! a plug-in writes and what the manifest says cannot drift apart.
//!
//! Two things make repeated snapshots cheap, both invisible to plug-ins:
//! - regular files are copied on every core at once (hashing as they pass,
//!   so each byte is read once);
//! - a file whose source is unchanged since the parent snapshot (same size,
//!   mtime, ctime, inode and device) is hard-linked from the parent's copy,
//!   with the parent's hash. Snapshot files are read-only, so the shared
//!   inode cannot change under either snapshot. The link is checked to be
//!   the parent's very inode, read-only and of the recorded size; the new
//!   snapshot's validation then re-reads every copy written now but only a
//!   rotating share of the reused ones (see `validate::Reading`).

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::{self, Metadata};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::checksum::Checksum;
use crate::dirfd::DirFd;
use crate::error::{io_at, Error, Result};
use crate::fsutil;
use crate::manifest::{Entry, EntryKind, RawPath, RootDir, SourceStat, Xattr};
use crate::parent::{Parent, ParentFile};
use crate::xattr;

/// Copies waiting in the queue before [`CaptureCtx::queue_copy`] runs them:
/// enough files to keep every core busy, few enough that the queue's memory
/// stays small however large the tree.
const QUEUE_FILES: usize = 4096;
/// Directories whose descriptors the queue may hold open (each queued
/// file of a tree keeps its directory's open), well under the usual 1024
/// open files.
const QUEUE_DIRS: usize = 256;

/// How much older than the capture's start a file's mtime and ctime must
/// be for the next snapshot to trust them: the coarsest common timestamp
/// granularity (FAT's two seconds; a kernel tick elsewhere) plus the
/// coarse clock's lag, rounded up. A write in the same tick as the walk's
/// stat, after the copy read the file, can leave both timestamps and the
/// size as they were (git's "racily clean" entries); such a file is
/// recorded without its [`SourceStat`], so the next snapshot copies it
/// again instead of reusing a copy that may be stale. An empty file is
/// never racy: no write can give it content and keep its size.
pub const RACY_MARGIN_NS: i64 = 2_000_000_000;

/// Whether a file stat'ed after `moment_ns` with this size and these
/// timestamps is bound to show any later write: both timestamps at least
/// [`RACY_MARGIN_NS`] older than the moment, or an empty file (any write
/// that gives it bytes changes its size). The one rule for the engine's
/// reuse of files and the sqlite kind's live states.
pub fn settled_before(size: u64, mtime_ns: i64, ctime_ns: i64, moment_ns: i64) -> bool {
    let limit = moment_ns.saturating_sub(RACY_MARGIN_NS);
    size == 0 || (mtime_ns < limit && ctime_ns < limit)
}

#[derive(Debug)]
pub struct CaptureCtx<'a> {
    store: &'a str,
    source: &'a Path,
    shown: &'a Path,
    /// A directory store's root, opened safely (see `dirfd::resolve`).
    source_dir: Option<DirFd>,
    dest: PathBuf,
    parent: Option<Parent>,
    /// The parent's store directory and `dest`, open: reused files are
    /// linked and checked relative to them, so the kernel walks a file's
    /// path inside the store, not the repository's path before it again
    /// for every file. `None` without a parent, or when either would not
    /// open (then nothing is reused).
    link_dirs: Option<(DirFd, DirFd)>,
    entries: Vec<Entry>,
    metadata: Map<String, Value>,
    warnings: Vec<String>,
    /// Files queued by [`CaptureCtx::queue_copy`], copied by
    /// [`CaptureCtx::flush_copies`].
    queued: Vec<Queued>,
    /// Distinct directories among the queued files.
    queued_dirs: usize,
    reused_bytes: u64,
    /// (index in `entries`, inode of the parent's copy) of each entry
    /// hard-linked from the parent.
    reused: Vec<(usize, u64)>,
    /// A directory store's own directory.
    root: Option<RootDir>,
    /// When the capture started, before any stat: a file whose
    /// timestamps are not [`settled_before`] it proves the next snapshot
    /// nothing.
    started_ns: i64,
    /// Files with more than one name, by (device, inode): the first path
    /// queued, which later names of the inode are hard links of.
    inodes: HashMap<(u64, u64), RawPath>,
    /// What the first name of such an inode was captured as.
    linked_firsts: HashMap<RawPath, (u64, Checksum, Vec<Xattr>)>,
}

#[derive(Debug)]
struct Queued {
    src: Source,
    rel: RawPath,
    meta: Metadata,
    /// A later name of an inode queued before under this path.
    link_of: Option<RawPath>,
}

/// Where a queued copy reads from.
#[derive(Debug)]
enum Source {
    /// A path a plug-in named.
    Path(PathBuf),
    /// A file of a tree walked by descriptor: its directory, and its name.
    InDir(DirFd, OsString),
}

impl<'a> CaptureCtx<'a> {
    pub(crate) fn new(
        store: &'a str,
        source: &'a Path,
        shown: &'a Path,
        source_dir: Option<DirFd>,
        dest: PathBuf,
        parent: Option<Parent>,
    ) -> Self {
        let link_dirs = parent.as_ref().and_then(|p| {
            let from = DirFd::open_trusted(&p.root).ok()?;
            let to = DirFd::open_trusted(&dest).ok()?;
            Some((from, to))
        });
        CaptureCtx {
            store,
            source,
            shown,
            source_dir,
            dest,
            parent,
            link_dirs,
            started_ns: fsutil::now_ns(),
            entries: Vec::new(),
            metadata: Map::new(),
            warnings: Vec::new(),
            queued: Vec::new(),
            queued_dirs: 0,
            reused_bytes: 0,
            reused: Vec::new(),
            root: None,
            inodes: HashMap::new(),
            linked_firsts: HashMap::new(),
        }
    }

    pub fn store_name(&self) -> &str {
        self.store
    }

    /// The live source, as a path any library may open: it reaches the
    /// store through a descriptor Cairn holds (`/proc/self/fd/N/…`), so a
    /// directory on the configured path swapped for a symlink meanwhile
    /// cannot redirect it. Use [`CaptureCtx::source_shown`] in messages.
    pub fn source(&self) -> &Path {
        self.source
    }

    /// The store's path as configured, for messages.
    pub fn source_shown(&self) -> &Path {
        self.shown
    }

    pub(crate) fn source_dir(&self) -> Option<&DirFd> {
        self.source_dir.as_ref()
    }

    /// Where the entry `rel` lives in the snapshot being built. `rel` is
    /// the entry's path as bytes (a `&str`, a `&Path`, a [`RawPath`]).
    pub fn dest_path(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.dest.join(rel)
    }

    /// Copies the regular file `src` into the snapshot as `rel` now,
    /// hashing it on the way. `meta` is `src`'s metadata (not followed).
    pub fn copy_file(&mut self, src: &Path, rel: impl AsRef<Path>, meta: &Metadata) -> Result<()> {
        self.queue_copy(src, rel, meta)?;
        self.flush_copies()
    }

    /// Queues a byte-for-byte copy (holes kept). Queued copies run on
    /// every core when the queue holds a few thousand files, when the
    /// plug-in calls [`CaptureCtx::flush_copies`], and after its Snapshot
    /// stage at the latest; so this may copy (and fail). Entries keep the
    /// queue's order.
    pub fn queue_copy(&mut self, src: &Path, rel: impl AsRef<Path>, meta: &Metadata) -> Result<()> {
        self.enqueue(
            Source::Path(src.to_owned()),
            RawPath::from(rel.as_ref()),
            meta,
        )
    }

    /// Queues the copy of `name` inside a directory walked by descriptor.
    pub(crate) fn queue_copy_in(
        &mut self,
        dir: &DirFd,
        name: &OsStr,
        rel: &RawPath,
        meta: &Metadata,
    ) -> Result<()> {
        let new_dir = !matches!(
            self.queued.last(),
            Some(Queued { src: Source::InDir(last, _), .. }) if last.same(dir)
        );
        if new_dir {
            self.queued_dirs += 1;
        }
        self.enqueue(
            Source::InDir(dir.clone(), name.to_owned()),
            rel.clone(),
            meta,
        )
    }

    fn enqueue(&mut self, src: Source, rel: RawPath, meta: &Metadata) -> Result<()> {
        crate::progress::grow(meta.len());
        // The second name of an inode is recorded as a hard link of the
        // first, and the snapshot holds one copy.
        let link_of = if meta.nlink() > 1 {
            match self.inodes.entry((meta.dev(), meta.ino())) {
                std::collections::hash_map::Entry::Occupied(first) => Some(first.get().clone()),
                std::collections::hash_map::Entry::Vacant(slot) => {
                    slot.insert(rel.clone());
                    None
                }
            }
        } else {
            None
        };
        self.queued.push(Queued {
            src,
            rel,
            meta: meta.clone(),
            link_of,
        });
        if self.queued.len() >= QUEUE_FILES || self.queued_dirs >= QUEUE_DIRS {
            self.flush_copies()?;
        }
        Ok(())
    }

    /// Copies (or links from the parent) everything queued, then links
    /// the later names of inodes to their first name's copy.
    pub fn flush_copies(&mut self) -> Result<()> {
        let queued = std::mem::take(&mut self.queued);
        self.queued_dirs = 0;
        if queued.is_empty() {
            return Ok(());
        }
        let this = &*self;
        let results = crate::parallel::map_largest_first(
            &queued,
            |q| if q.link_of.is_some() { 0 } else { q.meta.len() },
            |q| match q.link_of {
                // Linked below, once every copy of this batch is in.
                Some(_) => Ok(None),
                None => this.copy_one(q),
            },
        );
        for (q, result) in queued.iter().zip(results) {
            let copied = match (&q.link_of, result?) {
                (Some(first), _) => match self.link_to_first(q, first)? {
                    Some(linked) => {
                        let (size, sha256, xattrs) = linked;
                        let entry = file_entry(&q.rel, &q.meta, size, sha256)
                            .with_link_of(first.clone())
                            .with_xattrs(xattrs);
                        self.push_file(entry);
                        continue;
                    }
                    // The first name was not captured (deleted meanwhile):
                    // this one is copied on its own.
                    None => self.copy_one(q)?,
                },
                (None, copied) => copied,
            };
            let Some((copied, xattrs)) = copied else {
                // The service deleted it after the walk saw it: the
                // snapshot is still a consistent view of what was there.
                self.forget_in_parent(q.rel.as_bytes());
                self.warn(format!(
                    "{} disappeared between the walk and its copy (deleted by the service); not in this snapshot",
                    q.rel
                ));
                continue;
            };
            if copied.parent_ino != 0 {
                self.reused_bytes += copied.size;
                self.reused.push((self.entries.len(), copied.parent_ino));
            }
            if q.meta.nlink() > 1 && q.link_of.is_none() {
                self.linked_firsts
                    .insert(q.rel.clone(), (copied.size, copied.sha256, xattrs.clone()));
            }
            self.push_file(
                file_entry(&q.rel, &q.meta, copied.size, copied.sha256).with_xattrs(xattrs),
            );
        }
        Ok(())
    }

    /// Adds a file's entry. Nothing asks the parent about that path again,
    /// so its record there is forgotten, which frees the parent's index
    /// chunk by chunk as the capture goes (see `parent::ParentFiles`).
    fn push_file(&mut self, entry: Entry) {
        self.forget_in_parent(entry.path.as_bytes());
        self.entries.push(entry);
    }

    fn forget_in_parent(&mut self, rel: &[u8]) {
        if let Some(parent) = self.parent.as_mut() {
            parent.files.forget(rel);
        }
    }

    /// Makes `q` a hard link of the copy of `first`, the first name of its
    /// inode; `None` when `first` was not captured.
    fn link_to_first(
        &self,
        q: &Queued,
        first: &RawPath,
    ) -> Result<Option<(u64, Checksum, Vec<Xattr>)>> {
        let Some(captured) = self.linked_firsts.get(first) else {
            return Ok(None);
        };
        let dst = self.dest_path(&q.rel);
        fs::hard_link(self.dest_path(first), &dst).map_err(io_at("hard-link", &dst))?;
        crate::progress::advance(q.meta.len());
        Ok(Some(captured.clone()))
    }

    /// The copy and the file's attributes; `None` when the file is gone
    /// by the time it is copied.
    fn copy_one(&self, q: &Queued) -> Result<Option<(Copied, Vec<Xattr>)>> {
        let dst = self.dest_path(&q.rel);
        if let Some(copied) = self.link_from_parent(&q.rel, &q.meta, &dst, false) {
            crate::progress::advance(copied.size);
            // Same inode, same ctime: the same attributes as then.
            return Ok(Some((copied, self.parent_xattrs(&q.rel))));
        }
        // Identity, length and blocks from the descriptor's own `stat`,
        // taken as it was opened.
        let opened = match &q.src {
            Source::Path(p) => fsutil::open_nofollow_with_meta(p)
                .map_err(io_at("open", p))
                .map(|(f, m)| (f, (m.dev(), m.ino()), (m.len(), m.blocks()), p.clone())),
            Source::InDir(dir, name) => dir.open_file(name).map(|(f, st)| {
                let (len, blocks) = fsutil::len_and_blocks(&st);
                (f, (st.st_dev, st.st_ino), (len, blocks), dir.shown(name))
            }),
        };
        let (file, dev_ino, (len, blocks), shown) = match opened {
            Ok(opened) => opened,
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return Ok(None)
            }
            Err(e) => return Err(e),
        };
        // The file opened must be the one the walk saw: a name replaced in
        // between (by a link, or by another file moved there) is not read.
        if dev_ino != (q.meta.dev(), q.meta.ino()) {
            return Err(Error::Source {
                path: shown,
                message: "was replaced between the walk and its copy; run the snapshot again"
                    .into(),
            });
        }
        // From the descriptor whose bytes are copied: this inode's own.
        let xattrs = xattr::read(&file, &shown)?;
        let extents = fsutil::Extents::of_size(&file, len, blocks);
        let (out, size, sha256) = fsutil::copy_sparse_new(&file, extents, &shown, &dst)?;
        out.set_permissions(fs::Permissions::from_mode(fsutil::SNAPSHOT_FILE_MODE))
            .map_err(io_at("chmod", &dst))?;
        Ok(Some((
            Copied {
                size,
                sha256,
                parent_ino: 0,
            },
            xattrs,
        )))
    }

    /// What the parent snapshot recorded of `rel`'s attributes.
    fn parent_xattrs(&self, rel: &RawPath) -> Vec<Xattr> {
        self.parent
            .as_ref()
            .and_then(|p| p.files.get(rel))
            .map(|f| f.xattrs.clone())
            .unwrap_or_default()
    }

    /// Hard-links the parent's copy when the source is provably unchanged;
    /// `None` means copy it (no parent, changed, or the link failed).
    ///
    /// `derived`: the copy is not the source's bytes but made from them (an
    /// SQLite online copy, whose size is its own), so only the source's
    /// mtime and identity are compared, and the copy's size with the
    /// parent's record.
    fn link_from_parent(
        &self,
        rel: &RawPath,
        meta: &Metadata,
        dst: &Path,
        derived: bool,
    ) -> Option<Copied> {
        let old = self.parent_file_unchanged(rel, meta, derived)?;
        let (parent_dir, dest_dir) = self.link_dirs.as_ref()?;
        let rel_os = Path::new(rel).as_os_str();
        // `linkat` without AT_SYMLINK_FOLLOW: whatever holds the parent's
        // name is linked as it is, a symlink as a symlink.
        parent_dir.link(rel_os, dest_dir, rel_os).ok()?;
        // Reuse only what still looks like Cairn wrote it. One `lstat` of
        // the new name decides, after the link: a check of the parent's
        // name before it would be a second look at what the link already
        // holds. The inode seen here is the one the validation expects.
        let linked = dest_dir
            .stat(rel_os)
            .ok()
            .filter(|l| is_intact_copy(l, old.size));
        let Some(linked) = linked else {
            if let Err(e) = fs::remove_file(dst) {
                // The copy that follows then fails on the name, loudly.
                tracing::warn!(path = %dst.display(), error = %e, "could not remove a link that is not the parent's copy");
            }
            return None;
        };
        Some(Copied {
            size: old.size,
            sha256: old.sha256,
            parent_ino: linked.st_ino,
        })
    }

    /// The parent's record of `rel` when the source is, by its metadata,
    /// the very file the parent copied: same mtime, device, inode and
    /// ctime (which the file's owner cannot set back), and same size
    /// unless `derived`.
    fn parent_file_unchanged(
        &self,
        rel: &RawPath,
        meta: &Metadata,
        derived: bool,
    ) -> Option<&ParentFile> {
        let old = self.parent.as_ref()?.files.get(rel)?;
        let unchanged = (derived || old.size == meta.len())
            && old.mtime_ns == fsutil::mtime_ns(meta)
            && old.source_stat == source_stat(meta);
        unchanged.then_some(old)
    }

    /// Whether the source file `rel` (`meta`, not followed) is unchanged
    /// since the parent snapshot copied it, by the same test that lets
    /// its copy be reused: its bytes are then the parent's. A plug-in may
    /// carry over what it decided from those bytes last time instead of
    /// reading them again (the chroma-dir kind: "not an SQLite file").
    pub fn unchanged_since_parent(&self, rel: &RawPath, meta: &Metadata) -> bool {
        self.parent_file_unchanged(rel, meta, false).is_some()
    }

    /// What the parent snapshot's plug-in recorded for this store (empty
    /// without a parent): a plug-in that proves its source unchanged by
    /// its own record (the SQLite kind's live file states) reads it here.
    pub fn parent_metadata(&self) -> Option<&Map<String, Value>> {
        self.parent.as_ref().map(|p| &p.metadata)
    }

    /// Never hard-link `rel` from the parent snapshot: the plug-in knows
    /// the parent's copy is not the bytes it captures now (an SQLite file
    /// the parent copied online, captured byte for byte this time).
    pub fn forget_parent(&mut self, rel: impl AsRef<Path>) {
        self.forget_in_parent(RawPath::from(rel.as_ref()).as_bytes());
    }

    /// Records a file the plug-in already wrote at `dest_path(rel)` (e.g.
    /// with the SQLite backup API), reading it once to hash it. `meta` describes the source.
    pub fn add_written_file(&mut self, rel: impl AsRef<Path>, meta: &Metadata) -> Result<()> {
        let rel = RawPath::from(rel.as_ref());
        let dst = self.dest_path(&rel);
        crate::progress::grow(fs::symlink_metadata(&dst).map(|m| m.len()).unwrap_or(0));
        let (size, sha256) = fsutil::hash_file(&dst)?;
        fsutil::make_read_only(&dst)?;
        self.push_file(file_entry(&rel, meta, size, sha256));
        Ok(())
    }

    /// Records a file the plug-in already wrote at `dest_path(rel)` and
    /// hashed as it wrote it: `size` and `sha256` are of the bytes it
    /// wrote. Nothing is read here. The snapshot's validation reads the
    /// copy back before it is published, like every file written, so a
    /// digest that does not match the file fails the snapshot; it never
    /// passes into a manifest unchecked. The plug-in reports the bytes
    /// as it writes them (`progress::grow`, then `progress::advance`).
    pub fn add_hashed_file(
        &mut self,
        rel: impl AsRef<Path>,
        meta: &Metadata,
        size: u64,
        sha256: Checksum,
    ) -> Result<()> {
        let rel = RawPath::from(rel.as_ref());
        let dst = self.dest_path(&rel);
        fsutil::make_read_only(&dst)?;
        self.push_file(file_entry(&rel, meta, size, sha256));
        Ok(())
    }

    /// For a file the plug-in derives from its source (an SQLite online
    /// copy): when the plug-in has proved the source's content unchanged
    /// since the parent snapshot (by what it records beyond the file's own
    /// metadata, e.g. the `-wal`'s state), and the file's own metadata is
    /// unchanged too, hard-link the parent's copy instead of deriving it
    /// again. `true` when reused.
    pub fn reuse_unchanged(&mut self, rel: impl AsRef<Path>, meta: &Metadata) -> bool {
        let rel = RawPath::from(rel.as_ref());
        let dst = self.dest_path(&rel);
        match self.link_from_parent(&rel, meta, &dst, true) {
            Some(copied) => {
                // Counted once known to be part of the snapshot: total first.
                crate::progress::grow(copied.size);
                crate::progress::advance(copied.size);
                self.reused_bytes += copied.size;
                self.reused.push((self.entries.len(), copied.parent_ino));
                let xattrs = self.parent_xattrs(&rel);
                self.push_file(
                    file_entry(&rel, meta, copied.size, copied.sha256).with_xattrs(xattrs),
                );
                true
            }
            None => false,
        }
    }

    pub fn add_dir(&mut self, rel: impl AsRef<Path>, meta: &Metadata) -> Result<()> {
        let rel = RawPath::from(rel.as_ref());
        fsutil::create_dir_private(&self.dest_path(&rel))?;
        self.entries.push(entry_for(&rel, EntryKind::Dir, meta));
        Ok(())
    }

    /// A directory of a tree walked by descriptor, with its attributes.
    pub(crate) fn add_dir_in(
        &mut self,
        dir: &DirFd,
        name: &OsStr,
        rel: &RawPath,
        meta: &Metadata,
    ) -> Result<()> {
        let opened = dir.open_dir(name)?;
        let xattrs = xattr::read(opened.fd(), &dir.shown(name))?;
        fsutil::create_dir_private(&self.dest_path(rel))?;
        self.entries
            .push(entry_for(rel, EntryKind::Dir, meta).with_xattrs(xattrs));
        Ok(())
    }

    /// The attributes of a file of a walked tree that the plug-in captured
    /// itself (an SQLite online copy), read from the file opened by
    /// descriptor; only when it is still the inode the walk saw.
    pub(crate) fn record_xattrs_in(
        &mut self,
        dir: &DirFd,
        name: &OsStr,
        rel: &RawPath,
        meta: &Metadata,
    ) -> Result<()> {
        let Some(entry) = self.entries.last_mut().filter(|e| e.path == *rel) else {
            return Ok(());
        };
        if !entry.xattrs().is_empty() {
            return Ok(());
        }
        let (file, stat) = match dir.open_file(name) {
            Ok(opened) => opened,
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return Ok(())
            }
            Err(e) => return Err(e),
        };
        if (stat.st_dev, stat.st_ino) == (meta.dev(), meta.ino()) {
            entry.set_xattrs(xattr::read(&file, &dir.shown(name))?);
        }
        Ok(())
    }

    /// A directory store's own directory (open as `dir`): its owner, mode,
    /// mtime and attributes, for a restore that has to create it.
    pub(crate) fn set_root(&mut self, dir: &DirFd) -> Result<()> {
        let meta = dir
            .as_file()?
            .metadata()
            .map_err(io_at("stat", dir.shown_self()))?;
        self.root = Some(RootDir {
            uid: meta.uid(),
            gid: meta.gid(),
            mode: fsutil::mode_bits(&meta),
            mtime_ns: fsutil::mtime_ns(&meta),
            xattrs: xattr::read(dir.fd(), dir.shown_self())?,
        });
        Ok(())
    }

    /// Stores a symlink as a link (never followed), with its target as is.
    pub fn add_symlink(
        &mut self,
        rel: impl AsRef<Path>,
        target: &Path,
        meta: &Metadata,
    ) -> Result<()> {
        let rel = RawPath::from(rel.as_ref());
        let dst = self.dest_path(&rel);
        std::os::unix::fs::symlink(target, &dst).map_err(io_at("create symlink", &dst))?;
        self.entries
            .push(entry_for(&rel, EntryKind::Symlink, meta).with_target(target));
        Ok(())
    }

    /// Something skipped on purpose (a FIFO, a socket); kept in the manifest.
    pub fn warn(&mut self, message: impl Into<String>) {
        self.warnings.push(message.into());
    }

    pub fn metadata_mut(&mut self) -> &mut Map<String, Value> {
        &mut self.metadata
    }

    /// Flushes pending copies and hands back what was captured.
    pub(crate) fn finish(mut self) -> Result<Captured> {
        self.flush_copies()?;
        let started = self.started_ns;
        for entry in &mut self.entries {
            let size = entry.size.unwrap_or(0);
            let racy = entry.source_stat.is_some_and(|stat| {
                // Past `i64` (after 2262) is as recent as can be told.
                let mtime_ns = i64::try_from(entry.mtime_ns).unwrap_or(i64::MAX);
                !settled_before(size, mtime_ns, stat.ctime_ns, started)
            });
            if racy {
                entry.source_stat = None;
            }
        }
        let mut reused = crate::validate::Reused {
            inodes: vec![
                0;
                if self.reused.is_empty() {
                    0
                } else {
                    self.entries.len()
                }
            ],
        };
        for (i, ino) in std::mem::take(&mut self.reused) {
            reused.inodes[i] = ino;
        }
        Ok(Captured {
            reused,
            parent_clean: self.parent.as_ref().is_some_and(|p| p.clean),
            entries: self.entries,
            metadata: self.metadata,
            warnings: self.warnings,
            reused_bytes: self.reused_bytes,
            root: self.root,
        })
    }
}

/// What every entry records of its source: mode, mtime, owner and group,
/// and a file's identity.
fn entry_for(rel: &RawPath, kind: EntryKind, meta: &Metadata) -> Entry {
    let mut entry = Entry::new(rel.clone(), kind);
    entry.mode = fsutil::mode_bits(meta);
    entry.mtime_ns = fsutil::mtime_ns(meta);
    entry.uid = Some(meta.uid());
    entry.gid = Some(meta.gid());
    entry.source_stat = (kind == EntryKind::File).then(|| source_stat(meta));
    entry
}

/// A regular file's entry, with the size and hash of its copy.
fn file_entry(rel: &RawPath, meta: &Metadata, size: u64, sha256: Checksum) -> Entry {
    let mut entry = entry_for(rel, EntryKind::File, meta);
    entry.size = Some(size);
    entry.sha256 = Some(sha256);
    entry
}

pub(crate) struct Captured {
    pub entries: Vec<Entry>,
    pub metadata: Map<String, Value>,
    pub warnings: Vec<String>,
    /// Bytes hard-linked from the parent snapshot instead of copied.
    pub reused_bytes: u64,
    /// Which entries are the parent's copies (by the parent's inode).
    pub reused: crate::validate::Reused,
    /// The parent's last validation found nothing in this store.
    pub parent_clean: bool,
    pub root: Option<RootDir>,
}

struct Copied {
    size: u64,
    sha256: Checksum,
    /// The inode of the parent's copy hard-linked; 0 for a copy written.
    parent_ino: u64,
}

/// What a snapshot copy looks like while it is as Cairn left it (`stat`:
/// an `lstat` made by descriptor): a regular file (not a link planted in
/// its place), of the recorded size, still read-only (a copy made
/// writable was touched by hand).
fn is_intact_copy(stat: &rustix::fs::Stat, size: u64) -> bool {
    crate::dirfd::is_regular(stat)
        && u64::try_from(stat.st_size).is_ok_and(|len| len == size)
        && stat.st_mode & 0o222 == 0
}

fn source_stat(meta: &Metadata) -> SourceStat {
    SourceStat {
        dev: meta.dev(),
        ino: meta.ino(),
        ctime_ns: meta
            .ctime()
            .saturating_mul(1_000_000_000)
            .saturating_add(meta.ctime_nsec()),
    }
}
