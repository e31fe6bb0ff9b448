//! Restore step 1: what will be restored where, and every gate that can
//! refuse it. Nothing here writes a file (the repository lock is taken,
//! and held until the restore ends).

use std::path::{Path, PathBuf};

use super::partial::{self, Partial};
use super::target::Target;
use super::{RestoreRequest, StoreOutcome};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::id::SnapshotId;
use crate::lock::FileLock;
use crate::manifest::{Manifest, Shape, StoreRecord, StoreStatus};
use crate::plugin::Depth;
use crate::repo::{Repository, STORES_DIR};
use crate::stores::{self, RecordHandler, Store, Stores};
use crate::validate;

/// A restore that passed every gate, holding the repository lock.
pub struct RestorePlan<'a> {
    pub(super) repo: Repository,
    pub(super) lock: FileLock,
    pub(super) id: SnapshotId,
    pub(super) manifest: Manifest,
    pub(super) to: Option<PathBuf>,
    pub(super) no_pre_snapshot: bool,
    /// The stores to restore, in manifest order.
    pub(super) jobs: Vec<Job<'a>>,
    /// Selected stores the snapshot recorded as absent: left alone.
    pub(super) absent: Vec<String>,
    /// Configured stores the snapshot does not have (live restores): left
    /// as they are, and named in the report.
    pub(super) not_in_snapshot: Vec<String>,
}

/// One store on its way in.
pub(super) struct Job<'a> {
    /// Its record's index in `manifest.stores`.
    pub(super) index: usize,
    pub(super) handler: RecordHandler<'a>,
    /// Where it goes, held open.
    pub(super) target: Target,
    /// The configured store, for a live restore (its pre-restore snapshot).
    pub(super) live: Option<&'a Store>,
    /// Only some paths of a directory store (`RestoreRequest::paths`).
    pub(super) partial: Option<Partial>,
}

/// What a plan will do with one store, for a dry run.
#[derive(Debug)]
pub struct PlannedStore {
    pub name: String,
    pub kind: String,
    /// Where it goes; `None` when it is absent in the snapshot.
    pub target: Option<PathBuf>,
    pub files: usize,
    pub bytes: u64,
}

/// Every gate, in order: confirmation, lock, manifest, selection, the
/// configured store for each, and (live) each kind's in-use probe. The
/// first that fails refuses the restore. The snapshot's files are checked
/// by [`RestorePlan::stage`] (a dry run: [`RestorePlan::check_snapshot`]).
pub fn plan<'a>(cfg: &Config, stores: &'a Stores, req: &RestoreRequest) -> Result<RestorePlan<'a>> {
    let id = SnapshotId::parse(&req.id)?;
    // A relative `--to` is taken from where the operator runs Cairn, as
    // `cp` takes one; everything after (the overlap check with live
    // stores, the descriptor walk that refuses planted links) sees the
    // absolute path.
    let to = match &req.to {
        Some(dir) => Some(std::path::absolute(dir).map_err(|e| Error::io("resolve", dir, e))?),
        None => None,
    };
    let live = to.is_none();
    if live && !req.confirm_service_stopped {
        return Err(Error::NotConfirmed);
    }
    let repo = Repository::new(&cfg.repository);
    let lock = repo.lock(cfg.lock_wait)?;
    let id = repo.resolve(id.as_str())?;
    let snap_dir = repo.snapshot_dir(&id);

    let manifest = Manifest::read_from(&snap_dir, id.as_str()).map_err(|p| Error::Unsound {
        id: id.to_string(),
        problems: vec![p],
    })?;
    let selected: Vec<usize> = if req.paths.is_empty() {
        stores::select(
            &manifest.stores,
            |r| r.name.as_str(),
            &req.only,
            &req.skip,
            &format!("snapshot {id}"),
        )?
        .into_iter()
        .filter_map(|r| manifest.stores.iter().position(|s| s.name == r.name))
        .collect()
    } else {
        selected_by_paths(&id, &manifest, req)?
    };

    if let Some(dir) = &to {
        let names = selected.iter().map(|&i| manifest.stores[i].name.as_str());
        crate::config::check_restore_elsewhere(cfg, dir, names)?;
    }
    let mut jobs = Vec::new();
    let mut absent = Vec::new();
    for i in selected {
        let record = &manifest.stores[i];
        if record.status == StoreStatus::Absent {
            absent.push(record.name.clone());
            continue;
        }
        match plan_job(stores, record, i, to.as_deref()) {
            Ok(mut job) => {
                job.partial = partial_of(record, &req.paths);
                jobs.push(job)
            }
            Err(e) => {
                remove_created(&jobs);
                return Err(e);
            }
        }
    }

    // A live restore names every configured store it was not told to skip,
    // including those this snapshot never had.
    let not_in_snapshot = if live && req.only.is_empty() && req.paths.is_empty() {
        stores
            .select(&[], &[])
            .unwrap_or_default()
            .into_iter()
            .map(Store::name)
            .filter(|name| manifest.store(name).is_none() && !req.skip.iter().any(|s| s == name))
            .map(str::to_owned)
            .collect()
    } else {
        Vec::new()
    };

    if live {
        for job in &jobs {
            // A directory store is probed through its own descriptor, so a
            // link swapped in for it is never walked.
            let held = match manifest.stores[job.index].shape {
                Shape::Dir if job.target.exists() => Some(job.target.open_or_create_dir()?.0),
                _ => None,
            };
            // Restoring some paths: none may lead through a link.
            if let (Some(dir), Some(p)) = (&held, &job.partial) {
                partial::check_live(dir, &p.tops)?;
            }
            let probe = match &held {
                Some(dir) => dir.fd_path(""),
                None => job.target.library_path(),
            };
            if let Some(reason) = job.handler.in_use(&probe)? {
                return Err(Error::InUse {
                    store: manifest.stores[job.index].name.clone(),
                    reason,
                });
            }
        }
    }

    Ok(RestorePlan {
        repo,
        lock,
        id,
        manifest,
        to,
        no_pre_snapshot: req.no_pre_snapshot,
        jobs,
        absent,
        not_in_snapshot,
    })
}

impl RestorePlan<'_> {
    /// Refuses a snapshot whose copy of the stores to restore is wrong in
    /// a way that shows without reading a byte: a listed entry missing or
    /// of another type or size, an entry the manifest does not list. A dry
    /// run calls this; staging runs it beside the copy, which hashes every
    /// byte.
    pub fn check_snapshot(&self) -> Result<()> {
        let snap_dir = self.repo.snapshot_dir(&self.id);
        let mut problems = Vec::new();
        for job in &self.jobs {
            // The whole store's record, even when only some paths are
            // restored: the rest is still the snapshot's, not unlisted.
            let record = &self.manifest.stores[job.index];
            if record.status == StoreStatus::Captured {
                let root = snap_dir.join(STORES_DIR).join(&record.name);
                problems.extend(validate::check_files(&root, record, Depth::Quick));
            }
        }
        if problems.is_empty() {
            return Ok(());
        }
        Err(Error::Unsound {
            id: self.id.to_string(),
            problems,
        })
    }
}

fn plan_job<'a>(
    stores: &'a Stores,
    record: &StoreRecord,
    index: usize,
    to: Option<&Path>,
) -> Result<Job<'a>> {
    // A live restore needs the store in the config, under the same kind:
    // that is where it goes. A restore elsewhere only needs the plug-in.
    let (live, target) = match (to, stores.get(&record.name)) {
        (Some(dir), _) => (None, Target::elsewhere(dir, record)?),
        (None, None) => {
            return Err(Error::NotConfigured {
                store: record.name.clone(),
                file: stores.config_file().to_owned(),
            })
        }
        (None, Some(c)) if c.config.kind != record.kind => {
            return Err(Error::KindChanged {
                store: record.name.clone(),
                recorded: record.kind.clone(),
                configured: c.config.kind.clone(),
                file: stores.config_file().to_owned(),
            })
        }
        // Resolved safely: a symlink only where no one but root or the
        // invoker could have put it (or with the store's follow_symlink).
        (None, Some(c)) => (
            Some(c),
            Target::live(&c.config.path, c.config.follow_symlink)?,
        ),
    };
    Ok(Job {
        index,
        handler: stores.for_record(record)?,
        target,
        live,
        partial: None,
    })
}

/// The stores `--path`s name, in manifest order; each must be captured in
/// the snapshot, and every path an entry of it. Refused with `only`/`skip`
/// (the paths choose the stores).
fn selected_by_paths(
    id: &SnapshotId,
    manifest: &Manifest,
    req: &RestoreRequest,
) -> Result<Vec<usize>> {
    if !req.only.is_empty() || !req.skip.is_empty() {
        return Err(Error::Usage {
            message: "restoring paths: the paths choose the stores, so no store selection may be given beside them".into(),
        });
    }
    for (store, path) in &req.paths {
        let record = crate::browse::store(manifest, store)?;
        if !path.is_empty() {
            crate::browse::entry(id, record, path)?;
        }
    }
    Ok(manifest
        .stores
        .iter()
        .enumerate()
        .filter(|(_, r)| req.paths.iter().any(|(s, _)| *s == r.name))
        .map(|(i, _)| i)
        .collect())
}

/// The cut-down record of a directory store restored only in part; `None`
/// for the whole store (a file store, or its root among the paths).
fn partial_of(
    record: &StoreRecord,
    paths: &[(String, crate::manifest::RawPath)],
) -> Option<Partial> {
    if record.shape != Shape::Dir {
        return None;
    }
    let mine: Vec<_> = paths
        .iter()
        .filter(|(s, _)| *s == record.name)
        .map(|(_, p)| p.clone())
        .collect();
    if mine.is_empty() || mine.iter().any(|p| p.is_empty()) {
        return None;
    }
    Some(partial::subset(record, partial::normalize(mine)))
}

/// A plan leaves no trace of its own: the directories its targets created
/// (to hold them open) are removed when it goes, if they are still empty.
/// After a restore, those holding a restored store are not empty and stay;
/// after a dry run or a refusal, all go.
impl Drop for RestorePlan<'_> {
    fn drop(&mut self) {
        remove_created(&self.jobs);
    }
}

/// Removes the directories the targets of `jobs` created, innermost first
/// across all of them (a later store's may sit inside an earlier one's).
pub(super) fn remove_created(jobs: &[Job<'_>]) {
    for job in jobs.iter().rev() {
        job.target.remove_created();
    }
}

impl RestorePlan<'_> {
    pub fn id(&self) -> &SnapshotId {
        &self.id
    }

    /// `None` for the live paths.
    pub fn to(&self) -> Option<&Path> {
        self.to.as_deref()
    }

    /// Whether files that match their manifest but fail their kind's own
    /// check may be restored: elsewhere (nothing live is touched,
    /// and those are the bytes that were captured), or live from a
    /// pre-restore snapshot (the way back puts back exactly what was there).
    pub(super) fn accepts_kind_problems(&self) -> bool {
        self.to.is_some() || self.manifest.restore_of.is_some()
    }

    /// Whether a pre-restore snapshot will be taken before the first swap.
    pub fn takes_pre_restore_snapshot(&self) -> bool {
        self.to.is_none() && !self.no_pre_snapshot
    }

    /// What will happen to each selected store, in manifest order.
    pub fn stores(&self) -> Vec<PlannedStore> {
        let mut planned: Vec<(usize, PlannedStore)> = self
            .jobs
            .iter()
            .map(|job| {
                let record = self.record(job);
                (
                    job.index,
                    PlannedStore {
                        name: record.name.clone(),
                        kind: record.kind.clone(),
                        target: Some(job.target.shown.clone()),
                        files: record.files(),
                        bytes: record.bytes(),
                    },
                )
            })
            .collect();
        for name in &self.absent {
            if let Some((i, record)) = self
                .manifest
                .stores
                .iter()
                .enumerate()
                .find(|(_, r)| &r.name == name)
            {
                planned.push((
                    i,
                    PlannedStore {
                        name: record.name.clone(),
                        kind: record.kind.clone(),
                        target: None,
                        files: 0,
                        bytes: 0,
                    },
                ));
            }
        }
        planned.sort_by_key(|(i, _)| *i);
        planned.into_iter().map(|(_, p)| p).collect()
    }

    /// What of a store is restored: its record, or for a store restored
    /// only in part, the record cut down to the chosen paths.
    pub(super) fn record<'j>(&'j self, job: &'j Job<'_>) -> &'j StoreRecord {
        match &job.partial {
            Some(p) => &p.record,
            None => &self.manifest.stores[job.index],
        }
    }

    /// Whether only some paths of some store are restored.
    pub fn is_partial(&self) -> bool {
        self.jobs.iter().any(|j| j.partial.is_some())
    }

    /// The outcomes of the stores left alone because the snapshot recorded
    /// them absent.
    pub(super) fn absent_outcomes(&self) -> Vec<StoreOutcome> {
        self.absent
            .iter()
            .map(|name| StoreOutcome {
                name: name.clone(),
                restored: false,
                rolled_back: false,
                integrity_ok: None,
                path: String::new(),
                skipped: Some("absent in the snapshot; live store left alone".into()),
                detail: None,
                not_kept: Vec::new(),
            })
            .chain(self.not_in_snapshot.iter().map(|name| StoreOutcome {
                name: name.clone(),
                restored: false,
                rolled_back: false,
                integrity_ok: None,
                path: String::new(),
                skipped: Some("not in this snapshot, left as is".into()),
                detail: None,
                not_kept: Vec::new(),
            }))
            .collect()
    }
}
