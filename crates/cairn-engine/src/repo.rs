//! The repository layout on disk.
//!
//! ```text
//! <repository>/
//!   lock                       flock'ed by snapshot, restore, prune, pin
//!   snapshots/<ID>/manifest.json
//!   snapshots/<ID>/stores/<store>/...
//!   snapshots/<ID>/pinned      present when the snapshot is pinned
//!   snapshots/<ID>/validated.json  the last deep validation's result
//!   tmp/<ID>                   a snapshot being built (or left by a crash)
//!   tmp/delete-<ID>            a snapshot being deleted by prune
//! ```
//!
//! A directory appears under `snapshots/` only by an atomic rename of a
//! complete, synced build from `tmp/`: whatever `snapshots/` lists is whole.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::error::{io_at, Error, Result};
use crate::fsutil;
use crate::id::SnapshotId;
use crate::lock::FileLock;

pub const PINNED_MARKER: &str = "pinned";
pub const STORES_DIR: &str = "stores";
/// The last deep validation's result (see `validate::ValidationRecord`);
/// not part of the manifest.
pub const VALIDATION_RECORD: &str = "validated.json";

#[derive(Debug, Clone)]
pub struct Repository {
    root: PathBuf,
}

/// What `snapshots/` holds.
#[derive(Debug, Default)]
pub struct Listing {
    /// Oldest first.
    pub ids: Vec<SnapshotId>,
    /// Names that are not snapshot ids: never touched, only reported.
    pub unparseable: Vec<String>,
}

impl Repository {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Repository { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn snapshots_dir(&self) -> PathBuf {
        self.root.join("snapshots")
    }

    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    pub fn lock_path(&self) -> PathBuf {
        self.root.join("lock")
    }

    pub fn snapshot_dir(&self, id: &SnapshotId) -> PathBuf {
        self.snapshots_dir().join(id.as_str())
    }

    pub fn store_dir(&self, id: &SnapshotId, store: &str) -> PathBuf {
        self.snapshot_dir(id).join(STORES_DIR).join(store)
    }

    /// Creates the layout (mode 0700) if missing.
    /// Runs before the lock is taken (the lock file lives in the root), so
    /// several first runs may race here: a directory another run created
    /// first is fine.
    pub fn ensure_layout(&self) -> Result<()> {
        fsutil::create_dir_all_private(&self.root)?;
        for dir in [self.snapshots_dir(), self.tmp_dir()] {
            if let Err(e) = fsutil::create_dir_private(&dir) {
                if !dir.is_dir() {
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// The repository lock: one mutating run at a time.
    pub fn lock(&self, wait: Duration) -> Result<FileLock> {
        self.ensure_layout()?;
        FileLock::acquire_recorded(&self.lock_path(), wait)
    }

    /// Every entry of `snapshots/`; an absent repository lists nothing.
    pub fn list(&self) -> Result<Listing> {
        let dir = self.snapshots_dir();
        let mut listing = Listing::default();
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(listing),
            Err(e) => return Err(Error::io("read directory", &dir, e)),
        };
        for entry in entries {
            let entry = entry.map_err(io_at("read directory", &dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            match SnapshotId::parse(&name) {
                Ok(id) => listing.ids.push(id),
                Err(_) => listing.unparseable.push(name),
            }
        }
        listing.ids.sort();
        listing.unparseable.sort();
        Ok(listing)
    }

    /// The newest snapshot not dated in the future: one stamped by a clock
    /// that ran ahead (or a typo in a requested time) is not the newest real state.
    pub fn latest(&self) -> Result<Option<SnapshotId>> {
        let now = Utc::now();
        let ids = self.list()?.ids;
        Ok(ids.into_iter().rev().find(|id| !id.is_future(now)))
    }

    /// Parses `text` as an id (refusing anything path-like before touching
    /// a file) and checks the snapshot exists.
    pub fn resolve(&self, text: &str) -> Result<SnapshotId> {
        let id = SnapshotId::parse(text)?;
        if !self.snapshot_dir(&id).is_dir() {
            return Err(Error::SnapshotNotFound {
                id: id.to_string(),
                repo: self.root.clone(),
            });
        }
        Ok(id)
    }

    /// A new id for `at`: `-N` is appended while that second is taken, and
    /// N is always above every id of that second still present (in
    /// `snapshots/`, or being built in `tmp/`), so a newer snapshot never
    /// sorts before an older one even after prune freed a lower N. Call
    /// with the lock held.
    pub(crate) fn allocate_id(&self, at: DateTime<Utc>) -> Result<SnapshotId> {
        let first = SnapshotId::new(at, 0);
        let same_second = |dir: PathBuf| -> Vec<u32> {
            fs::read_dir(dir)
                .into_iter()
                .flatten()
                .filter_map(|e| e.ok())
                .filter_map(|e| SnapshotId::parse(&e.file_name().to_string_lossy()).ok())
                .filter(|id| id.stamp() == first.stamp())
                .map(|id| id.seq())
                .collect()
        };
        let mut taken = same_second(self.snapshots_dir());
        taken.extend(same_second(self.tmp_dir()));
        match taken.into_iter().max() {
            None => Ok(first),
            // A planted `…-4294967295` must not wrap the sequence to 0.
            Some(max) => match max.checked_add(1) {
                Some(next) => Ok(SnapshotId::new(at, next)),
                None => Err(Error::Usage {
                    message: format!(
                        "no snapshot id is left for {}: {first}-{max} exists in {}",
                        first.stamp().to_rfc3339(),
                        self.root.display()
                    ),
                }),
            },
        }
    }

    pub fn is_pinned(&self, id: &SnapshotId) -> bool {
        self.snapshot_dir(id).join(PINNED_MARKER).is_file()
    }

    /// Pins or unpins; the marker lives in the snapshot's own directory, so
    /// the state survives restarts and moves with the snapshot.
    pub fn set_pinned(&self, id: &SnapshotId, pinned: bool) -> Result<()> {
        let dir = self.snapshot_dir(id);
        let marker = dir.join(PINNED_MARKER);
        if pinned {
            if !marker.is_file() {
                fsutil::write_atomic(&marker, b"")?;
            }
        } else if !fsutil::is_absent(&marker) {
            fs::remove_file(&marker).map_err(io_at("remove", &marker))?;
            fsutil::sync_dir(&dir)?;
        }
        Ok(())
    }

    /// Leftovers in `tmp/`: builds of interrupted snapshots and half-done
    /// deletions. Only safe to remove while holding the lock.
    pub fn leftovers(&self) -> Result<Vec<PathBuf>> {
        let dir = self.tmp_dir();
        let mut out = Vec::new();
        match fs::read_dir(&dir) {
            Ok(entries) => {
                for entry in entries {
                    out.push(entry.map_err(io_at("read directory", &dir))?.path());
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("read directory", &dir, e)),
        }
        out.sort();
        Ok(out)
    }
}
