//! `cairn import-legacy`: adopt the snapshots the reference system made.
//!
//! Its layout (ops/backup.py): `DIR/snapshots/<YYYYMMDDTHHMMSSZ>/` holding
//! `backup-metadata.json` (`created_at`, `db_snapshot_path`,
//! `db_size_bytes`, `registry_snapshot_path`, `chroma_snapshot_path`,
//! `chroma_snapshot_files`, `chroma_snapshot_bytes`, …), `db/<file>` (an
//! SQLite online backup), `config/<registry file>` and an optional
//! `chroma/` tree (a cold copy).
//!
//! Each legacy snapshot becomes a Cairn snapshot with the same id through
//! the ordinary capture (`snapshot::capture_checked`): the configured
//! stores pointed at the legacy files, every byte read and hashed into a
//! manifest, each store validated, built in `tmp/` and published by one
//! rename, so a killed import leaves nothing that looks complete. The
//! front end says which configured store takes each part (the engine
//! never names a kind). A dry run builds and validates each one the same
//! way and then removes the build.
//!
//! DIR is untrusted input: everything below it is opened by descriptor
//! with `O_NOFOLLOW` (a symlink anywhere in a legacy snapshot is reported,
//! never followed), the metadata file is read only up to
//! [`METADATA_CAP`], its paths are used only for their last component
//! (the files are looked for in the layout, never where the old machine
//! kept them), and names are carried as they are for the front end to
//! escape.

use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::config::Config;
use crate::dirfd::{self, DirFd};
use crate::error::{Error, Result};
use crate::id::SnapshotId;
use crate::problem::Problem;
use crate::repo::Repository;
use crate::snapshot::{self, Plan, Publish};
use crate::stores::Stores;

/// The metadata file the reference wrote beside each snapshot.
pub const METADATA_FILE: &str = "backup-metadata.json";
/// A metadata file larger than this is not read (the reference's are a
/// few hundred bytes).
pub const METADATA_CAP: u64 = 1 << 20;
/// The tag every imported snapshot carries.
pub const TAG_IMPORTED: &str = "imported";
/// The tag of one imported with problems (`include_damaged`).
pub const TAG_DAMAGED: &str = "import-damaged";

/// A part of a reference snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Part {
    /// `db/<file>`: the SQLite database.
    Db,
    /// `config/<file>`: the project registry.
    Registry,
    /// `chroma/`: the vector store's directory.
    Chroma,
}

impl Part {
    pub const ALL: [Part; 3] = [Part::Db, Part::Registry, Part::Chroma];

    /// Its directory in a reference snapshot.
    pub fn dir(self) -> &'static str {
        match self {
            Part::Db => "db",
            Part::Registry => "config",
            Part::Chroma => "chroma",
        }
    }
}

#[derive(Debug, Clone)]
pub struct ImportRequest {
    pub dir: PathBuf,
    /// Import; without it, build and validate each, then remove the build.
    pub confirm: bool,
    /// Import snapshots with problems too (tagged [`TAG_DAMAGED`]).
    pub include_damaged: bool,
    /// The configured store that takes each part (chosen by kind by the
    /// front end); a part with none is reported.
    pub stores: Vec<(Part, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Dry run: sound, would be imported.
    WouldImport,
    /// Dry run: has problems; would be imported only with `include_damaged`.
    WouldImportDamaged,
    Imported,
    /// Imported with problems (`include_damaged`), tagged so.
    ImportedDamaged,
    /// Has problems and was not imported.
    Damaged,
    /// A snapshot with this id is already in the repository: skipped.
    Exists,
    /// Not a legacy snapshot at all (not an id, not a directory): left alone.
    NotASnapshot,
}

/// One part found (or looked for) in a legacy snapshot.
#[derive(Debug, Clone)]
pub struct FoundPart {
    pub part: Part,
    /// The configured store that takes it, if any.
    pub store: Option<String>,
    /// Its path inside the legacy snapshot (`db/atocore.db`, `chroma`).
    pub path: PathBuf,
}

#[derive(Debug, Clone)]
pub struct LegacySnapshot {
    /// The directory's name, exactly.
    pub name: OsString,
    pub id: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
    pub outcome: Outcome,
    /// What is wrong with it, found before copying anything.
    pub problems: Vec<String>,
    pub parts: Vec<FoundPart>,
    /// What validating the built snapshot found (the kinds' own checks:
    /// SQLite integrity, JSON parses, …).
    pub validation: Vec<Problem>,
    pub bytes: u64,
}

#[derive(Debug)]
pub struct ImportReport {
    pub dir: PathBuf,
    pub dry_run: bool,
    pub include_damaged: bool,
    pub snapshots: Vec<LegacySnapshot>,
}

pub fn run(cfg: &Config, req: &ImportRequest) -> Result<ImportReport> {
    let dir = std::path::absolute(&req.dir).unwrap_or_else(|_| req.dir.clone());
    let Some(resolved) = dirfd::resolve_existing(&dir, false)? else {
        return Err(Error::SourceMissing { path: dir });
    };
    if !resolved.stat.as_ref().is_some_and(dirfd::is_dir) {
        return Err(Error::SourceType {
            path: dir,
            expected: "a directory (the reference system's backup directory)",
        });
    }
    let root = resolved.open_dir()?;
    let snapshots = root
        .open_dir(OsStr::new("snapshots"))
        .map_err(|_| Error::SourceType {
            path: dir.join("snapshots"),
            expected:
                "a directory of the reference's snapshots (DIR/snapshots/<YYYYMMDDTHHMMSSZ>/)",
        })?;
    let repo = Repository::new(&cfg.repository);
    repo.ensure_layout()?;
    // Held for the whole run: ids are checked and taken, and builds made
    // in tmp/, with no other run in between.
    let _lock = repo.lock(cfg.lock_wait)?;
    let mut report = ImportReport {
        dir: dir.clone(),
        dry_run: !req.confirm,
        include_damaged: req.include_damaged,
        snapshots: Vec::new(),
    };
    for name in snapshots.names()? {
        crate::cancel::check()?;
        let found = import_one(cfg, req, &repo, &snapshots, &dir.join("snapshots"), &name)?;
        report.snapshots.push(found);
    }
    Ok(report)
}

fn blank(name: &OsStr) -> LegacySnapshot {
    LegacySnapshot {
        name: name.to_owned(),
        id: None,
        created_at: None,
        outcome: Outcome::NotASnapshot,
        problems: Vec::new(),
        parts: Vec::new(),
        validation: Vec::new(),
        bytes: 0,
    }
}

fn import_one(
    cfg: &Config,
    req: &ImportRequest,
    repo: &Repository,
    snapshots: &DirFd,
    snapshots_path: &Path,
    name: &OsStr,
) -> Result<LegacySnapshot> {
    let mut out = blank(name);
    let Some(id) = name.to_str().and_then(|n| SnapshotId::parse(n).ok()) else {
        out.problems
            .push("not a snapshot id (YYYYMMDDTHHMMSSZ); left alone".into());
        return Ok(out);
    };
    out.id = Some(id.to_string());
    let dir = match snapshots.stat(name) {
        Ok(st) if dirfd::is_dir(&st) => snapshots.open_dir(name)?,
        Ok(st) => {
            out.problems.push(format!(
                "is {}, not a directory; not followed",
                kind_of(&st)
            ));
            return Ok(out);
        }
        Err(e) => {
            out.problems.push(format!("cannot be looked at: {e}"));
            return Ok(out);
        }
    };
    if repo.snapshot_dir(&id).exists() {
        out.outcome = Outcome::Exists;
        out.problems.push(format!(
            "snapshot {id} is already in the repository; skipped"
        ));
        return Ok(out);
    }
    out.outcome = Outcome::Damaged;

    let metadata = read_metadata(&dir, &mut out.problems);
    let created_at = created_at(metadata.as_ref(), &id, &mut out.problems);
    out.created_at = Some(created_at);

    let legacy_root = snapshots_path.join(name);
    for part in Part::ALL {
        if let Some(found) = find_part(part, &dir, metadata.as_ref(), &mut out.problems) {
            let store = req
                .stores
                .iter()
                .find(|(p, _)| *p == part)
                .map(|(_, s)| s.clone());
            if store.is_none() {
                out.problems.push(format!(
                    "{} has no store of its kind in the config; not imported",
                    found.display()
                ));
            }
            out.parts.push(FoundPart {
                part,
                store,
                path: found,
            });
        }
    }
    let importable: Vec<FoundPart> = out
        .parts
        .iter()
        .filter(|p| p.store.is_some())
        .cloned()
        .collect();
    if importable.is_empty() {
        out.problems.push("nothing in it can be imported".into());
        return Ok(out);
    }
    let damaged = !out.problems.is_empty();
    if damaged && req.confirm && !req.include_damaged {
        return Ok(out);
    }

    // The database is first copied, by descriptor, into a private work
    // directory: SQLite reading a WAL-mode file creates `-wal`/`-shm`
    // beside it, and DIR is not Cairn's to write into.
    let staging = repo.tmp_dir().join(format!("import-{id}"));
    let _ = crate::fsutil::remove_any(&staging);
    crate::fsutil::create_dir_private(&staging)?;
    let result = (|| {
        let mut legacy_cfg = cfg.clone();
        let mut stores = Vec::new();
        for p in &importable {
            let Some(mut store) = p.store.as_deref().and_then(|s| cfg.store(s)).cloned() else {
                continue;
            };
            store.path = if p.part == Part::Db {
                stage_file(&dir, &p.path, &staging)?
            } else {
                legacy_root.join(&p.path)
            };
            store.optional = false;
            store.follow_symlink = false;
            store.drill_command = None;
            stores.push(store);
        }
        legacy_cfg.stores = stores;
        capture(
            repo,
            req,
            &mut out,
            &id,
            created_at,
            &legacy_cfg,
            &legacy_root,
            damaged,
        )
    })();
    let _ = crate::fsutil::remove_any(&staging);
    match result {
        Ok(()) => Ok(out),
        // What is wrong with the legacy files is this snapshot's problem;
        // anything else (a full disk, a signal) stops the import, the
        // build already removed.
        Err(e)
            if matches!(
                e.cause(),
                Error::Source { .. }
                    | Error::SourceType { .. }
                    | Error::SourceMissing { .. }
                    | Error::SourceRejected { .. }
                    | Error::UnsafePath { .. }
                    | Error::NotRegularFile { .. }
            ) =>
        {
            out.problems.push(format!("could not be read: {e}"));
            out.outcome = Outcome::Damaged;
            Ok(out)
        }
        Err(e) => Err(e),
    }
}

/// Copies `rel` (`db/<file>`) of the legacy snapshot into `staging`,
/// opened by descriptor without following a link; returns the copy's path.
fn stage_file(dir: &DirFd, rel: &Path, staging: &Path) -> Result<PathBuf> {
    let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
        return Err(Error::Plugin {
            message: format!("{} is not a file in a directory", rel.display()),
        });
    };
    let (mut from, _) = dir.open_dir(parent.as_os_str())?.open_file(name)?;
    let to = staging.join(name);
    let mut file = crate::fsutil::create_new_private(&to)?;
    std::io::copy(&mut from, &mut file).map_err(crate::error::io_at("copy", &to))?;
    Ok(to)
}

/// Builds (and, as the request says, publishes) one legacy snapshot from
/// `legacy_cfg`'s stores; fills in `out`'s outcome and validation.
#[allow(clippy::too_many_arguments)]
fn capture(
    repo: &Repository,
    req: &ImportRequest,
    out: &mut LegacySnapshot,
    id: &SnapshotId,
    created_at: DateTime<Utc>,
    legacy_cfg: &Config,
    legacy_root: &Path,
    damaged: bool,
) -> Result<()> {
    let stores = Stores::build(legacy_cfg, crate::plugin::Registry::from_inventory()?)?;
    let mut tags = vec![TAG_IMPORTED.to_owned()];
    if damaged {
        tags.push(TAG_DAMAGED.to_owned());
    }
    // Where each store came from (the database's recorded source is the
    // work copy), and what was wrong, in the stores' records.
    let mut notes: Vec<(String, String)> = out
        .parts
        .iter()
        .filter_map(|p| {
            let store = p.store.clone()?;
            Some((
                store,
                format!(
                    "imported from legacy snapshot {}",
                    legacy_root.join(&p.path).display()
                ),
            ))
        })
        .collect();
    if let Some(first) = legacy_cfg.stores.first() {
        notes.extend(out.problems.iter().map(|p| {
            (
                first.name.clone(),
                format!("imported from a damaged legacy snapshot: {p}"),
            )
        }));
    }
    let publish = match (req.confirm, req.include_damaged) {
        (false, _) => Publish::Never,
        (true, true) => Publish::Always,
        (true, false) => Publish::IfSound,
    };
    // The id must come out as the legacy one: the snapshot's time is the
    // id's second whenever created_at says another.
    let at = if created_at.timestamp() == id.stamp().timestamp() {
        created_at
    } else {
        id.stamp()
    };
    let plan = Plan::new(stores.select(&[], &[])?, Some(at), tags)?.import(publish, notes);
    let (summary, validation, published) = snapshot::capture_checked(repo, &plan)?;
    if summary.id != id.as_str() {
        return Err(Error::Plugin {
            message: format!(
                "legacy snapshot {id} was imported as {}; remove it by hand",
                summary.id
            ),
        });
    }
    out.bytes = summary.total_bytes();
    out.validation = validation.errors;
    let sound = !damaged && out.validation.is_empty();
    out.outcome = match (published, req.confirm, sound) {
        (true, _, true) => Outcome::Imported,
        (true, _, false) => Outcome::ImportedDamaged,
        (false, false, true) => Outcome::WouldImport,
        (false, false, false) => Outcome::WouldImportDamaged,
        (false, true, _) => Outcome::Damaged,
    };
    Ok(())
}

fn kind_of(st: &rustix::fs::Stat) -> &'static str {
    if dirfd::is_symlink(st) {
        "a symbolic link"
    } else if dirfd::is_regular(st) {
        "a regular file"
    } else if dirfd::is_dir(st) {
        "a directory"
    } else {
        "a special file"
    }
}

/// The metadata, when it is there, small enough, and a JSON object.
fn read_metadata(
    dir: &DirFd,
    problems: &mut Vec<String>,
) -> Option<serde_json::Map<String, Value>> {
    let name = OsStr::new(METADATA_FILE);
    match dir.stat(name) {
        Ok(st) if !dirfd::is_regular(&st) => {
            problems.push(format!("{METADATA_FILE} is {}; not read", kind_of(&st)));
            return None;
        }
        Ok(st) if st.st_size as u64 > METADATA_CAP => {
            problems.push(format!(
                "{METADATA_FILE} is {} bytes, over the {METADATA_CAP}-byte limit; not read",
                st.st_size
            ));
            return None;
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            problems.push(format!("{METADATA_FILE} is missing"));
            return None;
        }
        Err(e) => {
            problems.push(format!("{METADATA_FILE} cannot be looked at: {e}"));
            return None;
        }
    }
    let mut text = Vec::new();
    let read = dir
        .open_file(name)
        .map_err(|e| e.to_string())
        .and_then(|(file, _)| {
            file.take(METADATA_CAP + 1)
                .read_to_end(&mut text)
                .map_err(|e| e.to_string())
        });
    if let Err(e) = read {
        problems.push(format!("{METADATA_FILE} is unreadable: {e}"));
        return None;
    }
    match serde_json::from_slice::<Value>(&text) {
        Ok(Value::Object(map)) => Some(map),
        Ok(_) => {
            problems.push(format!("{METADATA_FILE} is not a JSON object"));
            None
        }
        Err(e) => {
            problems.push(format!("{METADATA_FILE} is not valid JSON: {e}"));
            None
        }
    }
}

fn created_at(
    metadata: Option<&serde_json::Map<String, Value>>,
    id: &SnapshotId,
    problems: &mut Vec<String>,
) -> DateTime<Utc> {
    let Some(metadata) = metadata else {
        return id.stamp();
    };
    match metadata.get("created_at").and_then(Value::as_str) {
        Some(text) => match DateTime::parse_from_rfc3339(text) {
            Ok(t) => {
                let t = t.with_timezone(&Utc);
                if t.timestamp() != id.stamp().timestamp() {
                    problems.push(format!(
                        "created_at {text:?} is not the time its directory name says ({})",
                        id.stamp().to_rfc3339()
                    ));
                }
                t
            }
            Err(e) => {
                problems.push(format!("created_at {text:?} is not a time ({e})"));
                id.stamp()
            }
        },
        None => {
            problems.push("created_at is missing from the metadata".into());
            id.stamp()
        }
    }
}

/// The last component of a path the metadata gives, when it is a plain
/// name (the old machine's directories mean nothing here).
fn file_name_of(metadata: Option<&serde_json::Map<String, Value>>, key: &str) -> Option<OsString> {
    let text = metadata?.get(key)?.as_str()?;
    let name = Path::new(text).file_name()?;
    (!name.is_empty() && !name.as_bytes().contains(&b'/')).then(|| name.to_owned())
}

/// The regular files directly in `dir`, when there is exactly one.
fn only_file(dir: &DirFd) -> Option<OsString> {
    let names = dir.names().ok()?;
    let files: Vec<OsString> = names
        .into_iter()
        .filter(|n| dir.stat(n).is_ok_and(|st| dirfd::is_regular(&st)))
        // SQLite's journal files beside the database are not the database.
        .filter(|n| {
            let n = n.as_bytes();
            ![&b"-wal"[..], b"-shm", b"-journal"]
                .iter()
                .any(|s| n.ends_with(s))
        })
        .collect();
    match files.as_slice() {
        [one] => Some(one.clone()),
        _ => None,
    }
}

fn number(
    metadata: Option<&serde_json::Map<String, Value>>,
    key: &str,
    problems: &mut Vec<String>,
) -> Option<u64> {
    match metadata?.get(key)? {
        Value::Number(n) => n.as_u64().or_else(|| {
            problems.push(format!("metadata {key} is {n}, not a byte count"));
            None
        }),
        other => {
            problems.push(format!("metadata {key} is {other}, not a number"));
            None
        }
    }
}

/// Looks for `part` in the legacy snapshot; its path there when present.
fn find_part(
    part: Part,
    dir: &DirFd,
    metadata: Option<&serde_json::Map<String, Value>>,
    problems: &mut Vec<String>,
) -> Option<PathBuf> {
    let sub = OsStr::new(part.dir());
    let sub_stat = dir.stat(sub).ok();
    if let Some(st) = sub_stat.as_ref().filter(|st| !dirfd::is_dir(st)) {
        problems.push(format!("{}/ is {}; not followed", part.dir(), kind_of(st)));
        return None;
    }
    let sub_dir = sub_stat.and_then(|_| dir.open_dir(sub).ok());
    match part {
        Part::Db | Part::Registry => {
            let key = if part == Part::Db {
                "db_snapshot_path"
            } else {
                "registry_snapshot_path"
            };
            let named = file_name_of(metadata, key);
            let recorded = metadata.and_then(|m| m.get(key)).and_then(Value::as_str);
            // The reference records "" for a registry it did not copy.
            if part == Part::Registry && recorded == Some("") {
                return None;
            }
            let name = match (&named, &sub_dir) {
                (Some(n), _) => n.clone(),
                (None, Some(d)) => match only_file(d) {
                    Some(n) => n,
                    None if part == Part::Registry && metadata.is_some() => return None,
                    None => {
                        problems.push(format!("{}/ holds no single file to import", part.dir()));
                        return None;
                    }
                },
                (None, None) if part == Part::Registry => return None,
                (None, None) => {
                    problems.push("db/ is missing: no database".into());
                    return None;
                }
            };
            let shown = Path::new(part.dir()).join(&name);
            let Some(d) = sub_dir else {
                problems.push(format!("{} is missing", shown.display()));
                return None;
            };
            match d.stat(&name) {
                Ok(st) if dirfd::is_regular(&st) => {
                    if part == Part::Db {
                        if let Some(size) = number(metadata, "db_size_bytes", problems) {
                            if size != st.st_size as u64 {
                                problems.push(format!(
                                    "{} is {} bytes, the metadata says {size}: it changed since",
                                    shown.display(),
                                    st.st_size
                                ));
                            }
                        }
                    }
                    Some(shown)
                }
                Ok(st) => {
                    problems.push(format!(
                        "{} is {}; not followed",
                        shown.display(),
                        kind_of(&st)
                    ));
                    None
                }
                Err(_) => {
                    problems.push(format!("{} is missing", shown.display()));
                    None
                }
            }
        }
        Part::Chroma => {
            let recorded = metadata
                .and_then(|m| m.get("chroma_snapshot_path"))
                .and_then(Value::as_str)
                .is_some_and(|p| !p.is_empty());
            let Some(d) = sub_dir else {
                if recorded {
                    problems.push("chroma/ is missing, but the metadata says it was copied".into());
                }
                return None;
            };
            let (mut files, mut bytes, mut links) = (0u64, 0u64, 0u64);
            let walked = crate::tree::walk_tree(&d.fd_path(""), &mut |_, meta| {
                if meta.file_type().is_symlink() {
                    links += 1;
                } else if meta.is_file() {
                    files += 1;
                    bytes = bytes.saturating_add(meta.len());
                }
                Ok(())
            });
            if let Err(e) = walked {
                problems.push(format!("chroma/ cannot be read: {e}"));
                return None;
            }
            if links > 0 {
                problems.push(format!(
                    "chroma/ holds {links} symbolic link(s) the reference never wrote; kept as links, not followed"
                ));
            }
            let want_files = number(metadata, "chroma_snapshot_files", problems);
            let want_bytes = number(metadata, "chroma_snapshot_bytes", problems);
            if recorded
                && (want_files.is_some_and(|n| n != files)
                    || want_bytes.is_some_and(|n| n != bytes))
            {
                problems.push(format!(
                    "chroma/ holds {files} files, {bytes} bytes; the metadata says {} files, {} bytes: it changed since",
                    want_files.map_or("?".into(), |n| n.to_string()),
                    want_bytes.map_or("?".into(), |n| n.to_string())
                ));
            }
            Some(PathBuf::from("chroma"))
        }
    }
}
