//! The worked example of `docs/plugin-guide.md`: a fourth store kind,
//! `text-file`, defined only here, registered with `inventory::submit!` in
//! this test binary, and driven end to end through `cairn_cli::run` — no
//! change to the engine or the CLI (issue 2's proof of the plug-in model).
//!
//! The code between the `guide:begin` and `guide:end` lines is, byte for
//! byte, the guide's example (a test below checks it), so the guide cannot
//! rot: if the example stops compiling or working, these tests fail.

// The test binary links the standard plug-ins the way `cairn`'s main.rs does.
use cairn_chroma_dir as _;
use cairn_registry_json as _;
use cairn_sqlite as _;

// guide:begin
use std::path::Path;

use cairn_engine::plugin::{lstat, OptionDoc};
use cairn_engine::problem::codes::READ_FAILED;
use cairn_engine::{
    CaptureCtx, Depth, Error, PluginDescriptor, Problem, Result, Shape, StoreConfig, StoreHandler,
    StoreRecord,
};

/// The `kind` operators write in `cairn.toml`.
pub const KIND: &str = "text-file";
/// This kind's own problem code: snake_case, stable once released.
pub const TEXT_NOT_UTF8: &str = "text_not_utf8";

inventory::submit! {
    PluginDescriptor {
        kind: KIND,
        summary: "one plain-text file, copied byte for byte; validated as UTF-8",
        shape: Shape::File,
        example_path: "\"notes/runbook.txt\"",
        options: &[OptionDoc {
            name: "max_bytes",
            doc: "refuse to snapshot a file larger than this many bytes (default: no limit)",
            example: "1048576",
        }],
        build,
        origin: module_path!(),
    }
}

/// Checks the store's options and builds its handler. Runs whenever a
/// command loads the config, so a bad option fails before any work starts.
fn build(config: &StoreConfig) -> Result<Box<dyn StoreHandler>> {
    config.check_options(&["max_bytes"])?;
    let max_bytes = match config.options.get("max_bytes") {
        None => None,
        Some(value) => match value.as_integer() {
            Some(n) if n >= 0 => Some(n as u64),
            _ => {
                return Err(Error::config(
                    &config.origin,
                    format!(
                        "store {:?}: option `max_bytes` must be a whole number of bytes",
                        config.name
                    ),
                ))
            }
        },
    };
    Ok(Box::new(TextFile { max_bytes }))
}

struct TextFile {
    max_bytes: Option<u64>,
}

impl StoreHandler for TextFile {
    /// Snapshot: one entry, named like the source file. `copy_file` copies,
    /// hashes, makes the copy read-only and records the manifest entry.
    fn snapshot(&self, ctx: &mut CaptureCtx<'_>) -> Result<()> {
        let source = ctx.source().to_owned();
        let meta = lstat(&source)?;
        // Errors say what is wrong, not which exit code it is: the CLI
        // decides that, the same for every kind. The engine adds the
        // store's name.
        if !meta.is_file() {
            return Err(Error::SourceType {
                path: ctx.source_shown().to_owned(),
                expected: "a regular file (kind text-file expects one)",
            });
        }
        if let Some(max) = self.max_bytes.filter(|max| meta.len() > *max) {
            return Err(Error::SourceRejected {
                path: ctx.source_shown().to_owned(),
                reason: format!("is {} bytes, over max_bytes = {max}", meta.len()),
            });
        }
        let name = source
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "text".into());
        ctx.copy_file(&source, &name, &meta)
    }

    /// Validate: the engine has already matched every entry with the
    /// manifest (presence, size, SHA-256); this is the kind's own check.
    fn check(&self, root: &Path, record: &StoreRecord, _depth: Depth) -> Vec<Problem> {
        let mut problems = Vec::new();
        for entry in &record.entries {
            let problem = match std::fs::read(root.join(&entry.path)) {
                Ok(bytes) => match std::str::from_utf8(&bytes) {
                    Ok(_) => continue,
                    Err(e) => Problem::new(TEXT_NOT_UTF8, format!("not valid UTF-8: {e}")),
                },
                Err(e) => Problem::new(READ_FAILED, format!("cannot read: {e}")),
            };
            problems.push(problem.at(entry.path.clone()));
        }
        problems
    }

    // `in_use`, `drill`, `before_swap` and `after_swap` keep their
    // defaults: nothing to probe, the drill runs `check`, and nothing needs
    // doing around the engine's atomic file replace.
}
// guide:end

mod tests {
    use std::path::{Path, PathBuf};

    use super::{KIND, TEXT_NOT_UTF8};

    const TEXT: &str = "Runbook\n1. stop the service\n2. restore — carefully\n";

    use crate::support::{self, Run};

    /// `cairn ARGS` in-process, with this binary's plug-ins (text-file too).
    fn cairn(args: &[&str]) -> Run {
        support::cairn_in_process(args)
    }

    /// A service state of one text file, and a config that backs it up.
    struct Setup {
        _dir: tempfile::TempDir,
        root: PathBuf,
        config: String,
    }

    impl Setup {
        fn new(content: &[u8], store_extra: &str) -> Setup {
            let dir = tempfile::tempdir().unwrap();
            let root = dir.path().to_owned();
            std::fs::create_dir_all(root.join("notes")).unwrap();
            std::fs::write(root.join("notes/runbook.txt"), content).unwrap();
            let config = root.join("cairn.toml");
            std::fs::write(
                &config,
                format!(
                    "repository = \"backups\"\n\n[[store]]\nname = \"notes\"\nkind = \"text-file\"\npath = \"notes/runbook.txt\"\n{store_extra}"
                ),
            )
            .unwrap();
            Setup {
                _dir: dir,
                root,
                config: config.to_string_lossy().into_owned(),
            }
        }

        fn cairn(&self, args: &[&str]) -> Run {
            let mut all = vec!["--config", self.config.as_str()];
            all.extend_from_slice(args);
            cairn(&all)
        }

        fn snapshot(&self) -> String {
            let run = self.cairn(&["--json", "snapshot"]);
            assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
            let doc = run.json();
            assert_eq!(doc["validated"], true, "{doc}");
            assert_eq!(doc["stores"][0]["kind"], KIND);
            assert_eq!(doc["stores"][0]["status"], "captured");
            doc["id"].as_str().unwrap().to_owned()
        }

        fn snapshot_file(&self, id: &str) -> PathBuf {
            self.root
                .join(format!("backups/snapshots/{id}/stores/notes/runbook.txt"))
        }

        fn codes(&self, id: &str) -> (i32, Vec<(String, String)>) {
            let run = self.cairn(&["--json", "validate", id]);
            let doc = run.json();
            let errors = doc["results"][0]["errors"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| {
                    (
                        e["code"].as_str().unwrap().to_owned(),
                        e["path"].as_str().unwrap_or("").to_owned(),
                    )
                })
                .collect();
            (run.code, errors)
        }
    }

    fn make_writable(path: &Path) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    #[test]
    fn the_registry_holds_the_standard_kinds_and_the_test_kinds() {
        let registry = cairn_engine::Registry::from_inventory().unwrap();
        assert_eq!(
            registry.kind_names(),
            vec![
                "chroma-dir",
                "registry-json",
                "sqlite",
                "text-file",
                "with-option"
            ]
        );
    }

    #[test]
    fn stores_lists_text_file_with_its_option() {
        let run = cairn(&["stores"]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert!(run.stdout.contains("text-file"), "{}", run.stdout);
        assert!(run.stdout.contains("validated as UTF-8"), "{}", run.stdout);
        assert!(run.stdout.contains("max_bytes"), "{}", run.stdout);

        let doc = cairn(&["--json", "stores"]).json();
        let kinds: Vec<&str> = doc["stores"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["kind"].as_str().unwrap())
            .collect();
        assert_eq!(
            kinds,
            vec![
                "chroma-dir",
                "registry-json",
                "sqlite",
                "text-file",
                "with-option"
            ]
        );
        let text_file = &doc["stores"][3];
        assert_eq!(text_file["shape"], "file");
        assert_eq!(text_file["options"][0]["name"], "max_bytes");
    }

    #[test]
    fn snapshot_validate_damage_and_restore_round_trip() {
        let s = Setup::new(TEXT.as_bytes(), "");
        let good = s.snapshot();
        // Different content, so the second snapshot's copy is its own file
        // (an unchanged file would be hard-linked from the first snapshot,
        // and damaging one would damage both).
        std::fs::write(s.root.join("notes/runbook.txt"), "Runbook v2\n").unwrap();
        let damaged = s.snapshot();
        assert_ne!(good, damaged);
        assert_eq!(
            std::fs::read(s.snapshot_file(&good)).unwrap(),
            TEXT.as_bytes()
        );
        assert_eq!(s.codes(&good), (0, vec![]));

        // Flip one byte of the second snapshot's copy (read-only until now).
        let file = s.snapshot_file(&damaged);
        make_writable(&file);
        let mut bytes = std::fs::read(&file).unwrap();
        bytes[0] ^= 0x20; // 'R' -> 'r': still UTF-8, but not the bytes recorded
        std::fs::write(&file, &bytes).unwrap();
        let (code, errors) = s.codes(&damaged);
        assert_eq!(code, 1);
        assert_eq!(
            errors,
            vec![(
                "file_checksum_mismatch".to_owned(),
                "runbook.txt".to_owned()
            )]
        );

        // The damaged snapshot is refused; the good one gives the bytes back.
        let out = s.root.join("restored");
        let refused = s.cairn(&["restore", &damaged, "--to", out.to_str().unwrap()]);
        assert_eq!(refused.code, 3, "{}", refused.stderr);
        assert!(
            refused.stderr.contains("file_checksum_mismatch"),
            "{}",
            refused.stderr
        );
        assert!(!out.join("notes/runbook.txt").exists());

        std::fs::write(s.root.join("notes/runbook.txt"), "changed since\n").unwrap();
        let run = s.cairn(&["--json", "restore", &good, "--to", out.to_str().unwrap()]);
        assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
        assert_eq!(run.json()["stores"][0]["restored"], true);
        assert_eq!(
            std::fs::read(out.join("notes/runbook.txt")).unwrap(),
            TEXT.as_bytes()
        );
        // --to never touches the live file.
        assert_eq!(
            std::fs::read_to_string(s.root.join("notes/runbook.txt")).unwrap(),
            "changed since\n"
        );
    }

    #[test]
    fn a_source_that_is_not_utf8_is_captured_but_fails_with_the_kinds_code() {
        let s = Setup::new(b"caf\xe9 latin-1\n", "");
        let run = s.cairn(&["--json", "snapshot"]);
        assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
        let doc = run.json();
        assert_eq!(doc["validated"], false);
        assert_eq!(doc["validation_errors"][0]["code"], TEXT_NOT_UTF8);
        assert_eq!(doc["validation_errors"][0]["store"], "notes");
        let id = doc["id"].as_str().unwrap();

        // Kept, bytes exact, and `validate` reports the same code.
        assert_eq!(
            std::fs::read(s.snapshot_file(id)).unwrap(),
            b"caf\xe9 latin-1\n"
        );
        assert_eq!(
            s.codes(id),
            (
                1,
                vec![(TEXT_NOT_UTF8.to_owned(), "runbook.txt".to_owned())]
            )
        );
    }

    #[test]
    fn options_are_checked_by_the_plugin() {
        let typo = Setup::new(TEXT.as_bytes(), "max_byte = 10\n");
        let run = typo.cairn(&["snapshot"]);
        assert_eq!(run.code, 2, "{}", run.stderr);
        assert!(
            run.stderr.contains("unknown option `max_byte`")
                && run.stderr.contains("known options: max_bytes")
                && run.stderr.contains(&typo.config),
            "{}",
            run.stderr
        );

        let small = Setup::new(TEXT.as_bytes(), "max_bytes = 8\n");
        let run = small.cairn(&["snapshot"]);
        assert_eq!(run.code, 2, "{}", run.stderr);
        assert!(run.stderr.contains("over max_bytes = 8"), "{}", run.stderr);
        let listed = small.cairn(&["--json", "list"]).json();
        assert_eq!(listed["snapshots"], serde_json::json!([]));
    }

    #[test]
    fn the_guide_shows_exactly_this_example() {
        let source = include_str!("plugin_guide.rs");
        let guide = include_str!("../../docs/plugin-guide.md");
        let (begin, end) = (
            concat!("// guide", ":begin\n"),
            concat!("// guide", ":end\n"),
        );
        let start = source.find(begin).expect("begin marker") + begin.len();
        let stop = source.find(end).expect("end marker");
        let example = &source[start..stop];

        let marker = "<!-- example: tests/cli/plugin_guide.rs -->\n```rust\n";
        let at = guide.find(marker).expect("the guide marks its example") + marker.len();
        let shown = &guide[at..at + guide[at..].find("```\n").expect("block end")];
        assert!(
            shown == example,
            "docs/plugin-guide.md's example differs from tests/cli/plugin_guide.rs; copy the region between the markers into the guide"
        );
    }
}
