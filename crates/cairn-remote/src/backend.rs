//! The object store under a remote: put, conditional create, get, list,
//! delete of keys like `packs/ab/<sha256>`. Two implementations: a
//! directory (`file://`, plain syscalls, durable: temp file, fsync,
//! rename or link) and OpenDAL for S3 and SFTP, with retries (exponential
//! backoff, jitter), an explicit per-request and I/O timeout, and an
//! optional rate limit on every request.
//!
//! Every error names the remote and its URL and nothing secret: the
//! credentials this process knows are scrubbed from any text a library
//! or a server hands back.

use std::fs;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, SystemTime};

use cairn_engine::config::RemoteConfig;
use cairn_engine::{Error, Result};
use opendal::blocking;

use crate::target::Target;

/// One object as a listing shows it.
#[derive(Debug, Clone)]
pub struct Listed {
    /// Relative to the remote's root, `/`-separated.
    pub key: String,
    pub size: u64,
    pub modified: Option<SystemTime>,
}

/// Requests made and bytes moved, for reports and tests.
#[derive(Debug, Default)]
pub struct Stats {
    pub requests: AtomicU64,
    pub bytes_up: AtomicU64,
    pub bytes_down: AtomicU64,
}

pub struct Backend {
    pub name: String,
    pub url: String,
    kind: Kind,
    secrets: Vec<String>,
    pub stats: Arc<Stats>,
}

enum Kind {
    Fs(PathBuf),
    Dal(blocking::Operator),
}

/// Retries of one request: 5 after the first, 0.5 s doubling to 8 s
/// with jitter (about 15 s in all), so a server restarting or a network
/// blip is ridden out but a dead one fails the run in under a minute.
const RETRIES: usize = 5;

static RUNTIME: LazyLock<std::result::Result<tokio::runtime::Runtime, String>> =
    LazyLock::new(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("cairn-remote")
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
    });

/// The HTTP transport (rustls on ring), installed once per process.
fn install_transport() -> std::result::Result<(), String> {
    static INSTALLED: LazyLock<std::result::Result<(), String>> = LazyLock::new(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .build()
            .map_err(|e| format!("cannot set up the HTTP client: {e}"))?;
        opendal::HttpTransporter::install_default(
            opendal_http_transport_reqwest::ReqwestTransport::new(client),
        );
        Ok(())
    });
    INSTALLED.clone()
}

impl Backend {
    pub fn open(cfg: &RemoteConfig) -> Result<Backend> {
        let target = Target::parse(cfg)?;
        let mut secrets = Vec::new();
        let kind = match &target {
            Target::Fs { root } => Kind::Fs(root.clone()),
            Target::S3 { bucket, prefix } => {
                let creds = s3_credentials(cfg)?;
                secrets.extend(
                    [
                        Some(creds.secret_access_key.clone()),
                        creds.session_token.clone(),
                    ]
                    .into_iter()
                    .flatten()
                    .filter(|s| !s.is_empty()),
                );
                let mut b = opendal::services::S3::default()
                    .bucket(bucket)
                    .root(&format!("/{prefix}"))
                    .access_key_id(&creds.access_key_id)
                    .secret_access_key(&creds.secret_access_key)
                    .disable_config_load()
                    .disable_ec2_metadata();
                if let Some(token) = &creds.session_token {
                    b = b.session_token(token);
                }
                let region = cfg
                    .region
                    .clone()
                    .or(creds.region)
                    .unwrap_or_else(|| "us-east-1".to_owned());
                b = b.region(&region);
                if let Some(endpoint) = &cfg.endpoint {
                    b = b.endpoint(endpoint);
                }
                Kind::Dal(dal(cfg, opendal::Operator::new(b))?)
            }
            Target::Sftp {
                user,
                host,
                port,
                root,
            } => {
                let mut b = opendal::services::Sftp::default()
                    .endpoint(&format!("ssh://{host}:{port}"))
                    .root(root)
                    .known_hosts_strategy("strict");
                if let Some(user) = user {
                    b = b.user(user);
                }
                if let Some(key) = &cfg.key_file {
                    b = b.key(&key.to_string_lossy());
                }
                Kind::Dal(dal(cfg, opendal::Operator::new(b))?)
            }
        };
        Ok(Backend {
            name: cfg.name.clone(),
            url: cfg.url.clone(),
            kind,
            secrets,
            stats: Arc::new(Stats::default()),
        })
    }

    fn unreachable(&self, what: &str, detail: impl std::fmt::Display) -> Error {
        let mut message = format!("{what}: {detail}");
        for secret in &self.secrets {
            message = message.replace(secret.as_str(), "[redacted]");
        }
        if message.len() > 600 {
            let mut cut = 600;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push('…');
        }
        Error::RemoteUnreachable {
            remote: self.name.clone(),
            url: self.url.clone(),
            message,
        }
    }

    fn count(&self, up: usize, down: usize) {
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        self.stats.bytes_up.fetch_add(up as u64, Ordering::Relaxed);
        self.stats
            .bytes_down
            .fetch_add(down as u64, Ordering::Relaxed);
    }

    /// Writes `key` whole (replacing it: keys that are written this way
    /// are named by their content, so a second write writes the same bytes).
    pub fn put(&self, key: &str, bytes: Vec<u8>) -> Result<()> {
        self.count(bytes.len(), 0);
        match &self.kind {
            Kind::Fs(root) => fs_put(root, key, &bytes, false)
                .map(|_| ())
                .map_err(|e| self.unreachable(&format!("write {key}"), e)),
            Kind::Dal(op) => op
                .write(key, bytes)
                .map(|_| ())
                .map_err(|e| self.unreachable(&format!("write {key}"), e)),
        }
    }

    /// Creates `key` only if it does not exist; `false` when it did. On S3
    /// this is `If-None-Match: *`; on a directory a link that fails on an
    /// existing name; on SFTP an exclusive open.
    pub fn put_new(&self, key: &str, bytes: Vec<u8>) -> Result<bool> {
        self.count(bytes.len(), 0);
        match &self.kind {
            Kind::Fs(root) => fs_put(root, key, &bytes, true)
                .map_err(|e| self.unreachable(&format!("create {key}"), e)),
            Kind::Dal(op) => {
                let opts = opendal::options::WriteOptions {
                    if_not_exists: true,
                    ..Default::default()
                };
                match op.write_options(key, bytes, opts) {
                    Ok(_) => Ok(true),
                    Err(e) if e.kind() == opendal::ErrorKind::ConditionNotMatch => Ok(false),
                    Err(e) => Err(self.unreachable(&format!("create {key}"), e)),
                }
            }
        }
    }

    /// Streams `reader` into `key` as one multipart upload of `part_bytes`
    /// parts sent one at a time (S3; SFTP and directories get one streamed
    /// write). Push never uses it: it is the baseline `cargo xtask bench`
    /// compares push against, through this same client (transport, timeout,
    /// retry and throttle layers). Returns the bytes written.
    pub fn put_streamed(&self, key: &str, reader: &mut dyn Read, part_bytes: usize) -> Result<u64> {
        let fail = |e: &dyn std::fmt::Display| self.unreachable(&format!("write {key}"), e);
        let mut buf = vec![0u8; part_bytes.max(1 << 20)];
        let mut total = 0u64;
        match &self.kind {
            Kind::Fs(root) => {
                let path = root.join(key);
                if let Some(dir) = path.parent() {
                    fs::create_dir_all(dir).map_err(|e| fail(&e))?;
                }
                let mut f = fs::File::create(&path).map_err(|e| fail(&e))?;
                total = io::copy(reader, &mut f).map_err(|e| fail(&e))?;
                f.sync_all().map_err(|e| fail(&e))?;
                self.count(usize::try_from(total).unwrap_or(usize::MAX), 0);
            }
            Kind::Dal(op) => {
                let opts = opendal::options::WriteOptions {
                    chunk: Some(part_bytes),
                    concurrent: 1,
                    ..Default::default()
                };
                let mut w = op.writer_options(key, opts).map_err(|e| fail(&e))?;
                loop {
                    let n = read_full(reader, &mut buf).map_err(|e| fail(&e))?;
                    if n == 0 {
                        break;
                    }
                    w.write(buf[..n].to_vec()).map_err(|e| fail(&e))?;
                    self.count(n, 0);
                    total += n as u64;
                }
                w.close().map_err(|e| fail(&e))?;
            }
        }
        Ok(total)
    }

    /// The whole object, `None` when it does not exist.
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let got = match &self.kind {
            Kind::Fs(root) => match fs::read(root.join(key)) {
                Ok(b) => Ok(Some(b)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(self.unreachable(&format!("read {key}"), e)),
            },
            Kind::Dal(op) => match op.read(key) {
                Ok(b) => Ok(Some(b.to_vec())),
                Err(e) if e.kind() == opendal::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(self.unreachable(&format!("read {key}"), e)),
            },
        };
        self.count(
            0,
            got.as_ref()
                .ok()
                .and_then(|b| b.as_ref())
                .map_or(0, Vec::len),
        );
        got
    }

    /// The whole object as a stream, `None` when it does not exist: one
    /// request, read as it arrives, so a pack never has to be held whole.
    /// A read error mid-stream is an `io::Error`; [`Backend::read_failed`]
    /// names it.
    pub fn read_stream(&self, key: &str) -> Result<Option<Box<dyn Read + Send + '_>>> {
        self.count(0, 0);
        let fail = |e: &dyn std::fmt::Display| self.unreachable(&format!("read {key}"), e);
        let inner: Box<dyn Read + Send> = match &self.kind {
            Kind::Fs(root) => match fs::File::open(root.join(key)) {
                Ok(f) => Box::new(f),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(fail(&e)),
            },
            Kind::Dal(op) => {
                let opened = op.reader(key).and_then(|r| r.into_std_read(..));
                match opened {
                    Ok(r) => Box::new(r),
                    Err(e) if e.kind() == opendal::ErrorKind::NotFound => return Ok(None),
                    Err(e) => return Err(fail(&e)),
                }
            }
        };
        Ok(Some(Box::new(Counted {
            inner,
            stats: &self.stats,
        })))
    }

    /// A read of `key` that failed mid-stream, as the remote's error.
    pub fn read_failed(&self, key: &str, e: io::Error) -> Error {
        self.unreachable(&format!("read {key}"), e)
    }

    /// `len` bytes at `offset` (fewer when the object is shorter).
    pub fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        let got = match &self.kind {
            Kind::Fs(root) => (|| {
                let mut f = fs::File::open(root.join(key))?;
                f.seek(SeekFrom::Start(offset))?;
                let mut out = Vec::new();
                f.take(len).read_to_end(&mut out)?;
                Ok::<_, io::Error>(out)
            })()
            .map_err(|e| self.unreachable(&format!("read {key}"), e)),
            Kind::Dal(op) => op
                .read_options(
                    key,
                    opendal::options::ReadOptions {
                        range: (offset..offset.saturating_add(len)).into(),
                        ..Default::default()
                    },
                )
                .map(|b| b.to_vec())
                .map_err(|e| self.unreachable(&format!("read {key}"), e)),
        };
        self.count(0, got.as_ref().map_or(0, Vec::len));
        got
    }

    /// Every object under `prefix` (`packs/`, `snapshots/`…), recursively,
    /// in as few requests as the service allows (S3: 1,000 keys a page).
    pub fn list(&self, prefix: &str) -> Result<Vec<Listed>> {
        self.count(0, 0);
        match &self.kind {
            Kind::Fs(root) => {
                let mut out = Vec::new();
                fs_walk(root, &root.join(prefix), &mut out)
                    .map_err(|e| self.unreachable(&format!("list {prefix}"), e))?;
                Ok(out)
            }
            Kind::Dal(op) => {
                let opts = opendal::options::ListOptions {
                    recursive: true,
                    ..Default::default()
                };
                let entries = op
                    .list_options(prefix, opts)
                    .map_err(|e| self.unreachable(&format!("list {prefix}"), e))?;
                Ok(entries
                    .into_iter()
                    .filter(|e| !e.path().ends_with('/'))
                    .map(|e| Listed {
                        key: e.path().trim_start_matches('/').to_owned(),
                        size: e.metadata().content_length(),
                        modified: e.metadata().last_modified().map(SystemTime::from),
                    })
                    .collect())
            }
        }
    }

    /// Deletes `key`; a key already gone is fine.
    pub fn delete(&self, key: &str) -> Result<()> {
        self.count(0, 0);
        match &self.kind {
            Kind::Fs(root) => match fs::remove_file(root.join(key)) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(self.unreachable(&format!("delete {key}"), e)),
            },
            Kind::Dal(op) => match op.delete(key) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == opendal::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(self.unreachable(&format!("delete {key}"), e)),
            },
        }
    }
}

/// A reader that adds what it reads to the backend's counters.
struct Counted<'a> {
    inner: Box<dyn Read + Send>,
    stats: &'a Stats,
}

impl Read for Counted<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.stats.bytes_down.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

fn dal(
    cfg: &RemoteConfig,
    built: opendal::Result<opendal::Operator>,
) -> Result<blocking::Operator> {
    let fail = |e: String| Error::RemoteUnreachable {
        remote: cfg.name.clone(),
        url: cfg.url.clone(),
        message: e,
    };
    install_transport().map_err(fail)?;
    let runtime = RUNTIME.as_ref().map_err(|e| fail(e.clone()))?;
    let mut op = built
        .map_err(|e| fail(format!("cannot set up the client: {e}")))?
        // Innermost first: a timed-out attempt is retried.
        .layer(
            opendal::layers::TimeoutLayer::new()
                .with_timeout(cfg.io_timeout.saturating_mul(4))
                .with_io_timeout(cfg.io_timeout),
        )
        .layer(
            opendal::layers::RetryLayer::new()
                .with_max_times(RETRIES)
                .with_min_delay(Duration::from_millis(500))
                .with_max_delay(Duration::from_secs(8))
                .with_factor(2.0)
                .with_jitter(),
        );
    if let Some(rate) = cfg.rate_limit {
        let rate = u32::try_from(rate).unwrap_or(u32::MAX);
        // The burst must hold the largest single write (a pack).
        let burst = rate.max(u32::try_from(crate::format::MAX_PACK_BYTES * 2).unwrap_or(u32::MAX));
        op = op.layer(opendal::layers::ThrottleLayer::new(rate, burst));
    }
    let _guard = runtime.enter();
    blocking::Operator::new(op).map_err(|e| fail(format!("cannot set up the client: {e}")))
}

struct S3Credentials {
    access_key_id: String,
    secret_access_key: String,
    session_token: Option<String>,
    region: Option<String>,
}

/// From `credentials_file` when set (refused if group or others may read
/// it), else the standard environment variables.
fn s3_credentials(cfg: &RemoteConfig) -> Result<S3Credentials> {
    type Lookup = Box<dyn Fn(&str) -> Option<String>>;
    let lookup: Lookup = match &cfg.credentials_file {
        Some(file) => {
            let values = read_credentials_file(cfg, file)?;
            Box::new(move |k: &str| {
                values
                    .iter()
                    .find(|(key, _)| key == k)
                    .map(|(_, v)| v.clone())
            })
        }
        None => Box::new(|k: &str| std::env::var(k).ok().filter(|v| !v.is_empty())),
    };
    let source = match &cfg.credentials_file {
        Some(f) => format!("credentials_file {}", f.display()),
        None => "the environment".to_owned(),
    };
    match (lookup("AWS_ACCESS_KEY_ID"), lookup("AWS_SECRET_ACCESS_KEY")) {
        (Some(access_key_id), Some(secret_access_key)) => Ok(S3Credentials {
            access_key_id,
            secret_access_key,
            session_token: lookup("AWS_SESSION_TOKEN"),
            region: lookup("AWS_REGION").or_else(|| lookup("AWS_DEFAULT_REGION")),
        }),
        _ => Err(Error::config(
            &cfg.origin,
            format!(
                "remote {:?}: no S3 credentials in {source} (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)",
                cfg.name
            ),
        )),
    }
}

fn read_credentials_file(cfg: &RemoteConfig, file: &Path) -> Result<Vec<(String, String)>> {
    use std::os::unix::fs::PermissionsExt;
    let bad = |why: String| {
        Error::config(
            &cfg.origin,
            format!(
                "remote {:?}: credentials_file {}: {why}",
                cfg.name,
                file.display()
            ),
        )
    };
    let f =
        cairn_engine::fsutil::open_nofollow(file).map_err(|e| bad(format!("cannot open: {e}")))?;
    let meta = f.metadata().map_err(|e| bad(format!("cannot stat: {e}")))?;
    if !meta.is_file() {
        return Err(bad("not a regular file".into()));
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(bad(format!(
            "mode {mode:04o} lets group or others read or change it; refused (chmod 600)"
        )));
    }
    let mut text = String::new();
    f.take(64 * 1024)
        .read_to_string(&mut text)
        .map_err(|e| bad(format!("cannot read: {e}")))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let l = l.strip_prefix("export ").unwrap_or(l);
            let (k, v) = l.split_once('=')?;
            Some((
                k.trim().to_owned(),
                v.trim().trim_matches('"').trim_matches('\'').to_owned(),
            ))
        })
        .collect())
}

/// Writes `root/key` through a private temp file in `root/tmp/`, synced,
/// then renamed into place (or, `exclusive`, linked: that fails when the
/// name exists, so two writers cannot both win). A crash leaves at most a
/// temp file, never a partial object under its name.
fn fs_put(root: &Path, key: &str, bytes: &[u8], exclusive: bool) -> io::Result<bool> {
    let dest = root.join(key);
    let dir = dest
        .parent()
        .ok_or_else(|| io::Error::other("key without a directory"))?;
    fs::create_dir_all(dir)?;
    let tmp_dir = root.join("tmp");
    fs::create_dir_all(&tmp_dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(&tmp_dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    let created = if exclusive {
        match fs::hard_link(tmp.path(), &dest) {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
            Err(e) => return Err(e),
        }
    } else {
        tmp.persist(&dest).map_err(|e| e.error)?;
        true
    };
    fs::File::open(dir)?.sync_all()?;
    Ok(created)
}

fn fs_walk(root: &Path, dir: &Path, out: &mut Vec<Listed>) -> io::Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let meta = entry.metadata()?;
        let path = entry.path();
        if meta.is_dir() {
            fs_walk(root, &path, out)?;
        } else if meta.is_file() {
            let key = path
                .strip_prefix(root)
                .map_err(io::Error::other)?
                .to_string_lossy()
                .into_owned();
            out.push(Listed {
                key,
                size: meta.len(),
                modified: meta.modified().ok(),
            });
        }
    }
    Ok(())
}

/// Fills `buf` unless the reader ends first; the bytes read.
fn read_full(reader: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match reader.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}
