//! Snapshots dated in the future (safety-net issue, defect B): a clock that
//! ran ahead, or a typo in `--at`. They must not push real snapshots out of
//! retention, must not be what `--latest` means, and must be pointed out.

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::Value;

use crate::support::{dir_names, Env, Run};

/// One tiny registry-json store: snapshots cost next to nothing.
const CONFIG: &str = r#"repository = "backups"
lock_wait_seconds = 5

[[store]]
name = "registry"
kind = "registry-json"
path = "registry.json"
"#;

fn env() -> Env {
    let env = Env::empty();
    std::fs::write(env.path("registry.json"), b"{\"projects\":[]}\n").unwrap();
    env.write_config(CONFIG);
    env
}

/// `--at` for `now + offset`, whole seconds.
fn at(now: DateTime<Utc>, offset: TimeDelta) -> String {
    (now + offset).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A snapshot dated `offset` from now, as a clock that ran ahead (or a
/// typo) would date it.
fn dated(env: &Env, now: DateTime<Utc>, offset: TimeDelta) -> String {
    env.snapshot(&["--at", &at(now, offset), "--allow-future"])
}

fn on_disk(env: &Env) -> Vec<String> {
    dir_names(&env.path("backups/snapshots"))
}

fn reasons(plan: &Value, id: &str) -> Vec<String> {
    plan["keep"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == id)
        .unwrap_or_else(|| panic!("{id} is not kept: {plan}"))["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_owned())
        .collect()
}

fn ok(run: &Run) -> Value {
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    run.json()
}

/// Seven future-dated snapshots held all seven daily slots, so the prune
/// after each real nightly deleted it.
#[test]
fn real_nightlies_survive_a_prune_with_seven_future_dated_snapshots() {
    let env = env();
    let now = Utc::now();
    let earlier: Vec<String> = (1..=2)
        .rev()
        .map(|d| dated(&env, now, TimeDelta::days(-d)))
        .collect();
    let future: Vec<String> = (30..37)
        .map(|d| dated(&env, now, TimeDelta::days(d)))
        .collect();
    let nightly = env.snapshot(&[]);

    let plan = ok(&env.cairn(&["--json", "prune", "--confirm"]));
    assert_eq!(plan["deleted"], serde_json::json!([]), "{plan}");
    assert!(env.snapshot_dir(&nightly).is_dir());
    assert_eq!(reasons(&plan, &nightly), ["daily"]);
    for id in &earlier {
        assert_eq!(reasons(&plan, id), ["daily"], "{id}");
    }
    for id in &future {
        assert_eq!(reasons(&plan, id), ["future"], "{id}");
    }
    assert_eq!(on_disk(&env).len(), 10);

    // The human report says what is going on.
    let run = env.cairn(&["prune"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    for id in &future {
        let line = run
            .stdout
            .lines()
            .find(|l| l.contains(id.as_str()))
            .unwrap_or_else(|| panic!("{id} not in:\n{}", run.stdout));
        assert!(line.contains("keep") && line.contains("future"), "{line}");
    }
    assert!(
        run.stdout.contains("7 snapshots dated in the future"),
        "{}",
        run.stdout
    );
}

/// `--latest` is the newest snapshot that is not in the future.
#[test]
fn latest_is_the_newest_snapshot_not_in_the_future() {
    let env = env();
    let now = Utc::now();
    let real = dated(&env, now, TimeDelta::hours(-1));
    // Within the tolerance: a clock a few seconds ahead is still now.
    let nearly_now = dated(&env, now, TimeDelta::seconds(30));
    let future = dated(&env, now, TimeDelta::days(3));

    let doc = ok(&env.cairn(&["--json", "validate", "--latest"]));
    assert_eq!(doc["results"][0]["id"], nearly_now.as_str(), "{doc}");

    // With the near one gone, the real one.
    env.unlock_snapshot(&nearly_now);
    std::fs::remove_dir_all(env.snapshot_dir(&nearly_now)).unwrap();
    let doc = ok(&env.cairn(&["--json", "validate", "--latest"]));
    assert_eq!(doc["results"][0]["id"], real.as_str(), "{doc}");
    let scratch = tempfile::tempdir().unwrap();
    let scratch = scratch.path().to_str().unwrap();
    for extra in [&[][..], &["--latest"][..]] {
        let mut args = vec!["--json", "drill", "--scratch", scratch];
        args.extend_from_slice(extra);
        let doc = ok(&env.cairn(&args));
        assert_eq!(doc["id"], real.as_str(), "{args:?}: {doc}");
        assert!(doc["snapshot_age_seconds"].as_i64().unwrap() >= 3600);
    }
    // Named explicitly, the future one is still checked.
    let doc = ok(&env.cairn(&["--json", "validate", &future]));
    assert_eq!(doc["results"][0]["id"], future.as_str());
}

/// A typo in `--at` (next year for this year) made a snapshot that held a
/// daily slot and was `--latest` for a year.
#[test]
fn snapshot_at_a_time_in_the_future_is_refused_unless_allowed() {
    let env = env();
    let now = Utc::now();
    let next_year = at(now, TimeDelta::days(365));
    for json in [false, true] {
        let mut args = vec!["snapshot", "--at", &next_year];
        if json {
            args.insert(0, "--json");
        }
        let run = env.cairn(&args);
        assert_eq!(run.code, 2, "{args:?}: {}\n{}", run.stdout, run.stderr);
        assert!(run.stderr.contains(&next_year), "{}", run.stderr);
        assert!(run.stderr.contains("--allow-future"), "{}", run.stderr);
        if json {
            assert_eq!(run.json()["error"]["exit_code"], 2);
        }
        assert!(
            !env.path("backups").exists(),
            "a refused --at created files"
        );
    }

    let id = env.snapshot(&["--at", &next_year, "--allow-future"]);
    assert_eq!(
        id,
        (now + TimeDelta::days(365))
            .format("%Y%m%dT%H%M%SZ")
            .to_string()
    );
    assert_eq!(on_disk(&env), [id]);
    // A clock a little ahead is still now.
    let soon = env.snapshot(&["--at", &at(now, TimeDelta::seconds(60))]);
    assert_eq!(on_disk(&env).len(), 2, "{soon}");
}

fn warnings(run: &Run) -> Vec<&str> {
    run.stderr
        .lines()
        .filter(|l| l.starts_with("warning:"))
        .collect()
}

/// A clock that ran ahead (now or when a snapshot was taken) is worth
/// hearing about from whatever command runs next: one line on stderr,
/// with stdout left alone. `list` and `drill` say "in the future" where
/// they said "0s ago" and "age 0s".
#[test]
fn a_future_dated_newest_snapshot_is_pointed_out() {
    let env = env();
    let now = Utc::now();
    let real = dated(&env, now, TimeDelta::hours(-3));
    let future = dated(&env, now, TimeDelta::days(3) + TimeDelta::hours(1));
    let scratch = tempfile::tempdir().unwrap();
    let scratch = scratch.path().to_str().unwrap();

    for args in [
        &["--json", "list"][..],
        &["--json", "prune"],
        &["--json", "validate", "--all"],
        &["--json", "drill", "--scratch", scratch],
        &["list"],
        &["prune"],
    ] {
        let run = env.cairn(args);
        assert_eq!(run.code, 0, "{args:?}: {}\n{}", run.stdout, run.stderr);
        let found = warnings(&run);
        assert_eq!(found.len(), 1, "{args:?}: {}", run.stderr);
        assert!(
            found[0].contains(&future) && found[0].contains("3d"),
            "{}",
            found[0]
        );
        assert!(!run.stdout.contains("warning"), "{args:?}: {}", run.stdout);
        if args[0] == "--json" {
            run.json();
        }
    }

    let run = env.cairn(&["list"]);
    let line_of = |id: &str| {
        run.stdout
            .lines()
            .find(|l| l.starts_with(id))
            .unwrap_or_else(|| panic!("{id} not in:\n{}", run.stdout))
            .to_owned()
    };
    assert!(
        line_of(&future).contains("(in the future by 3d)"),
        "{}",
        run.stdout
    );
    assert!(line_of(&real).contains("(3h ago)"), "{}", run.stdout);

    let run = env.cairn(&["drill", &future, "--scratch", scratch]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("in the future by 3d"), "{}", run.stdout);
    assert!(!run.stdout.contains("age 0s"), "{}", run.stdout);
    let doc = ok(&env.cairn(&["--json", "drill", &future, "--scratch", scratch]));
    assert!(doc["snapshot_age_seconds"].as_i64().unwrap() < -3 * 86400);

    // Nothing to say once it is gone.
    env.unlock_snapshot(&future);
    std::fs::remove_dir_all(env.snapshot_dir(&future)).unwrap();
    let run = env.cairn(&["list"]);
    assert_eq!(run.code, 0);
    assert!(warnings(&run).is_empty(), "{}", run.stderr);
}
