//! Where a remote is: its URL parsed, and how it is shown (never with a
//! credential: the config refuses a password in the URL, and keys come
//! from elsewhere).

use std::path::{Path, PathBuf};

use cairn_engine::config::RemoteConfig;
use cairn_engine::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `file:///path`: a directory (a NAS mount, a second disk).
    Fs { root: PathBuf },
    /// `s3://bucket/prefix`.
    S3 { bucket: String, prefix: String },
    /// `sftp://user@host:port/path`.
    Sftp {
        user: Option<String>,
        host: String,
        port: u16,
        root: String,
    },
}

impl Target {
    pub fn parse(cfg: &RemoteConfig) -> Result<Target> {
        let bad = |why: &str| {
            Error::config(
                &cfg.origin,
                format!("remote {:?}: `url` {:?} {why}", cfg.name, cfg.url),
            )
        };
        let (scheme, rest) = cfg
            .url
            .split_once("://")
            .ok_or_else(|| bad("has no scheme"))?;
        match scheme {
            "file" => {
                if !rest.starts_with('/') {
                    return Err(bad("must be file:///absolute/path"));
                }
                let root = PathBuf::from(rest.trim_end_matches('/'));
                if root.as_os_str().is_empty() || root == Path::new("/") {
                    return Err(bad("must name a directory below /"));
                }
                Ok(Target::Fs { root })
            }
            "s3" => {
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                let bucket_ok = (3..=63).contains(&bucket.len())
                    && bucket.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b"-.".contains(&b)
                    });
                if !bucket_ok {
                    return Err(bad(
                        "must be s3://bucket/prefix with a bucket name of 3-63 lowercase letters, digits, dots or dashes",
                    ));
                }
                let prefix = prefix.trim_matches('/');
                if prefix.split('/').any(|c| c == ".." || c == ".") {
                    return Err(bad("must not hold `.` or `..` in its prefix"));
                }
                Ok(Target::S3 {
                    bucket: bucket.to_owned(),
                    prefix: prefix.to_owned(),
                })
            }
            "sftp" => {
                let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
                let (user, hostport) = match authority.rsplit_once('@') {
                    Some((u, h)) => (Some(u.to_owned()), h),
                    None => (None, authority),
                };
                let (host, port) = match hostport.rsplit_once(':') {
                    Some((h, p)) => (
                        h,
                        p.parse::<u16>()
                            .map_err(|_| bad("has a port that is not a number from 1 to 65535"))?,
                    ),
                    None => (hostport, 22),
                };
                if host.is_empty() || port == 0 {
                    return Err(bad("must be sftp://user@host:port/path"));
                }
                Ok(Target::Sftp {
                    user,
                    host: host.to_owned(),
                    port,
                    root: format!("/{}", path.trim_end_matches('/')),
                })
            }
            _ => Err(bad("must start with s3://, sftp:// or file://")),
        }
    }
}

/// A remote config with `url` and nothing else set, for unit tests.
#[cfg(test)]
pub(crate) fn test_config(url: &str) -> RemoteConfig {
    use std::time::Duration;
    RemoteConfig {
        name: "r".into(),
        url: url.into(),
        endpoint: None,
        region: None,
        push_after_snapshot: false,
        rate_limit: None,
        retention: None,
        credentials_file: None,
        key_file: None,
        gc_grace: Duration::from_secs(1),
        io_timeout: Duration::from_secs(1),
        origin: "cairn.toml".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(url: &str) -> RemoteConfig {
        test_config(url)
    }

    #[test]
    fn urls_parse_to_targets() {
        assert_eq!(
            Target::parse(&cfg("s3://cairn-backups/atocore/")).ok(),
            Some(Target::S3 {
                bucket: "cairn-backups".into(),
                prefix: "atocore".into()
            })
        );
        assert_eq!(
            Target::parse(&cfg("sftp://backup@nas.example:2222/srv/cairn")).ok(),
            Some(Target::Sftp {
                user: Some("backup".into()),
                host: "nas.example".into(),
                port: 2222,
                root: "/srv/cairn".into()
            })
        );
        assert_eq!(
            Target::parse(&cfg("file:///mnt/nas/cairn")).ok(),
            Some(Target::Fs {
                root: "/mnt/nas/cairn".into()
            })
        );
        for bad in [
            "file://relative",
            "file:///",
            "s3://B/x",
            "s3://ok-bucket/../x",
            "sftp://h:notaport/x",
            "http://x/y",
        ] {
            assert!(Target::parse(&cfg(bad)).is_err(), "{bad}");
        }
    }
}
