//! Bit rot on the backup disk: what a validation finds is remembered
//! (`validated.json`, shown by `list`), never spread into the next
//! snapshot by a hard link, and healed in place by `cairn repair` from the
//! live file or another snapshot's intact copy. Each test asserts on the
//! bytes and inodes that end up in the snapshots.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::{self, Env};

/// A chroma file every test damages: 200,000 bytes, unchanged between
/// snapshots (so each new snapshot hard-links the previous copy).
const SEGMENT: &str = "seg-0001/data_level0.bin";

fn copy_of(env: &Env, id: &str) -> PathBuf {
    env.snapshot_dir(id).join("stores/chroma").join(SEGMENT)
}

fn live(env: &Env) -> PathBuf {
    env.path("data/chroma").join(SEGMENT)
}

fn inode(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().ino()
}

/// One flipped bit in a snapshot file, as a disk rots it: the mode stays
/// read-only, the inode (and every hard link to it) is the same.
fn rot(path: &Path) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    support::flip_byte(path, 4321, 0x04);
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o400)).unwrap();
}

/// (code, store, path) of each problem in a JSON `errors` array.
fn problems(errors: &Value) -> Vec<(String, String, String)> {
    errors
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {errors}"))
        .iter()
        .map(|e| {
            (
                e["code"].as_str().unwrap_or_default().to_owned(),
                e["store"].as_str().unwrap_or_default().to_owned(),
                e["path"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn segment_mismatch() -> Vec<(String, String, String)> {
    vec![(
        "file_checksum_mismatch".to_owned(),
        "chroma".to_owned(),
        SEGMENT.to_owned(),
    )]
}

fn listed<'a>(doc: &'a Value, id: &str) -> &'a Value {
    doc["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("{id} not listed: {doc}"))
}

/// After one flipped bit in a snapshot's copy, found by `cairn validate`,
/// the next snapshot copies that file from the live source instead of
/// hard-linking the damaged inode, and it validates. Unchanged files that
/// are intact are still shared.
#[test]
fn the_next_snapshot_never_hard_links_a_copy_a_validation_found_damaged() {
    let env = Env::new();
    let s0 = env.snapshot(&[]);
    rot(&copy_of(&env, &s0));
    let found = env.cairn(&["--json", "validate", &s0]);
    assert_eq!(found.code, 1, "{}\n{}", found.stdout, found.stderr);
    assert_eq!(
        problems(&found.json()["results"][0]["errors"]),
        segment_mismatch()
    );

    let run = env.cairn(&["--json", "snapshot"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let doc = run.json();
    assert_eq!(doc["validated"], true, "{doc}");
    let s1 = doc["id"].as_str().unwrap().to_owned();
    assert_ne!(
        inode(&copy_of(&env, &s1)),
        inode(&copy_of(&env, &s0)),
        "the new snapshot shares the damaged inode"
    );
    assert_eq!(
        std::fs::read(copy_of(&env, &s1)).unwrap(),
        std::fs::read(live(&env)).unwrap()
    );
    // Only the damaged copy was left out: an intact unchanged file is
    // still hard-linked.
    let header = |id: &str| {
        inode(
            &env.snapshot_dir(id)
                .join("stores/chroma/seg-0001/header.bin"),
        )
    };
    assert_eq!(header(&s0), header(&s1));
    // The snapshot says why it copied.
    let chroma = doc["stores"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "chroma")
        .unwrap();
    assert!(
        chroma["warnings"].to_string().contains(SEGMENT),
        "no warning names the file copied again: {doc}"
    );
    let validated = env.cairn(&["--json", "validate", &s1]);
    assert_eq!(validated.code, 0, "{}", validated.stdout);
}

/// `list` shows what the last validation found, with its age, so damage
/// found by last night's `validate` shows today; `validate --quick`
/// (which does not hash) repeats the checksum mismatch it recorded.
#[test]
fn list_shows_the_damage_an_earlier_validate_found() {
    let env = Env::new();
    let s0 = env.snapshot(&[]);
    let s1 = env.snapshot(&[]);
    let before = env.cairn(&["--json", "list"]).json();
    for id in [&s0, &s1] {
        let row = listed(&before, id);
        assert_eq!(row["problem"], Value::Null, "{before}");
        assert_eq!(
            row["last_validation"]["valid"], true,
            "the snapshot's own validation is recorded: {before}"
        );
        assert_eq!(row["last_validation"]["depth"], "deep", "{before}");
    }
    // S1 hard-links S0's copy: one rotten inode damages both.
    rot(&copy_of(&env, &s0));
    let quick_before = env.cairn(&["--json", "validate", "--quick", &s1]);
    assert_eq!(quick_before.code, 0, "sizes alone cannot see a flipped bit");

    let found = env.cairn(&["--json", "validate", &s1]);
    assert_eq!(found.code, 1, "{}", found.stdout);

    let doc = env.cairn(&["--json", "list"]).json();
    let row = listed(&doc, &s1);
    assert_eq!(row["problem"], "file_checksum_mismatch", "{doc}");
    assert_eq!(row["last_validation"]["valid"], false, "{doc}");
    assert_eq!(
        problems(&row["last_validation"]["errors"]),
        segment_mismatch(),
        "{doc}"
    );
    assert!(row["last_validation"]["age_seconds"].as_i64().unwrap() >= 0);
    // S0 was not validated since: its last known result stands.
    assert_eq!(listed(&doc, &s0)["problem"], Value::Null, "{doc}");

    let human = env.cairn(&["list"]);
    assert_eq!(human.code, 0);
    assert!(human.stdout.lines().next().unwrap().contains("VALIDATED"));
    let line = human.stdout.lines().find(|l| l.starts_with(&s1)).unwrap();
    assert!(
        line.contains("FAILED") && line.contains("file_checksum_mismatch"),
        "{}",
        human.stdout
    );
    assert!(human.stdout.contains("1 damaged"), "{}", human.stdout);

    let quick = env.cairn(&["--json", "validate", "--quick", &s1]);
    assert_eq!(quick.code, 1, "{}", quick.stdout);
    assert_eq!(
        problems(&quick.json()["results"][0]["errors"]),
        segment_mismatch()
    );
}
