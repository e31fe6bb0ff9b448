//! Operator output (issue 8): `--json` purity, the `list` table, shell
//! completions, `init`, error and hint lines, no progress or escape codes
//! when stderr is not a terminal, exit codes in `--help`.

use crate::support::{self, Env, Run};

/// Every JSON document on stdout; panics if there is anything else.
fn documents(run: &Run) -> Vec<serde_json::Value> {
    serde_json::Deserializer::from_str(&run.stdout)
        .into_iter::<serde_json::Value>()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| {
            panic!(
                "stdout is not pure JSON ({e}):\n{}\nstderr:\n{}",
                run.stdout, run.stderr
            )
        })
}

fn assert_one_document(run: &Run, what: &str) -> serde_json::Value {
    let docs = documents(run);
    assert_eq!(
        docs.len(),
        1,
        "{what}: stdout holds {} JSON documents:\n{}",
        docs.len(),
        run.stdout
    );
    docs.into_iter().next().unwrap()
}

const ESC: char = '\u{1b}';

#[test]
fn json_is_one_document_on_every_command_even_with_verbose() {
    let env = Env::new();
    let out = tempfile::tempdir().unwrap();
    for verbose in [false, true] {
        let v = |args: &[&str]| -> Vec<String> {
            let mut all: Vec<String> = Vec::new();
            if verbose {
                all.push("-v".into());
            }
            all.push("--json".into());
            all.extend(args.iter().map(|s| s.to_string()));
            all
        };
        let run_ok = |args: Vec<String>, expect: i32| -> serde_json::Value {
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            let run = env.cairn(&refs);
            assert_eq!(
                run.code, expect,
                "{refs:?}: exit {}\n{}\n{}",
                run.code, run.stdout, run.stderr
            );
            assert_one_document(&run, &refs.join(" "))
        };

        let snap = run_ok(v(&["snapshot"]), 0);
        let id = snap["id"].as_str().unwrap().to_owned();
        assert!(run_ok(v(&["list"]), 0)["snapshots"].is_array());
        assert_eq!(run_ok(v(&["show", &id]), 0)["id"], id.as_str());
        assert!(run_ok(v(&["validate", &id]), 0)["results"].is_array());
        assert!(run_ok(v(&["validate", "--all", "--quick"]), 0)["results"].is_array());
        let dir = out.path().join(format!("to-{verbose}"));
        let restored = run_ok(v(&["restore", &id, "--to", dir.to_str().unwrap()]), 0);
        assert!(restored["stores"].is_array());
        assert!(run_ok(v(&["prune"]), 0)["dry_run"].as_bool().unwrap());
        assert_eq!(run_ok(v(&["pin", &id]), 0)["pinned"], true);
        assert_eq!(run_ok(v(&["unpin", &id]), 0)["pinned"], false);
        let scratch = out.path().join(format!("scratch-{verbose}"));
        let drill = run_ok(v(&["drill", "--scratch", scratch.to_str().unwrap()]), 0);
        assert_eq!(drill["ok"], true);
        assert!(run_ok(v(&["stores"]), 0)["stores"].is_array());
        let starter = out.path().join(format!("starter-{verbose}.toml"));
        run_ok(v(&["init", "--path", starter.to_str().unwrap()]), 0);
        run_ok(v(&["completions", "bash"]), 0);
        // Failures are one document too.
        run_ok(v(&["restore", &id]), 3);
        run_ok(v(&["show", "../../etc"]), 2);
        let refs = v(&["show", "20200101T000000Z"]);
        let refs: Vec<&str> = refs.iter().map(String::as_str).collect();
        let missing = env.cairn(&refs);
        assert_ne!(missing.code, 0);
        assert_one_document(&missing, "show of a missing id");
    }
}

#[test]
fn verbose_logs_go_to_stderr() {
    let env = Env::new();
    env.snapshot(&[]);
    let quiet = env.cairn(&["--json", "list"]);
    let loud = env.cairn(&["-v", "--json", "list"]);
    assert_eq!(loud.code, 0, "{}", loud.stderr);
    assert!(!loud.stderr.trim().is_empty(), "-v logged nothing");
    // Same document either way (apart from nothing: list is deterministic).
    assert_eq!(quiet.json(), loud.json());
}

#[test]
fn verbose_logs_have_no_escape_codes_when_not_a_terminal() {
    let env = Env::new();
    let run = env.cairn(&["-v", "snapshot"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!run.stderr.trim().is_empty());
    assert!(!run.stderr.contains(ESC), "{:?}", run.stderr);
}

#[test]
fn quiet_prints_nothing_on_success() {
    let env = Env::new();
    let run = env.cairn(&["-q", "snapshot"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout, "");
    assert_eq!(run.stderr, "");
    // But --json still gets its document.
    let run = env.cairn(&["-q", "--json", "list"]);
    assert_one_document(&run, "-q --json list");
}

/// Column start offsets of `names` in the header line.
fn column_starts(header: &str, names: &[&str]) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut from = 0;
    for name in names {
        let at = header[from..]
            .find(name)
            .unwrap_or_else(|| panic!("header lacks {name}: {header:?}"))
            + from;
        starts.push(at);
        from = at + name.len();
    }
    starts
}

#[test]
fn list_is_an_aligned_table_with_human_sizes() {
    let env = Env::new();
    // Enough bytes for a MiB-sized snapshot.
    let big: Vec<u8> = (0..3 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(env.path("data/chroma/seg-0001/big.bin"), big).unwrap();
    let old = env.snapshot(&["--at", "2026-01-01T00:00:00Z", "--tag", "weekly-check"]);
    std::fs::remove_file(env.path("data/chroma/seg-0001/big.bin")).unwrap();
    let small = env.snapshot(&[]);
    let damaged = env.snapshot(&["--tag", "x"]);
    assert_eq!(env.cairn(&["pin", &old]).code, 0);
    env.unlock_snapshot(&damaged);
    std::fs::write(env.snapshot_dir(&damaged).join("manifest.json"), b"{}").unwrap();

    let run = env.cairn(&["list"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!run.stdout.contains(ESC));
    let lines: Vec<&str> = run.stdout.lines().collect();
    let names = [
        "ID", "CREATED", "TAGS", "PINNED", "STORES", "SIZE", "PROBLEM",
    ];
    let header = lines[0];
    assert!(header.starts_with("ID"), "{header:?}");
    let starts = column_starts(header, &names);
    let size_end = starts[5] + "SIZE".len();

    let rows: Vec<&str> = lines[1..]
        .iter()
        .copied()
        .filter(|l| l.len() > 16 && l.as_bytes()[8] == b'T')
        .collect();
    assert_eq!(rows.len(), 3, "{}", run.stdout);
    for (row, id) in rows.iter().zip([&old, &small, &damaged]) {
        assert!(row.starts_with(id.as_str()), "rows oldest first: {row:?}");
        let chars: Vec<char> = row.chars().collect();
        for (i, &start) in starts.iter().enumerate().skip(1) {
            if i == 5 || start >= chars.len() {
                continue; // SIZE is right-aligned; trailing cells may be empty
            }
            assert_eq!(
                chars[start - 1],
                ' ',
                "column {} does not start at {start} in {row:?}\n{}",
                names[i],
                run.stdout
            );
        }
        // SIZE is right-aligned: every cell ends where the header does.
        assert_ne!(
            chars[size_end - 1],
            ' ',
            "SIZE not aligned in {row:?}\n{}",
            run.stdout
        );
        if chars.len() > size_end {
            assert_eq!(chars[size_end], ' ', "SIZE not aligned in {row:?}");
        }
    }
    let cell = |row: &str, i: usize| -> String {
        let chars: Vec<char> = row.chars().collect();
        let end = starts.get(i + 1).copied().unwrap_or(chars.len());
        chars[starts[i].min(chars.len())..end.min(chars.len())]
            .iter()
            .collect::<String>()
            .trim()
            .to_owned()
    };
    let size = |row: &str| -> String {
        let chars: Vec<char> = row.chars().collect();
        let text: String = chars[starts[4]..size_end].iter().collect();
        let (_stores, size) = text.split_once(' ').unwrap();
        size.trim().to_owned()
    };
    let cell = |row: &str, i: usize| {
        if i == 4 {
            let c = cell(row, 4);
            c.split_whitespace().next().unwrap_or_default().to_owned()
        } else {
            cell(row, i)
        }
    };
    let big_size = size(rows[0]);
    assert!(big_size.ends_with("MiB"), "{big_size:?}\n{}", run.stdout);
    let small_size = size(rows[1]);
    assert!(
        small_size.ends_with("KiB"),
        "{small_size:?}\n{}",
        run.stdout
    );
    assert!(cell(rows[0], 1).starts_with("2026-01-01"), "{}", run.stdout);
    assert!(cell(rows[0], 2).contains("weekly-check"));
    assert!(!cell(rows[0], 3).is_empty(), "pinned shown: {}", run.stdout);
    assert!(cell(rows[1], 3).is_empty() || cell(rows[1], 3) == "no");
    assert!(cell(rows[1], 4).contains("db"));
    assert!(cell(rows[1], 6).is_empty(), "sound snapshot has no problem");
    assert!(
        cell(rows[2], 6).starts_with("manifest_"),
        "damaged snapshot names its problem: {}",
        run.stdout
    );
}

#[test]
fn completions_for_bash_zsh_and_fish() {
    let env = Env::empty();
    for shell in ["bash", "zsh", "fish"] {
        let run = env.cairn(&["completions", shell]);
        assert_eq!(run.code, 0, "{shell}: {}", run.stderr);
        assert!(!run.stdout.trim().is_empty(), "{shell}: empty script");
        assert!(run.stdout.contains("cairn"), "{shell}");
        for sub in ["snapshot", "restore", "drill", "prune", "validate"] {
            assert!(run.stdout.contains(sub), "{shell} script lacks {sub}");
        }
        assert!(
            run.stdout.contains("confirm-service-stopped"),
            "{shell} script completes flags too"
        );
    }
    let run = env.cairn(&["completions", "tcsh-or-so"]);
    assert_eq!(run.code, 2);
}

#[test]
fn init_refuses_to_overwrite() {
    let env = Env::new();
    let before = std::fs::read(env.path("cairn.toml")).unwrap();
    let run = env.cairn(&["init"]);
    assert_eq!(run.code, 2, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("cairn.toml"), "{}", run.stderr);
    assert_eq!(std::fs::read(env.path("cairn.toml")).unwrap(), before);

    std::fs::write(env.path("other.toml"), b"mine").unwrap();
    let run = env.cairn(&["init", "--path", "other.toml"]);
    assert_eq!(run.code, 2);
    assert_eq!(std::fs::read(env.path("other.toml")).unwrap(), b"mine");
}

#[test]
fn init_writes_a_starter_config_with_every_kind_and_its_options() {
    let env = Env::empty();
    let run = env.cairn(&["init"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let text = std::fs::read_to_string(env.path("cairn.toml")).unwrap();
    let stores = env.cairn(&["--json", "stores"]).json();
    for kind in stores["stores"].as_array().unwrap() {
        let name = kind["kind"].as_str().unwrap();
        assert!(text.contains(name), "starter lacks kind {name}");
        for option in kind["options"].as_array().unwrap() {
            let o = option["name"].as_str().unwrap();
            assert!(text.contains(o), "starter lacks {name}'s option {o}");
        }
    }
    for must in [
        "lock_file",
        "busy_timeout_seconds",
        "repository",
        "keep_daily",
    ] {
        assert!(text.contains(must), "starter lacks {must}");
    }
    // It is a config Cairn accepts as written.
    let run = env.cairn(&["list"]);
    assert_eq!(run.code, 0, "starter config rejected: {}", run.stderr);
}

fn error_and_hint(run: &Run) -> (String, Option<String>) {
    let error = run
        .stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_else(|| panic!("no error: line in {:?}", run.stderr))
        .to_owned();
    let hint = run
        .stderr
        .lines()
        .find(|l| l.starts_with("hint:"))
        .map(str::to_owned);
    (error, hint)
}

#[test]
fn restore_without_confirm_says_error_then_hint() {
    let env = Env::new();
    let id = env.snapshot(&[]);
    let run = env.cairn(&["restore", &id]);
    assert_eq!(run.code, 3);
    let (error, hint) = error_and_hint(&run);
    assert!(error.contains("--confirm-service-stopped"), "{error}");
    let hint = hint.expect("a hint line");
    assert!(hint.contains("--confirm-service-stopped"), "{hint}");
    assert!(hint.contains("stop"), "says what to stop: {hint}");
    assert_eq!(run.stdout, "", "errors go to stderr");
}

#[test]
fn busy_repository_says_error_then_hint() {
    let env = Env::new();
    env.write_config(&support::CONFIG.replace("lock_wait_seconds = 5", "lock_wait_seconds = 0"));
    env.snapshot(&[]);
    let lock_path = env.path("backups/lock");
    let lock = std::fs::File::options()
        .read(true)
        .write(true)
        .open(&lock_path)
        .unwrap();
    lock.lock().unwrap();
    let run = env.cairn(&["snapshot"]);
    let run_prune = env.cairn(&["prune", "--confirm"]);
    lock.unlock().unwrap();
    for run in [run, run_prune] {
        assert_eq!(run.code, 3, "{}\n{}", run.stdout, run.stderr);
        let (error, hint) = error_and_hint(&run);
        assert!(error.contains(lock_path.to_str().unwrap()), "{error}");
        assert!(
            hint.is_some(),
            "a hint for a busy repository: {}",
            run.stderr
        );
    }
    let snapshots = std::fs::read_dir(env.path("backups/snapshots"))
        .unwrap()
        .count();
    assert_eq!(snapshots, 1, "the refused snapshot wrote nothing");
}

#[test]
fn bad_id_says_error_naming_the_id() {
    let env = Env::new();
    env.snapshot(&[]);
    for bad in ["../../etc", "a/b", "..", "2026"] {
        for args in [
            vec!["show", bad],
            vec!["validate", bad],
            vec!["restore", bad, "--confirm-service-stopped"],
            vec!["pin", bad],
        ] {
            let run = env.cairn(&args);
            assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
            let (error, _) = error_and_hint(&run);
            assert!(error.contains(bad), "{args:?}: {error}");
            assert!(error.contains("snapshot id"), "{args:?}: {error}");
        }
    }
    // A well-formed id that does not exist is named too.
    let run = env.cairn(&["show", "20200101T000000Z"]);
    assert_ne!(run.code, 0);
    let (error, _) = error_and_hint(&run);
    assert!(error.contains("20200101T000000Z"), "{error}");
}

#[test]
fn no_progress_output_when_stderr_is_not_a_terminal() {
    let env = Env::new();
    let big: Vec<u8> = (0..8 * 1024 * 1024u32).map(|i| (i % 253) as u8).collect();
    std::fs::write(env.path("data/chroma/seg-0001/big.bin"), big).unwrap();
    let out = tempfile::tempdir().unwrap();
    let snap = env.cairn(&["snapshot"]);
    assert_eq!(snap.code, 0, "{}", snap.stderr);
    let id = env.cairn(&["--json", "list"]).json()["snapshots"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let runs = [
        snap,
        env.cairn(&["validate", "--all"]),
        env.cairn(&[
            "restore",
            &id,
            "--to",
            out.path().join("r").to_str().unwrap(),
        ]),
        env.cairn(&["drill", "--scratch", out.path().join("s").to_str().unwrap()]),
        env.cairn(&["restore", &id, "--confirm-service-stopped"]),
    ];
    for run in runs {
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert!(
            !run.stderr.contains('\r'),
            "carriage returns on a non-terminal: {:?}",
            run.stderr
        );
        assert!(!run.stderr.contains(ESC), "escapes: {:?}", run.stderr);
        assert!(
            run.stderr.trim().is_empty(),
            "a successful run without -v prints nothing on stderr: {:?}",
            run.stderr
        );
    }
}

#[test]
fn help_footer_lists_the_exit_codes() {
    let env = Env::empty();
    let run = env.cairn(&["--help"]);
    assert_eq!(run.code, 0);
    let footer = run
        .stdout
        .split("Exit codes:")
        .nth(1)
        .unwrap_or_else(|| panic!("no exit codes in --help:\n{}", run.stdout));
    for (code, words) in [
        ("0", "sound"),
        ("1", "not sound"),
        ("2", "usage"),
        ("3", "refused"),
        ("4", "I/O"),
        ("130", "SIGINT"),
        ("143", "SIGTERM"),
    ] {
        let line = footer
            .lines()
            .find(|l| l.trim_start().starts_with(code))
            .unwrap_or_else(|| panic!("no line for exit code {code}:\n{footer}"));
        assert!(line.contains(words), "{line:?}");
    }
    for sub in ["snapshot", "restore", "drill", "completions", "init"] {
        assert!(run.stdout.contains(sub), "--help lists {sub}");
    }
}

#[test]
fn help_and_usage_errors_have_no_escape_codes_when_not_a_terminal() {
    let env = Env::empty();
    let help = env.cairn(&["--help"]);
    assert!(!help.stdout.contains(ESC), "{:?}", help.stdout);
    let usage = env.cairn(&["restore"]);
    assert_eq!(usage.code, 2);
    assert!(usage.stderr.contains("<ID|--latest>"), "{}", usage.stderr);
    assert!(!usage.stderr.contains(ESC), "{:?}", usage.stderr);
}

#[test]
fn human_reports_end_with_one_outcome_line() {
    let env = Env::new();
    let id = env.snapshot(&[]);
    let out = tempfile::tempdir().unwrap();
    let last = |run: &Run| -> String {
        assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
        run.stdout.lines().last().unwrap_or_default().to_owned()
    };
    let v = last(&env.cairn(&["validate", &id]));
    assert!(v.starts_with("ok") && v.contains("valid"), "{v}");
    let r = last(&env.cairn(&[
        "restore",
        &id,
        "--to",
        out.path().join("r").to_str().unwrap(),
    ]));
    assert!(r.starts_with("ok") && r.contains("restored"), "{r}");
    let p = last(&env.cairn(&["prune"]));
    assert!(p.contains("dry run"), "{p}");
    let d = last(&env.cairn(&["drill", "--scratch", out.path().join("s").to_str().unwrap()]));
    assert!(d.starts_with("ok") && d.contains("passed"), "{d}");
    let s = env.cairn(&["show", &id]);
    assert_eq!(s.code, 0);
    for store in ["db", "registry", "chroma"] {
        assert!(s.stdout.contains(store), "show names {store}: {}", s.stdout);
    }
    assert!(
        s.stdout.contains("KiB"),
        "show gives human sizes: {}",
        s.stdout
    );

    // A failure ends with a line saying so.
    env.unlock_snapshot(&id);
    std::fs::write(
        env.snapshot_dir(&id)
            .join("stores/chroma/seg-0001/header.bin"),
        b"HEADER",
    )
    .unwrap();
    let run = env.cairn(&["validate", &id]);
    assert_eq!(run.code, 1);
    let v = run.stdout.lines().last().unwrap();
    assert!(v.contains("NOT SOUND") || v.contains("invalid"), "{v}");
}

/// Runs cairn with a pseudo-terminal as stdin, stdout and stderr (through
/// util-linux `script`); fails the test where `script` cannot run.
fn cairn_on_a_terminal(env: &Env, args: &str) -> String {
    let config = env.path("cairn.toml");
    let command = format!("{} --config {} {args}", support::CAIRN, config.display());
    let out = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .current_dir(&env.root)
        .env_remove("CAIRN_CONFIG")
        .env_remove("CAIRN_FAILPOINT")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("this test needs util-linux `script` (Debian package bsdutils)");
    let shown = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "script -qec {command:?}: {shown}");
    shown
}

/// A redraw: a carriage return not ending a line (a terminal turns every
/// `\n` into `\r\n`).
fn redraws(text: &str) -> bool {
    text.as_bytes()
        .windows(2)
        .any(|w| w[0] == b'\r' && w[1] != b'\n')
}

#[test]
#[ignore = "needs util-linux script"]
fn progress_on_a_terminal_but_not_with_json_or_quiet() {
    support::require_program("script", "--version", "bsdutils");
    let env = Env::new();
    let big: Vec<u8> = (0..8 * 1024 * 1024u32).map(|i| (i % 241) as u8).collect();
    std::fs::write(env.path("data/chroma/seg-0001/big.bin"), big).unwrap();
    let shown = cairn_on_a_terminal(&env, "snapshot");
    assert!(
        redraws(&shown),
        "no progress drawn on a terminal: {shown:?}"
    );
    assert!(shown.contains("ok: snapshot"), "{shown:?}");
    for flags in ["--json snapshot", "-q snapshot"] {
        let out = cairn_on_a_terminal(&env, flags);
        assert!(!redraws(&out), "{flags}: progress drawn: {out:?}");
        assert!(!out.contains(ESC), "{flags}: escapes: {out:?}");
    }
}

#[test]
fn a_rolled_back_restore_ends_saying_so() {
    let env = Env::new();
    let id = env.snapshot(&[]);
    let run = env.cairn_env(
        &["restore", &id, "--confirm-service-stopped"],
        &[("CAIRN_FAILPOINT", "swap:chroma")],
    );
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let last = run.stdout.lines().last().unwrap_or_default();
    assert!(last.contains("rolled back"), "{}", run.stdout);
    assert!(
        run.stdout.contains("chroma"),
        "names the failing store: {}",
        run.stdout
    );
}

/// A stdout whose every write fails with ENOSPC.
fn dev_full() -> std::process::Stdio {
    std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full")
        .into()
}

/// `cairn ARGS` in `env` with stdout going to `stdout`.
fn cairn_to(env: &Env, args: &[&str], stdout: std::process::Stdio) -> std::process::Child {
    std::process::Command::new(support::CAIRN)
        .current_dir(env.path(""))
        .args(env.with_config(args))
        .env_remove("CAIRN_CONFIG")
        .stdin(std::process::Stdio::null())
        .stdout(stdout)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run cairn")
}

#[test]
fn a_report_lost_on_a_full_disk_is_exit_4_and_says_so() {
    let env = Env::new();
    let id = env.snapshot(&[]);
    // Whole reports and streamed ones (ls, show, diff), both formats.
    let cases: [&[&str]; 6] = [
        &["--json", "list"],
        &["list"],
        &["ls", &id],
        &["--json", "ls", &id],
        &["--json", "show", &id],
        &["diff", &id, &id],
    ];
    // The exit code and stderr of `cairn ARGS > /dev/full`.
    let to_full = |args: &[&str]| {
        let out = cairn_to(&env, args, dev_full())
            .wait_with_output()
            .expect("wait");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    for args in cases {
        let (code, stderr) = to_full(args);
        assert_eq!(code, Some(4), "{args:?}: {stderr}");
        assert!(
            stderr.contains("its report could not be written to standard output")
                && stderr.contains("No space left on device"),
            "{args:?}: {stderr}"
        );
    }
    // cat's output is the file itself: its own error, and a hint about
    // where stdout goes, not about the repository.
    let (code, stderr) = to_full(&["cat", &id, "registry"]);
    assert_eq!(code, Some(4), "{stderr}");
    assert!(
        stderr.contains("write to standard output: No space left on device")
            && stderr.contains("hint: where standard output goes is full")
            && !stderr.contains("repository"),
        "{stderr}"
    );
}

#[test]
fn a_reader_that_stops_reading_a_long_listing_is_not_an_error() {
    use std::io::BufRead;
    let env = Env::new();
    let many = env.path("data/chroma/many");
    std::fs::create_dir(&many).unwrap();
    // Far more than a pipe holds (64 KiB): cairn is still writing when the
    // reader goes away.
    for i in 0..3000 {
        std::fs::write(many.join(format!("file-{i:05}.bin")), b"x").unwrap();
    }
    let id = env.snapshot(&[]);
    // The human lines, and the JSON document (written through serde_json,
    // which must hand the broken pipe back as one).
    for (args, first_line) in [
        (vec!["ls", id.as_str()], "db/atocore.db"),
        (vec!["--json", "ls", id.as_str()], "{"),
    ] {
        let mut child = cairn_to(&env, &args, std::process::Stdio::piped());
        let mut first = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut first)
            .expect("first line");
        let out = child.wait_with_output().expect("wait");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(first.contains(first_line), "{args:?}: {first}");
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("error"), "{args:?}: {stderr}");
    }
}
