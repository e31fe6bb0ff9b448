//! Shared fixtures for the end-to-end tests: a sample service state (an
//! SQLite database in WAL mode, a project registry JSON, a Chroma-like
//! directory with its own SQLite file) with a `cairn.toml`, and a runner
//! for the real `cairn` binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rusqlite::Connection;
use serde_json::Value;

pub const CAIRN: &str = env!("CARGO_BIN_EXE_cairn");

pub struct Env {
    _dir: tempfile::TempDir,
    pub root: PathBuf,
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not one JSON document ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

pub const CONFIG: &str = r#"repository = "backups"
lock_wait_seconds = 5

[[store]]
name = "db"
kind = "sqlite"
path = "data/atocore.db"

[[store]]
name = "registry"
kind = "registry-json"
path = "config/project-registry.json"
optional = true

[[store]]
name = "chroma"
kind = "chroma-dir"
path = "data/chroma"
lock_file = "data/.ingest.lock"
"#;

impl Env {
    /// The sample state and the standard three-store config.
    pub fn new() -> Env {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().to_owned();
        let env = Env { _dir: dir, root };
        env.seed();
        env.write_config(CONFIG);
        env
    }

    /// Only the directory, no state, no config.
    pub fn empty() -> Env {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().to_owned();
        Env { _dir: dir, root }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// Writes `cairn.toml` 0600 whatever the umask: as root, cairn refuses
    /// a config its group or other users can write.
    pub fn write_config(&self, text: &str) {
        use std::os::unix::fs::PermissionsExt;
        let path = self.path("cairn.toml");
        std::fs::write(&path, text).expect("write config");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .expect("chmod config");
    }

    fn seed(&self) {
        std::fs::create_dir_all(self.path("data/chroma/seg-0001")).unwrap();
        std::fs::create_dir_all(self.path("data/chroma/empty-dir")).unwrap();
        std::fs::create_dir_all(self.path("config")).unwrap();
        let db = self.db();
        db.execute_batch(
            "PRAGMA journal_mode=WAL;
             CREATE TABLE projects(id TEXT PRIMARY KEY, name TEXT);
             CREATE TABLE memories(id INTEGER PRIMARY KEY, content TEXT NOT NULL);
             INSERT INTO projects VALUES ('p01', 'P01 Example');
             INSERT INTO memories(content) VALUES ('baseline memory');",
        )
        .unwrap();
        std::fs::write(
            self.path("config/project-registry.json"),
            "{\"projects\":[{\"id\":\"p01-example\",\"aliases\":[],\"ingest_roots\":[]}]}\n",
        )
        .unwrap();
        let chroma = Connection::open(self.path("data/chroma/chroma.sqlite3")).unwrap();
        chroma
            .execute_batch("CREATE TABLE embeddings(id INTEGER PRIMARY KEY, doc TEXT); INSERT INTO embeddings(doc) VALUES ('baseline');")
            .unwrap();
        let segment: Vec<u8> = (0..200_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
            .collect();
        std::fs::write(self.path("data/chroma/seg-0001/data_level0.bin"), segment).unwrap();
        std::fs::write(self.path("data/chroma/seg-0001/header.bin"), b"header").unwrap();
    }

    /// A connection to the live database.
    pub fn db(&self) -> Connection {
        Connection::open(self.path("data/atocore.db")).unwrap()
    }

    pub fn cairn(&self, args: &[&str]) -> Run {
        self.cairn_env(args, &[])
    }

    pub fn cairn_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut cmd = Command::new(CAIRN);
        cmd.current_dir(&self.root)
            .args(self.with_config(args))
            .env_remove("CAIRN_CONFIG")
            .env_remove("CAIRN_FAILPOINT");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().expect("run cairn").into()
    }

    /// `args` after `--config <root>/cairn.toml`, unless they name a config
    /// themselves: as root (as in CI) cairn does not read ./cairn.toml.
    pub fn with_config(&self, args: &[&str]) -> Vec<std::ffi::OsString> {
        let mut all = Vec::with_capacity(args.len() + 2);
        if !args
            .iter()
            .any(|a| *a == "--config" || a.starts_with("--config="))
        {
            all.push("--config".into());
            all.push(self.path("cairn.toml").into_os_string());
        }
        all.extend(args.iter().map(Into::into));
        all
    }

    /// `cairn snapshot --json …`, asserting success; returns the new id.
    pub fn snapshot(&self, extra: &[&str]) -> String {
        let mut args = vec!["--json", "snapshot"];
        args.extend_from_slice(extra);
        let run = self.cairn(&args);
        assert_eq!(
            run.code, 0,
            "snapshot failed: {}\n{}",
            run.stdout, run.stderr
        );
        run.json()["id"].as_str().expect("id").to_owned()
    }

    pub fn snapshot_dir(&self, id: &str) -> PathBuf {
        self.path(&format!("backups/snapshots/{id}"))
    }

    /// Snapshot ids as `cairn list --json` shows them, oldest first.
    pub fn listed_ids(&self) -> Vec<String> {
        let run = self.cairn(&["--json", "list"]);
        assert_eq!(run.code, 0, "list failed: {}\n{}", run.stdout, run.stderr);
        run.json()["snapshots"]
            .as_array()
            .expect("snapshots array")
            .iter()
            .map(|s| s["id"].as_str().expect("id").to_owned())
            .collect()
    }

    /// Rewrites a snapshot's manifest after `edit`, resealed with a digest
    /// that matches, so only the checks behind the digest can catch the edit.
    pub fn edit_manifest(&self, id: &str, edit: impl FnOnce(&mut cairn_engine::Manifest)) {
        self.unlock_snapshot(id);
        let path = self.snapshot_dir(id).join("manifest.json");
        let mut m: cairn_engine::Manifest =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        edit(&mut m);
        std::fs::write(&path, m.to_bytes()).unwrap();
    }

    /// Makes a snapshot's files writable so a test can damage them.
    pub fn unlock_snapshot(&self, id: &str) {
        make_writable(&self.snapshot_dir(id));
    }

    /// Wrecks one b-tree page of the `db` store's copy in snapshot `id`,
    /// then reseals the manifest with the damaged bytes' size and sha256,
    /// so only SQLite's own check can tell. Returns the file's page count.
    pub fn corrupt_db_page_behind_resealed_manifest(&self, id: &str) -> usize {
        self.unlock_snapshot(id);
        let copy = self.snapshot_dir(id).join("stores/db/atocore.db");
        let mut bytes = std::fs::read(&copy).unwrap();
        let page_size = u16::from_be_bytes([bytes[16], bytes[17]]) as usize;
        let page_size = if page_size == 1 { 65536 } else { page_size };
        let pages = bytes.len() / page_size;
        assert!(pages >= 2, "need at least two pages");
        // A b-tree page (interior or leaf, table or index) in the second
        // half of the file: wreck its header and cell pointers.
        let page = (pages / 2..pages)
            .find(|&p| matches!(bytes[p * page_size], 0x02 | 0x05 | 0x0a | 0x0d))
            .expect("a b-tree page");
        let start = page * page_size;
        for b in &mut bytes[start..start + 64] {
            *b = 0xff;
        }
        std::fs::write(&copy, &bytes).unwrap();
        let (size, sha) = cairn_engine::fsutil::hash_file(&copy).unwrap();
        self.edit_manifest(id, |m| {
            let store = m.stores.iter_mut().find(|s| s.name == "db").unwrap();
            let entry = store
                .entries
                .iter_mut()
                .find(|e| e.path == "atocore.db")
                .unwrap();
            entry.sha256 = Some(sha);
            entry.size = Some(size);
        });
        pages
    }
}

/// Fails the test unless it runs as root. Tests that need root are
/// `#[ignore = "needs root"]` and call this first: run on purpose
/// (`cargo test -- --ignored`, as .ci/run does as root), they must fail,
/// not pass without having tested anything.
/// Live files whose last write is older than the racy margin, so what a
/// snapshot records of them can prove the next one unchanged: a file
/// written less than 2 s before a snapshot is copied again by the next
/// (`cairn_engine::capture::RACY_MARGIN_NS`; the sqlite kind's
/// `RACY_MARGIN_NS` is the same).
pub fn let_timestamps_settle() {
    std::thread::sleep(std::time::Duration::from_millis(2_300));
}

pub fn require_root() {
    use std::os::unix::fs::MetadataExt;
    // /proc/self belongs to the process's effective user.
    let euid = std::fs::metadata("/proc/self").map(|m| m.uid());
    assert!(
        matches!(euid, Ok(0)),
        "this test needs root (euid is {euid:?}); it is #[ignore]d for that reason"
    );
}

/// Fails the test unless `program probe_arg` runs and exits 0; `package`
/// is the Debian package that provides it (.ci/run installs it).
pub fn require_program(program: &str, probe_arg: &str, package: &str) {
    let ok = Command::new(program)
        .arg(probe_arg)
        .output()
        .map(|o| o.status.success());
    assert!(
        matches!(ok, Ok(true)),
        "this test needs `{program}` (Debian package {package}): {ok:?}"
    );
}

/// XORs the byte at `at` of `path` with `mask` (the file must be writable,
/// e.g. after `Env::unlock_snapshot`).
pub fn flip_byte(path: &Path, at: usize, mask: u8) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[at] ^= mask;
    std::fs::write(path, bytes).unwrap();
}

/// Names of the entries directly under `dir`, sorted (empty when `dir` is
/// absent).
pub fn dir_names(dir: &Path) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = rd
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

pub fn make_writable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::symlink_metadata(path).unwrap();
    if meta.file_type().is_symlink() {
        return;
    }
    let mode = if meta.is_dir() { 0o700 } else { 0o600 };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    if meta.is_dir() {
        for e in std::fs::read_dir(path).unwrap() {
            make_writable(&e.unwrap().path());
        }
    }
}

/// Every entry under `root` as (relative path, kind, bytes or link target).
pub fn tree(root: &Path) -> Vec<(String, String, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, String, Vec<u8>)>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            if meta.file_type().is_symlink() {
                out.push((
                    rel,
                    "link".into(),
                    std::fs::read_link(&p)
                        .unwrap()
                        .to_string_lossy()
                        .as_bytes()
                        .to_vec(),
                ));
            } else if meta.is_dir() {
                out.push((rel, "dir".into(), Vec::new()));
                walk(root, &p, out);
            } else {
                out.push((rel, "file".into(), std::fs::read(&p).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out
}

/// Runs `cairn ARGS` (with the env's config) under the given umask.
pub fn run_with_umask(env: &Env, umask: u32, args: &[&str]) -> Run {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!("umask {umask:03o}; exec \"$0\" \"$@\""))
        .arg(CAIRN)
        .args(env.with_config(args))
        .current_dir(&env.root)
        .env_remove("CAIRN_CONFIG")
        .env_remove("CAIRN_FAILPOINT");
    cmd.output().expect("run cairn under sh").into()
}

/// Removes a file, link or tree, whichever `path` is (links not followed).
pub fn remove_any(path: &Path) {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => {
            make_writable(path);
            std::fs::remove_dir_all(path).unwrap()
        }
        Ok(_) => std::fs::remove_file(path).unwrap(),
        Err(_) => {}
    }
}

/// Contents of every row of the sample database's `memories`, oldest first.
pub fn memories(db: &Path) -> Vec<String> {
    let conn = Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare("SELECT content FROM memories ORDER BY id")
        .unwrap();
    let rows = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    rows
}

/// `cairn ARGS` in this process, through `cairn_cli::run`, so the plug-ins
/// linked into the test binary (test-only kinds too) are registered.
pub fn cairn_in_process(args: &[&str]) -> Run {
    let argv = std::iter::once("cairn")
        .chain(args.iter().copied())
        .map(std::ffi::OsString::from);
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = cairn_cli::run(argv, &mut out, &mut err);
    Run {
        code: i32::from(code),
        stdout: String::from_utf8_lossy(&out).into_owned(),
        stderr: String::from_utf8_lossy(&err).into_owned(),
    }
}
