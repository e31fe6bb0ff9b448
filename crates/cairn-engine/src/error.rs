//! Errors of the engine and of plug-ins, typed by cause.
//!
//! Policy:
//! - Each variant is one situation an operator can be in (not confirmed,
//!   store in use, snapshot unsound, repository busy, bad config, I/O at a
//!   path, …) and names the thing involved (path, store, snapshot id, key).
//!   Text reads well after "failed to …"-style context.
//! - The engine never decides what an error means to the operator: which
//!   exit code it is, which hint follows it, which flag would get past it.
//!   That is the operator contract, and it lives in the CLI
//!   (`cairn_cli::contract`), in one `match` over these variants. So no
//!   text here names a CLI flag or command.
//! - Plug-ins report the cause (`SourceType`, `SourceRejected`,
//!   `ServiceBusy`, `Source`,
//!   `Config`, `Io`), never an exit code, so one situation gets one code
//!   whatever the kind. The engine adds the store's name (`Store`) when an
//!   error leaves a plug-in; plug-ins need not know it.
//! - `Busy` and `ServiceBusy` are the retryable errors: another run, or
//!   the service, holds a lock; run again later.
//! - A problem found *in a snapshot* (bad checksum, failed integrity check)
//!   is not an `Error` but a [`crate::Problem`]: validation reports all of
//!   them instead of stopping at the first.

use std::io;
use std::path::{Path, PathBuf};

use crate::problem::Problem;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    // Bad input from the operator.
    #[error("{value:?} is not a snapshot id (expected YYYYMMDDTHHMMSSZ or YYYYMMDDTHHMMSSZ-N)")]
    BadId { value: String },

    #[error("config {file}: {message}")]
    Config { file: PathBuf, message: String },

    #[error("config {file}: not found")]
    ConfigNotFound { file: PathBuf },

    /// Running as root with no config named: the current directory's
    /// `cairn.toml` may be anyone's, so it is not read.
    #[error("running as root, cairn does not read ./cairn.toml from the current directory; name the config explicitly")]
    ConfigRequired,

    #[error("bad usage: {message}")]
    Usage { message: String },

    #[error("snapshot {id} not found in {repo}")]
    SnapshotNotFound { id: String, repo: PathBuf },

    #[error("no snapshots in {repo}")]
    NoSnapshots { repo: PathBuf },

    /// The operator's selection of stores left none.
    #[error("no stores selected")]
    NothingSelected,

    /// A store name that is neither configured nor (for a restore) in the
    /// snapshot.
    #[error("no store named {name:?} in {place} (it has: {})", available.join(", "))]
    UnknownStore {
        name: String,
        /// "config <file>" or "snapshot <id>".
        place: String,
        available: Vec<String>,
    },

    /// A requested snapshot time ahead of the clock.
    #[error("{at} is {ahead} ahead of this machine's clock ({now})")]
    FutureTime {
        at: String,
        ahead: String,
        now: String,
    },

    #[error("invalid tag {tag:?}: a tag is 1-128 printable characters without commas")]
    BadTag { tag: String },

    #[error("the retention policy keeps nothing (keep_daily, keep_weekly, keep_monthly and keep_last are all 0, no keep_within, no snapshot has a keep_tag tag, and none is pinned)")]
    EmptyPolicy,

    /// A live restore of a store the snapshot has but the config lacks.
    #[error("store {store:?} is in the snapshot but not in {file}")]
    NotConfigured { store: String, file: PathBuf },

    #[error("store {store:?} is kind {recorded} in the snapshot but kind {configured} in {file}")]
    KindChanged {
        store: String,
        recorded: String,
        configured: String,
        file: PathBuf,
    },

    /// A restore target outside the live paths that already holds files.
    #[error("{path} is not empty; restore into an empty or new directory")]
    TargetNotEmpty { path: PathBuf },

    /// A restore target outside the live paths that is, holds or sits in
    /// the repository or a configured store's live path.
    #[error("restore target {path} {reason}")]
    TargetOverlaps { path: PathBuf, reason: String },

    #[error("snapshot {id}: store {store} has no entry {path}")]
    NoSuchEntry {
        id: String,
        store: String,
        path: String,
    },

    // Refused by a safety gate, nothing touched.
    /// A live restore without the operator's word that the service is stopped.
    #[error("restoring into the live paths needs the operator's confirmation that the service is stopped; nothing was touched")]
    NotConfirmed,

    #[error("store {store}: {reason}; nothing was touched")]
    InUse { store: String, reason: String },

    /// A path Cairn will not go through: a symlink someone it does not
    /// trust could have planted, a target that is not Cairn's to fill.
    #[error("{path} {reason}; refusing to follow it (nothing was touched)")]
    UnsafePath { path: PathBuf, reason: String },

    /// A snapshot refused because its content is not what its manifest says.
    #[error("snapshot {id} is not sound ({}); nothing was touched. First problem: {}", problem_kinds(problems), problems.first().map(ToString::to_string).unwrap_or_default())]
    Unsound { id: String, problems: Vec<Problem> },

    /// The restore's pre-restore snapshot (the way back) failed its own
    /// verification even when built from the live stores alone, so nothing
    /// was swapped.
    #[error("the pre-restore snapshot of the live stores could not be made sound ({}); nothing was swapped. First problem: {}", problem_kinds(problems), problems.first().map(ToString::to_string).unwrap_or_default())]
    PreRestoreUnsound { problems: Vec<Problem> },
    /// A FIFO, socket, device or symlink where a store keeps a regular
    /// file (an SQLite database or its `-wal`/`-shm`/`-journal`), found by
    /// a check made before anything is written (a restore's in-use probe).
    /// Nothing opens it: a FIFO would block the reader forever.
    #[error(
        "{path} is {found}, not a regular file; cairn does not open it, and nothing was touched"
    )]
    NotRegularFile { path: PathBuf, found: &'static str },

    #[error("repository is busy: another cairn run holds the lock {lock} (waited {waited_secs}s){}", holder.as_ref().map(|h| format!("; held by {h}")).unwrap_or_default())]
    Busy {
        lock: PathBuf,
        waited_secs: u64,
        /// Who holds it, from the lock file's record (the repository lock
        /// only; a service's lock file records nothing).
        holder: Option<String>,
    },

    #[error("{dir} has {free} bytes free; about {needed} are needed for one full copy")]
    NoRoom {
        dir: PathBuf,
        free: u64,
        needed: u64,
    },

    // Reported by plug-ins about the live source.
    /// The service holds its own lock (e.g. chroma-dir's `lock_file`).
    #[error("{what} stayed locked for {waited_secs}s (the service is writing); try again later")]
    ServiceBusy { what: String, waited_secs: u64 },

    #[error("{path} is not {expected}")]
    SourceType {
        path: PathBuf,
        expected: &'static str,
    },

    /// The source is there but not what the store's options allow (a
    /// kind's own limit).
    #[error("{path} {reason}")]
    SourceRejected { path: PathBuf, reason: String },

    #[error("source {path} does not exist")]
    SourceMissing { path: PathBuf },

    /// Reading the live source failed (e.g. the SQLite backup API).
    #[error("{path}: {message}")]
    Source { path: PathBuf, message: String },

    // The run itself failed.
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// A plug-in broke a rule of the plug-in interface (a bug, not input).
    #[error("plug-in error: {message}")]
    Plugin { message: String },

    /// An error from a store's plug-in or stage, with the store named.
    #[error("store {store}: {source}")]
    Store {
        store: String,
        #[source]
        source: Box<Error>,
    },

    // Ran, and something was not sound.
    #[error("snapshot {id}: {message}")]
    Manifest { id: String, message: String },

    /// SIGINT or SIGTERM asked the run to stop, and it did, at a safe
    /// point: work directories removed, the lock released, hooks run.
    /// A snapshot file read back is not what its manifest recorded
    /// (`cat`, which streams it): the problem says which and how.
    #[error("snapshot {id}: {problem}")]
    FileDamaged { id: String, problem: Problem },

    #[error("stopped by {} at a safe point; nothing was left half-written", crate::cancel::signal_name(*signal))]
    Interrupted { signal: i32 },

    // Off-site copies (`cairn-remote`). `url` never holds a credential.
    /// The remote could not be reached or refused the request (network,
    /// DNS, TLS, credentials, permissions), after retries.
    #[error("remote {remote} ({url}): {message}")]
    RemoteUnreachable {
        remote: String,
        url: String,
        message: String,
    },

    /// Another run (a prune on this or another host) holds the remote's lock.
    #[error("remote {remote} ({url}) is locked by {holder} since {since}")]
    RemoteLocked {
        remote: String,
        url: String,
        holder: String,
        since: String,
    },

    #[error("snapshot {id} is not on remote {remote} ({url})")]
    RemoteSnapshotNotFound {
        id: String,
        remote: String,
        url: String,
    },

    /// The remote holds something this cairn cannot use: a newer format,
    /// a damaged `config.json` or snapshot document.
    #[error("remote {remote} ({url}): {message}")]
    RemoteFormat {
        remote: String,
        url: String,
        message: String,
    },

    #[error("hook {hook} ({argv}): {message}")]
    Hook {
        hook: &'static str,
        argv: String,
        message: String,
    },
}

/// Each problem code once per store, in the order found.
fn problem_kinds(problems: &[Problem]) -> String {
    let mut kinds: Vec<String> = Vec::new();
    for p in problems {
        let kind = match &p.store {
            Some(store) => format!("{} [{store}]", p.code),
            None => p.code.to_owned(),
        };
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    kinds.join(", ")
}

impl Error {
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    pub fn config(file: &Path, message: impl Into<String>) -> Self {
        Error::Config {
            file: file.to_owned(),
            message: message.into(),
        }
    }

    /// Names the store this error happened in, once: an error that already
    /// names a store keeps it.
    pub fn in_store(self, store: &str) -> Self {
        match self {
            Error::Store { .. } | Error::InUse { .. } => self,
            other => Error::Store {
                store: store.to_owned(),
                source: Box::new(other),
            },
        }
    }

    /// The error beneath any store context: what actually happened.
    pub fn cause(&self) -> &Error {
        match self {
            Error::Store { source, .. } => source.cause(),
            other => other,
        }
    }
}

/// `result.map_err(io_at("open", path))` keeps call sites short.
pub fn io_at<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> Error + 'a {
    move |source| Error::io(op, path, source)
}
