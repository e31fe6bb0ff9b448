//! The safety net under restore: the pre-restore snapshot is verified
//! before anything is swapped, damaged live stores are captured byte for
//! byte instead of blocking the restore, captured bytes can always be got
//! back, a rolled-back restore says so per store, and each situation has
//! one exit class. Each test asserts on bytes and rows, not on flags.

use serde_json::Value;

use crate::support::{self, Env};

const GARBAGE_DB: &[u8] = b"this was a database until the disk ate it\n\x00\x01\x02 garbage";

fn store<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["stores"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no store {name} in {doc}"))
}

/// Replaces the live database with bytes that are not a database (its
/// sidecars gone with it).
fn wreck_live_db(env: &Env) {
    for suffix in ["-wal", "-shm", "-journal"] {
        let _ = std::fs::remove_file(env.path(&format!("data/atocore.db{suffix}")));
    }
    std::fs::write(env.path("data/atocore.db"), GARBAGE_DB).unwrap();
}

fn codes(errors: &Value) -> Vec<(String, String)> {
    errors
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {errors}"))
        .iter()
        .map(|e| {
            (
                e["code"].as_str().unwrap_or_default().to_owned(),
                e["store"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[test]
fn a_snapshot_of_a_garbage_sqlite_source_keeps_its_bytes_and_exits_1() {
    let env = Env::new();
    wreck_live_db(&env);
    let run = env.cairn(&["--json", "snapshot"]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let doc = run.json();
    assert_eq!(doc["validated"], false, "{doc}");
    assert_eq!(
        codes(&doc["validation_errors"]),
        [("sqlite_integrity_failed".to_owned(), "db".to_owned())],
        "{doc}"
    );
    let db = store(&doc, "db");
    assert_eq!(db["status"], "captured", "{doc}");
    assert!(
        db["warnings"].to_string().contains("not a database"),
        "the record says why the bytes were copied as they are: {doc}"
    );
    let id = doc["id"].as_str().unwrap();
    assert_eq!(
        std::fs::read(env.snapshot_dir(id).join("stores/db/atocore.db")).unwrap(),
        GARBAGE_DB,
        "the snapshot holds the source's bytes exactly"
    );
    // Not refused as a whole: `validate` says the same, and the other
    // stores are whole.
    let validated = env.cairn(&["--json", "validate", id]);
    assert_eq!(validated.code, 1);
    assert_eq!(
        codes(&validated.json()["results"][0]["errors"]),
        [("sqlite_integrity_failed".to_owned(), "db".to_owned())]
    );
}

#[test]
fn a_database_locked_past_its_busy_timeout_is_service_busy_exit_3() {
    let env = Env::new();
    env.write_config(&support::CONFIG.replace(
        "path = \"data/atocore.db\"\n",
        "path = \"data/atocore.db\"\nbusy_timeout_seconds = 1\n",
    ));
    // A rollback-journal writer holding its exclusive lock.
    let db = env.db();
    db.execute_batch("PRAGMA journal_mode=DELETE;").unwrap();
    db.execute_batch("BEGIN EXCLUSIVE; INSERT INTO memories(content) VALUES ('in flight');")
        .unwrap();

    let run = env.cairn(&["snapshot", "--only", "db"]);
    assert_eq!(run.code, 3, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("locked"), "{}", run.stderr);
    assert!(env.listed_ids().is_empty());
    assert!(support::dir_names(&env.path("backups/tmp")).is_empty());
    db.execute_batch("COMMIT").unwrap();
}
