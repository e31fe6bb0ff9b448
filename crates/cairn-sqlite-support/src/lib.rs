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
