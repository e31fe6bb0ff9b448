//! Looking inside snapshots (issue 17, point 1): `ls`, `cat`, `diff`, and
//! the read-only commands on `--repo` without a config file.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::process::Command;

use serde_json::Value;

use crate::support::{self, Env, Run, CAIRN};

/// `cairn ARGS` with raw (maybe non-UTF-8) arguments, with the env's config.
fn cairn_os(env: &Env, args: &[&OsStr]) -> (i32, Vec<u8>, String) {
    let out = Command::new(CAIRN)
        .current_dir(&env.root)
        .arg("--config")
        .arg(env.path("cairn.toml"))
        .args(args)
        .env_remove("CAIRN_CONFIG")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

fn entries(doc: &Value) -> Vec<(String, String)> {
    doc["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                format!(
                    "{}/{}",
                    e["store"].as_str().unwrap(),
                    e["path"].as_str().unwrap()
                ),
                e["type"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn ls_lists_every_entry_with_type_mode_size_and_mtime_and_narrows_to_a_path() {
    let env = Env::new();
    let id = env.snapshot(&[]);
    let doc = env.cairn(&["--json", "ls", &id]).json();
    let all = entries(&doc);
    for (path, kind) in [
        ("db/atocore.db", "file"),
        ("registry/project-registry.json", "file"),
        ("chroma/seg-0001", "dir"),
        ("chroma/seg-0001/header.bin", "file"),
        ("chroma/empty-dir", "dir"),
    ] {
        assert!(
            all.contains(&(path.to_owned(), kind.to_owned())),
            "{path} {kind} not in {all:?}"
        );
    }
    let header = doc["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"] == "seg-0001/header.bin")
        .unwrap();
    assert_eq!(header["size"], 6);
    assert_eq!(header["mode"], "0644");
    assert!(
        header["mtime"].as_str().unwrap().starts_with("20"),
        "{header}"
    );

    // Narrowed: the directory and what is under it, nothing else.
    let seg = entries(
        &env.cairn(&["--json", "ls", "--latest", "chroma/seg-0001"])
            .json(),
    );
    assert_eq!(
        seg.iter().map(|(p, _)| p.as_str()).collect::<Vec<_>>(),
        [
            "chroma/seg-0001",
            "chroma/seg-0001/data_level0.bin",
            "chroma/seg-0001/header.bin"
        ]
    );
    // Human: one line per entry with its mode and size, then a count.
    let human = env.cairn(&["ls", &id, "chroma/seg-0001/header.bin"]);
    assert_eq!(human.code, 0, "{}", human.stderr);
    let lines: Vec<&str> = human.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", human.stdout);
    assert!(
        lines[0].starts_with("file")
            && lines[0].contains("-rw-r--r--")
            && lines[0].contains(" 6 ")
            && lines[0].ends_with("chroma/seg-0001/header.bin"),
        "{}",
        lines[0]
    );
    assert_eq!(lines[1], "1 entry, 6 B");

    let missing = env.cairn(&["ls", &id, "chroma/nope"]);
    assert_eq!(missing.code, 2, "{}", missing.stderr);
    assert!(
        missing.stderr.contains("no entry nope"),
        "{}",
        missing.stderr
    );
    let store = env.cairn(&["ls", &id, "nostore"]);
    assert_eq!(store.code, 2);
    assert!(store.stderr.contains("nostore"), "{}", store.stderr);
}

#[test]
fn cat_writes_the_snapshot_bytes_and_a_flipped_byte_fails_with_the_code() {
    let env = Env::new();
    let live = std::fs::read(env.path("data/chroma/seg-0001/data_level0.bin")).unwrap();
    let id = env.snapshot(&[]);
    // Changed live after the snapshot: cat gives the snapshot's bytes.
    std::fs::write(env.path("data/chroma/seg-0001/data_level0.bin"), b"new").unwrap();
    let (code, out, err) = cairn_os(
        &env,
        &[os("cat"), os(&id), os("chroma/seg-0001/data_level0.bin")],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, live);
    // A file store's one file by the store's name alone, with --latest.
    let (code, out, _) = cairn_os(&env, &[os("cat"), os("--latest"), os("registry")]);
    assert_eq!(code, 0);
    assert_eq!(
        out,
        std::fs::read(env.path("config/project-registry.json")).unwrap()
    );

    env.unlock_snapshot(&id);
    support::flip_byte(
        &env.snapshot_dir(&id)
            .join("stores/chroma/seg-0001/data_level0.bin"),
        150_000,
        0x01,
    );
    let (code, out, err) = cairn_os(
        &env,
        &[os("cat"), os(&id), os("chroma/seg-0001/data_level0.bin")],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("file_checksum_mismatch"), "{err}");
    assert!(err.contains("discard"), "{err}");
    // It streamed: what came out is the damaged copy, all of it.
    assert_eq!(out.len(), live.len());
    assert_ne!(out, live);
    // --json is refused for cat (its stdout is the file's bytes); the
    // failure's code is in the error document of a command that reports.
    let run = env.cairn(&["--json", "cat", &id, "chroma/seg-0001/header.bin"]);
    assert_eq!(run.code, 2);
    assert_eq!(run.json()["error"]["exit_code"], 2);

    // A copy longer than its manifest says: not one byte past the size.
    std::fs::write(
        env.snapshot_dir(&id)
            .join("stores/chroma/seg-0001/header.bin"),
        b"header and more",
    )
    .unwrap();
    let (code, out, err) = cairn_os(
        &env,
        &[os("cat"), os(&id), os("chroma/seg-0001/header.bin")],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("file_size_mismatch"), "{err}");
    assert_eq!(out, b"header");
}

#[test]
fn odd_names_are_listed_escaped_and_addressable_by_bytes_or_as_printed() {
    let env = Env::new();
    let chroma = env.path("data/chroma");
    let newline = "line\nbreak.bin";
    let latin1: &[u8] = b"caf\xe9.bin";
    std::fs::write(chroma.join(newline), b"newline bytes").unwrap();
    std::fs::write(chroma.join(OsStr::from_bytes(latin1)), b"latin-1 bytes").unwrap();
    let id = env.snapshot(&[]);

    let human = env.cairn(&["ls", &id, "chroma"]);
    assert_eq!(human.code, 0, "{}", human.stderr);
    assert!(
        human.stdout.contains("chroma/line\\nbreak.bin"),
        "{}",
        human.stdout
    );
    assert!(
        human.stdout.contains("chroma/caf\\\\xe9.bin"),
        "{}",
        human.stdout
    );
    assert!(
        !human.stdout.lines().any(|l| l == "break.bin"),
        "a name forged a line"
    );
    let doc = env.cairn(&["--json", "ls", &id, "chroma"]).json();
    let odd = doc["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"] == "caf\\xe9.bin")
        .unwrap();
    assert!(odd["path_b64"].is_string(), "{odd}");

    for (arg, want) in [
        // Exact bytes, as a shell's $'…' passes them.
        (b"chroma/line\nbreak.bin".to_vec(), &b"newline bytes"[..]),
        (b"chroma/caf\xe9.bin".to_vec(), b"latin-1 bytes"),
        // As `ls` printed them.
        (b"chroma/line\\nbreak.bin".to_vec(), b"newline bytes"),
        (b"chroma/caf\\\\xe9.bin".to_vec(), b"latin-1 bytes"),
    ] {
        let (code, out, err) = cairn_os(&env, &[os("cat"), os(&id), OsStr::from_bytes(&arg)]);
        assert_eq!(code, 0, "{:?}: {err}", String::from_utf8_lossy(&arg));
        assert_eq!(out, want);
    }
}

fn changed_paths(doc: &Value, store: &str, key: &str) -> Vec<String> {
    doc["stores"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["name"] == store)
        .flat_map(|s| s[key].as_array().unwrap().clone())
        .map(|e| e["path"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn diff_lists_exactly_the_entries_changed_between_two_snapshots_and_row_counts() {
    let env = Env::new();
    let a = env.snapshot(&[]);
    // The changes: one file rewritten, one added, one removed, a
    // directory's mode, and rows added to one table of the database.
    let chroma = env.path("data/chroma");
    std::fs::write(chroma.join("seg-0001/header.bin"), b"header v2").unwrap();
    std::fs::write(chroma.join("seg-0001/new.bin"), b"new").unwrap();
    std::fs::remove_dir(chroma.join("empty-dir")).unwrap();
    env.db()
        .execute_batch(
            "INSERT INTO memories(content) VALUES ('two'); INSERT INTO memories(content) VALUES ('three');",
        )
        .unwrap();
    let b = env.snapshot(&[]);

    let doc = env.cairn(&["--json", "diff", &a, &b]).json();
    assert_eq!(doc["identical"], false);
    assert_eq!(changed_paths(&doc, "chroma", "added"), ["seg-0001/new.bin"]);
    assert_eq!(changed_paths(&doc, "chroma", "removed"), ["empty-dir"]);
    let chroma_changed = changed_paths(&doc, "chroma", "changed");
    // header.bin's content; its directory's mtime (an entry was added).
    assert!(
        chroma_changed.contains(&"seg-0001/header.bin".to_owned()),
        "{doc}"
    );
    for p in &chroma_changed {
        assert!(
            ["seg-0001/header.bin", "seg-0001"].contains(&p.as_str()),
            "{p} did not change: {doc}"
        );
    }
    assert!(
        !chroma_changed.contains(&"seg-0001/data_level0.bin".to_owned()),
        "{doc}"
    );
    assert!(
        changed_paths(&doc, "registry", "changed").is_empty(),
        "{doc}"
    );
    assert_eq!(changed_paths(&doc, "db", "changed"), ["atocore.db"]);
    let db = doc["stores"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "db")
        .unwrap();
    assert_eq!(
        db["row_counts"],
        serde_json::json!([{ "table": "memories", "a": 1, "b": 3, "change": 2 }]),
        "{db}"
    );
    // Human, with --latest for B and a store selection.
    let human = env.cairn(&["diff", &a, "--latest", "--stores", "db"]);
    assert_eq!(human.code, 0, "{}", human.stderr);
    assert!(
        human.stdout.contains("rows memories: 1 -> 3 (+2)"),
        "{}",
        human.stdout
    );
    assert!(!human.stdout.contains("chroma"), "{}", human.stdout);
    // The same snapshot against itself: identical.
    let same = env.cairn(&["diff", &b, &b]);
    assert_eq!(same.code, 0);
    assert!(same.stdout.contains("identical"), "{}", same.stdout);
}

#[test]
fn diff_names_a_damaged_database_copy_and_does_not_panic() {
    let env = Env::new();
    let a = env.snapshot(&[]);
    env.db()
        .execute("INSERT INTO memories(content) VALUES ('two')", [])
        .unwrap();
    let b = env.snapshot(&[]);
    env.unlock_snapshot(&b);
    std::fs::write(
        env.snapshot_dir(&b).join("stores/db/atocore.db"),
        b"not a database at all",
    )
    .unwrap();
    let run = env.cairn(&["diff", &a, &b]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains(&format!("in snapshot {b} not counted")),
        "{}",
        run.stdout
    );
}

#[test]
fn read_only_commands_work_on_repo_without_a_config_and_writers_refuse_it() {
    let env = Env::new();
    let id = env.snapshot(&[]);
    std::fs::remove_file(env.path("cairn.toml")).unwrap();
    let repo = env.path("backups");
    let repo = repo.to_str().unwrap();
    let bare = |args: &[&str]| -> Run {
        Command::new(CAIRN)
            .current_dir(&env.root)
            .args(args)
            .env_remove("CAIRN_CONFIG")
            .output()
            .unwrap()
            .into()
    };
    for args in [
        vec!["--repo", repo, "list"],
        vec!["--repo", repo, "show", "--latest"],
        vec!["--repo", repo, "ls", &id],
        vec!["--repo", repo, "cat", &id, "chroma/seg-0001/header.bin"],
        vec!["--repo", repo, "diff", &id, &id],
        vec!["--repo", repo, "stats"],
        vec!["--repo", repo, "validate", &id],
    ] {
        let run = bare(&args);
        assert_eq!(run.code, 0, "{args:?}: {}\n{}", run.stdout, run.stderr);
    }
    // validate checks each kind through the manifest's recorded options.
    let v = bare(&["--repo", repo, "--json", "validate", &id]).json();
    assert_eq!(v["results"][0]["valid"], true, "{v}");
    for args in [
        vec!["--repo", repo, "snapshot"],
        vec!["--repo", repo, "prune"],
        vec!["--repo", repo, "pin", &id],
    ] {
        let run = bare(&args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains("--repo works only"), "{}", run.stderr);
    }
}

#[test]
#[ignore = "needs root: a repository writable by others is refused to root"]
fn as_root_a_repository_others_can_write_is_refused() {
    support::require_root();
    let env = Env::new();
    env.snapshot(&[]);
    let repo = env.path("backups");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&repo, std::fs::Permissions::from_mode(0o777)).unwrap();
    let run: Run = Command::new(CAIRN)
        .args(["--repo", repo.to_str().unwrap(), "list"])
        .output()
        .unwrap()
        .into();
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.stderr.contains("not trusted as a repository"),
        "{}",
        run.stderr
    );
    std::fs::set_permissions(&repo, std::fs::Permissions::from_mode(0o700)).unwrap();
    let ok: Run = Command::new(CAIRN)
        .args(["--repo", repo.to_str().unwrap(), "list"])
        .output()
        .unwrap()
        .into();
    assert_eq!(ok.code, 0, "{}", ok.stderr);
}

#[test]
#[ignore = "needs root (to build a repository another user owns) and setpriv (util-linux)"]
fn a_user_is_refused_a_repository_owned_by_someone_else_but_root() {
    support::require_root();
    support::require_program("setpriv", "--version", "util-linux");
    let env = Env::new();
    env.snapshot(&[]);
    let repo = env.path("backups");
    // Readable by all, so only the owner rule can refuse it.
    let _ = Command::new("chmod")
        .args(["-R", "a+rX"])
        .arg(&env.root)
        .status()
        .unwrap();
    let as_nobody = |owner: &str| -> Run {
        let status = Command::new("chown")
            .args(["-R", owner])
            .arg(&repo)
            .status()
            .unwrap();
        assert!(status.success());
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", CAIRN])
            .args(["--repo", repo.to_str().unwrap(), "list"])
            .output()
            .unwrap()
            .into()
    };
    let foreign = as_nobody("12345:12345");
    assert_eq!(foreign.code, 3, "{}", foreign.stderr);
    assert!(
        foreign
            .stderr
            .contains("belongs to uid 12345, neither root nor you"),
        "{}",
        foreign.stderr
    );
    let own = as_nobody("65534:65534");
    assert_eq!(own.code, 0, "{}", own.stderr);
}
