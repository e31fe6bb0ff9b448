//! Invariant 5: concurrent runs on one repository never interleave. Four
//! snapshots at once each succeed or exit 3; ids are unique; all validate.
//! A snapshot and a prune at once never delete what the snapshot writes.
//!
//! Fails without: the repository lock (`repo::Repository::lock`, taken by
//! snapshot, prune and restore), id allocation under that lock
//! (`Repository::allocate_id` looking in `snapshots/` and `tmp/`), and
//! prune only removing `tmp/` leftovers while holding the lock.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::support::Env;
use crate::util::*;

fn four_at_once(env: &Env) -> (Vec<String>, usize) {
    let children: Vec<_> = (0..4)
        .map(|_| spawn(env, &["--json", "snapshot"], &[]))
        .collect();
    let mut ids = Vec::new();
    let mut busy = 0;
    for child in children {
        let run = wait_or_kill(child, Duration::from_secs(300)).expect("snapshot hung");
        no_panic(&run, "concurrent snapshot");
        match run.code {
            0 => ids.push(run.json()["id"].as_str().unwrap().to_owned()),
            3 => {
                busy += 1;
                assert!(
                    run.stderr.contains("lock"),
                    "exit 3 without naming the lock: {}",
                    run.stderr
                );
            }
            c => panic!("exit {c}: {}\n{}", run.stdout, run.stderr),
        }
    }
    (ids, busy)
}

#[test]
fn four_snapshots_at_once_succeed_or_refuse_cleanly() {
    // Waiting for the lock (the default config waits 5 s).
    let env = Env::new();
    let (ids, _) = four_at_once(&env);
    // Refusing at once: lock_wait_seconds = 0.
    config_with(&env, "lock_wait_seconds = 5", "lock_wait_seconds = 0", "");
    let (more, busy) = four_at_once(&env);
    eprintln!(
        "with no wait: {} succeeded, {busy} refused busy",
        more.len()
    );
    assert_eq!(more.len() + busy, 4);
    let all: Vec<String> = ids.iter().chain(&more).cloned().collect();
    let unique: BTreeSet<&String> = all.iter().collect();
    assert_eq!(unique.len(), all.len(), "duplicate ids: {all:?}");
    assert_eq!(env.listed_ids().len(), all.len());
    assert_all_valid(&env, "after concurrent snapshots");
    assert_eq!(tmp_entries(&env), Vec::<String>::new());
}

#[test]
fn a_prune_racing_a_snapshot_never_deletes_it() {
    let env = Env::new();
    config_with(
        &env,
        "lock_wait_seconds = 5",
        "lock_wait_seconds = 60",
        "\n[retention]\nkeep_daily = 1\nkeep_weekly = 0\nkeep_monthly = 0\n",
    );
    // Bulk so the snapshot is still writing when prune starts.
    write_big_file(&env.path("data/chroma/seg-0001/bulk.bin"), 40, 5);
    env.snapshot(&["--at", "2026-01-01T00:00:00Z"]);
    for round in 0..4 {
        // Rounds may fall in the same second: ids never go backwards within
        // a second (see `an_id_freed_by_prune_is_never_reused`).
        let snap = spawn(&env, &["--json", "snapshot"], &[]);
        std::thread::sleep(Duration::from_millis(30 * round));
        let prune = spawn(&env, &["--json", "prune", "--confirm"], &[]);
        let s = wait_or_kill(snap, Duration::from_secs(300)).expect("snapshot hung");
        let p = wait_or_kill(prune, Duration::from_secs(300)).expect("prune hung");
        assert_eq!(s.code, 0, "round {round}: {}\n{}", s.stdout, s.stderr);
        assert_eq!(p.code, 0, "round {round}: {}\n{}", p.stdout, p.stderr);
        let id = s.json()["id"].as_str().unwrap().to_owned();
        let listed = env.listed_ids();
        assert_eq!(
            listed.last(),
            Some(&id),
            "round {round}: newest snapshot gone: {listed:?}"
        );
        let run = env.cairn(&["validate", &id]);
        assert_eq!(run.code, 0, "round {round}: {}", run.stdout);
    }
}

/// Ids must grow with time: after prune deletes `T` (keeping the newer
/// `T-1`), the next snapshot taken in second `T` must not get `T` again, or
/// it sorts as older than what it follows and the next prune deletes the
/// newest snapshot.
///
/// Fails without: `Repository::allocate_id` choosing a suffix above every
/// id already used for that second (not the first free one).
#[test]
fn an_id_freed_by_prune_is_never_reused() {
    let env = Env::new();
    config_with(
        &env,
        "lock_wait_seconds = 5",
        "lock_wait_seconds = 5",
        "\n[retention]\nkeep_daily = 1\nkeep_weekly = 0\nkeep_monthly = 0\n",
    );
    let at = "2026-03-03T03:03:03Z";
    let first = env.snapshot(&["--at", at]);
    let second = env.snapshot(&["--at", at]);
    assert_eq!(
        (first.as_str(), second.as_str()),
        ("20260303T030303Z", "20260303T030303Z-1")
    );
    let run = env.cairn(&["prune", "--confirm"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(env.listed_ids(), vec![second.clone()]);
    let third = env.snapshot(&["--at", at]);
    assert!(third > second, "new snapshot {third} sorts before {second}");
    let run = env.cairn(&["prune", "--confirm"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        env.listed_ids(),
        vec![third],
        "prune deleted the newest snapshot"
    );
}
