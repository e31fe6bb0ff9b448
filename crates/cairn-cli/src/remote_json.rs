//! JSON documents of the off-site commands (the same rules as `json.rs`:
//! every shape here, stable keys, no secret: a remote is named by its
//! name and URL, which holds no credential).

use cairn_engine::Result;
use cairn_remote::check::RemoteValidation;
use cairn_remote::format::SnapshotDoc;
use cairn_remote::gc::RemotePrunePlan;
use cairn_remote::pull::PullOutcome;
use cairn_remote::Remote;
use serde_json::{json, Value};

use crate::remote::PushReport;

pub fn push(reports: &[PushReport]) -> Value {
    json!({
        "remotes": reports.iter().map(|r| json!({
            "remote": r.remote,
            "url": r.url,
            "ok": r.error.is_none(),
            "error": r.error.as_ref().map(crate::contract::message),
            "exit_code": r.error.as_ref().map(crate::contract::exit_code),
            "snapshots": r.pushed.iter().map(|p| json!({
                "id": p.id,
                "already_there": p.already_there,
                "bytes": p.bytes,
                "chunks": p.chunks,
                "new_chunks": p.new_chunks,
                "new_chunk_bytes": p.new_chunk_bytes,
                "packs_uploaded": p.packs_uploaded,
                "bytes_uploaded": p.bytes_uploaded,
                "requests": p.requests,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

fn remote(r: &Remote) -> Value {
    json!({ "name": r.config.name, "url": r.config.url })
}

pub fn list(r: &Remote, docs: &[(String, Result<SnapshotDoc>)]) -> Value {
    json!({
        "remote": remote(r),
        "snapshots": docs.iter().map(|(id, doc)| match doc {
            Ok(d) => json!({
                "id": id,
                "created_at": d.created_at,
                "pushed_at": d.pushed_at,
                "host": d.host,
                "tags": d.tags,
                "stores": d.stores,
                "files": d.files,
                "bytes": d.bytes,
                "packs": d.packs.len(),
                "problem": Value::Null,
            }),
            Err(e) => json!({ "id": id, "problem": crate::contract::message(e) }),
        }).collect::<Vec<_>>(),
    })
}

pub fn show(r: &Remote, d: &SnapshotDoc) -> Value {
    json!({
        "remote": remote(r),
        "id": d.id,
        "created_at": d.created_at,
        "pushed_at": d.pushed_at,
        "host": d.host,
        "tags": d.tags,
        "restore_of": d.restore_of,
        "stores": d.stores,
        "files": d.files,
        "bytes": d.bytes,
        "manifest": { "size": d.manifest.size, "sha256": d.manifest.sha256.to_hex() },
        "chunks": cairn_remote::remote::chunks_of(d).len(),
        "packs": d.packs.iter().map(|(p, s)| json!({ "pack": p, "size": s })).collect::<Vec<_>>(),
    })
}

pub fn validate(r: &Remote, results: &[RemoteValidation]) -> Value {
    json!({
        "remote": remote(r),
        "valid": results.iter().all(RemoteValidation::valid),
        "snapshots": results.iter().map(|v| json!({
            "id": v.id,
            "valid": v.valid(),
            "packs": v.packs,
            "packs_read": v.packs_read,
            "errors": v.problems.iter().map(crate::json::problem).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

pub fn pull(r: &Remote, p: &PullOutcome, seconds: f64) -> Value {
    json!({
        "remote": remote(r),
        "id": p.id,
        "already_local": p.already_local,
        "files": p.files,
        "bytes": p.bytes,
        "bytes_downloaded": p.bytes_downloaded,
        "requests": p.requests,
        "seconds": seconds,
    })
}

pub fn prune(r: &Remote, p: &RemotePrunePlan) -> Value {
    json!({
        "remote": remote(r),
        "dry_run": p.dry_run,
        "keep": p.keep.iter().map(|k| json!({
            "id": k.id,
            "reasons": k.reasons.iter().map(|r| r.name()).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "delete": p.delete,
        "deleted": p.deleted,
        "packs_unreferenced": p.packs_unreferenced,
        "packs_deleted": p.packs_deleted,
        "packs_in_grace": p.packs_in_grace,
        "bytes_freed": p.bytes_freed,
        "damaged": p.damaged,
        "grace_seconds": r.config.gc_grace.as_secs(),
    })
}
