//! Taking out one thing (issue 17, point 1): `restore --path STORE/PATH`,
//! elsewhere with `--to` and in place, with every gate of a restore and
//! nothing else of the store touched.

use crate::support::{self, Env};

const HEADER: &str = "data/chroma/seg-0001/header.bin";
const LEVEL0: &str = "data/chroma/seg-0001/data_level0.bin";

fn read(env: &Env, rel: &str) -> Vec<u8> {
    std::fs::read(env.path(rel)).unwrap()
}

#[test]
fn one_file_restored_elsewhere_is_the_snapshot_copy_and_nothing_else_comes() {
    let env = Env::new();
    let id = env.snapshot(&[]);
    let snap = std::fs::read(
        env.snapshot_dir(&id)
            .join("stores/chroma/seg-0001/header.bin"),
    )
    .unwrap();
    let out = tempfile::tempdir().unwrap();
    let to = out.path().join("r");
    let run = env.cairn(&[
        "restore",
        &id,
        "--path",
        "chroma/seg-0001/header.bin",
        "--to",
        to.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let got = support::tree(&to);
    let names: Vec<(&str, &str)> = got
        .iter()
        .map(|(p, k, _)| (p.as_str(), k.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("chroma", "dir"),
            ("chroma/seg-0001", "dir"),
            ("chroma/seg-0001/header.bin", "file")
        ]
    );
    assert_eq!(got[2].2, snap);
}

#[test]
fn one_file_restored_in_place_leaves_the_rest_of_the_store_and_the_other_stores_as_they_are() {
    let env = Env::new();
    let id = env.snapshot(&[]);
    let header_then = read(&env, HEADER);
    // Changes after the snapshot: the file to restore, its neighbour, a
    // new file, and a row in another store.
    std::fs::write(env.path(HEADER), b"header broken by hand").unwrap();
    std::fs::write(env.path(LEVEL0), b"level0 rewritten since").unwrap();
    std::fs::write(env.path("data/chroma/added-since.bin"), b"new since").unwrap();
    env.db()
        .execute(
            "INSERT INTO memories(content) VALUES ('after the snapshot')",
            [],
        )
        .unwrap();

    // The gate of a live restore: refused without the confirmation.
    let refused = env.cairn(&["restore", &id, "--path", "chroma/seg-0001/header.bin"]);
    assert_eq!(refused.code, 3, "{}", refused.stderr);
    assert_eq!(read(&env, HEADER), b"header broken by hand");
    // The hint never suggests the whole restore the paths narrowed, and
    // never prints a placeholder.
    assert!(
        refused
            .stderr
            .contains("rerun the same command with --confirm-service-stopped added"),
        "{}",
        refused.stderr
    );
    assert!(
        !refused
            .stderr
            .contains(&format!("cairn restore {id} --confirm")),
        "{}",
        refused.stderr
    );
    assert!(!refused.stderr.contains("<ID>"), "{}", refused.stderr);

    let run = env.cairn(&[
        "--json",
        "restore",
        &id,
        "--path",
        "chroma/seg-0001/header.bin",
        "--confirm-service-stopped",
    ]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(read(&env, HEADER), header_then, "restored byte for byte");
    assert_eq!(read(&env, LEVEL0), b"level0 rewritten since");
    assert_eq!(read(&env, "data/chroma/added-since.bin"), b"new since");
    assert_eq!(
        support::memories(&env.path("data/atocore.db")),
        ["baseline memory", "after the snapshot"]
    );
    // No work directory left in the store.
    assert!(
        support::dir_names(&env.path("data/chroma"))
            .iter()
            .all(|n| !n.starts_with(".cairn-")),
        "{:?}",
        support::dir_names(&env.path("data/chroma"))
    );
    // The way back: a pre-restore snapshot of the whole store, holding the
    // bytes the restore replaced.
    let pre = run.json()["pre_restore_snapshot"]
        .as_str()
        .unwrap()
        .to_owned();
    let back = std::process::Command::new(support::CAIRN)
        .args(env.with_config(&["cat", &pre, "chroma/seg-0001/header.bin"]))
        .output()
        .unwrap();
    assert_eq!(back.stdout, b"header broken by hand");
}

#[test]
fn a_deleted_directory_and_a_file_in_a_deleted_directory_come_back_alone() {
    let env = Env::new();
    let id = env.snapshot(&[]);
    let (header, level0) = (read(&env, HEADER), read(&env, LEVEL0));
    std::fs::write(env.path("data/chroma/added-since.bin"), b"new since").unwrap();

    support::remove_any(&env.path("data/chroma/seg-0001"));
    let run = env.cairn(&[
        "restore",
        &id,
        "--path",
        "chroma/seg-0001/header.bin",
        "--confirm-service-stopped",
    ]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(
        support::dir_names(&env.path("data/chroma/seg-0001")),
        ["header.bin"]
    );
    assert_eq!(read(&env, HEADER), header);

    let run = env.cairn(&[
        "restore",
        &id,
        "--path",
        "chroma/seg-0001",
        "--confirm-service-stopped",
    ]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(
        support::dir_names(&env.path("data/chroma/seg-0001")),
        ["data_level0.bin", "header.bin"]
    );
    assert_eq!(read(&env, LEVEL0), level0);
    assert_eq!(read(&env, "data/chroma/added-since.bin"), b"new since");
}

#[test]
fn a_directory_on_the_way_swapped_for_a_symlink_is_refused_and_nothing_is_written_through_it() {
    let env = Env::new();
    let id = env.snapshot(&[]);
    // The service's user replaces seg-0001 with a link to a directory of
    // its choosing, holding a file of the same name.
    let elsewhere = env.path("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::fs::write(elsewhere.join("header.bin"), b"not cairn's to write").unwrap();
    support::remove_any(&env.path("data/chroma/seg-0001"));
    std::os::unix::fs::symlink(&elsewhere, env.path("data/chroma/seg-0001")).unwrap();

    let run = env.cairn(&[
        "restore",
        &id,
        "--path",
        "chroma/seg-0001/header.bin",
        "--confirm-service-stopped",
    ]);
    assert_eq!(run.code, 3, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("is a symlink"), "{}", run.stderr);
    assert_eq!(
        std::fs::read(elsewhere.join("header.bin")).unwrap(),
        b"not cairn's to write"
    );
    assert_eq!(support::dir_names(&elsewhere), ["header.bin"]);
    assert!(std::fs::symlink_metadata(env.path("data/chroma/seg-0001"))
        .unwrap()
        .file_type()
        .is_symlink());
    // Refused before the swap: no pre-restore snapshot either.
    assert_eq!(env.listed_ids(), [id]);
}

#[test]
fn a_path_chooses_its_store_and_a_file_store_comes_back_whole() {
    let env = Env::new();
    let id = env.snapshot(&[]);
    let registry_then = read(&env, "config/project-registry.json");
    std::fs::write(
        env.path("config/project-registry.json"),
        b"{\"projects\":[]}",
    )
    .unwrap();
    std::fs::write(env.path(HEADER), b"changed header").unwrap();
    let dry = env.cairn(&["--json", "restore", &id, "--path", "registry", "--dry-run"]);
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    let planned = dry.json();
    let names: Vec<&str> = planned["stores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["registry"], "{planned}");

    let run = env.cairn(&[
        "restore",
        &id,
        "--path",
        "registry",
        "--confirm-service-stopped",
    ]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(read(&env, "config/project-registry.json"), registry_then);
    assert_eq!(read(&env, HEADER), b"changed header");

    let both = env.cairn(&[
        "restore", &id, "--path", "registry", "--only", "db", "--to", "x",
    ]);
    assert_eq!(both.code, 2, "{}", both.stderr);
    let missing = env.cairn(&["restore", &id, "--path", "chroma/none", "--to", "x"]);
    assert_eq!(missing.code, 2, "{}", missing.stderr);
    assert!(
        missing.stderr.contains("no entry none"),
        "{}",
        missing.stderr
    );
}
