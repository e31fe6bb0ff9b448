//! Off-site copies of a Cairn repository: a content-addressed,
//! deduplicated remote repository on S3-protocol object storage, SFTP or
//! a path (`file://`), reached through OpenDAL.
//!
//! The local repository stays what it is (plain snapshots); a remote
//! holds packs of chunks, their indexes, and one document per snapshot
//! (its manifest's chunks and each file's). The layout is specified in
//! docs/remote-format.md. Entry points, one per command:
//! [`push::push`], [`Remote::snapshot_ids`] and [`Remote::doc`] (list,
//! show), [`check::validate`], [`pull::pull`], [`gc::prune`].
//!
//! Errors are the engine's ([`cairn_engine::Error`]), typed by cause
//! (`RemoteUnreachable`, `RemoteLocked`, `RemoteSnapshotNotFound`,
//! `RemoteFormat`, `Unsound` for damaged content), so the CLI maps them
//! to exit codes in its one `match`.

pub mod backend;
pub mod check;
pub mod chunk;
pub mod format;
pub mod gc;
pub mod packread;
pub mod placement;
pub mod pull;
pub mod push;
pub mod remote;
pub mod target;

pub use remote::Remote;
