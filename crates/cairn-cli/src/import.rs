//! `cairn import-legacy`: which configured store takes each part of a
//! reference snapshot (by kind: the reference's layout is fixed), then the
//! engine's `legacy::run`, then the report.

use std::path::Path;

use crate::{json, render, Output};
use cairn_engine::legacy::{self, ImportRequest, Outcome, Part};
use cairn_engine::{Config, Error, Result};

/// The kind of store each part of the reference's layout goes into.
fn kind_of(part: Part) -> &'static str {
    match part {
        Part::Db => "sqlite",
        Part::Registry => "registry-json",
        Part::Chroma => "chroma-dir",
    }
}

pub fn run(cfg: &Config, dir: &Path, confirm: bool, include_damaged: bool) -> Result<Output> {
    let mut stores = Vec::new();
    for part in Part::ALL {
        let kind = kind_of(part);
        let of_kind: Vec<&str> = cfg
            .stores
            .iter()
            .filter(|s| s.kind == kind)
            .map(|s| s.name.as_str())
            .collect();
        match of_kind.as_slice() {
            [] => {}
            [one] => stores.push((part, (*one).to_owned())),
            many => {
                return Err(Error::Usage {
                    message: format!(
                        "the config has {} stores of kind {kind} ({}): the reference's {}/ must go into one; import with a config that has one",
                        many.len(),
                        many.join(", "),
                        part.dir()
                    ),
                })
            }
        }
    }
    let report = legacy::run(
        cfg,
        &ImportRequest {
            dir: dir.to_owned(),
            confirm,
            include_damaged,
            stores,
        },
    )?;
    let sound = report.snapshots.iter().all(|s| {
        !matches!(
            s.outcome,
            Outcome::Damaged | Outcome::WouldImportDamaged | Outcome::ImportedDamaged
        )
    });
    Ok(Output {
        human: render::import_legacy(&report),
        json: json::import_legacy(&report),
        sound,
        stream: None,
    })
}
