//! Restore step 3: the way back first (the pre-restore snapshot), then
//! each store swapped in, and a rollback when one fails.

use super::plan::Job;
use super::stage::{stage_store, StageError, Staged, StagedRestore};
use super::target::Target;
use super::{RestoreOutcome, RollbackFailure, StoreOutcome, PRE_RESTORE_TAG};
use crate::error::{Error, Result};
use crate::manifest::{Manifest, Shape, StoreRecord, StoreStatus};
use crate::plugin::{StoreHandler, SwapReport};
use crate::snapshot::{self, Plan};
use crate::{fault, replace};

impl StagedRestore<'_> {
    /// Takes the pre-restore snapshot (live restores, unless declined),
    /// then swaps store by store; the first failure stops the swaps and
    /// rolls back the stores already swapped.
    pub fn swap(self) -> Result<RestoreOutcome> {
        let StagedRestore { plan, staged } = self;
        let pre_restore_snapshot = if plan.takes_pre_restore_snapshot() {
            let live: Vec<_> = plan.jobs.iter().filter_map(|j| j.live).collect();
            let pre = Plan::new(live, None, vec![PRE_RESTORE_TAG.to_owned()])?
                .pre_restore(plan.id.as_str());
            Some(snapshot::capture(&plan.repo, &plan.lock, &pre)?.id)
        } else {
            None
        };

        let mut outcome = RestoreOutcome {
            id: plan.id.to_string(),
            pre_restore_snapshot,
            to: plan.to.clone(),
            stores: plan.absent_outcomes(),
            rolled_back: false,
            failure: None,
            rollback_failure: None,
        };

        let mut swapped: Vec<(&Job<'_>, &str)> = Vec::new();
        for (job, staged) in plan.jobs.iter().zip(staged.iter()) {
            let record = plan.record(job);
            let result = swap_one(&*job.handler, record, &job.target, staged);
            let path = job.target.shown.display().to_string();
            match result {
                Ok(report) => {
                    tracing::info!(store = %record.name, integrity_ok = ?report.integrity_ok, "swapped in");
                    swapped.push((job, &record.name));
                    outcome.stores.push(StoreOutcome {
                        name: record.name.clone(),
                        restored: true,
                        integrity_ok: report.integrity_ok,
                        path,
                        skipped: None,
                        detail: report.detail,
                    });
                }
                Err(e) => {
                    outcome.failure = Some(format!("store {}: {e}", record.name));
                    outcome.stores.push(StoreOutcome {
                        name: record.name.clone(),
                        restored: false,
                        integrity_ok: None,
                        path,
                        skipped: None,
                        detail: Some(e.to_string()),
                    });
                    break;
                }
            }
        }
        drop(staged);

        if outcome.failure.is_some() && !swapped.is_empty() {
            let names = swapped.iter().map(|(_, name)| name.to_string()).collect();
            if let Err(e) = roll_back(&plan.repo, &mut outcome, &swapped) {
                outcome.rollback_failure = Some(RollbackFailure {
                    pre_restore_snapshot: outcome.pre_restore_snapshot.clone(),
                    stores: names,
                    error: e.to_string(),
                });
            } else {
                outcome.rolled_back = true;
            }
        }
        Ok(outcome)
    }
}

/// The kind's step before, the engine's swap, the kind's report after.
/// The kind sees the live path through the held parent directory.
fn swap_one(
    handler: &dyn StoreHandler,
    record: &StoreRecord,
    target: &Target,
    staged: &Staged,
) -> Result<SwapReport> {
    fault::check_swap(&record.name, &target.shown)?;
    let live = target.library_path();
    handler
        .before_swap(&live)
        .map_err(|e| e.in_store(&record.name))?;
    match (record.shape, record.entries.first()) {
        (Shape::File, Some(entry)) => replace::replace_file(
            &staged.dir,
            std::ffi::OsStr::new(&entry.path),
            &target.parent,
            target.name(),
        )?,
        _ => replace::replace_dir_contents(&staged.host, &staged.dir, &staged.name)?,
    }
    staged.swapped.set(true);
    Ok(handler.after_swap(&live, record))
}

/// Puts the already-swapped stores back from the pre-restore snapshot,
/// and marks each store's outcome with what it ends as.
fn roll_back(
    repo: &crate::repo::Repository,
    outcome: &mut RestoreOutcome,
    swapped: &[(&Job<'_>, &str)],
) -> Result<()> {
    let Some(pre_id) = outcome.pre_restore_snapshot.clone() else {
        return Err(Error::Usage {
            message: "no pre-restore snapshot was taken, so there is nothing to roll back to"
                .into(),
        });
    };
    let pre = repo.resolve(&pre_id)?;
    let manifest = Manifest::read_from(&repo.snapshot_dir(&pre), pre.as_str()).map_err(|p| {
        Error::Unsound {
            id: pre.to_string(),
            problems: vec![p],
        }
    })?;
    for &(job, name) in swapped {
        let Some(record) = manifest.store(name) else {
            continue;
        };
        let detail = if record.status == StoreStatus::Absent {
            // It did not exist before the restore: rolling back removes it.
            job.target.parent.remove_tree(job.target.name())?;
            format!("rolled back: removed, as before the restore (absent in {pre})")
        } else {
            let root = repo.store_dir(&pre, &record.name);
            let staged = match stage_store(&pre, &root, record, &*job.handler, &job.target) {
                Ok(s) => s,
                Err(StageError::Problems(problems)) => {
                    return Err(Error::Unsound {
                        id: pre.to_string(),
                        problems,
                    })
                }
                Err(StageError::Fatal(e)) => return Err(e),
            };
            swap_one(&*job.handler, record, &job.target, &staged)?;
            format!("rolled back to pre-restore snapshot {pre}")
        };
        if let Some(s) = outcome.stores.iter_mut().find(|s| s.name == name) {
            s.restored = false;
            s.integrity_ok = None;
            s.detail = Some(detail);
        }
    }
    Ok(())
}
