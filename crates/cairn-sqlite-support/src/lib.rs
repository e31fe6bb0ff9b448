//! SQLite helpers for store plug-ins: the online copy (one read
//! transaction, hashed as written), the integrity check and row counts of a copy, and the probes of
//! a live database (is it open, clearing its sidecars).
//!
//! This crate registers no store kind, so a plug-in that finds SQLite files
//! inside its own store (`chroma-dir`) can use these without linking the
//! `sqlite` kind into every binary that links it.

mod copy;
mod integrity;
mod live;
mod pages;
mod query;
mod state;
mod vfs;

pub use copy::{
    is_sqlite_file, online_copy, online_copy_with_state, persistent_journal_mode,
    restore_journal_mode, CopyError, CopyFailure, CopyInfo, HEADER,
};
pub use integrity::{integrity_check, row_counts, INTEGRITY_FAILED};
pub use live::{clear_sidecars, in_use, is_self_contained, SIDECAR_SUFFIXES};
pub use query::{query_value, Target as QueryTarget};
pub use state::{FileState, LiveState, LIVE_STATE_KEY, RACY_MARGIN_NS};

use std::fs;
use std::path::{Path, PathBuf};

/// The first of `db` and its `-wal`, `-shm` and `-journal` sidecars that
/// exists but is not a regular file, with what it is ("a FIFO", …).
///
/// Checked (by `lstat`, opening nothing) before SQLite is handed `db`:
/// SQLite opens the database and its sidecars itself, and would follow a
/// symlink or open a FIFO, socket or device — a FIFO opened for reading
/// blocks forever. A path that cannot be looked at is left for SQLite's
/// own open to report.
///
/// The path returned is for messages: the directory's real path, not the
/// descriptor path (`/proc/self/fd/N/…`) it was looked at through.
pub fn special_file(db: &Path) -> Option<(PathBuf, &'static str)> {
    std::iter::once(db.to_owned())
        .chain(SIDECAR_SUFFIXES.iter().map(|s| live::sidecar(db, s)))
        .find_map(|path| {
            let ft = fs::symlink_metadata(&path).ok()?.file_type();
            (!ft.is_file()).then(|| (library_path(&path), describe(ft)))
        })
}

/// `special_file` as the message a check or copy reports.
pub(crate) fn refuse_special(db: &Path) -> Result<(), String> {
    match special_file(db) {
        None => Ok(()),
        Some((path, what)) if path == library_path(db) => Err(format!(
            "{} is {what}, not a regular file; not read",
            path.display()
        )),
        Some((path, what)) => Err(format!(
            "{} is {what}, not a regular file: SQLite would open it as a sidecar of {}, \
             so the database is not opened",
            path.display(),
            library_path(db).display()
        )),
    }
}

fn describe(ft: fs::FileType) -> &'static str {
    cairn_engine::fsutil::file_type_name(ft)
}

/// The path SQLite is given for a live file. The engine hands plug-ins
/// paths through a descriptor it holds (`/proc/self/fd/N/name`), but SQLite
/// resolves every symlink of a path itself, that magic link included, and
/// with `SQLITE_OPEN_NOFOLLOW` refuses any. So SQLite gets the directory's
/// real path now, plus the name, and opens it with `SQLITE_OPEN_NOFOLLOW`:
/// a symlink anywhere on it at open time is refused rather than followed.
/// (What remains — a directory swapped in the instant between SQLite's
/// checks and its open — is in docs/security.md.)
pub(crate) fn library_path(path: &std::path::Path) -> std::path::PathBuf {
    match (path.parent(), path.file_name()) {
        (Some(dir), Some(name)) if dir.starts_with("/proc/self/fd") => std::fs::canonicalize(dir)
            .map(|real| real.join(name))
            .unwrap_or_else(|_| path.to_owned()),
        _ => path.to_owned(),
    }
}
