//! The safety net under restore: the pre-restore snapshot is verified
//! before anything is swapped, damaged live stores are captured byte for
//! byte instead of blocking the restore, captured bytes can always be got
//! back, a rolled-back restore says so per store, and each situation has
//! one exit class. Each test asserts on bytes and rows, not on flags.

use std::os::unix::fs::PermissionsExt;

use serde_json::Value;

use crate::support::{self, memories, Env};

const GARBAGE_DB: &[u8] = b"this was a database until the disk ate it\n\x00\x01\x02 garbage";
const BAD_JSON: &[u8] = b"{\"projects\": [";

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

// ---------------------------------------------------------------------------
// 1. The pre-restore snapshot is verified before anything is swapped.

/// The latest snapshot's copy of a file rots (one flipped bit). The next
/// pre-restore snapshot would hard-link that copy (the live file is
/// unchanged); the way back must still give the live bytes back.
#[test]
fn a_rotten_copy_in_the_latest_snapshot_never_becomes_the_way_back() {
    let env = Env::new();
    let s0 = env.snapshot(&[]);
    let added = env.path("data/chroma/added-after-s0.bin");
    let added_bytes: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&added, &added_bytes).unwrap();
    let s1 = env.snapshot(&[]);
    // S1's own copy (not shared with S0: the file is newer) rots.
    env.unlock_snapshot(&s1);
    let rotten = env
        .snapshot_dir(&s1)
        .join("stores/chroma/added-after-s0.bin");
    support::flip_byte(&rotten, 1234, 0x10);
    // Rot keeps the file's mode: read-only, as Cairn left it.
    std::fs::set_permissions(&rotten, std::fs::Permissions::from_mode(0o400)).unwrap();

    let run = env.cairn(&["--json", "restore", &s0, "--confirm-service-stopped"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(!added.exists(), "S0 has no such file: it was restored");
    let pre = run.json()["pre_restore_snapshot"]
        .as_str()
        .expect("a pre-restore snapshot")
        .to_owned();

    // The unsound first build was discarded: S0, S1 and one way back.
    assert_eq!(env.listed_ids(), [s0.clone(), s1.clone(), pre.clone()]);
    // The way back is sound, and it gives back the live bytes exactly.
    let validated = env.cairn(&["--json", "validate", &pre]);
    assert_eq!(
        validated.code, 0,
        "the pre-restore snapshot must validate: {}",
        validated.stdout
    );
    let back = env.cairn(&["--json", "restore", &pre, "--confirm-service-stopped"]);
    assert_eq!(back.code, 0, "{}\n{}", back.stdout, back.stderr);
    assert_eq!(std::fs::read(&added).unwrap(), added_bytes);
}

// ---------------------------------------------------------------------------
// 2. A damaged live store never blocks a restore, and is never thrown away.

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
fn a_garbage_live_database_is_restored_over_and_the_way_back_returns_its_bytes() {
    let env = Env::new();
    let s0 = env.snapshot(&[]);
    wreck_live_db(&env);

    let run = env.cairn(&["--json", "restore", &s0, "--confirm-service-stopped"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let doc = run.json();
    assert_eq!(
        memories(&env.path("data/atocore.db")),
        ["baseline memory"],
        "S0's rows are live"
    );
    let pre = doc["pre_restore_snapshot"].as_str().unwrap().to_owned();
    assert_eq!(
        std::fs::read(env.snapshot_dir(&pre).join("stores/db/atocore.db")).unwrap(),
        GARBAGE_DB,
        "the pre-restore snapshot holds the damaged bytes exactly"
    );
    assert_eq!(
        codes(&doc["pre_restore_problems"]),
        [("sqlite_integrity_failed".to_owned(), "db".to_owned())],
        "the report flags the pre-restore snapshot as unsound, with the reason: {doc}"
    );

    // The way back puts back exactly what was there (and says it is bad).
    let back = env.cairn(&["--json", "restore", &pre, "--confirm-service-stopped"]);
    assert_eq!(back.code, 1, "{}\n{}", back.stdout, back.stderr);
    let back_doc = back.json();
    assert_eq!(store(&back_doc, "db")["restored"], true, "{back_doc}");
    assert_eq!(
        std::fs::read(env.path("data/atocore.db")).unwrap(),
        GARBAGE_DB
    );
    assert!(
        back_doc["problems"]
            .to_string()
            .contains("sqlite_integrity_failed"),
        "{back_doc}"
    );
}

/// Only a pre-restore snapshot may be restored live with a failing kind
/// check; any other is refused, with a hint naming it and --skip.
#[test]
fn a_snapshot_failing_its_kind_check_is_refused_live_unless_it_is_a_way_back() {
    let env = Env::new();
    wreck_live_db(&env);
    let bad = env.cairn(&["--json", "snapshot"]);
    assert_eq!(bad.code, 1, "{}\n{}", bad.stdout, bad.stderr);
    let id = bad.json()["id"].as_str().unwrap().to_owned();
    // The live database is repaired by hand meanwhile.
    std::fs::remove_file(env.path("data/atocore.db")).unwrap();
    let db = env.db();
    db.execute_batch(
        "CREATE TABLE memories(id INTEGER PRIMARY KEY, content TEXT NOT NULL);
         INSERT INTO memories(content) VALUES ('repaired by hand');",
    )
    .unwrap();
    drop(db);
    let before = support::tree(&env.path("data"));

    let run = env.cairn(&["restore", &id, "--confirm-service-stopped"]);
    assert_eq!(run.code, 3, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("sqlite_integrity_failed"),
        "{}",
        run.stderr
    );
    let hint = run
        .stderr
        .lines()
        .find(|l| l.starts_with("hint:"))
        .unwrap_or_default();
    assert!(
        hint.contains(&format!("cairn validate {id}")) && hint.contains("--skip db"),
        "the hint names the snapshot and how to leave the store out: {hint}"
    );
    assert_eq!(support::tree(&env.path("data")), before, "nothing touched");
    assert_eq!(memories(&env.path("data/atocore.db")), ["repaired by hand"]);

    // Leaving the damaged store out works.
    let run = env.cairn(&["restore", &id, "--confirm-service-stopped", "--skip", "db"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
}

// ---------------------------------------------------------------------------
// 6. Captured bytes can always be got back.

#[test]
fn restore_to_gets_back_the_bytes_of_an_invalid_json_registry() {
    let env = Env::new();
    std::fs::write(env.path("config/project-registry.json"), BAD_JSON).unwrap();
    let snap = env.cairn(&["--json", "snapshot"]);
    assert_eq!(snap.code, 1, "{}\n{}", snap.stdout, snap.stderr);
    let id = snap.json()["id"].as_str().unwrap().to_owned();
    let out = tempfile::tempdir().unwrap();
    let to = out.path().join("got-back");

    let run = env.cairn(&["restore", &id, "--to", to.to_str().unwrap()]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("json_invalid"), "{}", run.stdout);
    assert_eq!(
        std::fs::read(to.join("registry/project-registry.json")).unwrap(),
        BAD_JSON
    );
    assert_eq!(
        memories(&to.join("db/atocore.db")),
        ["baseline memory"],
        "the sound stores come back too"
    );
}

#[test]
fn the_way_back_from_an_invalid_json_registry_is_not_refused_as_a_whole() {
    let env = Env::new();
    let s0 = env.snapshot(&[]);
    std::fs::write(env.path("config/project-registry.json"), BAD_JSON).unwrap();
    env.db()
        .execute("INSERT INTO memories(content) VALUES ('after s0')", [])
        .unwrap();

    let run = env.cairn(&["--json", "restore", &s0, "--confirm-service-stopped"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let pre = run.json()["pre_restore_snapshot"]
        .as_str()
        .unwrap()
        .to_owned();

    let back = env.cairn(&["restore", &pre, "--confirm-service-stopped"]);
    assert_eq!(back.code, 1, "{}\n{}", back.stdout, back.stderr);
    assert!(back.stdout.contains("json_invalid"), "{}", back.stdout);
    assert_eq!(
        std::fs::read(env.path("config/project-registry.json")).unwrap(),
        BAD_JSON
    );
    assert_eq!(
        memories(&env.path("data/atocore.db")),
        ["baseline memory", "after s0"]
    );
}

// ---------------------------------------------------------------------------
// 7. A rolled-back restore says what each store ended as.

#[test]
fn a_rolled_back_restore_reports_every_store_as_rolled_back() {
    let env = Env::new();
    let id = env.snapshot(&[]);
    // A machine with no live paths: rolling back removes what was swapped.
    std::fs::remove_dir_all(env.path("data")).unwrap();
    std::fs::remove_dir_all(env.path("config")).unwrap();
    let fail = [("CAIRN_FAILPOINT", "swap:chroma")];

    let run = env.cairn_env(
        &["--json", "restore", &id, "--confirm-service-stopped"],
        &fail,
    );
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let doc = run.json();
    assert_eq!(doc["rolled_back"], true, "{doc}");
    for name in ["db", "registry", "chroma"] {
        assert_eq!(store(&doc, name)["restored"], false, "{name}: {doc}");
    }
    assert!(
        !env.path("data/atocore.db").exists(),
        "rolled back: removed"
    );
    assert!(!env.path("config/project-registry.json").exists());

    let run = env.cairn_env(&["restore", &id, "--confirm-service-stopped"], &fail);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let line = |name: &str| {
        run.stdout
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no line for {name}:\n{}", run.stdout))
            .to_owned()
    };
    for name in ["db", "registry"] {
        let l = line(name);
        assert!(l.contains("rolled back"), "{l}\n{}", run.stdout);
        assert!(!l.contains("restored"), "{l}\n{}", run.stdout);
    }
    assert!(line("chroma").contains("NOT restored"), "{}", run.stdout);
    assert!(!run.stdout.contains("integrity ok"), "{}", run.stdout);
    assert!(!env.path("data/atocore.db").exists());
}

// ---------------------------------------------------------------------------
// 9. Every configured store is named; one class per situation.

#[test]
fn a_configured_store_missing_from_the_snapshot_is_named() {
    let env = Env::new();
    let id = env.snapshot(&["--only", "db"]);
    let chroma_before = support::tree(&env.path("data/chroma"));

    let run = env.cairn(&["--json", "restore", &id, "--confirm-service-stopped"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let doc = run.json();
    for name in ["registry", "chroma"] {
        let s = store(&doc, name);
        assert_eq!(s["restored"], false, "{doc}");
        assert!(
            s["skipped"]
                .as_str()
                .unwrap_or_default()
                .contains("not in this snapshot"),
            "{doc}"
        );
    }
    let human = env.cairn(&["restore", &id, "--confirm-service-stopped"]);
    assert!(
        human
            .stdout
            .lines()
            .any(|l| l.contains("chroma") && l.contains("not in this snapshot, left as is")),
        "{}",
        human.stdout
    );
    assert_eq!(support::tree(&env.path("data/chroma")), chroma_before);
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
