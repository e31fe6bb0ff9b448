//! Real storage servers on 127.0.0.1 for Cairn's off-site tests.
//!
//! - [`S3Server`]: an S3-protocol server started in-process (s3s + s3s-fs),
//!   on a random free loopback port, backed by a fresh temporary directory,
//!   checking every request's SigV4 signature against one generated key
//!   pair. `cargo test` needs nothing else.
//! - [`moto_from_env`] and [`sftp_from_env`]: the second S3 implementation
//!   (moto) and the SFTP server (Debian's sshd) that `.ci/remote-servers
//!   start` installs and starts, found through the variables it writes to
//!   `target/remote-servers/env`.
//!
//! This crate is for tests and xtask only; `cairn` never links it.
//! docs/offsite-servers.md says how the servers behave and what to expect
//! of them.

mod external;
mod keys;
mod s3;
mod service;

pub use external::{moto_from_env, sftp_from_env, ExternalS3, SftpTarget};
pub use s3::{S3Server, S3ServerOptions};

use std::path::PathBuf;

/// Why a test server could not be started or restarted.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("test S3 server: cannot {what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("test S3 server: cannot use {path} as its data directory: {reason}")]
    DataDir { path: PathBuf, reason: String },
    #[error("test S3 server: {0}")]
    Server(String),
}

impl Error {
    fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let what = what.into();
        move |source| Error::Io { what, source }
    }
}
