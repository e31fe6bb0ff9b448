//! Restore step 3: the way back first (the pre-restore snapshot, verified
//! like any snapshot), then each store swapped in, and a rollback when one
//! fails.

use std::fs;

use super::plan::Job;
use super::stage::{stage_store, StageError, Staged, StagedRestore};
use super::target::Target;
use super::{RestoreOutcome, RollbackFailure, StoreOutcome, PRE_RESTORE_TAG};
use crate::error::{io_at, Error, Result};
use crate::id::SnapshotId;
use crate::manifest::{Manifest, RawPath, Shape, StoreRecord, StoreStatus};
use crate::plugin::{StoreHandler, SwapReport};
use crate::problem::Problem;
use crate::repo::Repository;
use crate::snapshot::{self, Plan};
use crate::{fault, fsutil, replace};

impl StagedRestore<'_> {
    /// Takes the pre-restore snapshot (live restores, unless declined),
    /// then swaps store by store; the first failure stops the swaps and
    /// rolls back the stores already swapped.
    pub fn swap(self) -> Result<RestoreOutcome> {
        let StagedRestore {
            plan,
            staged,
            kind_problems,
        } = self;
        crate::cancel::check()?;
        let (pre_restore_snapshot, pre_restore_problems) = if plan.takes_pre_restore_snapshot() {
            let (id, problems) = take_pre_restore_snapshot(&plan)?;
            (Some(id), problems)
        } else {
            (None, Vec::new())
        };
        // The last safe point: from here every swap, and any rollback,
        // runs to its end whatever signal arrives (see crate::cancel).
        crate::cancel::check()?;
        crate::cancel::shielded(|| {
            let mut outcome = RestoreOutcome {
                id: plan.id.to_string(),
                pre_restore_snapshot,
                pre_restore_problems,
                to: plan.to.clone(),
                stores: plan.absent_outcomes(),
                problems: kind_problems,
                rolled_back: false,
                failure: None,
                rollback_failure: None,
            };

            let mut swapped: Vec<(&Job<'_>, &str)> = Vec::new();
            for (job, staged) in plan.jobs.iter().zip(staged.iter()) {
                let record = plan.record(job);
                // Some paths of a live store: those alone are swapped in.
                let tops = job
                    .partial
                    .as_ref()
                    .filter(|_| job.target.live)
                    .map(|p| p.tops.as_slice());
                let result = swap_one(&*job.handler, record, &job.target, staged, tops);
                let path = job.target.shown.display().to_string();
                match result {
                    Ok(report) => {
                        tracing::info!(store = %record.name, integrity_ok = ?report.integrity_ok, "swapped in");
                        swapped.push((job, &record.name));
                        outcome.stores.push(StoreOutcome {
                            name: record.name.clone(),
                            restored: true,
                            rolled_back: false,
                            integrity_ok: report.integrity_ok,
                            path,
                            skipped: None,
                            detail: report.detail,
                            not_kept: report.not_kept,
                        });
                    }
                    Err(e) => {
                        outcome.failure = Some(format!("store {}: {e}", record.name));
                        outcome.stores.push(StoreOutcome {
                            name: record.name.clone(),
                            restored: false,
                            rolled_back: false,
                            integrity_ok: None,
                            path,
                            skipped: None,
                            detail: Some(e.to_string()),
                            not_kept: Vec::new(),
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
        })
    }
}

/// The way back, known restorable before anything is swapped: captured
/// and deep-validated like any snapshot. Problems in its files (a file
/// hard-linked from a parent snapshot whose copy rotted on disk) mean
/// it is rebuilt once from the live stores alone, every byte read again;
/// if that is not sound either, the restore is refused with nothing
/// swapped. A kind's check failing on faithful bytes (a live database
/// that is already damaged) is no reason to refuse: those bytes are
/// exactly what the way back must put back; they are reported.
fn take_pre_restore_snapshot(
    plan: &super::plan::RestorePlan<'_>,
) -> Result<(String, Vec<Problem>)> {
    let live: Vec<_> = plan.jobs.iter().filter_map(|j| j.live).collect();
    let absent_before: Vec<String> = plan
        .jobs
        .iter()
        .filter(|j| !j.target.existed)
        .map(|j| plan.record(j).name.clone())
        .collect();
    let mut last = Vec::new();
    for full in [false, true] {
        let pre = Plan::new(live.clone(), None, vec![PRE_RESTORE_TAG.to_owned()])?
            .pre_restore(plan.id.as_str(), absent_before.clone())
            .full(full);
        let (summary, report) = snapshot::capture_validated(&plan.repo, &plan.lock, &pre)?;
        let (files, kind): (Vec<Problem>, Vec<Problem>) =
            report.errors.into_iter().partition(Problem::is_about_files);
        if files.is_empty() {
            return Ok((summary.id, kind));
        }
        tracing::warn!(id = %summary.id, full, problems = files.len(), "pre-restore snapshot failed verification; discarded");
        discard(&plan.repo, &summary.id)?;
        last = files;
    }
    Err(Error::PreRestoreUnsound { problems: last })
}

/// Removes a snapshot this run made and found unsound, the way prune
/// does: renamed out of `snapshots/` first, so it never looks whole.
fn discard(repo: &Repository, id: &str) -> Result<()> {
    let id = SnapshotId::parse(id)?;
    let from = repo.snapshot_dir(&id);
    let to = repo.tmp_dir().join(format!("delete-{id}"));
    fs::rename(&from, &to).map_err(io_at("move out of snapshots/", &from))?;
    fsutil::sync_dir(&repo.snapshots_dir())?;
    fsutil::remove_any(&to)
}

/// What a swap reports: the kind's report, and what of the recorded
/// metadata could not be given back.
struct Swapped {
    integrity_ok: Option<bool>,
    detail: Option<String>,
    not_kept: Vec<String>,
}

/// The kind's step before, the engine's swap, the kind's report after.
/// The kind sees the live path through the held parent directory. A
/// directory store's directory that the restore created gets the owner,
/// mode and attributes recorded of it once its contents are in.
fn swap_one(
    handler: &dyn StoreHandler,
    record: &StoreRecord,
    target: &Target,
    staged: &Staged,
    tops: Option<&[RawPath]>,
) -> Result<Swapped> {
    fault::check_swap(&record.name, &target.shown)?;
    let live = target.library_path();
    handler
        .before_swap(&live)
        .map_err(|e| e.in_store(&record.name))?;
    match (record.shape, record.entries.first()) {
        _ if tops.is_some() => {
            super::partial::swap_paths(&staged.host, &staged.dir, tops.unwrap_or_default())?
        }
        (Shape::File, Some(entry)) => replace::replace_file(
            &staged.dir,
            entry.path.as_os_str(),
            &target.parent,
            target.name(),
        )?,
        _ => replace::replace_dir_contents(&staged.host, &staged.dir, &staged.name)?,
    }
    staged.swapped.set(true);
    let mut not_kept = staged.not_kept.clone();
    if target.live && record.shape == Shape::Dir && staged.created_host.is_some() {
        // The staging directory, empty now, goes first: removing it later
        // would change the directory's mtime again.
        let _ = staged.host.remove_empty_dir(&staged.name);
        not_kept.extend(super::stage::apply_root(record, &staged.host)?);
    }
    let SwapReport {
        integrity_ok,
        detail,
    } = handler.after_swap(&live, record);
    Ok(Swapped {
        integrity_ok,
        detail,
        not_kept,
    })
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
            // A kind's check failing here is accepted: these are the live
            // bytes as they were before the restore.
            let staged = match stage_store(&pre, &root, record, &*job.handler, &job.target) {
                Ok((s, _)) => s,
                Err(StageError::Problems(problems)) => {
                    return Err(Error::Unsound {
                        id: pre.to_string(),
                        problems,
                    })
                }
                Err(StageError::Fatal(e)) => return Err(e),
            };
            swap_one(&*job.handler, record, &job.target, &staged, None)?;
            format!("rolled back to pre-restore snapshot {pre}")
        };
        if let Some(s) = outcome.stores.iter_mut().find(|s| s.name == name) {
            s.restored = false;
            s.rolled_back = true;
            s.integrity_ok = None;
            s.detail = Some(detail);
        }
    }
    Ok(())
}
