//! The live database during a restore: is anyone using it, and removing
//! its sidecars so no stale byte can desync against the restored file.
//!
//! What is detectable (see docs/operator-guide.md, "Restore gates"):
//! - any process (visible to us in /proc) with the database, its `-wal` or
//!   its `-shm` open — this includes an idle connection;
//! - any process, even in another container, holding a POSIX lock on the
//!   `-shm` file (every open WAL connection does) or on the database file
//!   (a rollback-journal connection in a transaction).
//!
//! Not detectable: an idle rollback-journal connection in a process whose
//! /proc entry we cannot read (another user, another PID namespace), or a
//! process on another machine sharing the file over the network.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use cairn_engine::{Error, Result};
use rusqlite::{Connection, OpenFlags};

pub const SIDECAR_SUFFIXES: [&str; 3] = ["-wal", "-shm", "-journal"];

pub(crate) fn sidecar(live: &Path, suffix: &str) -> PathBuf {
    let mut s = live.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// True when neither a `-wal` nor a `-journal` holds bytes: the database
/// file alone is then the whole database, so an unchanged file (size,
/// mtime, ctime, inode) means unchanged content.
pub fn is_self_contained(db: &Path) -> bool {
    ["-wal", "-journal"].iter().all(|suffix| {
        fs::metadata(sidecar(db, suffix))
            .map(|m| m.len() == 0)
            .unwrap_or(true)
    })
}

/// `Some(reason)` when another process visibly has `live` open.
///
/// A special file (FIFO, socket, device, symlink) as the database or where
/// one of its sidecars belongs is an error, `Error::NotRegularFile`, not a
/// reason: SQLite only ever creates regular files there, nothing is opened
/// to probe it (a FIFO would block the probe), and the restore must not go
/// on to checkpoint or copy a database beside it.
pub fn in_use(live: &Path) -> Result<Option<String>> {
    if cairn_engine::fsutil::is_absent(live) {
        return Ok(None);
    }
    if let Some((path, found)) = crate::special_file(live) {
        return Err(Error::NotRegularFile { path, found });
    }
    for path in [sidecar(live, "-shm"), live.to_owned()] {
        if let Some(pid) = lock_holder(&path).map_err(|e| Error::io("probe locks on", &path, e))? {
            return Ok(Some(format!(
                "database {} is open: process {pid} holds a lock on {}",
                live.display(),
                path.display()
            )));
        }
    }
    if let Some((pid, path)) = open_elsewhere(live) {
        return Ok(Some(format!(
            "database {} is open: process {pid} has {} open",
            live.display(),
            path.display()
        )));
    }
    Ok(None)
}

/// The pid of a process holding any POSIX lock on `path` (SQLite's locks).
#[allow(unsafe_code)]
fn lock_holder(path: &Path) -> io::Result<Option<i32>> {
    use std::os::fd::AsRawFd;
    let file = match cairn_engine::fsutil::open_nofollow(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    // SAFETY: an all-zero `flock` is a valid value of this plain C struct.
    let mut probe: libc::flock = unsafe { std::mem::zeroed() };
    probe.l_type = libc::F_WRLCK as libc::c_short;
    probe.l_whence = libc::SEEK_SET as libc::c_short;
    probe.l_start = 0;
    probe.l_len = 0; // to the end of the file, however long
                     // SAFETY: F_GETLK reads and writes only the `flock` we pass, and the
                     // descriptor stays open for the call. It takes no lock, so closing our
                     // descriptor afterwards cannot drop anything SQLite relies on.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETLK, &mut probe) };
    if rc == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok((probe.l_type != libc::F_UNLCK as libc::c_short).then_some(probe.l_pid))
}

/// Another process with the database or a sidecar open, from /proc.
fn open_elsewhere(live: &Path) -> Option<(u32, PathBuf)> {
    let wanted: Vec<PathBuf> = std::iter::once(live.to_owned())
        .chain(SIDECAR_SUFFIXES.iter().map(|s| sidecar(live, s)))
        .filter_map(|p| fs::canonicalize(p).ok())
        .collect();
    let me = std::process::id();
    for proc_entry in fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = proc_entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(fds) = fs::read_dir(proc_entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(target) = fs::read_link(fd.path()) {
                if wanted.contains(&target) {
                    return Some((pid, target));
                }
            }
        }
    }
    None
}

/// Checkpoints the live database if it opens (folding its WAL in), then
/// removes `-wal`, `-shm` and `-journal`. Must run before the new file is
/// renamed in: a crash in between leaves the old database whole (its WAL
/// was checkpointed), never the new one beside an old WAL.
///
/// Beside a special file (see [`in_use`], which refuses the restore before
/// this runs) nothing is checkpointed: SQLite is never handed the path.
pub fn clear_sidecars(live: &Path) -> Result<()> {
    if !cairn_engine::fsutil::is_absent(live) && crate::special_file(live).is_none() {
        crate::vfs::install();
        if let Ok(conn) = Connection::open_with_flags(
            crate::library_path(live),
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NOFOLLOW,
        ) {
            // Best effort: a damaged live database is about to be replaced anyway.
            let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
            let _ = conn.close();
        }
    }
    for suffix in SIDECAR_SUFFIXES {
        let path = sidecar(live, suffix);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("remove stale sidecar", &path, e)),
        }
    }
    Ok(())
}
