//! `cargo xtask drill`: the reference project's restore-drill runbook,
//! automated end to end through the real `cairn` binary.
//!
//! snapshot → record baseline → mutate → stop the service → plant stale
//! sidecars → restore → verify → `cairn drill --latest` → prune dry run →
//! off-site: push to an S3 server on loopback, delete the local
//! repository, restore from the remote, verify, drill from the remote.
//! Each step prints pass/fail and its time; the first failure stops the
//! run and says what was expected and what was seen.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use rusqlite::{Connection, OpenFlags};
use serde_json::Value;

use crate::util::{self, Args};

const DB: &str = "data/atocore.db";
const REGISTRY: &str = "config/project-registry.json";
const CHROMA: &str = "data/chroma";
const LOCK: &str = "data/.ingest.lock";
const SEGMENT: &str = "6f1c3a52-0d7e-4b8e-9a3e-2f4c1d9b7e10";
const BASELINE: &str = "baseline memory written before the snapshot";
const MARKER: &str = "DRILL MARKER: written after the snapshot, must be gone after restore";

const CONFIG: &str = r#"# written by `cargo xtask drill`
repository = "backups"

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

pub fn main(args: &[String]) -> Result<ExitCode> {
    let mut args = Args::new(args);
    let keep = args.flag("--keep");
    if let Err(e) = args.finish() {
        return Ok(util::usage_error(e));
    }

    let scratch = tempfile::Builder::new()
        .prefix("cairn-drill-")
        .tempdir()
        .context("failed to create the drill's temp dir")?;
    let root = scratch.path().to_path_buf();
    println!("cairn restore drill in {}", root.display());

    let mut runner = Runner::default();
    let outcome = run(&mut runner, &root);

    if keep {
        let kept = scratch.keep();
        println!("kept {} (--keep)", kept.display());
    } else if let Err(e) = scratch.close() {
        eprintln!(
            "warning: failed to remove the temp dir {}: {e}",
            root.display()
        );
    }

    match outcome {
        Ok(()) => {
            println!(
                "drill passed: {} steps in {:.1}s",
                runner.count,
                runner.started.elapsed().as_secs_f64()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("drill FAILED at step {}: {e:#}", runner.count);
            if !keep {
                eprintln!("(rerun with --keep to inspect the temp dir)");
            }
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Numbers and times the steps.
struct Runner {
    count: usize,
    started: Instant,
}

impl Default for Runner {
    fn default() -> Self {
        Self {
            count: 0,
            started: Instant::now(),
        }
    }
}

impl Runner {
    /// Runs one step; `f` returns a short detail for the log line.
    fn step<T>(&mut self, name: &str, f: impl FnOnce() -> Result<(T, String)>) -> Result<T> {
        self.count += 1;
        let t = Instant::now();
        let result = f();
        let secs = t.elapsed().as_secs_f64();
        match result {
            Ok((value, detail)) => {
                println!(
                    "[ ok ] {:>2}. {name:<56} {secs:>6.2}s  {detail}",
                    self.count
                );
                Ok(value)
            }
            Err(e) => {
                println!("[FAIL] {:>2}. {name:<56} {secs:>6.2}s", self.count);
                Err(e.context(format!("step {:?}", name)))
            }
        }
    }
}

/// Fails with "expected …, saw …" unless `ok`.
fn check(ok: bool, expected: impl std::fmt::Display, seen: impl std::fmt::Display) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(anyhow!("expected {expected}; saw {seen}"))
    }
}

/// The "service": its open connections.
struct Service {
    db: Option<Connection>,
    chroma: Option<Connection>,
}

fn run(r: &mut Runner, root: &Path) -> Result<()> {
    let svc_dir = root.join("service");
    let config = svc_dir.join("cairn.toml");

    let bin = r.step("build cairn (cargo build -p cairn-cli --bin cairn)", || {
        let bin = util::build_cairn(false)?;
        let detail = bin.display().to_string();
        Ok((bin, detail))
    })?;
    let cairn = |args: &[&str]| util::run_cairn(&bin, &config, args);

    let mut service = r.step("create the sample service state and cairn.toml", || {
        let svc = create_service(&svc_dir)?;
        std::fs::write(&config, CONFIG)
            .with_context(|| format!("failed to write {}", config.display()))?;
        Ok((
            svc,
            "WAL db with a baseline row (uncheckpointed), registry, chroma dir".into(),
        ))
    })?;

    let snap_id = r.step("snapshot while the service runs", || {
        let run = cairn(&["snapshot", "--json"])?;
        check(run.code == 0, "exit 0", run.describe())?;
        let doc = run.json()?;
        check(
            doc["validated"] == Value::Bool(true),
            "validated: true",
            &doc["validated"],
        )?;
        let id = str_field(&doc, "id")?;
        let stores = doc["stores"].as_array().map(Vec::len).unwrap_or(0);
        check(stores == 3, "3 stores", stores)?;
        for s in doc["stores"].as_array().into_iter().flatten() {
            check(
                s["status"] == "captured",
                format!("store {} captured", s["name"]),
                &s["status"],
            )?;
        }
        Ok((id.clone(), format!("id {id}")))
    })?;

    let chroma_dir = svc_dir.join(CHROMA);
    let (baseline_tree, baseline_registry, chroma_ino) = r.step(
        "record the baseline (rows, registry, chroma tree, inode)",
        || {
            let db = service.db.as_ref().context("service db closed")?;
            let kinds = memory_kinds(db)?;
            check(
                kinds.iter().any(|(_, c)| c == BASELINE),
                "the baseline row in the live db",
                format!("{kinds:?}"),
            )?;
            let tree = record_tree(&chroma_dir)?;
            let registry = read(&svc_dir.join(REGISTRY))?;
            let ino = std::fs::metadata(&chroma_dir)
                .with_context(|| format!("failed to stat {}", chroma_dir.display()))?
                .ino();
            let detail = format!(
                "{} rows, {} chroma entries, chroma inode {ino}",
                kinds.len(),
                tree.len()
            );
            Ok(((tree, registry, ino), detail))
        },
    )?;

    r.step("snapshot's chroma copy equals the live tree", || {
        let stored = svc_dir
            .join("backups/snapshots")
            .join(&snap_id)
            .join("stores/chroma");
        let tree = record_tree(&stored)?;
        compare_trees(&baseline_tree, &tree, "recorded tree", "snapshot's copy")?;
        Ok(((), format!("{} entries equal", tree.len())))
    })?;

    let mutated_tree = r.step("mutate: marker row, chroma file added/removed, registry", || {
        let db = service.db.as_ref().context("service db closed")?;
        db.execute(
            "INSERT INTO memories (kind, content) VALUES ('drill-marker', ?1)",
            [MARKER],
        )
        .context("failed to insert the drill marker")?;
        let seg = chroma_dir.join(SEGMENT);
        write(&seg.join("index_metadata.pickle"), &pseudo_bytes(7, 3000))?;
        remove(&seg.join("length.bin"))?;
        std::fs::create_dir(chroma_dir.join("new-segment"))
            .context("failed to create chroma/new-segment")?;
        write(
            &chroma_dir.join("new-segment/header.bin"),
            &pseudo_bytes(8, 100),
        )?;
        let chroma = service.chroma.as_ref().context("service chroma closed")?;
        chroma
            .execute(
                "INSERT INTO embeddings (segment, seq, vector) VALUES ('new-segment', 99, x'00')",
                [],
            )
            .context("failed to write to chroma.sqlite3")?;
        write(
            &svc_dir.join(REGISTRY),
            br#"{"version": 1, "projects": [{"name": "atocore", "root": "/srv/atocore"}, {"name": "drill-project", "root": "/srv/drill"}]}"#,
        )?;
        let tree = record_tree(&chroma_dir)?;
        Ok((tree, "marker inserted; +2 files, +1 dir, -1 file in chroma".into()))
    })?;

    let stale = r.step("stop the service; plant stale -wal/-shm bytes", || {
        // The WAL still holds the marker (autocheckpoint is off): keep a
        // copy, then let the last close checkpoint and delete it, then put
        // it back. If restore left it, opening the restored db would replay
        // the marker.
        let db_path = svc_dir.join(DB);
        let wal = read(&sidecar(&db_path, "-wal"))?;
        let shm = read(&sidecar(&db_path, "-shm"))?;
        check(
            !wal.is_empty(),
            "a non-empty -wal while running",
            "an empty one",
        )?;
        service.db.take().map(close).transpose()?;
        service.chroma.take().map(close).transpose()?;
        write(&sidecar(&db_path, "-wal"), &wal)?;
        write(&sidecar(&db_path, "-shm"), &shm)?;
        let detail = format!("planted {} bytes of -wal, {} of -shm", wal.len(), shm.len());
        Ok(((wal, shm), detail))
    })?;

    r.step(
        "restore without --confirm-service-stopped is refused",
        || {
            let run = cairn(&["restore", &snap_id, "--json"])?;
            check(run.code == 3, "exit 3 (safety gate)", run.describe())?;
            check(
                read(&sidecar(&svc_dir.join(DB), "-wal"))? == stale.0,
                "the live -wal untouched",
                "it changed",
            )?;
            Ok(((), "exit 3, nothing touched".into()))
        },
    )?;

    let pre_id = r.step("restore ID --confirm-service-stopped", || {
        let run = cairn(&["restore", &snap_id, "--confirm-service-stopped", "--json"])?;
        check(run.code == 0, "exit 0", run.describe())?;
        let doc = run.json()?;
        check(
            doc["rolled_back"] == Value::Bool(false),
            "rolled_back: false",
            &doc["rolled_back"],
        )?;
        for s in doc["stores"].as_array().into_iter().flatten() {
            check(
                s["restored"] == Value::Bool(true) && s["integrity_ok"] != Value::Bool(false),
                format!("store {} restored with integrity ok", s["name"]),
                s,
            )?;
        }
        let pre = str_field(&doc, "pre_restore_snapshot")?;
        Ok((pre.clone(), format!("pre-restore snapshot {pre}")))
    })?;

    r.step("verify: no stale sidecar bytes survived", || {
        let db_path = svc_dir.join(DB);
        let mut seen = String::new();
        for (suffix, planted) in [
            ("-wal", Some(&stale.0)),
            ("-shm", Some(&stale.1)),
            ("-journal", None),
        ] {
            let path = sidecar(&db_path, suffix);
            if path.exists() {
                let bytes = read(&path)?;
                check(
                    planted != Some(&bytes),
                    format!("{suffix} gone or fresh"),
                    format!(
                        "the planted {} stale bytes still in {}",
                        bytes.len(),
                        path.display()
                    ),
                )?;
                let _ = write!(seen, "{suffix} present but fresh; ");
            }
        }
        Ok((
            (),
            if seen.is_empty() {
                "no sidecars left".into()
            } else {
                seen
            },
        ))
    })?;

    r.step(
        "verify: marker gone, baseline present, integrity ok",
        || {
            let db = open_ro(&svc_dir.join(DB))?;
            let kinds = memory_kinds(&db)?;
            check(
                !kinds.iter().any(|(_, c)| c == MARKER),
                "no drill marker after restore",
                "the marker row",
            )?;
            check(
                kinds.iter().any(|(_, c)| c == BASELINE),
                "the baseline row",
                format!("{} rows without it", kinds.len()),
            )?;
            let ic = integrity(&db)?;
            check(ic == "ok", "integrity_check ok", &ic)?;
            Ok(((), format!("{} rows, integrity_check ok", kinds.len())))
        },
    )?;

    r.step(
        "verify: chroma tree equals the snapshot, same inode",
        || {
            let tree = record_tree(&chroma_dir)?;
            compare_trees(&baseline_tree, &tree, "recorded tree", "restored tree")?;
            let ino = std::fs::metadata(&chroma_dir)
                .with_context(|| format!("failed to stat {}", chroma_dir.display()))?
                .ino();
            check(
                ino == chroma_ino,
                format!("chroma dir inode {chroma_ino} (bind mounts keep working)"),
                format!("inode {ino}"),
            )?;
            let ic = integrity(&open_ro(&chroma_dir.join("chroma.sqlite3"))?)?;
            check(ic == "ok", "chroma.sqlite3 integrity_check ok", &ic)?;
            Ok((
                (),
                format!("{} entries equal, inode {ino} kept", tree.len()),
            ))
        },
    )?;

    r.step("verify: registry restored", || {
        let now = read(&svc_dir.join(REGISTRY))?;
        check(
            now == baseline_registry,
            "the registry as snapshotted",
            String::from_utf8_lossy(&now),
        )?;
        Ok(((), "byte-identical".into()))
    })?;

    r.step("pre-restore snapshot holds the marker and restores", || {
        let to = root.join("pre-restore-check");
        let run = cairn(&["restore", &pre_id, "--to", util::path_str(&to)?, "--json"])?;
        check(run.code == 0, "exit 0", run.describe())?;
        let db = open_ro(&to.join("db").join("atocore.db"))?;
        let kinds = memory_kinds(&db)?;
        check(
            kinds.iter().any(|(_, c)| c == MARKER),
            "the drill marker in the pre-restore snapshot",
            format!("{} rows without it", kinds.len()),
        )?;
        let tree = record_tree(&to.join("chroma"))?;
        compare_trees(&mutated_tree, &tree, "mutated tree", "pre-restore copy")?;
        let registry = read(&to.join("registry").join("project-registry.json"))?;
        check(
            String::from_utf8_lossy(&registry).contains("drill-project"),
            "the mutated registry",
            String::from_utf8_lossy(&registry),
        )?;
        Ok((
            (),
            format!("marker found; {} chroma entries equal", tree.len()),
        ))
    })?;

    r.step("list shows both snapshots, no problems", || {
        let run = cairn(&["list", "--json"])?;
        check(run.code == 0, "exit 0", run.describe())?;
        let doc = run.json()?;
        let snaps = doc["snapshots"].as_array().cloned().unwrap_or_default();
        let ids: Vec<&str> = snaps.iter().filter_map(|s| s["id"].as_str()).collect();
        check(
            ids == [snap_id.as_str(), pre_id.as_str()],
            format!("[{snap_id}, {pre_id}]"),
            format!("{ids:?}"),
        )?;
        for s in &snaps {
            check(s["problem"].is_null(), "problem: null", &s["problem"])?;
        }
        let pre_tags = &snaps[1]["tags"];
        check(
            pre_tags
                .as_array()
                .is_some_and(|t| t.iter().any(|t| t == "pre-restore")),
            "the pre-restore snapshot tagged pre-restore",
            pre_tags,
        )?;
        Ok(((), format!("{} snapshots", ids.len())))
    })?;

    r.step("cairn drill --latest", || {
        let run = cairn(&["drill", "--latest", "--json"])?;
        check(run.code == 0, "exit 0", run.describe())?;
        let doc = run.json()?;
        check(doc["ok"] == Value::Bool(true), "ok: true", &doc["ok"])?;
        let checks = doc["checks"].as_array().cloned().unwrap_or_default();
        check(!checks.is_empty(), "some checks", "none")?;
        for c in &checks {
            check(c["ok"] == Value::Bool(true), "every check ok", c)?;
        }
        let detail = format!(
            "{} checks ok, restore {:.2}s (RTO), snapshot age {}s (RPO)",
            checks.len(),
            doc["restore_seconds"].as_f64().unwrap_or(f64::NAN),
            doc["snapshot_age_seconds"]
        );
        Ok(((), detail))
    })?;

    r.step("prune dry run deletes nothing", || {
        let run = cairn(&["prune", "--json"])?;
        check(run.code == 0, "exit 0", run.describe())?;
        let doc = run.json()?;
        check(
            doc["dry_run"] == Value::Bool(true),
            "dry_run: true",
            &doc["dry_run"],
        )?;
        let deleted = &doc["deleted"];
        check(
            deleted.as_u64() == Some(0) || deleted.as_array().is_some_and(Vec::is_empty),
            "deleted: 0",
            deleted,
        )?;
        for id in [&snap_id, &pre_id] {
            let dir = svc_dir.join("backups/snapshots").join(id);
            check(
                dir.is_dir(),
                format!("{} still there", dir.display()),
                "it is gone",
            )?;
        }
        let keep = doc["keep"].as_array().map(Vec::len).unwrap_or(0);
        let delete = doc["delete"].as_array().map(Vec::len).unwrap_or(0);
        Ok((
            (),
            format!("would keep {keep}, would delete {delete}; nothing deleted"),
        ))
    })?;

    offsite(r, root, &bin, &config, &snap_id, &baseline_tree)?;
    Ok(())
}

/// The off-site step: push to an S3 server started on loopback, delete
/// the local repository (a lost disk), restore from the remote and verify
/// it against the baseline, then drill from the remote.
fn offsite(
    r: &mut Runner,
    root: &Path,
    bin: &Path,
    config: &Path,
    snap_id: &str,
    baseline_tree: &BTreeMap<PathBuf, Entry>,
) -> Result<()> {
    let svc_dir = config
        .parent()
        .ok_or_else(|| anyhow!("config without a directory"))?
        .to_path_buf();
    let server = r.step("off-site: start an S3 server on 127.0.0.1", || {
        let server = cairn_testservers::S3Server::start().map_err(|e| anyhow!("{e}"))?;
        let text = read(config)?;
        let remote = format!(
            "\n[[remote]]\nname = \"offsite\"\nurl = \"s3://{}/drill\"\nendpoint = \"{}\"\nregion = \"{}\"\n",
            server.bucket(),
            server.endpoint(),
            server.region()
        );
        write(config, &[text, remote.into_bytes()].concat())?;
        let detail = server.endpoint();
        Ok((server, detail))
    })?;
    let creds = server.credential_env();
    let cairn = |args: &[&str]| -> Result<util::Run> {
        let out = std::process::Command::new(bin)
            .arg("--config")
            .arg(config)
            .args(args)
            .envs(creds.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output()
            .with_context(|| format!("failed to run {}", bin.display()))?;
        Ok(util::Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    };
    r.step("off-site: push every snapshot", || {
        let run = cairn(&["push", "--json"])?;
        check(run.code == 0, "exit 0", run.describe())?;
        let doc = run.json()?;
        let snaps = doc["remotes"][0]["snapshots"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let sent: u64 = snaps
            .iter()
            .filter_map(|s| s["bytes_uploaded"].as_u64())
            .sum();
        Ok((
            (),
            format!(
                "{} snapshots, {sent} bytes in {} requests (server)",
                snaps.len(),
                server.request_count()
            ),
        ))
    })?;
    r.step("off-site: validate --remote --read-data", || {
        let run = cairn(&[
            "validate",
            "--remote",
            "offsite",
            "--all",
            "--read-data",
            "--json",
        ])?;
        check(run.code == 0, "exit 0", run.describe())?;
        Ok(((), "every pack hashed".into()))
    })?;
    r.step(
        "off-site: delete the local repository (a lost disk)",
        || {
            let repo = svc_dir.join("backups");
            std::fs::remove_dir_all(&repo)
                .with_context(|| format!("failed to remove {}", repo.display()))?;
            Ok(((), repo.display().to_string()))
        },
    )?;
    r.step("off-site: restore ID --remote --to DIR; verify", || {
        let to = root.join("offsite-restore");
        let run = cairn(&[
            "restore",
            snap_id,
            "--remote",
            "offsite",
            "--to",
            util::path_str(&to)?,
            "--json",
        ])?;
        check(run.code == 0, "exit 0", run.describe())?;
        let restored = memory_kinds(&open_ro(&to.join("db").join("atocore.db"))?)?;
        let live = memory_kinds(&open_ro(&svc_dir.join(DB))?)?;
        check(
            restored == live,
            format!("{} rows as restored locally", live.len()),
            restored.len(),
        )?;
        let tree = record_tree(&to.join("chroma"))?;
        compare_trees(
            baseline_tree,
            &tree,
            "recorded tree",
            "tree restored from off-site",
        )?;
        Ok((
            (),
            format!(
                "{} rows, {} chroma entries equal",
                restored.len(),
                tree.len()
            ),
        ))
    })?;
    r.step("off-site: cairn drill --remote", || {
        let run = cairn(&["drill", "--remote", "offsite", "--json"])?;
        check(run.code == 0, "exit 0", run.describe())?;
        let doc = run.json()?;
        check(doc["ok"] == Value::Bool(true), "ok: true", &doc["ok"])?;
        Ok((
            (),
            format!(
                "RTO from off-site {:.2}s (download {:.2}s)",
                doc["rto_seconds"].as_f64().unwrap_or(f64::NAN),
                doc["download_seconds"].as_f64().unwrap_or(f64::NAN)
            ),
        ))
    })?;
    Ok(())
}

/// Creates the sample service state; returns its open connections.
fn create_service(dir: &Path) -> Result<Service> {
    for sub in ["data", "config", CHROMA] {
        let d = dir.join(sub);
        std::fs::create_dir_all(&d).with_context(|| format!("failed to create {}", d.display()))?;
    }
    write(&dir.join(LOCK), b"")?;
    write(
        &dir.join(REGISTRY),
        br#"{"version": 1, "projects": [{"name": "atocore", "root": "/srv/atocore"}]}"#,
    )?;

    let db_path = dir.join(DB);
    let db = Connection::open(&db_path)
        .with_context(|| format!("failed to open {}", db_path.display()))?;
    let mode: String = db.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    check(mode == "wal", "journal_mode wal", &mode)?;
    // The service's writes stay in the WAL until it stops, so the snapshot
    // must read the WAL to see them.
    db.execute_batch(
        "PRAGMA wal_autocheckpoint=0;
         CREATE TABLE memories (id INTEGER PRIMARY KEY, kind TEXT NOT NULL, content TEXT NOT NULL);
         CREATE TABLE documents (id INTEGER PRIMARY KEY, path TEXT NOT NULL, body BLOB);",
    )?;
    db.execute(
        "INSERT INTO memories (kind, content) VALUES ('baseline', ?1)",
        [BASELINE],
    )?;
    let tx = db.unchecked_transaction()?;
    for i in 0..200u64 {
        tx.execute(
            "INSERT INTO documents (path, body) VALUES (?1, ?2)",
            rusqlite::params![format!("docs/{i}.md"), pseudo_bytes(i, 600)],
        )?;
    }
    tx.commit()?;

    let chroma_dir = dir.join(CHROMA);
    let seg = chroma_dir.join(SEGMENT);
    std::fs::create_dir(&seg).with_context(|| format!("failed to create {}", seg.display()))?;
    for (i, (name, len)) in [
        ("header.bin", 100),
        ("data_level0.bin", 40_000),
        ("length.bin", 400),
        ("link_lists.bin", 0),
    ]
    .into_iter()
    .enumerate()
    {
        write(&seg.join(name), &pseudo_bytes(100 + i as u64, len))?;
    }
    let chroma_db = chroma_dir.join("chroma.sqlite3");
    let chroma = Connection::open(&chroma_db)
        .with_context(|| format!("failed to open {}", chroma_db.display()))?;
    chroma.execute_batch(
        "CREATE TABLE embeddings (id INTEGER PRIMARY KEY, segment TEXT, seq INTEGER, vector BLOB);",
    )?;
    let tx = chroma.unchecked_transaction()?;
    for i in 0..50u64 {
        tx.execute(
            "INSERT INTO embeddings (segment, seq, vector) VALUES (?1, ?2, ?3)",
            rusqlite::params![SEGMENT, i, pseudo_bytes(1000 + i, 256)],
        )?;
    }
    tx.commit()?;
    Ok(Service {
        db: Some(db),
        chroma: Some(chroma),
    })
}

/// One entry of a recorded tree. SQLite files are compared by content
/// (their online copy may differ in header bytes), others byte for byte.
#[derive(Debug, PartialEq)]
enum Entry {
    Dir,
    File(Vec<u8>),
    Sqlite(Vec<String>),
    Symlink(PathBuf),
}

fn record_tree(root: &Path) -> Result<BTreeMap<PathBuf, Entry>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = root.join(&rel);
        let entries =
            std::fs::read_dir(&dir).with_context(|| format!("failed to list {}", dir.display()))?;
        for entry in entries {
            let entry = entry.with_context(|| format!("failed to list {}", dir.display()))?;
            let rel = rel.join(entry.file_name());
            let path = entry.path();
            let meta = std::fs::symlink_metadata(&path)
                .with_context(|| format!("failed to stat {}", path.display()))?;
            let e = if meta.is_dir() {
                stack.push(rel.clone());
                Entry::Dir
            } else if meta.file_type().is_symlink() {
                Entry::Symlink(std::fs::read_link(&path)?)
            } else {
                let bytes = read(&path)?;
                if bytes.starts_with(b"SQLite format 3\0") {
                    Entry::Sqlite(dump(&path)?)
                } else {
                    Entry::File(bytes)
                }
            };
            out.insert(rel, e);
        }
    }
    Ok(out)
}

fn compare_trees(
    want: &BTreeMap<PathBuf, Entry>,
    got: &BTreeMap<PathBuf, Entry>,
    want_name: &str,
    got_name: &str,
) -> Result<()> {
    let mut diffs = Vec::new();
    for (path, e) in want {
        match got.get(path) {
            None => diffs.push(format!("{} missing from the {got_name}", path.display())),
            Some(g) if g != e => diffs.push(format!("{} differs", path.display())),
            Some(_) => {}
        }
    }
    for path in got.keys().filter(|p| !want.contains_key(*p)) {
        diffs.push(format!("{} is extra in the {got_name}", path.display()));
    }
    if diffs.is_empty() {
        Ok(())
    } else {
        bail!(
            "expected the {got_name} to equal the {want_name} entry by entry; saw: {}",
            diffs.join("; ")
        )
    }
}

/// Every row of every table, as text, in a stable order.
fn dump(path: &Path) -> Result<Vec<String>> {
    let db = open_ro(path)?;
    let mut stmt =
        db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")?;
    let tables: Vec<String> = stmt
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut out = Vec::new();
    for t in tables {
        let mut stmt = db.prepare(&format!("SELECT * FROM \"{t}\" ORDER BY rowid"))?;
        let cols = stmt.column_count();
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let mut line = format!("{t}:");
            for i in 0..cols {
                let v: rusqlite::types::Value = row.get(i)?;
                let _ = write!(line, " {v:?}");
            }
            out.push(line);
        }
    }
    Ok(out)
}

fn memory_kinds(db: &Connection) -> Result<Vec<(String, String)>> {
    let mut stmt = db.prepare("SELECT kind, content FROM memories ORDER BY id")?;
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

fn integrity(db: &Connection) -> Result<String> {
    Ok(db.query_row("PRAGMA integrity_check", [], |r| r.get(0))?)
}

/// Opens read-write without creating: read-only would refuse a WAL
/// database whose -shm it cannot create, and reading a WAL db replays its
/// WAL, which is exactly what the marker check must see.
fn open_ro(path: &Path) -> Result<Connection> {
    Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("failed to open {}", path.display()))
}

fn close(db: Connection) -> Result<()> {
    db.close()
        .map_err(|(_, e)| e)
        .context("failed to close a service connection")
}

fn sidecar(db: &Path, suffix: &str) -> PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn str_field(doc: &Value, key: &str) -> Result<String> {
    doc[key].as_str().map(str::to_owned).ok_or_else(|| {
        anyhow!(
            "expected a string field {key:?} in the JSON; saw {}",
            doc[key]
        )
    })
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("failed to read {}", path.display()))
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("failed to write {}", path.display()))
}

fn remove(path: &Path) -> Result<()> {
    std::fs::remove_file(path).with_context(|| format!("failed to remove {}", path.display()))
}

/// Deterministic filler bytes (xorshift), so runs are reproducible.
pub fn pseudo_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}
