//! The rough edges of issue 17, point 7, each through the real binary.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use crate::support::{self, Env, Run, CAIRN};

fn tempdir_arg(dir: &tempfile::TempDir, name: &str) -> String {
    dir.path().join(name).to_str().unwrap().to_owned()
}

#[test]
fn latest_works_on_every_command_that_takes_an_id() {
    let env = Env::new();
    let first = env.snapshot(&[]);
    let latest = env.snapshot(&["--tag", "newest"]);
    let out = tempfile::tempdir().unwrap();
    let to = tempdir_arg(&out, "to");
    let scratch = tempdir_arg(&out, "scratch");
    std::fs::create_dir(&scratch).unwrap();
    let cases: Vec<Vec<&str>> = vec![
        vec!["show", "--latest"],
        vec!["pin", "--latest"],
        vec!["unpin", "--latest"],
        vec!["validate", "--latest"],
        vec!["repair", "--latest"],
        vec!["drill", "--latest", "--scratch", &scratch],
        vec!["ls", "--latest", "registry"],
        vec!["diff", &first, "--latest"],
        vec!["diff", "--latest"],
        vec!["restore", "--latest", "--to", &to],
    ];
    for args in cases {
        let mut all = vec!["--json"];
        all.extend(&args);
        let run = env.cairn(&all);
        assert_eq!(run.code, 0, "{args:?}: {}\n{}", run.stdout, run.stderr);
        assert!(
            !run.stderr.contains("-- --latest"),
            "{args:?}: {}",
            run.stderr
        );
        let doc = run.json();
        let named = doc["id"]
            .as_str()
            .or(doc["b"].as_str())
            .or(doc["results"][0]["id"].as_str());
        assert_eq!(named, Some(latest.as_str()), "{args:?}: {doc}");
    }
    let diff = env.cairn(&["--json", "diff", "--latest"]).json();
    assert_eq!(diff["a"], first.as_str());
    // cat takes it too.
    let cat = Command::new(CAIRN)
        .args(env.with_config(&["cat", "--latest", "registry"]))
        .output()
        .unwrap();
    assert_eq!(cat.status.code(), Some(0));
    assert_eq!(
        cat.stdout,
        std::fs::read(env.path("config/project-registry.json")).unwrap()
    );
    // pin --latest pinned the newest and only it.
    let list = env.cairn(&["--json", "pin", "--latest"]).json();
    assert_eq!(list["id"], latest.as_str());
    // And an id with --latest is a usage error, not a silent choice.
    let both = env.cairn(&["show", &first, "--latest"]);
    assert_eq!(both.code, 2, "{}", both.stderr);
}

#[test]
fn init_writes_where_config_says_mode_0600_under_a_group_writable_umask() {
    let env = Env::empty();
    let run = support::run_with_umask(&env, 0o002, &["--config", "other.toml", "init"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        !env.path("cairn.toml").exists(),
        "wrote ./cairn.toml anyway"
    );
    let mode = std::fs::metadata(env.path("other.toml"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // The next command reads it, as root too (it is not group-writable).
    let list = env.cairn(&["--config", "other.toml", "list"]);
    assert_eq!(list.code, 0, "{}", list.stderr);
    // --path is init's own and wins over --config.
    let run = env.cairn(&["--config", "other.toml", "init", "--path", "third.toml"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(env.path("third.toml").is_file());
}

#[test]
fn version_names_the_release_and_the_commit() {
    let run: Run = Command::new(CAIRN)
        .arg("--version")
        .output()
        .unwrap()
        .into();
    assert_eq!(run.code, 0);
    let line = run.stdout.trim();
    assert!(line.starts_with("cairn 0.1.0 (commit "), "{line}");
    assert!(!line.contains("0.0.0"), "{line}");
    let commit = line
        .trim_start_matches("cairn 0.1.0 (commit ")
        .trim_end_matches(')');
    assert!(
        commit == "unknown" || (commit.len() >= 7 && commit.bytes().all(|b| b.is_ascii_hexdigit())),
        "{commit:?}"
    );
}

#[test]
fn show_counts_in_words_and_prints_values_not_json() {
    let env = Env::new();
    let id = env.snapshot(&[]);
    let run = env.cairn(&["show", &id]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("1 entry, 1 file,"), "{}", run.stdout);
    assert!(!run.stdout.contains("1 entries"), "{}", run.stdout);
    assert!(!run.stdout.contains("1 files"), "{}", run.stdout);
    assert!(run.stdout.contains("journal_mode: wal"), "{}", run.stdout);
    assert!(!run.stdout.contains("\"wal\""), "{}", run.stdout);
    assert!(
        !run.stdout.contains("{\""),
        "no raw JSON object: {}",
        run.stdout
    );
    assert!(run.stdout.contains("in 3 stores"), "{}", run.stdout);
}

#[test]
fn a_failing_hook_says_how_it_exited_once() {
    let env = Env::new();
    let config = std::fs::read_to_string(env.path("cairn.toml")).unwrap();
    env.write_config(&format!(
        "{config}\n[hooks]\nbefore_snapshot = [\"sh\", \"-c\", \"exit 7\"]\n"
    ));
    let run = env.cairn(&["snapshot"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("exited with code 7"), "{}", run.stderr);
    assert!(!run.stderr.contains("exit status"), "{}", run.stderr);
}

#[test]
fn a_busy_repository_names_the_holder_and_says_it_waits() {
    let env = Env::new();
    env.snapshot(&[]);
    let config = std::fs::read_to_string(env.path("cairn.toml")).unwrap();
    let marker = env.path("hook-started");
    let release = env.path("release");
    // The first run holds the lock in its before_snapshot hook until the
    // test lets it go.
    env.write_config(&format!(
        "{}\n[hooks]\nbefore_snapshot = [\"sh\", \"-c\", \"touch {m}; while [ ! -e {r} ]; do sleep 0.05; done\"]\n",
        config.replace("lock_wait_seconds = 5", "lock_wait_seconds = 1"),
        m = marker.display(),
        r = release.display()
    ));
    let mut holder = Command::new(CAIRN)
        .args(env.with_config(&["snapshot"]))
        .current_dir(&env.root)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    while !marker.exists() {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let run = env.cairn(&["pin", "--latest"]);
    std::fs::write(&release, b"").unwrap();
    let status = holder.wait().unwrap();
    assert!(status.success());

    assert_eq!(run.code, 3, "{}", run.stderr);
    let lock = env.path("backups/lock");
    assert!(
        run.stderr.contains(lock.to_str().unwrap()),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(&format!("held by pid {}", holder.id())),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("snapshot"), "{}", run.stderr);
    assert!(run.stderr.contains("since 20"), "{}", run.stderr);
    // It said so while it waited, before giving up.
    let waiting = run
        .stderr
        .lines()
        .position(|l| l.starts_with("waiting up to 1s for the lock"))
        .unwrap_or_else(|| panic!("no waiting line: {}", run.stderr));
    let error = run
        .stderr
        .lines()
        .position(|l| l.starts_with("error:"))
        .unwrap();
    assert!(waiting < error, "{}", run.stderr);
}

#[test]
fn completions_help_lists_the_shells_and_the_readme_installs_locked() {
    let run: Run = Command::new(CAIRN)
        .args(["completions", "--help"])
        .output()
        .unwrap()
        .into();
    assert_eq!(run.code, 0);
    for shell in ["bash", "elvish", "fish", "powershell", "zsh"] {
        assert!(run.stdout.contains(shell), "{shell}: {}", run.stdout);
    }
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let install: Vec<&str> = readme
        .lines()
        .filter(|l| l.starts_with("cargo install"))
        .collect();
    assert!(!install.is_empty());
    assert!(
        install.iter().all(|l| l.contains("--locked")),
        "{install:?}"
    );
}

#[test]
fn a_refused_live_restore_hints_the_command_with_the_real_id() {
    let env = Env::new();
    let id = env.snapshot(&[]);
    for (args, shown) in [
        (vec!["restore", id.as_str()], id.as_str()),
        (vec!["restore", "--latest"], "--latest"),
    ] {
        let run = env.cairn(&args);
        assert_eq!(run.code, 3, "{}", run.stderr);
        let hint = run
            .stderr
            .lines()
            .find(|l| l.starts_with("hint:"))
            .unwrap_or_else(|| panic!("no hint: {}", run.stderr));
        assert!(
            hint.contains(&format!(
                "`cairn restore {shown} --confirm-service-stopped`"
            )),
            "{hint}"
        );
        assert!(!hint.contains('<'), "a placeholder in {hint}");
    }
}
