//! Drill checks of your own (issue 17, point 4): a `sqlite` store's
//! `drill_checks` and any store's `drill_command`, through the real
//! `cairn drill`, each listed with pass/fail and the value seen.

use serde_json::Value;

use crate::support::Env;

const STORES: &str = r#"repository = "backups"
lock_wait_seconds = 5

[[store]]
name = "registry"
kind = "registry-json"
path = "config/project-registry.json"
optional = true

[[store]]
name = "chroma"
kind = "chroma-dir"
path = "data/chroma"
lock_file = "data/.ingest.lock"
"#;

fn env_with(db_extra: &str) -> Env {
    let env = Env::new();
    env.write_config(&format!(
        "{STORES}\n[[store]]\nname = \"db\"\nkind = \"sqlite\"\npath = \"data/atocore.db\"\n{db_extra}\n"
    ));
    env
}

fn drill(env: &Env) -> (i32, Value, String) {
    let scratch = tempfile::tempdir().unwrap();
    let run = env.cairn(&[
        "--json",
        "drill",
        "--scratch",
        scratch.path().to_str().unwrap(),
    ]);
    let human = env.cairn(&["drill", "--scratch", scratch.path().to_str().unwrap()]);
    assert_eq!(run.code, human.code, "{}", human.stderr);
    (run.code, run.json(), human.stdout)
}

fn check<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {doc}"))
}

#[test]
fn sql_checks_pass_fail_and_show_the_value_seen() {
    let env = env_with(
        r#"drill_checks = [
  { name = "one memory", sql = "SELECT count(*) FROM memories", expect = 1 },
  { name = "project name", sql = "SELECT name FROM projects WHERE id = 'p01'", expect = "P01 Example" },
  { name = "same as live", sql = "SELECT count(*) FROM projects", expect_live = true },
  { name = "wrong on purpose", sql = "SELECT count(*) FROM memories", expect = "2" },
]"#,
    );
    env.snapshot(&[]);
    let (code, doc, human) = drill(&env);
    assert_eq!(code, 1, "one check fails: {doc}");
    for name in ["one memory", "project name", "same as live"] {
        assert_eq!(check(&doc, name)["ok"], true, "{name}: {doc}");
        assert_eq!(check(&doc, name)["store"], "db");
    }
    let wrong = check(&doc, "wrong on purpose");
    assert_eq!(wrong["ok"], false);
    assert_eq!(
        wrong["detail"],
        "SELECT count(*) FROM memories: got \"1\", expected \"2\""
    );
    assert!(
        human.contains("FAIL db           wrong on purpose       SELECT count(*) FROM memories: got \"1\", expected \"2\""),
        "{human}"
    );
    assert!(human.contains("pass db           one memory"), "{human}");

    // The live database moves on: the live comparison now fails, saying both values.
    env.db()
        .execute("INSERT INTO projects VALUES ('p02', 'Second')", [])
        .unwrap();
    let (_, doc, _) = drill(&env);
    let live = check(&doc, "same as live");
    assert_eq!(live["ok"], false);
    assert_eq!(
        live["detail"],
        "SELECT count(*) FROM projects: got \"1\", live \"2\""
    );
}

#[test]
fn a_check_cannot_write_to_the_copy_or_the_live_database() {
    let env = env_with(
        r#"drill_checks = [
  { sql = "DELETE FROM memories", expect_live = true },
  { sql = "SELECT 1; DELETE FROM memories", expect = "1" },
  { sql = "ATTACH 'data/atocore.db' AS live", expect = "x" },
]"#,
    );
    env.snapshot(&[]);
    let (code, doc, _) = drill(&env);
    assert_eq!(code, 1);
    for n in 1..=3 {
        let c = check(&doc, &format!("drill_check {n}"));
        assert_eq!(c["ok"], false, "{c}");
    }
    assert!(check(&doc, "drill_check 1")["detail"]
        .as_str()
        .unwrap()
        .contains("not a read-only query"));
    let rows: i64 = env
        .db()
        .query_row("SELECT count(*) FROM memories", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 1, "the live database lost rows");
    assert_eq!(env.cairn(&["validate", "--latest"]).code, 0);
}

#[test]
fn drill_command_runs_on_the_restored_copy() {
    let env = env_with(
        r#"drill_command = ["sh", "-c", "test \"$CAIRN_DRILL_PATH\" = \"$1\" && test \"$CAIRN_STORE\" = db && head -c 15 \"$1\" | grep -q 'SQLite format 3'", "sh", "{path}"]"#,
    );
    env.snapshot(&[]);
    let (code, doc, _) = drill(&env);
    assert_eq!(code, 0, "{doc}");
    let c = check(&doc, "drill_command");
    assert_eq!(c["ok"], true);
    assert_eq!(c["store"], "db");
    assert!(
        c["detail"].as_str().unwrap().contains("/db/atocore.db"),
        "{c}"
    );

    let env = env_with("drill_command = [\"false\"]");
    env.snapshot(&[]);
    let (code, doc, _) = drill(&env);
    assert_eq!(code, 1);
    assert_eq!(check(&doc, "drill_command")["ok"], false);
    assert!(
        check(&doc, "drill_command")["detail"]
            .as_str()
            .unwrap()
            .contains("exited with code 1"),
        "{doc}"
    );

    let env = env_with("drill_command = [\"sleep\", \"600\"]\ndrill_command_timeout_seconds = 1");
    env.snapshot(&[]);
    let (code, doc, _) = drill(&env);
    assert_eq!(code, 1);
    assert!(
        check(&doc, "drill_command")["detail"]
            .as_str()
            .unwrap()
            .contains("still running after 1s; killed"),
        "{doc}"
    );
}

#[test]
fn bad_drill_checks_are_config_errors_naming_the_option() {
    for bad in [
        "drill_checks = \"SELECT 1\"",
        "drill_checks = [{ sql = \"SELECT 1\" }]",
        "drill_checks = [{ sql = \"SELECT 1\", expect = \"1\", expect_live = true }]",
        "drill_checks = [{ sql = \"\", expect = \"1\" }]",
        "drill_checks = [{ sql = \"SELECT 1\", expect = \"1\", typo = 1 }]",
        "drill_command = []",
    ] {
        let env = env_with(bad);
        let run = env.cairn(&["list"]);
        assert_eq!(run.code, 2, "{bad}: {}", run.stderr);
        let key = if bad.starts_with("drill_command") {
            "drill_command"
        } else {
            "drill_checks"
        };
        assert!(
            run.stderr.contains(key) && run.stderr.contains("\"db\""),
            "{bad}: {}",
            run.stderr
        );
    }
}
