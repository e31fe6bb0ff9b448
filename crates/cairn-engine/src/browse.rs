//! Looking inside a snapshot without restoring it: its manifest, the
//! entries at or under a path of a store (`cairn ls`), and one file's
//! bytes streamed out verified against the manifest (`cairn cat`).
//!
//! Everything here reads the repository and writes nothing in it.

use std::io::{Read, Write};

use sha2::{Digest, Sha256};

use crate::checksum::Checksum;
use crate::error::{io_at, Error, Result};
use crate::fsutil;
use crate::id::SnapshotId;
use crate::manifest::{Entry, EntryKind, Manifest, RawPath, StoreRecord};
use crate::problem::{codes, Problem};
use crate::repo::Repository;

/// Bytes read and written at a time by [`cat`].
const BUF: usize = 1 << 20;

/// A snapshot's manifest, digest checked; a damaged one is an error
/// naming the snapshot.
pub fn manifest(repo: &Repository, id: &SnapshotId) -> Result<Manifest> {
    Manifest::read_from(&repo.snapshot_dir(id), id.as_str()).map_err(|p| Error::Manifest {
        id: id.to_string(),
        message: p.to_string(),
    })
}

/// The store named `name` in `manifest`, or an error listing those it has.
pub fn store<'m>(manifest: &'m Manifest, name: &str) -> Result<&'m StoreRecord> {
    manifest.store(name).ok_or_else(|| Error::UnknownStore {
        name: name.to_owned(),
        place: format!("snapshot {}", manifest.id),
        available: manifest.stores.iter().map(|s| s.name.clone()).collect(),
    })
}

/// Whether `path` is `prefix` itself or lies below it. An empty prefix is
/// the store's root, above everything.
pub fn is_at_or_under(path: &RawPath, prefix: &RawPath) -> bool {
    let (p, pre) = (path.as_bytes(), prefix.as_bytes());
    pre.is_empty() || p == pre || (p.starts_with(pre) && p.get(pre.len()) == Some(&b'/'))
}

/// The entries of `record` at or under `prefix`, in manifest order
/// (parents before children). Empty when nothing matches.
pub fn entries_under<'r>(record: &'r StoreRecord, prefix: &RawPath) -> Vec<&'r Entry> {
    record
        .entries
        .iter()
        .filter(|e| is_at_or_under(&e.path, prefix))
        .collect()
}

/// The entry at exactly `path`, or [`Error::NoSuchEntry`].
pub fn entry<'r>(id: &SnapshotId, record: &'r StoreRecord, path: &RawPath) -> Result<&'r Entry> {
    record
        .entries
        .iter()
        .find(|e| e.path == *path)
        .ok_or_else(|| Error::NoSuchEntry {
            id: id.to_string(),
            store: record.name.clone(),
            path: path.shown().into_owned(),
        })
}

/// Streams the snapshot's copy of `entry` (a regular file of `record`) to
/// `out`, hashing as it goes, and returns the bytes written. The bytes
/// are written as they are read, so a copy that turns out not to match
/// its manifest has already been written up to the point where that was
/// known: past its recorded size at once, else at its end, where its
/// SHA-256 is compared. Either way the result is [`Error::FileDamaged`]
/// (`file_size_mismatch` or `file_checksum_mismatch`), and whoever reads
/// `out` must discard what it got.
pub fn cat(
    repo: &Repository,
    id: &SnapshotId,
    record: &StoreRecord,
    entry: &Entry,
    out: &mut dyn Write,
) -> Result<u64> {
    let shown = entry.path.shown().into_owned();
    if entry.kind != EntryKind::File {
        return Err(Error::Usage {
            message: format!(
                "snapshot {id}: {} in store {} is {}; only a regular file can be printed",
                shown,
                record.name,
                entry.kind.name()
            ),
        });
    }
    let path = repo.store_dir(id, &record.name).join(entry.path.as_path());
    let damaged = |problem: Problem| Error::FileDamaged {
        id: id.to_string(),
        problem: problem.in_store(&record.name).at(shown.clone()),
    };
    let mut file = match fsutil::open_nofollow(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(damaged(Problem::new(
                codes::FILE_MISSING,
                "listed in the manifest but missing from the snapshot",
            )))
        }
        Err(e) => return Err(Error::io("open", &path, e)),
    };
    let expected = entry.size.unwrap_or(0);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; BUF];
    let mut written = 0u64;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io("read", &path, e)),
        };
        // Longer than recorded: not one byte past the recorded size goes out.
        let room = expected.saturating_sub(written);
        let take = (n as u64).min(room) as usize;
        hasher.update(&buf[..take]);
        out.write_all(&buf[..take])
            .map_err(io_at("write to", std::path::Path::new("standard output")))?;
        written += take as u64;
        if take < n {
            return Err(damaged(Problem::new(
                codes::FILE_SIZE_MISMATCH,
                format!("manifest says {expected} bytes, the copy holds more; output stopped at {expected} bytes"),
            )));
        }
    }
    out.flush()
        .map_err(io_at("write to", std::path::Path::new("standard output")))?;
    if written != expected {
        return Err(damaged(Problem::new(
            codes::FILE_SIZE_MISMATCH,
            format!("manifest says {expected} bytes, the copy holds {written}"),
        )));
    }
    let actual = Checksum::from_hasher(hasher);
    if entry.sha256.as_ref() != Some(&actual) {
        return Err(Error::FileDamaged {
            id: id.to_string(),
            problem: Problem::checksum_mismatch(
                &record.name,
                shown,
                entry.sha256.as_ref(),
                &actual,
            ),
        });
    }
    Ok(written)
}
