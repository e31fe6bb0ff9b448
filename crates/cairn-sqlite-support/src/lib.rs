//! SQLite helpers for store plug-ins: the online copy (backup API in one
//! step), the integrity check and row counts of a copy, and the probes of
//! a live database (is it open, clearing its sidecars).
//!
//! This crate registers no store kind, so a plug-in that finds SQLite files
//! inside its own store (`chroma-dir`) can use these without linking the
//! `sqlite` kind into every binary that links it.

mod copy;
mod integrity;
mod live;

pub use copy::{is_sqlite_file, online_copy, CopyError, CopyFailure, CopyInfo};
pub use integrity::{integrity_check, row_counts, INTEGRITY_FAILED};
pub use live::{clear_sidecars, in_use, is_self_contained, SIDECAR_SUFFIXES};

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
