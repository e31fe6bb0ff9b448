//! `cairn import-legacy` (issue 17, point 6): a directory built the
//! reference's way (`create_runtime_backup`: an SQLite online backup, a
//! copy of the registry, `copytree` of the chroma directory and
//! `backup-metadata.json` with its keys) imports, validates and restores;
//! damaged and hostile ones are reported and never followed.

use std::path::{Path, PathBuf};

use rusqlite::Connection;
use serde_json::{json, Value};

use crate::support::{self, Env};

/// One reference snapshot of the env's live state, as ops/backup.py makes
/// it; returns its directory.
fn legacy_snapshot(env: &Env, legacy: &Path, stamp: &str, created_at: &str) -> PathBuf {
    let root = legacy.join("snapshots").join(stamp);
    let (db_dir, config_dir, chroma_dir) =
        (root.join("db"), root.join("config"), root.join("chroma"));
    std::fs::create_dir_all(&db_dir).unwrap();
    std::fs::create_dir_all(&config_dir).unwrap();
    // _backup_sqlite_db: source_conn.backup(dest_conn)
    let src = Connection::open(env.path("data/atocore.db")).unwrap();
    let mut dst = Connection::open(db_dir.join("atocore.db")).unwrap();
    rusqlite::backup::Backup::new(&src, &mut dst)
        .unwrap()
        .run_to_completion(1000, std::time::Duration::ZERO, None)
        .unwrap();
    drop(dst);
    drop(src);
    // registry_snapshot.write_text(registry_path.read_text())
    std::fs::copy(
        env.path("config/project-registry.json"),
        config_dir.join("project-registry.json"),
    )
    .unwrap();
    // shutil.copytree(source_chroma, chroma_backup_dir)
    copytree(&env.path("data/chroma"), &chroma_dir);
    let (mut files, mut bytes) = (0u64, 0u64);
    count(&chroma_dir, &mut files, &mut bytes);
    let metadata = json!({
        "created_at": created_at,
        "backup_root": root.display().to_string(),
        "db_snapshot_path": db_dir.join("atocore.db").display().to_string(),
        "db_size_bytes": std::fs::metadata(db_dir.join("atocore.db")).unwrap().len(),
        "registry_snapshot_path": config_dir.join("project-registry.json").display().to_string(),
        "chroma_snapshot_path": chroma_dir.display().to_string(),
        "chroma_snapshot_bytes": bytes,
        "chroma_snapshot_files": files,
        "chroma_snapshot_included": true,
        "vector_store_note": "Chroma snapshot included as cold directory copy.",
    });
    std::fs::write(
        root.join("backup-metadata.json"),
        serde_json::to_string_pretty(&metadata).unwrap() + "\n",
    )
    .unwrap();
    root
}

fn copytree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copytree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn count(dir: &Path, files: &mut u64, bytes: &mut u64) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            count(&entry.path(), files, bytes);
        } else {
            *files += 1;
            *bytes += entry.metadata().unwrap().len();
        }
    }
}

fn import(env: &Env, extra: &[&str]) -> (i32, Value) {
    let mut args = vec!["--json", "import-legacy", "legacy"];
    args.extend_from_slice(extra);
    let run = env.cairn(&args);
    assert!(
        run.code == 0 || run.code == 1,
        "{}\n{}",
        run.stdout,
        run.stderr
    );
    (run.code, run.json())
}

fn outcomes(doc: &Value) -> Vec<(String, String)> {
    doc["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_owned(),
                s["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn pair(a: &str, b: &str) -> (String, String) {
    (a.to_owned(), b.to_owned())
}

#[test]
fn a_reference_directory_imports_validates_and_restores() {
    let env = Env::new();
    let legacy = env.path("legacy");
    legacy_snapshot(
        &env,
        &legacy,
        "20260406T180000Z",
        "2026-04-06T18:00:00.250000+00:00",
    );
    env.db()
        .execute("INSERT INTO memories(content) VALUES ('second day')", [])
        .unwrap();
    let second = legacy_snapshot(
        &env,
        &legacy,
        "20260407T180000Z",
        "2026-04-07T18:00:00+00:00",
    );

    // The reference's own WAL-mode copies: reading them must not leave
    // -wal/-shm files (or anything else) in DIR.
    let before = support::tree(&legacy);

    // Dry run: both would import, nothing is left in the repository.
    let (code, doc) = import(&env, &[]);
    assert_eq!(code, 0, "{doc}");
    assert_eq!(doc["dry_run"], true);
    assert_eq!(
        outcomes(&doc),
        vec![
            pair("20260406T180000Z", "would_import"),
            pair("20260407T180000Z", "would_import")
        ]
    );
    assert!(env.listed_ids().is_empty());
    assert!(support::dir_names(&env.path("backups/tmp")).is_empty());

    let (code, doc) = import(&env, &["--confirm"]);
    assert_eq!(code, 0, "{doc}");
    assert_eq!(
        outcomes(&doc),
        vec![
            pair("20260406T180000Z", "imported"),
            pair("20260407T180000Z", "imported")
        ]
    );
    let list = env.cairn(&["--json", "list"]).json();
    let snaps = list["snapshots"].as_array().unwrap();
    assert_eq!(snaps.len(), 2);
    for s in snaps {
        assert_eq!(s["tags"], json!(["imported"]), "{s}");
        assert_eq!(s["stores"], json!(["db", "registry", "chroma"]), "{s}");
        assert_eq!(s["last_validation"]["valid"], true, "{s}");
    }
    assert_eq!(snaps[0]["created_at"], "2026-04-06T18:00:00.250Z");
    assert_eq!(env.cairn(&["validate", "--all"]).code, 0);
    assert_eq!(support::tree(&legacy), before, "DIR was written to");
    assert!(support::dir_names(&env.path("backups/tmp")).is_empty());
    let show = env.cairn(&["--json", "show", "20260407T180000Z"]).json();
    assert!(
        show.to_string().contains("imported from legacy snapshot "),
        "{show}"
    );

    // What comes back is the legacy snapshot's data, row for row and
    // byte for byte.
    let out = env.path("restored");
    let run = env.cairn(&["restore", "20260407T180000Z", "--to", out.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        support::memories(&out.join("db/atocore.db")),
        vec!["baseline memory", "second day"]
    );
    assert_eq!(
        std::fs::read(out.join("registry/project-registry.json")).unwrap(),
        std::fs::read(second.join("config/project-registry.json")).unwrap()
    );
    assert_eq!(
        std::fs::read(out.join("chroma/seg-0001/data_level0.bin")).unwrap(),
        std::fs::read(second.join("chroma/seg-0001/data_level0.bin")).unwrap()
    );

    // Again: both are skipped, with a message.
    let (code, doc) = import(&env, &["--confirm"]);
    assert_eq!(code, 0);
    assert_eq!(
        outcomes(&doc),
        vec![
            pair("20260406T180000Z", "exists"),
            pair("20260407T180000Z", "exists")
        ]
    );
    assert!(doc["snapshots"][0]["problems"][0]
        .as_str()
        .unwrap()
        .contains("already in the repository"));
}

#[test]
fn damaged_legacy_snapshots_are_reported_and_imported_only_when_asked() {
    let env = Env::new();
    let legacy = env.path("legacy");
    legacy_snapshot(
        &env,
        &legacy,
        "20260401T030000Z",
        "2026-04-01T03:00:00+00:00",
    );
    // No database.
    let no_db = legacy_snapshot(
        &env,
        &legacy,
        "20260402T030000Z",
        "2026-04-02T03:00:00+00:00",
    );
    std::fs::remove_file(no_db.join("db/atocore.db")).unwrap();
    // Metadata that is not JSON.
    let garbled = legacy_snapshot(
        &env,
        &legacy,
        "20260403T030000Z",
        "2026-04-03T03:00:00+00:00",
    );
    std::fs::write(
        garbled.join("backup-metadata.json"),
        "{\"created_at\": \"2026-04",
    )
    .unwrap();
    // A database page wrecked after the backup, same size: only SQLite's
    // own check can tell.
    let corrupt = legacy_snapshot(
        &env,
        &legacy,
        "20260404T030000Z",
        "2026-04-04T03:00:00+00:00",
    );
    let db = corrupt.join("db/atocore.db");
    let len = std::fs::metadata(&db).unwrap().len() as usize;
    for at in (4096..len).step_by(97) {
        support::flip_byte(&db, at, 0xff);
    }
    // A database that changed since the metadata.
    let changed = legacy_snapshot(
        &env,
        &legacy,
        "20260405T030000Z",
        "2026-04-05T03:00:00+00:00",
    );
    let conn = Connection::open(changed.join("db/atocore.db")).unwrap();
    conn.execute_batch("CREATE TABLE extra(x); INSERT INTO extra VALUES (zeroblob(100000));")
        .unwrap();
    drop(conn);

    let (code, doc) = import(&env, &[]);
    assert_eq!(code, 1, "{doc}");
    assert_eq!(
        outcomes(&doc),
        vec![
            pair("20260401T030000Z", "would_import"),
            pair("20260402T030000Z", "would_import_damaged"),
            pair("20260403T030000Z", "would_import_damaged"),
            pair("20260404T030000Z", "would_import_damaged"),
            pair("20260405T030000Z", "would_import_damaged"),
        ]
    );
    let text = doc.to_string();
    assert!(text.contains("db/atocore.db is missing"), "{text}");
    assert!(
        text.contains("backup-metadata.json is not valid JSON"),
        "{text}"
    );
    assert!(text.contains("sqlite_integrity_failed"), "{text}");
    assert!(text.contains("the metadata says"), "{text}");
    let human = env.cairn(&["import-legacy", "legacy"]);
    assert_eq!(human.code, 1);
    assert!(human.stdout.contains("DAMAGED"), "{}", human.stdout);
    assert!(
        human.stdout.contains("--include-damaged"),
        "{}",
        human.stdout
    );

    // --confirm imports the sound one only.
    let (code, doc) = import(&env, &["--confirm"]);
    assert_eq!(code, 1);
    assert_eq!(outcomes(&doc)[0], pair("20260401T030000Z", "imported"));
    assert!(
        outcomes(&doc)[1..].iter().all(|(_, o)| o == "damaged"),
        "{doc}"
    );
    assert_eq!(env.listed_ids(), vec!["20260401T030000Z"]);
    assert!(support::dir_names(&env.path("backups/tmp")).is_empty());

    // --include-damaged imports the rest, flagged.
    let (code, doc) = import(&env, &["--confirm", "--include-damaged"]);
    assert_eq!(code, 1);
    assert_eq!(outcomes(&doc)[0], pair("20260401T030000Z", "exists"));
    assert!(
        outcomes(&doc)[1..]
            .iter()
            .all(|(_, o)| o == "imported_damaged"),
        "{doc}"
    );
    let list = env.cairn(&["--json", "list"]).json();
    let rows = list["snapshots"].as_array().unwrap();
    assert_eq!(rows.len(), 5);
    let no_db_row = rows.iter().find(|r| r["id"] == "20260402T030000Z").unwrap();
    assert_eq!(no_db_row["tags"], json!(["imported", "import-damaged"]));
    assert_eq!(no_db_row["stores"], json!(["registry", "chroma"]));
    let corrupt_row = rows.iter().find(|r| r["id"] == "20260404T030000Z").unwrap();
    assert_eq!(
        corrupt_row["problem"], "sqlite_integrity_failed",
        "{corrupt_row}"
    );
    let show = env.cairn(&["--json", "show", "20260405T030000Z"]).json();
    assert!(
        show.to_string()
            .contains("imported from a damaged legacy snapshot"),
        "{show}"
    );
}

#[test]
fn hostile_legacy_directories_are_never_followed_and_never_crash_it() {
    let env = Env::new();
    let legacy = env.path("legacy");
    // A database that is a symlink to a file outside DIR.
    let linked = legacy_snapshot(
        &env,
        &legacy,
        "20260410T030000Z",
        "2026-04-10T03:00:00+00:00",
    );
    std::fs::write(env.path("outside-secret.db"), b"SQLite format 3\0 secret").unwrap();
    std::fs::remove_file(linked.join("db/atocore.db")).unwrap();
    std::os::unix::fs::symlink(env.path("outside-secret.db"), linked.join("db/atocore.db"))
        .unwrap();
    // A snapshot directory that is a symlink out of DIR.
    std::fs::create_dir_all(env.path("elsewhere")).unwrap();
    std::os::unix::fs::symlink(
        env.path("elsewhere"),
        legacy.join("snapshots/20260411T030000Z"),
    )
    .unwrap();
    // chroma/ as a symlink to the live chroma directory.
    let chroma_link = legacy_snapshot(
        &env,
        &legacy,
        "20260412T030000Z",
        "2026-04-12T03:00:00+00:00",
    );
    std::fs::remove_dir_all(chroma_link.join("chroma")).unwrap();
    std::os::unix::fs::symlink(env.path("data/chroma"), chroma_link.join("chroma")).unwrap();
    // A 2 MiB metadata file.
    let huge = legacy_snapshot(
        &env,
        &legacy,
        "20260413T030000Z",
        "2026-04-13T03:00:00+00:00",
    );
    let mut big = String::from("{\"created_at\": \"2026-04-13T03:00:00+00:00\", \"x\": \"");
    big.push_str(&"a".repeat(2 << 20));
    big.push_str("\"}");
    std::fs::write(huge.join("backup-metadata.json"), big).unwrap();
    // Deeply nested metadata.
    let nested = legacy_snapshot(
        &env,
        &legacy,
        "20260414T030000Z",
        "2026-04-14T03:00:00+00:00",
    );
    std::fs::write(nested.join("backup-metadata.json"), "[".repeat(100_000)).unwrap();
    // Names that are not ids, one with a newline and one not UTF-8.
    std::fs::create_dir_all(legacy.join("snapshots/20260415T030000Z\nok: all fine")).unwrap();
    {
        use std::os::unix::ffi::OsStrExt;
        let name = std::ffi::OsStr::from_bytes(b"\xff\xfe-not-an-id");
        std::fs::create_dir_all(legacy.join("snapshots").join(name)).unwrap();
    }

    let (code, doc) = import(&env, &["--confirm", "--include-damaged"]);
    assert_eq!(code, 1, "{doc}");
    let by_name = |n: &str| {
        doc["snapshots"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == n)
            .unwrap_or_else(|| panic!("{n} not in {doc}"))
            .clone()
    };
    let s = by_name("20260410T030000Z");
    assert!(
        s.to_string()
            .contains("db/atocore.db is a symbolic link; not followed"),
        "{s}"
    );
    assert_eq!(s["outcome"], "imported_damaged");
    let s = by_name("20260411T030000Z");
    assert_eq!(s["outcome"], "not_a_snapshot");
    assert!(s.to_string().contains("symbolic link"), "{s}");
    let s = by_name("20260412T030000Z");
    assert!(
        s.to_string()
            .contains("chroma/ is a symbolic link; not followed"),
        "{s}"
    );
    assert!(by_name("20260413T030000Z")
        .to_string()
        .contains("over the 1048576-byte limit"));
    assert!(by_name("20260414T030000Z")
        .to_string()
        .contains("not valid JSON"));
    assert_eq!(
        by_name("20260415T030000Z\nok: all fine")["outcome"],
        "not_a_snapshot"
    );
    // Nothing outside DIR was imported: no snapshot holds the secret or
    // the live chroma tree through a link.
    let show = env.cairn(&["--json", "show", "20260410T030000Z"]).json();
    let stores: Vec<&str> = show["stores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(stores, vec!["registry", "chroma"]);
    let show = env.cairn(&["--json", "show", "20260412T030000Z"]).json();
    assert!(!show.to_string().contains("\"chroma\""), "{show}");
    assert!(!env.path("elsewhere").read_dir().unwrap().any(|_| true));
    // The human report escapes the hostile name onto one line.
    let human = env.cairn(&["import-legacy", "legacy"]);
    assert!(
        human.stdout.contains("20260415T030000Z\\nok: all fine"),
        "{}",
        human.stdout
    );
    assert!(
        !human.stdout.lines().any(|l| l == "ok: all fine"),
        "{}",
        human.stdout
    );
}

#[test]
fn a_missing_dir_is_an_error_naming_it() {
    let env = Env::new();
    let run = env.cairn(&["import-legacy", "no-such-dir"]);
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert!(run.stderr.contains("no-such-dir"), "{}", run.stderr);
    std::fs::create_dir(env.path("empty")).unwrap();
    let run = env.cairn(&["import-legacy", "empty"]);
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("empty/snapshots"), "{}", run.stderr);
}

#[test]
fn an_import_that_fails_midway_leaves_nothing_that_looks_complete() {
    let env = Env::new();
    let legacy = env.path("legacy");
    legacy_snapshot(
        &env,
        &legacy,
        "20260406T180000Z",
        "2026-04-06T18:00:00+00:00",
    );
    // The disk fills while the chroma tree is copied.
    let run = env.cairn_env(
        &["import-legacy", "legacy", "--confirm"],
        &[("CAIRN_FAILPOINT", "write:data_level0.bin")],
    );
    assert_eq!(run.code, 4, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("data_level0.bin"), "{}", run.stderr);
    assert!(env.listed_ids().is_empty());
    assert!(support::dir_names(&env.path("backups/snapshots")).is_empty());
    assert!(support::dir_names(&env.path("backups/tmp")).is_empty());
    // Once there is room, it imports.
    let (code, doc) = import(&env, &["--confirm"]);
    assert_eq!(code, 0, "{doc}");
    assert_eq!(env.listed_ids(), vec!["20260406T180000Z"]);
}
