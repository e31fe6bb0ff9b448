//! Invariant 1: SIGKILL at any point of a snapshot never leaves anything
//! `list` shows that is not whole; the next snapshot succeeds; prune
//! removes the leftovers.
//!
//! Fails without: the build-in-`tmp/`-then-rename publication in
//! `snapshot::build_snapshot` (a snapshot written in place under
//! `snapshots/` shows up half-copied after a kill) and the leftover removal
//! in `prune::execute`.

use std::time::Instant;

use crate::support::Env;
use crate::util::*;

#[test]
fn sigkill_during_snapshot_never_publishes_a_partial_snapshot() {
    let env = Env::new();
    // ~300 MB in a few big files plus a few thousand small ones.
    let chroma = env.path("data/chroma");
    for (i, mb) in [120usize, 100, 80].iter().enumerate() {
        write_big_file(&chroma.join(format!("big-{i}.bin")), *mb, i as u32 + 1);
    }
    write_small_files(&chroma.join("small"), 3000, 30);

    // One full run to learn how long a snapshot takes here (only to spread
    // the kill points; nothing is asserted on time).
    let started = Instant::now();
    let baseline = env.snapshot(&["--tag", "baseline"]);
    let full = started.elapsed();
    eprintln!("a full snapshot took {full:?}");

    let mut killed_with_leftover = 0;
    for (round, fraction) in [0.03f64, 0.25, 0.5, 0.75, 0.93].iter().enumerate() {
        let before = env.listed_ids();
        let mut child = spawn(&env, &["snapshot", "--tag", "killed"], &[]);
        std::thread::sleep(full.mul_f64(*fraction));
        let finished = child.try_wait().unwrap().is_some();
        kill9(&mut child);
        let context = format!("kill {round} at {fraction} of a run (finished first: {finished})");

        // Whatever list shows is whole: sizes and structure of all, and
        // every byte of any snapshot that appeared.
        assert_all_valid_quick(&env, &context);
        let after = env.listed_ids();
        assert!(
            after.len() == before.len() || after.len() == before.len() + 1,
            "{context}: {before:?} -> {after:?}"
        );
        for id in after.iter().filter(|id| !before.contains(id)) {
            let run = env.cairn(&["validate", id]);
            assert_eq!(run.code, 0, "{context}: {id} not whole: {}", run.stdout);
        }
        if !tmp_entries(&env).is_empty() {
            killed_with_leftover += 1;
        }
    }
    eprintln!("{killed_with_leftover} kills left a build in tmp/");
    assert!(
        killed_with_leftover > 0,
        "no kill landed mid-snapshot; the test did not exercise the crash path"
    );

    // The next snapshot succeeds and is whole.
    let next = env.snapshot(&[]);
    assert_ne!(next, baseline);
    assert_all_valid(&env, "after the next snapshot");

    // prune names the leftovers and removes them.
    let leftovers = tmp_entries(&env);
    assert!(!leftovers.is_empty());
    let run = env.cairn(&["--json", "prune", "--confirm"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let reported: Vec<String> = run.json()["leftovers"]
        .as_array()
        .expect("prune --json has `leftovers`")
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    for name in &leftovers {
        assert!(
            reported.iter().any(|r| r.ends_with(name.as_str())),
            "leftover {name} not reported in {reported:?}"
        );
    }
    assert_eq!(
        tmp_entries(&env),
        Vec::<String>::new(),
        "backups/tmp not empty"
    );
    assert!(env.listed_ids().contains(&next));
    assert_all_valid(&env, "after prune");
}
