//! Errors of the engine and of plug-ins.
//!
//! Policy:
//! - Every variant names the thing involved (path, store, snapshot id, key),
//!   and its text reads well after "failed to …"-style context.
//! - Each variant belongs to one [`ExitClass`], which the CLI maps to the
//!   operator contract's exit codes. Nothing in the engine exits the process.
//! - `Busy` is the only retryable error: another run holds the repository
//!   lock; run again later.
//! - A problem found *in a snapshot* (bad checksum, failed integrity check)
//!   is not an `Error` but a [`crate::Problem`]: validation reports all of
//!   them instead of stopping at the first.

use std::io;
use std::path::{Path, PathBuf};

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How an error maps onto the contract's exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitClass {
    /// 1: ran, and something checked was not sound.
    Unsound,
    /// 2: bad usage or bad config.
    Usage,
    /// 3: refused by a safety gate before anything was touched.
    Refused,
    /// 4: an I/O or system error stopped the run.
    Io,
}

impl ExitClass {
    pub fn code(self) -> u8 {
        match self {
            ExitClass::Unsound => 1,
            ExitClass::Usage => 2,
            ExitClass::Refused => 3,
            ExitClass::Io => 4,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{value:?} is not a snapshot id (expected YYYYMMDDTHHMMSSZ or YYYYMMDDTHHMMSSZ-N)")]
    BadId { value: String },

    #[error("config {file}: {message}")]
    Config { file: PathBuf, message: String },

    #[error("bad usage: {message}")]
    Usage { message: String },

    #[error("snapshot {id} not found in {repo}")]
    SnapshotNotFound { id: String, repo: PathBuf },

    #[error("repository is busy: another cairn run holds the lock {lock} (waited {waited_secs}s)")]
    Busy { lock: PathBuf, waited_secs: u64 },

    #[error("refused: {reason}")]
    Refused {
        reason: String,
        hint: Option<String>,
    },

    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("store {store}: {message}")]
    Store {
        store: String,
        message: String,
        class: ExitClass,
    },

    #[error("snapshot {id}: {message}")]
    Manifest { id: String, message: String },

    #[error("hook {hook} ({argv}): {message}")]
    Hook {
        hook: &'static str,
        argv: String,
        message: String,
    },

    #[error("{message}")]
    Unsound { message: String },
}

impl Error {
    pub fn exit_class(&self) -> ExitClass {
        match self {
            Error::BadId { .. } | Error::Config { .. } | Error::Usage { .. } => ExitClass::Usage,
            Error::SnapshotNotFound { .. } => ExitClass::Usage,
            Error::Busy { .. } | Error::Refused { .. } => ExitClass::Refused,
            Error::Io { .. } => ExitClass::Io,
            Error::Store { class, .. } => *class,
            Error::Manifest { .. } | Error::Hook { .. } | Error::Unsound { .. } => {
                ExitClass::Unsound
            }
        }
    }

    /// A second line for the operator, where one helps.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Refused { hint, .. } => hint.clone(),
            Error::Busy { .. } => Some(
                "wait for the other run (snapshot, restore or prune) to finish, then run again"
                    .into(),
            ),
            Error::BadId { .. } => Some("`cairn list` shows the snapshot ids".into()),
            Error::SnapshotNotFound { .. } => Some("`cairn list` shows the snapshot ids".into()),
            Error::Io { source, .. } if source.raw_os_error() == Some(libc::ENOSPC) => {
                Some("the filesystem is full: free space or point `repository` elsewhere".into())
            }
            _ => None,
        }
    }

    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    pub fn refused(reason: impl Into<String>, hint: Option<&str>) -> Self {
        Error::Refused {
            reason: reason.into(),
            hint: hint.map(str::to_owned),
        }
    }

    pub fn store(store: &str, class: ExitClass, message: impl Into<String>) -> Self {
        Error::Store {
            store: store.to_owned(),
            message: message.into(),
            class,
        }
    }

    pub fn config(file: &Path, message: impl Into<String>) -> Self {
        Error::Config {
            file: file.to_owned(),
            message: message.into(),
        }
    }
}

/// `result.map_err(io_at("open", path))` keeps call sites short.
pub fn io_at<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> Error + 'a {
    move |source| Error::io(op, path, source)
}
