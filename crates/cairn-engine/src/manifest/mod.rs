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

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use crate::checksum::Checksum;
use crate::id::SnapshotId;
pub use codec::digest_of;

/// Bumped when a field changes meaning or a reader must not ignore a new
/// one. Readers refuse a newer version and read every older one.
/// Version 2 added a store's `options` (so a snapshot of a store no longer
/// configured can still be checked by its plug-in).
pub const FORMAT_VERSION: u64 = 2;
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Permission bits of the source (`st_mode & 0o7777`).
    pub mode: u32,
    /// Source modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<Checksum>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Identity of the source file when it was captured, so the next
    /// snapshot can tell it is unchanged and hard-link this copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_stat: Option<SourceStat>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(rename = "type")]
    pub kind: EntryKind,
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
                && (store.entries.len() != 1 || store.entries[0].path.contains('/'))
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
            if store.shape == Shape::File && store.entries.iter().any(|e| e.kind != EntryKind::File)
            {
                return Err(format!(
                    "store {:?} is a single-file store but its entry is not a regular file",
                    store.name
                ));
            }
            let mut paths = BTreeSet::new();
            for entry in &store.entries {
                check_rel_path(&entry.path).map_err(|why| {
                    format!("store {:?}: entry path {:?} {why}", store.name, entry.path)
                })?;
                if !paths.insert(entry.path.as_str()) {
                    return Err(format!(
                        "store {:?}: entry {:?} is listed twice",
                        store.name, entry.path
                    ));
                }
                entry.check_fields().map_err(|why| {
                    format!("store {:?}: entry {:?} {why}", store.name, entry.path)
                })?;
            }
            // Every parent is listed as a directory, so restore can create
            // the tree from the manifest alone.
            let dirs: BTreeSet<&str> = store
                .entries
                .iter()
                .filter(|e| e.kind == EntryKind::Dir)
                .map(|e| e.path.as_str())
                .collect();
            for entry in &store.entries {
                if let Some((parent, _)) = entry.path.rsplit_once('/') {
                    if !dirs.contains(parent) {
                        return Err(format!(
                            "store {:?}: entry {:?} has no directory entry for {parent:?}",
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
                let target = self
                    .target
                    .as_deref()
                    .ok_or("is a symlink without target")?;
                if target.is_empty() || target.contains('\0') {
                    return Err("has an empty symlink target");
                }
            }
            EntryKind::Dir => {}
        }
        Ok(())
    }
}

/// A manifest path is relative, `/`-separated and normalised: no leading
/// `/`, no empty, `.` or `..` component, no NUL, no backslash.
pub fn check_rel_path(path: &str) -> Result<(), &'static str> {
    if path.is_empty() {
        return Err("is empty");
    }
    if path.starts_with('/') {
        return Err("is absolute");
    }
    if path.contains('\0') || path.contains('\\') {
        return Err("contains a NUL or backslash");
    }
    for comp in path.split('/') {
        match comp {
            "" => return Err("has an empty component"),
            "." | ".." => return Err("has a `.` or `..` component"),
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
                warnings: vec![],
                entries: vec![
                    Entry {
                        path: "seg".into(),
                        kind: EntryKind::Dir,
                        mode: 0o755,
                        mtime_ns: 1,
                        size: None,
                        sha256: None,
                        target: None,
                        source_stat: None,
                    },
                    Entry {
                        path: "seg/data.bin".into(),
                        kind: EntryKind::File,
                        mode: 0o644,
                        mtime_ns: 2,
                        size: Some(3),
                        sha256: Some(Checksum::of(b"abc")),
                        target: None,
                        source_stat: None,
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
    fn a_file_store_whose_entry_is_not_a_regular_file_is_refused() {
        let mut m = sample();
        m.stores[0].shape = Shape::File;
        m.stores[0].entries = vec![Entry {
            path: "app.db".into(),
            kind: EntryKind::Symlink,
            mode: 0o777,
            mtime_ns: 1,
            size: None,
            sha256: None,
            target: Some("/etc/shadow".into()),
            source_stat: None,
        }];
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

    #[test]
    fn refuses_a_manifest_moved_to_another_id() {
        let m = sample();
        let p = Manifest::parse(&m.to_bytes(), "20260407T180000Z").unwrap_err();
        assert_eq!(p.code, codes::MANIFEST_INVALID);
    }
}
