//! `PRAGMA integrity_check` on a file Cairn owns (a snapshot or staged copy,
//! or a just-restored database no service has open yet).

use std::path::Path;

use cairn_engine::Depth;
use rusqlite::{Connection, OpenFlags};

pub const INTEGRITY_FAILED: &str = "sqlite_integrity_failed";

/// `Ok(())` when the check says `ok`; otherwise what it (or opening) said.
/// The file is opened `immutable=1`: no locks, no `-wal`/`-shm` created
/// beside it, nothing written.
pub fn integrity_check(path: &Path, depth: Depth) -> Result<(), String> {
    let conn = open_immutable(path)?;
    let pragma = match depth {
        Depth::Deep => "PRAGMA integrity_check",
        Depth::Quick => "PRAGMA quick_check",
    };
    let mut stmt = conn.prepare(pragma).map_err(|e| format!("{pragma}: {e}"))?;
    let rows: Vec<String> = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .and_then(|rows| rows.collect())
        .map_err(|e| format!("{pragma}: {e}"))?;
    if rows.len() == 1 && rows[0] == "ok" {
        Ok(())
    } else {
        Err(format!("{pragma} reported: {}", first_findings(&rows)))
    }
}

/// The first few findings of a failed check, one per line of its rows
/// (SQLite may put many in one row, one per line: a crafted page count
/// gave a single row of 100 "Page N: never used"), and how many more.
fn first_findings(rows: &[String]) -> String {
    const SHOWN: usize = 5;
    let lines: Vec<&str> = rows
        .iter()
        .flat_map(|r| r.lines())
        .filter(|l| !l.trim().is_empty())
        .collect();
    let mut shown = lines[..lines.len().min(SHOWN)].join("; ");
    if lines.len() > SHOWN {
        shown.push_str(&format!("; … ({} more)", lines.len() - SHOWN));
    }
    shown
}

/// Rows per table (user tables, by name), for drill reports.
pub fn row_counts(path: &Path) -> Result<Vec<(String, i64)>, String> {
    let conn = open_immutable(path)?;
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .map_err(|e| format!("list tables: {e}"))?;
    tables
        .into_iter()
        .map(|t| {
            let sql = format!("SELECT count(*) FROM \"{}\"", t.replace('"', "\"\""));
            conn.query_row(&sql, [], |r| r.get(0))
                .map(|n| (t.clone(), n))
                .map_err(|e| format!("count rows of {t}: {e}"))
        })
        .collect()
}

/// Nothing but a regular file (and no special file where a sidecar would
/// be) reaches SQLite: a FIFO planted in a snapshot must be reported, not
/// block the check.
pub(crate) fn open_immutable(path: &Path) -> Result<Connection, String> {
    crate::refuse_special(path)?;
    crate::vfs::install();
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let uri = format!("file:{}?immutable=1", uri_path(path));
    let conn = Connection::open_with_flags(&uri, flags)
        .map_err(|e| format!("cannot open as SQLite: {e}"))?;
    // A stop request (`cairn_engine::cancel`) interrupts a check of a large
    // database instead of waiting minutes for its end. The check then
    // fails ("interrupted"); the run's next safe point turns that into the
    // stop, before anything is published or swapped.
    conn.progress_handler(
        CANCEL_POLL_OPS,
        Some(|| cairn_engine::cancel::check().is_err()),
    );
    Ok(conn)
}

/// Steps between two looks at the stop flag (one atomic load each). A
/// step is a virtual-machine instruction, but inside `integrity_check`,
/// which is one instruction, a page checked: every 1,000 pages (4 MiB of
/// 4 KiB pages) then.
const CANCEL_POLL_OPS: i32 = 1_000;

/// Percent-encodes what a URI filename cannot carry literally.
fn uri_path(path: &Path) -> String {
    let mut out = String::new();
    for b in path.to_string_lossy().bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_file_names_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a b?c#d%e.db");
        Connection::open(&path)
            .unwrap()
            .execute_batch("CREATE TABLE t(x)")
            .unwrap();
        integrity_check(&path, Depth::Deep).unwrap();
        assert!(!dir.path().join("a b?c#d%e.db-shm").exists());
    }

    #[test]
    fn findings_are_cut_to_the_first_five_lines_whatever_the_rows() {
        let one_row = vec![(3..=102)
            .map(|n| format!("Page {n}: never used"))
            .collect::<Vec<_>>()
            .join("\n")];
        assert_eq!(
            first_findings(&one_row),
            "Page 3: never used; Page 4: never used; Page 5: never used; \
             Page 6: never used; Page 7: never used; … (95 more)"
        );
        let rows = vec!["a".to_owned(), "b\n\nc".to_owned()];
        assert_eq!(first_findings(&rows), "a; b; c");
    }

    #[test]
    fn garbage_is_reported_not_panicked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.db");
        std::fs::write(&path, b"SQLite format 3\0garbage garbage").unwrap();
        assert!(integrity_check(&path, Depth::Deep).is_err());
    }
}
