//! The Restore stage, in three steps with a type between each:
//!
//! 1. [`plan`] → [`RestorePlan`]: select the stores, then every gate
//!    (confirmation, repository lock, manifest digest, the service
//!    visibly running). Touches nothing; a dry run is this step and
//!    [`RestorePlan::check_snapshot`] (presence, types and sizes of the
//!    snapshot's entries, nothing unlisted).
//! 2. [`RestorePlan::stage`] → [`StagedRestore`]: copy every store onto
//!    the *target's own filesystem* (a file store beside its file, a
//!    directory store inside its directory, since a bind mount is a
//!    filesystem of its own), verify each file's SHA-256 while copying,
//!    then run the kind's check on the staged copy; beside the copy, the
//!    snapshot's listing is checked as a dry run checks it. A bad
//!    snapshot is found here, before anything live changes; the staged
//!    copies remove themselves when dropped.
//! 3. [`StagedRestore::swap`] → [`RestoreOutcome`]: the pre-restore
//!    snapshot (the way back), then store by store the kind's
//!    `before_swap`, the engine's swap (`crate::replace`), the kind's
//!    `after_swap`. A failure rolls back the stores already swapped from
//!    the pre-restore snapshot.

mod partial;
mod plan;
mod stage;
mod swap;
mod target;

use std::path::PathBuf;

use crate::config::Config;
use crate::error::Result;
use crate::problem::Problem;
use crate::stores::Stores;

pub use plan::{PlannedStore, RestorePlan};
pub use stage::StagedRestore;

pub const PRE_RESTORE_TAG: &str = "pre-restore";

#[derive(Debug, Default)]
pub struct RestoreRequest {
    pub id: String,
    pub only: Vec<String>,
    pub skip: Vec<String>,
    /// The operator says the service is stopped (needed for a live restore).
    pub confirm_service_stopped: bool,
    pub no_pre_snapshot: bool,
    /// Restore into `DIR/<store>/…`, never touching live paths.
    pub to: Option<PathBuf>,
    /// Only these entries (store, exact path; an empty path is the whole
    /// store), each with everything under it; the stores named here are
    /// the ones restored, and the rest of each is left as it is.
    pub paths: Vec<(String, crate::manifest::RawPath)>,
}

#[derive(Debug)]
pub struct RestoreOutcome {
    pub id: String,
    pub pre_restore_snapshot: Option<String>,
    /// What the pre-restore snapshot's kind checks found in the live
    /// stores it captured byte for byte (a live store already damaged).
    /// Its files are verified; it is still the way back.
    pub pre_restore_problems: Vec<Problem>,
    /// `None` for the live paths, else the directory restored into.
    pub to: Option<PathBuf>,
    pub stores: Vec<StoreOutcome>,
    /// What the kinds' own checks found in the restored snapshot's files
    /// (which match its manifest): restored anyway elsewhere, or live
    /// from a pre-restore snapshot; the restore is then not sound.
    pub problems: Vec<Problem>,
    pub rolled_back: bool,
    /// What failed, when a store could not be swapped in.
    pub failure: Option<String>,
    /// Rollback itself failed: what is left for the operator to do.
    pub rollback_failure: Option<RollbackFailure>,
}

impl RestoreOutcome {
    /// Sound only when every selected store is in and checked sound.
    pub fn is_sound(&self) -> bool {
        self.failure.is_none()
            && self.problems.is_empty()
            && self
                .stores
                .iter()
                .all(|s| s.skipped.is_some() || (s.restored && s.integrity_ok != Some(false)))
    }
}

#[derive(Debug)]
pub struct StoreOutcome {
    pub name: String,
    /// Its content is the snapshot's now (false once rolled back).
    pub restored: bool,
    /// It was swapped in, then put back as it was before the restore.
    pub rolled_back: bool,
    /// `None` when the kind has no post-restore integrity check.
    pub integrity_ok: Option<bool>,
    /// Where the store went.
    pub path: String,
    /// Why a store was left alone (e.g. absent in the snapshot).
    pub skipped: Option<String>,
    pub detail: Option<String>,
    /// What of the recorded metadata could not be given back: owners when
    /// not restoring as root (and the setuid/setgid bits that go with
    /// them), extended attributes the restoring user or the file system
    /// cannot set. Empty when everything came back as recorded.
    pub not_kept: Vec<String>,
}

/// Why the stores already swapped could not be put back.
#[derive(Debug)]
pub struct RollbackFailure {
    /// The snapshot that would put them back, when one was taken.
    pub pre_restore_snapshot: Option<String>,
    /// The stores left as restored.
    pub stores: Vec<String>,
    pub error: String,
}

/// Plan, stage, swap.
pub fn run(cfg: &Config, stores: &Stores, req: RestoreRequest) -> Result<RestoreOutcome> {
    plan::plan(cfg, stores, &req)?.stage()?.swap()
}

pub use plan::plan;
