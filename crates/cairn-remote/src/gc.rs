//! `cairn prune --remote`: the remote's retention, then garbage
//! collection of packs no remaining snapshot needs.
//!
//! Under the remote's prune lock (which also waits out running pushes,
//! see [`Remote::prune_lock`]). Snapshot documents the policy does not
//! keep are deleted first; then every pack (and its index) that no
//! remaining snapshot lists and that is older than the grace period
//! (default 24 h) goes. The grace period protects a push on another
//! host whose packs are uploaded but whose snapshot document is not yet
//! written, even if its marker was lost.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::SystemTime;

use cairn_engine::config::Retention;
use cairn_engine::prune::Kept;
use cairn_engine::{Error, Result, SnapshotId};
use chrono::Utc;

use crate::format;
use crate::remote::Remote;

#[derive(Debug, Default)]
pub struct RemotePrunePlan {
    pub dry_run: bool,
    pub keep: Vec<Kept>,
    pub delete: Vec<String>,
    pub deleted: Vec<String>,
    /// Packs no kept snapshot needs, old enough to go.
    pub packs_unreferenced: u64,
    pub packs_deleted: u64,
    pub bytes_freed: u64,
    /// Unreferenced packs younger than the grace period, left for now.
    pub packs_in_grace: u64,
    /// Snapshot documents that could not be read: kept, and their packs kept.
    pub damaged: Vec<String>,
}

pub fn prune(
    remote: &Remote,
    policy: &Retention,
    confirm: bool,
    allow_empty_policy: bool,
) -> Result<RemotePrunePlan> {
    if !allow_empty_policy
        && policy.keep_daily == 0
        && policy.keep_weekly == 0
        && policy.keep_monthly == 0
    {
        return Err(Error::EmptyPolicy);
    }
    remote.root()?;
    let _lock = if confirm {
        Some(remote.prune_lock()?)
    } else {
        None
    };
    let mut plan = RemotePrunePlan {
        dry_run: !confirm,
        ..Default::default()
    };
    let ids = remote.snapshot_ids()?;
    let mut restore_of = BTreeMap::new();
    let mut docs = BTreeMap::new();
    for id in &ids {
        match remote.doc(id.as_str()) {
            Ok(doc) => {
                if let Some(of) = &doc.restore_of {
                    restore_of.insert(id.clone(), SnapshotId::parse(of).ok());
                }
                docs.insert(id.clone(), doc);
            }
            Err(Error::RemoteFormat { .. }) => plan.damaged.push(id.to_string()),
            Err(e) => return Err(e),
        }
    }
    let readable: Vec<SnapshotId> = docs.keys().cloned().collect();
    let kept = cairn_engine::prune::decide_at(
        &readable,
        &restore_of,
        &BTreeSet::new(),
        policy,
        Utc::now(),
    );
    for id in &ids {
        if let Some(reasons) = kept.get(id) {
            plan.keep.push(Kept {
                id: id.to_string(),
                reasons: reasons.clone(),
            });
        } else if plan.damaged.contains(&id.to_string()) {
            plan.keep.push(Kept {
                id: id.to_string(),
                reasons: vec![cairn_engine::prune::Reason::Damaged],
            });
        } else {
            plan.delete.push(id.to_string());
        }
    }
    if !plan.damaged.is_empty() {
        // A snapshot whose document cannot be read may need any pack.
        tracing::warn!(remote = %remote.config.name, "damaged snapshot documents: no pack is collected");
    }
    let mut referenced: HashSet<String> = HashSet::new();
    for (id, doc) in &docs {
        if kept.contains_key(id) {
            referenced.extend(doc.packs.keys().cloned());
        }
    }
    if confirm {
        for id in &plan.delete {
            remote.backend.delete(&format::snapshot_key(id))?;
            plan.deleted.push(id.clone());
        }
    }
    let grace = remote.config.gc_grace;
    let now = SystemTime::now();
    let indexes = remote.listing("index/")?;
    for listed in remote.backend.list("packs/")? {
        let Some(pack) = format::pack_of_key(&listed.key) else {
            continue;
        };
        if referenced.contains(pack) || !plan.damaged.is_empty() {
            continue;
        }
        // No time known is treated as new: nothing is deleted on a guess.
        let old = listed
            .modified
            .and_then(|m| now.duration_since(m).ok())
            .is_some_and(|age| age >= grace);
        if !old {
            plan.packs_in_grace += 1;
            continue;
        }
        plan.packs_unreferenced += 1;
        if confirm {
            // Index first: a pack without an index is never used again.
            remote.backend.delete(&format::index_key(pack))?;
            remote.backend.delete(&listed.key)?;
            plan.packs_deleted += 1;
            plan.bytes_freed += listed.size;
        }
    }
    // Indexes whose pack is gone (a GC or push cut short), once old.
    if confirm && plan.damaged.is_empty() {
        let packs: HashSet<String> = remote
            .backend
            .list("packs/")?
            .iter()
            .filter_map(|l| format::pack_of_key(&l.key).map(str::to_owned))
            .collect();
        for (key, listed) in &indexes {
            let Some(pack) = format::index_of_key(key) else {
                continue;
            };
            let old = listed
                .modified
                .and_then(|m| now.duration_since(m).ok())
                .is_some_and(|age| age >= grace);
            if old && !packs.contains(pack) && !referenced.contains(pack) {
                remote.backend.delete(key)?;
            }
        }
    }
    Ok(plan)
}
