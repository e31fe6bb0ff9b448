//! The checksummed manifest (`snapshots/<ID>/manifest.json`); the format is
//! specified in `docs/manifest.md`.
//!
//! The `digest` field is the SHA-256 of the manifest's canonical form: the
//! JSON document without its `digest` key, keys sorted, no whitespace. Any
//! edit to any field changes it. Reading is defensive: the bytes come from
//! disk and may be anything, so every failure is a [`Problem`] with a code,
//! never a panic.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::fsutil;
use crate::id::SnapshotId;
use crate::problem::{codes, Problem};

/// Bumped when a field changes meaning. Readers refuse a newer version;
/// fields may be added without a bump (readers ignore unknown fields).
pub const FORMAT_VERSION: u64 = 1;
pub const FILE_NAME: &str = "manifest.json";
/// Far above any real manifest (a million entries is ~200 MB); a guard
/// against reading an arbitrarily large hostile file into memory.
const MAX_MANIFEST_BYTES: u64 = 512 * 1024 * 1024;
/// How a manifest written by Cairn starts; the digest follows.
const DIGEST_PREFIX: &[u8] = b"{\"digest\":\"";

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

    pub fn bytes(&self) -> u64 {
        self.entries.iter().filter_map(|e| e.size).sum()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
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
    pub sha256: Option<String>,
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
        self.stores.iter().map(StoreRecord::bytes).sum()
    }

    pub fn store(&self, name: &str) -> Option<&StoreRecord> {
        self.stores.iter().find(|s| s.name == name)
    }

    /// The manifest as written to disk: `{"digest":"<hex>",` followed by
    /// the rest of the canonical form. Serializing the typed struct gives
    /// the canonical form directly (fields declared in key order, maps
    /// sorted), so no intermediate JSON tree is built: memory stays at the
    /// size of the output, not several times it.
    pub fn to_bytes(&self) -> Vec<u8> {
        // A Manifest always serializes: every field is a plain value.
        let canonical = serde_json::to_vec(self).unwrap_or_else(|_| b"{}".to_vec());
        let digest = fsutil::hex(&Sha256::digest(&canonical));
        let mut out = Vec::with_capacity(canonical.len() + DIGEST_PREFIX.len() + 68);
        out.extend_from_slice(DIGEST_PREFIX);
        out.extend_from_slice(digest.as_bytes());
        out.extend_from_slice(b"\"");
        if canonical.len() > 2 {
            out.push(b',');
        }
        out.extend_from_slice(&canonical[1..]);
        out.push(b'\n');
        out
    }

    /// Writes `manifest.json` into `dir` and syncs it.
    pub fn write_to(&self, dir: &Path) -> crate::Result<()> {
        let path = dir.join(FILE_NAME);
        let mut file =
            std::fs::File::create(&path).map_err(crate::error::io_at("create", &path))?;
        file.write_all(&self.to_bytes())
            .map_err(crate::error::io_at("write", &path))?;
        file.sync_all()
            .map_err(crate::error::io_at("sync", &path))?;
        drop(file);
        fsutil::make_read_only(&path)
    }

    /// Reads and checks `dir/manifest.json` for the snapshot `expected_id`.
    pub fn read_from(dir: &Path, expected_id: &str) -> Result<Manifest, Problem> {
        let path = dir.join(FILE_NAME);
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(
                    Problem::new(codes::MANIFEST_MISSING, "manifest.json is missing").at(FILE_NAME),
                )
            }
            Err(e) => {
                return Err(
                    Problem::new(codes::READ_FAILED, format!("cannot stat: {e}")).at(FILE_NAME),
                )
            }
        };
        if !meta.is_file() {
            return Err(Problem::new(
                codes::MANIFEST_INVALID,
                "manifest.json is not a regular file",
            )
            .at(FILE_NAME));
        }
        if meta.len() > MAX_MANIFEST_BYTES {
            return Err(Problem::new(
                codes::MANIFEST_INVALID,
                format!(
                    "manifest.json is {} bytes, over the {MAX_MANIFEST_BYTES}-byte limit",
                    meta.len()
                ),
            )
            .at(FILE_NAME));
        }
        let bytes = std::fs::read(&path).map_err(|e| {
            Problem::new(codes::READ_FAILED, format!("cannot read: {e}")).at(FILE_NAME)
        })?;
        Manifest::parse(&bytes, expected_id).map_err(|p| p.at(FILE_NAME))
    }

    /// Parses manifest bytes; every failure is a coded [`Problem`].
    pub fn parse(bytes: &[u8], expected_id: &str) -> Result<Manifest, Problem> {
        if let Some(manifest) = Manifest::parse_as_written(bytes, expected_id) {
            return Ok(manifest);
        }
        Manifest::parse_any_layout(bytes, expected_id)
    }

    /// The fast path for a manifest exactly as [`Manifest::to_bytes`]
    /// writes it: the digest is checked over the bytes themselves and the
    /// struct is read without building a JSON tree. `None` for anything
    /// else (reformatted, damaged, another version): the full path decides.
    fn parse_as_written(bytes: &[u8], expected_id: &str) -> Option<Manifest> {
        let rest = bytes.strip_prefix(DIGEST_PREFIX)?;
        let (recorded, rest) = (rest.get(..64)?, rest.get(64..)?);
        let body = rest.strip_prefix(b"\",")?;
        let body = body.strip_suffix(b"\n").unwrap_or(body);
        let mut hasher = Sha256::new();
        hasher.update(b"{");
        hasher.update(body);
        if fsutil::hex(&hasher.finalize()).as_bytes() != recorded {
            return None;
        }
        let manifest: Manifest = serde_json::from_slice(bytes).ok()?;
        if manifest.format_version != FORMAT_VERSION {
            return None;
        }
        manifest.check_shape(expected_id).ok()?;
        Some(manifest)
    }

    /// Any valid JSON layout: canonicalized through a JSON tree.
    fn parse_any_layout(bytes: &[u8], expected_id: &str) -> Result<Manifest, Problem> {
        let invalid = |detail: String| Problem::new(codes::MANIFEST_INVALID, detail);
        let mut value: Value =
            serde_json::from_slice(bytes).map_err(|e| invalid(format!("not JSON: {e}")))?;
        let map = value
            .as_object_mut()
            .ok_or_else(|| invalid("not a JSON object".into()))?;

        match map.get("format_version").map(Value::as_u64) {
            Some(Some(v)) if v == FORMAT_VERSION => {}
            Some(Some(v)) if v > FORMAT_VERSION => {
                return Err(Problem::new(
                    codes::MANIFEST_UNSUPPORTED_VERSION,
                    format!(
                        "format_version {v} is newer than this cairn reads ({FORMAT_VERSION}); upgrade cairn"
                    ),
                ))
            }
            _ => return Err(invalid("format_version missing or not a supported version".into())),
        }

        let recorded = match map.remove("digest") {
            Some(Value::String(s)) => s,
            _ => return Err(invalid("digest missing or not a string".into())),
        };
        let actual = digest_of(&value);
        if recorded != actual {
            return Err(Problem::new(
                codes::MANIFEST_DIGEST_MISMATCH,
                format!("recorded digest {recorded} but content hashes to {actual}: the manifest was edited or damaged"),
            ));
        }

        let manifest: Manifest =
            serde_json::from_value(value).map_err(|e| invalid(format!("bad field: {e}")))?;
        manifest.check_shape(expected_id).map_err(invalid)?;
        Ok(manifest)
    }

    /// Semantic checks serde cannot express. Paths are checked here, on
    /// read, so nothing downstream ever joins an unchecked path.
    fn check_shape(&self, expected_id: &str) -> Result<(), String> {
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
                let hash = self.sha256.as_deref().ok_or("is a file without sha256")?;
                if self.size.is_none() {
                    return Err("is a file without size");
                }
                if hash.len() != 64 || !hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
                {
                    return Err("has a sha256 that is not 64 lowercase hex digits");
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

/// SHA-256 (lowercase hex) of the canonical form of `value`.
pub fn digest_of(value: &Value) -> String {
    let mut canonical = Vec::with_capacity(4096);
    write_canonical(value, &mut canonical);
    fsutil::hex(&Sha256::digest(&canonical))
}

/// Keys sorted, no whitespace; scalars exactly as serde_json writes them.
fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            out.push(b'{');
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_scalar(&Value::String(key.clone()), out);
                out.push(b':');
                write_canonical(&map[key], out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        scalar => write_scalar(scalar, out),
    }
}

fn write_scalar(value: &Value, out: &mut Vec<u8>) {
    // Writing a scalar Value into a Vec cannot fail.
    let _ = serde_json::to_writer(out, value);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
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
                        sha256: Some("a".repeat(64)),
                        target: None,
                        source_stat: None,
                    },
                ],
            }],
        }
    }

    #[test]
    fn the_struct_serializes_to_the_canonical_form() {
        let mut m = sample();
        // Metadata inserted out of order, nested objects too.
        let meta = &mut m.stores[0].metadata;
        meta.insert(
            "zeta".into(),
            serde_json::json!({"b": 1, "a": [2, {"d": 3, "c": 4}]}),
        );
        meta.insert("alpha".into(), "x\"y\u{e9}".into());
        m.stores[0].entries[1].source_stat = Some(SourceStat {
            ctime_ns: 5,
            dev: 6,
            ino: 7,
        });
        m.restore_of = Some("20260405T180000Z".into());
        let direct = serde_json::to_vec(&m).unwrap();
        let mut via_tree = Vec::new();
        write_canonical(&serde_json::to_value(&m).unwrap(), &mut via_tree);
        assert_eq!(
            String::from_utf8(direct).unwrap(),
            String::from_utf8(via_tree).unwrap()
        );
        // And the written file verifies through both read paths.
        let bytes = m.to_bytes();
        assert_eq!(Manifest::parse_as_written(&bytes, &m.id).unwrap(), m);
        assert_eq!(Manifest::parse_any_layout(&bytes, &m.id).unwrap(), m);
        let pretty =
            serde_json::to_vec_pretty(&serde_json::from_slice::<Value>(&bytes).unwrap()).unwrap();
        assert!(Manifest::parse_as_written(&pretty, &m.id).is_none());
        assert_eq!(Manifest::parse(&pretty, &m.id).unwrap(), m);
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
    fn refuses_newer_versions_and_garbage() {
        let mut v: Value = serde_json::from_slice(&sample().to_bytes()).unwrap();
        v["format_version"] = 2.into();
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
