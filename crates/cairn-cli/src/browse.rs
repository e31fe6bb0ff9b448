//! `cairn ls` and `cairn cat`: look inside a snapshot without restoring it.

use std::ffi::OsString;
use std::io::Write;

use cairn_engine::manifest::RawPath;
use cairn_engine::{browse, Config, Entry, Error, Manifest, Repository, Result, SnapshotId};
use serde_json::Value;

use crate::cli::BrowseArgs;
use crate::commands::pick;
use crate::{address, json, render, Format, Output};

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
    // Resolved now, so a wrong STORE/PATH is an error before anything is
    // written; listed as the report is written.
    let under = match place {
        None => None,
        Some(place) => {
            let (store, given) = address::split(place);
            let record = browse::store(&manifest, &store)?;
            let path = address::entry_path(&id, record, &given)?;
            Some((record.name.clone(), path))
        }
    };
    let json = serde_json::json!({ "id": id.as_str() });
    Ok(Output {
        human: String::new(),
        json,
        sound: true,
        stream: Some(Box::new(move |out, format| {
            let listed = listed(&manifest, under.as_ref());
            match format {
                Format::Human => render::ls(out, &listed),
                Format::Json => json::write_ls(out, id.as_str(), &listed),
            }
        })),
    })
}

/// Every entry of the snapshot, or those at or under one store's path,
/// in manifest order.
fn listed<'m>(manifest: &'m Manifest, under: Option<&(String, RawPath)>) -> Vec<Listed<'m>> {
    let mut listed = Vec::new();
    for record in &manifest.stores {
        match under {
            None => listed.extend(record.entries.iter().map(|entry| Listed {
                store: &record.name,
                entry,
            })),
            Some((store, path)) if *store == record.name => listed.extend(
                browse::entries_under(record, path)
                    .into_iter()
                    .map(|entry| Listed {
                        store: &record.name,
                        entry,
                    }),
            ),
            Some(_) => {}
        }
    }
    listed
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
        stream: None,
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
