//! Every JSON document `cairn --json` prints is shaped here, and only here.
//! Engine types carry no `Serialize`: what scripts parse is the operator
//! contract, so a field is renamed or added in this file or not at all.
//! The one exception is `show`, which prints the manifest itself — the
//! on-disk format, documented in docs/manifest.md.

use cairn_engine::diff::{Changed, Diff, Presence};
use cairn_engine::drill::DrillReport;
use cairn_engine::manifest::RawPath;
use cairn_engine::prune::PrunePlan;
use cairn_engine::repair::{RepairOutcome, Source as RepairSource};
use cairn_engine::restore::{RestoreOutcome, RestorePlan, RollbackFailure};
use cairn_engine::snapshot::SnapshotOutcome;
use cairn_engine::space::Space;
use cairn_engine::validate::{ValidationRecord, ValidationReport};
use cairn_engine::{Depth, Error, Manifest, Problem, Registry, Shape, StoreStatus};
use cairn_engine::{Entry, EntryKind};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use std::io::{self, Write};

use crate::browse::Listed;
use crate::commands::ListRow;
use crate::contract;
use crate::pretty::{self, Field};

pub fn error(e: &Error, hint: Option<String>) -> Value {
    json!({
        "error": {
            "message": contract::message(e),
            "hint": hint,
            "exit_code": contract::exit_code(e),
            "code": contract::code(e),
        }
    })
}

pub fn problem(p: &Problem) -> Value {
    json!({
        "code": p.code,
        "store": p.store,
        "path": p.path,
        "detail": p.detail,
    })
}

fn problems(list: &[Problem]) -> Vec<Value> {
    list.iter().map(problem).collect()
}

fn status(s: StoreStatus) -> &'static str {
    match s {
        StoreStatus::Captured => "captured",
        StoreStatus::Absent => "absent",
    }
}

fn shape(s: Shape) -> &'static str {
    match s {
        Shape::File => "file",
        Shape::Dir => "dir",
    }
}

pub fn stores(registry: &Registry) -> Value {
    let list: Vec<Value> = registry
        .descriptors()
        .map(|d| {
            json!({
                "kind": d.kind,
                "summary": d.summary,
                "shape": shape(d.shape),
                "options": d.options.iter().map(|o| json!({"name": o.name, "doc": o.doc, "example": o.example})).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({ "stores": list })
}

pub fn snapshot(outcome: &SnapshotOutcome) -> Value {
    let m = &outcome.snapshot;
    json!({
        "id": m.id,
        "created_at": m.created_at,
        "tags": m.tags,
        "stores": m.stores.iter().map(|s| json!({
            "name": s.name,
            "kind": s.kind,
            "status": status(s.status),
            "files": s.files,
            "bytes": s.bytes,
            "warnings": s.warnings,
        })).collect::<Vec<_>>(),
        "validated": outcome.validation.valid,
        "validation_errors": problems(&outcome.validation.errors),
        "hint": contract::repair_hint(&m.id, &outcome.validation.errors),
        "after_hook_error": outcome.after_hook_error,
    })
}

pub fn list(rows: &[ListRow], unparseable: &[String], now: DateTime<Utc>) -> Value {
    json!({
        "snapshots": rows.iter().map(|r| json!({
            "id": r.id,
            "created_at": r.created_at,
            "tags": r.tags,
            "pinned": r.pinned,
            "stores": r.stores,
            "bytes": r.bytes,
            "problem": r.problem,
            "last_validation": r.validation.as_ref().map(|v| last_validation(v, now)),
        })).collect::<Vec<_>>(),
        "unparseable": unparseable,
        "total_bytes": rows.iter().filter_map(|r| r.bytes).fold(0u64, u64::saturating_add),
    })
}

/// A snapshot's last recorded validation, as `list` shows it.
fn last_validation(v: &ValidationRecord, now: DateTime<Utc>) -> Value {
    json!({
        "at": v.validated_at,
        "age_seconds": (now - v.validated_at).num_seconds(),
        "depth": match v.depth {
            Depth::Deep => "deep",
            Depth::Quick => "quick",
        },
        "valid": v.valid(),
        "errors": v.problems.iter().map(|p| json!({
            "code": p.code,
            "store": p.store,
            "path": p.path,
            "detail": p.detail,
        })).collect::<Vec<_>>(),
    })
}

/// `show --json`: the manifest, and whether the snapshot is pinned.
/// Printed by [`write_show`], which builds it without the entries and
/// streams those.
pub fn show(manifest: &Manifest, pinned: bool) -> Value {
    let mut doc = serde_json::to_value(manifest).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut doc {
        map.insert("pinned".into(), pinned.into());
    }
    doc
}

/// [`show`]'s document written entry by entry (see `pretty`): only the
/// manifest without its entries is ever a `Value`.
pub fn write_show(out: &mut dyn Write, mut manifest: Manifest, pinned: bool) -> io::Result<()> {
    let entries: Vec<Vec<Entry>> = manifest
        .stores
        .iter_mut()
        .map(|store| std::mem::take(&mut store.entries))
        .collect();
    let top = show(&manifest, pinned);
    pretty::write_with_list(out, &top, "stores", |i, key, out, depth| {
        let Some(entries) = entries.get(i).filter(|_| key == "entries") else {
            return Ok(Field::AsIs);
        };
        pretty::write_array(out, entries, depth, |out, entry, depth| {
            let doc = serde_json::to_value(entry).map_err(io::Error::other)?;
            pretty::write_value(out, &doc, depth)
        })?;
        Ok(Field::Written)
    })
}

pub fn validate(results: &[ValidationReport]) -> Value {
    json!({
        "results": results.iter().map(|r| json!({
            "id": r.id,
            "valid": r.valid,
            "errors": problems(&r.errors),
            "hint": contract::repair_hint(&r.id, &r.errors),
        })).collect::<Vec<_>>(),
    })
}

pub fn repair(o: &RepairOutcome) -> Value {
    json!({
        "dry_run": o.dry_run,
        "results": o.snapshots.iter().map(|r| json!({
            "id": r.id,
            "valid": r.after.valid,
            "found": problems(&r.found),
            "repaired": r.repaired.iter().map(|f| {
                let mut doc = problem(&f.problem);
                if let Value::Object(map) = &mut doc {
                    map.insert("from".into(), repair_source(&f.from));
                }
                doc
            }).collect::<Vec<_>>(),
            "unrepaired": r.unrepaired.iter().map(|u| {
                let mut doc = problem(&u.problem);
                if let Value::Object(map) = &mut doc {
                    map.insert("reason".into(), u.reason.clone().into());
                }
                doc
            }).collect::<Vec<_>>(),
            "errors": problems(&r.after.errors),
        })).collect::<Vec<_>>(),
        "revalidated": o.revalidated.iter().map(|r| json!({
            "id": r.id,
            "valid": r.valid,
            "errors": problems(&r.errors),
        })).collect::<Vec<_>>(),
    })
}

fn repair_source(from: &RepairSource) -> Value {
    match from {
        RepairSource::Live(path) => json!({ "live": path.display().to_string() }),
        RepairSource::Snapshot { id, store, path } => {
            json!({ "snapshot": id, "store": store, "path": path })
        }
    }
}

pub fn restore(o: &RestoreOutcome) -> Value {
    json!({
        "id": o.id,
        "pre_restore_snapshot": o.pre_restore_snapshot,
        "pre_restore_problems": problems(&o.pre_restore_problems),
        "target": target(o.to.as_deref()),
        "stores": o.stores.iter().map(|s| json!({
            "name": s.name,
            "restored": s.restored,
            "rolled_back": s.rolled_back,
            "integrity_ok": s.integrity_ok,
            "path": s.path,
            "skipped": s.skipped,
            "detail": s.detail,
            "not_kept": s.not_kept,
        })).collect::<Vec<_>>(),
        "problems": problems(&o.problems),
        "rolled_back": o.rolled_back,
        "failure": o.failure,
        "rollback_failure": o.rollback_failure.as_ref().map(rollback_failure),
    })
}

/// `"live"`, or the `--to` directory.
pub fn target(to: Option<&std::path::Path>) -> String {
    to.map(|p| p.display().to_string())
        .unwrap_or_else(|| "live".into())
}

/// What is left to do when a rollback failed, as one sentence.
pub fn rollback_failure(f: &RollbackFailure) -> String {
    match &f.pre_restore_snapshot {
        Some(pre) => format!(
            "rollback from {pre} failed: {}. Finish by hand: `{}`",
            f.error,
            contract::finish_rollback_by_hand(pre)
        ),
        None => format!(
            "no pre-restore snapshot was taken (--no-pre-snapshot), so {} stay restored; restore them again or fix by hand",
            f.stores.join(", ")
        ),
    }
}

pub fn restore_plan(plan: &RestorePlan<'_>) -> Value {
    json!({
        "dry_run": true,
        "id": plan.id().to_string(),
        "target": target(plan.to()),
        "pre_restore_snapshot": plan.takes_pre_restore_snapshot(),
        "stores": plan.stores().iter().map(|s| json!({
            "name": s.name,
            "kind": s.kind,
            "path": s.target.as_ref().map(|p| p.display().to_string()),
            "files": s.files,
            "bytes": s.bytes,
            "skipped": s.target.is_none().then_some("absent in the snapshot; live store left alone"),
        })).collect::<Vec<_>>(),
    })
}

pub fn prune(plan: &PrunePlan) -> Value {
    json!({
        "dry_run": plan.dry_run,
        "keep": plan.keep.iter().map(|k| json!({
            "id": k.id,
            "reasons": k.reasons.iter().map(|r| r.name()).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "delete": plan.delete,
        "deleted": plan.deleted,
        "unparseable": plan.unparseable,
        "leftovers": plan.leftovers,
        "leftovers_removed": plan.leftovers_removed,
        "bytes_freed": plan.bytes_freed,
    })
}

pub fn drill(r: &DrillReport) -> Value {
    json!({
        "id": r.id,
        "ok": r.ok,
        "restore_seconds": r.restore_seconds,
        "snapshot_age_seconds": r.snapshot_age_seconds,
        "checks": r.checks.iter().map(|c| json!({
            "store": c.store,
            "check": c.check,
            "ok": c.ok,
            "detail": c.detail,
        })).collect::<Vec<_>>(),
        "scratch": r.scratch,
    })
}

/// A path as JSON fields: `path` (readable) and, when its bytes are not
/// UTF-8, `path_b64` with the exact bytes, as the manifest writes them.
fn raw_path_fields(map: &mut serde_json::Map<String, Value>, key: &str, p: &RawPath) {
    map.insert(key.to_owned(), p.shown().into_owned().into());
    if let Some(b64) = p.b64() {
        map.insert(format!("{key}_b64"), b64.into());
    }
}

fn entry_doc(store: &str, e: &Entry) -> Value {
    let mut map = serde_json::Map::new();
    map.insert("store".into(), store.into());
    raw_path_fields(&mut map, "path", &e.path);
    map.insert("type".into(), entry_kind(e.kind).into());
    map.insert("size".into(), json!(e.size));
    map.insert("mode".into(), format!("{:04o}", e.mode).into());
    map.insert("mtime".into(), json!(crate::render::mtime(e.mtime_ns)));
    // A JSON number whenever `serde_json` holds one (an `i64` or `u64`:
    // every time a file system keeps); digits in a string past that.
    let mtime_ns =
        serde_json::to_value(e.mtime_ns).unwrap_or_else(|_| e.mtime_ns.to_string().into());
    map.insert("mtime_ns".into(), mtime_ns);
    map.insert("sha256".into(), json!(e.sha256.map(|c| c.to_hex())));
    map.insert("uid".into(), json!(e.uid));
    map.insert("gid".into(), json!(e.gid));
    if let Some(t) = e.target() {
        raw_path_fields(&mut map, "target", t);
    }
    if let Some(l) = e.link_of() {
        raw_path_fields(&mut map, "link_of", l);
    }
    Value::Object(map)
}

fn entry_kind(k: EntryKind) -> &'static str {
    match k {
        EntryKind::File => "file",
        EntryKind::Dir => "dir",
        EntryKind::Symlink => "symlink",
    }
}

/// `ls --json`, whole: the document [`write_ls`] writes (for its tests).
#[cfg(test)]
pub fn ls(id: &str, listed: &[Listed<'_>]) -> Value {
    json!({
        "id": id,
        "entries": listed.iter().map(|l| entry_doc(l.store, l.entry)).collect::<Vec<_>>(),
    })
}

/// `ls --json`, written entry by entry (see `pretty`).
pub fn write_ls(out: &mut dyn Write, id: &str, listed: &[Listed<'_>]) -> io::Result<()> {
    let mut top = serde_json::Map::new();
    top.insert("entries".into(), Value::Array(Vec::new()));
    top.insert("id".into(), id.into());
    pretty::write_object(out, &top, 0, &mut |key, out, depth| {
        if key != "entries" {
            return Ok(Field::AsIs);
        }
        pretty::write_values(
            out,
            listed.iter().map(|l| entry_doc(l.store, l.entry)),
            depth,
        )?;
        Ok(Field::Written)
    })
}

/// `diff --json`, whole: the document [`write_diff`] writes (for its
/// tests).
#[cfg(test)]
pub fn diff(d: &Diff) -> Value {
    diff_doc(d, Lists::Included)
}

/// Whether a diff document holds its entry lists, or leaves them empty
/// for [`write_diff`] to stream.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Lists {
    #[cfg_attr(not(test), allow(dead_code))]
    Included,
    Empty,
}

fn diff_doc(d: &Diff, lists: Lists) -> Value {
    json!({
        "a": d.a,
        "b": d.b,
        "identical": d.is_empty(),
        "stores": d.stores.iter().map(|s| json!({
            "name": s.name,
            "kind": s.kind,
            "presence": match s.presence {
                Presence::Both => "both",
                Presence::Added => "added",
                Presence::Removed => "removed",
            },
            "added": listed(lists, &s.added, |e| entry_doc(&s.name, e)),
            "removed": listed(lists, &s.removed, |e| entry_doc(&s.name, e)),
            "changed": listed(lists, &s.changed, |c| changed_doc(&s.name, c)),
            "row_counts": s.counts.iter().map(|c| json!({
                "table": c.name,
                "a": c.a,
                "b": c.b,
                "change": c.b.unwrap_or(0) as i128 - c.a.unwrap_or(0) as i128,
            })).collect::<Vec<_>>(),
            "count_failures": s.count_failures.iter().map(|f| json!({
                "id": f.id,
                "detail": f.detail,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

/// The diff document without its entry lists: what `[monitoring]`
/// reads while the whole document is streamed.
pub fn diff_summary(d: &Diff) -> Value {
    diff_doc(d, Lists::Empty)
}

fn listed<T>(lists: Lists, items: &[T], doc: impl Fn(&T) -> Value) -> Vec<Value> {
    match lists {
        Lists::Included => items.iter().map(doc).collect(),
        Lists::Empty => Vec::new(),
    }
}

fn changed_doc(store: &str, c: &Changed) -> Value {
    let mut map = serde_json::Map::new();
    raw_path_fields(&mut map, "path", &c.path);
    map.insert("what".into(), json!(c.what));
    map.insert("a".into(), entry_doc(store, &c.a));
    map.insert("b".into(), entry_doc(store, &c.b));
    Value::Object(map)
}

/// `diff --json` written entry by entry (see `pretty`): the document
/// without its entry lists is a `Value`, the lists are streamed.
pub fn write_diff(out: &mut dyn Write, d: &Diff) -> io::Result<()> {
    pretty::write_with_list(out, &diff_summary(d), "stores", |i, key, out, depth| {
        let Some(s) = d.stores.get(i) else {
            return Ok(Field::AsIs);
        };
        let docs: Box<dyn Iterator<Item = Value>> = match key {
            "added" => Box::new(s.added.iter().map(|e| entry_doc(&s.name, e))),
            "removed" => Box::new(s.removed.iter().map(|e| entry_doc(&s.name, e))),
            "changed" => Box::new(s.changed.iter().map(|c| changed_doc(&s.name, c))),
            _ => return Ok(Field::AsIs),
        };
        pretty::write_values(out, docs, depth)?;
        Ok(Field::Written)
    })
}

pub fn stats(space: &Space) -> Value {
    json!({
        "snapshots": space.snapshots.iter().map(|s| json!({
            "id": s.id,
            "apparent_bytes": s.apparent,
            "on_disk_bytes": s.on_disk,
            "unique_bytes": s.unique,
            "inodes": s.inodes,
        })).collect::<Vec<_>>(),
        "total": {
            "apparent_bytes": space.apparent,
            "on_disk_bytes": space.on_disk,
            "inodes": space.inodes,
        },
    })
}
/// `cairn import-legacy`.
pub fn import_legacy(r: &cairn_engine::legacy::ImportReport) -> Value {
    json!({
        "dir": r.dir.display().to_string(),
        "dry_run": r.dry_run,
        "include_damaged": r.include_damaged,
        "snapshots": r.snapshots.iter().map(|s| json!({
            "name": s.name.to_string_lossy(),
            "id": s.id,
            "created_at": s.created_at,
            "outcome": outcome_name(s.outcome),
            "problems": s.problems,
            "parts": s.parts.iter().map(|p| json!({
                "path": p.path.to_string_lossy(),
                "store": p.store,
            })).collect::<Vec<_>>(),
            "validation_errors": s.validation.iter().map(problem).collect::<Vec<_>>(),
            "bytes": s.bytes,
        })).collect::<Vec<_>>(),
    })
}

fn outcome_name(o: cairn_engine::legacy::Outcome) -> &'static str {
    match o {
        cairn_engine::legacy::Outcome::WouldImport => "would_import",
        cairn_engine::legacy::Outcome::WouldImportDamaged => "would_import_damaged",
        cairn_engine::legacy::Outcome::Imported => "imported",
        cairn_engine::legacy::Outcome::ImportedDamaged => "imported_damaged",
        cairn_engine::legacy::Outcome::Damaged => "damaged",
        cairn_engine::legacy::Outcome::Exists => "exists",
        cairn_engine::legacy::Outcome::NotASnapshot => "not_a_snapshot",
    }
}

#[cfg(test)]
mod streamed_tests {
    use super::*;

    /// Two stores, every kind of entry, odd bytes in names and metadata.
    fn manifest() -> Manifest {
        serde_json::from_value(json!({
            "created_at": "2026-12-06T12:00:00Z",
            "format_version": 3,
            "host": "h\u{e9}st",
            "id": "20261206T120000Z",
            "stores": [
                {
                    "entries": [{
                        "gid": 0, "mode": 420, "mtime_ns": 1, "path": "app.db",
                        "sha256": "d60446e80cfedc590a56681a5862ca987e5f79926017d92a65bb1ab05ed0fe1f",
                        "size": 8192, "type": "file", "uid": 0
                    }],
                    "kind": "sqlite",
                    "metadata": {"journal_mode": "wal", "note": "line\nbreak \"q\""},
                    "name": "db", "shape": "file", "source": "/srv/app.db", "status": "captured"
                },
                {
                    "entries": [
                        {"gid": 1000, "mode": 493, "mtime_ns": 2, "path": "d", "type": "dir", "uid": 1000},
                        {"gid": 1000, "mode": 420, "mtime_ns": 3, "path": "d/a b\tc",
                         "sha256": "85e84e88651f60f4a405438143d5c2da1998fbb3503b4ef9482f02669b001202",
                         "size": 5, "type": "file", "uid": 1000},
                        {"gid": 1000, "link_of": "d/a b\tc", "mode": 420, "mtime_ns": 3, "path": "d/second",
                         "sha256": "85e84e88651f60f4a405438143d5c2da1998fbb3503b4ef9482f02669b001202",
                         "size": 5, "type": "file", "uid": 1000},
                        {"gid": 1000, "mode": 511, "mtime_ns": 4, "path": "d/link", "target": "../elsewhere",
                         "type": "symlink", "uid": 1000}
                    ],
                    "kind": "chroma-dir", "metadata": {}, "name": "chroma", "shape": "dir",
                    "source": "/srv/chroma", "status": "captured"
                },
                {
                    "entries": [], "kind": "registry-json", "metadata": {}, "name": "registry",
                    "shape": "file", "source": "/srv/r.json", "status": "absent"
                }
            ],
            "tags": ["nightly"],
            "tool_version": "0.1.0"
        }))
        .unwrap()
    }

    #[test]
    fn show_json_streamed_is_the_whole_document_byte_for_byte() {
        let m = manifest();
        for pinned in [false, true] {
            let expected = serde_json::to_string_pretty(&show(&m, pinned)).unwrap();
            let mut out = Vec::new();
            write_show(&mut out, m.clone(), pinned).unwrap();
            assert_eq!(String::from_utf8(out).unwrap(), expected);
        }
    }

    #[test]
    fn diff_json_streamed_is_the_whole_document_byte_for_byte() {
        use cairn_engine::diff::{CountChange, CountFailure, StoreDiff};
        let m = manifest();
        let (db, tree) = (&m.stores[0].entries, &m.stores[1].entries);
        let store = |name: &str, presence, added: &[Entry], removed: &[Entry], changed| StoreDiff {
            name: name.into(),
            kind: "kind".into(),
            presence,
            added: added.to_vec(),
            removed: removed.to_vec(),
            changed,
            counts: vec![CountChange {
                name: "t\"1".into(),
                a: Some(3),
                b: None,
            }],
            count_failures: vec![CountFailure {
                id: "x".into(),
                detail: "line\nbreak".into(),
            }],
        };
        let changed = vec![Changed {
            path: tree[1].path.clone(),
            what: vec!["content", "mtime"],
            a: tree[1].clone(),
            b: tree[2].clone(),
        }];
        let d = Diff {
            a: "20261206T120000Z".into(),
            b: "20261207T120000Z".into(),
            stores: vec![
                store("db", Presence::Both, db, &[], Vec::new()),
                store("chroma", Presence::Both, &tree[..2], &tree[3..], changed),
                store("gone", Presence::Removed, &[], &[], Vec::new()),
            ],
        };
        let empty = Diff {
            a: "a".into(),
            b: "b".into(),
            stores: Vec::new(),
        };
        for d in [&d, &empty] {
            let expected = serde_json::to_string_pretty(&diff(d)).unwrap();
            let mut out = Vec::new();
            write_diff(&mut out, d).unwrap();
            assert_eq!(String::from_utf8(out).unwrap(), expected);
        }
    }

    #[test]
    fn ls_json_streamed_is_the_whole_document_byte_for_byte() {
        let m = manifest();
        let all: Vec<Listed<'_>> = m
            .stores
            .iter()
            .flat_map(|s| {
                s.entries.iter().map(|entry| Listed {
                    store: &s.name,
                    entry,
                })
            })
            .collect();
        for listed in [&all[..], &all[1..3], &[]] {
            let expected = serde_json::to_string_pretty(&ls(&m.id, listed)).unwrap();
            let mut out = Vec::new();
            write_ls(&mut out, &m.id, listed).unwrap();
            assert_eq!(String::from_utf8(out).unwrap(), expected);
        }
    }
}
