//! What changed between two snapshots (`cairn diff A B`): per store, the
//! entries added, removed and changed — compared by the manifests (type,
//! SHA-256 and size, symlink target, mode, owner, mtime, hard link,
//! extended attributes), never by reading bytes — plus what the kind
//! counts in each copy (SQLite: rows per table), through
//! `StoreHandler::row_counts` on the snapshot copies themselves, which a
//! kind opens read-only.

use std::collections::{BTreeMap, HashMap};

use crate::browse;
use crate::error::Result;
use crate::id::SnapshotId;
use crate::manifest::{Entry, Manifest, RawPath, StoreRecord, StoreStatus};
use crate::repo::Repository;
use crate::stores::Stores;

#[derive(Debug)]
pub struct Diff {
    pub a: String,
    pub b: String,
    pub stores: Vec<StoreDiff>,
}

impl Diff {
    /// Nothing differs, in entries or in counts.
    pub fn is_empty(&self) -> bool {
        self.stores.iter().all(StoreDiff::is_empty)
    }

    /// Counts that could not be taken (a damaged copy): the diff is then
    /// not the whole story.
    pub fn count_failures(&self) -> impl Iterator<Item = (&str, &CountFailure)> {
        self.stores
            .iter()
            .flat_map(|s| s.count_failures.iter().map(move |f| (s.name.as_str(), f)))
    }
}

/// Where a store is in the two snapshots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    Both,
    /// Only in B (or absent in A).
    Added,
    /// Only in A (or absent in B).
    Removed,
}

#[derive(Debug)]
pub struct StoreDiff {
    pub name: String,
    pub kind: String,
    pub presence: Presence,
    pub added: Vec<Entry>,
    pub removed: Vec<Entry>,
    pub changed: Vec<Changed>,
    /// Per counted thing (table), its count in A and in B; only those
    /// that differ, or exist in one snapshot only.
    pub counts: Vec<CountChange>,
    pub count_failures: Vec<CountFailure>,
}

impl StoreDiff {
    pub fn is_empty(&self) -> bool {
        self.presence == Presence::Both
            && self.added.is_empty()
            && self.removed.is_empty()
            && self.changed.is_empty()
            && self.counts.is_empty()
    }
}

#[derive(Debug)]
pub struct Changed {
    pub path: RawPath,
    /// What differs: `type`, `content`, `target`, `mode`, `owner`,
    /// `mtime`, `hard_link`, `xattrs`.
    pub what: Vec<&'static str>,
    pub a: Entry,
    pub b: Entry,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountChange {
    pub name: String,
    pub a: Option<u64>,
    pub b: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct CountFailure {
    /// The snapshot whose copy could not be counted.
    pub id: String,
    pub detail: String,
}

/// Compares snapshots `a` and `b`, for the stores named in `only` (every
/// store of either when empty; a name in neither is an error).
pub fn run(
    repo: &Repository,
    stores: &Stores,
    a: &SnapshotId,
    b: &SnapshotId,
    only: &[String],
) -> Result<Diff> {
    let mut ma = browse::manifest(repo, a)?;
    let mut mb = browse::manifest(repo, b)?;
    let mut names: Vec<String> = Vec::new();
    for s in ma.stores.iter().chain(&mb.stores) {
        if !names.contains(&s.name) {
            names.push(s.name.clone());
        }
    }
    for name in only {
        if !names.contains(name) {
            return Err(crate::error::Error::UnknownStore {
                name: name.clone(),
                place: format!("snapshots {a} and {b}"),
                available: names.clone(),
            });
        }
    }
    let mut out = Vec::new();
    for name in &names {
        if !only.is_empty() && !only.iter().any(|o| o == name) {
            continue;
        }
        let mut diff = store_diff(
            repo,
            stores,
            (a, captured(&ma, name)),
            (b, captured(&mb, name)),
            name,
        );
        // The entries move into the diff: a diff of every file of a large
        // tree holds each entry once, never a copy beside the manifest's.
        let (added, removed, changed) =
            compare(take_entries(&mut ma, name), take_entries(&mut mb, name));
        diff.added = added;
        diff.removed = removed;
        diff.changed = changed;
        out.push(diff);
    }
    Ok(Diff {
        a: a.to_string(),
        b: b.to_string(),
        stores: out,
    })
}

fn captured<'m>(m: &'m Manifest, name: &str) -> Option<&'m StoreRecord> {
    m.store(name).filter(|s| s.status == StoreStatus::Captured)
}

/// The entries of `name` when captured, taken out of `m`.
fn take_entries(m: &mut Manifest, name: &str) -> Vec<Entry> {
    m.stores
        .iter_mut()
        .find(|s| s.name == name && s.status == StoreStatus::Captured)
        .map(|s| std::mem::take(&mut s.entries))
        .unwrap_or_default()
}

/// (added, removed, changed) between one store's entries in A and in B:
/// added and changed in B's order, removed in A's. Matched by path
/// first, borrowing; then each entry is moved where it belongs (an
/// unchanged one is dropped).
fn compare(ea: Vec<Entry>, eb: Vec<Entry>) -> (Vec<Entry>, Vec<Entry>, Vec<Changed>) {
    // For each entry of B: its match in A, and what differs.
    let mut matched_in_a = vec![false; ea.len()];
    let matches: Vec<Option<(usize, Vec<&'static str>)>> = {
        let by_path: HashMap<&[u8], usize> = ea
            .iter()
            .enumerate()
            .map(|(i, e)| (e.path.as_bytes(), i))
            .collect();
        eb.iter()
            .map(|e| {
                let i = *by_path.get(e.path.as_bytes())?;
                matched_in_a[i] = true;
                Some((i, differences(&ea[i], e)))
            })
            .collect()
    };
    let mut in_a: Vec<Option<Entry>> = ea.into_iter().map(Some).collect();
    let (mut added, mut changed) = (Vec::new(), Vec::new());
    for (e, found) in eb.into_iter().zip(matches) {
        match found {
            None => added.push(e),
            Some((_, what)) if what.is_empty() => {}
            Some((i, what)) => {
                if let Some(a) = in_a[i].take() {
                    changed.push(Changed {
                        path: e.path.clone(),
                        what,
                        a,
                        b: e,
                    });
                }
            }
        }
    }
    let removed = in_a
        .into_iter()
        .zip(matched_in_a)
        .filter_map(|(e, matched)| e.filter(|_| !matched))
        .collect();
    (added, removed, changed)
}

fn store_diff(
    repo: &Repository,
    stores: &Stores,
    (a, ra): (&SnapshotId, Option<&StoreRecord>),
    (b, rb): (&SnapshotId, Option<&StoreRecord>),
    name: &str,
) -> StoreDiff {
    let presence = match (ra, rb) {
        (Some(_), Some(_)) | (None, None) => Presence::Both,
        (None, Some(_)) => Presence::Added,
        (Some(_), None) => Presence::Removed,
    };
    let mut failures = Vec::new();
    let mut count =
        |id: &SnapshotId, record: Option<&StoreRecord>| -> Option<BTreeMap<String, u64>> {
            let record = record?;
            let handler = match stores.for_record(record) {
                Ok(h) => h,
                Err(e) => {
                    failures.push(CountFailure {
                        id: id.to_string(),
                        detail: e.to_string(),
                    });
                    return None;
                }
            };
            match handler.row_counts(&repo.store_dir(id, &record.name), record)? {
                Ok(rows) => Some(rows.into_iter().collect()),
                Err(detail) => {
                    failures.push(CountFailure {
                        id: id.to_string(),
                        detail,
                    });
                    None
                }
            }
        };
    let ca = count(a, ra);
    let cb = count(b, rb);
    let mut counts = Vec::new();
    if ca.is_some() || cb.is_some() {
        let (ca, cb) = (ca.unwrap_or_default(), cb.unwrap_or_default());
        let mut tables: Vec<&String> = ca.keys().chain(cb.keys()).collect();
        tables.sort();
        tables.dedup();
        for t in tables {
            let (x, y) = (ca.get(t).copied(), cb.get(t).copied());
            if x != y {
                counts.push(CountChange {
                    name: t.clone(),
                    a: x,
                    b: y,
                });
            }
        }
    }
    StoreDiff {
        name: name.to_owned(),
        kind: rb.or(ra).map(|r| r.kind.clone()).unwrap_or_default(),
        presence,
        // Filled in by `run` (`compare`), which owns the entries.
        added: Vec::new(),
        removed: Vec::new(),
        changed: Vec::new(),
        counts,
        count_failures: failures,
    }
}

/// What differs between two records of the same path. `source_stat` is
/// left out: it says where a copy came from, not what it holds.
fn differences(a: &Entry, b: &Entry) -> Vec<&'static str> {
    let mut what = Vec::new();
    if a.kind != b.kind {
        what.push("type");
    }
    if a.sha256 != b.sha256 || a.size != b.size {
        what.push("content");
    }
    if a.target() != b.target() {
        what.push("target");
    }
    if a.mode != b.mode {
        what.push("mode");
    }
    if (a.uid, a.gid) != (b.uid, b.gid) {
        what.push("owner");
    }
    if a.mtime_ns != b.mtime_ns {
        what.push("mtime");
    }
    if a.link_of() != b.link_of() {
        what.push("hard_link");
    }
    if a.xattrs() != b.xattrs() {
        what.push("xattrs");
    }
    what
}
