//! As root, cairn refuses a config (and a hook named by absolute path)
//! that anyone but root could change, and never reads ./cairn.toml from
//! the current directory (docs/security.md). These need root: they are
//! `#[ignore = "needs root"]`, and .ci/run runs them as root.

use std::os::unix::fs::{chown, PermissionsExt};
use std::path::Path;

use crate::support::{self, Env, Run};

/// The unprivileged `nobody` of most systems; no account needs to exist
/// for a file to be owned by it.
const NOBODY: u32 = 65534;

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The standard config with a `before_snapshot` hook that creates
/// `marker`, so a test can tell whether the config was acted on.
fn config_with_marker_hook(env: &Env, program: &str, marker: &Path) -> String {
    let config = support::CONFIG.replacen(
        "[[store]]",
        &format!(
            "[hooks]\nbefore_snapshot = [{program:?}, {:?}]\n\n[[store]]",
            marker.to_str().unwrap()
        ),
        1,
    );
    env.write_config(&config);
    config
}

fn assert_refused(run: &Run, needles: &[&str]) {
    assert_eq!(run.code, 2, "{}\n{}", run.stdout, run.stderr);
    for needle in needles {
        assert!(
            run.stderr.contains(needle),
            "stderr does not name {needle:?}:\n{}",
            run.stderr
        );
    }
}

#[test]
#[ignore = "needs root"]
fn a_config_in_a_directory_another_user_owns_is_refused_and_its_hook_never_runs() {
    support::require_root();
    let env = Env::new();
    let marker = env.path("hook-ran");
    config_with_marker_hook(&env, "touch", &marker);
    set_mode(&env.root, 0o755);
    chown(&env.root, Some(NOBODY), None).unwrap();
    let config = env.path("cairn.toml");
    let run = env.cairn(&["snapshot"]);
    assert_refused(
        &run,
        &[
            config.to_str().unwrap(),
            &format!("{} (owner uid {NOBODY}, mode 0755)", env.root.display()),
            "not owned by root",
        ],
    );
    assert!(!marker.exists(), "the hook ran");
    assert!(!env.path("backups").exists(), "the config was acted on");
}

#[test]
#[ignore = "needs root"]
fn a_config_another_user_owns_is_refused() {
    support::require_root();
    let env = Env::new();
    let config = env.path("cairn.toml");
    chown(&config, Some(NOBODY), None).unwrap();
    let run = env.cairn(&["list"]);
    assert_refused(
        &run,
        &[&format!(
            "file {} (owner uid {NOBODY}, mode 0600)",
            config.display()
        )],
    );
}

#[test]
#[ignore = "needs root"]
fn a_group_writable_config_is_refused() {
    support::require_root();
    let env = Env::new();
    let marker = env.path("hook-ran");
    config_with_marker_hook(&env, "touch", &marker);
    let config = env.path("cairn.toml");
    set_mode(&config, 0o660);
    let run = env.cairn(&["snapshot"]);
    assert_refused(
        &run,
        &[
            &format!("file {} (owner uid 0, mode 0660)", config.display()),
            "writable by its group or other users",
        ],
    );
    assert!(!marker.exists(), "the hook ran");
}

/// A world-writable directory on the way is refused; the same directory
/// with the sticky bit (like /tmp) is not, since others cannot replace
/// root's entries in it.
#[test]
#[ignore = "needs root"]
fn a_world_writable_directory_on_the_path_is_refused_unless_sticky() {
    support::require_root();
    let env = Env::new();
    let etc = env.path("etc");
    std::fs::create_dir(&etc).unwrap();
    let config = etc.join("cairn.toml");
    std::fs::write(
        &config,
        support::CONFIG.replace("\"backups\"", "\"../backups\""),
    )
    .unwrap();
    set_mode(&config, 0o600);
    set_mode(&etc, 0o777);
    let run = env.cairn(&["--config", config.to_str().unwrap(), "list"]);
    assert_refused(
        &run,
        &[&format!(
            "directory {} (owner uid 0, mode 0777)",
            etc.display()
        )],
    );
    set_mode(&etc, 0o1777);
    let run = env.cairn(&["--config", config.to_str().unwrap(), "list"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
}

#[test]
#[ignore = "needs root"]
fn a_hook_another_user_owns_is_refused_at_config_load() {
    support::require_root();
    let env = Env::new();
    let marker = env.path("hook-ran");
    let hook = env.path("hook.sh");
    std::fs::write(&hook, "#!/bin/sh\ntouch \"$1\"\n").unwrap();
    set_mode(&hook, 0o755);
    chown(&hook, Some(NOBODY), None).unwrap();
    config_with_marker_hook(&env, hook.to_str().unwrap(), &marker);
    for args in [&["snapshot"][..], &["list"]] {
        let run = env.cairn(args);
        assert_refused(
            &run,
            &[
                "before_snapshot",
                &format!("file {} (owner uid {NOBODY}, mode 0755)", hook.display()),
            ],
        );
    }
    assert!(!marker.exists(), "the hook ran");

    // Root's own hook script runs.
    chown(&hook, Some(0), None).unwrap();
    env.snapshot(&[]);
    assert!(marker.exists(), "the trusted hook did not run");
}

#[test]
#[ignore = "needs root"]
fn as_root_the_current_directorys_cairn_toml_is_not_read() {
    support::require_root();
    let env = Env::new();
    let marker = env.path("hook-ran");
    config_with_marker_hook(&env, "touch", &marker);
    for args in [&["list"][..], &["snapshot"]] {
        let run: Run = std::process::Command::new(support::CAIRN)
            .current_dir(&env.root)
            .args(args)
            .env_remove("CAIRN_CONFIG")
            .env_remove("CAIRN_FAILPOINT")
            .output()
            .unwrap()
            .into();
        assert_refused(&run, &["--config PATH", "./cairn.toml"]);
    }
    assert!(!marker.exists(), "the hook ran");
    assert!(!env.path("backups").exists(), "the config was acted on");
}

#[test]
#[ignore = "needs root"]
fn as_root_a_root_owned_0600_config_works_and_runs_its_hook() {
    support::require_root();
    let env = Env::new();
    let marker = env.path("hook-ran");
    config_with_marker_hook(&env, "touch", &marker);
    set_mode(&env.path("cairn.toml"), 0o600);
    let id = env.snapshot(&[]);
    assert!(marker.exists(), "the hook did not run");
    assert_eq!(env.listed_ids(), [id]);
}
