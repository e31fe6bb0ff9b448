//! Small filesystem primitives with the durability rules in one place.
//!
//! The durable-write sequence (see ARCHITECTURE.md, "Durability"): write the
//! file, sync it, rename it into place, sync the parent directory. Bulk
//! copies sync a whole filesystem once with `syncfs` instead of one `fsync`
//! per file: the same guarantee at the end, without thousands of journal
//! commits for a tree of small files.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use crate::checksum::Checksum;
use crate::error::{io_at, Error, Result};
use crate::fault;

/// Large enough that syscall overhead vanishes, small enough to stay in L2.
pub(crate) const COPY_BUFFER: usize = 1 << 20;

thread_local! {
    /// One copy buffer per thread, reused for every file it copies or
    /// hashes. A fresh zeroed 1 MiB per file was 5% of a snapshot's CPU
    /// (memset) on a tree of 5,000 small files, twice over with validation.
    static BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` with this thread's copy buffer (COPY_BUFFER bytes).
fn with_buffer<R>(f: impl FnOnce(&mut [u8]) -> R) -> R {
    BUFFER.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            if buf.len() < COPY_BUFFER {
                // `vec![0; n]` is one zeroed allocation (fresh pages from
                // the kernel), not a loop over a million bytes: with
                // `resize`, an unoptimized (dev) build spent 85% of a
                // drill's instructions zeroing new threads' buffers.
                *buf = vec![0u8; COPY_BUFFER];
            }
            f(&mut buf)
        }
        // Only if a copy ever ran inside another on the same thread.
        Err(_) => f(&mut vec![0u8; COPY_BUFFER]),
    })
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 0xf) as usize] as char);
    }
    s
}

/// How messages name a kind of file ("a FIFO", "a symbolic link", …).
pub fn file_type_name(ft: fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_file() {
        "a regular file"
    } else if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_char_device() {
        "a character device"
    } else if ft.is_block_device() {
        "a block device"
    } else if ft.is_dir() {
        "a directory"
    } else if ft.is_symlink() {
        "a symbolic link"
    } else {
        "an unknown kind of file"
    }
}

/// Opens a regular file for reading, and nothing else: a symlink planted
/// where a file is expected is reported instead of read through, and a
/// FIFO, socket or device is never opened (a FIFO would block the reader
/// forever; opening a device can act on it).
///
/// `lstat` refuses a special file before any `open`; the open itself is
/// `O_NOFOLLOW | O_NONBLOCK | O_NOCTTY`, so a special file swapped in
/// between cannot block it, and `fstat` of the descriptor refuses it. The
/// refusal is an `InvalidInput` error saying what the path is ("is a
/// FIFO, not a regular file; not read").
/// (`O_NONBLOCK` does not change how a regular file is read.)
pub fn open_nofollow(path: &Path) -> io::Result<File> {
    open_nofollow_with_meta(path).map(|(file, _)| file)
}

/// [`open_nofollow`], and the descriptor's own metadata.
pub fn open_nofollow_with_meta(path: &Path) -> io::Result<(File, fs::Metadata)> {
    fn refuse(ft: fs::FileType) -> io::Error {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("is {}, not a regular file; not read", file_type_name(ft)),
        )
    }
    let before = fs::symlink_metadata(path)?;
    if !before.file_type().is_file() {
        return Err(refuse(before.file_type()));
    }
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.file_type().is_file() {
        return Err(refuse(meta.file_type()));
    }
    Ok((file, meta))
}

/// Creates `path` (which must not exist) for writing, private to the owner.
pub fn create_new_private(path: &Path) -> Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(io_at("create", path))
}

/// `mkdir` with mode 0700.
pub fn create_dir_private(path: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .mode(0o700)
        .create(path)
        .map_err(io_at("create directory", path))
}

/// `mkdir -p` with mode 0700 for the directories it creates.
pub(crate) fn create_dir_all_private(path: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(io_at("create directory", path))
}

/// Size and SHA-256 of a file, read once; holes are hashed as the zeros
/// they read as, without reading them (see [`copy_sparse`]).
pub fn hash_file(path: &Path) -> Result<(u64, Checksum)> {
    let (file, meta) = open_nofollow_with_meta(path).map_err(io_at("open", path))?;
    sparse_pump(&file, Extents::of(&file, &meta), path, |_, _| Ok(()))
}

/// [`hash_file`] of a file already open (`stat` its `fstat`), named
/// `shown` in messages.
pub(crate) fn hash_open(
    file: &File,
    stat: &rustix::fs::Stat,
    shown: &Path,
) -> Result<(u64, Checksum)> {
    sparse_pump(file, Extents::of_stat(file, stat), shown, |_, _| Ok(()))
}

/// How a file's bytes are walked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extents {
    /// Straight through to the end: no hole in it.
    Dense,
    /// Extent by extent (`SEEK_DATA`/`SEEK_HOLE`), holes skipped.
    MayHaveHoles,
}

impl Extents {
    /// How to walk the open `file` (`meta` its metadata). Why not always
    /// extent by extent: finding the extents of a small dense file costs
    /// three `lseek`s and a `stat` more than reading it, and a tree of
    /// 100,000 small files is read three times over by a snapshot and its
    /// restore. Blocks that do not cover the length mean a hole; blocks
    /// that do may still include some past the end (preallocated), so one
    /// `SEEK_HOLE` settles it: a hole is never taken for data.
    pub fn of(file: &File, meta: &fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        Self::of_size(file, meta.len(), meta.blocks())
    }

    /// [`Extents::of`] from a `stat` taken through a directory descriptor.
    pub(crate) fn of_stat(file: &File, stat: &rustix::fs::Stat) -> Self {
        let (len, blocks) = len_and_blocks(stat);
        Self::of_size(file, len, blocks)
    }

    /// [`Extents::of`] from the length and the 512-byte blocks.
    pub(crate) fn of_size(file: &File, len: u64, blocks: u64) -> Self {
        use rustix::fs::SeekFrom;
        if len == 0 {
            return Extents::Dense;
        }
        if blocks.saturating_mul(512) < len {
            return Extents::MayHaveHoles;
        }
        match rustix::fs::seek(file, SeekFrom::Hole(0)) {
            Ok(first_hole) if first_hole >= len => Extents::Dense,
            _ => Extents::MayHaveHoles,
        }
    }
}

/// A `stat`'s length and 512-byte blocks. Never negative for a regular
/// file; a nonsense length is taken as the largest, so that
/// [`Extents::of_size`] walks the file extent by extent, right for any.
pub(crate) fn len_and_blocks(stat: &rustix::fs::Stat) -> (u64, u64) {
    (
        u64::try_from(stat.st_size).unwrap_or(u64::MAX),
        u64::try_from(stat.st_blocks).unwrap_or(0),
    )
}

/// Creates the new file `dst` and copies the open regular file `src` into
/// it with [`copy_sparse`]; returns the open copy (callers set its mode
/// and times through the descriptor), the size and the SHA-256.
pub(crate) fn copy_sparse_new(
    src: &File,
    extents: Extents,
    src_path: &Path,
    dst: &Path,
) -> Result<(File, u64, Checksum)> {
    let out = create_new_private(dst)?;
    let (size, sha256) = copy_sparse(src, extents, src_path, &out, dst)?;
    Ok((out, size, sha256))
}

/// Copies the open regular file `src` into the empty file `out` (named
/// `dst` in messages) keeping its holes: only the data extents that
/// `SEEK_DATA`/`SEEK_HOLE` find are read and written, each at its own
/// offset, and the copy is given the source's length, so a hole stays a
/// hole (a 2 GiB file holding 160 KiB of data takes 160 KiB). The SHA-256
/// is of the logical content: a hole is hashed as zeros, without reading
/// it. A file system that does not report holes shows one data extent,
/// and the copy is the plain one. A [`Extents::Dense`] source is read
/// and written straight through.
pub(crate) fn copy_sparse(
    src: &File,
    extents: Extents,
    src_path: &Path,
    out: &File,
    dst: &Path,
) -> Result<(u64, Checksum)> {
    use std::os::unix::fs::FileExt;
    let (size, sha256) = sparse_pump(src, extents, src_path, |offset, bytes| {
        fault::check_write(dst)?;
        out.write_all_at(bytes, offset).map_err(io_at("write", dst))
    })?;
    // The length, holes at the end included; without data writes the file
    // takes no blocks. Straight through, every byte was written: the
    // length is already this.
    if extents == Extents::MayHaveHoles {
        out.set_len(size).map_err(io_at("set the length of", dst))?;
    }
    Ok((size, sha256))
}

/// Zeros fed to the hasher for holes.
static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];

/// The sparse-aware byte loop: walks `file`'s data extents from offset 0
/// to its end, handing each buffer of data to `sink` with its offset, and
/// hashing holes as zeros without reading them (a [`Extents::Dense`] file
/// is one extent, read to its end). Returns the length and the SHA-256 of
/// the logical content.
fn sparse_pump(
    file: &File,
    extents: Extents,
    path: &Path,
    mut sink: impl FnMut(u64, &[u8]) -> Result<()>,
) -> Result<(u64, Checksum)> {
    use rustix::fs::SeekFrom;
    use std::os::unix::fs::FileExt;
    let mut hasher = Sha256::new();
    let hash_zeros = |hasher: &mut Sha256, mut len: u64| -> Result<()> {
        while len > 0 {
            crate::cancel::check()?;
            let n = len.min(ZEROS.len() as u64) as usize;
            hasher.update(&ZEROS[..n]);
            crate::progress::advance(n as u64);
            len -= n as u64;
        }
        Ok(())
    };
    let mut pos = 0u64;
    let mut read_to = |hasher: &mut Sha256, buf: &mut [u8], pos: &mut u64, end: u64| {
        while *pos < end {
            crate::cancel::check()?;
            let want = (end - *pos).min(buf.len() as u64) as usize;
            let n = match file.read_at(&mut buf[..want], *pos) {
                // Shorter than it was a moment ago: the end is here.
                Ok(0) => return Ok(false),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io("read", path, e)),
            };
            hasher.update(&buf[..n]);
            sink(*pos, &buf[..n])?;
            *pos += n as u64;
            crate::progress::advance(n as u64);
        }
        Ok(true)
    };
    if extents == Extents::Dense {
        with_buffer(|buf| read_to(&mut hasher, buf, &mut pos, u64::MAX).map(|_| ()))?;
        return Ok((pos, Checksum::from_hasher(hasher)));
    }
    with_buffer(|buf| loop {
        let data = match rustix::fs::seek(file, SeekFrom::Data(pos)) {
            Ok(d) => d,
            // No data at or after `pos`: the rest, to the end, is a hole.
            Err(rustix::io::Errno::NXIO) => {
                let end = file.metadata().map_err(io_at("stat", path))?.len();
                if end > pos {
                    hash_zeros(&mut hasher, end - pos)?;
                    pos = end;
                }
                return Ok(());
            }
            Err(e) => return Err(Error::io("find the data of", path, e.into())),
        };
        hash_zeros(&mut hasher, data.saturating_sub(pos))?;
        pos = data;
        // The end of the file counts as a hole, so this always ends.
        let hole = rustix::fs::seek(file, SeekFrom::Hole(pos))
            .map_err(|e| Error::io("find the holes of", path, e.into()))?;
        if !read_to(&mut hasher, buf, &mut pos, hole)? {
            return Ok(());
        }
    })?;
    Ok((pos, Checksum::from_hasher(hasher)))
}

/// Snapshot files are read-only: nothing in Cairn ever writes one twice.
pub fn make_read_only(path: &Path) -> Result<()> {
    fs::set_permissions(path, Permissions::from_mode(SNAPSHOT_FILE_MODE))
        .map_err(io_at("chmod", path))
}

pub const SNAPSHOT_FILE_MODE: u32 = 0o400;

pub fn sync_dir(path: &Path) -> Result<()> {
    File::open(path)
        .and_then(|d| d.sync_all())
        .map_err(io_at("sync directory", path))
}

/// Flushes every dirty page of the filesystem holding `path`.
pub(crate) fn sync_filesystem(path: &Path) -> Result<()> {
    let dir = File::open(path).map_err(io_at("open", path))?;
    syncfs(&dir).map_err(io_at("sync filesystem of", path))
}

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn syncfs(file: &File) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: syncfs only reads the descriptor number, which `file` keeps
    // open for the duration of the call.
    let rc = unsafe { libc::syncfs(file.as_raw_fd()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn syncfs(file: &File) -> io::Result<()> {
    // Without syncfs the caller's per-file syncs are the guarantee; a
    // directory sync is the best a whole-filesystem flush can be here.
    file.sync_all()
}

/// Temp file in the target's directory → write → sync → rename → sync dir.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_mode(path, bytes, 0o600)
}

/// [`write_atomic`] leaving the file with exactly `mode`, whatever the
/// umask (the Prometheus textfile is 0644: node_exporter reads it as its
/// own user). The temp file is created exclusively and without following
/// a link, so nothing planted in the directory redirects the write.
pub(crate) fn write_atomic_mode(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.cairn-tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)
            .map_err(io_at("create", &tmp))?;
        f.set_permissions(Permissions::from_mode(mode))
            .map_err(io_at("chmod", &tmp))?;
        f.write_all(bytes).map_err(io_at("write", &tmp))?;
        f.sync_all().map_err(io_at("sync", &tmp))?;
        fs::rename(&tmp, path).map_err(io_at("rename into place", path))?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// The wall clock, in the nanoseconds file timestamps use. A clock before
/// 1970 reads as the earliest time there is, so every timestamp looks
/// recent (racy, see `capture::settled_before`).
pub fn now_ns() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        Err(_) => i64::MIN,
    }
}

/// A file's mtime in nanoseconds, exactly: `i128`, since nanoseconds in
/// an `i64` end in 2262 and file systems keep later times.
pub fn mtime_ns(meta: &fs::Metadata) -> i128 {
    i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec())
}

/// `ns` since the epoch as a `SystemTime`. Beyond what one holds (only a
/// manifest's bytes can say so), the nearest time it holds.
pub(crate) fn system_time_from_ns(ns: i128) -> SystemTime {
    let (secs, nanos) = secs_and_nanos(ns);
    if secs >= 0 {
        UNIX_EPOCH + Duration::new(secs as u64, nanos)
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs()) + Duration::from_nanos(nanos.into())
    }
}

/// `ns` since the epoch as whole seconds (floored, within `i64`, as the
/// kernel takes them) and the nanoseconds after them.
pub(crate) fn secs_and_nanos(ns: i128) -> (i64, u32) {
    let secs = ns
        .div_euclid(1_000_000_000)
        .clamp(i128::from(i64::MIN + 1), i128::from(i64::MAX));
    (secs as i64, ns.rem_euclid(1_000_000_000) as u32)
}

pub fn mode_bits(meta: &fs::Metadata) -> u32 {
    meta.mode() & 0o7777
}

/// True when `path` does not exist (a dangling symlink exists).
pub fn is_absent(path: &Path) -> bool {
    matches!(fs::symlink_metadata(path), Err(e) if e.kind() == io::ErrorKind::NotFound)
}

/// Removes a file or a whole directory tree without following symlinks
/// (std's `remove_dir_all` does not follow them).
pub(crate) fn remove_any(path: &Path) -> Result<()> {
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("stat", path, e)),
        Ok(m) if m.is_dir() => {
            // Snapshot directories hold read-only files in private dirs;
            // unlinking needs write permission on the directories only.
            make_dirs_writable(path)?;
            fs::remove_dir_all(path).map_err(io_at("remove", path))
        }
        Ok(_) => fs::remove_file(path).map_err(io_at("remove", path)),
    }
}

fn make_dirs_writable(path: &Path) -> Result<()> {
    let meta = fs::symlink_metadata(path).map_err(io_at("stat", path))?;
    if !meta.is_dir() {
        return Ok(());
    }
    if meta.mode() & 0o700 != 0o700 {
        fs::set_permissions(path, Permissions::from_mode(0o700)).map_err(io_at("chmod", path))?;
    }
    for child in fs::read_dir(path).map_err(io_at("read directory", path))? {
        let child = child.map_err(io_at("read directory", path))?;
        if child.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            make_dirs_writable(&child.path())?;
        }
    }
    Ok(())
}

/// Bytes available to an unprivileged writer on the filesystem of `path`.
#[allow(unsafe_code)]
pub(crate) fn free_bytes(path: &Path) -> Option<u64> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let c_path = CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: an all-zero statvfs is a valid value of this plain C struct.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c_path` is a NUL-terminated string that outlives the call,
    // and `stat` is a valid, writable statvfs.
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), &mut stat) };
    (rc == 0).then(|| (stat.f_bavail as u64).saturating_mul(stat.f_frsize as u64))
}

/// `1.5 GiB`, `12.0 KiB`, `512 B`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Seek, SeekFrom};

    #[test]
    fn any_time_a_manifest_can_hold_becomes_a_time_without_a_panic() {
        let at = |ns: i128| system_time_from_ns(ns);
        assert_eq!(at(0), UNIX_EPOCH);
        assert_eq!(
            at(10_413_792_000_123_456_789),
            UNIX_EPOCH + Duration::new(10_413_792_000, 123_456_789)
        );
        assert_eq!(
            at(-631_152_000_000_000_000 + 500),
            UNIX_EPOCH - Duration::from_secs(631_152_000) + Duration::from_nanos(500)
        );
        assert_eq!(secs_and_nanos(-1), (-1, 999_999_999));
        // Far outside any file system: the nearest time there is.
        assert_eq!(secs_and_nanos(i128::MAX).0, i64::MAX);
        assert_eq!(secs_and_nanos(i128::MIN).0, i64::MIN + 1);
        assert!(at(i128::MAX) > at(10_413_792_000_123_456_789));
        assert!(at(i128::MIN) < at(-631_152_000_000_000_000));
    }

    #[test]
    fn a_dense_file_is_copied_straight_through_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        // Longer than one copy buffer and not a multiple of it, with a
        // run of written zeros (data, not a hole) in the middle.
        let mut bytes: Vec<u8> = (0..COPY_BUFFER as u32 * 2 + 12_345)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        bytes[1000..600_000].fill(0);
        for (name, content) in [("dense", &bytes[..]), ("empty", &[][..])] {
            let src_path = dir.path().join(name);
            fs::write(&src_path, content).unwrap();
            let src = File::open(&src_path).unwrap();
            let extents = Extents::of(&src, &src.metadata().unwrap());
            assert_eq!(extents, Extents::Dense, "{name}");
            let dst = dir.path().join(format!("{name}.copy"));
            let (out, copied, sha) = copy_sparse_new(&src, extents, &src_path, &dst).unwrap();
            drop(out);
            assert_eq!(copied, content.len() as u64, "{name}");
            assert_eq!(sha, Checksum::of(content), "{name}");
            assert_eq!(fs::read(&dst).unwrap(), content, "{name}");
            assert_eq!(hash_file(&dst).unwrap(), (copied, sha), "{name}");
        }
    }

    #[test]
    fn blocks_preallocated_past_the_end_do_not_hide_a_hole() {
        use std::os::fd::AsRawFd;
        use std::os::unix::fs::FileExt;
        let dir = tempfile::tempdir().unwrap();
        let src_path = dir.path().join("prealloc");
        let src = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&src_path)
            .unwrap();
        let len: u64 = 8 << 20;
        src.set_len(len).unwrap();
        src.write_all_at(&[7u8; 4096], 0).unwrap();
        // 16 MiB of blocks past the end: more than the length in all.
        #[allow(unsafe_code)]
        // SAFETY: a plain call on a descriptor this test owns.
        let rc = unsafe {
            libc::fallocate(
                src.as_raw_fd(),
                libc::FALLOC_FL_KEEP_SIZE,
                len as libc::off_t,
                16 << 20,
            )
        };
        assert_eq!(rc, 0, "fallocate: {}", io::Error::last_os_error());
        let meta = src.metadata().unwrap();
        assert!(meta.blocks() * 512 >= len, "{} blocks", meta.blocks());
        assert_eq!(Extents::of(&src, &meta), Extents::MayHaveHoles);
        let dst = dir.path().join("copy");
        let extents = Extents::of(&src, &meta);
        let (out, copied, sha) = copy_sparse_new(&src, extents, &src_path, &dst).unwrap();
        drop(out);
        assert_eq!(copied, len);
        let mut content = vec![0u8; len as usize];
        content[..4096].fill(7);
        assert_eq!(sha, Checksum::of(&content));
        assert!(fs::metadata(&dst).unwrap().blocks() * 512 < 1 << 20);
    }

    #[test]
    fn a_sparse_copy_keeps_holes_and_hashes_the_logical_content() {
        let dir = tempfile::tempdir().unwrap();
        let src_path = dir.path().join("sparse");
        let mut src = File::create(&src_path).unwrap();
        let size: u64 = 256 << 20;
        src.set_len(size).unwrap();
        for at in [0u64, 100 << 20, size - 4096] {
            src.seek(SeekFrom::Start(at)).unwrap();
            src.write_all(&[0xab; 4096]).unwrap();
        }
        drop(src);
        let src = File::open(&src_path).unwrap();
        // A file system that keeps no holes would make this test pass
        // without testing anything; say so instead.
        assert!(
            src.metadata().unwrap().blocks() * 512 <= 4 << 20,
            "{} keeps no holes: run the tests on a file system that does (ext4, xfs, btrfs, tmpfs)",
            dir.path().display()
        );
        let dst = dir.path().join("copy");
        let extents = Extents::of(&src, &src.metadata().unwrap());
        assert_eq!(extents, Extents::MayHaveHoles);
        let (out, copied, sha) = copy_sparse_new(&src, extents, &src_path, &dst).unwrap();
        drop(out);
        assert_eq!(copied, size);
        let copy = fs::metadata(&dst).unwrap();
        assert_eq!(copy.len(), size);
        assert!(copy.blocks() * 512 < 4 << 20, "{} blocks", copy.blocks());
        // The hash is of every byte, holes read as zeros.
        let mut plain = Sha256::new();
        let mut reader = std::io::BufReader::new(File::open(&dst).unwrap());
        std::io::copy(&mut reader, &mut plain).unwrap();
        assert_eq!(sha, Checksum::from_hasher(plain));
        assert_eq!(hash_file(&dst).unwrap(), (size, sha));
        // A file that ends in a hole, and one that is all hole.
        let empty = dir.path().join("empty");
        File::create(&empty).unwrap().set_len(5000).unwrap();
        assert_eq!(hash_file(&empty).unwrap().1, Checksum::of(&[0u8; 5000]));
    }
}
