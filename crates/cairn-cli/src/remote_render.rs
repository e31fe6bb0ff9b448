//! Human text of the off-site commands (the same rules as `render.rs`).

use cairn_engine::fsutil::human_bytes;
use cairn_engine::Result;
use cairn_remote::check::{ReadData, RemoteValidation};
use cairn_remote::format::SnapshotDoc;
use cairn_remote::gc::RemotePrunePlan;
use cairn_remote::pull::PullOutcome;
use cairn_remote::Remote;

use crate::remote::PushReport;
use crate::render::clean;

pub fn push(reports: &[PushReport]) -> String {
    let mut out = String::new();
    for r in reports {
        for p in &r.pushed {
            if p.already_there {
                out.push_str(&format!("{} already on {}\n", p.id, r.remote));
            } else {
                out.push_str(&format!(
                    "pushed {} to {}: {} in {} chunks, {} new ({}), {} sent in {} requests\n",
                    p.id,
                    r.remote,
                    human_bytes(p.bytes),
                    p.chunks,
                    p.new_chunks,
                    human_bytes(p.new_chunk_bytes),
                    human_bytes(p.bytes_uploaded),
                    p.requests
                ));
            }
        }
        if let Some(e) = &r.error {
            out.push_str(&format!(
                "push to {} failed: {}\n",
                r.remote,
                clean(&crate::contract::message(e))
            ));
        }
    }
    out
}

pub fn list(r: &Remote, docs: &[(String, Result<SnapshotDoc>)]) -> String {
    let mut out = format!("remote {} ({})\n", r.config.name, clean(&r.config.url));
    if docs.is_empty() {
        out.push_str("no snapshots\n");
    }
    for (id, doc) in docs {
        match doc {
            Ok(d) => out.push_str(&format!(
                "{id}  {}  {:>10}  {} files  {}{}\n",
                d.created_at.format("%Y-%m-%d %H:%M:%S"),
                human_bytes(d.bytes),
                d.files,
                d.stores.join(","),
                if d.tags.is_empty() {
                    String::new()
                } else {
                    format!("  [{}]", d.tags.join(","))
                }
            )),
            Err(e) => out.push_str(&format!(
                "{id}  PROBLEM: {}\n",
                clean(&crate::contract::message(e))
            )),
        }
    }
    out
}

pub fn show(r: &Remote, d: &SnapshotDoc) -> String {
    format!(
        "snapshot {} on remote {} ({})\n  created {} on {}, pushed {}\n  stores: {}\n  {} files, {}; {} chunks in {} packs\n",
        d.id,
        r.config.name,
        clean(&r.config.url),
        d.created_at.to_rfc3339(),
        clean(&d.host),
        d.pushed_at.to_rfc3339(),
        d.stores.join(", "),
        d.files,
        human_bytes(d.bytes),
        cairn_remote::remote::chunks_of(d).len(),
        d.packs.len()
    )
}

pub fn validate(r: &Remote, results: &[RemoteValidation], read: ReadData) -> String {
    let how = match read {
        ReadData::No => "objects present with their sizes (listings; no data read)".to_owned(),
        ReadData::All => "every byte downloaded and hashed".to_owned(),
        ReadData::Subset(s) => format!("packs of subset {}/{} downloaded and hashed", s.n, s.t),
    };
    let mut out = format!(
        "remote {} ({}): {how}\n",
        r.config.name,
        clean(&r.config.url)
    );
    for v in results {
        if v.valid() {
            out.push_str(&format!(
                "{}  ok ({} packs, {} read)\n",
                v.id, v.packs, v.packs_read
            ));
        } else {
            out.push_str(&format!(
                "{}  NOT SOUND: {} problem(s)\n",
                v.id,
                v.problems.len()
            ));
            for p in &v.problems {
                out.push_str(&format!("  {}\n", clean(&p.to_string())));
            }
        }
    }
    out
}

pub fn pull(r: &Remote, p: &PullOutcome, seconds: f64) -> String {
    if p.already_local {
        return format!(
            "{} is already in the local repository; not pulled from {}\n",
            p.id, r.config.name
        );
    }
    format!(
        "pulled {} from {}: {} files, {}; {} downloaded in {} requests, {seconds:.1}s; verified and deep-validated\n",
        p.id,
        r.config.name,
        p.files,
        human_bytes(p.bytes),
        human_bytes(p.bytes_downloaded),
        p.requests
    )
}

pub fn prune(r: &Remote, p: &RemotePrunePlan) -> String {
    let mut out = format!(
        "remote {} ({}){}\n",
        r.config.name,
        clean(&r.config.url),
        if p.dry_run {
            ": dry run (pass --confirm to delete)"
        } else {
            ""
        }
    );
    for k in &p.keep {
        let reasons: Vec<&str> = k.reasons.iter().map(|r| r.name()).collect();
        out.push_str(&format!("keep    {}  ({})\n", k.id, reasons.join(", ")));
    }
    for id in &p.delete {
        out.push_str(&format!(
            "{}  {id}\n",
            if p.deleted.contains(id) {
                "deleted"
            } else {
                "delete "
            }
        ));
    }
    out.push_str(&format!(
        "packs: {} unreferenced and older than {}h{}, {} in the grace period\n",
        p.packs_unreferenced,
        r.config.gc_grace.as_secs() / 3600,
        if p.dry_run {
            String::new()
        } else {
            format!(
                ", {} deleted ({})",
                p.packs_deleted,
                human_bytes(p.bytes_freed)
            )
        },
        p.packs_in_grace
    ));
    if !p.damaged.is_empty() {
        out.push_str(&format!(
            "unreadable snapshot documents (kept; no pack collected): {}\n",
            p.damaged.join(", ")
        ));
    }
    out
}
