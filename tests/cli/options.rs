//! Plug-in options are checked when the config is loaded: a value out of
//! range, negative or of the wrong type is exit 2 naming the store, the
//! option and what it accepts, for every command and before any hook or
//! file is touched — never a panic and never a silently huge wait (SQLite
//! takes its busy timeout in milliseconds as a C int).
//!
//! Fails without `StoreConfig::seconds_option`'s bound and type check, and
//! `StoreConfig::path_option`'s refusal of an empty path.

use crate::support::{self, Env};

fn assert_refused(env: &Env, config: &str, needles: &[&str]) {
    env.write_config(config);
    for args in [
        &["list"][..],
        &["snapshot"][..],
        &["--json", "validate", "--all"][..],
    ] {
        let run = env.cairn(args);
        assert_eq!(
            run.code, 2,
            "{args:?} {needles:?}:\n{}\n{}",
            run.stdout, run.stderr
        );
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
        for needle in needles {
            assert!(
                run.stderr.contains(needle),
                "{args:?}: the error does not say {needle:?}:\n{}",
                run.stderr
            );
        }
    }
    assert!(support::dir_names(&env.path("backups/snapshots")).is_empty());
}

#[test]
fn timeouts_out_of_range_or_of_the_wrong_type_are_exit_2_naming_the_range() {
    let env = Env::new();
    // The largest busy timeout SQLite can take: i32::MAX milliseconds.
    let sqlite = |v: &str| {
        support::CONFIG.replace(
            "path = \"data/atocore.db\"",
            &format!("path = \"data/atocore.db\"\nbusy_timeout_seconds = {v}"),
        )
    };
    let chroma = |v: &str| {
        support::CONFIG.replace(
            "lock_file = \"data/.ingest.lock\"",
            &format!("lock_file = \"data/.ingest.lock\"\nlock_timeout_seconds = {v}"),
        )
    };
    for value in ["2147484", "-1", "\"x\"", "1.5", "9223372036854775807", "[]"] {
        assert_refused(
            &env,
            &sqlite(value),
            &["busy_timeout_seconds", "\"db\"", "from 0 to 2147483", value],
        );
        assert_refused(
            &env,
            &chroma(value),
            &[
                "lock_timeout_seconds",
                "\"chroma\"",
                "from 0 to 86400",
                value,
            ],
        );
    }
    assert_refused(
        &env,
        &chroma("86401"),
        &["lock_timeout_seconds", "from 0 to 86400"],
    );
    // The bounds themselves are accepted.
    for config in [sqlite("2147483"), chroma("86400"), sqlite("0"), chroma("0")] {
        env.write_config(&config);
        let run = env.cairn(&["list"]);
        assert_eq!(run.code, 0, "{config}\n{}", run.stderr);
    }
}

#[test]
fn a_lock_file_that_is_not_a_path_is_exit_2() {
    let env = Env::new();
    for (value, needle) in [
        ("\"\"", "must not be empty"),
        ("5", "must be a string path"),
    ] {
        let config = support::CONFIG.replace(
            "lock_file = \"data/.ingest.lock\"",
            &format!("lock_file = {value}"),
        );
        assert_refused(&env, &config, &["lock_file", "\"chroma\"", needle]);
    }
}
