//! The checksummed manifest (`snapshots/<ID>/manifest.json`): its types and
//! the rules a manifest must follow. The format is specified in
//! `docs/manifest.md`; reading and writing it is in [`codec`].
//!
//! The `digest` field is the SHA-256 of the manifest's canonical form: the
//! JSON document without its `digest` key, keys sorted, no whitespace. Any
//! edit to any field changes it. Reading is defensive: the bytes come from
//! disk and may be anything, so every failure is a [`Problem`] with a code,
//! never a panic.

mod codec;
mod raw;

use std::borrow::Cow;
use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use crate::checksum::Checksum;
use crate::id::SnapshotId;
use crate::path_index::PathIndex;
pub use codec::digest_of;
pub use raw::RawPath;

/// Bumped when a field changes meaning or a reader must not ignore a new
/// one. Readers refuse a newer version and read every older one.
/// Version 2 added a store's `options` (so a snapshot of a store no longer
/// configured can still be checked by its plug-in). Version 3 records
/// names as bytes (`path_b64`, `target_b64`, `link_of_b64` beside the
/// readable form when a name is not UTF-8; a backslash is a byte like any
/// other), each entry's `uid` and `gid`, hard links (`link_of`), extended
/// attributes and ACLs (`xattrs`), and a directory store's own root
/// directory (`root`).
pub const FORMAT_VERSION: u64 = 3;
/// The oldest version this cairn reads.
pub const OLDEST_FORMAT_VERSION: u64 = 1;
pub const FILE_NAME: &str = "manifest.json";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
// Fields of every serialized struct are declared in the sorted order of
// their JSON names, so serializing the struct yields the canonical form
// directly (see `to_bytes`); a test checks it against `digest_of`.
pub struct Manifest {
    pub created_at: DateTime<Utc>,
    pub format_version: u64,
    pub host: String,
    pub id: String,
    /// For a `pre-restore` snapshot: the id whose restore it precedes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_of: Option<String>,
    pub stores: Vec<StoreRecord>,
    #[serde(default)]
    pub tags: Vec<String>,
    pub tool_version: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreStatus {
    Captured,
    Absent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Shape {
    /// The store is one file: its snapshot holds one entry, the file's name.
    File,
    /// The store is a directory: its snapshot holds the tree's contents.
    Dir,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoreRecord {
    #[serde(default)]
    pub entries: Vec<Entry>,
    pub kind: String,
    /// Plug-in metadata (for SQLite: page size, page count, journal mode…).
    #[serde(default)]
    pub metadata: serde_json::Map<String, Value>,
    pub name: String,
    /// The store's plug-in options from the config it was captured with,
    /// so its handler can be built again when the store is no longer
    /// configured. They sit in a 0400 file in a 0700 directory; an option
    /// holding a secret is as private as the snapshot's data.
    #[serde(default, skip_serializing_if = "toml::Table::is_empty")]
    pub options: toml::Table,
    /// A directory store's own directory: its owner, mode, mtime and
    /// attributes, given to the directory a restore has to create (v3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<RootDir>,
    pub shape: Shape,
    pub source: String,
    pub status: StoreStatus,
    /// Things skipped on purpose while capturing (a FIFO, a socket).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl StoreRecord {
    pub fn files(&self) -> usize {
        self.entries
            .iter()
            .filter(|e| e.kind == EntryKind::File)
            .count()
    }

    /// Saturating: sizes come from disk, and a forged one must not wrap.
    pub fn bytes(&self) -> u64 {
        self.entries
            .iter()
            .filter_map(|e| e.size)
            .fold(0, u64::saturating_add)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
}

impl EntryKind {
    /// How messages name it.
    pub fn name(self) -> &'static str {
        match self {
            EntryKind::File => "a regular file",
            EntryKind::Dir => "a directory",
            EntryKind::Symlink => "a symlink",
        }
    }
}

/// One file, directory or symlink of a store, relative to the store's root.
///
/// Serialized through [`EntryOut`] and read through [`EntryIn`]: each byte
/// string is a readable JSON string plus, when not UTF-8, its exact bytes
/// in base64 (see [`RawPath`]).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "EntryIn")]
pub struct Entry {
    /// The exact bytes of the path, `/` between names.
    pub path: RawPath,
    pub kind: EntryKind,
    /// Permission bits of the source (`st_mode & 0o7777`: setuid, setgid
    /// and sticky included).
    pub mode: u32,
    /// Source modification time, nanoseconds since the Unix epoch. Wider
    /// than `i64`, which ends in 2262: ext4 and XFS keep times to 2446
    /// and 2486, and a time the file system holds is given back as is.
    pub mtime_ns: i128,
    pub size: Option<u64>,
    pub sha256: Option<Checksum>,
    /// Identity of the source file when it was captured, so the next
    /// snapshot can tell it is unchanged and hard-link this copy.
    pub source_stat: Option<SourceStat>,
    /// The source's owner and group (v3; `None` in older manifests).
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// What few entries have (see [`Entry::target`], [`Entry::link_of`],
    /// [`Entry::xattrs`]), boxed and `None` when it is all empty: a
    /// million plain files would otherwise carry 56 bytes each of
    /// nothing, a quarter of an entry. Never `Some` of all empty, so
    /// entries compare equal exactly when they record the same.
    rare: Option<Box<Rare>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Rare {
    target: Option<RawPath>,
    link_of: Option<RawPath>,
    xattrs: Vec<Xattr>,
}

impl Rare {
    fn is_empty(&self) -> bool {
        self.target.is_none() && self.link_of.is_none() && self.xattrs.is_empty()
    }
}

impl Entry {
    /// An entry with nothing but its path and type recorded.
    pub fn new(path: impl Into<RawPath>, kind: EntryKind) -> Entry {
        Entry {
            path: path.into(),
            kind,
            mode: 0,
            mtime_ns: 0,
            size: None,
            sha256: None,
            source_stat: None,
            uid: None,
            gid: None,
            rare: None,
        }
    }

    /// A symlink's target, exactly as the link holds it.
    pub fn target(&self) -> Option<&RawPath> {
        self.rare.as_ref()?.target.as_ref()
    }

    /// A hard link: the entry of the first path met of the same inode. The
    /// snapshot holds one copy (this path is a hard link to it) and a
    /// restore links the two again.
    pub fn link_of(&self) -> Option<&RawPath> {
        self.rare.as_ref()?.link_of.as_ref()
    }

    /// Extended attributes kept (`user.`, `trusted.`, `security.`, and
    /// the POSIX ACLs `system.posix_acl_access`/`_default`), by name.
    pub fn xattrs(&self) -> &[Xattr] {
        self.rare.as_ref().map_or(&[], |r| &r.xattrs)
    }

    pub fn set_target(&mut self, target: Option<RawPath>) {
        self.edit_rare(|r| r.target = target);
    }

    pub fn set_link_of(&mut self, first: Option<RawPath>) {
        self.edit_rare(|r| r.link_of = first);
    }

    pub fn set_xattrs(&mut self, xattrs: Vec<Xattr>) {
        self.edit_rare(|r| r.xattrs = xattrs);
    }

    /// [`Entry::set_target`], by value.
    pub fn with_target(mut self, target: impl Into<RawPath>) -> Entry {
        self.set_target(Some(target.into()));
        self
    }

    /// [`Entry::set_link_of`], by value.
    pub fn with_link_of(mut self, first: impl Into<RawPath>) -> Entry {
        self.set_link_of(Some(first.into()));
        self
    }

    /// [`Entry::set_xattrs`], by value.
    pub fn with_xattrs(mut self, xattrs: Vec<Xattr>) -> Entry {
        self.set_xattrs(xattrs);
        self
    }

    fn edit_rare(&mut self, edit: impl FnOnce(&mut Rare)) {
        let mut rare = self.rare.take().unwrap_or_default();
        edit(&mut rare);
        if !rare.is_empty() {
            self.rare = Some(rare);
        }
    }
}

/// One extended attribute: its name and value as exact bytes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "XattrIn")]
pub struct Xattr {
    pub name: RawPath,
    pub value: Vec<u8>,
}

/// A directory store's own directory, as it was captured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootDir {
    pub gid: u32,
    pub mode: u32,
    pub mtime_ns: i128,
    pub uid: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub xattrs: Vec<Xattr>,
}

/// [`Entry`] as written: keys in sorted order (the canonical form).
#[derive(Serialize)]
struct EntryOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    gid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    link_of: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    link_of_b64: Option<String>,
    mode: u32,
    mtime_ns: i128,
    path: Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    path_b64: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sha256: Option<&'a Checksum>,
    #[serde(skip_serializing_if = "Option::is_none")]
    size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    source_stat: Option<&'a SourceStat>,
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    target_b64: Option<String>,
    #[serde(rename = "type")]
    kind: EntryKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    uid: Option<u32>,
    #[serde(skip_serializing_if = "<[Xattr]>::is_empty")]
    xattrs: &'a [Xattr],
}

impl Serialize for Entry {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (path, path_b64) = raw::to_fields(self.path.as_bytes());
        let (target, target_b64) = split_fields(self.target());
        let (link_of, link_of_b64) = split_fields(self.link_of());
        EntryOut {
            gid: self.gid,
            link_of,
            link_of_b64,
            mode: self.mode,
            mtime_ns: self.mtime_ns,
            path,
            path_b64,
            sha256: self.sha256.as_ref(),
            size: self.size,
            source_stat: self.source_stat.as_ref(),
            target,
            target_b64,
            kind: self.kind,
            uid: self.uid,
            xattrs: self.xattrs(),
        }
        .serialize(serializer)
    }
}

fn split_fields(bytes: Option<&RawPath>) -> (Option<Cow<'_, str>>, Option<String>) {
    match bytes.map(|b| raw::to_fields(b.as_bytes())) {
        Some((readable, exact)) => (Some(readable), exact),
        None => (None, None),
    }
}

/// [`Entry`] as read; turned into one by `TryFrom`, which decodes and
/// checks the byte strings.
#[derive(Deserialize)]
struct EntryIn {
    #[serde(default)]
    gid: Option<u32>,
    #[serde(default)]
    link_of: Option<String>,
    #[serde(default)]
    link_of_b64: Option<String>,
    mode: u32,
    mtime_ns: i128,
    path: String,
    #[serde(default)]
    path_b64: Option<String>,
    #[serde(default)]
    sha256: Option<Checksum>,
    #[serde(default)]
    size: Option<u64>,
    #[serde(default)]
    source_stat: Option<SourceStat>,
    #[serde(default)]
    target: Option<String>,
    #[serde(default)]
    target_b64: Option<String>,
    #[serde(rename = "type")]
    kind: EntryKind,
    #[serde(default)]
    uid: Option<u32>,
    #[serde(default)]
    xattrs: Vec<Xattr>,
}

fn join_fields(
    field: &str,
    readable: Option<String>,
    b64: Option<String>,
) -> Result<Option<RawPath>, String> {
    match (readable, b64) {
        (None, None) => Ok(None),
        (None, Some(_)) => Err(format!("{field}_b64 without {field}")),
        (Some(r), b) => raw::from_fields(field, r, b).map(|v| Some(RawPath::from_bytes(v))),
    }
}

impl TryFrom<EntryIn> for Entry {
    type Error = String;

    fn try_from(e: EntryIn) -> Result<Entry, String> {
        let rare = Rare {
            target: join_fields("target", e.target, e.target_b64)?,
            link_of: join_fields("link_of", e.link_of, e.link_of_b64)?,
            xattrs: e.xattrs,
        };
        Ok(Entry {
            path: RawPath::from_bytes(raw::from_fields("path", e.path, e.path_b64)?),
            kind: e.kind,
            mode: e.mode,
            mtime_ns: e.mtime_ns,
            size: e.size,
            sha256: e.sha256,
            source_stat: e.source_stat,
            uid: e.uid,
            gid: e.gid,
            rare: (!rare.is_empty()).then(|| Box::new(rare)),
        })
    }
}

#[derive(Serialize)]
struct XattrOut<'a> {
    name: Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name_b64: Option<String>,
    value_b64: String,
}

impl Serialize for Xattr {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (name, name_b64) = raw::to_fields(self.name.as_bytes());
        XattrOut {
            name,
            name_b64,
            value_b64: raw::b64::encode(&self.value),
        }
        .serialize(serializer)
    }
}

#[derive(Deserialize)]
struct XattrIn {
    name: String,
    #[serde(default)]
    name_b64: Option<String>,
    value_b64: String,
}

impl TryFrom<XattrIn> for Xattr {
    type Error = String;

    fn try_from(x: XattrIn) -> Result<Xattr, String> {
        Ok(Xattr {
            name: RawPath::from_bytes(raw::from_fields("name", x.name, x.name_b64)?),
            value: raw::b64::decode(&x.value_b64).ok_or("value_b64 is not base64")?,
        })
    }
}

/// What must all be equal for a source file to count as unchanged: size
/// and mtime (in [`Entry`]) plus these. A rewrite in place changes ctime
/// even when mtime is forged back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceStat {
    pub ctime_ns: i64,
    pub dev: u64,
    pub ino: u64,
}

impl Manifest {
    pub fn total_bytes(&self) -> u64 {
        self.stores
            .iter()
            .map(StoreRecord::bytes)
            .fold(0, u64::saturating_add)
    }

    pub fn store(&self, name: &str) -> Option<&StoreRecord> {
        self.stores.iter().find(|s| s.name == name)
    }

    /// Semantic checks serde cannot express. Paths are checked here, on
    /// read, so nothing downstream ever joins an unchecked path.
    pub(crate) fn check_shape(&self, expected_id: &str) -> Result<(), String> {
        if self.id != expected_id {
            return Err(format!(
                "manifest says id {:?} but lives in snapshot {expected_id:?}",
                self.id
            ));
        }
        SnapshotId::parse(&self.id).map_err(|e| e.to_string())?;
        let mut names = BTreeSet::new();
        for store in &self.stores {
            if !crate::config::valid_store_name(&store.name) {
                return Err(format!("store name {:?} is not valid", store.name));
            }
            if !names.insert(store.name.as_str()) {
                return Err(format!("store {:?} is listed twice", store.name));
            }
            if store.status == StoreStatus::Absent && !store.entries.is_empty() {
                return Err(format!(
                    "store {:?} is absent but lists entries",
                    store.name
                ));
            }
            if store.status == StoreStatus::Captured
                && store.shape == Shape::File
                && (store.entries.len() != 1 || store.entries[0].path.as_bytes().contains(&b'/'))
            {
                return Err(format!(
                    "store {:?} is a single-file store but lists {} entries",
                    store.name,
                    store.entries.len()
                ));
            }
            // A forged manifest could make a file store's one entry a link:
            // validation would then "hash" nothing and the kind's check
            // would follow it. The shape says what the entry must be.
            if store.shape == Shape::File
                && store
                    .entries
                    .iter()
                    .any(|e| e.kind != EntryKind::File || e.link_of().is_some())
            {
                return Err(format!(
                    "store {:?} is a single-file store but its entry is not a regular file",
                    store.name
                ));
            }
            if let Some(root) = &store.root {
                check_mode(root.mode)
                    .and_then(|()| check_xattrs(&root.xattrs))
                    .map_err(|why| format!("store {:?}: its root directory {why}", store.name))?;
            }
            let entries = &store.entries;
            let at = |i: usize| entries[i].path.as_bytes();
            let mut paths = PathIndex::with_capacity(entries.len());
            for (i, entry) in entries.iter().enumerate() {
                check_rel_path(entry.path.as_bytes()).map_err(|why| {
                    format!("store {:?}: entry path {:?} {why}", store.name, entry.path)
                })?;
                if paths.insert(i, at).is_err() {
                    return Err(format!(
                        "store {:?}: entry {:?} is listed twice",
                        store.name, entry.path
                    ));
                }
                entry.check_fields().map_err(|why| {
                    format!("store {:?}: entry {:?} {why}", store.name, entry.path)
                })?;
            }
            let by_path = |path: &[u8]| paths.find(path, at).map(|i| &entries[i]);
            for entry in entries {
                // Every parent is listed as a directory, so restore can
                // create the tree from the manifest alone.
                if let (Some(parent), _) = entry.path.split_last() {
                    if !by_path(parent).is_some_and(|p| p.kind == EntryKind::Dir) {
                        return Err(format!(
                            "store {:?}: entry {:?} has no directory entry for {:?}",
                            store.name,
                            entry.path,
                            raw::shown(parent)
                        ));
                    }
                }
                // A hard link names a file entry of the same content that
                // is not itself a link, so restore links to a file it made.
                if let Some(first) = entry.link_of() {
                    let ok = by_path(first.as_bytes()).is_some_and(|f| {
                        f.kind == EntryKind::File
                            && f.link_of().is_none()
                            && f.size == entry.size
                            && f.sha256 == entry.sha256
                    });
                    if !ok {
                        return Err(format!(
                            "store {:?}: entry {:?} is a hard link of {first:?}, which is not a file entry of the same size and sha256",
                            store.name, entry.path
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

impl Entry {
    fn check_fields(&self) -> Result<(), &'static str> {
        match self.kind {
            EntryKind::File => {
                // The digits themselves were checked by `Checksum`'s parser.
                if self.sha256.is_none() {
                    return Err("is a file without sha256");
                }
                if self.size.is_none() {
                    return Err("is a file without size");
                }
            }
            EntryKind::Symlink => {
                let target = self.target().ok_or("is a symlink without target")?;
                if target.is_empty() || target.as_bytes().contains(&0) {
                    return Err("has an empty symlink target");
                }
            }
            EntryKind::Dir => {}
        }
        if self.link_of().is_some() && self.kind != EntryKind::File {
            return Err("is a hard link but not a file");
        }
        if self.kind != EntryKind::Symlink && self.target().is_some() {
            return Err("has a symlink target but is not a symlink");
        }
        check_mode(self.mode)?;
        check_xattrs(self.xattrs())
    }
}

fn check_mode(mode: u32) -> Result<(), &'static str> {
    if mode & !0o7777 != 0 {
        return Err("has mode bits beyond 0o7777");
    }
    Ok(())
}

/// Attribute names are non-empty, hold no NUL and are listed once.
fn check_xattrs(xattrs: &[Xattr]) -> Result<(), &'static str> {
    let mut names = BTreeSet::new();
    for x in xattrs {
        if x.name.is_empty() || x.name.as_bytes().contains(&0) {
            return Err("has an extended attribute with an empty name or a NUL in it");
        }
        if !names.insert(x.name.as_bytes()) {
            return Err("lists an extended attribute twice");
        }
    }
    Ok(())
}

/// A manifest path is relative, `/`-separated and normalised: no leading
/// `/`, no empty, `.` or `..` component, no NUL. Every other byte is part
/// of a name, as on Linux (a backslash, a newline, bytes that are not
/// UTF-8): the capture records exactly these names, and only these.
pub fn check_rel_path(path: impl AsRef<[u8]>) -> Result<(), &'static str> {
    let path = path.as_ref();
    if path.is_empty() {
        return Err("is empty");
    }
    if path.starts_with(b"/") {
        return Err("is absolute");
    }
    if path.contains(&0) {
        return Err("contains a NUL");
    }
    for comp in path.split(|b| *b == b'/') {
        match comp {
            b"" => return Err("has an empty component"),
            b"." | b".." => return Err("has a `.` or `..` component"),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::problem::codes;

    pub(super) fn sample() -> Manifest {
        Manifest {
            format_version: FORMAT_VERSION,
            id: "20260406T180000Z".into(),
            created_at: "2026-04-06T18:00:00Z".parse().unwrap(),
            tool_version: "0.0.0".into(),
            host: "h".into(),
            tags: vec!["nightly".into()],
            restore_of: None,
            stores: vec![StoreRecord {
                name: "chroma".into(),
                kind: "chroma-dir".into(),
                source: "/data/chroma".into(),
                status: StoreStatus::Captured,
                shape: Shape::Dir,
                metadata: Default::default(),
                options: Default::default(),
                root: None,
                warnings: vec![],
                entries: vec![
                    Entry {
                        mode: 0o755,
                        mtime_ns: 1,
                        ..Entry::new("seg", EntryKind::Dir)
                    },
                    Entry {
                        mode: 0o644,
                        mtime_ns: 2,
                        size: Some(3),
                        sha256: Some(Checksum::of(b"abc")),
                        ..Entry::new("seg/data.bin", EntryKind::File)
                    },
                ],
            }],
        }
    }

    #[test]
    fn round_trips_and_detects_any_edit() {
        let m = sample();
        let bytes = m.to_bytes();
        assert_eq!(Manifest::parse(&bytes, &m.id).unwrap(), m);
        let text = String::from_utf8(bytes).unwrap();
        let edited = text.replace("\"size\":3", "\"size\":4");
        assert_ne!(edited, text);
        let p = Manifest::parse(edited.as_bytes(), &m.id).unwrap_err();
        assert_eq!(p.code, codes::MANIFEST_DIGEST_MISMATCH);
    }

    #[test]
    fn reads_version_1_manifests_and_round_trips_options() {
        let mut old = sample();
        old.format_version = 1;
        assert_eq!(Manifest::parse(&old.to_bytes(), &old.id).unwrap(), old);

        let mut m = sample();
        m.stores[0]
            .options
            .insert("lock_file".into(), "data/.lock".into());
        m.stores[0].options.insert("timeout".into(), 5.into());
        let bytes = m.to_bytes();
        assert_eq!(Manifest::parse(&bytes, &m.id).unwrap(), m);
        // Through the any-layout path too (the canonical form sorts keys).
        let pretty =
            serde_json::to_vec_pretty(&serde_json::from_slice::<Value>(&bytes).unwrap()).unwrap();
        assert_eq!(Manifest::parse(&pretty, &m.id).unwrap(), m);
    }

    #[test]
    fn times_past_what_an_i64_of_nanoseconds_holds_round_trip_in_both_layouts() {
        let mut m = sample();
        // 2300-01-01T00:00:00.123456789Z (past i64::MAX ns, 2262), the
        // last second XFS keeps (2486), and 1950.
        m.stores[0].entries[0].mtime_ns = 10_413_792_000_123_456_789;
        m.stores[0].entries[1].mtime_ns = 16_299_260_425_999_999_999;
        m.stores[0].root = Some(RootDir {
            gid: 0,
            mode: 0o755,
            mtime_ns: -631_152_000_000_000_000,
            uid: 0,
            xattrs: vec![],
        });
        let bytes = m.to_bytes();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.contains("\"mtime_ns\":10413792000123456789"), "{text}");
        assert_eq!(Manifest::parse(&bytes, &m.id).unwrap(), m);
        let pretty =
            serde_json::to_vec_pretty(&serde_json::from_slice::<Value>(&bytes).unwrap()).unwrap();
        assert_eq!(Manifest::parse(&pretty, &m.id).unwrap(), m);
    }

    #[test]
    fn a_file_store_whose_entry_is_not_a_regular_file_is_refused() {
        let mut m = sample();
        m.stores[0].shape = Shape::File;
        m.stores[0].entries = vec![Entry {
            mode: 0o777,
            mtime_ns: 1,
            ..Entry::new("app.db", EntryKind::Symlink)
        }
        .with_target("/etc/shadow")];
        let p = Manifest::parse(&m.to_bytes(), &m.id).unwrap_err();
        assert_eq!(p.code, codes::MANIFEST_INVALID);
        assert!(p.detail.contains("not a regular file"), "{p}");
    }

    #[test]
    fn refuses_newer_versions_and_garbage() {
        let mut v: Value = serde_json::from_slice(&sample().to_bytes()).unwrap();
        v["format_version"] = (FORMAT_VERSION + 1).into();
        let p = Manifest::parse(v.to_string().as_bytes(), "20260406T180000Z").unwrap_err();
        assert_eq!(p.code, codes::MANIFEST_UNSUPPORTED_VERSION);
        for garbage in [
            &b""[..],
            b"{",
            b"[]",
            b"\xff\xfe",
            b"{\"format_version\": 1e400}",
        ] {
            let p = Manifest::parse(garbage, "20260406T180000Z").unwrap_err();
            assert_eq!(p.code, codes::MANIFEST_INVALID, "{garbage:?}");
        }
    }

    #[test]
    fn refuses_hostile_paths_even_with_a_valid_digest() {
        // A backslash is a byte of a name like any other.
        let mut m = sample();
        m.stores[0].entries[1].path = "seg/a\\b".into();
        assert!(Manifest::parse(&m.to_bytes(), &m.id).is_ok());
        for bad in [
            "../etc/passwd",
            "/etc/passwd",
            "seg//x",
            "seg/./x",
            "seg/../../x",
            "",
        ] {
            let mut m = sample();
            m.stores[0].entries[1].path = bad.into();
            let p = Manifest::parse(&m.to_bytes(), &m.id).unwrap_err();
            assert_eq!(p.code, codes::MANIFEST_INVALID, "{bad:?}");
        }
        let mut m = sample();
        let dup = m.stores[0].entries[1].clone();
        m.stores[0].entries.push(dup);
        let p = Manifest::parse(&m.to_bytes(), &m.id).unwrap_err();
        assert!(p.detail.contains("listed twice"), "{}", p.detail);
    }

    /// Every name Linux allows, with everything version 3 records.
    pub(super) fn every_case() -> Manifest {
        let mut m = sample();
        let store = &mut m.stores[0];
        store.root = Some(RootDir {
            gid: 1000,
            mode: 0o2770,
            mtime_ns: 5,
            uid: 1000,
            xattrs: vec![Xattr {
                name: "system.posix_acl_default".into(),
                value: vec![2, 0, 0, 0, 1, 0, 7, 0],
            }],
        });
        let file = |path: RawPath| Entry {
            mode: 0o4755,
            mtime_ns: 3,
            size: Some(3),
            sha256: Some(Checksum::of(b"abc")),
            uid: Some(1000),
            gid: Some(1000),
            ..Entry::new(path, EntryKind::File)
        };
        store.entries.push(file("seg/back\\slash".into()));
        store.entries.push(file("seg/line\nbreak".into()));
        store.entries.push(
            file(RawPath::from_bytes(&b"seg/caf\xe9"[..])).with_xattrs(vec![
                Xattr {
                    name: "user.origin".into(),
                    value: b"seed".to_vec(),
                },
                Xattr {
                    name: RawPath::from_bytes(&b"user.\xff"[..]),
                    value: vec![0, 0xff],
                },
            ]),
        );
        store.entries.push(
            file(RawPath::from_bytes(&b"seg/\xff-link"[..]))
                .with_link_of(RawPath::from_bytes(&b"seg/caf\xe9"[..])),
        );
        store.entries.push(
            Entry {
                mode: 0o777,
                ..Entry::new("seg/odd-link", EntryKind::Symlink)
            }
            .with_target(RawPath::from_bytes(&b"../\xfe"[..])),
        );
        m
    }

    #[test]
    fn version_3_records_every_name_and_its_metadata_losslessly() {
        let m = every_case();
        let bytes = m.to_bytes();
        assert_eq!(Manifest::parse(&bytes, &m.id).unwrap(), m);
        let pretty =
            serde_json::to_vec_pretty(&serde_json::from_slice::<Value>(&bytes).unwrap()).unwrap();
        assert_eq!(Manifest::parse(&pretty, &m.id).unwrap(), m);
        // Readable where it can be, exact beside it where it cannot.
        let text = String::from_utf8(bytes).unwrap();
        for expected in [
            r#""path":"seg/back\\slash""#,
            r#""path":"seg/line\nbreak""#,
            r#""path":"seg/caf\\xe9","path_b64":"c2VnL2NhZuk=""#,
            r#""link_of":"seg/caf\\xe9","link_of_b64":"c2VnL2NhZuk=""#,
            r#""target":"../\\xfe","target_b64":"Li4v/g==""#,
            r#""name":"user.origin","value_b64":"c2VlZA==""#,
            r#""gid":1000"#,
            r#""uid":1000"#,
            r#""root":{"gid":1000,"mode":1528"#,
        ] {
            assert!(text.contains(expected), "{expected} not in {text}");
        }
        assert!(!text.contains(r#""path":"seg/line\nbreak","path_b64""#));
    }

    #[test]
    fn what_few_entries_have_is_boxed_only_while_something_is_recorded() {
        let plain = Entry::new("seg/a", EntryKind::File);
        let x = Xattr {
            name: "user.a".into(),
            value: b"v".to_vec(),
        };
        let mut edited = plain
            .clone()
            .with_xattrs(vec![x.clone()])
            .with_link_of("seg/b");
        assert_eq!(edited.xattrs(), [x]);
        assert_eq!(edited.link_of(), Some(&RawPath::from("seg/b")));
        assert_eq!(edited.target(), None);
        assert_ne!(edited, plain);
        edited.set_xattrs(Vec::new());
        assert!(edited.rare.is_some(), "the link is still recorded");
        edited.set_link_of(None);
        // Nothing recorded is no box at all, so the two are equal.
        assert!(edited.rare.is_none());
        assert_eq!(edited, plain);
        // A plain file read back holds no box either.
        let m = sample();
        let read = Manifest::parse(&m.to_bytes(), &m.id).unwrap();
        assert!(read.stores[0].entries.iter().all(|e| e.rare.is_none()));
        // The point of it: an entry of a million stays small (136 bytes,
        // and 8 more for a 128-bit mtime).
        assert!(std::mem::size_of::<Entry>() <= 144);
    }

    #[test]
    fn reads_version_2_manifests_without_owners_or_attributes() {
        let mut old = sample();
        old.format_version = 2;
        let parsed = Manifest::parse(&old.to_bytes(), &old.id).unwrap();
        assert_eq!(parsed, old);
        assert!(parsed.stores[0]
            .entries
            .iter()
            .all(|e| e.uid.is_none() && e.xattrs().is_empty() && e.link_of().is_none()));
    }

    #[test]
    fn refuses_forged_names_links_and_modes() {
        type Edit = Box<dyn Fn(&mut Manifest)>;
        let edits: Vec<(&str, Edit)> = vec![
            (
                "a NUL in a name",
                Box::new(|m| m.stores[0].entries[1].path = RawPath::from_bytes(&b"seg/a\0b"[..])),
            ),
            (
                "mode bits beyond 0o7777",
                Box::new(|m| m.stores[0].entries[1].mode = 0o100644),
            ),
            (
                "a hard link of a directory",
                Box::new(|m| m.stores[0].entries[1].set_link_of(Some("seg".into()))),
            ),
            (
                "a hard link of nothing",
                Box::new(|m| m.stores[0].entries[1].set_link_of(Some("seg/none".into()))),
            ),
            (
                "a hard link of another content",
                Box::new(|m| {
                    let mut other = m.stores[0].entries[1].clone();
                    other.path = "seg/other".into();
                    other.sha256 = Some(Checksum::of(b"xyz"));
                    m.stores[0].entries.push(other);
                    m.stores[0].entries[1].set_link_of(Some("seg/other".into()));
                }),
            ),
            (
                "an attribute listed twice",
                Box::new(|m| {
                    let x = Xattr {
                        name: "user.a".into(),
                        value: vec![],
                    };
                    m.stores[0].entries[1].set_xattrs(vec![x.clone(), x]);
                }),
            ),
        ];
        for (what, edit) in edits {
            let mut m = sample();
            edit(&mut m);
            let p = Manifest::parse(&m.to_bytes(), &m.id).unwrap_err();
            assert_eq!(p.code, codes::MANIFEST_INVALID, "{what}: {p}");
        }
        // A readable form that disagrees with the exact bytes, resealed.
        let m = every_case();
        let mut v: Value = serde_json::from_slice(&m.to_bytes()).unwrap();
        v["stores"][0]["entries"][4]["path"] = "seg/innocent".into();
        v.as_object_mut().unwrap().remove("digest");
        let digest = digest_of(&v);
        v["digest"] = digest.into();
        let p = Manifest::parse(v.to_string().as_bytes(), &m.id).unwrap_err();
        assert_eq!(p.code, codes::MANIFEST_INVALID, "{p}");
        assert!(p.detail.contains("readable form"), "{p}");
    }

    #[test]
    fn refuses_a_manifest_moved_to_another_id() {
        let m = sample();
        let p = Manifest::parse(&m.to_bytes(), "20260407T180000Z").unwrap_err();
        assert_eq!(p.code, codes::MANIFEST_INVALID);
    }
}
