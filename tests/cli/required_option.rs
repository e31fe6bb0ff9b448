//! A test-only kind whose `build` fails without an option, driven through
//! every command. Before handlers were built once per command, validate,
//! drill and `restore --to` rebuilt them with no options at all, so such a
//! kind failed there (reported as `store_kind_unknown`); and a snapshot of
//! a store no longer configured could not be checked by its plug-in.

use std::path::{Path, PathBuf};

use cairn_engine::plugin::{lstat, OptionDoc, SwapReport};
use cairn_engine::{
    CaptureCtx, Depth, Error, PluginDescriptor, Problem, Result, Shape, StoreConfig, StoreHandler,
    StoreRecord,
};
use serde_json::Value;

use crate::support::{self, Run};

const KIND: &str = "with-option";
const LABEL_MISSING: &str = "label_missing";

inventory::submit! {
    PluginDescriptor {
        kind: KIND,
        summary: "test kind: a file that must start with the configured label",
        shape: Shape::File,
        example_path: "\"labelled.txt\"",
        options: &[OptionDoc { name: "label", doc: "required", example: "\"alpha\"" }],
        build,
        origin: module_path!(),
    }
}

fn build(config: &StoreConfig) -> Result<Box<dyn StoreHandler>> {
    config.check_options(&["label"])?;
    match config.options.get("label").and_then(|v| v.as_str()) {
        Some(label) => Ok(Box::new(Labelled {
            label: label.to_owned(),
        })),
        None => Err(Error::config(
            &config.origin,
            format!("store {:?}: option `label` is required", config.name),
        )),
    }
}

struct Labelled {
    label: String,
}

impl Labelled {
    fn starts_with_label(&self, path: &Path) -> bool {
        std::fs::read(path)
            .map(|bytes| bytes.starts_with(self.label.as_bytes()))
            .unwrap_or(false)
    }
}

impl StoreHandler for Labelled {
    fn snapshot(&self, ctx: &mut CaptureCtx<'_>) -> Result<()> {
        let source = ctx.source().to_owned();
        let meta = lstat(&source)?;
        ctx.copy_file(&source, "labelled.txt", &meta)
    }

    fn check(&self, root: &Path, record: &StoreRecord, _depth: Depth) -> Vec<Problem> {
        record
            .entries
            .iter()
            .filter(|e| !self.starts_with_label(&root.join(&e.path)))
            .map(|e| {
                Problem::new(
                    LABEL_MISSING,
                    format!("does not start with {:?}", self.label),
                )
                .at(e.path.clone())
            })
            .collect()
    }

    fn after_swap(&self, live: &Path, _record: &StoreRecord) -> SwapReport {
        SwapReport {
            integrity_ok: Some(self.starts_with_label(live)),
            detail: None,
        }
    }
}

fn cairn(config: &Path, args: &[&str]) -> Run {
    let mut all = vec!["--config", config.to_str().unwrap()];
    all.extend_from_slice(args);
    support::cairn_in_process(&all)
}

fn write_config(root: &Path, with_store: bool) -> PathBuf {
    let config = root.join("cairn.toml");
    let store = "[[store]]\nname = \"doc\"\nkind = \"with-option\"\npath = \"live.txt\"\nlabel = \"alpha\"\n";
    std::fs::write(
        &config,
        format!(
            "repository = \"backups\"\n{}",
            if with_store { store } else { "" }
        ),
    )
    .unwrap();
    config
}

#[test]
fn a_kind_whose_build_needs_an_option_works_through_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(root.join("live.txt"), "alpha: first\n").unwrap();
    let config = write_config(root, true);

    let snap = cairn(&config, &["--json", "snapshot"]);
    assert_eq!(snap.code, 0, "{}\n{}", snap.stdout, snap.stderr);
    assert_eq!(snap.json()["validated"], true);
    let id = snap.json()["id"].as_str().unwrap().to_owned();

    let validate = cairn(&config, &["--json", "validate", &id]);
    assert_eq!(validate.code, 0, "{}\n{}", validate.stdout, validate.stderr);
    assert_eq!(
        validate.json()["results"][0]["errors"],
        Value::Array(vec![])
    );

    let drill = cairn(&config, &["--json", "drill", &id]);
    assert_eq!(drill.code, 0, "{}\n{}", drill.stdout, drill.stderr);
    let checks = drill.json()["checks"].clone();
    assert!(
        checks
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["check"] == "with-option_check" && c["ok"] == true),
        "{checks}"
    );

    let out = root.join("out");
    let to = cairn(&config, &["restore", &id, "--to", out.to_str().unwrap()]);
    assert_eq!(to.code, 0, "{}\n{}", to.stdout, to.stderr);
    assert_eq!(
        std::fs::read_to_string(out.join("doc/labelled.txt")).unwrap(),
        "alpha: first\n"
    );

    std::fs::write(root.join("live.txt"), "alpha: changed\n").unwrap();
    let live = cairn(
        &config,
        &["--json", "restore", &id, "--confirm-service-stopped"],
    );
    assert_eq!(live.code, 0, "{}\n{}", live.stdout, live.stderr);
    assert_eq!(live.json()["stores"][0]["integrity_ok"], true);
    assert_eq!(
        std::fs::read_to_string(root.join("live.txt")).unwrap(),
        "alpha: first\n"
    );
}

#[test]
fn a_store_no_longer_configured_is_checked_with_its_recorded_options() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(root.join("live.txt"), "alpha: kept\n").unwrap();
    let config = write_config(root, true);
    let snap = cairn(&config, &["--json", "snapshot"]);
    assert_eq!(snap.code, 0, "{}", snap.stderr);
    let id = snap.json()["id"].as_str().unwrap().to_owned();
    std::fs::write(root.join("live.txt"), "beta: no label\n").unwrap();
    let unlabelled = cairn(&config, &["--json", "snapshot"]);
    assert_eq!(unlabelled.code, 1, "{}", unlabelled.stderr);
    let bad = unlabelled.json()["id"].as_str().unwrap().to_owned();

    // The store leaves the config; its snapshots are still checked by its
    // plug-in, built from the options the manifest recorded.
    write_config(root, false);
    let show = cairn(&config, &["--json", "show", &id]);
    assert_eq!(show.json()["stores"][0]["options"]["label"], "alpha");
    let validate = cairn(&config, &["--json", "validate", &id]);
    assert_eq!(validate.code, 0, "{}\n{}", validate.stdout, validate.stderr);
    let drill = cairn(&config, &["--json", "drill", &id]);
    assert_eq!(drill.code, 0, "{}\n{}", drill.stdout, drill.stderr);

    // The kind's own check really runs, under the recorded label.
    let validate = cairn(&config, &["--json", "validate", &bad]);
    assert_eq!(validate.code, 1, "{}", validate.stdout);
    assert_eq!(
        validate.json()["results"][0]["errors"][0]["code"],
        LABEL_MISSING
    );
}
