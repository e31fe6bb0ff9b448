//! Online copies with the backup API.

use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};
use serde_json::{Map, Value};

const HEADER: &[u8; 16] = b"SQLite format 3\0";

/// True when `path` is a regular file that starts with the SQLite header.
/// Anything else (a FIFO, a device, a symlink) is not opened at all
/// (`fsutil::open_nofollow`), so asking never blocks.
pub fn is_sqlite_file(path: &Path) -> bool {
    let mut head = [0u8; 16];
    cairn_engine::fsutil::open_nofollow(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .map(|_| &head == HEADER)
        .unwrap_or(false)
}

/// What the copy recorded about the database, for the manifest.
#[derive(Debug, Clone)]
pub struct CopyInfo {
    pub page_size: i64,
    pub page_count: i64,
    pub journal_mode: String,
    pub user_version: i64,
}

impl CopyInfo {
    pub fn record(&self, meta: &mut Map<String, Value>) {
        meta.insert("page_size".into(), self.page_size.into());
        meta.insert("page_count".into(), self.page_count.into());
        meta.insert("journal_mode".into(), self.journal_mode.clone().into());
        meta.insert("user_version".into(), self.user_version.into());
    }
}

/// Copies the live database `src` into the new file `dst` as one
/// consistent read snapshot. Writers in WAL mode keep writing meanwhile; in
/// rollback-journal mode they wait for the copy (their busy timeout). A
/// writer holding an exclusive lock longer than `busy_timeout` fails the copy.
pub fn online_copy(src: &Path, dst: &Path, busy_timeout: Duration) -> Result<CopyInfo, String> {
    let fail = |what: &str, e: rusqlite::Error| format!("{what} {}: {e}", src.display());
    crate::refuse_special(src)?;
    let source = open_source(src).map_err(|e| fail("open", e))?;
    source
        .busy_timeout(busy_timeout)
        .map_err(|e| fail("configure", e))?;
    let journal_mode: String = source
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .map_err(|e| fail("read journal_mode of", e))?;
    let user_version: i64 = source
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| fail("read user_version of", e))?;

    let mut dest = Connection::open(dst).map_err(|e| format!("create {}: {e}", dst.display()))?;
    // The destination is a private temp file that is synced once by the
    // caller: journaling and per-page syncs there only cost time.
    dest.pragma_update(None, "journal_mode", "OFF")
        .and_then(|_| dest.pragma_update(None, "synchronous", "OFF"))
        .map_err(|e| format!("configure {}: {e}", dst.display()))?;
    {
        let backup = Backup::new(&source, &mut dest).map_err(|e| fail("start backup of", e))?;
        let start = Instant::now();
        loop {
            // -1: every page in one step, i.e. inside one read transaction.
            match backup.step(-1).map_err(|e| fail("copy", e))? {
                StepResult::Done => break,
                StepResult::More => continue,
                StepResult::Busy | StepResult::Locked if start.elapsed() < busy_timeout => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                _ => {
                    return Err(format!(
                        "copy {}: the database stayed locked for over {}s (busy_timeout_seconds)",
                        src.display(),
                        busy_timeout.as_secs()
                    ))
                }
            }
        }
    }
    let page_size: i64 = dest
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .map_err(|e| format!("read {}: {e}", dst.display()))?;
    let page_count: i64 = dest
        .query_row("PRAGMA page_count", [], |r| r.get(0))
        .map_err(|e| format!("read {}: {e}", dst.display()))?;
    dest.close()
        .map_err(|(_, e)| format!("close {}: {e}", dst.display()))?;
    Ok(CopyInfo {
        page_size,
        page_count,
        journal_mode,
        user_version,
    })
}

/// Read-only first, so copying never writes to the live database; a WAL
/// database whose `-shm` cannot be created read-only falls back to a normal
/// connection (which reads only).
fn open_source(src: &Path) -> rusqlite::Result<Connection> {
    let ro = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    match Connection::open_with_flags(src, ro) {
        Ok(c) => match c.query_row("PRAGMA schema_version", [], |r| r.get::<_, i64>(0)) {
            Ok(_) => Ok(c),
            Err(_) => Connection::open_with_flags(
                src,
                OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            ),
        },
        Err(_) => Connection::open_with_flags(
            src,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        ),
    }
}
