//! Invariant 3: a snapshot into a full filesystem exits 4 naming the path,
//! leaves no snapshot and no temp files, and does not touch live data.
//!
//! Fails without: the error path of `snapshot::capture` (removing the
//! build in `tmp/` on failure), `Error::io` naming the path, and the exit
//! class mapping ENOSPC to 4. The injected variant (`CAIRN_FAILPOINT`,
//! `fault::check_write`) always runs; the tmpfs variant needs root and is
//! `#[ignore]`d for it (.ci/run runs it as root).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::Env;
use crate::util::*;

fn assert_clean_failure(
    env: &Env,
    run: &crate::support::Run,
    path_hint: &str,
    before: &[(String, String, Vec<u8>)],
) {
    assert_eq!(run.code, 4, "{}\n{}", run.stdout, run.stderr);
    no_panic(run, "disk full");
    assert!(
        run.stderr.contains(path_hint),
        "the message does not name the path ({path_hint}): {}",
        run.stderr
    );
    assert!(
        run.stderr.to_lowercase().contains("no space"),
        "the message does not say why: {}",
        run.stderr
    );
    assert_eq!(
        env.listed_ids(),
        Vec::<String>::new(),
        "a snapshot was left"
    );
    let snaps: Vec<_> = std::fs::read_dir(env.path("backups/snapshots"))
        .map(|d| d.collect())
        .unwrap_or_default();
    assert!(snaps.is_empty(), "snapshots/ not empty");
    assert_eq!(
        tmp_entries(env),
        Vec::<String>::new(),
        "temp files left in backups/tmp"
    );
    let after = live_state(env);
    assert!(
        after == before,
        "live data changed: {:?}",
        live_diff(before, &after)
    );
}

#[test]
fn injected_enospc_exits_4_and_leaves_nothing() {
    let env = Env::new();
    let before = live_state(&env);
    for point in ["stores/chroma/seg-0001/data_level0.bin", "stores/registry"] {
        let run = env.cairn_env(
            &["snapshot"],
            &[("CAIRN_FAILPOINT", &format!("write:{point}"))],
        );
        assert_clean_failure(&env, &run, point, &before);
    }
    // With the fault gone, the same snapshot works.
    env.snapshot(&[]);
}

struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn mount_tmpfs(dir: &Path, size: &str) -> Mount {
    std::fs::create_dir_all(dir).unwrap();
    let out = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir)
        .output()
        .expect("run mount");
    assert!(
        out.status.success(),
        "mount -t tmpfs {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    Mount(dir.to_owned())
}

#[test]
#[ignore = "needs root"]
fn a_full_filesystem_exits_4_and_leaves_nothing() {
    crate::support::require_root();
    let env = Env::new();
    // Bigger than the 2 MiB filesystem the repository gets.
    write_big_file(&env.path("data/chroma/seg-0001/big.bin"), 4, 3);
    let before = live_state(&env);
    let _mount = mount_tmpfs(&env.path("backups"), "2m");
    let run = env.cairn(&["snapshot"]);
    assert_clean_failure(&env, &run, "backups/tmp/", &before);
}

/// The SQLite copy filling the disk, alone (the test above races it
/// against the chroma copy): SQLite says SQLITE_FULL, and the message
/// named only the source and "not an error" before; it must name the copy
/// under backups/tmp/ and say why. Both SQLite copies: the `sqlite`
/// store's, and the one the `chroma-dir` store makes of its embedded
/// database (the same online copy).
#[test]
#[ignore = "needs root"]
fn a_database_larger_than_the_free_space_exits_4_naming_the_copy() {
    crate::support::require_root();
    for db in ["data/atocore.db", "data/chroma/chroma.sqlite3"] {
        let env = Env::new();
        let conn = rusqlite::Connection::open(env.path(db)).unwrap();
        conn.execute("CREATE TABLE ballast (b BLOB)", []).unwrap();
        let blob: Vec<u8> = (0..4u32 << 20)
            .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
            .collect();
        conn.execute("INSERT INTO ballast VALUES (?1)", [blob])
            .unwrap();
        drop(conn);
        let before = live_state(&env);
        let _mount = mount_tmpfs(&env.path("backups"), "2m");
        let run = env.cairn(&["snapshot"]);
        assert_clean_failure(&env, &run, "backups/tmp/", &before);
        assert!(!run.stderr.contains("not an error"), "{db}: {}", run.stderr);
    }
}
