//! Proving a live database unchanged since the last snapshot, so its
//! copy can be reused instead of made again.
//!
//! A database's content is a function of the bytes of its file and of its
//! `-wal` (a WAL database: committed frames the file does not hold yet) or
//! `-journal` (a rollback database: a hot journal is rolled back on the
//! next open). The `-shm` is an index SQLite rebuilds from the `-wal`, and
//! readers write it; it does not count. Every write to those files moves
//! their ctime, which only the kernel sets (the file's owner can set the
//! mtime with `utimes`, not the ctime), and a file deleted and created
//! again is another inode or another ctime.
//!
//! So [`LiveState::record`] stats the database, `-wal` and `-journal` —
//! device, inode, size, mtime and ctime in nanoseconds, or "absent" —
//! **before** the online copy's read transaction starts (with the source
//! already open, so a `-wal` SQLite creates for the reader is in the state:
//! `online_copy_with_state`). The next snapshot stats the files before it
//! opens anything and compares. Whatever the copy
//! then reads is the content as of a moment *after* those stats. If the
//! next snapshot finds exactly the same states, nothing wrote any of the
//! files between the two stats, so the content now is the content the
//! copy read: the copy is reused. A commit racing the copy (after the
//! stats, before or during the read) moves a ctime, so the next snapshot
//! sees another state and copies again: a needless copy, never a stale
//! reuse. Stats taken after the copy would have it the other way round.
//!
//! Timestamps are coarse (a kernel tick; a second or two on some
//! filesystems): a write in the same tick as the stat may leave the
//! timestamps as they were. Like git's "racily clean" index entries, a
//! state whose mtime or ctime is not at least [`RACY_MARGIN_NS`] older
//! than the moment it was recorded (the clock read *before* the stats) is
//! marked racy, and a racy state never allows a reuse. A write after the
//! stats then gets a timestamp of at least the stat's moment less one
//! granularity, which a non-racy state's timestamps are below. An empty
//! file is never racy: no write can give it content and keep its size.
//!
//! What this does not cover: root changing the clock or writing the file
//! behind the kernel's back (a block device), a filesystem whose ctime
//! does not move on write. Root is trusted; the others are not where a
//! live database belongs.

use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use serde_json::{json, Map, Value};

/// How much older than the moment it was recorded a timestamp must be for
/// the state not to be racy: the coarsest common timestamp granularity
/// (FAT's two seconds; ext3's and many network filesystems' one), plus the
/// kernel's coarse clock lag, rounded up. The engine's margin for every
/// file it reuses, so the two cannot drift apart.
pub const RACY_MARGIN_NS: i64 = cairn_engine::capture::RACY_MARGIN_NS;

/// The manifest metadata key the state is recorded under.
pub const LIVE_STATE_KEY: &str = "live_state";

/// One file's identity and timestamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileState {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
}

impl FileState {
    pub fn of(meta: &Metadata) -> FileState {
        let ns = |s: i64, n: i64| s.saturating_mul(1_000_000_000).saturating_add(n);
        FileState {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.len(),
            mtime_ns: ns(meta.mtime(), meta.mtime_nsec()),
            ctime_ns: ns(meta.ctime(), meta.ctime_nsec()),
        }
    }

    fn to_json(self) -> Value {
        json!({
            "dev": self.dev,
            "ino": self.ino,
            "size": self.size,
            "mtime_ns": self.mtime_ns,
            "ctime_ns": self.ctime_ns,
        })
    }

    fn from_json(v: &Value) -> Option<FileState> {
        Some(FileState {
            dev: v.get("dev")?.as_u64()?,
            ino: v.get("ino")?.as_u64()?,
            size: v.get("size")?.as_u64()?,
            mtime_ns: v.get("mtime_ns")?.as_i64()?,
            ctime_ns: v.get("ctime_ns")?.as_i64()?,
        })
    }

    /// Whether a write after `moment_ns` is bound to change this state.
    /// An empty file always is: any write that gives it bytes changes its
    /// size, whatever the timestamps (this covers the empty `-wal` SQLite
    /// creates for Cairn's own reader just before the state is recorded).
    fn settled_before(&self, moment_ns: i64) -> bool {
        cairn_engine::capture::settled_before(self.size, self.mtime_ns, self.ctime_ns, moment_ns)
    }
}

/// The database's files as recorded before a copy (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveState {
    pub db: FileState,
    /// `None`: no `-wal`.
    pub wal: Option<FileState>,
    /// `None`: no `-journal`.
    pub journal: Option<FileState>,
    /// The clock when the files were about to be stat'ed.
    pub recorded_at_ns: i64,
    /// Some timestamp was too recent to tell a later write from it, or a
    /// sidecar was not a regular file: this state proves nothing.
    pub racy: bool,
}

impl LiveState {
    /// Stats `db` and its sidecars now; also returns the database file's
    /// own metadata (the manifest entry's). Call it before the copy's read
    /// transaction starts.
    pub fn record(db: &Path) -> std::io::Result<(LiveState, Metadata)> {
        // The clock first: every stat below happens after this moment.
        let recorded_at_ns = cairn_engine::fsutil::now_ns();
        let meta = std::fs::symlink_metadata(db)?;
        let mut regular = meta.is_file();
        let mut sidecar =
            |suffix: &str| match std::fs::symlink_metadata(crate::live::sidecar(db, suffix)) {
                Ok(m) => {
                    regular &= m.is_file();
                    Ok(Some(FileState::of(&m)))
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e),
            };
        let wal = sidecar("-wal")?;
        let journal = sidecar("-journal")?;
        let db_state = FileState::of(&meta);
        let settled = [Some(db_state), wal, journal]
            .iter()
            .flatten()
            .all(|f| f.settled_before(recorded_at_ns));
        Ok((
            LiveState {
                db: db_state,
                wal,
                journal,
                recorded_at_ns,
                racy: !(settled && regular),
            },
            meta,
        ))
    }

    /// Whether the database's content now (this state) is provably what
    /// it was when `earlier` was recorded: same files, same states, and
    /// `earlier` not racy.
    pub fn unchanged_since(&self, earlier: &LiveState) -> bool {
        !earlier.racy
            && self.db == earlier.db
            && self.wal == earlier.wal
            && self.journal == earlier.journal
    }

    pub fn to_json(&self) -> Value {
        json!({
            "db": self.db.to_json(),
            "wal": self.wal.map(FileState::to_json),
            "journal": self.journal.map(FileState::to_json),
            "recorded_at_ns": self.recorded_at_ns,
            "racy": self.racy,
        })
    }

    /// The state a snapshot recorded; `None` when absent or not readable
    /// (then nothing is reused).
    pub fn from_json(v: &Value) -> Option<LiveState> {
        let sidecar = |key: &str| match v.get(key)? {
            Value::Null => Some(None),
            other => FileState::from_json(other).map(Some),
        };
        Some(LiveState {
            db: FileState::from_json(v.get("db")?)?,
            wal: sidecar("wal")?,
            journal: sidecar("journal")?,
            recorded_at_ns: v.get("recorded_at_ns")?.as_i64()?,
            racy: v.get("racy")?.as_bool()?,
        })
    }

    /// The state a parent snapshot recorded in its store metadata.
    pub fn recorded_in(metadata: &Map<String, Value>) -> Option<LiveState> {
        LiveState::from_json(metadata.get(LIVE_STATE_KEY)?)
    }

    pub fn record_into(&self, metadata: &mut Map<String, Value>) {
        metadata.insert(LIVE_STATE_KEY.into(), self.to_json());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    fn set_times_back(path: &Path, secs: u64) {
        let old = SystemTime::now() - Duration::from_secs(secs);
        std::fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(old)
            .unwrap();
    }

    #[test]
    fn a_just_written_database_is_racy_and_proves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("a.db");
        std::fs::write(&db, b"x").unwrap();
        let (state, _) = LiveState::record(&db).unwrap();
        assert!(state.racy, "{state:?}");
        let (again, _) = LiveState::record(&db).unwrap();
        assert!(
            !again.unchanged_since(&state),
            "a racy state allows no reuse"
        );
    }

    #[test]
    fn an_old_mtime_set_by_the_owner_does_not_hide_a_write() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("a.db");
        std::fs::write(&db, b"x").unwrap();
        // utimes moves the mtime back, but the ctime is now: still racy.
        set_times_back(&db, 3600);
        let (state, _) = LiveState::record(&db).unwrap();
        assert!(state.db.mtime_ns < state.recorded_at_ns - RACY_MARGIN_NS);
        assert!(state.racy, "the ctime is recent: {state:?}");
    }

    #[test]
    fn states_round_trip_and_sidecars_count() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("a.db");
        std::fs::write(&db, b"x").unwrap();
        let (mut state, _) = LiveState::record(&db).unwrap();
        assert_eq!(state.wal, None);
        assert_eq!(LiveState::from_json(&state.to_json()), Some(state.clone()));
        // Pretend it was recorded long after the write.
        state.recorded_at_ns += 10 * RACY_MARGIN_NS;
        state.racy = false;
        let (same, _) = LiveState::record(&db).unwrap();
        assert!(same.unchanged_since(&state));
        // A -wal appears: another state. A -shm does not count.
        std::fs::write(dir.path().join("a.db-shm"), b"index").unwrap();
        let (with_shm, _) = LiveState::record(&db).unwrap();
        assert!(with_shm.unchanged_since(&state));
        std::fs::write(dir.path().join("a.db-wal"), b"").unwrap();
        let (with_wal, _) = LiveState::record(&db).unwrap();
        assert!(!with_wal.unchanged_since(&state));
        // A symlink where the -wal belongs: the state proves nothing.
        std::fs::remove_file(dir.path().join("a.db-wal")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("a.db-wal")).unwrap();
        assert!(LiveState::record(&db).unwrap().0.racy);
    }
}
