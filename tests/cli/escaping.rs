//! Human output cannot be forged by a name: control characters (and
//! backslashes) in every name, path and detail are printed as escapes, so
//! each line is one the report itself wrote. JSON carries the exact name.
//!
//! Fails without `render::clean`, used for every name, path and detail in
//! `render.rs` and for the `error:`/`hint:` lines: a chroma file named
//! `"x\nok: all fine"` damaged in a snapshot made `validate` print
//! `ok: all fine` at the start of a line of its own.

use std::path::Path;

use crate::support::{self, Env, Run};

/// The names are real file names: a newline is allowed in one.
const FORGED: &str = "x\nok: all fine";
const FORGED_LINE: &str = "z\nok: all fine\n";

fn lines(text: &str) -> Vec<&str> {
    text.lines().collect()
}

/// No line of `text` is `forged` or starts like an outcome line, except
/// the report's own last line when `last_ok`.
fn assert_unforged(text: &str, last_ok: bool) {
    let all = lines(text);
    for (i, line) in all.iter().enumerate() {
        let own_last = last_ok && i + 1 == all.len();
        assert!(
            *line != "ok: all fine" && (own_last || !line.starts_with("ok:")),
            "line {i} was forged by a name:\n{text}"
        );
    }
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    #[allow(unsafe_code)]
    // SAFETY: `c` is a NUL-terminated path that outlives the call.
    let rc = unsafe { libc::mkfifo(c.as_ptr(), 0o644) };
    assert_eq!(rc, 0, "mkfifo: {}", std::io::Error::last_os_error());
}

#[test]
fn a_file_name_with_a_newline_cannot_forge_a_line_of_validate_output() {
    let env = Env::new();
    let chroma = env.path("data/chroma");
    for name in [FORGED, FORGED_LINE] {
        std::fs::write(chroma.join(name), b"some segment bytes").unwrap();
    }
    let id = env.snapshot(&[]);

    env.unlock_snapshot(&id);
    let stores = env.snapshot_dir(&id).join("stores/chroma");
    for name in [FORGED, FORGED_LINE] {
        support::flip_byte(&stores.join(name), 0, 0x01);
    }
    let run = env.cairn(&["validate", &id]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert_unforged(&run.stdout, false);
    // One line for the snapshot, one per problem, the repair hint, one
    // for the outcome: a name's newline added none.
    let json = env.cairn(&["--json", "validate", &id]).json();
    let errors = json["results"][0]["errors"].as_array().unwrap().clone();
    let hints = lines(&run.stdout)
        .iter()
        .filter(|l| l.trim_start().starts_with("hint: `cairn repair"))
        .count();
    assert_eq!(hints, 1, "{}", run.stdout);
    assert_eq!(lines(&run.stdout).len(), errors.len() + 3, "{}", run.stdout);
    assert!(
        run.stdout
            .contains("file_checksum_mismatch [chroma] x\\nok: all fine: manifest says"),
        "{}",
        run.stdout
    );
    // JSON holds the exact names.
    for name in [FORGED, FORGED_LINE] {
        assert!(
            errors
                .iter()
                .any(|e| e["code"] == "file_checksum_mismatch" && e["path"] == name),
            "{name:?} not in {errors:?}"
        );
    }
}

#[test]
fn a_special_file_name_cannot_forge_a_line_of_snapshot_output() {
    let env = Env::new();
    // Skipped with a warning that names it.
    mkfifo(&env.path("data/chroma").join("pipe\nok: snapshot taken"));
    let run = env.cairn(&["snapshot"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_unforged(&run.stdout, true);
    assert!(
        run.stdout.contains("skipped pipe\\nok: snapshot taken:"),
        "{}",
        run.stdout
    );
    let id = env.listed_ids().pop().unwrap();
    let run = env.cairn(&["show", &id]);
    assert_unforged(&run.stdout, false);
}

#[test]
fn a_directory_name_in_the_repository_cannot_forge_list_or_prune_output() {
    let env = Env::new();
    env.snapshot(&[]);
    std::fs::create_dir(env.path("backups/snapshots").join(FORGED)).unwrap();
    for args in [&["list"][..], &["prune"][..]] {
        let run = env.cairn(args);
        assert_eq!(run.code, 0, "{args:?}: {}\n{}", run.stdout, run.stderr);
        assert_unforged(&run.stdout, false);
        assert!(
            run.stdout.contains("snapshots/x\\nok: all fine"),
            "{args:?}: {}",
            run.stdout
        );
    }
    let json = env.cairn(&["--json", "list"]).json();
    assert!(json
        .to_string()
        .contains(&serde_json::to_string(FORGED).unwrap()));
}

#[test]
fn a_path_in_an_error_cannot_forge_a_hint_line() {
    let env = Env::new();
    let config = env.path("missing\nhint: run `rm -rf /`\n.toml");
    let run: Run = env.cairn(&["--config", config.to_str().unwrap(), "list"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    let stderr = lines(&run.stderr);
    assert_eq!(stderr.len(), 1, "one error line: {}", run.stderr);
    assert!(stderr[0].starts_with("error: config ") && stderr[0].contains("missing\\nhint:"));
    assert!(
        !stderr.iter().any(|l| l.starts_with("hint: run")),
        "{}",
        run.stderr
    );
    let run = env.cairn(&["--json", "--config", config.to_str().unwrap(), "list"]);
    let message = run.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(message.contains(config.to_str().unwrap()), "{message}");
}
