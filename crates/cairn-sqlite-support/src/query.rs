//! One operator-written query (a drill check's `sql`), run so that it can
//! change nothing: on a snapshot's restored copy opened `immutable=1`
//! read-only, or on the live database opened read-only (never `immutable`:
//! the service may be writing, and SQLite must see its locks and WAL).
//! Either way `PRAGMA query_only` is on, only one statement is accepted,
//! SQLite must call it read-only, `ATTACH` is refused (an attached file
//! would be opened with its own rules), and a query still running after
//! `timeout` is interrupted.

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};

/// Which file a query reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A copy Cairn owns (a drill's restored file).
    Copy,
    /// The live database, which its service may be writing.
    Live,
}

/// The first column of the first row, as text: an integer in decimal, a
/// real as SQLite prints it, text as is, `NULL`, a blob as `x'…'` hex;
/// `(no rows)` when there is none. `Err` says what went wrong.
pub fn query_value(
    path: &Path,
    sql: &str,
    target: Target,
    timeout: Duration,
) -> Result<String, String> {
    let conn = match target {
        Target::Copy => crate::integrity::open_immutable(path)?,
        Target::Live => open_live_read_only(path)?,
    };
    conn.execute_batch("PRAGMA query_only = ON")
        .map_err(|e| format!("set query_only: {e}"))?;
    // SQLite would compile the first statement and ignore the rest: say
    // so instead (a `;` inside a string literal is refused too).
    let sql = sql.trim().trim_end_matches(';').trim_end();
    if sql.contains(';') {
        return Err("one statement only (no `;` but a final one)".into());
    }
    let mut stmt = conn.prepare(sql).map_err(|e| format!("prepare: {e}"))?;
    if !stmt.readonly()
        || sql
            .trim_start()
            .get(..6)
            .is_some_and(|w| w.eq_ignore_ascii_case("attach"))
    {
        return Err("not a read-only query; drill checks may only read".into());
    }
    // A watchdog interrupts a runaway query (a recursive CTE without end).
    let interrupt = conn.get_interrupt_handle();
    let (done, finished) = mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if finished.recv_timeout(timeout) == Err(mpsc::RecvTimeoutError::Timeout) {
            interrupt.interrupt();
        }
    });
    let result = (|| {
        let mut rows = stmt.query([]).map_err(|e| format!("run: {e}"))?;
        let Some(row) = rows.next().map_err(|e| format!("run: {e}"))? else {
            return Ok("(no rows)".to_owned());
        };
        let value = row
            .get_ref(0)
            .map_err(|e| format!("read the first column: {e}"))?;
        Ok(match value {
            ValueRef::Null => "NULL".to_owned(),
            ValueRef::Integer(n) => n.to_string(),
            ValueRef::Real(x) => x.to_string(),
            ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
            ValueRef::Blob(b) => {
                let hex: String = b.iter().take(64).map(|x| format!("{x:02x}")).collect();
                format!("x'{hex}{}'", if b.len() > 64 { "…" } else { "" })
            }
        })
    })();
    let _ = done.send(());
    let _ = watchdog.join();
    result.map_err(|e: String| {
        if e.contains("interrupted") {
            format!("still running after {}s; interrupted", timeout.as_secs())
        } else {
            e
        }
    })
}

/// The live database, read-only, refusing a symlink or a FIFO where the
/// database or a sidecar is (the same rules as every open of a live file).
fn open_live_read_only(path: &Path) -> Result<Connection, String> {
    crate::refuse_special(path)?;
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_NOFOLLOW;
    let conn = Connection::open_with_flags(crate::library_path(path), flags)
        .map_err(|e| format!("cannot open the live database read-only: {e}"))?;
    conn.busy_timeout(Duration::from_secs(5))
        .map_err(|e| format!("set busy timeout: {e}"))?;
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_read_and_writes_refused() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("a.db");
        let conn = Connection::open(&db).unwrap();
        conn.execute_batch(
            "CREATE TABLE t(x); INSERT INTO t VALUES (1), (2), (NULL); CREATE TABLE b(y); INSERT INTO b VALUES (x'00ff');",
        )
        .unwrap();
        drop(conn);
        let t = Duration::from_secs(5);
        for target in [Target::Copy, Target::Live] {
            assert_eq!(
                query_value(&db, "SELECT sum(x) FROM t", target, t).unwrap(),
                "3"
            );
            assert_eq!(
                query_value(&db, "SELECT avg(x) FROM t", target, t).unwrap(),
                "1.5"
            );
            assert_eq!(
                query_value(&db, "SELECT y FROM b", target, t).unwrap(),
                "x'00ff'"
            );
            assert_eq!(
                query_value(&db, "SELECT x FROM t WHERE x > 5", target, t).unwrap(),
                "(no rows)"
            );
            for bad in [
                "DELETE FROM t",
                "UPDATE t SET x = 0",
                "SELECT 1; DELETE FROM t",
                "ATTACH 'other.db' AS o",
                "PRAGMA journal_mode = DELETE",
                "CREATE TABLE z(q)",
            ] {
                assert!(query_value(&db, bad, target, t).is_err(), "{bad}");
            }
        }
        let conn = Connection::open(&db).unwrap();
        let n: i64 = conn
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 3);
        assert!(!dir.path().join("other.db").exists());
    }

    #[test]
    fn a_runaway_query_is_interrupted() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("a.db");
        Connection::open(&db)
            .unwrap()
            .execute_batch("CREATE TABLE t(x)")
            .unwrap();
        let endless =
            "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c) SELECT max(n) FROM c";
        let err = query_value(&db, endless, Target::Copy, Duration::from_secs(1)).unwrap_err();
        assert!(err.contains("interrupted"), "{err}");
    }
}
