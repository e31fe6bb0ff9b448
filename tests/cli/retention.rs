//! Retention people expect (issue 17, point 5), through the real binary:
//! a missed Sunday no longer leaves a hole, `keep_last`, `keep_within`,
//! `keep_tag`, and every kept snapshot's reasons. The reference's own
//! cases are in `prune.rs` (CLI) and the engine's `prune::tests`.

use serde_json::Value;

use crate::support::Env;

fn env_with(retention: &str) -> Env {
    let env = Env::empty();
    std::fs::write(env.path("registry.json"), b"{\"projects\":[]}\n").unwrap();
    env.write_config(&format!(
        "repository = \"backups\"\nlock_wait_seconds = 5\n{retention}\n[[store]]\nname = \"registry\"\nkind = \"registry-json\"\npath = \"registry.json\"\n"
    ));
    env
}

fn reasons(plan: &Value) -> Vec<(String, Vec<String>)> {
    plan["keep"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            let r = k["reasons"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r.as_str().unwrap().to_owned())
                .collect();
            (k["id"].as_str().unwrap()[..8].to_owned(), r)
        })
        .collect()
}

#[test]
fn a_missed_sunday_keeps_the_saturday_of_that_week() {
    let env = env_with("[retention]\nkeep_daily = 2\nkeep_weekly = 3\nkeep_monthly = 0\n");
    // Sat Mar 21, (Sunday Mar 22 missed), Mon Mar 23, Sun Mar 29, Mon Mar 30, Tue Mar 31.
    for day in [
        "2026-03-21",
        "2026-03-23",
        "2026-03-29",
        "2026-03-30",
        "2026-03-31",
    ] {
        env.snapshot(&["--at", &format!("{day}T03:00:00Z")]);
    }
    let run = env.cairn(&["--json", "prune"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let kept = reasons(&run.json());
    assert_eq!(
        kept,
        vec![
            ("20260321".to_owned(), vec!["weekly".to_owned()]),
            ("20260329".to_owned(), vec!["weekly".to_owned()]),
            ("20260330".to_owned(), vec!["daily".to_owned()]),
            ("20260331".to_owned(), vec!["daily".to_owned()]),
        ]
    );
    assert_eq!(
        run.json()["delete"],
        serde_json::json!(["20260323T030000Z"])
    );
}

#[test]
fn keep_last_within_and_tag_show_as_reasons_and_keep_what_they_say() {
    let env = env_with(
        "[retention]\nkeep_daily = 0\nkeep_weekly = 0\nkeep_monthly = 0\nkeep_last = 1\nkeep_within = \"2d\"\nkeep_tag = [\"release\"]\n",
    );
    env.snapshot(&["--at", "2026-01-10T12:00:00Z", "--tag", "release"]);
    env.snapshot(&["--at", "2026-01-11T12:00:00Z"]);
    env.snapshot(&["--at", "2026-01-19T12:00:00Z"]);
    env.snapshot(&["--at", "2026-01-20T12:00:00Z"]);
    env.snapshot(&["--at", "2026-01-21T12:00:00Z"]);
    let run = env.cairn(&["--json", "prune", "--confirm"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
    assert_eq!(
        reasons(&run.json()),
        vec![
            ("20260110".to_owned(), s(&["tag"])),
            ("20260119".to_owned(), s(&["within"])),
            ("20260120".to_owned(), s(&["within"])),
            ("20260121".to_owned(), s(&["last", "within"])),
        ]
    );
    assert_eq!(
        run.json()["deleted"],
        serde_json::json!(["20260111T120000Z"])
    );
    assert_eq!(env.listed_ids().len(), 4);
    // The human plan says the same.
    let human = env.cairn(&["prune"]);
    assert!(
        human
            .stdout
            .contains("keep_last=1, keep_within=2d, keep_tag=release"),
        "{}",
        human.stdout
    );
    assert!(
        human.stdout.contains("keep    20260110T120000Z  tag"),
        "{}",
        human.stdout
    );
}

#[test]
fn a_bad_keep_within_is_a_config_error_naming_the_key() {
    for bad in ["14", "two weeks", "14x", ""] {
        let env = env_with(&format!("[retention]\nkeep_within = \"{bad}\"\n"));
        let run = env.cairn(&["prune"]);
        assert_eq!(run.code, 2, "{bad:?}: {}", run.stderr);
        assert!(
            run.stderr.contains("keep_within") && run.stderr.contains("cairn.toml"),
            "{bad:?}: {}",
            run.stderr
        );
    }
}

#[test]
fn keep_tag_alone_with_no_tagged_snapshot_is_an_empty_policy() {
    let env = env_with(
        "[retention]\nkeep_daily = 0\nkeep_weekly = 0\nkeep_monthly = 0\nkeep_tag = [\"release\"]\n",
    );
    env.snapshot(&["--at", "2026-01-10T12:00:00Z"]);
    let run = env.cairn(&["prune", "--confirm"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("keeps nothing"), "{}", run.stderr);
    assert_eq!(env.listed_ids().len(), 1);
}
