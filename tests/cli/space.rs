//! Space, honestly (issue 17, point 2): `stats` counts every inode once,
//! by (device, inode), at its blocks on disk; `list` has a total; `prune`
//! says what it frees (or would), as blocks whose last link goes.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::support::{self, Env};

/// Blocks × 512 of every distinct inode under `dirs`, computed here,
/// independently of cairn.
fn on_disk(dirs: &[&Path]) -> u64 {
    fn walk(p: &Path, seen: &mut HashSet<(u64, u64)>, total: &mut u64) {
        let m = std::fs::symlink_metadata(p).unwrap();
        if seen.insert((m.dev(), m.ino())) {
            *total += m.blocks() * 512;
        }
        if m.is_dir() {
            for e in std::fs::read_dir(p).unwrap() {
                walk(&e.unwrap().path(), seen, total);
            }
        }
    }
    let mut seen = HashSet::new();
    let mut total = 0;
    for d in dirs {
        walk(d, &mut seen, &mut total);
    }
    total
}

#[test]
fn stats_counts_a_hard_linked_file_once_per_snapshot_and_in_total() {
    let env = Env::new();
    // A 1 MiB file and a second name for it, inside one store.
    let big: Vec<u8> = (0..1_048_576u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(env.path("data/chroma/big.bin"), &big).unwrap();
    std::fs::hard_link(
        env.path("data/chroma/big.bin"),
        env.path("data/chroma/big-again.bin"),
    )
    .unwrap();
    support::let_timestamps_settle();
    let a = env.snapshot(&[]);
    // Unchanged since: the second snapshot hard-links the first's copies.
    let b = env.snapshot(&[]);

    let doc = env.cairn(&["--json", "stats"]).json();
    let snaps = doc["snapshots"].as_array().unwrap();
    let (sa, sb) = (&snaps[0], &snaps[1]);
    assert_eq!(sa["id"], a.as_str());
    assert_eq!(sb["id"], b.as_str());
    let dir_a = env.snapshot_dir(&a);
    let dir_b = env.snapshot_dir(&b);
    assert_eq!(sa["on_disk_bytes"].as_u64().unwrap(), on_disk(&[&dir_a]));
    assert_eq!(sb["on_disk_bytes"].as_u64().unwrap(), on_disk(&[&dir_b]));
    let total = doc["total"]["on_disk_bytes"].as_u64().unwrap();
    assert_eq!(total, on_disk(&[&dir_a, &dir_b]));
    // The big file's two names and two snapshots: 1 MiB on disk once,
    // while the apparent size counts each name in each snapshot.
    let apparent = doc["total"]["apparent_bytes"].as_u64().unwrap();
    assert!(apparent >= 4 * 1_048_576, "{doc}");
    assert!(total < 2 * 1_048_576, "counted more than once: {doc}");
    // Shared by both: unique to neither.
    assert!(sa["unique_bytes"].as_u64().unwrap() < 1_048_576, "{doc}");

    let human = env.cairn(&["stats"]);
    assert_eq!(human.code, 0, "{}", human.stderr);
    assert!(human.stdout.contains("2 snapshots:"), "{}", human.stdout);
    let list = env.cairn(&["list"]);
    assert!(
        list.stdout
            .lines()
            .last()
            .unwrap()
            .starts_with("2 snapshots, "),
        "{}",
        list.stdout
    );
    assert!(
        list.stdout.contains("in total as restored"),
        "{}",
        list.stdout
    );
    let json = env.cairn(&["--json", "list"]).json();
    assert_eq!(json["total_bytes"].as_u64().unwrap(), apparent, "{json}");
}

#[test]
fn prune_reports_the_bytes_its_deletions_free_not_their_apparent_size() {
    let env = Env::new();
    let policy = "\n[retention]\nkeep_daily = 1\nkeep_weekly = 0\nkeep_monthly = 0\n";
    let config = std::fs::read_to_string(env.path("cairn.toml")).unwrap();
    env.write_config(&format!("{config}{policy}"));
    let big: Vec<u8> = (0..1_048_576u32).map(|i| (i * 13 % 251) as u8).collect();
    std::fs::write(env.path("data/chroma/big.bin"), &big).unwrap();
    support::let_timestamps_settle();
    let old = env.snapshot(&["--at", "2026-01-01T00:00:00Z"]);
    // The next day: big.bin unchanged (shared by hard link), header changed.
    std::fs::write(env.path("data/chroma/seg-0001/header.bin"), b"header v2").unwrap();
    env.snapshot(&["--at", "2026-01-02T00:00:00Z"]);

    // What deleting `old` frees, computed here: its inodes with no link
    // outside its directory.
    let dir = env.snapshot_dir(&old);
    let mut freed = 0u64;
    let mut seen = HashSet::new();
    fn walk(p: &Path, seen: &mut HashSet<(u64, u64)>, freed: &mut u64) {
        let m = std::fs::symlink_metadata(p).unwrap();
        if seen.insert((m.dev(), m.ino())) && (m.nlink() == 1 || m.is_dir()) {
            *freed += m.blocks() * 512;
        }
        if m.is_dir() {
            for e in std::fs::read_dir(p).unwrap() {
                walk(&e.unwrap().path(), seen, freed);
            }
        }
    }
    walk(&dir, &mut seen, &mut freed);
    assert!(freed < 1_048_576, "big.bin is shared, so it is not freed");

    let dry = env.cairn(&["--json", "prune"]).json();
    assert_eq!(dry["delete"], serde_json::json!([old]));
    assert_eq!(dry["bytes_freed"].as_u64().unwrap(), freed, "{dry}");
    let human = env.cairn(&["prune"]);
    assert!(human.stdout.contains("would free"), "{}", human.stdout);
    let done = env.cairn(&["--json", "prune", "--confirm"]).json();
    assert_eq!(done["deleted"], serde_json::json!([old]));
    assert_eq!(done["bytes_freed"].as_u64().unwrap(), freed, "{done}");
}
