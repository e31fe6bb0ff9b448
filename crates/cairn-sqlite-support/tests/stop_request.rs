//! A stop request (SIGTERM, through `cairn_engine::cancel`) interrupts the
//! long SQLite work Cairn does on a copy: the integrity check and the
//! online copy. Its own test binary: the stop flag is process-wide, and
//! once set it would interrupt every other test's copies and checks.
#![allow(clippy::unwrap_used)] // a panic is how a test fails

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use cairn_engine::Depth;
use cairn_sqlite_support::{integrity_check, online_copy, CopyFailure};
use rusqlite::Connection;

/// A database with enough pages (about 8 MiB of rows and an index) that
/// its check passes the stop flag's polling interval many times.
fn database(path: &Path) {
    Connection::open(path)
        .unwrap()
        .execute_batch(
            "CREATE TABLE t(id INTEGER PRIMARY KEY, pad BLOB, k TEXT);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 40000)
             INSERT INTO t SELECT i, randomblob(150), hex(randomblob(8)) FROM n;
             CREATE INDEX t_k ON t(k);",
        )
        .unwrap();
}

#[test]
fn a_stop_request_interrupts_the_check_and_the_copy() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("live.db");
    database(&db);
    // Before any signal: the check passes, the copy is made.
    integrity_check(&db, Depth::Deep).unwrap();
    online_copy(&db, &dir.path().join("before.db"), Duration::from_secs(5)).unwrap();

    cairn_engine::cancel::install().unwrap();
    let sent = Command::new("kill")
        .args(["-TERM", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let start = Instant::now();
    while cairn_engine::cancel::requested().is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "SIGTERM never arrived"
        );
        std::thread::sleep(Duration::from_millis(5));
    }

    let err = integrity_check(&db, Depth::Deep).unwrap_err();
    assert!(err.contains("interrupted"), "{err}");
    let err = online_copy(&db, &dir.path().join("after.db"), Duration::from_secs(5)).unwrap_err();
    assert_eq!(
        err.failure,
        CopyFailure::Interrupted(libc::SIGTERM),
        "{}",
        err.message
    );
    assert!(err.message.contains("SIGTERM"), "{}", err.message);
}
