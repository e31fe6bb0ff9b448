//! The online copy read page by page through SQLite's `sqlite_dbpage`
//! table, written and hashed in page order.
//!
//! Why not only the backup API: the backup writes the copy through a
//! second connection whose pager writes page 1 last (it carries the
//! header), so the copy's SHA-256 can only start once the whole copy is
//! on disk: a second full read of the database on the critical path of
//! every snapshot in which it changed. Reading the pages here, in order,
//! inside one read transaction, each byte is hashed as it is written, and
//! the copy is read back once, by validation.
//!
//! What the reader sees is the same as the backup's: the pages of one
//! read transaction, through the source's own pager, so in WAL mode the
//! committed frames of the `-wal` are in and a commit racing the copy is
//! not. The bytes differ from the source's file in two header fields
//! only, set as the backup API and `journal_mode=DELETE` set them: the
//! copy is flagged rollback-journal (bytes 18–19; see
//! [`crate::online_copy`] for why) and carries its own page count
//! (bytes 28–31).
//!
//! `sqlite_dbpage` exists only when SQLite is built with
//! `SQLITE_ENABLE_DBPAGE_VTAB` (this workspace's `.cargo/config.toml`
//! sets it for the bundled build); without it, [`open`] says so and the
//! caller falls back to the backup API.

use std::fs::File;
use std::path::Path;
use std::sync::mpsc;

use cairn_engine::checksum::Checksum;
use rusqlite::{Connection, Statement};
use sha2::{Digest, Sha256};

use crate::copy::CopyError;

/// Pages handed to the writer at a time: few enough write calls, and a
/// buffer small enough that the few in flight (at most 7) cost little
/// memory.
const BATCH_BYTES: usize = 1 << 20;

/// A prepared page read of `source`, or `None` when the backup API is to
/// copy it: this SQLite has no `sqlite_dbpage`, or preparing failed for a
/// reason the backup API meets in its own way (a schema that does not
/// parse: the backup copies pages without reading it). A database locked
/// past the busy timeout is an error: the backup would only wait again.
///
/// Called as a table-valued function, `sqlite_dbpage('main')`: the
/// database is the service user's, who can write a schema row naming a
/// view or table `sqlite_dbpage`, and a plain `FROM sqlite_dbpage` would
/// read that instead of the pages (a made-up copy). Only the virtual
/// table takes arguments; with such a row, preparing fails and the
/// backup API copies the pages.
///
/// Preparing reads the schema in its own short transaction, so this runs
/// before the copy's read transaction begins. No ORDER BY: the table
/// yields pages in page order by itself, and an ORDER BY it did not
/// consume would sort the whole database in a temp file; [`copy`] checks
/// the order instead.
pub(crate) fn open(source: &Connection) -> rusqlite::Result<Option<Statement<'_>>> {
    use rusqlite::ErrorCode::{DatabaseBusy, DatabaseLocked};
    match source.prepare("SELECT pgno, data FROM sqlite_dbpage('main')") {
        Ok(pages) => Ok(Some(pages)),
        Err(e) if matches!(e.sqlite_error_code(), Some(DatabaseBusy | DatabaseLocked)) => Err(e),
        Err(_) => Ok(None),
    }
}

/// What the page copy wrote: the copy's length and SHA-256 (of the bytes
/// as written), and the database's page size, page count and
/// `user_version` as of the copy's transaction.
pub(crate) struct Written {
    pub size: u64,
    pub sha256: Checksum,
    pub page_size: i64,
    pub page_count: i64,
    pub user_version: i64,
}

/// Copies every page of `source` into the new, empty file `out` (`dst` in
/// messages) inside one read transaction, which this opens and closes.
/// `src` names the source in messages. The caller syncs `out`.
pub(crate) fn copy(
    source: &Connection,
    pages: &mut Statement<'_>,
    src: &Path,
    out: File,
    dst: &Path,
) -> Result<Written, CopyError> {
    let read_failed = |e: rusqlite::Error| crate::copy::read_failed(src, &e);
    // Deferred: the read transaction starts with the first read below
    // and holds until the COMMIT, so the page count and the pages are
    // one state of the database.
    source.execute_batch("BEGIN").map_err(read_failed)?;
    let copied = read_pages(source, pages, src, out, dst);
    // A read transaction commits nothing; ending it lets a WAL
    // checkpoint move past this reader.
    let ended = source.execute_batch("COMMIT").map_err(read_failed);
    let written = copied?;
    ended?;
    Ok(written)
}

fn read_pages(
    source: &Connection,
    pages: &mut Statement<'_>,
    src: &Path,
    out: File,
    dst: &Path,
) -> Result<Written, CopyError> {
    let read_failed = |e: rusqlite::Error| crate::copy::read_failed(src, &e);
    // The page count first: reading it begins the transaction (the page
    // size may be known to the connection without a read). A page size
    // that changed under a rollback-journal VACUUM before that would show
    // in the length check of every page, never in a silent copy.
    let pragma = |name: &str| {
        source
            .query_row(&format!("PRAGMA {name}"), [], |r| r.get::<_, i64>(0))
            .map_err(read_failed)
    };
    let page_count = pragma("page_count")?;
    let page_size = pragma("page_size")?;
    let user_version = pragma("user_version")?;
    let page_len = usize::try_from(page_size)
        .ok()
        .filter(|n| n.is_power_of_two() && (512..=65536).contains(n))
        .ok_or_else(|| {
            format!(
                "read {}: page size {page_size} is not one SQLite uses",
                src.display()
            )
        })?;
    cairn_engine::progress::grow(u64::try_from(page_size.saturating_mul(page_count)).unwrap_or(0));

    // Three stages, one thread each: SQLite's page reads, the SHA-256 and
    // the writes into the page cache each cost about the same, and on one
    // thread any two of them are the snapshot's longest path once the
    // other stores are done. Each batch passes reader -> hasher -> writer
    // and goes back to the reader to be filled again.
    let (read_tx, read_rx) = mpsc::sync_channel::<Vec<u8>>(2);
    let (hashed_tx, hashed_rx) = mpsc::sync_channel::<Vec<u8>>(2);
    let (empty_tx, empty_rx) = mpsc::channel::<Vec<u8>>();
    std::thread::scope(|scope| {
        let writer = scope.spawn(move || write_batches(out, dst, page_len, hashed_rx, empty_tx));
        let hasher = scope.spawn(move || hash_batches(read_rx, hashed_tx));
        let read = fill_batches(pages, src, page_len, page_count, read_tx, empty_rx);
        // Each stage ends when the one before it is done (its sender
        // dropped) or the one after it is gone (a write error).
        let written = writer.join().unwrap_or_else(|_| {
            Err(format!("write {}: the writer thread panicked", dst.display()).into())
        });
        let hashed = hasher.join().map_err(|_| {
            CopyError::from(format!(
                "copy {}: the hashing thread panicked",
                src.display()
            ))
        });
        // A write error is the cause when several failed, and a panicked
        // hasher before the reader's error: the others only saw their
        // channel close.
        let size = written?;
        let sha256 = hashed?;
        read?;
        Ok(Written {
            size,
            sha256,
            page_size,
            page_count,
            user_version,
        })
    })
}

/// Hashes the batches in the order read and hands each on to the writer:
/// the digest is of the very bytes written.
fn hash_batches(read: mpsc::Receiver<Vec<u8>>, hashed: mpsc::SyncSender<Vec<u8>>) -> Checksum {
    let mut hasher = Sha256::new();
    for batch in read {
        hasher.update(&batch);
        if hashed.send(batch).is_err() {
            // The writer stopped on an error, which it reports; this
            // digest is never used.
            break;
        }
    }
    Checksum::from_hasher(hasher)
}

/// Reads the pages in order into batches for the hasher. Checks that the
/// pages are the ones the transaction's page count promised, each
/// `page_len` long, so a short or missing page can never make a copy that
/// hashes fine but is not the database.
fn fill_batches(
    pages: &mut Statement<'_>,
    src: &Path,
    page_len: usize,
    page_count: i64,
    full: mpsc::SyncSender<Vec<u8>>,
    empty: mpsc::Receiver<Vec<u8>>,
) -> Result<(), CopyError> {
    let read_failed = |e: rusqlite::Error| crate::copy::read_failed(src, &e);
    let mut rows = pages.query([]).map_err(read_failed)?;
    let mut batch = Vec::with_capacity(BATCH_BYTES);
    let mut expected: i64 = 1;
    while let Some(row) = rows.next().map_err(read_failed)? {
        let pgno: i64 = row.get(0).map_err(read_failed)?;
        let data = row.get_ref(1).map_err(read_failed)?;
        let data = data
            .as_blob_or_null()
            .map_err(|e| read_failed(e.into()))?
            .unwrap_or(&[]);
        if pgno != expected || data.len() != page_len {
            return Err(format!(
                "read {}: page {pgno} came back as {} bytes where page {expected} of {page_len} bytes was due",
                src.display(),
                data.len()
            )
            .into());
        }
        let start = batch.len();
        batch.extend_from_slice(data);
        if pgno == 1 {
            mark_as_copy(&mut batch[start..], page_count);
        }
        expected += 1;
        if batch.len() + page_len > BATCH_BYTES {
            stop_if_asked(src)?;
            let next = empty
                .try_recv()
                .unwrap_or_else(|_| Vec::with_capacity(BATCH_BYTES));
            if full.send(std::mem::replace(&mut batch, next)).is_err() {
                // A later stage stopped on an error, which the writer
                // reports.
                break;
            }
        }
    }
    if expected - 1 != page_count {
        return Err(format!(
            "read {}: {} pages came back where the database has {page_count}",
            src.display(),
            expected - 1
        )
        .into());
    }
    let _ = full.send(batch);
    Ok(())
}

/// A safe point between batches: a database of many gigabytes is minutes
/// of copying, and a stop request (`cairn_engine::cancel`) should not
/// wait for all of it. What is written so far is in the snapshot's build
/// directory, which the engine removes as the error unwinds.
fn stop_if_asked(src: &Path) -> Result<(), CopyError> {
    match cairn_engine::cancel::check() {
        Err(cairn_engine::Error::Interrupted { signal }) => Err(CopyError {
            failure: crate::CopyFailure::Interrupted(signal),
            message: format!(
                "copy {}: stopped by {}",
                src.display(),
                cairn_engine::cancel::signal_name(signal)
            ),
        }),
        _ => Ok(()),
    }
}

/// Page 1 as the copy keeps it: flagged rollback-journal when the source
/// is in WAL mode (bytes 18–19, "file format write/read version": 2 is
/// WAL, 1 rollback), and with the page count SQLite trusts when the
/// header's change counters agree (bytes 28–31).
fn mark_as_copy(page1: &mut [u8], page_count: i64) {
    if page1.len() < 100 {
        return;
    }
    if page1[18] == 2 && page1[19] == 2 {
        page1[18] = 1;
        page1[19] = 1;
    }
    if let Ok(count) = u32::try_from(page_count) {
        page1[28..32].copy_from_slice(&count.to_be_bytes());
    }
}

/// Writes the batches in order, each page of zeros as a hole: the
/// database's size is the service user's to claim (a page count in a
/// crafted `-wal`, or a sparse file), and the pages past what its files
/// hold read as zeros, so a few KiB could otherwise make terabytes of
/// copy. The bytes are the same either way (a hole reads as zeros, and
/// validation and restore keep holes), and a real database has few pages
/// of zeros.
fn write_batches(
    out: File,
    dst: &Path,
    page_len: usize,
    full: mpsc::Receiver<Vec<u8>>,
    empty: mpsc::Sender<Vec<u8>>,
) -> Result<u64, CopyError> {
    use std::os::unix::fs::FileExt;
    let failed = |e: std::io::Error| crate::copy::write_failed(dst, &e);
    let mut size = 0u64;
    for batch in full {
        for run in data_runs(&batch, page_len) {
            out.write_all_at(&batch[run.clone()], size + run.start as u64)
                .map_err(failed)?;
        }
        size += batch.len() as u64;
        cairn_engine::progress::advance(batch.len() as u64);
        let mut batch = batch;
        batch.clear();
        // The reader may have finished and gone: nothing to recycle into.
        let _ = empty.send(batch);
    }
    // Pages of zeros at the end are a hole too: the length says they are there.
    out.set_len(size).map_err(failed)?;
    Ok(size)
}

/// The byte ranges of `batch` to write: runs of pages that are not all
/// zeros, each run as one range.
fn data_runs(batch: &[u8], page_len: usize) -> Vec<std::ops::Range<usize>> {
    let mut runs: Vec<std::ops::Range<usize>> = Vec::new();
    for (i, page) in batch.chunks(page_len).enumerate() {
        if page.iter().all(|&b| b == 0) {
            continue;
        }
        let start = i * page_len;
        let end = start + page.len();
        match runs.last_mut() {
            Some(last) if last.end == start => last.end = end,
            _ => runs.push(start..end),
        }
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_of_zeros_are_left_out_and_runs_of_data_merged() {
        let page = |fill: u8| vec![fill; 4];
        let batch: Vec<u8> = [
            page(1),
            page(0),
            page(2),
            page(3),
            page(0),
            page(0),
            page(4),
        ]
        .concat();
        assert_eq!(data_runs(&batch, 4), vec![0..4, 8..16, 24..28]);
        // A page with a single byte set is data.
        let mut one = vec![0u8; 8];
        one[7] = 1;
        assert_eq!(data_runs(&one, 4), vec![4..8]);
        assert!(data_runs(&[0u8; 16], 4).is_empty());
    }
}
