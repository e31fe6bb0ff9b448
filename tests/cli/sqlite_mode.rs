//! SQLite copies in a snapshot are stored in rollback-journal mode, so the
//! documented way to look at one (`sqlite3 …/stores/db/atocore.db`) writes
//! nothing beside it, and the snapshot stays valid; a live restore puts the
//! recorded journal mode back, so a WAL database comes back in WAL mode with
//! its rows; a restore elsewhere (and so a drill) gives the snapshot's
//! bytes exactly.
//!
//! Fails without `online_copy` switching the copy to `journal_mode=DELETE`:
//! copies kept the WAL flag of their source's header, and a reader that can
//! write the snapshot's directory (its owner) left a `-wal` and a `-shm`
//! there, which validation reports as `file_unexpected`.

use std::path::Path;
use std::process::Command;

use rusqlite::{Connection, OpenFlags};

use crate::support::{self, Env};

/// Bytes 18 and 19 of an SQLite header: 2 and 2 for WAL, 1 and 1 for a
/// rollback journal.
fn header_mode(db: &Path) -> (u8, u8) {
    let bytes = std::fs::read(db).unwrap();
    (bytes[18], bytes[19])
}

const WAL: (u8, u8) = (2, 2);
const ROLLBACK: (u8, u8) = (1, 1);

fn sidecars(dir: &Path) -> Vec<String> {
    support::dir_names(dir)
        .into_iter()
        .filter(|n| n.ends_with("-wal") || n.ends_with("-shm") || n.ends_with("-journal"))
        .collect()
}

/// The fixture, with the chroma tree's embedded database in WAL mode too.
fn wal_env() -> Env {
    let env = Env::new();
    Connection::open(env.path("data/chroma/chroma.sqlite3"))
        .unwrap()
        .execute_batch("PRAGMA journal_mode=WAL;")
        .unwrap();
    env
}

fn count(db: &Path, table: &str) -> i64 {
    Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap()
        .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

#[test]
fn copies_are_stored_in_rollback_mode_and_a_live_restore_puts_wal_back() {
    let env = wal_env();
    assert_eq!(header_mode(&env.path("data/atocore.db")), WAL);
    assert_eq!(header_mode(&env.path("data/chroma/chroma.sqlite3")), WAL);
    let id = env.snapshot(&[]);
    let stores = env.snapshot_dir(&id).join("stores");
    let db_copy = stores.join("db/atocore.db");
    let chroma_copy = stores.join("chroma/chroma.sqlite3");
    assert_eq!(header_mode(&db_copy), ROLLBACK, "the db store's copy");
    assert_eq!(
        header_mode(&chroma_copy),
        ROLLBACK,
        "the chroma tree's copy"
    );

    // The manifest still says what the sources were.
    let show = env.cairn(&["--json", "show", &id]).json();
    let store = |name: &str| {
        show["stores"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(store("db")["metadata"]["journal_mode"], "wal");
    assert_eq!(
        store("chroma")["metadata"]["sqlite_journal_modes"]["chroma.sqlite3"],
        "wal"
    );

    // Read the copies as their owner would, through SQLite (not
    // immutable): nothing appears beside them, the snapshot stays valid.
    assert_eq!(count(&db_copy, "memories"), 1);
    assert_eq!(count(&chroma_copy, "embeddings"), 1);
    assert_eq!(sidecars(&stores.join("db")), Vec::<String>::new());
    assert_eq!(sidecars(&stores.join("chroma")), Vec::<String>::new());
    let run = env.cairn(&["validate", &id]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);

    // A live restore: WAL again, with the snapshot's rows.
    env.db()
        .execute(
            "INSERT INTO memories(content) VALUES ('after the snapshot')",
            [],
        )
        .unwrap();
    let run = env.cairn(&["restore", &id, "--confirm-service-stopped"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let live = env.path("data/atocore.db");
    assert_eq!(header_mode(&live), WAL, "the live db is back in WAL mode");
    assert_eq!(
        header_mode(&env.path("data/chroma/chroma.sqlite3")),
        WAL,
        "the chroma db is back in WAL mode"
    );
    assert_eq!(count(&live, "memories"), 1);
    let journal: String = env
        .db()
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(journal, "wal");

    // Elsewhere: the snapshot's bytes, so a drill re-verifies every byte.
    let to = tempfile::tempdir().unwrap();
    let run = env.cairn(&["restore", &id, "--to", to.path().to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        std::fs::read(to.path().join("db/atocore.db")).unwrap() == std::fs::read(&db_copy).unwrap(),
        "a restore elsewhere changed the snapshot's bytes"
    );
    let run = env.cairn(&["drill", &id]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
}

const NOBODY: &str = "65534";

/// `program args…` as uid/gid 65534, no supplementary groups.
fn as_nobody(env: &Env, program: &str, args: &[&std::ffi::OsStr]) -> support::Run {
    Command::new("setpriv")
        .args([
            &format!("--reuid={NOBODY}"),
            &format!("--regid={NOBODY}"),
            "--clear-groups",
            "--",
            program,
        ])
        .args(args)
        .current_dir(&env.root)
        .env("HOME", &env.root)
        .env_remove("CAIRN_CONFIG")
        .env_remove("CAIRN_FAILPOINT")
        .output()
        .expect("run setpriv")
        .into()
}

fn cairn_as_nobody(env: &Env, args: &[&str]) -> support::Run {
    let args = env.with_config(args);
    let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    as_nobody(env, support::CAIRN, &args)
}

fn sqlite3_as_nobody(env: &Env, db: &Path, sql: &str) -> String {
    let run = as_nobody(env, "sqlite3", &[db.as_os_str(), sql.as_ref()]);
    assert_eq!(
        run.code,
        0,
        "sqlite3 {} {sql:?}: {}",
        db.display(),
        run.stderr
    );
    run.stdout.trim().to_owned()
}

fn chown_tree(path: &Path, uid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(uid)).unwrap();
    let meta = std::fs::symlink_metadata(path).unwrap();
    if meta.is_dir() {
        for e in std::fs::read_dir(path).unwrap() {
            chown_tree(&e.unwrap().path(), uid);
        }
    }
}

/// The operator guide's advice, taken literally by the snapshot's owner
/// (not root, so the copy is read-only to them but its directory is
/// theirs): `sqlite3 …/stores/db/atocore.db`, then `cairn validate`.
#[test]
#[ignore = "needs root"]
fn reading_a_copy_with_sqlite3_as_its_owner_leaves_the_snapshot_valid() {
    support::require_root();
    support::require_program("sqlite3", "-version", "sqlite3");
    support::require_program("setpriv", "--version", "util-linux");
    let env = wal_env();
    chown_tree(&env.root, NOBODY.parse().unwrap());

    let run = cairn_as_nobody(&env, &["--json", "snapshot"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let id = run.json()["id"].as_str().unwrap().to_owned();
    let stores = env.snapshot_dir(&id).join("stores");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(stores.join("db")).unwrap().uid(),
        65534,
        "the snapshot belongs to the user who took it"
    );

    let db_copy = stores.join("db/atocore.db");
    let chroma_copy = stores.join("chroma/chroma.sqlite3");
    assert_eq!(
        sqlite3_as_nobody(&env, &db_copy, "SELECT content FROM memories"),
        "baseline memory"
    );
    assert_eq!(
        sqlite3_as_nobody(&env, &chroma_copy, "SELECT count(*) FROM embeddings"),
        "1"
    );
    assert_eq!(sidecars(&stores.join("db")), Vec::<String>::new());
    assert_eq!(sidecars(&stores.join("chroma")), Vec::<String>::new());
    let run = cairn_as_nobody(&env, &["--json", "validate", &id]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);

    // The way back: a live restore of the WAL database, by the same user.
    let live = env.path("data/atocore.db");
    sqlite3_as_nobody(
        &env,
        &live,
        "INSERT INTO memories(content) VALUES ('after the snapshot')",
    );
    let run = cairn_as_nobody(&env, &["restore", &id, "--confirm-service-stopped"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(sqlite3_as_nobody(&env, &live, "PRAGMA journal_mode"), "wal");
    assert_eq!(
        sqlite3_as_nobody(&env, &live, "SELECT group_concat(content) FROM memories"),
        "baseline memory"
    );
    assert_eq!(
        sqlite3_as_nobody(
            &env,
            &env.path("data/chroma/chroma.sqlite3"),
            "PRAGMA journal_mode"
        ),
        "wal"
    );
    let run = cairn_as_nobody(&env, &["--json", "validate", "--all"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
}
