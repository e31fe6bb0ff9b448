//! What the remote tests share: a remote added to the standard config,
//! the JSON of a push, the objects on a `file://` remote.

use std::path::{Path, PathBuf};

use crate::support::{Env, Run, CONFIG};

/// The standard three-store config plus one `[[remote]]` table.
pub fn with_remote(env: &Env, remote_toml: &str) {
    env.write_config(&format!("{CONFIG}\n[[remote]]\n{remote_toml}\n"));
}

/// A `file://` remote named `offsite` under the test's directory.
pub fn fs_remote(env: &Env, extra: &str) -> PathBuf {
    let dir = env.path("offsite");
    with_remote(
        env,
        &format!(
            "name = \"offsite\"\nurl = \"file://{}\"\n{extra}",
            dir.display()
        ),
    );
    dir
}

pub fn ok(run: &Run) -> serde_json::Value {
    assert_eq!(
        run.code, 0,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    run.json()
}

/// The one snapshot of a one-remote push report.
pub fn pushed(run: &Run) -> serde_json::Value {
    let doc = ok(run);
    let snaps = doc["remotes"][0]["snapshots"].as_array().unwrap().clone();
    assert_eq!(snaps.len(), 1, "{doc}");
    snaps[0].clone()
}

/// Every file under `dir`, relative, sorted.
pub fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd {
            let e = e.unwrap();
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    walk(dir, dir, &mut out);
    out.sort();
    out
}

pub fn packs(remote: &Path) -> Vec<PathBuf> {
    files_under(&remote.join("packs"))
        .into_iter()
        .map(|p| remote.join("packs").join(p))
        .collect()
}

/// Random bytes (xorshift), so chunks do not deduplicate by accident.
pub fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s as u8
        })
        .collect()
}

/// Grows the sample database to about `rows` × 1 KiB of rows.
pub fn grow_db(env: &Env, rows: usize) {
    let db = env.db();
    db.execute_batch("BEGIN").unwrap();
    for i in 0..rows {
        db.execute(
            "INSERT INTO memories(content) VALUES (?1)",
            [format!("{i:08} {}", "m".repeat(1000))],
        )
        .unwrap();
    }
    db.execute_batch("COMMIT; PRAGMA wal_checkpoint(TRUNCATE);")
        .unwrap();
}
