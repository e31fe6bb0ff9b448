//! Directory handles: how the engine touches a live tree, a staging area
//! or a restore's target elsewhere without ever being redirected by a symlink.
//!
//! Cairn usually runs as root over trees the service's unprivileged user
//! owns and can change at any moment (docs/security.md). A path name is
//! resolved again on every use, so anything done by name — `open`,
//! `chmod`, `rename`, `unlink` — can be sent elsewhere by a directory
//! swapped for a symlink in between. So:
//!
//! - A store's configured path is resolved once, one component at a time
//!   from `/`, by [`resolve`]: a symlink is followed only where no one but
//!   root or the invoking user could have put it (see [`Resolved`]).
//! - Everything below it goes through a [`DirFd`]: `openat`, `mkdirat`,
//!   `renameat`, `unlinkat`, `symlinkat` relative to a descriptor, each
//!   with `O_NOFOLLOW`, and `fchmod`/`fchown`/`futimens` on descriptors.
//!   A component swapped for a link fails (ELOOP/ENOTDIR), it is never
//!   read through.
//! - A library that takes a path (SQLite) gets [`DirFd::fd_path`]:
//!   `/proc/self/fd/N/name`, which the kernel resolves through the held
//!   descriptor, so the directory it names cannot be swapped.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{AtFlags, Mode, OFlags, Stat};

use crate::error::{Error, Result};
use crate::manifest::RawPath;

/// Linux's own limit on symlinks followed while resolving one path.
const MAX_LINKS: u32 = 40;
const GROUP_OR_OTHER_WRITE: u32 = 0o022;
const STICKY: u32 = 0o1000;

/// An open directory, shared by the work that runs inside it.
#[derive(Debug, Clone)]
pub(crate) struct DirFd {
    fd: Arc<OwnedFd>,
    /// What it was opened as, for messages only: never used to reach it.
    shown: PathBuf,
}

fn io_err(e: rustix::io::Errno) -> std::io::Error {
    std::io::Error::from(e)
}

impl DirFd {
    /// Opens a directory Cairn itself chose by name (its repository, a
    /// scratch directory it created): the name is trusted.
    pub(crate) fn open_trusted(path: &Path) -> Result<DirFd> {
        let fd = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::io("open directory", path, io_err(e)))?;
        Ok(DirFd {
            fd: Arc::new(fd),
            shown: path.to_owned(),
        })
    }

    /// How messages name `name` inside this directory.
    pub(crate) fn shown(&self, name: impl AsRef<Path>) -> PathBuf {
        self.shown.join(name)
    }

    pub(crate) fn shown_self(&self) -> &Path {
        &self.shown
    }

    /// A path any library can open that names `name` inside *this*
    /// directory, whatever happens to the directory's own path meanwhile.
    /// Empty `name`: the directory itself (`…/N/.`, so that `lstat` of it
    /// sees the directory, not the descriptor's own link).
    pub(crate) fn fd_path(&self, name: impl AsRef<Path>) -> PathBuf {
        use std::os::fd::AsRawFd;
        let base = PathBuf::from(format!("/proc/self/fd/{}", self.fd.as_raw_fd()));
        let name = name.as_ref();
        if name.as_os_str().is_empty() {
            base.join(".")
        } else {
            base.join(name)
        }
    }

    fn as_owned(&self) -> &OwnedFd {
        &self.fd
    }

    /// The descriptor itself, for what is done to the directory through
    /// it (its extended attributes).
    pub(crate) fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.fd.as_fd()
    }

    /// The same open directory (not merely the same name).
    pub(crate) fn same(&self, other: &DirFd) -> bool {
        Arc::ptr_eq(&self.fd, &other.fd)
    }

    /// `lstat` of a child: never follows a symlink.
    pub(crate) fn stat(&self, name: &OsStr) -> std::io::Result<Stat> {
        rustix::fs::statat(&*self.fd, name, AtFlags::SYMLINK_NOFOLLOW).map_err(io_err)
    }

    /// Every entry, in name order, as std's `DirEntry` of this very
    /// directory, listed through `/proc/self/fd/N/.` (the open directory
    /// itself, whatever its path has become). Std's `DirEntry::metadata`
    /// is an `lstat` relative to the listing's own descriptor (never
    /// through a link): one system call per entry, where an `O_PATH`
    /// open, a `statx` and a `close` by name were three. Only the names
    /// are held, not every entry's metadata at once.
    pub(crate) fn entries(&self) -> Result<Vec<(OsString, std::fs::DirEntry)>> {
        let read_failed = |e| Error::io("read directory", &self.shown, e);
        let mut entries = std::fs::read_dir(self.fd_path(""))
            .map_err(read_failed)?
            .map(|entry| entry.map(|e| (e.file_name(), e)))
            .collect::<std::io::Result<Vec<_>>>()
            .map_err(read_failed)?;
        entries.sort_by(|(a, _), (b, _)| a.cmp(b));
        Ok(entries)
    }

    pub(crate) fn stat_self(&self) -> std::io::Result<Stat> {
        rustix::fs::fstat(&*self.fd).map_err(io_err)
    }

    /// Opens a child directory; a symlink in its place is an error.
    pub(crate) fn open_dir(&self, name: &OsStr) -> Result<DirFd> {
        let fd = rustix::fs::openat(
            &*self.fd,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::io("open directory", self.shown(name), io_err(e)))?;
        Ok(DirFd {
            fd: Arc::new(fd),
            shown: self.shown(name),
        })
    }

    /// Opens a child regular file for reading. A symlink, FIFO, socket or
    /// device in its place is an error, and none is ever opened for I/O
    /// (`O_NONBLOCK` so a FIFO cannot block the open itself, `O_NOCTTY` so
    /// a terminal cannot become Cairn's).
    pub(crate) fn open_file(&self, name: &OsStr) -> Result<(File, Stat)> {
        self.open_regular(name, OFlags::RDONLY)
    }

    /// [`DirFd::open_file`], read-write.
    pub(crate) fn open_existing_rw(&self, name: &OsStr) -> Result<File> {
        self.open_regular(name, OFlags::RDWR).map(|(file, _)| file)
    }

    fn open_regular(&self, name: &OsStr, access: OFlags) -> Result<(File, Stat)> {
        let shown = self.shown(name);
        let fd = rustix::fs::openat(
            &*self.fd,
            name,
            access | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::io("open", &shown, io_err(e)))?;
        let stat = rustix::fs::fstat(&fd).map_err(|e| Error::io("stat", &shown, io_err(e)))?;
        if !is_regular(&stat) {
            return Err(Error::io(
                "open",
                &shown,
                std::io::Error::other("not a regular file"),
            ));
        }
        // Reads and writes block as usual from here on.
        rustix::fs::fcntl_setfl(&fd, OFlags::empty())
            .map_err(|e| Error::io("open", &shown, io_err(e)))?;
        Ok((File::from(fd), stat))
    }

    /// Creates a new file (never an existing one, never through a link),
    /// mode 0600 until the caller sets the final mode on the descriptor.
    pub(crate) fn create_file(&self, name: &OsStr) -> Result<File> {
        let fd = rustix::fs::openat(
            &*self.fd,
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| Error::io("create", self.shown(name), io_err(e)))?;
        Ok(File::from(fd))
    }

    /// Opens a child file read-write, creating it (0644, owned like this
    /// directory) when missing: a file Cairn makes on the owner's behalf.
    pub(crate) fn open_or_create_shared(&self, name: &OsStr) -> Result<File> {
        match self.open_existing_rw(name) {
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
            other => return other,
        }
        let shown = self.shown(name);
        let fd = rustix::fs::openat(
            &*self.fd,
            name,
            OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o644),
        )
        .map_err(|e| Error::io("create", &shown, io_err(e)))?;
        let dir = self
            .stat_self()
            .map_err(|e| Error::io("stat", &self.shown, e))?;
        // Only root can give a file away; anyone else already is the owner
        // the directory would give it.
        let _ = rustix::fs::fchown(
            &fd,
            Some(rustix::fs::Uid::from_raw(dir.st_uid)),
            Some(rustix::fs::Gid::from_raw(dir.st_gid)),
        );
        Ok(File::from(fd))
    }

    /// `mkdir` of a new child, mode 0700 (whatever the umask leaves of it),
    /// and opens it.
    pub(crate) fn create_dir(&self, name: &OsStr) -> Result<DirFd> {
        self.create_dir_mode(name, 0o700)
    }

    pub(crate) fn create_dir_mode(&self, name: &OsStr, mode: u32) -> Result<DirFd> {
        rustix::fs::mkdirat(&*self.fd, name, Mode::from_raw_mode(mode))
            .map_err(|e| Error::io("create directory", self.shown(name), io_err(e)))?;
        self.open_dir(name)
    }

    /// A new child directory with a name no one can predict or create
    /// first: `prefix` and 16 random hex digits, created exclusively.
    pub(crate) fn create_unique_dir(&self, prefix: &str) -> Result<(OsString, DirFd)> {
        let mut last = None;
        for _ in 0..16 {
            let name = OsString::from(format!("{prefix}{:016x}", random_u64()));
            match rustix::fs::mkdirat(&*self.fd, name.as_os_str(), Mode::from_raw_mode(0o700)) {
                Ok(()) => {
                    let dir = self.open_dir(&name)?;
                    return Ok((name, dir));
                }
                Err(rustix::io::Errno::EXIST) => last = Some(rustix::io::Errno::EXIST),
                Err(e) => return Err(Error::io("create directory", self.shown(&name), io_err(e))),
            }
        }
        Err(Error::io(
            "create directory",
            self.shown(prefix),
            io_err(last.unwrap_or(rustix::io::Errno::EXIST)),
        ))
    }

    pub(crate) fn symlink(&self, target: &Path, name: &OsStr) -> Result<()> {
        rustix::fs::symlinkat(target, &*self.fd, name)
            .map_err(|e| Error::io("create symlink", self.shown(name), io_err(e)))
    }

    pub(crate) fn read_link(&self, name: &OsStr) -> Result<PathBuf> {
        rustix::fs::readlinkat(&*self.fd, name, Vec::new())
            .map(|c| PathBuf::from(OsStr::from_bytes(c.as_bytes())))
            .map_err(|e| Error::io("read symlink", self.shown(name), io_err(e)))
    }

    /// Renames a child of this directory to a child of `to`: both ends by
    /// descriptor, so neither can be redirected.
    pub(crate) fn rename(&self, from: &OsStr, to: &DirFd, to_name: &OsStr) -> Result<()> {
        rustix::fs::renameat(&*self.fd, from, &*to.fd, to_name)
            .map_err(|e| Error::io("move into place", to.shown(to_name), io_err(e)))
    }

    /// Swaps a child of this directory with a child of `to`, atomically
    /// (`renameat2(RENAME_EXCHANGE)`): both must exist, of any type, and
    /// neither is followed if it is a symlink.
    pub(crate) fn exchange(&self, from: &OsStr, to: &DirFd, to_name: &OsStr) -> Result<()> {
        rustix::fs::renameat_with(
            &*self.fd,
            from,
            &*to.fd,
            to_name,
            rustix::fs::RenameFlags::EXCHANGE,
        )
        .map_err(|e| Error::io("swap into place", to.shown(to_name), io_err(e)))
    }

    /// Renames a child of this directory to a name in `to` that must not
    /// exist (`RENAME_NOREPLACE`): one created there meanwhile is never
    /// replaced.
    pub(crate) fn rename_new(&self, from: &OsStr, to: &DirFd, to_name: &OsStr) -> Result<()> {
        rustix::fs::renameat_with(
            &*self.fd,
            from,
            &*to.fd,
            to_name,
            rustix::fs::RenameFlags::NOREPLACE,
        )
        .map_err(|e| Error::io("move into place", to.shown(to_name), io_err(e)))
    }

    /// The names in this directory, sorted (`.` and `..` left out).
    pub(crate) fn names(&self) -> Result<Vec<OsString>> {
        let mut dir = rustix::fs::Dir::read_from(&*self.fd)
            .map_err(|e| Error::io("read directory", &self.shown, io_err(e)))?;
        let mut names = Vec::new();
        while let Some(entry) = dir.read() {
            let entry = entry.map_err(|e| Error::io("read directory", &self.shown, io_err(e)))?;
            let name = entry.file_name().to_bytes();
            if name != b"." && name != b".." {
                names.push(OsStr::from_bytes(name).to_owned());
            }
        }
        names.sort();
        Ok(names)
    }

    /// Removes a child and, if it is a directory, everything in it, by
    /// descriptor all the way down: a link inside is removed, never
    /// followed.
    pub(crate) fn remove_tree(&self, name: &OsStr) -> Result<()> {
        let stat = match self.stat(name) {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io("stat", self.shown(name), e)),
        };
        if is_dir(&stat) {
            // Snapshot copies are read-only in 0700 directories; removing
            // their entries needs write permission on the directory only.
            let child = self.open_dir(name)?;
            rustix::fs::fchmod(&*child.fd, Mode::from_raw_mode(0o700))
                .map_err(|e| Error::io("chmod", child.shown_self(), io_err(e)))?;
            for grandchild in child.names()? {
                child.remove_tree(&grandchild)?;
            }
            rustix::fs::unlinkat(&*self.fd, name, AtFlags::REMOVEDIR)
                .map_err(|e| Error::io("remove", self.shown(name), io_err(e)))
        } else {
            rustix::fs::unlinkat(&*self.fd, name, AtFlags::empty())
                .map_err(|e| Error::io("remove", self.shown(name), io_err(e)))
        }
    }

    /// Removes an empty child directory.
    pub(crate) fn remove_empty_dir(&self, name: &OsStr) -> std::io::Result<()> {
        rustix::fs::unlinkat(&*self.fd, name, AtFlags::REMOVEDIR).map_err(io_err)
    }

    pub(crate) fn sync(&self) -> Result<()> {
        rustix::fs::fsync(&*self.fd).map_err(|e| Error::io("sync", &self.shown, io_err(e)))
    }

    /// The directory's descriptor as a `File`, for what std does through
    /// a descriptor (`set_permissions` = fchmod, `set_modified` = futimens,
    /// `fchown`).
    pub(crate) fn as_file(&self) -> Result<File> {
        self.fd
            .try_clone()
            .map(File::from)
            .map_err(|e| Error::io("duplicate descriptor of", &self.shown, e))
    }

    /// Opens the directory at `rel` (`/`-separated bytes, below this one)
    /// without following any symlink on the way and without leaving this
    /// directory. Empty `rel`: this directory.
    pub(crate) fn open_beneath(&self, rel: &[u8]) -> Result<DirFd> {
        if rel.is_empty() {
            return Ok(self.clone());
        }
        let rel_os = OsStr::from_bytes(rel);
        let how = rustix::fs::ResolveFlags::BENEATH
            | rustix::fs::ResolveFlags::NO_SYMLINKS
            | rustix::fs::ResolveFlags::NO_MAGICLINKS;
        match rustix::fs::openat2(
            &*self.fd,
            rel_os,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
            how,
        ) {
            Ok(fd) => Ok(DirFd {
                fd: Arc::new(fd),
                shown: self.shown(rel_os),
            }),
            // Kernels before 5.6: one component at a time, each O_NOFOLLOW.
            Err(rustix::io::Errno::NOSYS) => {
                let mut dir = self.clone();
                for part in rel.split(|b| *b == b'/') {
                    dir = dir.open_dir(OsStr::from_bytes(part))?;
                }
                Ok(dir)
            }
            Err(e) => Err(Error::io("open directory", self.shown(rel_os), io_err(e))),
        }
    }

    /// The directory holding `rel`, and `rel`'s last component.
    pub(crate) fn parent_beneath<'r>(&self, rel: &'r RawPath) -> Result<(DirFd, &'r OsStr)> {
        match rel.split_last() {
            (Some(dir), leaf) => Ok((self.open_beneath(dir)?, leaf)),
            (None, leaf) => Ok((self.clone(), leaf)),
        }
    }

    /// A hard link `to_name` in `to` of this directory's child `name`:
    /// both ends by descriptor, a symlink never followed.
    pub(crate) fn link(&self, name: &OsStr, to: &DirFd, to_name: &OsStr) -> Result<()> {
        rustix::fs::linkat(&*self.fd, name, &*to.fd, to_name, AtFlags::empty())
            .map_err(|e| Error::io("hard-link", to.shown(to_name), io_err(e)))
    }

    /// Sets a child's modification time (a symlink's own, not followed).
    pub(crate) fn set_mtime_child(&self, name: &OsStr, mtime_ns: i128) -> Result<()> {
        let (secs, nanos) = crate::fsutil::secs_and_nanos(mtime_ns);
        let mtime = rustix::fs::Timespec {
            tv_sec: secs,
            tv_nsec: nanos.into(),
        };
        let times = rustix::fs::Timestamps {
            last_access: rustix::fs::Timespec {
                tv_sec: 0,
                tv_nsec: rustix::fs::UTIME_OMIT,
            },
            last_modification: mtime,
        };
        rustix::fs::utimensat(&*self.fd, name, &times, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| Error::io("set mtime of", self.shown(name), io_err(e)))
    }

    /// Gives a child (not followed if a link) to `uid`:`gid`.
    pub(crate) fn chown_child(&self, name: &OsStr, uid: u32, gid: u32) -> Result<()> {
        rustix::fs::chownat(
            &*self.fd,
            name,
            Some(rustix::fs::Uid::from_raw(uid)),
            Some(rustix::fs::Gid::from_raw(gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|e| Error::io("chown", self.shown(name), io_err(e)))
    }
}

/// [`DirFd::parent_beneath`] for one worker that takes a directory's
/// files one after another: the last parent opened is kept, so a
/// directory of a hundred files is opened once, not a hundred times.
///
/// Only for trees no one else can change: Cairn's private staging
/// directory, or a snapshot in the repository. There a kept descriptor
/// is the directory the path names; in a live tree, the path could have
/// been moved away from it since.
pub(crate) struct ParentCache<'a> {
    base: &'a DirFd,
    last: Option<(Vec<u8>, DirFd)>,
}

impl<'a> ParentCache<'a> {
    pub(crate) fn new(base: &'a DirFd) -> Self {
        ParentCache { base, last: None }
    }

    /// The directory holding `rel`, and `rel`'s last component.
    pub(crate) fn parent_of<'r>(&mut self, rel: &'r RawPath) -> Result<(&DirFd, &'r OsStr)> {
        let (dir, leaf) = rel.split_last();
        let Some(dir) = dir else {
            return Ok((self.base, leaf));
        };
        let kept = match self.last.take() {
            Some((kept, parent)) if kept.as_slice() == dir => (kept, parent),
            _ => (dir.to_vec(), self.base.open_beneath(dir)?),
        };
        let (_, parent) = self.last.insert(kept);
        Ok((parent, leaf))
    }

    /// Opens the regular file at `rel` for reading ([`DirFd::open_file`]
    /// in its held parent); with its `stat`, and its path for messages.
    pub(crate) fn open_file(&mut self, rel: &RawPath) -> Result<(File, Stat, PathBuf)> {
        let (dir, leaf) = self.parent_of(rel)?;
        let (file, stat) = dir.open_file(leaf)?;
        Ok((file, stat, dir.shown(leaf)))
    }
}

pub(crate) fn is_dir(stat: &Stat) -> bool {
    stat.st_mode & libc::S_IFMT == libc::S_IFDIR
}

pub(crate) fn is_regular(stat: &Stat) -> bool {
    stat.st_mode & libc::S_IFMT == libc::S_IFREG
}

pub(crate) fn is_symlink(stat: &Stat) -> bool {
    stat.st_mode & libc::S_IFMT == libc::S_IFLNK
}

fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    // RandomState is seeded from the OS's random source per process;
    // mixing in the time and a counter makes every call differ.
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

/// Who Cairn trusts besides root: the user it runs as.
fn invoker() -> u32 {
    rustix::process::geteuid().as_raw()
}

fn trusted_owner(uid: u32) -> bool {
    uid == 0 || uid == invoker()
}

/// Whether someone Cairn does not trust could change what this directory
/// holds: it is theirs, or writable by a group or others (a sticky
/// directory of a trusted owner only lets them change their own entries).
fn open_to_others(stat: &Stat) -> bool {
    !trusted_owner(stat.st_uid)
        || (stat.st_mode & GROUP_OR_OTHER_WRITE != 0 && stat.st_mode & STICKY == 0)
}

/// A store's path, resolved safely.
#[derive(Debug)]
pub(crate) struct Resolved {
    /// The directory that holds the store's last component.
    pub parent: DirFd,
    /// The last component (a file store's file, a directory store's dir).
    pub name: OsString,
    /// `lstat` of `name`, `None` when it does not exist.
    pub stat: Option<Stat>,
    /// Someone other than root or the invoker can change `parent`'s
    /// entries: the store could be swapped between runs (a warning).
    pub parent_open_to_others: Option<PathBuf>,
}

impl Resolved {
    /// The store itself, opened as a directory.
    pub(crate) fn open_dir(&self) -> Result<DirFd> {
        self.parent.open_dir(&self.name)
    }

    /// A library-safe path to the store (see [`DirFd::fd_path`]).
    pub(crate) fn fd_path(&self) -> PathBuf {
        self.parent.fd_path(&self.name)
    }
}

/// Resolves an absolute store path from `/`, one component at a time,
/// never following a symlink that someone Cairn does not trust could have
/// put there. A symlink is followed when the directory holding it and
/// every directory above are closed to others and the link is owned by
/// root or the invoker (system links such as `/var/run`); or, with
/// `follow_symlink` (the store's explicit opt-in), when the link and what
/// it names are owned by root or the invoker. Any other symlink on the
/// path is refused, naming it.
pub(crate) fn resolve(path: &Path, follow_symlink: bool) -> Result<Resolved> {
    resolve_inner(path, follow_symlink, None)
}

/// [`resolve`], creating the directories missing on the way (with `mode`,
/// less the umask), which it returns, outermost first, so that a refused
/// restore can remove them again.
pub(crate) fn resolve_creating(
    path: &Path,
    follow_symlink: bool,
    mode: u32,
) -> Result<(Resolved, Vec<(DirFd, OsString)>)> {
    let mut created = Vec::new();
    let resolved = resolve_inner(path, follow_symlink, Some((mode, &mut created)))?;
    Ok((resolved, created))
}

fn resolve_inner(
    path: &Path,
    follow_symlink: bool,
    mut create: Option<(u32, &mut Vec<(DirFd, OsString)>)>,
) -> Result<Resolved> {
    let mut pending: Vec<OsString> = normalized(path)?;
    pending.reverse();
    let mut dir = DirFd::open_trusted(Path::new("/"))?;
    let mut closed = true;
    let mut first_open: Option<PathBuf> = None;
    let mut links = 0;
    while let Some(name) = pending.pop() {
        let stat = match dir.stat(&name) {
            Ok(s) => Some(s),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::io("stat", dir.shown(&name), e)),
        };
        if let Some(st) = stat.filter(is_symlink) {
            links += 1;
            if links > MAX_LINKS {
                return Err(Error::io(
                    "resolve",
                    path,
                    std::io::Error::other("too many symlinks"),
                ));
            }
            let shown = dir.shown(&name);
            let target = dir.read_link(&name)?;
            let allowed = trusted_owner(st.st_uid)
                && (closed || (follow_symlink && target_owner_trusted(&dir, &target)));
            if !allowed {
                return Err(Error::UnsafePath {
                    path: shown,
                    reason: if follow_symlink {
                        format!(
                            "is a symlink to {} that root or you do not own (link owner uid {})",
                            target.display(),
                            st.st_uid
                        )
                    } else {
                        format!(
                            "is a symlink (to {}) in a directory others can change",
                            target.display()
                        )
                    },
                });
            }
            // Start again from `/` with the link's target in its place, so
            // every directory on the new way is judged as well.
            let base = if target.is_absolute() {
                target
            } else {
                dir.shown_self().join(target)
            };
            let mut rest = normalized_relative(&base);
            rest.extend(pending.drain(..).rev());
            rest.reverse();
            pending = rest;
            dir = DirFd::open_trusted(Path::new("/"))?;
            closed = true;
            first_open = None;
            continue;
        }
        if pending.is_empty() {
            return Ok(Resolved {
                parent: dir,
                name,
                stat,
                parent_open_to_others: first_open,
            });
        }
        match stat {
            Some(st) if is_dir(&st) => {
                let next = dir.open_dir(&name)?;
                if closed
                    && open_to_others(
                        &next
                            .stat_self()
                            .map_err(|e| Error::io("stat", next.shown_self(), e))?,
                    )
                {
                    closed = false;
                    first_open = Some(next.shown_self().to_owned());
                }
                dir = next;
            }
            Some(_) => {
                return Err(Error::io(
                    "resolve",
                    dir.shown(&name),
                    std::io::Error::from_raw_os_error(libc::ENOTDIR),
                ))
            }
            None => match create.as_mut() {
                Some((mode, created)) => {
                    rustix::fs::mkdirat(dir.as_owned(), &name, Mode::from_raw_mode(*mode))
                        .map_err(|e| Error::io("create directory", dir.shown(&name), io_err(e)))?;
                    created.push((dir.clone(), name.clone()));
                    dir = dir.open_dir(&name)?;
                }
                None => {
                    return Err(Error::io(
                        "resolve",
                        dir.shown(&name),
                        std::io::Error::from(std::io::ErrorKind::NotFound),
                    ))
                }
            },
        }
    }
    // An empty path is `/` itself: no store may be the root.
    Err(Error::UnsafePath {
        path: path.to_owned(),
        reason: "is the root directory".into(),
    })
}

/// [`resolve`], with a path that does not exist (at any component) as
/// `None`.
pub(crate) fn resolve_existing(path: &Path, follow_symlink: bool) -> Result<Option<Resolved>> {
    match resolve(path, follow_symlink) {
        Ok(r) if r.stat.is_none() => Ok(None),
        Ok(r) => Ok(Some(r)),
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The owner of what `target` names (followed to the end), for the
/// `follow_symlink` rule.
fn target_owner_trusted(dir: &DirFd, target: &Path) -> bool {
    let full = if target.is_absolute() {
        target.to_owned()
    } else {
        dir.fd_path(target)
    };
    std::fs::metadata(full)
        .map(|m| {
            use std::os::unix::fs::MetadataExt;
            trusted_owner(m.uid())
        })
        .unwrap_or(false)
}

/// The components of an absolute path with `.` dropped and `..` applied
/// lexically (safe here: a link is only followed where it is trusted).
fn normalized(path: &Path) -> Result<Vec<OsString>> {
    if !path.is_absolute() {
        return Err(Error::UnsafePath {
            path: path.to_owned(),
            reason: "is not absolute".into(),
        });
    }
    Ok(normalized_relative(path))
}

fn normalized_relative(path: &Path) -> Vec<OsString> {
    let mut out: Vec<OsString> = Vec::new();
    for c in path.components() {
        match c {
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => out.push(n.to_owned()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn work_directories_are_private_fresh_and_unpredictable() {
        let dir = tempfile::tempdir().unwrap();
        let host = DirFd::open_trusted(dir.path()).unwrap();
        let (a, _) = host.create_unique_dir(".cairn-restore-").unwrap();
        let (b, _) = host.create_unique_dir(".cairn-restore-").unwrap();
        assert_ne!(a, b);
        for name in [&a, &b] {
            let meta = std::fs::symlink_metadata(dir.path().join(name)).unwrap();
            assert!(meta.is_dir());
            assert_eq!(
                meta.permissions().mode() & 0o077,
                0,
                "{name:?} is open to others"
            );
            let text = name.to_str().unwrap();
            let random = text.strip_prefix(".cairn-restore-").unwrap();
            assert_eq!(random.len(), 16);
            assert!(random.bytes().all(|c| c.is_ascii_hexdigit()), "{text}");
        }
    }

    #[test]
    fn beneath_never_follows_a_link_inside_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("real")).unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("link")).unwrap();
        let host = DirFd::open_trusted(dir.path()).unwrap();
        assert!(host.open_beneath(b"real").is_ok());
        assert!(host.open_beneath(b"link").is_err());
        assert!(host.parent_beneath(&"link/x".into()).is_err());
        assert!(host.open_dir(OsStr::new("link")).is_err());
        assert!(host.open_file(OsStr::new("link")).is_err());
    }

    #[test]
    fn resolve_refuses_a_link_in_a_directory_others_can_change() {
        let dir = tempfile::tempdir().unwrap();
        let open = dir.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let target = dir.path().join("target");
        std::fs::create_dir(&target).unwrap();
        std::os::unix::fs::symlink(&target, open.join("store")).unwrap();
        let err = resolve(&open.join("store"), false).unwrap_err();
        assert!(matches!(err, Error::UnsafePath { .. }), "{err}");
        // The same link where only the invoker can change it is followed.
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o700)).unwrap();
        let ok = resolve(&open.join("store"), false).unwrap();
        assert_eq!(ok.name, "target");
    }
}
