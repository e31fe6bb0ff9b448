//! `cairn drill` end to end (issue 5): a sound snapshot passes with every
//! check reported; each kind of damage fails and is named; nothing live is
//! touched; the scratch directory goes away unless `--keep`.

use std::path::Path;

use serde_json::Value;

use crate::restore::assert_trees_eq;
use crate::support::{self, Env, Run};

fn drill(env: &Env, scratch: &Path, extra: &[&str]) -> Run {
    let mut args = vec!["--json", "drill", "--scratch", scratch.to_str().unwrap()];
    args.extend_from_slice(extra);
    env.cairn(&args)
}

fn checks(doc: &Value) -> &Vec<Value> {
    doc["checks"].as_array().expect("checks array")
}

fn check<'a>(doc: &'a Value, store: &str, name: &str) -> &'a Value {
    checks(doc)
        .iter()
        .find(|c| c["store"] == store && c["check"] == name)
        .unwrap_or_else(|| panic!("no check {name} for store {store:?} in {doc}"))
}

fn failing(doc: &Value) -> Vec<String> {
    checks(doc)
        .iter()
        .filter(|c| c["ok"] == false)
        .map(|c| format!("{}/{}", c["store"].as_str().unwrap_or(""), c["check"]))
        .collect()
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn drill_passes_a_sound_snapshot() {
    let env = Env::new();
    // A second row so the count is not trivially 1.
    env.db()
        .execute("INSERT INTO memories(content) VALUES ('second')", [])
        .unwrap();
    let id = env.snapshot(&[]);
    let scratch = tempfile::tempdir().unwrap();

    let run = drill(&env, scratch.path(), &[&id]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let doc = run.json();
    assert_eq!(doc["id"], id.as_str());
    assert_eq!(doc["ok"], true, "{doc}");
    assert!(checks(&doc).iter().all(|c| c["ok"] == true), "{doc}");

    assert_eq!(check(&doc, "db", "integrity_check")["ok"], true);
    let counts = check(&doc, "db", "row_counts");
    assert_eq!(counts["ok"], true);
    let detail = counts["detail"].as_str().unwrap();
    assert!(detail.contains("memories=2"), "{detail}");
    assert!(detail.contains("projects=1"), "{detail}");
    for store in ["db", "registry", "chroma"] {
        assert_eq!(check(&doc, store, "files_match_manifest")["ok"], true);
    }
    let restore_seconds = doc["restore_seconds"].as_f64().expect("restore_seconds");
    assert!(restore_seconds >= 0.0);
    let age = doc["snapshot_age_seconds"]
        .as_i64()
        .expect("snapshot_age_seconds");
    assert!(age >= 0);
}

#[test]
fn drill_latest_is_the_default() {
    let env = Env::new();
    env.snapshot(&["--at", "2026-01-01T00:00:00Z"]);
    let newest = env.snapshot(&[]);
    let scratch = tempfile::tempdir().unwrap();
    for extra in [&[][..], &["--latest"][..]] {
        let run = drill(&env, scratch.path(), extra);
        assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
        assert_eq!(run.json()["id"], newest.as_str());
    }
}

#[test]
fn drill_reports_the_age_of_an_old_snapshot() {
    let env = Env::new();
    let id = env.snapshot(&["--at", "2026-01-01T00:00:00Z"]);
    let scratch = tempfile::tempdir().unwrap();
    let run = drill(&env, scratch.path(), &[&id]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let created = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap();
    let expected = (chrono::Utc::now() - created.with_timezone(&chrono::Utc)).num_seconds();
    let age = run.json()["snapshot_age_seconds"].as_i64().unwrap();
    // The age is measured inside the run, a moment before `expected`.
    assert!(
        age <= expected && age > expected - 3600,
        "{age} vs {expected}"
    );
}

#[test]
fn drill_fails_on_a_flipped_chroma_byte() {
    let env = Env::new();
    let id = env.snapshot(&[]);
    env.unlock_snapshot(&id);
    let seg = env
        .snapshot_dir(&id)
        .join("stores/chroma/seg-0001/data_level0.bin");
    support::flip_byte(&seg, 4242, 0x80);
    let scratch = tempfile::tempdir().unwrap();

    let run = drill(&env, scratch.path(), &[&id]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let doc = run.json();
    assert_eq!(doc["ok"], false);
    let bad = failing(&doc);
    assert!(!bad.is_empty(), "{doc}");
    let text = doc.to_string();
    assert!(
        text.contains("file_checksum_mismatch"),
        "the failing check names the problem: {doc}"
    );
    assert!(text.contains("data_level0.bin"), "names the file: {doc}");
    assert!(entries(scratch.path()).is_empty(), "scratch cleaned up");
}

#[test]
fn drill_fails_on_a_corrupt_sqlite_page() {
    let env = Env::new();
    let id = env.snapshot(&[]);
    env.corrupt_db_page_behind_resealed_manifest(&id);
    let scratch = tempfile::tempdir().unwrap();

    let run = drill(&env, scratch.path(), &[&id]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let doc = run.json();
    assert_eq!(doc["ok"], false);
    let text = doc.to_string();
    assert!(
        text.contains("integrity"),
        "the failing check is SQLite's integrity check: {doc}"
    );
    assert!(
        !text.contains("file_checksum_mismatch") && !text.contains("manifest_digest_mismatch"),
        "the manifest was fixed up, so only SQLite can tell: {doc}"
    );
    assert!(entries(scratch.path()).is_empty(), "scratch cleaned up");
}

#[test]
fn drill_leaves_live_data_byte_identical() {
    let env = Env::new();
    let id = env.snapshot(&[]);
    env.db()
        .execute("INSERT INTO memories(content) VALUES ('after')", [])
        .unwrap();
    std::fs::write(env.path("data/chroma/after.bin"), b"after").unwrap();
    let live = |env: &Env| {
        (
            support::tree(&env.path("data")),
            support::tree(&env.path("config")),
        )
    };
    let before = live(&env);
    let snapshots = support::tree(&env.path("backups/snapshots"));
    let scratch = tempfile::tempdir().unwrap();

    let run = drill(&env, scratch.path(), &[&id]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let after = live(&env);
    assert_trees_eq(&after.0, &before.0, "a drill touched live data");
    assert_trees_eq(&after.1, &before.1, "a drill touched the live registry");
    assert_trees_eq(
        &support::tree(&env.path("backups/snapshots")),
        &snapshots,
        "a drill changed the repository",
    );
}

#[test]
fn drill_removes_its_scratch_dir() {
    let env = Env::new();
    env.snapshot(&[]);
    let scratch = tempfile::tempdir().unwrap();
    let run = drill(&env, scratch.path(), &[]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(run.json()["scratch"].is_null());
    assert_eq!(entries(scratch.path()), Vec::<String>::new());
}

#[test]
fn drill_keep_keeps_the_scratch_dir_and_reports_it() {
    let env = Env::new();
    let id = env.snapshot(&[]);
    let scratch = tempfile::tempdir().unwrap();
    let run = drill(&env, scratch.path(), &["--keep"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let doc = run.json();
    let kept = Path::new(doc["scratch"].as_str().expect("scratch path reported")).to_owned();
    assert!(kept.starts_with(scratch.path()), "{}", kept.display());
    // It holds the restored snapshot, store by store.
    assert_trees_eq(
        &support::tree(&kept.join("chroma")),
        &support::tree(&env.snapshot_dir(&id).join("stores/chroma")),
        "kept scratch chroma vs snapshot",
    );
    assert!(kept.join("db/atocore.db").is_file());

    // The human report says where it is, too.
    let scratch2 = tempfile::tempdir().unwrap();
    let run = env.cairn(&[
        "drill",
        "--keep",
        "--scratch",
        scratch2.path().to_str().unwrap(),
    ]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let kept2 = entries(scratch2.path());
    assert_eq!(kept2.len(), 1, "{kept2:?}");
    assert!(
        run.stdout.contains(&kept2[0]),
        "the report names the kept dir: {}",
        run.stdout
    );
}

#[test]
fn drill_human_report_ends_with_the_outcome() {
    let env = Env::new();
    let id = env.snapshot(&[]);
    let scratch = tempfile::tempdir().unwrap();
    let run = env.cairn(&["drill", "--scratch", scratch.path().to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let last = run.stdout.lines().last().unwrap();
    assert!(last.starts_with("ok"), "{last}");
    assert!(last.contains(&id), "{last}");
}

/// A drill is safe on production: the service keeps running.
#[test]
fn drill_runs_while_the_service_has_the_database_open() {
    let env = Env::new();
    env.snapshot(&[]);
    let service = env.db();
    let n: i64 = service
        .query_row("SELECT count(*) FROM memories", [], |r| r.get(0))
        .unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let run = drill(&env, scratch.path(), &[]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(run.json()["ok"], true);
    let m: i64 = service
        .query_row("SELECT count(*) FROM memories", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, m);
}

#[test]
fn drill_reports_an_absent_optional_store_and_passes() {
    let env = Env::new();
    std::fs::remove_file(env.path("config/project-registry.json")).unwrap();
    let id = env.snapshot(&[]);
    let scratch = tempfile::tempdir().unwrap();
    let run = drill(&env, scratch.path(), &[&id]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let doc = run.json();
    assert_eq!(doc["ok"], true);
    assert!(
        checks(&doc).iter().any(|c| c["store"] == "registry"),
        "the absent store is reported: {doc}"
    );
    assert!(!config_exists(&env));
}

fn config_exists(env: &Env) -> bool {
    env.path("config/project-registry.json").exists()
}

#[test]
fn drill_of_a_missing_snapshot_is_an_error_naming_it() {
    let env = Env::new();
    env.snapshot(&[]);
    let scratch = tempfile::tempdir().unwrap();
    let run = drill(&env, scratch.path(), &["20200101T000000Z"]);
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("20200101T000000Z"), "{}", run.stderr);
    assert!(entries(scratch.path()).is_empty());

    let empty = Env::new();
    let run = drill(&empty, scratch.path(), &[]);
    assert_eq!(run.code, 2, "no snapshots to drill: {}", run.stderr);
}

/// Finding 8: the scratch copy holds files that are private in the live
/// tree, so its directory must be private whatever the umask, and its
/// name must not be guessable (a shared /tmp could hold a planted one).
#[test]
fn drill_scratch_dir_is_private_under_umask_000_and_not_named_by_pid() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    env.snapshot(&[]);
    let scratch = tempfile::tempdir().unwrap();
    let args: Vec<String> = env
        .with_config(&[
            "--json",
            "drill",
            "--keep",
            "--scratch",
            scratch.path().to_str().unwrap(),
        ])
        .into_iter()
        .map(|a| a.into_string().unwrap())
        .collect();
    // `exec`: cairn keeps the shell's pid, the one a guess would use.
    let child = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "umask 000; exec {} {}",
            support::CAIRN,
            args.join(" ")
        ))
        .current_dir(&env.root)
        .env_remove("CAIRN_CONFIG")
        .env_remove("CAIRN_FAILPOINT")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let run = Run::from(child.wait_with_output().unwrap());
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let doc = run.json();
    let kept = Path::new(doc["scratch"].as_str().expect("scratch path reported")).to_owned();
    assert_eq!(kept.parent(), Some(scratch.path()));
    let mode = std::fs::metadata(&kept).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o700, "{} is {mode:04o}", kept.display());
    let name = kept.file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with("cairn-drill-"), "{name}");
    assert!(
        !name.contains(&pid.to_string()),
        "scratch name {name} is made from the pid {pid}"
    );
}
