//! FIFOs (and other special files) are never opened: not by a snapshot
//! looking for SQLite headers, not by validation's kind checks, not by a
//! restore's in-use probe. Each run here has a time limit: a command that
//! opened a FIFO for reading would block forever (a snapshot holding the
//! repository lock), so a run killed at the limit fails the test.
//!
//! Fails without: `fsutil::open_nofollow` refusing what `lstat` and
//! `fstat` do not call a regular file (opened `O_NONBLOCK` in between),
//! `cairn_sqlite_support::is_sqlite_file` going through it, the support
//! crate's check of a database and its sidecars before SQLite is handed
//! the path (`integrity_check`, `online_copy`, `clear_sidecars`), and the
//! in-use probe refusing a special file where a sidecar belongs.

use std::path::Path;
use std::time::Duration;

use crate::support::{Env, Run};
use crate::util::*;

/// Long enough for a loaded CI machine, short enough that a hang fails fast.
const LIMIT: Duration = Duration::from_secs(20);

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    #[allow(unsafe_code)]
    // SAFETY: `c` is a NUL-terminated path that outlives the call.
    let rc = unsafe { libc::mkfifo(c.as_ptr(), 0o644) };
    assert_eq!(
        rc,
        0,
        "mkfifo {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
}

/// Runs cairn with the time limit; a hang is a test failure naming `what`.
fn run_limited(env: &Env, args: &[&str], what: &str) -> Run {
    let child = spawn(env, args, &[]);
    let run = wait_or_kill(child, LIMIT)
        .unwrap_or_else(|| panic!("{what} hung for {LIMIT:?} (did it open a FIFO?)"));
    no_panic(&run, what);
    run
}

/// Removes whatever SQLite left beside the live database (closed readers
/// may leave an empty `-wal` and a `-shm`).
fn clear_live_sidecars(env: &Env, db: &str) {
    for suffix in ["-wal", "-shm", "-journal"] {
        let _ = std::fs::remove_file(env.path(&format!("{db}{suffix}")));
    }
}

#[test]
fn a_fifo_named_like_an_sqlite_file_beside_a_wal_is_skipped_not_opened() {
    let env = Env::new();
    let chroma = env.path("data/chroma");
    // `x.sqlite3-wal` makes the snapshot ask whether `x.sqlite3` is an
    // SQLite database, i.e. read its header: `x.sqlite3` is a FIFO.
    mkfifo(&chroma.join("x.sqlite3"));
    std::fs::write(chroma.join("x.sqlite3-wal"), b"not really a wal").unwrap();

    let run = run_limited(&env, &["--json", "snapshot"], "snapshot");
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let id = run.json()["id"].as_str().unwrap().to_owned();
    let record = read_manifest(&env, &id).store("chroma").unwrap().clone();
    assert!(
        record.entries.iter().all(|e| e.path != "x.sqlite3"),
        "the FIFO was captured: {:?}",
        record.entries
    );
    assert!(
        record.warnings.iter().any(|w| w.contains("x.sqlite3")),
        "no warning names the FIFO: {:?}",
        record.warnings
    );
    // The file beside it is ordinary data: its "database" is not one.
    assert!(record.entries.iter().any(|e| e.path == "x.sqlite3-wal"));

    // The repository lock was released: the next run neither hangs nor waits.
    let run = run_limited(&env, &["--json", "snapshot"], "second snapshot");
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_all_valid(&env, "after snapshots beside a FIFO");
}

#[test]
fn a_fifo_in_place_of_a_databases_wal_stops_the_snapshot_without_hanging() {
    let env = Env::new();
    clear_live_sidecars(&env, "data/atocore.db");
    let wal = env.path("data/atocore.db-wal");
    mkfifo(&wal);

    let run = run_limited(&env, &["--json", "snapshot", "--only", "db"], "snapshot");
    assert_eq!(run.code, 4, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains(&*wal.to_string_lossy()) && run.stderr.contains("FIFO"),
        "the error should name the FIFO: {}",
        run.stderr
    );
    assert!(env.listed_ids().is_empty(), "no snapshot is published");
    assert!(tmp_entries(&env).is_empty(), "{:?}", tmp_entries(&env));
}

#[test]
fn a_fifo_planted_in_a_snapshot_is_a_problem_and_validate_never_hangs() {
    let env = Env::new();
    let id = env.snapshot(&[]);
    env.unlock_snapshot(&id);
    let stores = env.snapshot_dir(&id).join("stores");
    let planted = [
        ("db", "atocore.db"),
        ("registry", "project-registry.json"),
        ("chroma", "chroma.sqlite3"),
    ];
    for (store, file) in planted {
        let path = stores.join(store).join(file);
        std::fs::remove_file(&path).unwrap();
        mkfifo(&path);
    }
    // And one where SQLite would look for a sidecar of the copy.
    mkfifo(&stores.join("chroma/chroma.sqlite3-journal"));

    for args in [
        vec!["--json", "validate", id.as_str()],
        vec!["--json", "validate", "--quick", id.as_str()],
    ] {
        let what = args.join(" ");
        let run = run_limited(&env, &args, &what);
        assert_eq!(run.code, 1, "{what}: {}\n{}", run.stdout, run.stderr);
        let errors = run.json()["results"][0]["errors"].clone();
        let errors = errors.as_array().unwrap();
        for (store, file) in planted {
            let here: Vec<&serde_json::Value> = errors
                .iter()
                .filter(|e| e["store"] == store && e["path"] == file)
                .collect();
            assert!(
                here.iter().any(|e| e["code"] == "file_type_mismatch"),
                "{what}: no file_type_mismatch for {store}/{file}: {errors:?}"
            );
            // The kind's own check names the path too, and says why it
            // did not read it.
            assert!(
                here.iter().any(|e| e["code"] != "file_type_mismatch"
                    && e["detail"].as_str().unwrap().contains("FIFO")),
                "{what}: the {store} kind's check does not report the FIFO: {errors:?}"
            );
        }
        assert!(
            errors
                .iter()
                .any(|e| e["code"] == "file_unexpected" && e["path"] == "chroma.sqlite3-journal"),
            "{what}: {errors:?}"
        );
    }
}

#[test]
fn a_fifo_where_a_live_sidecar_belongs_refuses_the_restore_without_hanging() {
    for (store, db, suffix) in [
        ("db", "data/atocore.db", "-shm"),
        ("db", "data/atocore.db", "-wal"),
        ("chroma", "data/chroma/chroma.sqlite3", "-shm"),
    ] {
        let what = format!("restore with a FIFO at {db}{suffix}");
        let env = Env::new();
        let id = env.snapshot(&[]);
        clear_live_sidecars(&env, db);
        let fifo = env.path(&format!("{db}{suffix}"));
        mkfifo(&fifo);
        // (Not `live_state`: reading the FIFO to compare it would block.)
        let before = std::fs::read(env.path(db)).unwrap();
        let ids_before = env.listed_ids();

        let run = run_limited(
            &env,
            &["restore", &id, "--confirm-service-stopped", "--only", store],
            &what,
        );
        assert_eq!(run.code, 3, "{what}: {}\n{}", run.stdout, run.stderr);
        assert!(
            run.stderr.contains(&*fifo.to_string_lossy()) && run.stderr.contains("FIFO"),
            "{what}: the refusal should name the FIFO: {}",
            run.stderr
        );
        assert!(
            std::fs::symlink_metadata(&fifo)
                .map(|m| {
                    use std::os::unix::fs::FileTypeExt;
                    m.file_type().is_fifo()
                })
                .unwrap_or(false),
            "{what}: the FIFO was removed or replaced"
        );
        assert_eq!(
            std::fs::read(env.path(db)).unwrap(),
            before,
            "{what}: the live database changed"
        );
        assert_eq!(env.listed_ids(), ids_before, "{what}: a snapshot was taken");
        // Once the operator removes it, the same restore goes through.
        std::fs::remove_file(&fifo).unwrap();
        let run = run_limited(
            &env,
            &["restore", &id, "--confirm-service-stopped", "--only", store],
            &what,
        );
        assert_eq!(run.code, 0, "{what}: {}\n{}", run.stdout, run.stderr);
    }
}

#[test]
fn a_config_that_is_a_fifo_or_a_device_is_refused_not_read() {
    let env = Env::new();
    let fifo = env.path("fifo.toml");
    mkfifo(&fifo);
    for config in [fifo.to_str().unwrap(), "/dev/zero"] {
        let run = run_limited(&env, &["--config", config, "list"], config);
        assert_eq!(run.code, 2, "{config}: {}\n{}", run.stdout, run.stderr);
        // (As root, /dev/zero is refused sooner: anyone may write it.)
        assert!(
            run.stderr.contains(config)
                && (run.stderr.contains("not a regular file")
                    || config == "/dev/zero" && run.stderr.contains("refused as root")),
            "{config}: {}",
            run.stderr
        );
    }
}
