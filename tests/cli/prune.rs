//! Retention (issue 4) end to end: `cairn prune`, `pin`, `unpin`, on
//! snapshots made by the real `cairn snapshot --at`.
//!
//! The first seven tests port the reference's cleanup tests with their exact
//! expectations (reference `kept` = `keep.len()`, `would_delete` =
//! `delete.len()`). The pure rule has property tests in the engine; these
//! check the command around it.

use serde_json::Value;

use crate::support::dir_names;
use crate::support::Env;

/// One tiny registry-json store: snapshots cost next to nothing.
const CONFIG: &str = r#"repository = "backups"
lock_wait_seconds = 5

[[store]]
name = "registry"
kind = "registry-json"
path = "registry.json"
"#;

fn env_with(config: &str) -> Env {
    let env = Env::empty();
    std::fs::write(env.path("registry.json"), b"{\"projects\":[]}\n").unwrap();
    env.write_config(config);
    env
}

fn env() -> Env {
    env_with(CONFIG)
}

/// `YYYY-MM-DD` at 12:00 UTC → (RFC 3339, snapshot id).
fn stamp(day: &str) -> (String, String) {
    let at = format!("{day}T12:00:00Z");
    let id = format!("{}T120000Z", day.replace('-', ""));
    (at, id)
}

/// Takes one snapshot per day (noon UTC) through the real binary; returns
/// the ids.
fn seed(env: &Env, days: &[&str]) -> Vec<String> {
    days.iter()
        .map(|day| {
            let (at, expected) = stamp(day);
            let id = env.snapshot(&["--at", &at]);
            assert_eq!(id, expected);
            id
        })
        .collect()
}

fn days(year_month: &str, from: u32, to: u32) -> Vec<String> {
    (from..=to)
        .map(|d| format!("{year_month}-{d:02}"))
        .collect()
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn id_of(day: &str) -> String {
    stamp(day).1
}

struct Plan {
    json: Value,
}

impl Plan {
    fn keep_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.json["keep"]
            .as_array()
            .expect("keep")
            .iter()
            .map(|k| k["id"].as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        ids
    }

    fn delete_ids(&self) -> Vec<String> {
        let mut ids = strings(&self.json["delete"]);
        ids.sort();
        ids
    }

    fn deleted_ids(&self) -> Vec<String> {
        let mut ids = strings(&self.json["deleted"]);
        ids.sort();
        ids
    }

    fn reasons(&self, id: &str) -> Vec<String> {
        let keep = self.json["keep"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["id"] == id)
            .unwrap_or_else(|| panic!("{id} is not kept: {}", self.json));
        strings(&keep["reasons"])
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

fn prune(env: &Env, extra: &[&str]) -> Plan {
    let mut args = vec!["--json", "prune"];
    args.extend_from_slice(extra);
    let run = env.cairn(&args);
    assert_eq!(
        run.code, 0,
        "prune {extra:?}: {}\n{}",
        run.stdout, run.stderr
    );
    Plan { json: run.json() }
}

fn on_disk(env: &Env) -> Vec<String> {
    dir_names(&env.path("backups/snapshots"))
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

// ---------------------------------------------------------------------------
// the reference's seven cleanup tests

#[test]
fn cleanup_empty_dir() {
    let env = env();
    let plan = prune(&env, &[]);
    assert_eq!(plan.json["dry_run"], true);
    assert_eq!(plan.keep_ids().len(), 0);
    assert_eq!(plan.delete_ids().len(), 0);
    assert!(plan.deleted_ids().is_empty());
    assert_eq!(plan.json["unparseable"], serde_json::json!([]));

    // And on a repository that exists but holds nothing.
    std::fs::create_dir_all(env.path("backups/snapshots")).unwrap();
    let plan = prune(&env, &["--confirm"]);
    assert_eq!(plan.json["dry_run"], false);
    assert_eq!(plan.keep_ids().len(), 0);
    assert_eq!(plan.delete_ids().len(), 0);
}

#[test]
fn cleanup_dry_run_identifies_old_snapshots() {
    let env = env();
    // 10 daily snapshots Apr 2-11 2026 (Apr 1, a monthly day, avoided).
    let all = seed(&env, &refs(&days("2026-04", 2, 11)));
    let plan = prune(&env, &[]);
    assert_eq!(plan.json["dry_run"], true);
    // Newest 7 days (Apr 5-11) kept as daily; Apr 2, 3, 4 are neither a
    // Sunday nor a 1st.
    assert_eq!(plan.keep_ids().len(), 7);
    assert_eq!(plan.delete_ids().len(), 3);
    assert_eq!(
        plan.keep_ids(),
        days("2026-04", 5, 11)
            .iter()
            .map(|d| id_of(d))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        plan.delete_ids(),
        [
            id_of("2026-04-02"),
            id_of("2026-04-03"),
            id_of("2026-04-04")
        ]
    );
    assert!(plan.deleted_ids().is_empty());
    // A dry run deletes nothing.
    assert_eq!(on_disk(&env), sorted(all));
    assert_eq!(on_disk(&env).len(), 10);
}

#[test]
fn cleanup_confirm_deletes() {
    let env = env();
    seed(&env, &refs(&days("2026-04", 2, 11)));
    let plan = prune(&env, &["--confirm"]);
    assert_eq!(plan.json["dry_run"], false);
    assert_eq!(
        plan.deleted_ids(),
        [
            id_of("2026-04-02"),
            id_of("2026-04-03"),
            id_of("2026-04-04")
        ]
    );
    assert_eq!(plan.keep_ids().len(), 7);
    let left = on_disk(&env);
    assert_eq!(left.len(), 7);
    assert_eq!(
        left,
        days("2026-04", 5, 11)
            .iter()
            .map(|d| id_of(d))
            .collect::<Vec<_>>()
    );
    // What is left is whole and valid; no half-deleted snapshot lingers.
    let run = env.cairn(&["--json", "validate", "--all"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(run.json()["results"].as_array().unwrap().len(), 7);
    assert!(dir_names(&env.path("backups/tmp")).is_empty());

    // Pruning again deletes nothing.
    let again = prune(&env, &["--confirm"]);
    assert!(again.deleted_ids().is_empty());
    assert_eq!(on_disk(&env).len(), 7);
}

#[test]
fn cleanup_keeps_last_7_daily() {
    let env = env();
    let all = seed(&env, &refs(&days("2026-04", 5, 11)));
    let plan = prune(&env, &[]);
    assert_eq!(plan.keep_ids().len(), 7);
    assert_eq!(plan.delete_ids().len(), 0);
    assert_eq!(plan.keep_ids(), sorted(all.clone()));
    for id in &all {
        assert_eq!(plan.reasons(id), ["daily"], "{id}");
    }
}

#[test]
fn cleanup_keeps_sunday_weekly() {
    let env = env();
    let mut dates = days("2026-04", 5, 11);
    // Two older Sundays and a Wednesday between them.
    dates.extend([
        "2026-03-29".into(),
        "2026-03-22".into(),
        "2026-03-25".into(),
    ]);
    seed(&env, &refs(&dates));
    let plan = prune(&env, &[]);
    // 7 daily + 2 Sunday weekly = 9 kept; the Wednesday goes.
    assert_eq!(plan.keep_ids().len(), 9);
    assert_eq!(plan.delete_ids().len(), 1);
    assert_eq!(plan.delete_ids(), [id_of("2026-03-25")]);
    assert_eq!(plan.reasons(&id_of("2026-03-29")), ["weekly"]);
    assert_eq!(plan.reasons(&id_of("2026-03-22")), ["weekly"]);
    // Apr 5 is a Sunday too, but it is already kept as daily.
    assert_eq!(plan.reasons(&id_of("2026-04-05")), ["daily"]);
    assert_eq!(plan.reasons(&id_of("2026-04-11")), ["daily"]);
}

#[test]
fn cleanup_keeps_monthly_first() {
    let env = env();
    let mut dates = days("2026-04", 5, 11);
    dates.extend([
        "2026-01-01".into(),
        "2025-12-01".into(),
        "2026-01-15".into(),
    ]);
    seed(&env, &refs(&dates));
    let plan = prune(&env, &[]);
    // 7 daily + 2 monthly = 9 kept; Jan 15 (a Thursday) goes.
    assert_eq!(plan.keep_ids().len(), 9);
    assert_eq!(plan.delete_ids().len(), 1);
    assert_eq!(plan.delete_ids(), [id_of("2026-01-15")]);
    assert_eq!(plan.reasons(&id_of("2026-01-01")), ["monthly"]);
    assert_eq!(plan.reasons(&id_of("2025-12-01")), ["monthly"]);
    for d in days("2026-04", 5, 11) {
        assert_eq!(plan.reasons(&id_of(&d)), ["daily"], "{d}");
    }
}

#[test]
fn cleanup_unparseable_stamp_skipped() {
    let env = env();
    let ids = seed(&env, &["2026-04-05"]);
    let bad = env.path("backups/snapshots/not-a-timestamp");
    std::fs::create_dir(&bad).unwrap();
    std::fs::write(bad.join("keep-me"), b"operator's notes").unwrap();

    let plan = prune(&env, &["--confirm"]);
    assert_eq!(
        plan.json["unparseable"],
        serde_json::json!(["not-a-timestamp"])
    );
    assert!(bad.exists());
    assert_eq!(
        std::fs::read(bad.join("keep-me")).unwrap(),
        b"operator's notes"
    );
    assert_eq!(plan.keep_ids(), ids);
    assert!(plan.deleted_ids().is_empty());
    assert!(!plan.delete_ids().contains(&"not-a-timestamp".to_owned()));
}

// ---------------------------------------------------------------------------
// reasons, pins, leftovers, policy, output

#[test]
fn only_the_newest_snapshot_of_a_day_is_daily() {
    let env = env();
    let morning = env.snapshot(&["--at", "2026-04-10T08:00:00Z"]);
    let evening = env.snapshot(&["--at", "2026-04-10T20:00:00Z"]);
    // Late on the 11th in UTC: still the 11th.
    let late = env.snapshot(&["--at", "2026-04-11T23:59:59Z"]);
    let plan = prune(&env, &[]);
    assert_eq!(plan.keep_ids(), sorted(vec![evening.clone(), late.clone()]));
    assert_eq!(plan.delete_ids(), [morning]);
    assert_eq!(plan.reasons(&evening), ["daily"]);
    assert_eq!(plan.reasons(&late), ["daily"]);
}

#[test]
fn pinned_snapshot_is_kept_and_unpin_makes_it_prunable() {
    let env = env();
    seed(&env, &refs(&days("2026-04", 2, 11)));
    let old = id_of("2026-04-02");

    let run = env.cairn(&["pin", &old]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);

    let list = env.cairn(&["--json", "list"]);
    assert_eq!(list.code, 0);
    let pinned: Vec<(String, bool)> = list.json()["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["id"].as_str().unwrap().to_owned(), s["pinned"] == true))
        .collect();
    assert_eq!(pinned.len(), 10);
    for (id, is_pinned) in &pinned {
        assert_eq!(*is_pinned, *id == old, "{id}");
    }

    let plan = prune(&env, &[]);
    assert_eq!(plan.reasons(&old), ["pinned"]);
    assert_eq!(plan.keep_ids().len(), 8);
    assert_eq!(
        plan.delete_ids(),
        [id_of("2026-04-03"), id_of("2026-04-04")]
    );

    let done = prune(&env, &["--confirm"]);
    assert_eq!(
        done.deleted_ids(),
        [id_of("2026-04-03"), id_of("2026-04-04")]
    );
    assert!(on_disk(&env).contains(&old));
    assert_eq!(on_disk(&env).len(), 8);
    // The pin survives the prune (it lives with the snapshot) and the
    // pinned snapshot is still valid.
    let list = env.cairn(&["--json", "list"]).json();
    let entry = list["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == old.as_str())
        .unwrap()
        .clone();
    assert_eq!(entry["pinned"], true);
    assert_eq!(entry["problem"], Value::Null);
    let run = env.cairn(&["validate", &old]);
    assert_eq!(run.code, 0, "pinning damaged the snapshot: {}", run.stdout);

    // Unpin: prunable again.
    let run = env.cairn(&["unpin", &old]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let list = env.cairn(&["--json", "list"]).json();
    assert!(list["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["pinned"] == false));
    let done = prune(&env, &["--confirm"]);
    assert_eq!(done.deleted_ids(), [old.as_str()]);
    assert!(!on_disk(&env).contains(&old));
    assert_eq!(on_disk(&env).len(), 7);
}

#[test]
fn pin_of_a_missing_snapshot_fails_and_creates_nothing() {
    let env = env();
    seed(&env, &["2026-04-05"]);
    let run = env.cairn(&["pin", "20260101T000000Z"]);
    assert_ne!(run.code, 0, "{}", run.stdout);
    assert!(run.stderr.contains("20260101T000000Z"), "{}", run.stderr);
    assert_eq!(on_disk(&env), [id_of("2026-04-05")]);
}

#[test]
fn pinned_snapshot_that_is_also_daily_lists_both_reasons() {
    let env = env();
    let ids = seed(&env, &["2026-04-10", "2026-04-11"]);
    let run = env.cairn(&["pin", &ids[1]]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let plan = prune(&env, &[]);
    let reasons = plan.reasons(&ids[1]);
    assert!(reasons.contains(&"pinned".to_owned()), "{reasons:?}");
    assert!(reasons.contains(&"daily".to_owned()), "{reasons:?}");
    assert_eq!(plan.reasons(&ids[0]), ["daily"]);
}

#[test]
fn leftover_of_an_interrupted_snapshot_is_listed_then_removed() {
    let env = env();
    seed(&env, &["2026-04-05"]);
    // What a crash mid-snapshot leaves: a half-built dir under tmp/.
    let leftover = env.path("backups/tmp/20260410T000000Z");
    std::fs::create_dir_all(leftover.join("stores/registry")).unwrap();
    std::fs::write(leftover.join("stores/registry/registry.json"), b"{").unwrap();

    let plan = prune(&env, &[]);
    let listed = strings(&plan.json["leftovers"]);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert!(listed[0].ends_with("tmp/20260410T000000Z"), "{listed:?}");
    assert!(leftover.exists(), "a dry run removed the leftover");
    // A leftover is never listed as a snapshot.
    assert_eq!(on_disk(&env), [id_of("2026-04-05")]);

    let done = prune(&env, &["--confirm"]);
    assert!(!leftover.exists(), "--confirm left the leftover");
    let removed = strings(&done.json["leftovers_removed"]);
    assert_eq!(removed.len(), 1, "{removed:?}");
    assert!(removed[0].ends_with("tmp/20260410T000000Z"), "{removed:?}");
    assert!(dir_names(&env.path("backups/tmp")).is_empty());
    // The real snapshot is untouched.
    assert_eq!(on_disk(&env), [id_of("2026-04-05")]);
    let run = env.cairn(&["validate", "--all"]);
    assert_eq!(run.code, 0, "{}", run.stdout);
}

const EMPTY_POLICY: &str = "\n[retention]\nkeep_daily = 0\nkeep_weekly = 0\nkeep_monthly = 0\n";

#[test]
fn empty_policy_is_refused_unless_allowed() {
    let env = env_with(&format!("{CONFIG}{EMPTY_POLICY}"));
    let ids = seed(&env, &["2026-04-05", "2026-04-06"]);
    for extra in [&[][..], &["--confirm"][..]] {
        let mut args = vec!["prune"];
        args.extend_from_slice(extra);
        let run = env.cairn(&args);
        assert_eq!(run.code, 2, "{args:?}: {}\n{}", run.stdout, run.stderr);
        assert!(
            run.stderr.contains("--allow-empty-policy"),
            "the message should name the flag: {}",
            run.stderr
        );
        assert_eq!(on_disk(&env), ids);
    }

    let plan = prune(&env, &["--allow-empty-policy"]);
    assert!(plan.keep_ids().is_empty());
    assert_eq!(plan.delete_ids(), ids);
    assert_eq!(on_disk(&env), ids);
    let done = prune(&env, &["--allow-empty-policy", "--confirm"]);
    assert_eq!(done.deleted_ids(), ids);
    assert!(on_disk(&env).is_empty());
}

#[test]
fn zero_counts_with_a_pin_are_not_an_empty_policy() {
    let env = env_with(&format!("{CONFIG}{EMPTY_POLICY}"));
    let ids = seed(&env, &["2026-04-05", "2026-04-06"]);
    let run = env.cairn(&["pin", &ids[0]]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let done = prune(&env, &["--confirm"]);
    assert_eq!(done.keep_ids(), [ids[0].clone()]);
    assert_eq!(done.reasons(&ids[0]), ["pinned"]);
    assert_eq!(done.deleted_ids(), [ids[1].clone()]);
    assert_eq!(on_disk(&env), [ids[0].clone()]);
}

#[test]
fn retention_counts_come_from_the_config() {
    let env = env_with(&format!(
        "{CONFIG}\n[retention]\nkeep_daily = 2\nkeep_weekly = 1\nkeep_monthly = 1\n"
    ));
    // Mar 1 (a Sunday and a 1st), Mar 8 and Mar 15 (Sundays), Apr 1 (a 1st,
    // Wednesday), Apr 9, 10, 11.
    let dates = [
        "2026-03-01",
        "2026-03-08",
        "2026-03-15",
        "2026-04-01",
        "2026-04-09",
        "2026-04-10",
        "2026-04-11",
    ];
    seed(&env, &dates);
    let plan = prune(&env, &[]);
    assert_eq!(plan.reasons(&id_of("2026-04-11")), ["daily"]);
    assert_eq!(plan.reasons(&id_of("2026-04-10")), ["daily"]);
    assert_eq!(plan.reasons(&id_of("2026-03-15")), ["weekly"]);
    assert_eq!(plan.reasons(&id_of("2026-04-01")), ["monthly"]);
    assert_eq!(plan.keep_ids().len(), 4);
    assert_eq!(
        plan.delete_ids(),
        [
            id_of("2026-03-01"),
            id_of("2026-03-08"),
            id_of("2026-04-09")
        ]
    );
}

#[test]
fn human_prune_output_shows_ids_reasons_and_a_summary() {
    let env = env();
    let mut dates = days("2026-04", 5, 11);
    dates.extend(["2026-03-22".into(), "2026-03-25".into()]);
    seed(&env, &refs(&dates));
    let pinned = id_of("2026-03-25");
    let run = env.cairn(&["pin", &pinned]);
    assert_eq!(run.code, 0);
    let deleted = env.snapshot(&["--at", "2026-03-24T12:00:00Z"]);

    let line_of = |out: &str, id: &str| -> String {
        out.lines()
            .find(|l| l.split_whitespace().any(|w| w == id))
            .unwrap_or_else(|| panic!("{id} not in:\n{out}"))
            .to_owned()
    };

    let run = env.cairn(&["prune"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let out = &run.stdout;
    for d in days("2026-04", 5, 11) {
        let line = line_of(out, &id_of(&d));
        assert!(line.contains("keep"), "{line}");
        assert!(line.contains("daily"), "{line}");
    }
    let line = line_of(out, &id_of("2026-03-22"));
    assert!(line.contains("keep") && line.contains("weekly"), "{line}");
    let line = line_of(out, &pinned);
    assert!(line.contains("keep") && line.contains("pinned"), "{line}");
    let line = line_of(out, &deleted);
    assert!(line.contains("delete"), "{line}");
    assert!(!line.contains("keep"), "{line}");
    let summary = out.lines().last().unwrap();
    assert!(summary.contains("dry run"), "{summary}");
    assert!(summary.contains("keep 9"), "{summary}");
    assert!(summary.contains("delete 1"), "{summary}");
    assert!(summary.contains("--confirm"), "{summary}");
    assert_eq!(on_disk(&env).len(), 10);

    let run = env.cairn(&["prune", "--confirm"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let line = line_of(&run.stdout, &deleted);
    assert!(line.contains("delete"), "{line}");
    let summary = run.stdout.lines().last().unwrap();
    assert!(summary.contains("keep 9"), "{summary}");
    assert!(summary.contains("deleted 1"), "{summary}");
    assert!(!summary.contains("dry run"), "{summary}");
    assert_eq!(on_disk(&env).len(), 9);
}

#[test]
fn dry_run_and_confirm_print_the_same_plan() {
    let env = env();
    let mut dates = days("2026-04", 1, 11);
    dates.extend([
        "2026-03-01".into(),
        "2026-03-15".into(),
        "2026-03-17".into(),
    ]);
    seed(&env, &refs(&dates));
    let dry = prune(&env, &[]);
    let real = prune(&env, &["--confirm"]);
    assert_eq!(dry.json["keep"], real.json["keep"]);
    assert_eq!(dry.delete_ids(), real.delete_ids());
    assert_eq!(real.deleted_ids(), dry.delete_ids());
    assert_eq!(on_disk(&env), dry.keep_ids());
}

/// A damaged snapshot must not take a retention slot (pushing a good older
/// one out) and must not be deleted behind the operator's back.
#[test]
fn damaged_snapshot_takes_no_slot_and_is_kept_for_inspection() {
    let env = Env::empty();
    std::fs::create_dir_all(env.path("config")).unwrap();
    std::fs::write(env.path("config/registry.json"), "{}\n").unwrap();
    env.write_config(
        "repository = \"backups\"\n[retention]\nkeep_daily = 2\nkeep_weekly = 0\nkeep_monthly = 0\n[[store]]\nname = \"registry\"\nkind = \"registry-json\"\npath = \"config/registry.json\"\n",
    );
    let old = env.snapshot(&["--at", "2026-03-02T12:00:00Z"]);
    let good = env.snapshot(&["--at", "2026-03-03T12:00:00Z"]);
    let damaged = env.snapshot(&["--at", "2026-03-09T12:00:00Z"]);
    env.unlock_snapshot(&damaged);
    std::fs::remove_file(env.snapshot_dir(&damaged).join("manifest.json")).unwrap();

    let run = env.cairn(&["--json", "prune", "--confirm"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let plan = run.json();
    let keep: Vec<(String, Vec<String>)> = plan["keep"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            let reasons = k["reasons"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r.as_str().unwrap().to_owned())
                .collect();
            (k["id"].as_str().unwrap().to_owned(), reasons)
        })
        .collect();
    assert!(
        keep.contains(&(good.clone(), vec!["daily".to_owned()])),
        "{keep:?}"
    );
    assert!(
        keep.contains(&(old.clone(), vec!["daily".to_owned()])),
        "{keep:?}"
    );
    assert!(
        keep.contains(&(damaged.clone(), vec!["damaged".to_owned()])),
        "{keep:?}"
    );
    assert!(env.snapshot_dir(&damaged).exists());
    assert!(env.snapshot_dir(&old).exists() && env.snapshot_dir(&good).exists());
}

// ---------------------------------------------------------------------------
// after a restore (safety-net issue, defect A)

/// The live data after a bad change the operator restores away from (and
/// may still want back: the pre-restore snapshot holds it).
const BAD_CHANGE: &[u8] = b"{\"projects\":[{\"id\":\"half-migrated\"}]}\n";

/// `cairn restore ID --confirm-service-stopped`, asserting success; returns
/// the pre-restore snapshot's id.
fn restore_live(env: &Env, id: &str) -> String {
    let run = env.cairn(&["--json", "restore", id, "--confirm-service-stopped"]);
    assert_eq!(run.code, 0, "restore {id}: {}\n{}", run.stdout, run.stderr);
    run.json()["pre_restore_snapshot"]
        .as_str()
        .expect("a pre-restore snapshot")
        .to_owned()
}

/// The pre-restore snapshot is newer than the snapshot it was taken before
/// restoring, so as a calendar candidate it took the day's daily slot and
/// the nightly prune deleted the good snapshot the operator had just
/// restored.
#[test]
fn the_prune_after_a_restore_keeps_the_restored_snapshot() {
    let env = env();
    let good = env.snapshot(&[]);
    std::fs::write(env.path("registry.json"), BAD_CHANGE).unwrap();
    let pre = restore_live(&env, &good);
    assert_eq!(
        std::fs::read(env.path("registry.json")).unwrap(),
        b"{\"projects\":[]}\n"
    );

    let plan = prune(&env, &["--confirm"]);
    assert!(plan.deleted_ids().is_empty(), "{}", plan.json);
    assert!(
        plan.reasons(&good).contains(&"restored".to_owned()),
        "{}",
        plan.json
    );
    assert_eq!(plan.reasons(&pre), ["pre_restore"]);
    assert!(env.snapshot_dir(&good).is_dir());
    let run = env.cairn(&["validate", &good]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);

    let run = env.cairn(&["prune"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let line = run
        .stdout
        .lines()
        .find(|l| l.contains(&pre))
        .unwrap_or_else(|| panic!("{pre} not in:\n{}", run.stdout));
    assert!(
        line.contains("keep") && line.contains("pre_restore"),
        "{line}"
    );
}

/// Restore prints the pre-restore snapshot as "your way back"; the next
/// night's snapshot must not push it out.
#[test]
fn the_pre_restore_snapshot_survives_the_next_nightly_prune() {
    let env = env();
    let good = env.snapshot(&[]);
    std::fs::write(env.path("registry.json"), BAD_CHANGE).unwrap();
    let pre = restore_live(&env, &good);
    prune(&env, &["--confirm"]);

    let nightly = env.snapshot(&[]);
    let plan = prune(&env, &["--confirm"]);
    assert!(plan.deleted_ids().is_empty(), "{}", plan.json);
    assert_eq!(plan.reasons(&pre), ["pre_restore"]);
    assert!(plan.reasons(&good).contains(&"restored".to_owned()));
    assert!(plan.reasons(&nightly).contains(&"daily".to_owned()));
    assert_eq!(on_disk(&env), sorted(vec![good, pre.clone(), nightly]));
    // Still the way back: it restores.
    let out = tempfile::tempdir().unwrap();
    let run = env.cairn(&["restore", &pre, "--to", out.path().to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(
        std::fs::read(out.path().join("registry/registry.json")).unwrap(),
        BAD_CHANGE
    );
}

/// Once `keep_pre_restore_days` have passed, neither snapshot is special:
/// the pre-restore one (which never takes a calendar slot) goes, and the
/// restored one competes for slots like any other.
#[test]
fn pre_restore_and_restored_snapshots_are_pruned_normally_once_the_window_passed() {
    let policy = "\n[retention]\nkeep_daily = 2\nkeep_weekly = 0\nkeep_monthly = 0\n";
    let env = env_with(&format!("{CONFIG}{policy}"));
    let ago = |days: i64, hours: i64| {
        (chrono::Utc::now() - chrono::Duration::days(days) - chrono::Duration::hours(hours))
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    };
    // A restore ten days ago, recorded the way restore records it; then
    // two nightlies since.
    let good = env.snapshot(&["--at", &ago(10, 1)]);
    let pre = env.snapshot(&["--at", &ago(10, 0), "--tag", "pre-restore"]);
    env.edit_manifest(&pre, |m| m.restore_of = Some(good.clone()));
    let nightlies = vec![
        env.snapshot(&["--at", &ago(2, 0)]),
        env.snapshot(&["--at", &ago(1, 0)]),
    ];

    // Inside a longer window both are kept, and the pre-restore snapshot
    // still takes no daily slot.
    env.write_config(&format!("{CONFIG}{policy}keep_pre_restore_days = 14\n"));
    let plan = prune(&env, &[]);
    assert_eq!(plan.reasons(&pre), ["pre_restore"]);
    assert_eq!(plan.reasons(&good), ["restored"]);
    for id in &nightlies {
        assert_eq!(plan.reasons(id), ["daily"], "{id}");
    }

    // The default window (7 days) has passed.
    env.write_config(&format!("{CONFIG}{policy}"));
    let plan = prune(&env, &["--confirm"]);
    assert_eq!(plan.deleted_ids(), sorted(vec![good, pre]));
    assert_eq!(plan.keep_ids(), nightlies);
    assert_eq!(on_disk(&env), nightlies);
}
