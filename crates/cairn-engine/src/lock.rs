//! Advisory exclusive locks (`flock` through std's `File::lock`).
//!
//! The repository lock serialises snapshot, restore, prune and pin on one
//! repository; plug-ins use the same type for a service's own lock file
//! (e.g. `chroma-dir`'s `lock_file`). A lock is released when the value is
//! dropped or the process dies, so a crashed run never leaves it held.

use std::fs::{File, OpenOptions, TryLockError};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

const POLL: Duration = Duration::from_millis(50);

#[derive(Debug)]
pub struct FileLock {
    // Held for its Drop: closing the descriptor releases the lock.
    _file: File,
}

impl FileLock {
    /// Takes an exclusive lock on `path` (created if missing), retrying
    /// until `wait` has passed; then fails with [`Error::Busy`].
    ///
    /// The file is opened with `O_NOFOLLOW`: a symlink planted at the lock
    /// path cannot make Cairn create or truncate a file elsewhere.
    pub fn acquire(path: &Path, wait: Duration) -> Result<FileLock> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| Error::io("open lock file", path, e))?;
        FileLock::wait_for(file, path, wait)
    }

    /// Takes an exclusive lock on a lock file the *service* uses (a
    /// plug-in's `lock_file`), which lives in the service's tree: its path
    /// is resolved like a store's (no planted symlink is followed), and a
    /// missing one is created for the service — owned by the owner of the
    /// directory it is in, mode 0644 — so that the service can still take
    /// its own lock afterwards.
    pub fn acquire_service_lock(path: &Path, wait: Duration) -> Result<FileLock> {
        let resolved = crate::dirfd::resolve(path, false)?;
        let file = resolved.parent.open_or_create_shared(&resolved.name)?;
        FileLock::wait_for(file, path, wait)
    }

    /// Whether someone holds the service's lock file now; a missing lock
    /// file is held by no one (and is not created).
    pub fn service_lock_held(path: &Path) -> Result<bool> {
        let resolved = match crate::dirfd::resolve_existing(path, false)? {
            Some(r) => r,
            None => return Ok(false),
        };
        let file = resolved.parent.open_existing_rw(&resolved.name)?;
        match file.try_lock() {
            Ok(()) => Ok(false),
            Err(TryLockError::WouldBlock) => Ok(true),
            Err(TryLockError::Error(e)) => Err(Error::io("lock", path, e)),
        }
    }

    fn wait_for(file: File, path: &Path, wait: Duration) -> Result<FileLock> {
        let start = Instant::now();
        loop {
            // Waiting for another run is a safe point to stop at.
            crate::cancel::check()?;
            match file.try_lock() {
                Ok(()) => return Ok(FileLock { _file: file }),
                Err(TryLockError::WouldBlock) if start.elapsed() < wait => std::thread::sleep(POLL),
                Err(TryLockError::WouldBlock) => {
                    return Err(Error::Busy {
                        lock: path.to_owned(),
                        waited_secs: wait.as_secs(),
                    })
                }
                Err(TryLockError::Error(e)) => return Err(Error::io("lock", path, e)),
            }
        }
    }

    /// One attempt, no waiting: `None` when another run holds it.
    pub fn try_acquire(path: &Path) -> Result<Option<FileLock>> {
        match FileLock::acquire(path, Duration::ZERO) {
            Ok(lock) => Ok(Some(lock)),
            Err(Error::Busy { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_is_told_busy_and_lock_is_freed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let first = FileLock::acquire(&path, Duration::ZERO).unwrap();
        let err = FileLock::acquire(&path, Duration::from_millis(120)).unwrap_err();
        assert!(matches!(err, Error::Busy { .. }), "{err}");
        assert!(err.to_string().contains(&*path.to_string_lossy()));
        drop(first);
        assert!(FileLock::try_acquire(&path).unwrap().is_some());
    }

    #[test]
    fn refuses_a_symlinked_lock_file() {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = dir.path().join("elsewhere");
        let path = dir.path().join("lock");
        std::os::unix::fs::symlink(&elsewhere, &path).unwrap();
        assert!(FileLock::acquire(&path, Duration::ZERO).is_err());
        assert!(!elsewhere.exists());
    }
}
