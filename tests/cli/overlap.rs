//! The repository and the stores each have a path of their own: a config
//! in which two of them overlap (equal, or one inside the other, symlinks
//! resolved) is refused at load with exit 2 naming both, before anything
//! is read or written — so the snapshots already taken stay valid.
//!
//! Fails without `config::check_overlaps` (called from `Config::parse`):
//! a repository inside the chroma store was copied into each snapshot,
//! and SQLite reading the WAL-mode copies there left `-shm` files in the
//! snapshots already taken (`file_unexpected`); a store on the repository
//! captured the repository; two overlapping stores were both captured.

use crate::support::{self, Env};

const DB_AND_REGISTRY: &str = r#"lock_wait_seconds = 5

[[store]]
name = "db"
kind = "sqlite"
path = "data/atocore.db"

[[store]]
name = "registry"
kind = "registry-json"
path = "config/project-registry.json"
"#;

const CHROMA: &str = r#"
[[store]]
name = "chroma"
kind = "chroma-dir"
path = "data/chroma"
"#;

/// Takes a snapshot with `good`, runs `args` with `bad`: exit 2 naming
/// each of `names`, no snapshot added, nothing new in the repository; then
/// every snapshot still validates with `good`.
fn refused(env: &Env, good: &str, bad: &str, args: &[&str], names: &[&str]) {
    env.write_config(good);
    env.snapshot(&[]);
    let before = env.listed_ids();
    let repo_before = support::tree(&env.path("backups"));

    env.write_config(bad);
    let run = env.cairn(args);
    assert_eq!(run.code, 2, "{bad}\n{}\n{}", run.stdout, run.stderr);
    for name in names {
        assert!(
            run.stderr.contains(name),
            "the error should name {name}: {}",
            run.stderr
        );
    }
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);

    env.write_config(good);
    assert_eq!(env.listed_ids(), before);
    assert_eq!(support::tree(&env.path("backups")), repo_before);
    let run = env.cairn(&["--json", "validate", "--all"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    for r in run.json()["results"].as_array().unwrap() {
        assert_eq!(r["valid"], true, "{r}");
    }
}

#[test]
fn a_repository_inside_a_store_is_refused() {
    let env = Env::new();
    // The repository inside data/chroma is fine while no store holds it.
    let good = format!("repository = \"data/chroma/backups\"\n{DB_AND_REGISTRY}");
    let bad = format!("{good}{CHROMA}");
    env.write_config(&good);
    env.snapshot(&[]);
    env.write_config(&bad);
    let run = env.cairn(&["--json", "snapshot"]);
    assert_eq!(run.code, 2, "{}\n{}", run.stdout, run.stderr);
    for name in ["`repository`", "\"chroma\"", "data/chroma/backups"] {
        assert!(run.stderr.contains(name), "{name}: {}", run.stderr);
    }
    assert_eq!(run.json()["error"]["exit_code"], 2);
    env.write_config(&good);
    let run = env.cairn(&["--json", "validate", "--all"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(run.json()["results"].as_array().unwrap().len(), 1);
}

#[test]
fn a_store_on_or_inside_the_repository_is_refused() {
    let env = Env::new();
    for (path, relation) in [("backups", "same path"), ("backups/snapshots", "inside")] {
        let bad = format!(
            "{}\n[[store]]\nname = \"repo\"\nkind = \"chroma-dir\"\npath = \"{path}\"\n",
            support::CONFIG
        );
        refused(
            &env,
            support::CONFIG,
            &bad,
            &["snapshot"],
            &["\"repo\"", "`repository`", relation],
        );
    }
}

#[test]
fn a_store_that_is_a_parent_of_the_repository_or_resolves_to_root_is_refused() {
    let env = Env::new();
    std::os::unix::fs::symlink("/", env.path("root-link")).unwrap();
    // `list` rather than `snapshot`: without the check, a snapshot would
    // copy the whole filesystem.
    for path in [".", "root-link"] {
        let bad = format!(
            "{}\n[[store]]\nname = \"everything\"\nkind = \"chroma-dir\"\npath = \"{path}\"\n",
            support::CONFIG
        );
        refused(
            &env,
            support::CONFIG,
            &bad,
            &["list"],
            &["\"everything\"", "`repository`"],
        );
    }
    let bad = format!(
        "{}\n[[store]]\nname = \"everything\"\nkind = \"chroma-dir\"\npath = \"root-link\"\n",
        support::CONFIG
    );
    env.write_config(&bad);
    let run = env.cairn(&["list"]);
    assert!(run.stderr.contains("resolves to /"), "{}", run.stderr);
}

#[test]
fn overlapping_stores_are_refused() {
    let env = Env::new();
    let inside = format!(
        "{}\n[[store]]\nname = \"chroma-db\"\nkind = \"sqlite\"\npath = \"data/chroma/chroma.sqlite3\"\n",
        support::CONFIG
    );
    refused(
        &env,
        support::CONFIG,
        &inside,
        &["snapshot"],
        &["\"chroma-db\"", "\"chroma\"", "inside"],
    );
    // The same file under two names, one of them through a symlink.
    std::os::unix::fs::symlink("config", env.path("config-alias")).unwrap();
    let twice = format!(
        "{}\n[[store]]\nname = \"registry2\"\nkind = \"registry-json\"\npath = \"config-alias/project-registry.json\"\n",
        support::CONFIG
    );
    refused(
        &env,
        support::CONFIG,
        &twice,
        &["snapshot"],
        &["\"registry2\"", "\"registry\"", "same path"],
    );
}

/// `restore --to DIR` writes `DIR/<store>`: a DIR inside the repository,
/// inside a live store, or one whose `DIR/<store>` would be a live store's
/// path is refused (exit 2, naming the flag and what it overlaps) before
/// anything is written; the same restore to a fresh directory works.
#[test]
fn restore_to_a_directory_in_the_repository_or_a_live_store_is_refused() {
    let env = Env::new();
    let id = env.snapshot(&[]);
    let live_before = support::tree(&env.path("data"));
    let repo_before = support::tree(&env.path("backups"));
    for (dir, says) in [
        ("backups/tmp", "inside the repository"),
        ("backups", "inside the repository"),
        ("data/chroma/inner", "live path"),
        // DIR/chroma would be data/chroma itself; DIR/db a sibling of the
        // live database, inside nothing: refused for chroma.
        ("data", "overlaps store \"chroma\""),
    ] {
        let dir = env.path(dir);
        let dir = dir.to_str().unwrap();
        let run = env.cairn(&["restore", &id, "--to", dir]);
        assert_eq!(run.code, 2, "{dir}: {}", run.stderr);
        assert!(run.stderr.contains("--to"), "{dir}: {}", run.stderr);
        assert!(run.stderr.contains(says), "{dir}: {}", run.stderr);
    }
    assert_eq!(support::tree(&env.path("data")), live_before);
    assert_eq!(support::tree(&env.path("backups")), repo_before);
    let elsewhere = env.path("elsewhere");
    let fresh = env.cairn(&["restore", &id, "--to", elsewhere.to_str().unwrap()]);
    assert_eq!(fresh.code, 0, "{}", fresh.stderr);
    assert!(env.path("elsewhere/db").exists());
}
