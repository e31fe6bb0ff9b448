//! Helpers shared by the reliability tests: big trees, killable runs,
//! manifest surgery, and views of the live state.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cairn_engine::Manifest;

use crate::support::{self, Env, Run, CAIRN};

/// Starts `cairn ARGS` in `env` without waiting for it.
pub fn spawn(env: &Env, args: &[&str], vars: &[(&str, &str)]) -> Child {
    let mut cmd = Command::new(CAIRN);
    cmd.current_dir(&env.root)
        .args(env.with_config(args))
        .env_remove("CAIRN_CONFIG")
        .env_remove("CAIRN_FAILPOINT")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd.spawn().expect("spawn cairn")
}

/// SIGKILL (no chance to clean up), then reap.
pub fn kill9(child: &mut Child) {
    let _ = child.kill(); // std's kill is SIGKILL on Unix
    let _ = child.wait();
}

/// Waits for `child` up to `limit`; on expiry kills it and returns `None`.
pub fn wait_or_kill(mut child: Child, limit: Duration) -> Option<Run> {
    let start = Instant::now();
    loop {
        if child.try_wait().expect("try_wait").is_some() {
            return Some(child.wait_with_output().expect("collect output").into());
        }
        if start.elapsed() > limit {
            kill9(&mut child);
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Fills `path` with `mb` MiB of varied (not sparse, not constant) bytes,
/// written fast from one pattern buffer.
pub fn write_big_file(path: &Path, mb: usize, seed: u32) {
    let block: Vec<u8> = (0..1u32 << 20)
        .map(|i| ((i ^ seed).wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for n in 0..mb {
        // Each MiB differs in its first bytes so no two blocks hash alike.
        f.write_all(&(n as u64 ^ u64::from(seed)).to_le_bytes())
            .unwrap();
        f.write_all(&block[8..]).unwrap();
    }
    f.flush().unwrap();
}

/// `count` small files spread over `dirs` subdirectories of `root`.
pub fn write_small_files(root: &Path, count: usize, dirs: usize) {
    for d in 0..dirs.max(1) {
        std::fs::create_dir_all(root.join(format!("d{d:03}"))).unwrap();
    }
    for i in 0..count {
        let d = i % dirs.max(1);
        std::fs::write(
            root.join(format!("d{d:03}/f{i:05}.bin")),
            format!("small file {i}\n").repeat(1 + i % 7),
        )
        .unwrap();
    }
}

pub fn tmp_entries(env: &Env) -> Vec<String> {
    support::dir_names(&env.path("backups/tmp"))
}

/// `validate --all` must exit 0 with every result valid.
pub fn assert_all_valid(env: &Env, context: &str) {
    let run = env.cairn(&["--json", "validate", "--all"]);
    assert_eq!(
        run.code, 0,
        "{context}: validate --all failed:\n{}\n{}",
        run.stdout, run.stderr
    );
    for r in run.json()["results"].as_array().unwrap() {
        assert_eq!(r["valid"], true, "{context}: {r}");
    }
}

/// `validate --all --quick` (presence, sizes, structure, quick_check).
pub fn assert_all_valid_quick(env: &Env, context: &str) {
    let run = env.cairn(&["--json", "validate", "--all", "--quick"]);
    assert_eq!(
        run.code, 0,
        "{context}: validate --all --quick failed:\n{}\n{}",
        run.stdout, run.stderr
    );
}

/// The live state outside the repository: data/ and config/ trees. The
/// chroma store's `lock_file` (created empty by the first snapshot that
/// takes it) is not data and is left out, as are the SQLite `-shm` index
/// and an empty `-wal`, which any reader of a WAL database may leave behind
/// without changing a byte of the database.
pub fn live_state(env: &Env) -> Vec<(String, String, Vec<u8>)> {
    let mut out = Vec::new();
    for top in ["data", "config"] {
        if env.path(top).exists() {
            for (p, k, b) in support::tree(&env.path(top)) {
                if top == "data" && p == ".ingest.lock"
                    || p.ends_with("-shm")
                    || (p.ends_with("-wal") && b.is_empty())
                {
                    continue;
                }
                out.push((format!("{top}/{p}"), k, b));
            }
        }
    }
    out
}

/// Paths that differ between two `live_state`s (for failure messages).
pub fn live_diff(a: &[(String, String, Vec<u8>)], b: &[(String, String, Vec<u8>)]) -> Vec<String> {
    let mut out: Vec<String> = a
        .iter()
        .filter(|x| !b.contains(x))
        .map(|x| format!("before/only-left: {} ({})", x.0, x.1))
        .collect();
    out.extend(
        b.iter()
            .filter(|x| !a.contains(x))
            .map(|x| format!("after/only-right: {} ({})", x.0, x.1)),
    );
    out
}

/// Rows of the memories table, in id order.
pub fn memories(db: &Path) -> Vec<(i64, String)> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare("SELECT id, content FROM memories ORDER BY id")
        .unwrap();
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    rows
}

pub fn integrity_ok(db: &Path) -> bool {
    let conn = rusqlite::Connection::open(db).unwrap();
    let s: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    s == "ok"
}

pub fn manifest_path(env: &Env, id: &str) -> PathBuf {
    env.snapshot_dir(id).join("manifest.json")
}

/// Reads a snapshot's manifest (trusting it: the test wrote it).
pub fn read_manifest(env: &Env, id: &str) -> Manifest {
    serde_json::from_slice(&std::fs::read(manifest_path(env, id)).unwrap()).unwrap()
}

/// The standard config with `from` replaced by `to` and `append` added.
pub fn config_with(env: &Env, from: &str, to: &str, append: &str) {
    assert!(support::CONFIG.contains(from), "{from:?} not in the config");
    env.write_config(&format!("{}{append}", support::CONFIG.replace(from, to)));
}

pub fn no_panic(run: &Run, context: &str) {
    assert!(
        !run.stderr.contains("panicked") && !run.stderr.contains("RUST_BACKTRACE"),
        "{context}: cairn panicked:\n{}",
        run.stderr
    );
    assert!(run.code >= 0, "{context}: killed by a signal");
}
