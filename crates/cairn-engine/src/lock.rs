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
    /// The file holds this run's holder record, cleared on release: a
    /// record left behind is a crashed run's, and reads as stale.
    recorded: bool,
}

impl Drop for FileLock {
    fn drop(&mut self) {
        if self.recorded {
            // Still held here; the lock goes when the file closes.
            let _ = self._file.set_len(0);
        }
    }
}

impl FileLock {
    /// Takes an exclusive lock on `path` (created if missing), retrying
    /// until `wait` has passed; then fails with [`Error::Busy`].
    ///
    /// The file is opened with `O_NOFOLLOW`: a symlink planted at the lock
    /// path cannot make Cairn create or truncate a file elsewhere.
    pub fn acquire(path: &Path, wait: Duration) -> Result<FileLock> {
        let file = FileLock::open_own(path)?;
        FileLock::wait_for(file, path, wait, false)
    }

    /// The repository lock: as [`FileLock::acquire`], and once taken, the
    /// file records who holds it (pid, command line, start time), so that
    /// a run that finds it busy can name the holder. While it waits, a
    /// notice says so (`progress::notice`).
    pub fn acquire_recorded(path: &Path, wait: Duration) -> Result<FileLock> {
        let file = FileLock::open_own(path)?;
        let mut lock = FileLock::wait_for(file, path, wait, true)?;
        // Advisory: a record that cannot be written costs only the name
        // of the holder in another run's message.
        lock.recorded = holder::write(&lock._file).is_ok();
        Ok(lock)
    }

    fn open_own(path: &Path) -> Result<File> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| Error::io("open lock file", path, e))
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
        FileLock::wait_for(file, path, wait, false)
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

    /// `recorded`: the lock file holds a holder record (the repository's),
    /// read back to name the holder while waiting and when giving up.
    fn wait_for(file: File, path: &Path, wait: Duration, recorded: bool) -> Result<FileLock> {
        let start = Instant::now();
        let mut told = false;
        loop {
            // Waiting for another run is a safe point to stop at.
            crate::cancel::check()?;
            match file.try_lock() {
                Ok(()) => {
                    return Ok(FileLock {
                        _file: file,
                        recorded: false,
                    })
                }
                Err(TryLockError::WouldBlock) if start.elapsed() < wait => {
                    if !told && recorded {
                        told = true;
                        crate::progress::notice(&format!(
                            "waiting up to {}s for the lock {}, held by {}",
                            wait.as_secs(),
                            path.display(),
                            holder::describe(&file)
                        ));
                    }
                    std::thread::sleep(POLL)
                }
                Err(TryLockError::WouldBlock) => {
                    return Err(Error::Busy {
                        lock: path.to_owned(),
                        waited_secs: wait.as_secs(),
                        holder: recorded.then(|| holder::describe(&file)),
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

/// The holder record in the repository's lock file: written by the run
/// that holds the lock, read by one that finds it busy. Nothing depends on
/// it being there or well formed: a stale record (its pid no longer
/// running), a garbled one, or none at all is said as such.
mod holder {
    use std::fs::File;
    use std::io::{Read, Seek, SeekFrom, Write};

    /// Far above any record written here; what is past it is not read.
    const MAX: u64 = 4096;

    pub(super) fn write(mut file: &File) -> std::io::Result<()> {
        let command: Vec<String> = std::env::args_os()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let mut command = command.join(" ").replace(['\n', '\r'], " ");
        if command.len() > 1024 {
            let mut end = 1024;
            while !command.is_char_boundary(end) {
                end -= 1;
            }
            command.truncate(end);
        }
        let text = format!(
            "pid {}\ncommand {}\nstarted {}\n",
            std::process::id(),
            command,
            chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
        file.set_len(0)?;
        file.seek(SeekFrom::Start(0))?;
        file.write_all(text.as_bytes())
    }

    /// `pid 1234 (cairn snapshot, since 2026-…Z)`, or why the holder is unknown.
    pub(super) fn describe(file: &File) -> String {
        let mut text = String::new();
        let mut reader = file;
        if reader.seek(SeekFrom::Start(0)).is_err()
            || reader.take(MAX).read_to_string(&mut text).is_err()
        {
            return "a process not recorded (the lock file's record is unreadable)".into();
        }
        let field = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
                .map(str::trim)
        };
        let Some(pid) = field("pid").and_then(|p| p.parse::<u32>().ok()) else {
            return if text.trim().is_empty() {
                "a process not recorded (an older cairn, or one that could not write the record)"
                    .into()
            } else {
                "a process not recorded (the lock file's record is garbled)".into()
            };
        };
        let mut shown = format!("pid {pid}");
        let details: Vec<String> = [
            field("command").map(str::to_owned),
            field("started").map(|t| format!("since {t}")),
        ]
        .into_iter()
        .flatten()
        .filter(|d| !d.is_empty())
        .collect();
        if !details.is_empty() {
            shown.push_str(&format!(" ({})", details.join(", ")));
        }
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            shown.push_str(
                "; that pid is not running, so the record is stale and the holder did not write one",
            );
        }
        shown
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
        assert!(matches!(err, Error::Busy { holder: None, .. }), "{err}");
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

#[cfg(test)]
mod holder_tests {
    use super::*;

    #[test]
    fn a_busy_repository_lock_names_its_holder_and_a_garbled_record_breaks_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let first = FileLock::acquire_recorded(&path, Duration::ZERO).unwrap();
        let err = FileLock::acquire_recorded(&path, Duration::from_millis(60)).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(&format!("pid {}", std::process::id())),
            "{text}"
        );
        drop(first);
        for garbage in [&b""[..], b"pid x\n", b"\xff\xfe pid", b"pid 4294967295\n"] {
            std::fs::write(&path, garbage).unwrap();
            let held = File::open(&path).unwrap();
            held.lock().unwrap();
            let err = FileLock::acquire_recorded(&path, Duration::ZERO).unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::Busy {
                        holder: Some(_),
                        ..
                    }
                ),
                "{err}"
            );
            drop(held);
        }
        // Free again: taken, and the record rewritten whole; released,
        // the record goes with it.
        let lock = FileLock::acquire_recorded(&path, Duration::ZERO).unwrap();
        let record = std::fs::read_to_string(&path).unwrap();
        assert!(
            record.starts_with(&format!("pid {}\n", std::process::id())),
            "{record}"
        );
        drop(lock);
        assert_eq!(std::fs::read(&path).unwrap(), b"");
    }
}
