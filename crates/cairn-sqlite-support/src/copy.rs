//! Online copies: one read transaction, through `sqlite_dbpage`
//! (`pages`) or the backup API.

use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use cairn_engine::checksum::Checksum;
use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};
use serde_json::{Map, Value};

use crate::LiveState;

/// The first 16 bytes of every SQLite database file.
pub const HEADER: &[u8; 16] = b"SQLite format 3\0";

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

/// What the copy recorded about the database, for the manifest, and the
/// copy's own length and SHA-256 (of the bytes written, for
/// `CaptureCtx::add_hashed_file`).
#[derive(Debug, Clone)]
pub struct CopyInfo {
    pub page_size: i64,
    pub page_count: i64,
    pub journal_mode: String,
    pub user_version: i64,
    pub size: u64,
    pub sha256: Checksum,
}

impl CopyInfo {
    pub fn record(&self, meta: &mut Map<String, Value>) {
        meta.insert("page_size".into(), self.page_size.into());
        meta.insert("page_count".into(), self.page_count.into());
        meta.insert("journal_mode".into(), self.journal_mode.clone().into());
        meta.insert("user_version".into(), self.user_version.into());
    }
}

/// Why an online copy failed, as far as a plug-in must tell situations
/// apart: the service holding its lock is a retry later, a source that is
/// not a healthy database is still worth its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyFailure {
    /// A writer held its lock past the busy timeout (SQLITE_BUSY/LOCKED).
    Busy,
    /// The source is not a database, or a corrupt one (SQLITE_NOTADB,
    /// SQLITE_CORRUPT).
    NotHealthy,
    Other,
    /// A signal asked the run to stop (`cairn_engine::cancel`), and the
    /// copy stopped at its next batch; the number is the signal's.
    Interrupted(i32),
}

/// An online copy that failed: the situation and what SQLite said.
#[derive(Debug, Clone)]
pub struct CopyError {
    pub failure: CopyFailure,
    pub message: String,
}

impl std::fmt::Display for CopyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<String> for CopyError {
    fn from(message: String) -> Self {
        CopyError {
            failure: CopyFailure::Other,
            message,
        }
    }
}

/// A read of the source that failed.
pub(crate) fn read_failed(src: &Path, e: &rusqlite::Error) -> CopyError {
    CopyError {
        failure: failure_of(e),
        message: format!("read {}: {}", src.display(), why(e)),
    }
}

/// A write of the copy that failed (a full disk under the repository).
pub(crate) fn write_failed(dst: &Path, e: &std::io::Error) -> CopyError {
    format!("write {}: {e}", dst.display()).into()
}

/// A backup's failure, naming both files: it may be the source's (a
/// read) or the copy's (a write; a full disk under the repository).
fn backup_failed(src: &Path, dst: &Path, e: &rusqlite::Error) -> CopyError {
    CopyError {
        failure: failure_of(e),
        message: format!("copy {} into {}: {}", src.display(), dst.display(), why(e)),
    }
}

/// What went wrong, in words an operator can act on. SQLite reports a
/// full disk as SQLITE_FULL ("database or disk is full"), and the text
/// rusqlite takes from a connection can be "not an error" when the error
/// was the other connection's (a backup has two); the code's own words
/// are used then.
fn why(e: &rusqlite::Error) -> String {
    match e {
        rusqlite::Error::SqliteFailure(code, _) if code.code == rusqlite::ErrorCode::DiskFull => {
            "no space left on the device (SQLITE_FULL)".to_owned()
        }
        rusqlite::Error::SqliteFailure(code, Some(msg)) if msg == "not an error" => {
            code.to_string()
        }
        _ => e.to_string(),
    }
}

fn failure_of(e: &rusqlite::Error) -> CopyFailure {
    use rusqlite::ErrorCode;
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => CopyFailure::Busy,
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => CopyFailure::NotHealthy,
        _ => CopyFailure::Other,
    }
}

/// Copies the live database `src` into the new file `dst` as one
/// consistent read snapshot, hashing it as it is written: page by page
/// through `sqlite_dbpage` (see `pages`), or, when this SQLite lacks it,
/// with the backup API and a read of the copy. Writers in WAL mode keep
/// writing meanwhile; in rollback-journal mode they wait for the copy
/// (their busy timeout). A writer holding an exclusive lock longer than
/// `busy_timeout` fails the copy.
///
/// The copy is left in rollback-journal mode (`journal_mode=DELETE`)
/// whatever the source's: a copy in WAL mode gets a `-wal` and a `-shm`
/// beside it from anyone who reads it with `sqlite3` and can write its
/// directory (the snapshot's owner), and a snapshot holding files its
/// manifest does not list fails validation. A reader of a rollback-mode
/// file writes nothing. The source's mode is what [`CopyInfo`] records,
/// for a restore to put back ([`restore_journal_mode`]).
pub fn online_copy(src: &Path, dst: &Path, busy_timeout: Duration) -> Result<CopyInfo, CopyError> {
    copy_with_hook(src, dst, busy_timeout, &mut || {})
}

/// [`online_copy`], also recording the live files' state
/// ([`LiveState::record`]) once the source is open — SQLite has created
/// any `-wal` a reader needs, so what this copy leaves behind is part of
/// the state — and before the copy's read transaction starts: a commit
/// racing the copy moves the state on, so the next snapshot copies again
/// rather than reuse a copy that lacks it. The state is `Err` when a file
/// could not be stat'ed (then nothing will be reused from this copy).
pub fn online_copy_with_state(
    src: &Path,
    dst: &Path,
    busy_timeout: Duration,
) -> Result<(CopyInfo, std::io::Result<(LiveState, std::fs::Metadata)>), CopyError> {
    let mut state = None;
    let info = copy_with_hook(src, dst, busy_timeout, &mut || {
        state = Some(LiveState::record(src));
    })?;
    let state = state.unwrap_or_else(|| Err(std::io::Error::other("the copy recorded no state")));
    Ok((info, state))
}

/// The online copy; `before_read` runs with the source open (its schema
/// read, so SQLite opened any `-wal`) and before the copy's one read
/// transaction begins.
fn copy_with_hook(
    src: &Path,
    dst: &Path,
    busy_timeout: Duration,
    before_read: &mut dyn FnMut(),
) -> Result<CopyInfo, CopyError> {
    let fail = |what: &str, e: rusqlite::Error| CopyError {
        failure: failure_of(&e),
        message: format!("{what} {}: {e}", src.display()),
    };
    crate::vfs::install();
    crate::refuse_special(src)?;
    let source = open_source(src).map_err(|e| fail("open", e))?;
    source
        .busy_timeout(busy_timeout)
        .map_err(|e| fail("configure", e))?;
    let journal_mode: String = source
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .map_err(|e| fail("read journal_mode of", e))?;

    if let Some(mut pages) = crate::pages::open(&source).map_err(|e| read_failed(src, &e))? {
        let out = cairn_engine::fsutil::create_new_private(dst)
            .map_err(|e| CopyError::from(e.to_string()))?;
        before_read();
        let written = crate::pages::copy(&source, &mut pages, src, out, dst)?;
        return Ok(CopyInfo {
            page_size: written.page_size,
            page_count: written.page_count,
            journal_mode,
            user_version: written.user_version,
            size: written.size,
            sha256: written.sha256,
        });
    }
    let user_version: i64 = source
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| fail("read user_version of", e))?;
    backup_copy(
        &source,
        src,
        dst,
        busy_timeout,
        before_read,
        journal_mode,
        user_version,
    )
}

/// The copy with the backup API, for an SQLite without `sqlite_dbpage`:
/// SQLite writes the copy, which is then read once for its SHA-256.
fn backup_copy(
    source: &Connection,
    src: &Path,
    dst: &Path,
    busy_timeout: Duration,
    before_read: &mut dyn FnMut(),
    journal_mode: String,
    user_version: i64,
) -> Result<CopyInfo, CopyError> {
    let mut dest =
        Connection::open(dst).map_err(|e| format!("create {}: {}", dst.display(), why(&e)))?;
    // The destination is a private temp file that is synced once by the
    // caller: journaling and per-page syncs there only cost time.
    dest.pragma_update(None, "journal_mode", "OFF")
        .and_then(|_| dest.pragma_update(None, "synchronous", "OFF"))
        .map_err(|e| format!("configure {}: {}", dst.display(), why(&e)))?;
    // The pragmas above ran (and ended) their own read transactions; the
    // backup's starts with its first step, after this.
    before_read();
    {
        let backup = Backup::new(source, &mut dest).map_err(|e| backup_failed(src, dst, &e))?;
        let start = Instant::now();
        loop {
            // -1: every page in one step, i.e. inside one read transaction.
            match backup.step(-1).map_err(|e| backup_failed(src, dst, &e))? {
                StepResult::Done => break,
                StepResult::More => continue,
                StepResult::Busy | StepResult::Locked if start.elapsed() < busy_timeout => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                _ => {
                    return Err(CopyError {
                        failure: CopyFailure::Busy,
                        message: format!(
                        "copy {}: the database stayed locked for over {}s (busy_timeout_seconds)",
                        src.display(),
                        busy_timeout.as_secs()
                    ),
                    })
                }
            }
        }
    }
    // The backup copied the source's header, WAL flag included; the next
    // read opens the copy in that mode, and leaving it checkpoints and
    // removes the copy's `-wal` and `-shm` and writes the rollback flag.
    let copy_mode: String = dest
        .query_row("PRAGMA journal_mode=DELETE", [], |r| r.get(0))
        .map_err(|e| format!("set journal_mode=DELETE on {}: {}", dst.display(), why(&e)))?;
    if !copy_mode.eq_ignore_ascii_case("delete") {
        return Err(format!(
            "set journal_mode=DELETE on {}: SQLite left it in mode {copy_mode}",
            dst.display()
        )
        .into());
    }
    let page_size: i64 = dest
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .map_err(|e| format!("read {}: {}", dst.display(), why(&e)))?;
    let page_count: i64 = dest
        .query_row("PRAGMA page_count", [], |r| r.get(0))
        .map_err(|e| format!("read {}: {}", dst.display(), why(&e)))?;
    dest.close()
        .map_err(|(_, e)| format!("close {}: {}", dst.display(), why(&e)))?;
    // Counted as it is read for its hash.
    cairn_engine::progress::grow(std::fs::metadata(dst).map_or(0, |m| m.len()));
    let (size, sha256) =
        cairn_engine::fsutil::hash_file(dst).map_err(|e| CopyError::from(e.to_string()))?;
    Ok(CopyInfo {
        page_size,
        page_count,
        journal_mode,
        user_version,
        size,
        sha256,
    })
}

/// The journal mode a database file keeps by itself, from its header
/// (bytes 18 and 19): `wal`, or `delete` for a rollback-journal file (the
/// rollback modes are chosen per connection; only WAL is in the file).
/// `None` when `path` is not a regular file with an SQLite header.
pub fn persistent_journal_mode(path: &Path) -> Option<&'static str> {
    let mut head = [0u8; 20];
    cairn_engine::fsutil::open_nofollow(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .ok()?;
    if &head[..16] != HEADER {
        return None;
    }
    match (head[18], head[19]) {
        (2, 2) => Some("wal"),
        (1, 1) => Some("delete"),
        _ => None,
    }
}

/// Puts the journal mode a snapshot recorded back on a database just
/// restored from it (the snapshot holds it in rollback-journal mode, see
/// [`online_copy`]). Only `wal` needs putting back: the other modes are
/// chosen by each connection. Idempotent: a database already in WAL mode
/// is not written. Switching writes the header and creates a `-wal` and a
/// `-shm`, which SQLite removes when the connection closes; the file's
/// mtime and its directory's are then set back to what the restore gave
/// them.
pub fn restore_journal_mode(db: &Path, recorded: &str) -> Result<(), String> {
    if !recorded.eq_ignore_ascii_case("wal") || persistent_journal_mode(db) == Some("wal") {
        return Ok(());
    }
    crate::vfs::install();
    crate::refuse_special(db)?;
    let dir = db.parent().filter(|d| !d.as_os_str().is_empty());
    let mtimes = [Some(db), dir].map(|p| {
        p.and_then(|p| {
            std::fs::metadata(p)
                .and_then(|m| m.modified())
                .ok()
                .map(|t| (p, t))
        })
    });
    let fail = |e: rusqlite::Error| format!("set journal_mode=WAL on {}: {e}", db.display());
    let conn = Connection::open_with_flags(
        crate::library_path(db),
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_NOFOLLOW,
    )
    .map_err(fail)?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .map_err(fail)?;
    conn.close().map_err(|(_, e)| fail(e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(format!(
            "set journal_mode=WAL on {}: SQLite left it in mode {mode}",
            db.display()
        ));
    }
    let [file_mtime, dir_mtime] = mtimes;
    // Best effort: the bytes are what matters, and they are in.
    if let Some((path, mtime)) = file_mtime {
        let _ = cairn_engine::fsutil::open_nofollow(path).and_then(|f| f.set_modified(mtime));
    }
    if let Some((path, mtime)) = dir_mtime {
        use std::os::unix::fs::OpenOptionsExt;
        let _ = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
            .open(path)
            .and_then(|f| f.set_modified(mtime));
    }
    Ok(())
}

/// Read-only first, so copying never writes to the live database; a WAL
/// database whose `-shm` cannot be created read-only falls back to a normal
/// connection (which reads only).
fn open_source(src: &Path) -> rusqlite::Result<Connection> {
    let src = &crate::library_path(src);
    let ro = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_NOFOLLOW;
    match Connection::open_with_flags(src, ro) {
        Ok(c) => match c.query_row("PRAGMA schema_version", [], |r| r.get::<_, i64>(0)) {
            Ok(_) => Ok(c),
            Err(_) => Connection::open_with_flags(
                src,
                OpenFlags::SQLITE_OPEN_READ_WRITE
                    | OpenFlags::SQLITE_OPEN_NO_MUTEX
                    | OpenFlags::SQLITE_OPEN_NOFOLLOW,
            ),
        },
        Err(_) => Connection::open_with_flags(
            src,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
                | OpenFlags::SQLITE_OPEN_NOFOLLOW,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn sidecars(db: &Path) -> Vec<String> {
        crate::SIDECAR_SUFFIXES
            .iter()
            .map(|s| format!("{}{s}", db.display()))
            .filter(|p| Path::new(p).exists())
            .collect()
    }

    #[test]
    fn a_wal_database_is_copied_in_rollback_mode_and_put_back_in_wal() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("live.db");
        let live = Connection::open(&src).unwrap();
        live.execute_batch(
            "PRAGMA journal_mode=WAL; CREATE TABLE t(x); INSERT INTO t VALUES (1), (2);",
        )
        .unwrap();
        // `live` stays open: its WAL holds the rows, not yet checkpointed.
        let dst = dir.path().join("copy.db");
        let info = online_copy(&src, &dst, Duration::from_secs(5)).unwrap();
        assert_eq!(info.journal_mode, "wal", "the source's mode is recorded");
        assert_eq!(persistent_journal_mode(&dst), Some("delete"));
        assert!(sidecars(&dst).is_empty(), "{:?}", sidecars(&dst));
        crate::integrity_check(&dst, cairn_engine::Depth::Deep).unwrap();
        assert_eq!(crate::row_counts(&dst).unwrap(), vec![("t".to_owned(), 2)]);

        let old = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        std::fs::File::open(&dst)
            .unwrap()
            .set_modified(old)
            .unwrap();
        restore_journal_mode(&dst, &info.journal_mode).unwrap();
        assert_eq!(persistent_journal_mode(&dst), Some("wal"));
        assert!(sidecars(&dst).is_empty(), "{:?}", sidecars(&dst));
        assert_eq!(std::fs::metadata(&dst).unwrap().modified().unwrap(), old);
        assert_eq!(crate::row_counts(&dst).unwrap(), vec![("t".to_owned(), 2)]);
        // Again: nothing to do, nothing written.
        let bytes = std::fs::read(&dst).unwrap();
        restore_journal_mode(&dst, "wal").unwrap();
        assert_eq!(std::fs::read(&dst).unwrap(), bytes);
        drop(live);
    }

    /// A WAL database with rows still in its `-wal` (the writer stays
    /// open), on more pages than one batch of the page copy.
    fn live_wal_database(dir: &Path) -> (PathBuf, Connection) {
        let src = dir.join("live.db");
        let live = Connection::open(&src).unwrap();
        live.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0; PRAGMA user_version=7;
             CREATE TABLE t(id INTEGER PRIMARY KEY, pad BLOB);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 3000)
             INSERT INTO t SELECT i, randomblob(700) FROM n;",
        )
        .unwrap();
        (src, live)
    }

    fn rows(db: &Path) -> Vec<(i64, Vec<u8>)> {
        let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        let mut stmt = conn.prepare("SELECT id, pad FROM t ORDER BY id").unwrap();
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<Vec<_>>>()
            .unwrap();
        rows
    }

    #[test]
    fn this_build_copies_pages_through_sqlite_dbpage() {
        // Without it every copy silently takes the slower backup path:
        // the workspace's .cargo/config.toml builds SQLite with it.
        let conn = Connection::open_in_memory().unwrap();
        assert!(
            matches!(crate::pages::open(&conn), Ok(Some(_))),
            "SQLite was built without SQLITE_ENABLE_DBPAGE_VTAB"
        );
    }

    #[test]
    fn the_copy_is_hashed_as_written_and_holds_every_committed_row() {
        let dir = tempfile::tempdir().unwrap();
        let (src, live) = live_wal_database(dir.path());
        let wal_len = std::fs::metadata(format!("{}-wal", src.display()))
            .unwrap()
            .len();
        assert!(wal_len > 2 << 20, "the rows are in the -wal: {wal_len}");
        let dst = dir.path().join("copy.db");
        let info = online_copy(&src, &dst, Duration::from_secs(5)).unwrap();

        let bytes = std::fs::read(&dst).unwrap();
        assert_eq!(info.size, bytes.len() as u64);
        assert_eq!(info.sha256, Checksum::of(&bytes));
        assert_eq!(info.size, (info.page_size * info.page_count) as u64);
        assert_eq!(persistent_journal_mode(&dst), Some("delete"));
        assert_eq!(
            u32::from_be_bytes(bytes[28..32].try_into().unwrap()) as i64,
            info.page_count
        );
        // The header's user_version (offset 60) is the one recorded.
        assert_eq!(info.user_version, 7);
        assert_eq!(bytes[60..64], 7u32.to_be_bytes());
        crate::integrity_check(&dst, cairn_engine::Depth::Deep).unwrap();
        assert!(sidecars(&dst).is_empty(), "{:?}", sidecars(&dst));
        let copied = rows(&dst);
        assert_eq!(copied.len(), 3000);
        assert_eq!(copied, rows(&src));
        drop(live);
    }

    #[test]
    fn the_smallest_and_largest_page_sizes_and_an_empty_database_copy_whole() {
        let dir = tempfile::tempdir().unwrap();
        for page_size in [512, 65536] {
            let src = dir.path().join(format!("live-{page_size}.db"));
            let live = Connection::open(&src).unwrap();
            live.execute_batch(&format!(
                "PRAGMA page_size={page_size}; PRAGMA journal_mode=WAL;
                 CREATE TABLE t(id INTEGER PRIMARY KEY, pad BLOB);
                 WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 500)
                 INSERT INTO t SELECT i, randomblob(900) FROM n;"
            ))
            .unwrap();
            let dst = dir.path().join(format!("copy-{page_size}.db"));
            let info = online_copy(&src, &dst, Duration::from_secs(5)).unwrap();
            assert_eq!(info.page_size, page_size);
            let bytes = std::fs::read(&dst).unwrap();
            assert_eq!(info.sha256, Checksum::of(&bytes), "page size {page_size}");
            assert_eq!(bytes.len() as i64, page_size * info.page_count);
            crate::integrity_check(&dst, cairn_engine::Depth::Deep).unwrap();
            assert_eq!(rows(&dst), rows(&src), "page size {page_size}");
            drop(live);
        }

        // A file SQLite opens as a database of no pages.
        let src = dir.path().join("empty.db");
        std::fs::write(&src, b"").unwrap();
        let dst = dir.path().join("empty-copy.db");
        let info = online_copy(&src, &dst, Duration::from_secs(5)).unwrap();
        assert_eq!((info.page_count, info.size), (0, 0));
        assert_eq!(info.sha256, Checksum::of(b""));
        assert_eq!(std::fs::read(&dst).unwrap(), b"");
    }

    /// The database belongs to the service's user, who can write anything
    /// into it, including a schema row naming a view `sqlite_dbpage`, which
    /// a plain `FROM sqlite_dbpage` would read instead of the pages: the
    /// copy would then be whatever the view makes up. The copy must hold
    /// the database's own pages.
    #[test]
    fn a_view_named_sqlite_dbpage_cannot_stand_in_for_the_pages() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("live.db");
        let live = Connection::open(&src).unwrap();
        live.execute_batch(
            "CREATE TABLE t(id INTEGER PRIMARY KEY, pad BLOB);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 50)
             INSERT INTO t SELECT i, randomblob(300) FROM n;",
        )
        .unwrap();
        let pages: i64 = live
            .query_row("PRAGMA page_count", [], |r| r.get(0))
            .unwrap();
        // As many made-up pages as the database has, in order, all zeros.
        let view = format!(
            "CREATE VIEW sqlite_dbpage AS WITH RECURSIVE n(pgno) AS \
             (SELECT 1 UNION ALL SELECT pgno + 1 FROM n WHERE pgno < {pages}) \
             SELECT pgno, zeroblob(4096) AS data FROM n"
        );
        live.execute_batch("PRAGMA writable_schema=ON;").unwrap();
        live.execute(
            "INSERT INTO sqlite_master(type, name, tbl_name, rootpage, sql) \
             VALUES ('view', 'sqlite_dbpage', 'sqlite_dbpage', 0, ?1)",
            [&view],
        )
        .unwrap();
        drop(live);
        let live = Connection::open(&src).unwrap();
        let fake: i64 = live
            .query_row(
                "SELECT count(*) FROM sqlite_dbpage WHERE data = zeroblob(4096)",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(fake, pages, "the view stands in for the table by that name");
        drop(live);

        let dst = dir.path().join("copy.db");
        let info = online_copy(&src, &dst, Duration::from_secs(5)).unwrap();
        let bytes = std::fs::read(&dst).unwrap();
        assert_eq!(info.sha256, Checksum::of(&bytes));
        assert!(
            bytes.iter().any(|&b| b != 0),
            "the copy is the view's zeros"
        );
        assert_eq!(rows(&dst).len(), 50);
        assert_eq!(rows(&dst), rows(&src));
    }

    /// Copies `db` and its `-wal` (with `live` still open, so the `-wal`
    /// holds the commits) to `dir`, then rewrites that `-wal` as the
    /// service's user could: page 1 and every commit frame claim
    /// `pages` pages, the frames' checksums recomputed so SQLite accepts
    /// them. Returns the copied database's path.
    fn with_a_wal_claiming(db: &Path, dir: &Path, pages: u32) -> PathBuf {
        let out = dir.join("claimed.db");
        std::fs::copy(db, &out).unwrap();
        let wal_path = dir.join("claimed.db-wal");
        std::fs::copy(format!("{}-wal", db.display()), &wal_path).unwrap();
        let mut wal = std::fs::read(&wal_path).unwrap();
        let be = |b: &[u8]| u32::from_be_bytes(b[..4].try_into().unwrap());
        let page_size = be(&wal[8..]) as usize;
        // Magic 0x377f0682: checksums over little-endian words.
        let little = be(&wal[0..]) & 1 == 0;
        let word = |b: &[u8]| {
            let b: [u8; 4] = b[..4].try_into().unwrap();
            if little {
                u32::from_le_bytes(b)
            } else {
                u32::from_be_bytes(b)
            }
        };
        let frame = 24 + page_size;
        let (mut s1, mut s2) = (be(&wal[24..]), be(&wal[28..]));
        let mut offset = 32;
        while offset + frame <= wal.len() {
            let f = &mut wal[offset..offset + frame];
            if be(&f[0..]) == 1 {
                f[24 + 28..24 + 32].copy_from_slice(&pages.to_be_bytes());
            }
            if be(&f[4..]) != 0 {
                f[4..8].copy_from_slice(&pages.to_be_bytes());
            }
            let summed: Vec<u8> = f[..8].iter().chain(&f[24..]).copied().collect();
            for pair in summed.chunks(8) {
                s1 = s1.wrapping_add(word(&pair[0..]).wrapping_add(s2));
                s2 = s2.wrapping_add(word(&pair[4..]).wrapping_add(s1));
            }
            f[16..20].copy_from_slice(&s1.to_be_bytes());
            f[20..24].copy_from_slice(&s2.to_be_bytes());
            offset += frame;
        }
        std::fs::write(&wal_path, wal).unwrap();
        out
    }

    /// A few KiB of database and `-wal` that claim 256 MiB: the copy has
    /// the claimed length and digest, but takes no more disk than the
    /// pages that hold data (the rest is holes), so a claim of terabytes
    /// cannot fill the repository's disk.
    #[test]
    fn a_claimed_size_beyond_the_files_costs_no_disk() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("live.db");
        let live = Connection::open(&src).unwrap();
        live.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0;
             CREATE TABLE t(id INTEGER PRIMARY KEY, pad BLOB); INSERT INTO t VALUES (1, x'01');",
        )
        .unwrap();
        let claimed = with_a_wal_claiming(&src, dir.path(), 65536);
        drop(live);
        let files: u64 = [claimed.clone(), dir.path().join("claimed.db-wal")]
            .iter()
            .map(|p| std::fs::metadata(p).unwrap().len())
            .sum();
        assert!(files < 64 << 10, "{files}");
        let seen: i64 = Connection::open(&claimed)
            .unwrap()
            .query_row("PRAGMA page_count", [], |r| r.get(0))
            .unwrap();
        assert_eq!(seen, 65536, "SQLite takes the claim");

        let dst = dir.path().join("copy.db");
        let info = online_copy(&claimed, &dst, Duration::from_secs(5)).unwrap();
        assert_eq!(info.size, 65536 * 4096);
        let meta = std::fs::metadata(&dst).unwrap();
        assert_eq!(meta.len(), info.size);
        use std::os::unix::fs::MetadataExt;
        assert!(
            meta.blocks() * 512 < 1 << 20,
            "the copy takes {} bytes of disk",
            meta.blocks() * 512
        );
        assert_eq!(
            cairn_engine::fsutil::hash_file(&dst).unwrap(),
            (info.size, info.sha256)
        );
        let ids: Vec<i64> = rows(&dst).into_iter().map(|(id, _)| id).collect();
        assert_eq!(ids, vec![1], "the data pages are in, where they belong");
    }

    #[test]
    fn the_page_copy_and_the_backup_copy_differ_only_in_header_counters() {
        let dir = tempfile::tempdir().unwrap();
        let (src, live) = live_wal_database(dir.path());
        let paged = dir.path().join("paged.db");
        online_copy(&src, &paged, Duration::from_secs(5)).unwrap();

        let backed = dir.path().join("backed.db");
        let source = open_source(&src).unwrap();
        let info = backup_copy(
            &source,
            &src,
            &backed,
            Duration::from_secs(5),
            &mut || {},
            "wal".into(),
            0,
        )
        .unwrap();
        let backed_bytes = std::fs::read(&backed).unwrap();
        assert_eq!(
            info.sha256,
            Checksum::of(&backed_bytes),
            "the fallback hashes too"
        );
        assert_eq!(persistent_journal_mode(&backed), Some("delete"));

        let paged_bytes = std::fs::read(&paged).unwrap();
        assert_eq!(paged_bytes.len(), backed_bytes.len());
        let differing: Vec<usize> = (0..paged_bytes.len())
            .filter(|&i| paged_bytes[i] != backed_bytes[i])
            .collect();
        // The file change counter and the version-valid-for number (and
        // the SQLite version that wrote it), which the backup's own
        // commit moves: nothing of the content.
        let counters = |i: &usize| (24..28).contains(i) || (92..100).contains(i);
        assert!(differing.iter().all(counters), "{differing:?}");
        drop(live);
    }

    #[test]
    fn a_rollback_database_stays_in_rollback_mode() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("live.db");
        Connection::open(&src)
            .unwrap()
            .execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1);")
            .unwrap();
        let dst = dir.path().join("copy.db");
        let info = online_copy(&src, &dst, Duration::from_secs(5)).unwrap();
        assert_eq!(info.journal_mode, "delete");
        assert_eq!(persistent_journal_mode(&dst), Some("delete"));
        let bytes = std::fs::read(&dst).unwrap();
        restore_journal_mode(&dst, &info.journal_mode).unwrap();
        assert_eq!(std::fs::read(&dst).unwrap(), bytes);
        assert!(sidecars(&dst).is_empty());
    }
}
