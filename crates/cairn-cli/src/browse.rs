//! `cairn ls` and `cairn cat`: look inside a snapshot without restoring it.

use std::ffi::OsString;
use std::io::Write;

use cairn_engine::manifest::RawPath;
use cairn_engine::{browse, Config, Entry, Error, Repository, Result, SnapshotId};
use serde_json::Value;

use crate::cli::BrowseArgs;
use crate::commands::pick;
use crate::{address, json, render, Output};

/// One listed entry: its store and the manifest's record of it.
pub struct Listed<'m> {
    pub store: &'m str,
    pub entry: &'m Entry,
}

/// The snapshot and the `STORE[/PATH]` argument, from `ID [PLACE]` or
/// `--latest [PLACE]`.
fn split_args<'a>(
    repo: &Repository,
    args: &'a BrowseArgs,
    command: &str,
) -> Result<(SnapshotId, Option<&'a OsString>)> {
    let usage = |message: String| Error::Usage { message };
    match (args.latest, args.args.as_slice()) {
        (true, []) => Ok((pick(repo, None, true)?, None)),
        (true, [place]) => Ok((pick(repo, None, true)?, Some(place))),
        (true, [_, _, ..]) => Err(usage(format!(
            "{command}: --latest names the snapshot; give only STORE[/PATH]"
        ))),
        (false, [id, rest @ ..]) => {
            let id = id.to_str().ok_or_else(|| Error::BadId {
                value: id.to_string_lossy().into_owned(),
            })?;
            Ok((pick(repo, Some(id), false)?, rest.first()))
        }
        (false, []) => Err(usage(format!(
            "{command}: name a snapshot: an id, or --latest"
        ))),
    }
}

pub fn ls(cfg: &Config, args: &BrowseArgs) -> Result<Output> {
    let repo = Repository::new(&cfg.repository);
    let (id, place) = split_args(&repo, args, "ls")?;
    let manifest = browse::manifest(&repo, &id)?;
    let mut listed = Vec::new();
    match place {
        None => {
            for record in &manifest.stores {
                listed.extend(record.entries.iter().map(|entry| Listed {
                    store: &record.name,
                    entry,
                }));
            }
        }
        Some(place) => {
            let (store, given) = address::split(place);
            let record = browse::store(&manifest, &store)?;
            let path = address::entry_path(&id, record, &given)?;
            listed.extend(
                browse::entries_under(record, &path)
                    .into_iter()
                    .map(|entry| Listed {
                        store: &record.name,
                        entry,
                    }),
            );
        }
    }
    Ok(Output {
        human: render::ls(&listed),
        json: json::ls(id.as_str(), &listed),
        sound: true,
    })
}

/// Streams the file to `out`; the report says nothing on success (stdout
/// holds the file's bytes and only them).
pub fn cat(cfg: &Config, args: &BrowseArgs, out: &mut dyn Write) -> Result<Output> {
    let repo = Repository::new(&cfg.repository);
    let (id, place) = split_args(&repo, args, "cat")?;
    let place = place.ok_or_else(|| Error::Usage {
        message: "cat: name the file as STORE/PATH (`cairn ls` lists them)".into(),
    })?;
    let manifest = browse::manifest(&repo, &id)?;
    let (store, given) = address::split(place);
    let record = browse::store(&manifest, &store)?;
    // A file store's one file may be named by the store alone.
    let path = match (given.is_empty(), record.entries.as_slice()) {
        (true, [only]) if record.shape == cairn_engine::Shape::File => only.path.clone(),
        (true, _) => {
            return Err(Error::Usage {
                message: format!(
                    "cat: store {store} is a directory; name a file in it as {store}/PATH"
                ),
            })
        }
        (false, _) => address::entry_path(&id, record, &given)?,
    };
    let entry = browse::entry(&id, record, &path)?;
    browse::cat(&repo, &id, record, entry, out)?;
    Ok(Output {
        human: String::new(),
        json: Value::Null,
        sound: true,
    })
}

/// `store/path` (the store alone for its root), for reports.
pub fn joined(store: &str, path: &RawPath) -> String {
    if path.is_empty() {
        store.to_owned()
    } else {
        format!("{store}/{}", path.shown())
    }
}
