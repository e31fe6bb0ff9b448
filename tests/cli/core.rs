//! The core slice (issue 2) end to end: snapshot, list, show, validate,
//! stores and init, driven through the real `cairn` binary.
//!
//! The first six tests port the reference suite's scenarios (named after
//! them); the rest cover what the reference could not see: damage to the
//! Chroma tree, manifest tampering, corrupted SQLite pages, hot snapshots,
//! bad ids and bad configs.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use rusqlite::Connection;
use serde_json::Value;

use crate::support::dir_names;
use crate::support::{self, Env, Run};

// ---------------------------------------------------------------------------
// helpers

/// Opens a copy of an SQLite file taken out of a snapshot. The copy lives in
/// its own tempdir so that opening it (which may create `-wal`/`-shm`
/// sidecars) never adds files to the snapshot itself.
fn open_copy(path: &Path) -> (tempfile::TempDir, Connection) {
    let dir = tempfile::tempdir().unwrap();
    let dst = dir.path().join("copy.db");
    std::fs::copy(path, &dst).unwrap_or_else(|e| panic!("copy {}: {e}", path.display()));
    let mut perms = std::fs::metadata(&dst).unwrap().permissions();
    perms.set_mode(0o600);
    std::fs::set_permissions(&dst, perms).unwrap();
    let conn = Connection::open(&dst).unwrap();
    (dir, conn)
}

fn integrity(conn: &Connection) -> String {
    conn.query_row("PRAGMA integrity_check", [], |r| r.get::<_, String>(0))
        .unwrap()
}

/// `cairn --json validate <id>`, returning the run and that id's errors.
fn validate(env: &Env, id: &str) -> (Run, Vec<Value>) {
    let run = env.cairn(&["--json", "validate", id]);
    let json = run.json();
    let results = json["results"].as_array().expect("results").clone();
    assert_eq!(results.len(), 1, "{}", run.stdout);
    assert_eq!(results[0]["id"], id);
    let errors = results[0]["errors"].as_array().expect("errors").clone();
    (run, errors)
}

/// Asserts `errors` holds an error with this code, store and path.
fn assert_error(errors: &[Value], code: &str, store: Option<&str>, path: &str) {
    let found = errors.iter().any(|e| {
        e["code"] == code
            && e["path"].as_str() == Some(path)
            && store.is_none_or(|s| e["store"].as_str() == Some(s))
    });
    assert!(
        found,
        "no {code} error for store {store:?} path {path:?} in {}",
        serde_json::to_string_pretty(errors).unwrap()
    );
}

fn store_names(snapshot_json: &Value) -> Vec<String> {
    snapshot_json["stores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect()
}

fn store_json<'a>(snapshot_json: &'a Value, name: &str) -> &'a Value {
    snapshot_json["stores"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no store {name} in {snapshot_json}"))
}

fn is_sqlite(bytes: &[u8]) -> bool {
    bytes.starts_with(b"SQLite format 3\0")
}

// ---------------------------------------------------------------------------
// ported from the reference suite

#[test]
fn create_runtime_backup_copies_db_and_registry() {
    let env = Env::new();
    let run = env.cairn(&["--json", "snapshot", "--at", "2026-04-06T18:00:00Z"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let json = run.json();
    assert_eq!(json["id"], "20260406T180000Z");
    assert_eq!(json["created_at"], "2026-04-06T18:00:00Z");
    assert_eq!(store_json(&json, "db")["status"], "captured");
    assert_eq!(store_json(&json, "registry")["status"], "captured");

    let snap = env.snapshot_dir("20260406T180000Z");
    assert!(snap.join("manifest.json").is_file());

    // The registry: the exact bytes of the source.
    let source = std::fs::read(env.path("config/project-registry.json")).unwrap();
    let copied = std::fs::read(snap.join("stores/registry/project-registry.json")).unwrap();
    assert_eq!(copied, source);

    // The database: a real SQLite file holding the live rows.
    let (_tmp, conn) = open_copy(&snap.join("stores/db/atocore.db"));
    let name: String = conn
        .query_row("SELECT name FROM projects WHERE id = 'p01'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(name, "P01 Example");
    let memory: String = conn
        .query_row("SELECT content FROM memories", [], |r| r.get(0))
        .unwrap();
    assert_eq!(memory, "baseline memory");
    assert_eq!(integrity(&conn), "ok");
}

#[test]
fn create_runtime_backup_includes_chroma_when_requested() {
    let env = Env::new();

    // Not requested: no chroma in the snapshot.
    let without = env.cairn(&["--json", "snapshot", "--skip", "chroma"]);
    assert_eq!(without.code, 0, "{}\n{}", without.stdout, without.stderr);
    let without = without.json();
    assert_eq!(store_names(&without), ["db", "registry"]);
    let without_dir = env.snapshot_dir(without["id"].as_str().unwrap());
    assert!(!without_dir.join("stores/chroma").exists());

    // Requested (the default config names it).
    let run = env.cairn(&["--json", "snapshot", "--at", "2026-04-06T20:00:00Z"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let json = run.json();
    let chroma = store_json(&json, "chroma");
    assert_eq!(chroma["status"], "captured");
    assert_eq!(chroma["kind"], "chroma-dir");
    assert!(chroma["files"].as_u64().unwrap() >= 3, "{chroma}");
    assert!(chroma["bytes"].as_u64().unwrap() > 200_000, "{chroma}");

    // The tree in the snapshot equals the source tree entry by entry.
    let copy_root = env.snapshot_dir("20260406T200000Z").join("stores/chroma");
    let source = support::tree(&env.path("data/chroma"));
    let copy = support::tree(&copy_root);
    let shape = |t: &[(String, String, Vec<u8>)]| {
        t.iter()
            .map(|(p, k, _)| (p.clone(), k.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(shape(&copy), shape(&source));
    assert!(copy.iter().any(|(p, k, _)| p == "empty-dir" && k == "dir"));
    for ((path, kind, src_bytes), (_, _, copy_bytes)) in source.iter().zip(&copy) {
        if kind == "file" && is_sqlite(src_bytes) {
            // Copied online with the backup API: the same database, not
            // necessarily the same header bytes.
            assert!(is_sqlite(copy_bytes), "{path} is not SQLite in the copy");
        } else {
            assert_eq!(copy_bytes, src_bytes, "{path} differs");
        }
    }

    // The embedded SQLite file is readable and holds the source rows.
    let (_tmp, conn) = open_copy(&copy_root.join("chroma.sqlite3"));
    let doc: String = conn
        .query_row("SELECT doc FROM embeddings", [], |r| r.get(0))
        .unwrap();
    assert_eq!(doc, "baseline");
    assert_eq!(integrity(&conn), "ok");
}

#[test]
fn list_and_validate_runtime_backups() {
    let env = Env::new();
    let first = env.snapshot(&["--at", "2026-04-06T21:00:00Z"]);
    let second = env.snapshot(&["--at", "2026-04-06T22:00:00Z"]);
    assert_eq!(first, "20260406T210000Z");
    assert_eq!(second, "20260406T220000Z");

    let list = env.cairn(&["--json", "list"]);
    assert_eq!(list.code, 0, "{}", list.stderr);
    let list = list.json();
    let snaps = list["snapshots"].as_array().unwrap();
    assert_eq!(snaps.len(), 2);
    // Oldest first.
    assert_eq!(snaps[0]["id"], first);
    assert_eq!(snaps[1]["id"], second);
    for s in snaps {
        assert_eq!(s["problem"], Value::Null, "{s}");
        assert_eq!(s["pinned"], false);
        assert_eq!(s["stores"], serde_json::json!(["db", "registry", "chroma"]));
        assert!(s["bytes"].as_u64().unwrap() > 0);
    }

    for id in [&first, &second] {
        let (run, errors) = validate(&env, id);
        assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
        assert_eq!(run.json()["results"][0]["valid"], true);
        assert!(errors.is_empty(), "{errors:?}");
    }

    let all = env.cairn(&["--json", "validate", "--all"]);
    assert_eq!(all.code, 0, "{}\n{}", all.stdout, all.stderr);
    let all = all.json();
    assert_eq!(all["results"].as_array().unwrap().len(), 2);

    let (missing, errors) = validate(&env, "20260101T000000Z");
    assert_eq!(missing.code, 1, "{}\n{}", missing.stdout, missing.stderr);
    assert_eq!(missing.json()["results"][0]["valid"], false);
    assert!(
        errors.iter().any(|e| e["code"] == "snapshot_missing"),
        "{errors:?}"
    );
    // Validating a missing id does not create it.
    assert!(!env.snapshot_dir("20260101T000000Z").exists());
}

#[test]
fn create_runtime_backup_handles_missing_registry() {
    let env = Env::new();
    std::fs::remove_file(env.path("config/project-registry.json")).unwrap();
    let run = env.cairn(&["--json", "snapshot", "--at", "2026-04-06T19:00:00Z"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let json = run.json();
    let registry = store_json(&json, "registry");
    assert_eq!(registry["status"], "absent");
    assert_eq!(registry["files"], 0);
    assert_eq!(store_json(&json, "db")["status"], "captured");
    assert_eq!(json["validated"], true);

    let snap = env.snapshot_dir("20260406T190000Z");
    assert!(!snap.join("stores/registry/project-registry.json").exists());
    let (run, errors) = validate(&env, "20260406T190000Z");
    assert_eq!(run.code, 0, "{errors:?}");
}

#[test]
fn create_backup_includes_validation_fields() {
    let env = Env::new();
    let run = env.cairn(&["--json", "snapshot", "--at", "2026-04-11T10:00:00Z"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let json = run.json();
    assert_eq!(json["validated"], true);
    assert_eq!(json["validation_errors"], serde_json::json!([]));
    assert_eq!(json["id"], "20260411T100000Z");
    assert_eq!(json["created_at"], "2026-04-11T10:00:00Z");
    assert_eq!(json["tags"], serde_json::json!([]));
}

#[test]
fn create_backup_validation_failure_does_not_raise() {
    let env = Env::new();
    // Captured byte for byte, but it fails the plug-in's own check.
    std::fs::write(
        env.path("config/project-registry.json"),
        b"{\"projects\": [",
    )
    .unwrap();
    let run = env.cairn(&["--json", "snapshot", "--at", "2026-04-11T11:00:00Z"]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let json = run.json();
    assert_eq!(json["validated"], false);
    assert_eq!(json["id"], "20260411T110000Z");
    assert_eq!(json["created_at"], "2026-04-11T11:00:00Z");
    let errors = json["validation_errors"].as_array().unwrap();
    assert!(
        errors
            .iter()
            .any(|e| e["code"] == "json_invalid" && e["store"] == "registry"),
        "{errors:?}"
    );
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);

    // The snapshot is kept, with the invalid bytes exactly.
    let snap = env.snapshot_dir("20260411T110000Z");
    assert_eq!(
        std::fs::read(snap.join("stores/registry/project-registry.json")).unwrap(),
        b"{\"projects\": ["
    );
    assert_eq!(env.listed_ids(), ["20260411T110000Z"]);
    let (run, errors) = validate(&env, "20260411T110000Z");
    assert_eq!(run.code, 1);
    assert!(errors.iter().any(|e| e["code"] == "json_invalid"));
}

// ---------------------------------------------------------------------------
// damage found by validate, with its code and path

#[test]
fn validate_finds_flipped_byte_in_chroma_segment() {
    let env = Env::new();
    let id = env.snapshot(&[]);
    env.unlock_snapshot(&id);
    let seg = env
        .snapshot_dir(&id)
        .join("stores/chroma/seg-0001/data_level0.bin");
    support::flip_byte(&seg, 123_456, 0x01);

    let (run, errors) = validate(&env, &id);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(run.json()["results"][0]["valid"], false);
    assert_error(
        &errors,
        "file_checksum_mismatch",
        Some("chroma"),
        "seg-0001/data_level0.bin",
    );
    // Only that file is blamed.
    assert!(
        errors
            .iter()
            .all(|e| e["path"] == "seg-0001/data_level0.bin"),
        "{errors:?}"
    );
}

#[test]
fn validate_finds_deleted_file() {
    let env = Env::new();
    let id = env.snapshot(&[]);
    env.unlock_snapshot(&id);
    std::fs::remove_file(
        env.snapshot_dir(&id)
            .join("stores/chroma/seg-0001/header.bin"),
    )
    .unwrap();

    let (run, errors) = validate(&env, &id);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert_error(
        &errors,
        "file_missing",
        Some("chroma"),
        "seg-0001/header.bin",
    );
}

#[test]
fn validate_finds_deleted_database_copy() {
    let env = Env::new();
    let id = env.snapshot(&[]);
    env.unlock_snapshot(&id);
    std::fs::remove_file(env.snapshot_dir(&id).join("stores/db/atocore.db")).unwrap();

    let (run, errors) = validate(&env, &id);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert_error(&errors, "file_missing", Some("db"), "atocore.db");
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
}

#[test]
fn validate_finds_unlisted_extra_file() {
    let env = Env::new();
    let id = env.snapshot(&[]);
    env.unlock_snapshot(&id);
    std::fs::write(
        env.snapshot_dir(&id)
            .join("stores/chroma/seg-0001/extra.bin"),
        b"not in the manifest",
    )
    .unwrap();

    let (run, errors) = validate(&env, &id);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert_error(
        &errors,
        "file_unexpected",
        Some("chroma"),
        "seg-0001/extra.bin",
    );
}

#[test]
fn validate_finds_edited_manifest() {
    let env = Env::new();
    let id = env.snapshot(&[]);
    env.unlock_snapshot(&id);
    let path = env.snapshot_dir(&id).join("manifest.json");
    let mut manifest: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    // A plausible edit: someone adds a tag by hand; the digest stays old.
    manifest["tags"] = serde_json::json!(["edited-by-hand"]);
    std::fs::write(&path, serde_json::to_vec_pretty(&manifest).unwrap()).unwrap();

    let (run, errors) = validate(&env, &id);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(
        errors
            .iter()
            .any(|e| e["code"] == "manifest_digest_mismatch"),
        "{errors:?}"
    );
}

#[test]
fn validate_finds_corrupted_sqlite_page_behind_a_consistent_manifest() {
    let env = Env::new();
    // A database with many pages: a table and an index over 3000 rows.
    {
        let db = env.db();
        db.execute_batch(
            "CREATE TABLE bulk(id INTEGER PRIMARY KEY, body TEXT NOT NULL);
             CREATE INDEX bulk_body ON bulk(body);",
        )
        .unwrap();
        let tx = db.unchecked_transaction().unwrap();
        for i in 0..3000 {
            tx.execute(
                "INSERT INTO bulk(body) VALUES (?1)",
                [format!("{i:06}-{}", "x".repeat(150))],
            )
            .unwrap();
        }
        tx.commit().unwrap();
    }
    let id = env.snapshot(&["--only", "db"]);
    // The damage sits well inside the file, and the manifest agrees with
    // the damaged bytes, so only the plug-in's integrity check can tell.
    let pages = env.corrupt_db_page_behind_resealed_manifest(&id);
    assert!(pages > 50, "only {pages} pages");

    let (run, errors) = validate(&env, &id);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert_error(&errors, "sqlite_integrity_failed", Some("db"), "atocore.db");
    assert!(
        errors
            .iter()
            .all(|e| e["code"] == "sqlite_integrity_failed"),
        "the forged manifest should hide everything but the integrity failure: {errors:?}"
    );
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
}

#[test]
fn list_shows_damaged_snapshot_with_its_problem() {
    let env = Env::new();
    let good = env.snapshot(&["--at", "2026-04-06T10:00:00Z"]);
    let edited = env.snapshot(&["--at", "2026-04-06T11:00:00Z"]);
    let garbage = env.snapshot(&["--at", "2026-04-06T12:00:00Z"]);
    let missing = env.snapshot(&["--at", "2026-04-06T13:00:00Z"]);

    env.unlock_snapshot(&edited);
    let path = env.snapshot_dir(&edited).join("manifest.json");
    // Edited by hand (any layout), digest left as it was.
    let mut doc: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    doc["tags"] = serde_json::json!(["x"]);
    std::fs::write(&path, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();

    env.unlock_snapshot(&garbage);
    std::fs::write(
        env.snapshot_dir(&garbage).join("manifest.json"),
        b"\x00\x01 this is not a manifest {{{",
    )
    .unwrap();

    env.unlock_snapshot(&missing);
    std::fs::remove_file(env.snapshot_dir(&missing).join("manifest.json")).unwrap();

    let run = env.cairn(&["--json", "list"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let json = run.json();
    let snaps = json["snapshots"].as_array().unwrap();
    let problem = |id: &str| {
        snaps
            .iter()
            .find(|s| s["id"] == id)
            .unwrap_or_else(|| panic!("{id} not listed: {json}"))["problem"]
            .clone()
    };
    assert_eq!(snaps.len(), 4);
    assert_eq!(problem(&good), Value::Null);
    assert_eq!(problem(&edited), "manifest_digest_mismatch");
    assert_eq!(problem(&garbage), "manifest_invalid");
    assert_eq!(problem(&missing), "manifest_missing");

    // The human table says it too, and still exits 0.
    let human = env.cairn(&["list"]);
    assert_eq!(human.code, 0, "{}", human.stderr);
    for (id, code) in [
        (&edited, "manifest_digest_mismatch"),
        (&garbage, "manifest_invalid"),
        (&missing, "manifest_missing"),
    ] {
        let line = human
            .stdout
            .lines()
            .find(|l| l.starts_with(id.as_str()))
            .unwrap_or_else(|| panic!("{id} not in:\n{}", human.stdout));
        assert!(line.contains(code), "{line}");
    }
    assert!(!human.stderr.contains("panicked"));
}

// ---------------------------------------------------------------------------
// consistency and ids

#[test]
fn hot_snapshot_of_a_database_under_transfers_is_consistent() {
    const ACCOUNTS: i64 = 50;
    const START: i64 = 1_000;
    let env = Env::new();
    {
        let db = env.db();
        db.execute_batch(
            "CREATE TABLE accounts(id INTEGER PRIMARY KEY, balance INTEGER NOT NULL);
             CREATE TABLE ledger(id INTEGER PRIMARY KEY, src INTEGER, dst INTEGER, amount INTEGER, pad TEXT);",
        )
        .unwrap();
        for i in 0..ACCOUNTS {
            db.execute("INSERT INTO accounts VALUES (?1, ?2)", [i, START])
                .unwrap();
        }
    }

    let stop = Arc::new(AtomicBool::new(false));
    let commits = Arc::new(AtomicU64::new(0));
    let writer = {
        let path = env.path("data/atocore.db");
        let stop = Arc::clone(&stop);
        let commits = Arc::clone(&commits);
        std::thread::spawn(move || {
            let mut db = Connection::open(path).unwrap();
            db.busy_timeout(std::time::Duration::from_secs(30)).unwrap();
            let journal: String = db
                .query_row("PRAGMA journal_mode", [], |r| r.get(0))
                .unwrap();
            assert_eq!(journal, "wal");
            let mut n: i64 = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let src = n % ACCOUNTS;
                let dst = (n * 7 + 3) % ACCOUNTS;
                let amount = n % 97 + 1;
                let tx = db.transaction().unwrap();
                tx.execute(
                    "UPDATE accounts SET balance = balance - ?1 WHERE id = ?2",
                    [amount, src],
                )
                .unwrap();
                // Between the two updates the invariant is broken; a torn
                // copy would see it.
                tx.execute(
                    "INSERT INTO ledger(src, dst, amount, pad) VALUES (?1, ?2, ?3, ?4)",
                    rusqlite::params![src, dst, amount, "p".repeat(200)],
                )
                .unwrap();
                tx.execute(
                    "UPDATE accounts SET balance = balance + ?1 WHERE id = ?2",
                    [amount, dst],
                )
                .unwrap();
                tx.commit().unwrap();
                commits.fetch_add(1, Ordering::Relaxed);
            }
        })
    };

    // Let the writer get going before the first snapshot.
    while commits.load(Ordering::Relaxed) < 200 {
        std::thread::yield_now();
    }
    let mut ids = Vec::new();
    let mut ledger_rows = Vec::new();
    for _ in 0..4 {
        let before = commits.load(Ordering::Relaxed);
        let run = env.cairn(&["--json", "snapshot", "--only", "db"]);
        assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
        assert_eq!(run.json()["validated"], true);
        ids.push(run.json()["id"].as_str().unwrap().to_owned());
        // The writer kept committing while the snapshot ran (or at least
        // between snapshots): the database was live.
        while commits.load(Ordering::Relaxed) <= before + 20 {
            std::thread::yield_now();
        }
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();

    for id in &ids {
        let (_tmp, conn) = open_copy(&env.snapshot_dir(id).join("stores/db/atocore.db"));
        assert_eq!(integrity(&conn), "ok", "snapshot {id}");
        let (sum, count): (i64, i64) = conn
            .query_row("SELECT SUM(balance), COUNT(*) FROM accounts", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!(count, ACCOUNTS, "snapshot {id}");
        assert_eq!(
            sum,
            ACCOUNTS * START,
            "snapshot {id}: money created or lost"
        );
        // Balances agree with the ledger: each account's balance is START
        // plus what the ledger says came in minus what went out.
        let mismatched: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM accounts a WHERE a.balance != ?1
                   + COALESCE((SELECT SUM(amount) FROM ledger WHERE dst = a.id), 0)
                   - COALESCE((SELECT SUM(amount) FROM ledger WHERE src = a.id), 0)",
                [START],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(
            mismatched, 0,
            "snapshot {id}: balances disagree with the ledger"
        );
        let rows: i64 = conn
            .query_row("SELECT COUNT(*) FROM ledger", [], |r| r.get(0))
            .unwrap();
        ledger_rows.push(rows);
    }
    // Each snapshot saw later commits than the one before.
    assert!(
        ledger_rows.windows(2).all(|w| w[0] < w[1]),
        "{ledger_rows:?}"
    );
    assert!(ledger_rows[0] > 0);
}

#[test]
fn two_snapshots_in_the_same_second_get_distinct_ids() {
    let env = Env::new();
    let first = env.snapshot(&["--at", "2026-04-06T18:00:00Z"]);
    let second = env.snapshot(&["--at", "2026-04-06T18:00:00Z"]);
    let third = env.snapshot(&["--at", "2026-04-06T18:00:00Z"]);
    assert_eq!(first, "20260406T180000Z");
    assert_eq!(second, "20260406T180000Z-1");
    assert_eq!(third, "20260406T180000Z-2");
    assert_eq!(
        env.listed_ids(),
        [first.clone(), second.clone(), third.clone()]
    );
    let all = env.cairn(&["--json", "validate", "--all"]);
    assert_eq!(all.code, 0, "{}\n{}", all.stdout, all.stderr);
    let all = all.json();
    let results = all["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    assert!(results.iter().all(|r| r["valid"] == true), "{all}");
    // Each manifest names its own id.
    for id in [&first, &second, &third] {
        let manifest: Value = serde_json::from_slice(
            &std::fs::read(env.snapshot_dir(id).join("manifest.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(&manifest["id"], id.as_str());
    }
}

#[test]
fn path_like_ids_are_refused_before_anything_is_touched() {
    let env = Env::new();
    let real = env.snapshot(&["--at", "2026-04-06T18:00:00Z"]);
    // A directory an absolute id would point at.
    let victim: PathBuf = env.path("victim");
    std::fs::create_dir(&victim).unwrap();
    std::fs::write(victim.join("manifest.json"), b"{}").unwrap();
    let victim_str = victim.to_str().unwrap().to_owned();
    let nested = format!("{real}/stores");

    let before = support::tree(&env.root);
    let ids: Vec<&str> = vec!["../x", "..", ".", "a/b", "/etc", &victim_str, &nested, ""];
    for id in &ids {
        let commands: Vec<Vec<&str>> = vec![
            vec!["show", id],
            vec!["--json", "show", id],
            vec!["validate", id],
            vec!["--json", "validate", id],
            vec!["restore", id, "--confirm-service-stopped"],
            vec!["restore", id, "--to", "out"],
            vec!["pin", id],
            vec!["unpin", id],
        ];
        for args in commands {
            // `/etc` is only ever read by a buggy show/validate; never let a
            // buggy pin or restore near it.
            if *id == "/etc"
                && !matches!(
                    args.iter().find(|a| !a.starts_with('-')),
                    Some(&"show" | &"validate")
                )
            {
                continue;
            }
            let run = env.cairn(&args);
            assert_eq!(
                run.code, 2,
                "{args:?} should be refused as bad usage:\n{}\n{}",
                run.stdout, run.stderr
            );
            assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
        }
    }
    assert!(support::tree(&env.root) == before, "something was touched");
    assert!(!victim.join("pinned").exists());
    assert!(!env.path("out").exists());
    assert_eq!(env.listed_ids(), [real]);
}

// ---------------------------------------------------------------------------
// config errors

fn assert_config_error(env: &Env, config: &str, needles: &[&str]) {
    env.write_config(config);
    for args in [&["list"][..], &["snapshot"][..]] {
        let run = env.cairn(args);
        assert_eq!(run.code, 2, "{args:?}:\n{}\n{}", run.stdout, run.stderr);
        for needle in needles {
            assert!(
                run.stderr.contains(needle),
                "{args:?}: stderr does not name {needle:?}:\n{}",
                run.stderr
            );
        }
        assert!(run.stderr.contains("cairn.toml"), "{}", run.stderr);
    }
    assert!(
        !env.path("backups/snapshots").exists()
            || dir_names(&env.path("backups/snapshots")).is_empty()
    );
}

#[test]
fn config_unknown_top_level_key_is_refused() {
    let env = Env::new();
    assert_config_error(
        &env,
        &format!("retention_days = 3\n{}", support::CONFIG),
        &["retention_days"],
    );
}

#[test]
fn config_unknown_retention_key_is_refused() {
    let env = Env::new();
    assert_config_error(
        &env,
        &format!("{}\n[retention]\nkeep_yearly = 3\n", support::CONFIG),
        &["keep_yearly"],
    );
}

#[test]
fn config_unknown_store_kind_is_refused() {
    let env = Env::new();
    assert_config_error(
        &env,
        &support::CONFIG.replace("kind = \"chroma-dir\"", "kind = \"qdrant\""),
        &["qdrant", "chroma"],
    );
}

#[test]
fn config_duplicate_store_name_is_refused() {
    let env = Env::new();
    assert_config_error(
        &env,
        &support::CONFIG.replace("name = \"chroma\"", "name = \"db\""),
        &["duplicate", "\"db\""],
    );
}

#[test]
fn config_unknown_plugin_option_is_refused() {
    let env = Env::new();
    assert_config_error(
        &env,
        &support::CONFIG.replace("lock_file =", "lockfile ="),
        &["lockfile", "chroma"],
    );
}

#[test]
fn config_option_of_another_plugin_is_refused() {
    // `lock_file` belongs to chroma-dir; the registry-json plug-in must not
    // silently ignore it.
    let env = Env::new();
    assert_config_error(
        &env,
        &support::CONFIG.replace(
            "optional = true",
            "optional = true\nlock_file = \"data/.ingest.lock\"",
        ),
        &["lock_file", "registry"],
    );
}

#[test]
fn missing_required_store_path_exits_4_and_leaves_nothing() {
    let env = Env::new();
    std::fs::remove_file(env.path("data/atocore.db")).unwrap();
    for sidecar in ["data/atocore.db-wal", "data/atocore.db-shm"] {
        let _ = std::fs::remove_file(env.path(sidecar));
    }
    let run = env.cairn(&["--json", "snapshot"]);
    assert_eq!(run.code, 4, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr
            .contains(&*env.path("data/atocore.db").to_string_lossy()),
        "the message should name the path: {}",
        run.stderr
    );
    assert!(!run.stderr.contains("panicked"));
    // The missing source was not created by the attempt.
    assert!(!env.path("data/atocore.db").exists());
    assert!(env.listed_ids().is_empty());
    assert!(dir_names(&env.path("backups/snapshots")).is_empty());
    assert!(dir_names(&env.path("backups/tmp")).is_empty());
}

// ---------------------------------------------------------------------------
// snapshot layout and selection

#[test]
fn snapshot_dirs_are_private_and_files_read_only() {
    let env = Env::new();
    let id = env.snapshot(&[]);
    let root = env.snapshot_dir(&id);
    let mut files = 0;
    let mut dirs = 0;
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o700, "{} has mode {mode:o}", dir.display());
        dirs += 1;
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            if meta.is_dir() {
                stack.push(p);
            } else if meta.is_file() {
                let mode = meta.permissions().mode() & 0o7777;
                assert_eq!(mode & 0o222, 0, "{} is writable ({mode:o})", p.display());
                assert_eq!(
                    mode & 0o077,
                    0,
                    "{} is readable by others ({mode:o})",
                    p.display()
                );
                files += 1;
            }
        }
    }
    // manifest + db + registry + chroma.sqlite3 + two segment files.
    assert!(files >= 6, "{files} files");
    assert!(dirs >= 5, "{dirs} dirs");
    let snapshots_mode = std::fs::metadata(env.path("backups/snapshots"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(
        snapshots_mode & 0o077,
        0,
        "snapshots/ is {snapshots_mode:o}"
    );
}

#[test]
fn only_and_skip_select_stores() {
    let env = Env::new();

    let only = env.cairn(&["--json", "snapshot", "--only", "db,registry"]);
    assert_eq!(only.code, 0, "{}\n{}", only.stdout, only.stderr);
    let only = only.json();
    assert_eq!(store_names(&only), ["db", "registry"]);
    let dir = env.snapshot_dir(only["id"].as_str().unwrap());
    assert_eq!(dir_names(&dir.join("stores")), ["db", "registry"]);

    let only_one = env.cairn(&["--json", "snapshot", "--only", "chroma"]);
    assert_eq!(only_one.code, 0, "{}", only_one.stderr);
    let only_one = only_one.json();
    assert_eq!(store_names(&only_one), ["chroma"]);
    let dir = env.snapshot_dir(only_one["id"].as_str().unwrap());
    assert_eq!(dir_names(&dir.join("stores")), ["chroma"]);

    let skip = env.cairn(&["--json", "snapshot", "--skip", "db"]);
    assert_eq!(skip.code, 0, "{}", skip.stderr);
    let skip = skip.json();
    assert_eq!(store_names(&skip), ["registry", "chroma"]);
    let dir = env.snapshot_dir(skip["id"].as_str().unwrap());
    assert_eq!(dir_names(&dir.join("stores")), ["chroma", "registry"]);

    let count = env.listed_ids().len();
    for args in [
        &["snapshot", "--only", "nope"][..],
        &["snapshot", "--only", "db,nope"][..],
        &["snapshot", "--skip", "nope"][..],
    ] {
        let run = env.cairn(args);
        assert_eq!(run.code, 2, "{args:?}:\n{}\n{}", run.stdout, run.stderr);
        assert!(run.stderr.contains("nope"), "{}", run.stderr);
    }
    assert_eq!(env.listed_ids().len(), count);
    assert!(dir_names(&env.path("backups/tmp")).is_empty());
}

// ---------------------------------------------------------------------------
// hooks

fn config_with_hooks(hooks: &str) -> String {
    // Top-level keys first, then the hooks table, then the stores.
    support::CONFIG.replacen("[[store]]", &format!("{hooks}\n[[store]]"), 1)
}

#[test]
fn failing_before_snapshot_hook_aborts_with_no_snapshot() {
    let env = Env::new();
    let after = env.path("after-ran");
    env.write_config(&config_with_hooks(&format!(
        "[hooks]\nbefore_snapshot = [\"false\"]\nafter_snapshot = [\"touch\", {:?}]\n",
        after.to_str().unwrap()
    )));
    let run = env.cairn(&["--json", "snapshot"]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("before_snapshot"), "{}", run.stderr);
    assert!(env.listed_ids().is_empty());
    assert!(dir_names(&env.path("backups/tmp")).is_empty());
}

#[test]
fn hooks_run_around_a_successful_snapshot() {
    let env = Env::new();
    let marker_dir = env.path("hooks");
    std::fs::create_dir(&marker_dir).unwrap();
    let before = marker_dir.join("before");
    let after = marker_dir.join("after");
    env.write_config(&config_with_hooks(&format!(
        "[hooks]\nbefore_snapshot = [\"touch\", {:?}]\nafter_snapshot = [\"touch\", {:?}]\n",
        before.to_str().unwrap(),
        after.to_str().unwrap()
    )));
    let id = env.snapshot(&[]);
    assert!(before.exists(), "before_snapshot did not run");
    assert!(after.exists(), "after_snapshot did not run");
    assert_eq!(env.listed_ids(), [id]);
}

#[test]
fn after_snapshot_hook_runs_even_when_the_snapshot_failed() {
    let env = Env::new();
    let after = env.path("after-ran");
    env.write_config(&config_with_hooks(&format!(
        "[hooks]\nafter_snapshot = [\"touch\", {:?}]\n",
        after.to_str().unwrap()
    )));
    // A required store whose source is gone: the snapshot fails.
    std::fs::remove_dir_all(env.path("data/chroma")).unwrap();
    let run = env.cairn(&["--json", "snapshot"]);
    assert_eq!(run.code, 4, "{}\n{}", run.stdout, run.stderr);
    assert!(after.exists(), "after_snapshot did not run after a failure");
    assert!(env.listed_ids().is_empty());
}

// ---------------------------------------------------------------------------
// stores, init, show

#[test]
fn stores_lists_the_three_kinds() {
    let env = Env::empty();
    let run = env.cairn(&["--json", "stores"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let json = run.json();
    let kinds: Vec<&str> = json["stores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["kind"].as_str().unwrap())
        .collect();
    for kind in ["sqlite", "registry-json", "chroma-dir"] {
        assert!(kinds.contains(&kind), "{kind} not in {kinds:?}");
    }
    let chroma = json["stores"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == "chroma-dir")
        .unwrap();
    assert!(
        chroma["options"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["name"] == "lock_file"),
        "{chroma}"
    );

    let human = env.cairn(&["stores"]);
    assert_eq!(human.code, 0);
    for kind in ["sqlite", "registry-json", "chroma-dir"] {
        assert!(human.stdout.contains(kind), "{}", human.stdout);
    }
}

#[test]
fn init_writes_a_config_that_parses() {
    let env = Env::empty();
    let path = env.path("etc/cairn/cairn.toml");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let run = env.cairn(&["init", "--path", path.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("[[store]]"), "{text}");
    assert!(text.contains('#'), "the starter config should be commented");

    let list = env.cairn(&["--config", path.to_str().unwrap(), "--json", "list"]);
    assert_eq!(list.code, 0, "{}\n{}", list.stdout, list.stderr);
    assert_eq!(list.json()["snapshots"], serde_json::json!([]));

    // init never overwrites an existing config.
    std::fs::write(&path, "repository = \"mine\"\n").unwrap();
    let again = env.cairn(&["init", "--path", path.to_str().unwrap()]);
    assert_ne!(again.code, 0, "init overwrote {}", path.display());
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "repository = \"mine\"\n"
    );
}

#[test]
fn show_summarizes_and_dumps_the_manifest() {
    let env = Env::new();
    let id = env.snapshot(&["--at", "2026-04-06T18:00:00Z", "--tag", "nightly"]);
    let run = env.cairn(&["--json", "show", &id]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let json = run.json();
    assert_eq!(json["id"], id);
    assert_eq!(json["tags"], serde_json::json!(["nightly"]));
    let db = json["stores"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "db")
        .unwrap();
    assert_eq!(db["kind"], "sqlite");
    assert_eq!(db["metadata"]["journal_mode"], "wal");
    let entry = &db["entries"][0];
    assert_eq!(entry["path"], "atocore.db");
    let (_, sha) =
        cairn_engine::fsutil::hash_file(&env.snapshot_dir(&id).join("stores/db/atocore.db"))
            .unwrap();
    assert_eq!(entry["sha256"], sha.to_hex());

    let human = env.cairn(&["show", &id]);
    assert_eq!(human.code, 0, "{}", human.stderr);
    for needle in [id.as_str(), "db", "registry", "chroma", "nightly"] {
        assert!(human.stdout.contains(needle), "{needle}:\n{}", human.stdout);
    }

    let missing = env.cairn(&["show", "20200101T000000Z"]);
    assert_ne!(missing.code, 0);
    assert!(
        missing.stderr.contains("20200101T000000Z"),
        "{}",
        missing.stderr
    );
}

// ---------------------------------------------------------------------------
// more damage and edge cases

#[test]
fn validate_finds_truncated_file_in_deep_and_quick_mode() {
    let env = Env::new();
    let id = env.snapshot(&[]);
    env.unlock_snapshot(&id);
    let seg = env
        .snapshot_dir(&id)
        .join("stores/chroma/seg-0001/data_level0.bin");
    let bytes = std::fs::read(&seg).unwrap();
    std::fs::write(&seg, &bytes[..bytes.len() - 1]).unwrap();

    for quick in [false, true] {
        let mut args = vec!["--json", "validate", id.as_str()];
        if quick {
            args.push("--quick");
        }
        let run = env.cairn(&args);
        assert_eq!(run.code, 1, "{args:?}: {}\n{}", run.stdout, run.stderr);
        let errors = run.json()["results"][0]["errors"]
            .as_array()
            .unwrap()
            .clone();
        assert_error(
            &errors,
            "file_size_mismatch",
            Some("chroma"),
            "seg-0001/data_level0.bin",
        );
    }
}

#[test]
fn validate_latest_checks_only_the_newest() {
    let env = Env::new();
    let old = env.snapshot(&["--at", "2026-04-06T10:00:00Z"]);
    let new = env.snapshot(&["--at", "2026-04-06T11:00:00Z"]);
    // Damage the older one: --latest must not look at it.
    env.unlock_snapshot(&old);
    std::fs::remove_file(env.snapshot_dir(&old).join("stores/db/atocore.db")).unwrap();

    let latest = env.cairn(&["--json", "validate", "--latest"]);
    assert_eq!(latest.code, 0, "{}\n{}", latest.stdout, latest.stderr);
    let json = latest.json();
    let results = json["results"].as_array().unwrap();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0]["id"], new.as_str());
    assert_eq!(results[0]["valid"], true);

    let all = env.cairn(&["--json", "validate", "--all"]);
    assert_eq!(all.code, 1, "{}", all.stdout);
    let json = all.json();
    let bad = json["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == old.as_str())
        .unwrap();
    assert_eq!(bad["valid"], false);
    assert_error(
        bad["errors"].as_array().unwrap(),
        "file_missing",
        Some("db"),
        "atocore.db",
    );
}

#[test]
fn manifest_with_an_escaping_entry_path_is_invalid_and_nothing_panics() {
    let env = Env::new();
    let id = env.snapshot(&[]);
    env.unlock_snapshot(&id);
    let manifest_path = env.snapshot_dir(&id).join("manifest.json");
    let good = std::fs::read(&manifest_path).unwrap();

    for evil in [
        "../../../../etc/passwd",
        "/etc/passwd",
        "seg-0001//header.bin",
    ] {
        let mut manifest = cairn_engine::Manifest::parse(&good, &id).unwrap();
        let chroma = manifest
            .stores
            .iter_mut()
            .find(|s| s.name == "chroma")
            .unwrap();
        let entry = chroma
            .entries
            .iter_mut()
            .find(|e| e.path == "seg-0001/header.bin")
            .unwrap();
        entry.path = evil.into();
        // A digest that matches: only the path rule can catch it.
        std::fs::write(&manifest_path, manifest.to_bytes()).unwrap();

        let (run, errors) = validate(&env, &id);
        assert_eq!(run.code, 1, "{evil}: {}\n{}", run.stdout, run.stderr);
        assert!(
            errors.iter().any(|e| e["code"] == "manifest_invalid"),
            "{evil}: {errors:?}"
        );
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);

        let list = env.cairn(&["--json", "list"]);
        assert_eq!(list.code, 0, "{}", list.stderr);
        assert_eq!(list.json()["snapshots"][0]["problem"], "manifest_invalid");

        let show = env.cairn(&["show", &id]);
        assert_ne!(show.code, 0, "{evil}: show accepted it:\n{}", show.stdout);
        assert!(!show.stderr.contains("panicked"), "{}", show.stderr);
    }
}

#[test]
fn chroma_tree_keeps_symlinks_as_links_modes_and_mtimes() {
    let env = Env::new();
    let outside = env.path("outside-secret.txt");
    std::fs::write(&outside, b"must not be copied").unwrap();
    std::os::unix::fs::symlink(&outside, env.path("data/chroma/link-out")).unwrap();
    std::os::unix::fs::symlink("seg-0001/header.bin", env.path("data/chroma/link-in")).unwrap();
    let header = env.path("data/chroma/seg-0001/header.bin");
    std::fs::set_permissions(&header, std::fs::Permissions::from_mode(0o640)).unwrap();

    let id = env.snapshot(&[]);
    let copy = env.snapshot_dir(&id).join("stores/chroma");
    for (name, target) in [
        ("link-out", outside.to_str().unwrap()),
        ("link-in", "seg-0001/header.bin"),
    ] {
        let meta = std::fs::symlink_metadata(copy.join(name)).unwrap();
        assert!(meta.file_type().is_symlink(), "{name} was followed");
        assert_eq!(
            std::fs::read_link(copy.join(name)).unwrap(),
            Path::new(target)
        );
    }

    let show = env.cairn(&["--json", "show", &id]).json();
    let chroma = show["stores"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "chroma")
        .unwrap();
    let entry = |p: &str| {
        chroma["entries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["path"] == p)
            .unwrap_or_else(|| panic!("no entry {p}: {chroma}"))
            .clone()
    };
    let link = entry("link-out");
    assert_eq!(link["type"], "symlink");
    assert_eq!(link["target"], outside.to_str().unwrap());
    assert!(link.get("sha256").is_none_or(Value::is_null), "{link}");
    let h = entry("seg-0001/header.bin");
    assert_eq!(h["mode"], 0o640);
    let src_meta = std::fs::metadata(&header).unwrap();
    let src_mtime_ns = {
        use std::os::unix::fs::MetadataExt;
        src_meta.mtime() * 1_000_000_000 + src_meta.mtime_nsec()
    };
    assert_eq!(h["mtime_ns"], src_mtime_ns);
    assert_eq!(entry("empty-dir")["type"], "dir");

    let (run, errors) = validate(&env, &id);
    assert_eq!(run.code, 0, "{errors:?}");
}

#[test]
fn busy_repository_lock_refuses_with_exit_3() {
    let env = Env::new();
    env.write_config(&support::CONFIG.replace("lock_wait_seconds = 5", "lock_wait_seconds = 0"));
    let first = env.snapshot(&["--at", "2026-04-06T10:00:00Z"]);
    let lock = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(env.path("backups/lock"))
        .unwrap();
    lock.lock().unwrap();

    for args in [&["snapshot"][..], &["prune", "--confirm"][..]] {
        let run = env.cairn(args);
        assert_eq!(run.code, 3, "{args:?}: {}\n{}", run.stdout, run.stderr);
        assert!(
            run.stderr
                .contains(&*env.path("backups/lock").to_string_lossy()),
            "the message should name the lock: {}",
            run.stderr
        );
    }
    assert_eq!(env.listed_ids(), [first.as_str()]);
    assert!(dir_names(&env.path("backups/tmp")).is_empty());

    drop(lock);
    let second = env.snapshot(&[]);
    assert_eq!(env.listed_ids(), [first, second]);
}

#[test]
fn relative_paths_resolve_against_the_config_directory() {
    let env = Env::new();
    let elsewhere = tempfile::tempdir().unwrap();
    let config = env.path("cairn.toml");
    let run: Run = std::process::Command::new(support::CAIRN)
        .current_dir(elsewhere.path())
        .env_remove("CAIRN_FAILPOINT")
        .env("CAIRN_CONFIG", &config)
        .args(["--json", "snapshot"])
        .output()
        .unwrap()
        .into();
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let id = run.json()["id"].as_str().unwrap().to_owned();
    assert!(env.snapshot_dir(&id).join("manifest.json").is_file());
    assert!(dir_names(elsewhere.path()).is_empty(), "wrote into the cwd");
}

#[test]
fn tags_and_bad_at_values() {
    let env = Env::new();
    let id = env.snapshot(&["--tag", "nightly", "--tag", "before-upgrade"]);
    let list = env.cairn(&["--json", "list"]).json();
    assert_eq!(
        list["snapshots"][0]["tags"],
        serde_json::json!(["nightly", "before-upgrade"])
    );
    assert_eq!(list["snapshots"][0]["id"], id.as_str());

    for at in ["yesterday", "2026-13-01T00:00:00Z", "20260406T180000Z"] {
        let run = env.cairn(&["snapshot", "--at", at]);
        assert_eq!(run.code, 2, "--at {at}: {}\n{}", run.stdout, run.stderr);
        assert!(
            run.stderr.contains("--at") || run.stderr.contains(at),
            "{}",
            run.stderr
        );
    }
    assert_eq!(env.listed_ids(), [id]);
}

#[test]
fn chroma_lock_file_held_by_the_service_blocks_the_copy() {
    let env = Env::new();
    env.write_config(&support::CONFIG.replace(
        "lock_file = \"data/.ingest.lock\"",
        "lock_file = \"data/.ingest.lock\"\nlock_timeout_seconds = 0",
    ));
    // The service is ingesting: it holds the lock.
    let lock_path = env.path("data/.ingest.lock");
    let held = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .unwrap();
    held.lock().unwrap();

    let run = env.cairn(&["--json", "snapshot"]);
    assert_ne!(
        run.code, 0,
        "copied the tree while the service held its lock"
    );
    assert_ne!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains(".ingest.lock"),
        "the message should name the lock file: {}",
        run.stderr
    );
    assert!(env.listed_ids().is_empty());
    assert!(dir_names(&env.path("backups/tmp")).is_empty());

    // Other stores can still be snapshotted; chroma once the lock is free.
    env.snapshot(&["--skip", "chroma"]);
    drop(held);
    let id = env.snapshot(&["--only", "chroma"]);
    assert!(env
        .snapshot_dir(&id)
        .join("stores/chroma/seg-0001/data_level0.bin")
        .is_file());
}

/// Issue 7: a file unchanged since the last snapshot is hard-linked from it
/// (same inode, same hash) rather than copied again; a changed file, a
/// written embedded database and `--full` get fresh copies. Every snapshot
/// still validates byte for byte.
#[test]
fn unchanged_files_are_shared_with_the_parent_snapshot() {
    use std::os::unix::fs::MetadataExt;
    let env = Env::new();
    let ino = |id: &str, rel: &str| {
        std::fs::metadata(env.snapshot_dir(id).join("stores/chroma").join(rel))
            .unwrap()
            .ino()
    };
    support::let_timestamps_settle();
    let first = env.snapshot(&[]);
    let second = env.snapshot(&[]);
    for rel in [
        "seg-0001/data_level0.bin",
        "seg-0001/header.bin",
        "chroma.sqlite3",
    ] {
        assert_eq!(ino(&first, rel), ino(&second, rel), "{rel} not shared");
    }

    // Touch what changed; everything else stays shared.
    std::fs::write(env.path("data/chroma/seg-0001/header.bin"), b"header v2").unwrap();
    rusqlite::Connection::open(env.path("data/chroma/chroma.sqlite3"))
        .unwrap()
        .execute("INSERT INTO embeddings(doc) VALUES ('new')", [])
        .unwrap();
    let third = env.snapshot(&[]);
    assert_eq!(
        ino(&second, "seg-0001/data_level0.bin"),
        ino(&third, "seg-0001/data_level0.bin")
    );
    assert_ne!(
        ino(&second, "seg-0001/header.bin"),
        ino(&third, "seg-0001/header.bin")
    );
    assert_ne!(
        ino(&second, "chroma.sqlite3"),
        ino(&third, "chroma.sqlite3")
    );
    let copy = rusqlite::Connection::open(
        env.snapshot_dir(&third)
            .join("stores/chroma/chroma.sqlite3"),
    )
    .unwrap();
    let rows: i64 = copy
        .query_row("SELECT count(*) FROM embeddings", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 2);
    assert_eq!(
        std::fs::read(
            env.snapshot_dir(&third)
                .join("stores/chroma/seg-0001/header.bin")
        )
        .unwrap(),
        b"header v2"
    );

    let full = env.snapshot(&["--full"]);
    assert_ne!(
        ino(&third, "seg-0001/data_level0.bin"),
        ino(&full, "seg-0001/data_level0.bin")
    );
    let run = env.cairn(&["validate", "--all"]);
    assert_eq!(run.code, 0, "{}", run.stdout);
}

#[test]
fn a_planted_last_sequence_number_never_wraps_the_next_id() {
    // `…-4294967295` is the largest sequence an id holds; the next snapshot
    // of that second must not wrap to `…` (which would sort before it and
    // be the one prune deletes).
    let env = Env::new();
    let first = env.snapshot(&["--at", "2026-04-06T18:00:00Z"]);
    assert_eq!(first, "20260406T180000Z");
    let planted = env.path("backups/snapshots/20260406T180000Z-4294967295");
    std::fs::create_dir(&planted).unwrap();

    let run = env.cairn(&["snapshot", "--at", "2026-04-06T18:00:00Z"]);
    assert_eq!(run.code, 2, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("20260406T180000Z-4294967295"),
        "{}",
        run.stderr
    );
    // Nothing new was published.
    let names = support::dir_names(&env.path("backups/snapshots"));
    assert_eq!(
        names,
        vec!["20260406T180000Z", "20260406T180000Z-4294967295"]
    );
}
