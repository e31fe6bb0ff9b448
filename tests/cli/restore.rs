//! `cairn restore` end to end (issue 3): the reference scenarios, ported,
//! plus the gates, rollback, `--to`, `--only`, sidecars and bind mounts.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rusqlite::Connection;
use serde_json::Value;

use crate::support::{self, memories, Env};

const POST_BACKUP: &str = "post-backup mutation";
const REGISTRY_AFTER: &str =
    "{\"projects\":[{\"id\":\"p99-after\",\"aliases\":[],\"ingest_roots\":[]}]}\n";

fn integrity(db: &Path) -> String {
    let conn = Connection::open(db).unwrap();
    conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap()
}

fn add_memory(env: &Env, content: &str) {
    let db = env.db();
    db.execute("INSERT INTO memories(content) VALUES (?1)", [content])
        .unwrap();
    db.close().unwrap();
}

/// Everything live (the service's data and config), as a comparable tree.
fn live(env: &Env) -> Vec<(String, String, Vec<u8>)> {
    let mut t = support::tree(&env.path("data"));
    t.extend(
        support::tree(&env.path("config"))
            .into_iter()
            .map(|(p, k, b)| (format!("config/{p}"), k, b)),
    );
    t
}

type Tree = Vec<(String, String, Vec<u8>)>;

/// Compares two trees entry by entry; on a difference, says which paths
/// differ instead of dumping every byte.
pub(crate) fn assert_trees_eq(left: &Tree, right: &Tree, what: &str) {
    if left == right {
        return;
    }
    let index = |t: &Tree| -> std::collections::BTreeMap<String, (String, Vec<u8>)> {
        t.iter()
            .map(|(p, k, b)| (p.clone(), (k.clone(), b.clone())))
            .collect()
    };
    let (l, r) = (index(left), index(right));
    let mut diffs = Vec::new();
    for (path, (kind, bytes)) in &l {
        match r.get(path) {
            None => diffs.push(format!("only on the left: {path} ({kind})")),
            Some((k, b)) if k != kind => diffs.push(format!("{path}: {kind} vs {k}")),
            Some((_, b)) if b != bytes => diffs.push(format!(
                "{path}: content differs ({} vs {} bytes)",
                bytes.len(),
                b.len()
            )),
            Some(_) => {}
        }
    }
    for (path, (kind, _)) in &r {
        if !l.contains_key(path) {
            diffs.push(format!("only on the right: {path} ({kind})"));
        }
    }
    panic!("{what}:\n  {}", diffs.join("\n  "));
}

fn restore(env: &Env, id: &str, extra: &[&str]) -> support::Run {
    let mut args = vec!["--json", "restore", id];
    args.extend_from_slice(extra);
    env.cairn(&args)
}

fn store<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["stores"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no store {name} in {doc}"))
}

/// No staging or parked directory of a restore is left anywhere live.
fn assert_no_leftovers(env: &Env) {
    for (path, _, _) in live(env) {
        assert!(
            !path.split('/').any(|c| c.starts_with(".cairn")),
            "restore left {path} behind"
        );
    }
}

#[test]
fn restore_refuses_without_confirm_service_stopped() {
    let env = Env::new();
    let id = env.snapshot(&[]);
    add_memory(&env, POST_BACKUP);
    let before = live(&env);

    let run = env.cairn(&["restore", &id]);
    assert_eq!(run.code, 3, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("--confirm-service-stopped"),
        "{}",
        run.stderr
    );
    assert_trees_eq(&live(&env), &before, "a refused restore touched live data");
    assert!(memories(&env.path("data/atocore.db")).contains(&POST_BACKUP.to_owned()));
}

#[test]
fn restore_raises_on_invalid_backup_flipped_chroma_byte() {
    let env = Env::new();
    let id = env.snapshot(&[]);
    add_memory(&env, POST_BACKUP);
    env.unlock_snapshot(&id);
    let seg = env
        .snapshot_dir(&id)
        .join("stores/chroma/seg-0001/data_level0.bin");
    support::flip_byte(&seg, 1000, 0x01);
    let before = live(&env);
    let snapshots_before = env.listed_ids();

    let run = restore(&env, &id, &["--confirm-service-stopped"]);
    assert_eq!(run.code, 3, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("file_checksum_mismatch"),
        "{}",
        run.stderr
    );
    assert_trees_eq(
        &live(&env),
        &before,
        "restore of a bad snapshot touched live data",
    );
    assert_eq!(
        env.listed_ids(),
        snapshots_before,
        "no pre-restore snapshot either"
    );
}

#[test]
fn restore_raises_on_invalid_backup_edited_manifest() {
    let env = Env::new();
    let id = env.snapshot(&[]);
    add_memory(&env, POST_BACKUP);
    env.unlock_snapshot(&id);
    let path = env.snapshot_dir(&id).join("manifest.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut doc: Value = serde_json::from_str(&text).unwrap();
    doc["host"] = Value::String("somewhere-else".into());
    std::fs::write(&path, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    let before = live(&env);

    let run = restore(&env, &id, &["--confirm-service-stopped"]);
    assert_eq!(run.code, 3, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("manifest_digest_mismatch"),
        "{}",
        run.stderr
    );
    assert_trees_eq(&live(&env), &before, "live data changed");
}

#[test]
fn restore_raises_on_missing_snapshot() {
    let env = Env::new();
    env.snapshot(&[]);
    let before = live(&env);
    let run = restore(&env, "20250101T000000Z", &["--confirm-service-stopped"]);
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("20250101T000000Z"), "{}", run.stderr);
    assert_trees_eq(&live(&env), &before, "live data changed");
}

#[test]
fn restore_round_trip_reverses_post_backup_mutations() {
    let env = Env::new();
    let id = env.snapshot(&[]);
    add_memory(&env, POST_BACKUP);
    std::fs::write(env.path("config/project-registry.json"), REGISTRY_AFTER).unwrap();
    let registry_in_snapshot = std::fs::read(
        env.snapshot_dir(&id)
            .join("stores/registry/project-registry.json"),
    )
    .unwrap();

    let run = restore(&env, &id, &["--confirm-service-stopped"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let doc = run.json();
    assert_eq!(doc["id"], id.as_str());
    assert_eq!(doc["rolled_back"], false);
    for name in ["db", "registry", "chroma"] {
        assert_eq!(store(&doc, name)["restored"], true, "{doc}");
    }
    assert_eq!(store(&doc, "db")["integrity_ok"], true);

    let db = env.path("data/atocore.db");
    assert_eq!(memories(&db), vec!["baseline memory".to_owned()]);
    assert_eq!(integrity(&db), "ok");
    assert_eq!(
        std::fs::read(env.path("config/project-registry.json")).unwrap(),
        registry_in_snapshot
    );
    assert_no_leftovers(&env);

    // The pre-restore snapshot is the way back: it holds the mutation.
    let pre = doc["pre_restore_snapshot"]
        .as_str()
        .expect("pre-restore id");
    assert_ne!(pre, id);
    let list = env.cairn(&["--json", "list"]).json();
    let entry = list["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == pre)
        .expect("pre-restore snapshot listed");
    assert!(
        entry["tags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "pre-restore"),
        "{entry}"
    );
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("back");
    let run = restore(&env, pre, &["--to", dir.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(
        memories(&dir.join("db/atocore.db")),
        vec!["baseline memory".to_owned(), POST_BACKUP.to_owned()]
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("registry/project-registry.json")).unwrap(),
        REGISTRY_AFTER
    );
}

/// Adds what the sample state lacks for a full tree test: a symlink, an
/// unusual mode, an old mtime.
fn decorate_chroma(env: &Env) {
    let chroma = env.path("data/chroma");
    std::os::unix::fs::symlink("seg-0001/header.bin", chroma.join("current")).unwrap();
    // Links are restored as links, never followed: one outside, one dangling.
    std::os::unix::fs::symlink("/etc/hostname", chroma.join("outside")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/target", chroma.join("dangling")).unwrap();
    std::fs::set_permissions(
        chroma.join("seg-0001/header.bin"),
        std::fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    std::fs::File::options()
        .write(true)
        .open(chroma.join("seg-0001/data_level0.bin"))
        .unwrap()
        .set_modified(old)
        .unwrap();
    std::fs::File::open(chroma.join("empty-dir"))
        .unwrap()
        .set_modified(old)
        .unwrap();
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path).unwrap().mode() & 0o7777
}

fn mtime(path: &Path) -> SystemTime {
    std::fs::symlink_metadata(path).unwrap().modified().unwrap()
}

/// Deletes a baseline file, adds a new one, removes the empty dir,
/// replaces the symlink with a file and changes a mode.
fn mutate_chroma(env: &Env) {
    let chroma = env.path("data/chroma");
    std::fs::remove_file(chroma.join("seg-0001/header.bin")).unwrap();
    std::fs::write(chroma.join("seg-0001/post-backup.bin"), b"new").unwrap();
    std::fs::remove_dir(chroma.join("empty-dir")).unwrap();
    std::fs::remove_file(chroma.join("current")).unwrap();
    std::fs::write(chroma.join("current"), b"not a link").unwrap();
    std::fs::set_permissions(
        chroma.join("seg-0001/data_level0.bin"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
}

fn assert_chroma_is_snapshot(env: &Env, id: &str, chroma: &Path) {
    let snap = env.snapshot_dir(id).join("stores/chroma");
    assert_trees_eq(
        &support::tree(chroma),
        &support::tree(&snap),
        "restored chroma tree differs from the snapshot",
    );
}

#[test]
fn restore_round_trip_with_chroma() {
    let env = Env::new();
    decorate_chroma(&env);
    let chroma = env.path("data/chroma");
    let seg_mode = mode(&chroma.join("seg-0001/data_level0.bin"));
    let seg_mtime = mtime(&chroma.join("seg-0001/data_level0.bin"));
    let dir_mtime = mtime(&chroma.join("empty-dir"));
    let id = env.snapshot(&[]);
    mutate_chroma(&env);

    let run = restore(&env, &id, &["--confirm-service-stopped"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);

    assert_eq!(
        std::fs::read(chroma.join("seg-0001/header.bin")).unwrap(),
        b"header",
        "deleted baseline file is back"
    );
    assert!(
        !chroma.join("seg-0001/post-backup.bin").exists(),
        "post-backup file is gone"
    );
    assert!(chroma.join("empty-dir").is_dir(), "empty dir restored");
    let link = chroma.join("current");
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink(),
        "symlink restored as a link"
    );
    assert_eq!(
        std::fs::read_link(&link).unwrap(),
        PathBuf::from("seg-0001/header.bin")
    );
    assert_eq!(mode(&chroma.join("seg-0001/header.bin")), 0o640);
    assert_eq!(mode(&chroma.join("seg-0001/data_level0.bin")), seg_mode);
    assert_eq!(mtime(&chroma.join("seg-0001/data_level0.bin")), seg_mtime);
    assert_eq!(mtime(&chroma.join("empty-dir")), dir_mtime);
    assert_eq!(
        std::fs::read_link(chroma.join("outside")).unwrap(),
        PathBuf::from("/etc/hostname")
    );
    assert!(std::fs::symlink_metadata(chroma.join("dangling"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert_chroma_is_snapshot(&env, &id, &chroma);
    assert_no_leftovers(&env);
}

#[test]
fn restore_chroma_does_not_unlink_destination_directory() {
    let env = Env::new();
    let chroma = env.path("data/chroma");
    let id = env.snapshot(&[]);
    mutate_chroma_simple(&env);
    let inode = std::fs::metadata(&chroma).unwrap().ino();

    let run = restore(&env, &id, &["--confirm-service-stopped"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(
        std::fs::metadata(&chroma).unwrap().ino(),
        inode,
        "the chroma directory was replaced, not refilled"
    );
    assert_chroma_is_snapshot(&env, &id, &chroma);
}

fn mutate_chroma_simple(env: &Env) {
    let chroma = env.path("data/chroma");
    std::fs::remove_file(chroma.join("seg-0001/header.bin")).unwrap();
    std::fs::write(chroma.join("post-backup.bin"), b"new").unwrap();
}

#[test]
fn restore_skips_pre_snapshot_when_requested() {
    let env = Env::new();
    let id = env.snapshot(&[]);
    add_memory(&env, POST_BACKUP);
    let before = env.listed_ids();

    let run = restore(
        &env,
        &id,
        &["--confirm-service-stopped", "--no-pre-snapshot"],
    );
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(run.json()["pre_restore_snapshot"].is_null());
    assert_eq!(env.listed_ids(), before, "no new snapshot appeared");
    assert_eq!(
        memories(&env.path("data/atocore.db")),
        vec!["baseline memory".to_owned()]
    );
}

const STALE: &[u8] = b"STALE-SIDECAR-MARKER-DO-NOT-SURVIVE";

fn stale_sidecars(extra: &[&str]) {
    let env = Env::new();
    let id = env.snapshot(&[]);
    add_memory(&env, POST_BACKUP);
    // Every connection is closed (the service is stopped); plant the bytes.
    let wal = env.path("data/atocore.db-wal");
    let shm = env.path("data/atocore.db-shm");
    std::fs::write(&wal, STALE).unwrap();
    std::fs::write(&shm, STALE).unwrap();

    let mut args = vec!["--confirm-service-stopped"];
    args.extend_from_slice(extra);
    let run = restore(&env, &id, &args);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    for sidecar in [&wal, &shm] {
        if let Ok(bytes) = std::fs::read(sidecar) {
            assert!(
                !bytes.windows(STALE.len()).any(|w| w == STALE),
                "{} still carries the stale marker",
                sidecar.display()
            );
        }
    }
    let db = env.path("data/atocore.db");
    assert_eq!(memories(&db), vec!["baseline memory".to_owned()]);
    assert_eq!(integrity(&db), "ok");
}

#[test]
fn restore_cleans_stale_wal_sidecars() {
    stale_sidecars(&[]);
}

/// Without the pre-restore snapshot nothing else opens the live database
/// first, so the restore's own sidecar cleaning is what is tested.
#[test]
fn restore_cleans_stale_wal_sidecars_without_pre_snapshot() {
    stale_sidecars(&["--no-pre-snapshot"]);
}

#[test]
fn restore_rolls_back_when_the_chroma_swap_fails() {
    let env = Env::new();
    let id = env.snapshot(&[]);
    add_memory(&env, POST_BACKUP);
    std::fs::write(env.path("config/project-registry.json"), REGISTRY_AFTER).unwrap();
    mutate_chroma_simple(&env);
    let chroma_before = support::tree(&env.path("data/chroma"));

    let run = env.cairn_env(
        &["--json", "restore", &id, "--confirm-service-stopped"],
        &[("CAIRN_FAILPOINT", "swap:chroma")],
    );
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let doc = run.json();
    assert_eq!(doc["rolled_back"], true, "{doc}");
    assert!(doc["pre_restore_snapshot"].is_string());
    assert_eq!(store(&doc, "chroma")["restored"], false);

    let db = env.path("data/atocore.db");
    assert_eq!(
        memories(&db),
        vec!["baseline memory".to_owned(), POST_BACKUP.to_owned()],
        "the database is back to its pre-restore content"
    );
    assert_eq!(integrity(&db), "ok");
    assert_eq!(
        std::fs::read_to_string(env.path("config/project-registry.json")).unwrap(),
        REGISTRY_AFTER,
        "the registry is back to its pre-restore content"
    );
    assert_trees_eq(
        &support::tree(&env.path("data/chroma")),
        &chroma_before,
        "chroma was never swapped",
    );
    assert_no_leftovers(&env);
}

#[test]
fn restore_to_dir_leaves_live_data_untouched() {
    let env = Env::new();
    decorate_chroma(&env);
    let id = env.snapshot(&[]);
    add_memory(&env, POST_BACKUP);
    std::fs::write(env.path("config/project-registry.json"), REGISTRY_AFTER).unwrap();
    mutate_chroma_simple(&env);
    let before = live(&env);
    let snapshots_before = env.listed_ids();
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("elsewhere");

    // No confirmation needed for --to.
    let run = restore(&env, &id, &["--to", dir.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(run.json()["pre_restore_snapshot"].is_null());
    assert_trees_eq(
        &live(&env),
        &before,
        "live data changed during restore --to",
    );
    assert_eq!(env.listed_ids(), snapshots_before);

    assert_db_and_registry_are_the_snapshots(&env, &id, &dir);
    assert_chroma_is_snapshot(&env, &id, &dir.join("chroma"));
}

/// `dir` (a `--to` target) holds the snapshot's rows and its registry's
/// exact bytes.
fn assert_db_and_registry_are_the_snapshots(env: &Env, id: &str, dir: &Path) {
    assert_eq!(
        memories(&dir.join("db/atocore.db")),
        vec!["baseline memory".to_owned()]
    );
    assert_eq!(
        std::fs::read(dir.join("registry/project-registry.json")).unwrap(),
        std::fs::read(
            env.snapshot_dir(id)
                .join("stores/registry/project-registry.json")
        )
        .unwrap()
    );
}

#[test]
fn restore_to_a_relative_dir_lands_under_the_working_directory() {
    let env = Env::new();
    let id = env.snapshot(&[]);
    add_memory(&env, POST_BACKUP);

    // Cairn runs in env.root: `--to restored` is env.root/restored, as
    // `cp` would take it (it was refused as "not absolute" before).
    let run = restore(&env, &id, &["--to", "restored"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let dir = env.root.join("restored");
    assert_eq!(
        run.json()["target"],
        dir.to_str().unwrap(),
        "{}",
        run.stdout
    );
    assert_db_and_registry_are_the_snapshots(&env, &id, &dir);
}

#[test]
fn restore_to_non_empty_dir_is_refused() {
    let env = Env::new();
    let id = env.snapshot(&[]);
    let out = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(out.path().join("chroma")).unwrap();
    std::fs::write(out.path().join("chroma/mine.txt"), b"keep me").unwrap();

    let run = restore(&env, &id, &["--to", out.path().to_str().unwrap()]);
    assert_eq!(run.code, 2, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("chroma"), "{}", run.stderr);
    let t = support::tree(out.path());
    assert_eq!(
        t,
        vec![
            ("chroma".into(), "dir".into(), Vec::new()),
            ("chroma/mine.txt".into(), "file".into(), b"keep me".to_vec()),
        ],
        "a refused --to wrote nothing"
    );
}

#[test]
fn restore_only_db_leaves_chroma_untouched() {
    let env = Env::new();
    let id = env.snapshot(&[]);
    add_memory(&env, POST_BACKUP);
    std::fs::write(env.path("config/project-registry.json"), REGISTRY_AFTER).unwrap();
    mutate_chroma_simple(&env);
    let chroma_before = support::tree(&env.path("data/chroma"));
    let inode = std::fs::metadata(env.path("data/chroma")).unwrap().ino();

    let run = restore(&env, &id, &["--confirm-service-stopped", "--only", "db"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let doc = run.json();
    let names: Vec<&str> = doc["stores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["db"]);
    assert_eq!(
        memories(&env.path("data/atocore.db")),
        vec!["baseline memory".to_owned()]
    );
    assert_trees_eq(
        &support::tree(&env.path("data/chroma")),
        &chroma_before,
        "chroma changed",
    );
    assert_eq!(
        std::fs::metadata(env.path("data/chroma")).unwrap().ino(),
        inode
    );
    assert_eq!(
        std::fs::read_to_string(env.path("config/project-registry.json")).unwrap(),
        REGISTRY_AFTER
    );
}

#[test]
fn restore_refuses_while_a_connection_is_open() {
    let env = Env::new();
    let id = env.snapshot(&[]);
    add_memory(&env, POST_BACKUP);
    // The "service": a connection that has read (so the WAL index is mapped
    // and its shared lock is held) and stays open.
    let service = env.db();
    let n: i64 = service
        .query_row("SELECT count(*) FROM memories", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 2);
    let before = std::fs::read(env.path("data/atocore.db")).unwrap();
    let chroma_before = support::tree(&env.path("data/chroma"));
    let snapshots_before = env.listed_ids();

    let run = restore(&env, &id, &["--confirm-service-stopped"]);
    assert_eq!(run.code, 3, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("atocore.db"), "{}", run.stderr);
    assert_eq!(std::fs::read(env.path("data/atocore.db")).unwrap(), before);
    assert_trees_eq(
        &support::tree(&env.path("data/chroma")),
        &chroma_before,
        "chroma changed",
    );
    assert_eq!(env.listed_ids(), snapshots_before);
    let n: i64 = service
        .query_row("SELECT count(*) FROM memories", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 2, "the service still sees its data");
    drop(service);
}

#[test]
fn restore_refuses_when_the_repository_is_locked() {
    let env = Env::new();
    env.write_config(&support::CONFIG.replace("lock_wait_seconds = 5", "lock_wait_seconds = 0"));
    let id = env.snapshot(&[]);
    add_memory(&env, POST_BACKUP);
    let before = live(&env);

    let lock = std::fs::File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(env.path("backups/lock"))
        .unwrap();
    lock.lock().unwrap();
    let run = restore(&env, &id, &["--confirm-service-stopped"]);
    lock.unlock().unwrap();
    assert_eq!(run.code, 3, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("lock"), "{}", run.stderr);
    assert!(
        run.stderr
            .contains(env.path("backups/lock").to_str().unwrap()),
        "names the lock file: {}",
        run.stderr
    );
    assert_trees_eq(&live(&env), &before, "live data changed");
}

#[test]
fn restore_leaves_a_store_absent_in_the_snapshot_alone() {
    let env = Env::new();
    std::fs::remove_file(env.path("config/project-registry.json")).unwrap();
    let id = env.snapshot(&[]);
    std::fs::write(env.path("config/project-registry.json"), REGISTRY_AFTER).unwrap();
    add_memory(&env, POST_BACKUP);

    let run = restore(&env, &id, &["--confirm-service-stopped"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let doc = run.json();
    let registry = store(&doc, "registry");
    assert_eq!(registry["restored"], false, "{doc}");
    assert!(registry["skipped"].is_string(), "reported skipped: {doc}");
    assert_eq!(
        std::fs::read_to_string(env.path("config/project-registry.json")).unwrap(),
        REGISTRY_AFTER
    );
    assert_eq!(
        memories(&env.path("data/atocore.db")),
        vec!["baseline memory".to_owned()]
    );
}

/// The pre-restore snapshot must hold the live stores as they were, and
/// nothing of the restore's own staging. (Embedded SQLite files are copied
/// online, so their bytes may differ; their rows are compared instead.)
#[test]
fn pre_restore_snapshot_holds_exactly_the_live_chroma_tree() {
    let env = Env::new();
    let id = env.snapshot(&[]);
    mutate_chroma_simple(&env);
    let without_sqlite = |t: Tree| -> Tree {
        t.into_iter()
            .filter(|(p, _, _)| !p.ends_with("chroma.sqlite3"))
            .collect()
    };
    let chroma_before = without_sqlite(support::tree(&env.path("data/chroma")));

    let run = restore(&env, &id, &["--confirm-service-stopped"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let pre = run.json()["pre_restore_snapshot"]
        .as_str()
        .unwrap()
        .to_owned();
    let pre_chroma = env.snapshot_dir(&pre).join("stores/chroma");
    assert_trees_eq(
        &without_sqlite(support::tree(&pre_chroma)),
        &chroma_before,
        "pre-restore snapshot vs live chroma before the restore",
    );

    // Going back gives exactly the tree from before the restore.
    let run = restore(
        &env,
        &pre,
        &["--confirm-service-stopped", "--no-pre-snapshot"],
    );
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_trees_eq(
        &without_sqlite(support::tree(&env.path("data/chroma"))),
        &chroma_before,
        "chroma after going back",
    );
}

/// Unmounts on drop, so a failing test leaves no mount behind.
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

fn mounted_at(path: &Path) -> bool {
    let canonical = std::fs::canonicalize(path).unwrap();
    let wanted = canonical.to_str().unwrap();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(wanted))
}

fn mount(args: &[&str], at: &Path) -> Mount {
    let out = std::process::Command::new("mount")
        .args(args)
        .arg(at)
        .output()
        .expect("run mount");
    assert!(
        out.status.success(),
        "mount {args:?} {}: {}",
        at.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    Mount(at.to_owned())
}

/// The reference's first real drill failed on a bind-mounted chroma
/// volume (EBUSY on rmtree). Needs root to mount;
/// `restore_chroma_does_not_unlink_destination_directory` stands in where
/// the ignored tests are not run.
#[test]
#[ignore = "needs root"]
fn restore_into_a_bind_mounted_chroma_dir() {
    support::require_root();
    let env = Env::new();
    let chroma = env.path("data/chroma");
    let volume = tempfile::tempdir().unwrap();
    // A filesystem of its own (as a Docker volume often is), so staging
    // beside the mount point would fail with EXDEV.
    let _tmpfs = mount(&["-t", "tmpfs", "tmpfs"], volume.path());
    let copied = std::process::Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", chroma.display()))
        .arg(volume.path())
        .status()
        .unwrap();
    assert!(copied.success());
    let _bind = mount(&["--bind", volume.path().to_str().unwrap()], &chroma);
    assert!(mounted_at(&chroma));

    let id = env.snapshot(&[]);
    mutate_chroma_simple(&env);
    let run = restore(&env, &id, &["--confirm-service-stopped"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(mounted_at(&chroma), "the mount is still there");
    assert_eq!(
        std::fs::read(chroma.join("seg-0001/header.bin")).unwrap(),
        b"header"
    );
    assert!(!chroma.join("post-backup.bin").exists());
    assert_chroma_is_snapshot(&env, &id, &chroma);
    // The restored content is in the volume, not hidden under the mount.
    assert_eq!(
        std::fs::read(volume.path().join("seg-0001/header.bin")).unwrap(),
        b"header"
    );
}

/// Disaster recovery: the live files are gone entirely.
#[test]
fn restore_into_missing_live_paths() {
    let env = Env::new();
    decorate_chroma(&env);
    let id = env.snapshot(&[]);
    std::fs::remove_dir_all(env.path("data")).unwrap();
    std::fs::remove_dir_all(env.path("config")).unwrap();

    let run = restore(&env, &id, &["--confirm-service-stopped"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(
        memories(&env.path("data/atocore.db")),
        vec!["baseline memory".to_owned()]
    );
    assert_eq!(integrity(&env.path("data/atocore.db")), "ok");
    assert_eq!(
        std::fs::read(env.path("config/project-registry.json")).unwrap(),
        std::fs::read(
            env.snapshot_dir(&id)
                .join("stores/registry/project-registry.json")
        )
        .unwrap()
    );
    assert_chroma_is_snapshot(&env, &id, &env.path("data/chroma"));
    assert_no_leftovers(&env);
}

/// A full disk while staging: nothing live was replaced, nothing is left.
#[test]
fn restore_stops_on_a_full_disk_while_staging_and_touches_nothing() {
    let env = Env::new();
    let id = env.snapshot(&[]);
    add_memory(&env, POST_BACKUP);
    mutate_chroma_simple(&env);
    let before = live(&env);
    let snapshots_before = env.listed_ids();

    let run = env.cairn_env(
        &["--json", "restore", &id, "--confirm-service-stopped"],
        &[("CAIRN_FAILPOINT", "write:data_level0.bin")],
    );
    assert_eq!(run.code, 4, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("data_level0.bin"), "{}", run.stderr);
    assert_trees_eq(&live(&env), &before, "a failed staging touched live data");
    assert_eq!(
        env.listed_ids(),
        snapshots_before,
        "no pre-restore snapshot"
    );
}

/// With no pre-restore snapshot there is nothing to roll back from: the
/// report must say which stores are in which state.
#[test]
fn restore_failure_without_pre_snapshot_says_what_is_where() {
    let env = Env::new();
    let id = env.snapshot(&[]);
    add_memory(&env, POST_BACKUP);
    mutate_chroma_simple(&env);

    let run = env.cairn_env(
        &[
            "--json",
            "restore",
            &id,
            "--confirm-service-stopped",
            "--no-pre-snapshot",
        ],
        &[("CAIRN_FAILPOINT", "swap:chroma")],
    );
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let doc = run.json();
    assert_eq!(doc["rolled_back"], false, "{doc}");
    let what = doc["rollback_failure"].as_str().expect("rollback_failure");
    assert!(what.contains("db") && what.contains("registry"), "{what}");
    assert!(doc["failure"].as_str().unwrap().contains("chroma"), "{doc}");
    // db was restored, chroma was not.
    assert_eq!(
        memories(&env.path("data/atocore.db")),
        vec!["baseline memory".to_owned()]
    );
    assert!(env.path("data/chroma/post-backup.bin").exists());
    assert_no_leftovers(&env);
}

#[test]
fn restore_names_an_unknown_store() {
    let env = Env::new();
    let id = env.snapshot(&[]);
    let before = live(&env);
    for flag in ["--only", "--skip"] {
        let run = restore(&env, &id, &["--confirm-service-stopped", flag, "nosuch"]);
        assert_eq!(run.code, 2, "{}", run.stderr);
        assert!(run.stderr.contains("nosuch"), "{}", run.stderr);
    }
    assert_trees_eq(&live(&env), &before, "a bad --only touched live data");
}

/// A replaced file keeps the live file's mode; a kept directory keeps its
/// own.
#[test]
fn restore_keeps_the_live_targets_mode() {
    restore_keeps_the_live_targets_mode_and(false);
}

/// As root, a replaced file also keeps the live file's owner; a kept
/// directory keeps its own, and the entries restored into it get the
/// owners the snapshot recorded (root's here), not the directory's.
#[test]
#[ignore = "needs root"]
fn restore_keeps_the_live_targets_mode_and_owner() {
    support::require_root();
    restore_keeps_the_live_targets_mode_and(true);
}

fn restore_keeps_the_live_targets_mode_and(owner: bool) {
    use std::os::unix::fs::chown;
    let env = Env::new();
    let id = env.snapshot(&[]);
    let db = env.path("data/atocore.db");
    let registry = env.path("config/project-registry.json");
    let chroma = env.path("data/chroma");
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o640)).unwrap();
    std::fs::set_permissions(&registry, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::set_permissions(&chroma, std::fs::Permissions::from_mode(0o750)).unwrap();
    if owner {
        chown(&db, Some(4321), Some(4322)).unwrap();
        chown(&registry, Some(4321), Some(4322)).unwrap();
        chown(&chroma, Some(4321), Some(4322)).unwrap();
    }
    let chroma_inode = std::fs::metadata(&chroma).unwrap().ino();
    add_memory(&env, POST_BACKUP);

    let run = restore(&env, &id, &["--confirm-service-stopped"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(memories(&db), vec!["baseline memory".to_owned()]);
    assert_eq!(mode(&db), 0o640);
    assert_eq!(mode(&registry), 0o600);
    assert_eq!(mode(&chroma), 0o750);
    assert_eq!(std::fs::metadata(&chroma).unwrap().ino(), chroma_inode);
    if owner {
        for path in [&db, &registry, &chroma] {
            let m = std::fs::metadata(path).unwrap();
            assert_eq!((m.uid(), m.gid()), (4321, 4322), "{}", path.display());
        }
        let m = std::fs::metadata(chroma.join("seg-0001/header.bin")).unwrap();
        assert_eq!(
            (m.uid(), m.gid()),
            (0, 0),
            "restored entries get their recorded owner"
        );
    }
}

/// Chroma keeps its own SQLite file open while it runs; replacing the tree
/// under it is the same hazard as replacing the main database.
#[test]
fn restore_refuses_while_chroma_sqlite_is_open() {
    let env = Env::new();
    let id = env.snapshot(&[]);
    mutate_chroma_simple(&env);
    let chroma_before = support::tree(&env.path("data/chroma"));
    let service = Connection::open(env.path("data/chroma/chroma.sqlite3")).unwrap();
    let n: i64 = service
        .query_row("SELECT count(*) FROM embeddings", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1);

    let run = restore(&env, &id, &["--confirm-service-stopped"]);
    drop(service);
    assert_eq!(run.code, 3, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("chroma"), "{}", run.stderr);
    assert_trees_eq(
        &support::tree(&env.path("data/chroma")),
        &chroma_before,
        "a refused restore touched chroma",
    );
}

/// Operators often point a store's `path` at a volume through a symlink.
/// Snapshot reads through it; restore replaces what it points to and keeps
/// the link itself.
#[test]
fn symlinked_store_paths_are_followed_and_the_links_kept() {
    let env = Env::new();
    std::fs::rename(env.path("data/chroma"), env.path("volume-chroma")).unwrap();
    std::os::unix::fs::symlink(env.path("volume-chroma"), env.path("data/chroma")).unwrap();
    std::fs::rename(
        env.path("config/project-registry.json"),
        env.path("registry-real.json"),
    )
    .unwrap();
    std::os::unix::fs::symlink(
        env.path("registry-real.json"),
        env.path("config/project-registry.json"),
    )
    .unwrap();
    let original = std::fs::read(env.path("registry-real.json")).unwrap();

    let id = env.snapshot(&[]);
    std::fs::write(env.path("registry-real.json"), b"{\"changed\":true}").unwrap();
    std::fs::remove_file(env.path("volume-chroma/seg-0001/header.bin")).unwrap();

    let run = env.cairn(&["restore", &id, "--confirm-service-stopped"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        std::fs::symlink_metadata(env.path("config/project-registry.json"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(std::fs::symlink_metadata(env.path("data/chroma"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(
        std::fs::read(env.path("registry-real.json")).unwrap(),
        original
    );
    assert_eq!(
        std::fs::read(env.path("volume-chroma/seg-0001/header.bin")).unwrap(),
        b"header"
    );
}

#[test]
fn a_snapshot_damaged_in_two_stores_is_refused_naming_both() {
    let env = Env::new();
    let id = env.snapshot(&[]);
    env.unlock_snapshot(&id);
    for rel in [
        "stores/chroma/seg-0001/data_level0.bin",
        "stores/registry/project-registry.json",
    ] {
        support::flip_byte(&env.snapshot_dir(&id).join(rel), 3, 0x01);
    }
    let dest = env.path("elsewhere");
    let run = restore(&env, &id, &["--to", dest.to_str().unwrap()]);
    assert_eq!(run.code, 3, "{}\n{}", run.stdout, run.stderr);
    // Stores are staged at once: the refusal names every damaged store,
    // not only the first one staged.
    for expected in [
        "file_checksum_mismatch [chroma]",
        "file_checksum_mismatch [registry]",
    ] {
        assert!(run.stderr.contains(expected), "{expected}: {}", run.stderr);
    }
    // Nothing staged is left, not even the directories staging created
    // (DIR did not exist before).
    assert!(!dest.exists(), "left behind: {:?}", support::tree(&dest));
}

/// The snapshot's listing is checked beside staging (a walk of `stat`s
/// that no longer holds up the copy): a file missing from the snapshot,
/// or one the manifest does not list, still refuses the restore with the
/// listing's own codes (not also as a file staging could not open), and
/// a dry run, which stages nothing, still checks it.
#[test]
fn a_snapshot_with_a_file_missing_or_unlisted_is_refused_by_restore_and_dry_run() {
    let env = Env::new();
    let id = env.snapshot(&[]);
    env.unlock_snapshot(&id);
    let stores = env.snapshot_dir(&id).join("stores");
    std::fs::remove_file(stores.join("chroma/seg-0001/header.bin")).unwrap();
    std::fs::write(stores.join("chroma/planted.bin"), b"not in the manifest").unwrap();
    let dest = env.path("elsewhere");
    for extra in [
        vec!["--to", dest.to_str().unwrap()],
        vec!["--confirm-service-stopped"],
        vec!["--dry-run"],
    ] {
        let run = restore(&env, &id, &extra);
        assert_eq!(run.code, 3, "{extra:?}\n{}\n{}", run.stdout, run.stderr);
        for expected in ["file_missing [chroma]", "file_unexpected [chroma]"] {
            assert!(
                run.stderr.contains(expected),
                "{extra:?} {expected}: {}",
                run.stderr
            );
        }
        assert!(
            !run.stderr.contains("read_failed"),
            "{extra:?}: {}",
            run.stderr
        );
    }
    assert!(!dest.exists(), "left behind: {:?}", support::tree(&dest));
    assert_eq!(
        std::fs::read(env.path("data/chroma/seg-0001/header.bin")).unwrap(),
        b"header",
        "the live store was touched"
    );
    assert_eq!(
        env.listed_ids(),
        vec![id],
        "a pre-restore snapshot was taken"
    );
}

#[test]
fn restore_dry_run_prints_the_plan_and_touches_nothing() {
    let env = Env::new();
    let id = env.snapshot(&[]);
    mutate_chroma_simple(&env);
    let before = support::tree(&env.root);

    // No --confirm-service-stopped: a dry run is what an operator reads
    // before stopping the service.
    let run = env.cairn(&["restore", &id, "--dry-run"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    for store in ["db", "registry", "chroma"] {
        assert!(run.stdout.contains(store), "{store}: {}", run.stdout);
    }
    assert!(
        run.stdout.contains("pre-restore snapshot would be taken"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("nothing touched"), "{}", run.stdout);

    let json = env.cairn(&["--json", "restore", &id, "--dry-run"]).json();
    assert_eq!(json["dry_run"], true);
    assert_eq!(json["target"], "live");
    let chroma = json["stores"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "chroma")
        .unwrap()
        .clone();
    assert!(
        chroma["path"].as_str().unwrap().ends_with("data/chroma"),
        "{chroma}"
    );

    // Nothing changed: no pre-restore snapshot, live bytes as they were.
    assert_eq!(env.listed_ids(), vec![id.clone()]);
    assert_eq!(support::tree(&env.root), before);

    // On an empty machine too: the directories a real restore would
    // create are not left behind by a dry run.
    support::remove_any(&env.path("data"));
    support::remove_any(&env.path("config"));
    let run = env.cairn(&["restore", &id, "--dry-run"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(!env.path("data").exists(), "a dry run created data/");
    assert!(!env.path("config").exists(), "a dry run created config/");
}

#[test]
fn the_way_back_from_a_restore_onto_an_empty_machine_records_every_store_absent() {
    // A store that did not exist before the restore is absent in its
    // pre-restore snapshot, not "captured with 0 entries" (which staging's
    // freshly created directory used to look like).
    let env = Env::new();
    let id = env.snapshot(&[]);
    support::remove_any(&env.path("data"));
    support::remove_any(&env.path("config"));

    let run = restore(&env, &id, &["--confirm-service-stopped"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let pre = run.json()["pre_restore_snapshot"]
        .as_str()
        .unwrap()
        .to_owned();
    let shown = env.cairn(&["--json", "show", &pre]).json();
    for store in shown["stores"].as_array().unwrap() {
        assert_eq!(store["status"], "absent", "{store}");
    }
    // And the restore itself put every store back.
    assert!(env.path("data/chroma/seg-0001").is_dir());
    assert!(env.path("data/atocore.db").is_file());
}

#[test]
fn user_files_named_like_cairns_work_directories_are_data() {
    // Only Cairn's own work directories (its prefix and exactly 16 random
    // hex digits) are left out of a snapshot; a user's file or directory
    // that merely starts the same way is backed up and comes back.
    let env = Env::new();
    let chroma = env.path("data/chroma");
    std::fs::write(chroma.join(".cairn-old-notes"), b"mine").unwrap();
    std::fs::create_dir(chroma.join(".cairn-restore-plan")).unwrap();
    std::fs::write(chroma.join(".cairn-restore-plan/step1"), b"also mine").unwrap();
    let id = env.snapshot(&[]);
    let stored = env.snapshot_dir(&id).join("stores/chroma");
    assert_eq!(
        std::fs::read(stored.join(".cairn-old-notes")).unwrap(),
        b"mine"
    );
    assert_eq!(
        std::fs::read(stored.join(".cairn-restore-plan/step1")).unwrap(),
        b"also mine"
    );

    support::remove_any(&chroma.join(".cairn-old-notes"));
    support::remove_any(&chroma.join(".cairn-restore-plan"));
    let run = restore(&env, &id, &["--confirm-service-stopped"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(
        std::fs::read(chroma.join(".cairn-old-notes")).unwrap(),
        b"mine"
    );
    assert_eq!(
        std::fs::read(chroma.join(".cairn-restore-plan/step1")).unwrap(),
        b"also mine"
    );
}
