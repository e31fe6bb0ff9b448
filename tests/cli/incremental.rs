//! A snapshot costs what changed: copies reused from the parent are
//! verified by identity instead of re-hashed, a rotating share of them is
//! still re-read each snapshot (`verify_rotation`), `validate --subset n/t`
//! reads one share of the files, and an SQLite database provably unchanged
//! since the parent is reused, never a stale copy. Each test looks at the
//! inodes and bytes (and rows) that end up in the snapshots.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::support::{self, memories, Env, CONFIG};

fn inode(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().ino()
}

fn db_copy(env: &Env, id: &str) -> PathBuf {
    env.snapshot_dir(id).join("stores/db/atocore.db")
}

fn chroma_copy(env: &Env, id: &str, rel: &str) -> PathBuf {
    env.snapshot_dir(id).join("stores/chroma").join(rel)
}

/// A flipped bit as a disk rots it: same inode, still read-only.
fn rot(path: &Path) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    support::flip_byte(path, 1, 0x02);
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o400)).unwrap();
}

/// (code, path) of each problem in a JSON `errors` array.
fn problems(errors: &Value) -> Vec<(String, String)> {
    errors
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {errors}"))
        .iter()
        .map(|e| {
            (
                e["code"].as_str().unwrap_or_default().to_owned(),
                e["path"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// Snapshots, returning (id, validation errors as (code, path)).
fn snapshot_json(env: &Env) -> (String, Vec<(String, String)>) {
    let run = env.cairn(&["--json", "snapshot"]);
    assert!(
        run.code == 0 || run.code == 1,
        "{}\n{}",
        run.stdout,
        run.stderr
    );
    let doc = run.json();
    let errors = match &doc["validation_errors"] {
        Value::Null => Vec::new(),
        errors => problems(errors),
    };
    assert_eq!(run.code == 0, errors.is_empty(), "{doc}");
    (doc["id"].as_str().unwrap().to_owned(), errors)
}

// ---------------------------------------------------------------------------
// Reused copies: verified by identity, re-read in rotation.

/// A parent's copy that no longer looks as Cairn left it (made writable,
/// truncated, replaced by a link) is never hard-linked into the next
/// snapshot: the live file is copied again, and its bytes are the live
/// ones.
#[test]
fn a_parent_copy_touched_by_hand_is_copied_again_not_linked() {
    let env = Env::new();
    let extra: Vec<u8> = (0..50_000u32).map(|i| (i % 253) as u8).collect();
    std::fs::write(env.path("data/chroma/seg-0001/extra.bin"), &extra).unwrap();
    std::fs::write(env.path("data/chroma/seg-0001/kept.bin"), &extra).unwrap();
    support::let_timestamps_settle();
    let s0 = env.snapshot(&[]);
    let writable = chroma_copy(&env, &s0, "seg-0001/header.bin");
    std::fs::set_permissions(&writable, std::fs::Permissions::from_mode(0o600)).unwrap();
    // Truncated, and read-only again.
    let truncated = chroma_copy(&env, &s0, "seg-0001/data_level0.bin");
    std::fs::set_permissions(&truncated, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&truncated)
        .unwrap()
        .set_len(100)
        .unwrap();
    std::fs::set_permissions(&truncated, std::fs::Permissions::from_mode(0o400)).unwrap();
    let replaced = chroma_copy(&env, &s0, "seg-0001/extra.bin");
    std::fs::remove_file(&replaced).unwrap();
    std::os::unix::fs::symlink(env.path("data/chroma/seg-0001/extra.bin"), &replaced).unwrap();

    let (s1, errors) = snapshot_json(&env);
    assert_eq!(errors, [], "the new snapshot is whole");
    for rel in [
        "seg-0001/header.bin",
        "seg-0001/data_level0.bin",
        "seg-0001/extra.bin",
    ] {
        let copy = chroma_copy(&env, &s1, rel);
        let meta = std::fs::symlink_metadata(&copy).unwrap();
        assert!(meta.is_file(), "{rel} is a copy, not a link");
        assert_eq!(
            meta.nlink(),
            1,
            "{rel} was copied, not linked from the parent"
        );
        assert_eq!(meta.mode() & 0o777, 0o400, "{rel}");
        assert_eq!(
            std::fs::read(&copy).unwrap(),
            std::fs::read(env.path("data/chroma").join(rel)).unwrap(),
            "{rel}"
        );
    }
    // An intact unchanged file is still shared.
    assert_eq!(
        inode(&chroma_copy(&env, &s1, "seg-0001/kept.bin")),
        inode(&chroma_copy(&env, &s0, "seg-0001/kept.bin"))
    );
}

/// With `verify_rotation = 3`, a flipped bit in each of 30 shared copies
/// is found within three snapshots, each file by exactly one of them; the
/// snapshot after a finding copies the damaged file again instead of
/// linking it, so the fourth is sound and holds the live bytes.
#[test]
fn the_rotation_rereads_every_reused_copy_within_verify_rotation_snapshots() {
    let env = Env::new();
    env.write_config(&format!("verify_rotation = 3\n{CONFIG}"));
    let names: Vec<String> = (0..30)
        .map(|i| format!("seg-0002/part-{i:02}.bin"))
        .collect();
    std::fs::create_dir_all(env.path("data/chroma/seg-0002")).unwrap();
    for (i, name) in names.iter().enumerate() {
        let bytes: Vec<u8> = (0..4096u32).map(|b| (b as usize * 7 + i) as u8).collect();
        std::fs::write(env.path("data/chroma").join(name), bytes).unwrap();
    }
    support::let_timestamps_settle();
    let (s0, errors) = snapshot_json(&env);
    assert_eq!(errors, []);
    for name in &names {
        rot(&chroma_copy(&env, &s0, name));
    }

    let mut found: Vec<String> = Vec::new();
    for _ in 0..3 {
        let (_, errors) = snapshot_json(&env);
        for (code, path) in errors {
            assert_eq!(code, "file_checksum_mismatch", "{path}");
            found.push(path);
        }
    }
    let mut unique = found.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        found.len(),
        "a file was reported twice: {found:?}"
    );
    assert_eq!(unique, names, "every rotten copy found within 3 snapshots");

    let (s4, errors) = snapshot_json(&env);
    assert_eq!(errors, [], "every damaged copy was replaced by a fresh one");
    for name in &names {
        assert_eq!(
            std::fs::read(chroma_copy(&env, &s4, name)).unwrap(),
            std::fs::read(env.path("data/chroma").join(name)).unwrap()
        );
        assert_ne!(
            inode(&chroma_copy(&env, &s4, name)),
            inode(&chroma_copy(&env, &s0, name))
        );
    }
    // And the damage is what `cairn repair` heals in the first snapshot.
    let repaired = env.cairn(&["--json", "repair", &s0]);
    assert_eq!(repaired.code, 0, "{}\n{}", repaired.stdout, repaired.stderr);
    let validated = env.cairn(&["--json", "validate", &s0]);
    assert_eq!(validated.code, 0, "{}", validated.stdout);
}

// ---------------------------------------------------------------------------
// validate --subset n/t

/// Every chroma file but the embedded database damaged: `--subset n/4`
/// for n = 1..4 (the record removed between runs, so each run reports only
/// what it read) names each damaged file in exactly one share.
#[test]
fn subsets_read_each_file_exactly_once_across_the_shares() {
    let env = Env::new();
    std::fs::create_dir_all(env.path("data/chroma/seg-0003")).unwrap();
    for i in 0..20 {
        std::fs::write(
            env.path(&format!("data/chroma/seg-0003/f{i}.bin")),
            vec![i as u8; 300],
        )
        .unwrap();
    }
    let id = env.snapshot(&[]);
    let root = env.snapshot_dir(&id).join("stores/chroma");
    let mut damaged: Vec<String> = support::tree(&root)
        .into_iter()
        .filter(|(rel, kind, _)| kind == "file" && rel != "chroma.sqlite3")
        .map(|(rel, _, _)| rel)
        .collect();
    assert!(damaged.len() >= 22, "{damaged:?}");
    for rel in &damaged {
        rot(&root.join(rel));
    }
    let record = env.snapshot_dir(&id).join("validated.json");
    let mut found = Vec::new();
    for n in 1..=4 {
        let _ = std::fs::remove_file(&record);
        let run = env.cairn(&["--json", "validate", "--subset", &format!("{n}/4"), &id]);
        let errors = problems(&run.json()["results"][0]["errors"]);
        assert_eq!(run.code == 0, errors.is_empty(), "{}", run.stdout);
        for (code, path) in errors {
            assert_eq!(code, "file_checksum_mismatch", "{path}");
            found.push(path);
        }
    }
    found.sort();
    damaged.sort();
    assert_eq!(
        found, damaged,
        "each damaged file found by exactly one share"
    );
}

/// One flipped byte: the shares before its own find nothing, its own
/// finds it, and the shares after keep reporting it (the record remembers
/// it, so the next snapshot does not link it) until it is repaired.
#[test]
fn a_flipped_byte_is_found_in_its_own_share_and_stays_recorded() {
    let env = Env::new();
    let id = env.snapshot(&[]);
    let rel = "seg-0001/data_level0.bin";
    rot(&chroma_copy(&env, &id, rel));
    let own = cairn_engine::share::share_of("chroma", &rel.into(), 5);
    for n in 1..=5 {
        let run = env.cairn(&["--json", "validate", "--subset", &format!("{n}/5"), &id]);
        let errors = &run.json()["results"][0]["errors"];
        if n < own {
            assert_eq!(run.code, 0, "share {n} does not read {rel}: {}", run.stdout);
            continue;
        }
        assert_eq!(run.code, 1, "share {n}: {}", run.stdout);
        assert_eq!(
            problems(errors),
            [("file_checksum_mismatch".to_owned(), rel.to_owned())],
            "share {n}"
        );
        if n > own {
            assert!(
                errors.to_string().contains("not in share"),
                "share {n} says where the finding comes from: {errors}"
            );
        }
    }
    let (next, errors) = snapshot_json(&env);
    assert_eq!(errors, []);
    assert_ne!(
        inode(&chroma_copy(&env, &next, rel)),
        inode(&chroma_copy(&env, &id, rel)),
        "the damaged copy is not linked into the next snapshot"
    );
    let human = env.cairn(&["validate", "--subset", "1/5", &next]);
    assert!(
        human.stdout.contains("share 1/5") && !human.stdout.contains("every byte"),
        "{}",
        human.stdout
    );
    let bad = env.cairn(&["validate", "--subset", "0/5", &id]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(bad.stderr.contains("0/5"), "{}", bad.stderr);
}

// ---------------------------------------------------------------------------
// SQLite: reused when provably unchanged, never stale.

/// The service: one connection kept open (as a WAL service does),
/// committing a row when asked or, while `busy`, as fast as it can.
struct Writer {
    stop: Arc<AtomicBool>,
    busy: Arc<AtomicBool>,
    /// The highest row id committed so far.
    committed: Arc<AtomicI64>,
    ask: std::sync::mpsc::Sender<std::sync::mpsc::Sender<i64>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    fn start(db: PathBuf) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let busy = Arc::new(AtomicBool::new(false));
        let committed = Arc::new(AtomicI64::new(0));
        let (ask, asked) = std::sync::mpsc::channel::<std::sync::mpsc::Sender<i64>>();
        let thread = {
            let (stop, busy, committed) = (stop.clone(), busy.clone(), committed.clone());
            std::thread::spawn(move || {
                let conn = rusqlite::Connection::open(&db).unwrap();
                conn.busy_timeout(Duration::from_secs(10)).unwrap();
                let commit = |what: &str| -> i64 {
                    conn.execute("INSERT INTO memories(content) VALUES (?1)", [what])
                        .unwrap();
                    conn.last_insert_rowid()
                };
                while !stop.load(Ordering::SeqCst) {
                    if let Ok(reply) = asked.try_recv() {
                        let id = commit("asked");
                        committed.store(id, Ordering::SeqCst);
                        reply.send(id).unwrap();
                    } else if busy.load(Ordering::SeqCst) {
                        let id = commit("racing");
                        committed.store(id, Ordering::SeqCst);
                    } else {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
            })
        };
        Writer {
            stop,
            busy,
            committed,
            ask,
            thread: Some(thread),
        }
    }

    /// Commits one row and returns its id once it is committed.
    fn commit(&self) -> i64 {
        let (reply, answer) = std::sync::mpsc::channel();
        self.ask.send(reply).unwrap();
        answer.recv().unwrap()
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn max_row(db: &Path) -> i64 {
    rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap()
        .query_row("SELECT max(id) FROM memories", [], |r| r.get(0))
        .unwrap()
}

/// With the service's connection open: no write since the last snapshot
/// (whose recorded state had settled) means the same copy, hard-linked;
/// one commit means a fresh copy holding it. While the service commits
/// without pause during the snapshots, every snapshot holds every row
/// committed before it started, and no snapshot taken after a commit ever
/// reuses the copy made before it.
#[test]
fn an_unchanged_database_is_reused_and_a_written_one_is_always_copied_fresh() {
    let env = Env::new();
    let db = env.path("data/atocore.db");
    let writer = Writer::start(db.clone());
    writer.commit();
    support::let_timestamps_settle();

    let (s1, errors) = snapshot_json(&env);
    assert_eq!(errors, []);
    let (s2, errors) = snapshot_json(&env);
    assert_eq!(errors, []);
    assert_eq!(
        inode(&db_copy(&env, &s2)),
        inode(&db_copy(&env, &s1)),
        "nothing was written: the parent's copy is reused"
    );
    // The reused copy is the database, rows and all, and restores.
    let restored = env.path("restored");
    let run = env.cairn(&["--json", "restore", &s2, "--to", restored.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(
        memories(&restored.join("db/atocore.db")),
        memories(&db_copy(&env, &s1))
    );

    // One commit: a fresh copy with that row.
    let row = writer.commit();
    let (s3, errors) = snapshot_json(&env);
    assert_eq!(errors, []);
    assert_ne!(inode(&db_copy(&env, &s3)), inode(&db_copy(&env, &s2)));
    assert_eq!(max_row(&db_copy(&env, &s3)), row);

    // Commits racing the snapshots: each one is fresh and holds at least
    // every row committed before it began.
    writer.busy.store(true, Ordering::SeqCst);
    let mut parent = s3;
    for _ in 0..4 {
        let before = writer.committed.load(Ordering::SeqCst);
        let (id, errors) = snapshot_json(&env);
        assert_eq!(errors, []);
        assert!(
            max_row(&db_copy(&env, &id)) >= before,
            "a stale copy in {id}"
        );
        assert_ne!(inode(&db_copy(&env, &id)), inode(&db_copy(&env, &parent)));
        parent = id;
    }
    writer.busy.store(false, Ordering::SeqCst);
    // Quiet again: a commit, then a snapshot taken once it settled (a
    // fresh copy), then one reusing it.
    let last = writer.commit();
    support::let_timestamps_settle();
    let (quiet, _) = snapshot_json(&env);
    assert_eq!(max_row(&db_copy(&env, &quiet)), last);
    let (again, errors) = snapshot_json(&env);
    assert_eq!(errors, []);
    assert_eq!(inode(&db_copy(&env, &again)), inode(&db_copy(&env, &quiet)));
    drop(writer);
}

/// A state recorded moments after a write is racy (a later write in the
/// same timestamp tick would look the same): the next snapshot copies the
/// database again even though nothing was written since.
#[test]
fn a_database_written_just_before_a_snapshot_is_not_reused_by_the_next() {
    let env = Env::new();
    let db = env.path("data/atocore.db");
    let writer = Writer::start(db.clone());
    let row = writer.commit();
    let (s1, _) = snapshot_json(&env);
    let (s2, errors) = snapshot_json(&env);
    assert_eq!(errors, []);
    assert_ne!(inode(&db_copy(&env, &s2)), inode(&db_copy(&env, &s1)));
    assert_eq!(max_row(&db_copy(&env, &s2)), row);
    drop(writer);
}

/// No connection open: the first snapshot's reader makes SQLite create an
/// empty `-wal` beside the database; that is part of the state recorded,
/// so the very next snapshot already reuses the copy. A commit through a
/// connection opened and closed meanwhile (its `-wal` checkpointed and
/// removed) is a fresh copy holding the row.
#[test]
fn a_database_nobody_has_open_is_reused_and_one_written_meanwhile_is_not() {
    let env = Env::new();
    let db = env.path("data/atocore.db");
    support::let_timestamps_settle();
    let (s1, _) = snapshot_json(&env);
    let (s2, errors) = snapshot_json(&env);
    assert_eq!(errors, []);
    assert_eq!(inode(&db_copy(&env, &s2)), inode(&db_copy(&env, &s1)));

    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute("INSERT INTO memories(content) VALUES ('meanwhile')", [])
        .unwrap();
    drop(conn);
    let (s3, errors) = snapshot_json(&env);
    assert_eq!(errors, []);
    assert_ne!(inode(&db_copy(&env, &s3)), inode(&db_copy(&env, &s2)));
    assert_eq!(
        memories(&db_copy(&env, &s3)).last().map(String::as_str),
        Some("meanwhile")
    );
}

/// The chroma-dir kind's embedded databases, as the snapshot's manifest
/// lists them.
fn listed_databases(env: &Env, id: &str) -> Vec<String> {
    let text = std::fs::read_to_string(env.snapshot_dir(id).join("manifest.json")).unwrap();
    let manifest: Value = serde_json::from_str(&text).unwrap();
    let chroma = manifest["stores"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "chroma")
        .unwrap();
    chroma["metadata"]["sqlite_files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_owned())
        .collect()
}

/// The chroma-dir kind reads the header of a file it saw unchanged since
/// the parent only if the parent listed it as a database: an unchanged
/// plain file is linked, an unchanged embedded database is still one,
/// and a plain file overwritten with a database (its ctime moved) is
/// found by its header again and copied online, rows and all.
#[test]
fn a_file_that_becomes_a_database_is_found_again_and_unchanged_ones_keep_their_kind() {
    let env = Env::new();
    let later = env.path("data/chroma/seg-0001/later.db");
    std::fs::write(&later, b"not a database yet").unwrap();
    support::let_timestamps_settle();
    let (s0, _) = snapshot_json(&env);
    assert_eq!(listed_databases(&env, &s0), ["chroma.sqlite3"]);

    let (s1, errors) = snapshot_json(&env);
    assert_eq!(errors, []);
    assert_eq!(listed_databases(&env, &s1), ["chroma.sqlite3"]);
    assert_eq!(
        inode(&chroma_copy(&env, &s1, "seg-0001/later.db")),
        inode(&chroma_copy(&env, &s0, "seg-0001/later.db")),
        "an unchanged plain file is the parent's copy"
    );

    // Overwritten in place (same inode) with a database's bytes.
    let scratch = env.path("scratch.db");
    let conn = rusqlite::Connection::open(&scratch).unwrap();
    conn.execute_batch("CREATE TABLE t(v TEXT); INSERT INTO t VALUES ('found');")
        .unwrap();
    drop(conn);
    std::fs::write(&later, std::fs::read(&scratch).unwrap()).unwrap();
    let (s2, errors) = snapshot_json(&env);
    assert_eq!(errors, []);
    assert_eq!(
        listed_databases(&env, &s2),
        ["chroma.sqlite3", "seg-0001/later.db"]
    );
    let copy = rusqlite::Connection::open(chroma_copy(&env, &s2, "seg-0001/later.db")).unwrap();
    let v: String = copy.query_row("SELECT v FROM t", [], |r| r.get(0)).unwrap();
    assert_eq!(v, "found");
}

/// A file written less than the racy margin before a snapshot (its
/// timestamps could be those of a write still to come in the same tick)
/// is copied again by the next snapshot, never reused on a possibly stale
/// record; once its timestamps have settled, the copy is shared.
#[test]
fn a_file_written_just_before_a_snapshot_is_copied_again_by_the_next() {
    let env = Env::new();
    support::let_timestamps_settle();
    let fresh = env.path("data/chroma/seg-0001/fresh.bin");
    std::fs::write(&fresh, b"written just now").unwrap();
    let (s0, _) = snapshot_json(&env);
    let (s1, errors) = snapshot_json(&env);
    assert_eq!(errors, []);
    assert_ne!(
        inode(&chroma_copy(&env, &s1, "seg-0001/fresh.bin")),
        inode(&chroma_copy(&env, &s0, "seg-0001/fresh.bin")),
        "a racy record is not a proof"
    );
    assert_eq!(
        std::fs::read(chroma_copy(&env, &s1, "seg-0001/fresh.bin")).unwrap(),
        b"written just now"
    );
    assert_eq!(
        inode(&chroma_copy(&env, &s1, "seg-0001/header.bin")),
        inode(&chroma_copy(&env, &s0, "seg-0001/header.bin")),
        "a settled file is shared"
    );

    support::let_timestamps_settle();
    let (s2, _) = snapshot_json(&env);
    let (s3, errors) = snapshot_json(&env);
    assert_eq!(errors, []);
    assert_eq!(
        inode(&chroma_copy(&env, &s3, "seg-0001/fresh.bin")),
        inode(&chroma_copy(&env, &s2, "seg-0001/fresh.bin")),
        "settled, the copy is shared"
    );
}
