//! The servers `.ci/remote-servers start` runs outside the test process
//! (moto, sshd), found through the variables it writes to
//! `target/remote-servers/env`. A missing variable is an error that says
//! what to run, so a test that needs them fails instead of skipping.

use std::path::PathBuf;

/// A second, independent S3 implementation (moto) on 127.0.0.1.
#[derive(Debug, Clone)]
pub struct ExternalS3 {
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl ExternalS3 {
    /// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_REGION, for a child
    /// process's environment.
    pub fn credential_env(&self) -> Vec<(String, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID".into(), self.access_key_id.clone()),
            (
                "AWS_SECRET_ACCESS_KEY".into(),
                self.secret_access_key.clone(),
            ),
            ("AWS_REGION".into(), self.region.clone()),
        ]
    }
}

/// An SFTP account on 127.0.0.1 served by sshd, reached with a key file.
#[derive(Debug, Clone)]
pub struct SftpTarget {
    /// `sftp://user@127.0.0.1:PORT/abs/root`
    pub url: String,
    /// The client's private key (the server's host key is in the invoking
    /// user's `~/.ssh/known_hosts`, as ssh reads it from the passwd home).
    pub key_file: PathBuf,
    /// The directory the URL points at, on the local disk, for tampering.
    pub root: PathBuf,
}

const START_HINT: &str =
    "run `.ci/remote-servers start` and `source target/remote-servers/env` first";

fn var(name: &str) -> Result<String, String> {
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => Ok(value),
        Ok(_) => Err(format!("{name} is set but empty: {START_HINT}")),
        Err(std::env::VarError::NotPresent) => Err(format!("{name} is not set: {START_HINT}")),
        Err(std::env::VarError::NotUnicode(_)) => {
            Err(format!("{name} is not valid UTF-8: {START_HINT}"))
        }
    }
}

/// The moto server `.ci/remote-servers start` runs, from
/// `CAIRN_TEST_MOTO_{ENDPOINT,BUCKET,REGION,KEY_ID,SECRET}`.
pub fn moto_from_env() -> Result<ExternalS3, String> {
    Ok(ExternalS3 {
        endpoint: var("CAIRN_TEST_MOTO_ENDPOINT")?,
        bucket: var("CAIRN_TEST_MOTO_BUCKET")?,
        region: var("CAIRN_TEST_MOTO_REGION")?,
        access_key_id: var("CAIRN_TEST_MOTO_KEY_ID")?,
        secret_access_key: var("CAIRN_TEST_MOTO_SECRET")?,
    })
}

/// The sshd account `.ci/remote-servers start` sets up, from
/// `CAIRN_TEST_SFTP_{URL,KEY,ROOT}`.
pub fn sftp_from_env() -> Result<SftpTarget, String> {
    let target = SftpTarget {
        url: var("CAIRN_TEST_SFTP_URL")?,
        key_file: PathBuf::from(var("CAIRN_TEST_SFTP_KEY")?),
        root: PathBuf::from(var("CAIRN_TEST_SFTP_ROOT")?),
    };
    if !target.key_file.is_file() {
        return Err(format!(
            "CAIRN_TEST_SFTP_KEY names {}, which is not a file: {START_HINT}",
            target.key_file.display()
        ));
    }
    Ok(target)
}
