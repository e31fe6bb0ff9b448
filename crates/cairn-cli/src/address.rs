//! `STORE[/PATH]` on the command line, to a store and an entry of a
//! snapshot. A name is bytes: the argument is taken as its exact bytes
//! first (a shell passes any: `$'a\nb'`, `$'\xff'`), else as `ls` and
//! every other human report print it (escaped by `render::clean`, e.g.
//! `a\nb`, `caf\\xe9`), so a name copied from the output addresses the
//! entry. Two entries printing alike (a real backslash against an escape)
//! need their exact bytes; that is reported.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use cairn_engine::manifest::RawPath;
use cairn_engine::{browse, Error, Repository, Result, SnapshotId, StoreRecord};

use crate::render;

/// `STORE` and the rest (empty for the store's root).
pub fn split(arg: &OsStr) -> (String, RawPath) {
    let bytes = arg.as_bytes();
    let bytes = bytes.strip_suffix(b"/").unwrap_or(bytes);
    match bytes.iter().position(|b| *b == b'/') {
        Some(i) => (
            String::from_utf8_lossy(&bytes[..i]).into_owned(),
            RawPath::from_bytes(&bytes[i + 1..]),
        ),
        None => (
            String::from_utf8_lossy(bytes).into_owned(),
            RawPath::from_bytes(Vec::new()),
        ),
    }
}

/// The path of the entry of `record` that `given` names: itself when an
/// entry has those exact bytes, else the one entry printed as `given`.
/// An empty `given` stays empty (the store's root).
pub fn entry_path(id: &SnapshotId, record: &StoreRecord, given: &RawPath) -> Result<RawPath> {
    if given.is_empty() || record.entries.iter().any(|e| e.path == *given) {
        return Ok(given.clone());
    }
    let text = String::from_utf8_lossy(given.as_bytes());
    let printed_alike: Vec<&RawPath> = record
        .entries
        .iter()
        .map(|e| &e.path)
        .filter(|p| render::clean(&p.shown()) == text)
        .collect();
    match printed_alike.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(Error::NoSuchEntry {
            id: id.to_string(),
            store: record.name.clone(),
            path: text.into_owned(),
        }),
        several => Err(Error::Usage {
            message: format!(
                "{} entries of store {} in snapshot {id} print as {:?}; give the exact bytes of the one you mean (`cairn --json ls` shows them, with path_b64)",
                several.len(),
                record.name,
                text
            ),
        }),
    }
}

/// Every `--path STORE/PATH` of a restore, as (store, exact path).
pub fn restore_paths(
    repo: &Repository,
    id: &str,
    args: &[std::ffi::OsString],
) -> Result<Vec<(String, RawPath)>> {
    if args.is_empty() {
        return Ok(Vec::new());
    }
    let id = repo.resolve(id)?;
    let manifest = browse::manifest(repo, &id)?;
    args.iter()
        .map(|arg| {
            let (store, given) = split(arg);
            let record = browse::store(&manifest, &store)?;
            Ok((store, entry_path(&id, record, &given)?))
        })
        .collect()
}
