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
    support::let_timestamps_settle();
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
    support::let_timestamps_settle();
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

/// One flipped bit in a copy two snapshots share, found by `validate`:
/// `cairn repair ID` rewrites that inode in place from the live file (so
/// the other snapshot is healed too), recreates a copy that went
/// missing, and then every snapshot validates. A dry run rewrites nothing.
#[test]
fn repair_heals_a_shared_damaged_copy_in_place_from_the_live_file() {
    let env = Env::new();
    support::let_timestamps_settle();
    let s0 = env.snapshot(&[]);
    let s1 = env.snapshot(&[]);
    let damaged = copy_of(&env, &s0);
    let ino = inode(&damaged);
    assert_eq!(ino, inode(&copy_of(&env, &s1)), "S1 hard-links S0's copy");
    rot(&damaged);
    let rotten = std::fs::read(&damaged).unwrap();
    // A second file gone from S0 only (S1 keeps its link); its
    // directory is the owner's to change (0700).
    let header = env
        .snapshot_dir(&s0)
        .join("stores/chroma/seg-0001/header.bin");
    std::fs::remove_file(&header).unwrap();
    let found = env.cairn(&["--json", "validate", "--all"]);
    assert_eq!(found.code, 1, "{}", found.stdout);
    let text = env.cairn(&["validate", &s0]);
    assert!(
        text.stdout.contains(&format!("hint: `cairn repair {s0}`")),
        "validate points at repair: {}",
        text.stdout
    );

    let refused = env.cairn(&["restore", &s0, "--to", "elsewhere"]);
    assert_eq!(refused.code, 3, "{}", refused.stderr);
    assert!(
        refused.stderr.contains(&format!("`cairn repair {s0}`")),
        "a refused restore points at repair: {}",
        refused.stderr
    );

    let dry = env.cairn(&["--json", "repair", &s0, "--dry-run"]);
    assert_eq!(dry.code, 1, "{}\n{}", dry.stdout, dry.stderr);
    assert_eq!(
        dry.json()["results"][0]["repaired"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        std::fs::read(&damaged).unwrap(),
        rotten,
        "a dry run rewrites nothing"
    );
    assert!(!header.exists());

    let run = env.cairn(&["--json", "repair", &s0]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let doc = run.json();
    let result = &doc["results"][0];
    assert_eq!(result["valid"], true, "{doc}");
    assert_eq!(result["unrepaired"], serde_json::json!([]), "{doc}");
    let repaired = result["repaired"].as_array().unwrap();
    assert_eq!(repaired.len(), 2, "{doc}");
    for r in repaired {
        assert!(r["from"]["live"].is_string(), "from the live file: {doc}");
    }
    // The same inode, rewritten: S1's link is healed with it.
    assert_eq!(inode(&damaged), ino);
    assert_eq!(inode(&copy_of(&env, &s1)), ino);
    let live_bytes = std::fs::read(live(&env)).unwrap();
    assert_eq!(std::fs::read(&damaged).unwrap(), live_bytes);
    assert_eq!(std::fs::read(copy_of(&env, &s1)).unwrap(), live_bytes);
    assert_eq!(
        std::fs::read(&header).unwrap(),
        std::fs::read(env.path("data/chroma/seg-0001/header.bin")).unwrap()
    );
    for file in [&damaged, &header] {
        let mode = std::fs::metadata(file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o400, "{} is {mode:o}", file.display());
    }
    assert_eq!(
        doc["revalidated"][0]["id"], s1,
        "S1 shares the healed file and is validated again: {doc}"
    );

    let all = env.cairn(&["--json", "validate", "--all"]);
    assert_eq!(all.code, 0, "{}", all.stdout);
    let list = env.cairn(&["--json", "list"]).json();
    for id in [&s0, &s1] {
        assert_eq!(listed(&list, id)["problem"], Value::Null, "{list}");
    }
}

/// When the live file has changed since, the damaged copy is rewritten
/// from an intact copy of the same bytes in another snapshot (verified by
/// hashing; never one that shares the damaged inode).
#[test]
fn repair_uses_another_snapshots_intact_copy_when_the_live_file_changed() {
    let env = Env::new();
    support::let_timestamps_settle();
    let s0 = env.snapshot(&[]);
    // An independent copy of the same bytes, and one sharing S0's inode.
    let full = env.snapshot(&["--full"]);
    let linked = env.snapshot(&[]);
    assert_eq!(inode(&copy_of(&env, &linked)), inode(&copy_of(&env, &full)));
    let original = std::fs::read(live(&env)).unwrap();
    std::fs::write(live(&env), b"the service rewrote its segment since").unwrap();
    let s3 = env.snapshot(&[]);
    rot(&copy_of(&env, &s0));
    let ino = inode(&copy_of(&env, &s0));

    let run = env.cairn(&["--json", "repair", &s0]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let doc = run.json();
    let repaired = &doc["results"][0]["repaired"];
    assert_eq!(
        problems(repaired),
        segment_mismatch(),
        "only the rotten file: {doc}"
    );
    // Either name of the one intact inode (the newest is tried first).
    let from = repaired[0]["from"]["snapshot"].as_str().unwrap();
    assert!(from == full || from == linked, "{doc}");
    assert_eq!(repaired[0]["from"]["path"], SEGMENT, "{doc}");
    assert_eq!(inode(&copy_of(&env, &s0)), ino, "rewritten in place");
    assert_eq!(std::fs::read(copy_of(&env, &s0)).unwrap(), original);
    assert_ne!(std::fs::read(copy_of(&env, &s3)).unwrap(), original);
    let all = env.cairn(&["--json", "validate", "--all"]);
    assert_eq!(all.code, 0, "{}", all.stdout);
}

/// A damaged file with no intact copy anywhere (the live file changed,
/// no other snapshot has those bytes) is listed with why, left as it is,
/// and the command exits 1.
#[test]
fn a_file_that_cannot_be_repaired_is_listed_and_exits_1() {
    let env = Env::new();
    let s0 = env.snapshot(&[]);
    std::fs::write(live(&env), b"new bytes: the old ones exist only in S0").unwrap();
    rot(&copy_of(&env, &s0));
    let rotten = std::fs::read(copy_of(&env, &s0)).unwrap();

    let run = env.cairn(&["--json", "repair", &s0]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let doc = run.json();
    let result = &doc["results"][0];
    assert_eq!(result["valid"], false, "{doc}");
    assert_eq!(result["repaired"], serde_json::json!([]), "{doc}");
    assert_eq!(problems(&result["unrepaired"]), segment_mismatch(), "{doc}");
    let reason = result["unrepaired"][0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("holds other bytes") && reason.contains("no other snapshot"),
        "{reason}"
    );
    assert_eq!(
        std::fs::read(copy_of(&env, &s0)).unwrap(),
        rotten,
        "left as it was"
    );

    let human = env.cairn(&["repair", &s0]);
    assert_eq!(human.code, 1);
    assert!(
        human.stdout.contains(&format!(
            "NOT repaired: file_checksum_mismatch [chroma] {SEGMENT}"
        )),
        "{}",
        human.stdout
    );
    assert!(human.stdout.contains("NOT SOUND"), "{}", human.stdout);
    // A bad id is refused before anything is touched.
    assert_eq!(env.cairn(&["repair", "../x"]).code, 2);
}

/// Without a validation in between, a snapshot still hard-links the
/// rotten copy (it cannot know): its own validation then fails, points at
/// `cairn repair`, and records the damage, so the snapshot after it
/// copies the file again and is sound. (`verify_rotation = 1`: every
/// snapshot re-reads every copy it reuses; by default it is the snapshot
/// whose rotating share holds the file, tests/cli/incremental.rs.)
#[test]
fn a_snapshot_that_linked_a_rotten_copy_points_at_repair_and_the_next_one_copies() {
    let env = Env::new();
    env.write_config(&format!("verify_rotation = 1\n{}", support::CONFIG));
    support::let_timestamps_settle();
    let s0 = env.snapshot(&[]);
    rot(&copy_of(&env, &s0));
    let run = env.cairn(&["snapshot"]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let s1 = env.listed_ids().pop().unwrap();
    assert!(
        run.stdout.contains(&format!("hint: `cairn repair {s1}`")),
        "{}",
        run.stdout
    );
    let s2 = env.snapshot(&[]);
    assert_ne!(inode(&copy_of(&env, &s2)), inode(&copy_of(&env, &s0)));
    assert_eq!(env.cairn(&["validate", &s2]).code, 0);
}

/// `cairn --help` lists `repair`; its own help says what it rewrites,
/// from what, and the exit codes.
#[test]
fn repair_help_says_what_it_rewrites_and_from_what() {
    let env = Env::empty();
    let top = env.cairn(&["--help"]);
    assert!(top.stdout.contains("repair"), "{}", top.stdout);
    let help = env.cairn(&["repair", "--help"]);
    assert_eq!(help.code, 0, "{}", help.stderr);
    for words in [
        "in place",
        "live file",
        "intact copy",
        "hard link",
        "--all",
        "--latest",
        "--dry-run",
        "1 when something remains",
    ] {
        assert!(
            help.stdout.contains(words),
            "no {words:?} in:\n{}",
            help.stdout
        );
    }
}
