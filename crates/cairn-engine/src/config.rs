//! `cairn.toml`: the repository, retention, hooks and the stores.
//!
//! Relative paths resolve against the config file's directory. Unknown keys
//! are errors that name the key and the file; plug-in options are checked by
//! the plug-in itself (see [`StoreConfig::check_options`]). The repository
//! and the stores must not overlap (`check_overlaps`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::trust;

pub const DEFAULT_LOCK_WAIT_SECONDS: u64 = 10;
pub const DEFAULT_DRILL_COMMAND_TIMEOUT_SECONDS: u64 = 600;
/// Each snapshot re-reads 1/`verify_rotation` of the copies it reuses
/// from its parent, so every stored byte is re-read at least once every
/// `verify_rotation` snapshots (`validate::Reading::NewSnapshot`).
pub const DEFAULT_VERIFY_ROTATION: u32 = 7;

#[derive(Debug, Clone)]
pub struct Config {
    /// The file this config was read from (named in every config error).
    pub file: PathBuf,
    pub repository: PathBuf,
    pub retention: Retention,
    pub hooks: Hooks,
    pub stores: Vec<StoreConfig>,
    /// How long a run waits for the repository lock before giving up.
    pub lock_wait: Duration,
    /// `[monitoring]`: pings, the Prometheus textfile, success/failure hooks.
    pub monitoring: crate::monitoring::Monitoring,
    /// A snapshot re-reads 1/`verify_rotation` of the copies it reuses
    /// (1: all of them, every snapshot).
    pub verify_rotation: u32,
    /// `[[remote]]` tables: off-site copies (see the `cairn-remote` crate).
    pub remotes: Vec<RemoteConfig>,
}

/// One `[[remote]]` table. Checked here as far as any command needs
/// (names, the URL's scheme, no secret in it, keys that fit the scheme);
/// `cairn-remote` parses the URL itself. Credentials never live here:
/// S3 keys come from the environment or `credentials_file`, SFTP from
/// `key_file`.
#[derive(Debug, Clone)]
pub struct RemoteConfig {
    pub name: String,
    /// As written: `s3://bucket/prefix`, `sftp://user@host:port/path` or
    /// `file:///path`. Holds no password (refused).
    pub url: String,
    /// S3 only: an S3-compatible service's endpoint (omitted: AWS).
    pub endpoint: Option<String>,
    /// S3 only.
    pub region: Option<String>,
    /// `cairn snapshot` pushes to this remote when it succeeds.
    pub push_after_snapshot: bool,
    /// Bytes per second, from `rate_limit = "50MiB/s"`.
    pub rate_limit: Option<u64>,
    /// The remote's own retention; `None`: the repository's.
    pub retention: Option<Retention>,
    /// S3 only: a file of `KEY=value` lines (AWS_ACCESS_KEY_ID,
    /// AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN), refused when group or
    /// others may read it. Absolute.
    pub credentials_file: Option<PathBuf>,
    /// SFTP only: the private key ssh uses. Absolute.
    pub key_file: Option<PathBuf>,
    /// Prune's garbage collection never deletes an object younger than this.
    pub gc_grace: Duration,
    /// The limit on any one request's wait for bytes (retried after it).
    pub io_timeout: Duration,
    /// The config file, so remote errors can name it.
    pub origin: PathBuf,
}

pub const DEFAULT_GC_GRACE_HOURS: u64 = 24;
pub const DEFAULT_REMOTE_IO_TIMEOUT_SECONDS: u64 = 120;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Retention {
    pub keep_daily: u32,
    pub keep_weekly: u32,
    pub keep_monthly: u32,
    /// The newest N snapshots that take calendar slots, whatever their days.
    pub keep_last: u32,
    /// Every snapshot younger than this span before the newest one
    /// (`"14d"`, `"1y6m"`; units h, d, w, m, y).
    #[serde(deserialize_with = "crate::retention_span::deserialize_keep_within")]
    pub keep_within: Option<crate::retention_span::Span>,
    /// Every snapshot carrying one of these tags.
    pub keep_tag: Vec<String>,
    /// Days a pre-restore snapshot, and the snapshot it was taken before
    /// restoring, are kept whatever the calendar says: the first is the
    /// way back from the restore, the second what was restored.
    pub keep_pre_restore_days: u32,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            keep_daily: 7,
            keep_weekly: 4,
            keep_monthly: 6,
            keep_pre_restore_days: 7,
            keep_last: 0,
            keep_within: None,
            keep_tag: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Hooks {
    pub before_snapshot: Option<Vec<String>>,
    pub after_snapshot: Option<Vec<String>>,
}

/// One `[[store]]` table: the common keys plus the plug-in's own options.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub name: String,
    pub kind: String,
    /// Absolute (resolved against the config file's directory).
    pub path: PathBuf,
    pub optional: bool,
    /// The operator's explicit leave to follow a symlink on the store's
    /// path that is not in a directory only root or the invoker can change
    /// (the link and its target must still be root's or the invoker's).
    pub follow_symlink: bool,
    /// Run by `cairn drill` on the restored copy (argv, no shell; `{path}`
    /// in an argument, and `CAIRN_DRILL_PATH`, are the copy's path).
    pub drill_command: Option<Vec<String>>,
    pub drill_command_timeout: Duration,
    /// Every key that is not a common key, for the plug-in to interpret.
    pub options: toml::Table,
    /// The config file, so plug-in errors can name it.
    pub origin: PathBuf,
}

impl StoreConfig {
    /// A config for a store known only from a snapshot's manifest: its
    /// name, kind, recorded source and recorded options. Built in one place
    /// ([`crate::Stores::for_record`]), for snapshots of stores no longer
    /// configured.
    pub(crate) fn from_record(record: &crate::manifest::StoreRecord) -> Self {
        StoreConfig {
            name: record.name.clone(),
            kind: record.kind.clone(),
            path: PathBuf::from(&record.source),
            optional: false,
            follow_symlink: false,
            drill_command: None,
            drill_command_timeout: Duration::from_secs(DEFAULT_DRILL_COMMAND_TIMEOUT_SECONDS),
            options: record.options.clone(),
            origin: PathBuf::from(format!("<manifest of store {}>", record.name)),
        }
    }

    /// Fails on the first option not in `known`, naming it, the store and the file.
    pub fn check_options(&self, known: &[&str]) -> Result<()> {
        if let Some(key) = self.options.keys().find(|k| !known.contains(&k.as_str())) {
            let expected = if known.is_empty() {
                "this kind takes no options".to_owned()
            } else {
                format!("known options: {}", known.join(", "))
            };
            return Err(Error::config(
                &self.origin,
                format!(
                    "store {:?} (kind {}): unknown option `{key}` ({expected})",
                    self.name, self.kind
                ),
            ));
        }
        Ok(())
    }

    /// A whole number of seconds, `default` when absent; anything outside
    /// `0..=max` is a config error naming the option and its range (a
    /// bound keeps values from overflowing what a library accepts).
    pub fn seconds_option(&self, key: &str, default: u64, max: u64) -> Result<Duration> {
        let Some(value) = self.options.get(key) else {
            return Ok(Duration::from_secs(default));
        };
        match value.as_integer().and_then(|n| u64::try_from(n).ok()) {
            Some(n) if n <= max => Ok(Duration::from_secs(n)),
            _ => Err(Error::config(
                &self.origin,
                format!(
                    "store {:?}: option `{key}` must be a whole number of seconds from 0 to {max}, not {value}",
                    self.name
                ),
            )),
        }
    }

    /// A string option holding a path, resolved like `path`. An empty
    /// string is an error (it would name the config's own directory).
    pub fn path_option(&self, key: &str) -> Result<Option<PathBuf>> {
        match self.options.get(key) {
            None => Ok(None),
            Some(toml::Value::String(s)) if s.is_empty() => Err(Error::config(
                &self.origin,
                format!("store {:?}: option `{key}` must not be empty", self.name),
            )),
            Some(toml::Value::String(s)) => {
                let base = self.origin.parent().unwrap_or(Path::new("."));
                Ok(Some(resolve(base, Path::new(s))))
            }
            Some(other) => Err(Error::config(
                &self.origin,
                format!(
                    "store {:?}: option `{key}` must be a string path, not {}",
                    self.name,
                    other.type_str()
                ),
            )),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    repository: String,
    #[serde(default)]
    retention: Retention,
    #[serde(default)]
    hooks: Hooks,
    #[serde(default)]
    lock_wait_seconds: Option<u64>,
    #[serde(default)]
    monitoring: crate::monitoring::RawMonitoring,
    verify_rotation: Option<i64>,
    #[serde(default, rename = "store")]
    stores: Vec<RawStore>,
    #[serde(default, rename = "remote")]
    remotes: Vec<RawRemote>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRemote {
    name: String,
    url: String,
    #[serde(default)]
    endpoint: Option<String>,
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    push_after_snapshot: bool,
    #[serde(default)]
    rate_limit: Option<String>,
    #[serde(default)]
    retention: Option<Retention>,
    #[serde(default)]
    credentials_file: Option<String>,
    #[serde(default)]
    key_file: Option<String>,
    #[serde(default)]
    gc_grace_hours: Option<u64>,
    #[serde(default)]
    io_timeout_seconds: Option<u64>,
}

#[derive(Deserialize)]
struct RawStore {
    name: String,
    kind: String,
    path: String,
    #[serde(default)]
    optional: bool,
    #[serde(default)]
    follow_symlink: bool,
    #[serde(default)]
    drill_command: Option<Vec<String>>,
    #[serde(default)]
    drill_command_timeout_seconds: Option<u64>,
    #[serde(flatten)]
    options: toml::Table,
}

impl Config {
    /// The explicit path (the front end's flag), else `$CAIRN_CONFIG`, else
    /// `./cairn.toml` — but never the current directory's as root: that
    /// directory may be anyone's (`cd /tmp && cairn snapshot` would run
    /// whatever hooks a local user left in /tmp/cairn.toml).
    pub fn locate(explicit: Option<&Path>) -> Result<PathBuf> {
        if let Some(p) = explicit {
            return Ok(p.to_owned());
        }
        match std::env::var_os("CAIRN_CONFIG") {
            Some(p) if !p.is_empty() => Ok(PathBuf::from(p)),
            _ if trust::running_as_root() => Err(Error::ConfigRequired),
            _ => Ok(PathBuf::from("cairn.toml")),
        }
    }

    /// Reads and parses `file`. As root, first refuses a config (or a hook
    /// it names by absolute path) that anyone but root could change: what
    /// it says is run and written as root.
    pub fn load(file: &Path) -> Result<Config> {
        let as_root = trust::running_as_root();
        if as_root {
            refuse_untrusted(file, file, "")?;
        }
        let not_read = |e: std::io::Error| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::ConfigNotFound {
                    file: file.to_owned(),
                }
            } else {
                Error::config(file, format!("cannot read: {e}"))
            }
        };
        // A symlink to the config is fine; a FIFO would block the read
        // forever and a device could feed it without end.
        if !std::fs::metadata(file).map_err(not_read)?.is_file() {
            return Err(Error::config(
                file,
                "not a regular file (a directory, FIFO, socket or device); not read",
            ));
        }
        let text = std::fs::read_to_string(file).map_err(not_read)?;
        let cfg = Config::parse(&text, file)?;
        if as_root {
            for (hook, argv) in [
                ("before_snapshot", &cfg.hooks.before_snapshot),
                ("after_snapshot", &cfg.hooks.after_snapshot),
                ("on_success", &cfg.monitoring.on_success),
                ("on_failure", &cfg.monitoring.on_failure),
            ]
            .into_iter()
            .chain(
                cfg.stores
                    .iter()
                    .map(|s| ("drill_command", &s.drill_command)),
            ) {
                let Some(program) = argv.as_ref().and_then(|a| a.first()) else {
                    continue;
                };
                // A bare name is looked up in root's own PATH; only a path
                // names a file someone else may own.
                let program = Path::new(program);
                if program.is_absolute() {
                    refuse_untrusted(&cfg.file, program, &format!("hook {hook}: "))?;
                }
            }
        }
        Ok(cfg)
    }

    pub fn parse(text: &str, file: &Path) -> Result<Config> {
        let raw: RawConfig = toml::from_str(text)
            .map_err(|e| Error::config(file, e.to_string().trim_end().replace('\n', " ")))?;
        let file = absolute(file);
        let base = file.parent().map(Path::to_owned).unwrap_or_default();

        if raw.repository.trim().is_empty() {
            return Err(Error::config(&file, "`repository` must not be empty"));
        }
        for argv in raw
            .hooks
            .before_snapshot
            .iter()
            .chain(raw.hooks.after_snapshot.iter())
        {
            if argv.is_empty() {
                return Err(Error::config(
                    &file,
                    "a hook must be a non-empty argv array, e.g. [\"systemctl\", \"stop\", \"svc\"]",
                ));
            }
        }

        let mut names = BTreeSet::new();
        let mut stores = Vec::with_capacity(raw.stores.len());
        for s in raw.stores {
            if !valid_store_name(&s.name) {
                return Err(Error::config(
                    &file,
                    format!("store name {:?} must match [a-z0-9_-]{{1,64}}", s.name),
                ));
            }
            if !names.insert(s.name.clone()) {
                return Err(Error::config(
                    &file,
                    format!("duplicate store name {:?}", s.name),
                ));
            }
            if s.path.is_empty() {
                return Err(Error::config(
                    &file,
                    format!("store {:?}: `path` must not be empty", s.name),
                ));
            }
            if s.drill_command.as_ref().is_some_and(Vec::is_empty) {
                return Err(Error::config(
                    &file,
                    format!(
                        "store {:?}: `drill_command` must be a non-empty argv array, e.g. [\"/usr/local/bin/check\", \"{{path}}\"]",
                        s.name
                    ),
                ));
            }
            let drill_command_timeout = match s.drill_command_timeout_seconds {
                None => DEFAULT_DRILL_COMMAND_TIMEOUT_SECONDS,
                Some(n @ 1..=86_400) => n,
                Some(n) => {
                    return Err(Error::config(
                        &file,
                        format!(
                        "store {:?}: `drill_command_timeout_seconds` must be 1 to 86400, not {n}",
                        s.name
                    ),
                    ))
                }
            };
            stores.push(StoreConfig {
                drill_command: s.drill_command,
                drill_command_timeout: Duration::from_secs(drill_command_timeout),
                path: resolve(&base, Path::new(&s.path)),
                name: s.name,
                kind: s.kind,
                optional: s.optional,
                follow_symlink: s.follow_symlink,
                options: s.options,
                origin: file.clone(),
            });
        }

        let verify_rotation = match raw.verify_rotation {
            None => DEFAULT_VERIFY_ROTATION,
            Some(n) => u32::try_from(n)
                .ok()
                .filter(|n| (1..=crate::share::MAX_SHARES).contains(n))
                .ok_or_else(|| {
                    Error::config(
                        &file,
                        format!(
                            "`verify_rotation` must be a whole number from 1 (re-read every reused copy at every snapshot) to {}, not {n}",
                            crate::share::MAX_SHARES
                        ),
                    )
                })?,
        };
        let monitoring = crate::monitoring::Monitoring::from_raw(raw.monitoring, &file, &base)?;
        let remotes = parse_remotes(raw.remotes, &file, &base)?;
        let cfg = Config {
            monitoring,
            verify_rotation,
            remotes,
            repository: resolve(&base, Path::new(&raw.repository)),
            retention: raw.retention,
            hooks: raw.hooks,
            stores,
            lock_wait: Duration::from_secs(
                raw.lock_wait_seconds.unwrap_or(DEFAULT_LOCK_WAIT_SECONDS),
            ),
            file,
        };
        check_overlaps(&cfg)?;
        Ok(cfg)
    }

    /// A config naming only a repository, for the commands that only read
    /// one (a repository given on the command line, no config file): no
    /// stores, no hooks, the default retention and lock wait. A store's
    /// handler is then built from what its manifest recorded.
    ///
    /// The repository must be owned by root or by the invoking user: a
    /// tree another user controls could point a root run's reads (and a
    /// validation's record) anywhere. As root, the rule of configs applies
    /// to it and to every directory above it (see `trust`).
    pub fn for_repository(repository: &Path) -> Result<Config> {
        let repository = absolute(repository);
        let refuse = |reason: String| Error::UnsafePath {
            path: repository.clone(),
            reason,
        };
        if trust::running_as_root() {
            match trust::inspect(&repository) {
                Ok(None) => {}
                Ok(Some(u)) => {
                    return Err(refuse(format!(
                        "is not trusted as a repository: {u} (make it and every directory above it owned by root and not writable by group or others)"
                    )))
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(Error::io("open repository", &repository, e))
                }
                Err(e) => return Err(refuse(format!("cannot be checked: {e}"))),
            }
        } else {
            use std::os::unix::fs::MetadataExt;
            let meta = std::fs::metadata(&repository)
                .map_err(|e| Error::io("open repository", &repository, e))?;
            let me = rustix::process::geteuid().as_raw();
            if meta.uid() != me && meta.uid() != 0 {
                return Err(refuse(format!(
                    "belongs to uid {}, neither root nor you (uid {me}); not read as a repository",
                    meta.uid()
                )));
            }
        }
        Ok(Config {
            file: repository.clone(),
            repository,
            retention: Retention::default(),
            hooks: Hooks::default(),
            monitoring: crate::monitoring::Monitoring::default(),
            verify_rotation: DEFAULT_VERIFY_ROTATION,
            remotes: Vec::new(),
            stores: Vec::new(),
            lock_wait: Duration::from_secs(DEFAULT_LOCK_WAIT_SECONDS),
        })
    }

    pub fn store(&self, name: &str) -> Option<&StoreConfig> {
        self.stores.iter().find(|s| s.name == name)
    }

    pub fn remote(&self, name: &str) -> Option<&RemoteConfig> {
        self.remotes.iter().find(|r| r.name == name)
    }
}

fn parse_remotes(raw: Vec<RawRemote>, file: &Path, base: &Path) -> Result<Vec<RemoteConfig>> {
    let mut names = BTreeSet::new();
    let mut out = Vec::with_capacity(raw.len());
    for r in raw {
        let bad = |message: String| Error::config(file, format!("remote {:?}: {message}", r.name));
        if !valid_store_name(&r.name) {
            return Err(Error::config(
                file,
                format!("remote name {:?} must match [a-z0-9_-]{{1,64}}", r.name),
            ));
        }
        if !names.insert(r.name.clone()) {
            return Err(Error::config(
                file,
                format!("duplicate remote name {:?}", r.name),
            ));
        }
        let scheme = r.url.split_once("://").map(|(s, _)| s);
        let rest = r.url.split_once("://").map_or("", |(_, rest)| rest);
        if !matches!(scheme, Some("s3" | "sftp" | "file")) {
            return Err(bad(
                "`url` must start with s3://, sftp:// or file:// (e.g. s3://bucket/prefix)".into(),
            ));
        }
        // A password in the URL would be printed, logged and kept in the
        // config: credentials live elsewhere.
        let authority = rest.split('/').next().unwrap_or("");
        if let Some((userinfo, _)) = authority.rsplit_once('@') {
            if userinfo.contains(':') {
                return Err(bad(
                    "`url` must not hold a password; use key_file (sftp) or the environment / credentials_file (s3)".into(),
                ));
            }
        }
        if r.url.contains('?') || r.url.contains('#') {
            return Err(bad("`url` takes no query or fragment".into()));
        }
        let is_s3 = scheme == Some("s3");
        for (key, set, allowed) in [
            ("endpoint", r.endpoint.is_some(), is_s3),
            ("region", r.region.is_some(), is_s3),
            ("credentials_file", r.credentials_file.is_some(), is_s3),
            ("key_file", r.key_file.is_some(), scheme == Some("sftp")),
        ] {
            if set && !allowed {
                return Err(bad(format!(
                    "`{key}` does not apply to a {} remote",
                    scheme.unwrap_or_default()
                )));
            }
        }
        let rate_limit = match &r.rate_limit {
            None => None,
            Some(text) => Some(parse_rate(text).ok_or_else(|| {
                bad(format!(
                    "`rate_limit` {text:?} is not a rate like \"50MiB/s\" (B, KiB, MiB, GiB, KB, MB, GB per second)"
                ))
            })?),
        };
        let path_key = |key: &str, value: &Option<String>| -> Result<Option<PathBuf>> {
            match value {
                Some(s) if s.is_empty() => Err(bad(format!("`{key}` must not be empty"))),
                Some(s) => Ok(Some(resolve(base, Path::new(s)))),
                None => Ok(None),
            }
        };
        let io_timeout = r
            .io_timeout_seconds
            .unwrap_or(DEFAULT_REMOTE_IO_TIMEOUT_SECONDS);
        if !(1..=86_400).contains(&io_timeout) {
            return Err(bad("`io_timeout_seconds` must be from 1 to 86400".into()));
        }
        let grace = r.gc_grace_hours.unwrap_or(DEFAULT_GC_GRACE_HOURS);
        if grace > 24 * 365 {
            return Err(bad("`gc_grace_hours` must be at most 8760".into()));
        }
        out.push(RemoteConfig {
            credentials_file: path_key("credentials_file", &r.credentials_file)?,
            key_file: path_key("key_file", &r.key_file)?,
            name: r.name,
            url: r.url,
            endpoint: r.endpoint,
            region: r.region,
            push_after_snapshot: r.push_after_snapshot,
            rate_limit,
            retention: r.retention,
            gc_grace: Duration::from_secs(grace * 3600),
            io_timeout: Duration::from_secs(io_timeout),
            origin: file.to_owned(),
        });
    }
    Ok(out)
}

/// `"50MiB/s"` → bytes per second; `None` for anything else (or zero).
fn parse_rate(text: &str) -> Option<u64> {
    let body = text.trim().strip_suffix("/s")?.trim();
    let split = body
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(body.len());
    let (number, unit) = body.split_at(split);
    let number: u64 = number.parse().ok()?;
    let factor: u64 = match unit.trim() {
        "B" | "" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return None,
    };
    number.checked_mul(factor).filter(|&n| n > 0)
}

/// Fails, naming `config`, when root may not trust `path` (the config
/// itself, or a hook it names). A `path` that does not exist passes: every
/// directory above the missing part was trusted, so only root can create
/// it, and reading or running it then fails on its own.
fn refuse_untrusted(config: &Path, path: &Path, what: &str) -> Result<()> {
    match trust::inspect(path) {
        Ok(None) => Ok(()),
        Ok(Some(untrusted)) => Err(Error::config(
            config,
            format!(
                "{what}refused as root: {untrusted}, so another user could change what cairn \
                 runs as root (make it and every directory above it owned by root and not \
                 writable by group or others: chown root, chmod go-w)"
            ),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::config(
            config,
            format!("{what}cannot check who may change {}: {e}", path.display()),
        )),
    }
}

/// The repository and every store must each have a path of its own: no
/// two of them equal, and none inside another. A repository inside a store
/// (or a store holding `/` or a parent of the repository) is copied into
/// its own snapshots, and SQLite opening the copies there leaves files
/// in snapshots already taken; a store inside the repository captures and
/// restores over snapshots; two overlapping stores capture the same files
/// twice, and restoring one replaces the other's. Compared where the paths
/// really are: see [`real_location`].
fn check_overlaps(cfg: &Config) -> Result<()> {
    let repo = real_location(&cfg.repository);
    let shown_repo = shown(&cfg.repository, &repo);
    let stores: Vec<(&StoreConfig, PathBuf)> = cfg
        .stores
        .iter()
        .map(|s| (s, real_location(&s.path)))
        .collect();
    for (store, real) in &stores {
        let store_at = shown(&store.path, real);
        let message = if *real == repo {
            format!(
                "store {:?} has the same path as `repository` ({shown_repo}): \
                 the repository would be captured into itself and restored over",
                store.name
            )
        } else if repo.starts_with(real) {
            format!(
                "`repository` {shown_repo} is inside store {:?} ({store_at}): each snapshot \
                 of the store would copy the repository into itself, and reading the \
                 copies there changes snapshots already taken; keep the repository \
                 outside every store's path",
                store.name
            )
        } else if real.starts_with(&repo) {
            format!(
                "store {:?} ({store_at}) is inside `repository` {shown_repo}: a snapshot \
                 would capture the repository's own files and a restore would write \
                 over them; keep every store outside the repository",
                store.name
            )
        } else {
            continue;
        };
        return Err(Error::config(&cfg.file, message));
    }
    for (i, a) in stores.iter().enumerate() {
        for b in &stores[i + 1..] {
            let ((outer, outer_at), (inner, inner_at), relation) = if a.1 == b.1 {
                (a, b, "has the same path as")
            } else if b.1.starts_with(&a.1) {
                (a, b, "is inside")
            } else if a.1.starts_with(&b.1) {
                (b, a, "is inside")
            } else {
                continue;
            };
            return Err(Error::config(
                &cfg.file,
                format!(
                    "store {:?} ({}) {relation} store {:?} ({}): the same files would be \
                     captured twice, and restoring one store would replace the other's; \
                     give each store a path of its own",
                    inner.name,
                    shown(&inner.path, inner_at),
                    outer.name,
                    shown(&outer.path, outer_at)
                ),
            ));
        }
    }
    Ok(())
}

/// Where `path` really is: the longest part of it that exists with its
/// symlinks resolved (`fs::canonicalize`), and the rest (not there yet, so
/// no symlink) normalised lexically: `.` dropped, `..` taking back the
/// component before it.
/// A restore elsewhere writes `dir/<store>` for each store it restores
/// (`names`): refused when that is, holds or sits inside the repository
/// or any configured store's live path — a restore "elsewhere" into live
/// data or into the snapshots it reads would be neither.
pub(crate) fn check_restore_elsewhere<'n>(
    cfg: &Config,
    dir: &Path,
    names: impl IntoIterator<Item = &'n str>,
) -> Result<()> {
    let real_dir = real_location(dir);
    let repo = real_location(&cfg.repository);
    let refuse = |reason: String| {
        Err(Error::TargetOverlaps {
            path: dir.to_owned(),
            reason,
        })
    };
    if real_dir.starts_with(&repo) {
        return refuse(format!(
            "is inside the repository {}: restore outside it",
            repo.display()
        ));
    }
    let lives: Vec<(&StoreConfig, PathBuf)> = cfg
        .stores
        .iter()
        .map(|s| (s, real_location(&s.path)))
        .collect();
    for (store, live) in &lives {
        if real_dir.starts_with(live) {
            return refuse(format!(
                "is inside store {:?}'s live path {}: a restore elsewhere must not write into live data",
                store.name,
                live.display()
            ));
        }
    }
    for name in names {
        let target = real_dir.join(name);
        if repo.starts_with(&target) {
            return refuse(format!(
                "would put store {name:?} at {}, which holds the repository",
                target.display()
            ));
        }
        for (store, live) in &lives {
            if live.starts_with(&target) || target.starts_with(live) {
                return refuse(format!(
                    "would put store {name:?} at {}, which overlaps store {:?}'s live path {}",
                    target.display(),
                    store.name,
                    live.display()
                ));
            }
        }
    }
    Ok(())
}

fn real_location(path: &Path) -> PathBuf {
    use std::path::Component;
    let components: Vec<Component<'_>> = path.components().collect();
    let (mut real, rest) = (0..=components.len())
        .rev()
        .find_map(|n| {
            let prefix: PathBuf = components[..n].iter().collect();
            if n == 0 {
                return Some((PathBuf::new(), &components[..]));
            }
            std::fs::canonicalize(&prefix)
                .ok()
                .map(|real| (real, &components[n..]))
        })
        .unwrap_or_default();
    for c in rest {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                real.pop();
            }
            other => real.push(other.as_os_str()),
        }
    }
    real
}

/// A configured path for a message, with where it resolves when that differs.
fn shown(configured: &Path, real: &Path) -> String {
    if configured == real {
        configured.display().to_string()
    } else {
        format!(
            "{}, which resolves to {}",
            configured.display(),
            real.display()
        )
    }
}

pub fn valid_store_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

fn resolve(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_owned()
    } else {
        base.join(p)
    }
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config> {
        Config::parse(text, Path::new("/etc/cairn/cairn.toml"))
    }

    #[test]
    fn resolves_paths_and_keeps_plugin_options() {
        let cfg = parse(
            r#"
repository = "backups"
[[store]]
name = "chroma"
kind = "chroma-dir"
path = "data/chroma"
lock_file = "data/.ingest.lock"
"#,
        )
        .unwrap();
        assert_eq!(cfg.repository, Path::new("/etc/cairn/backups"));
        assert_eq!(cfg.stores[0].path, Path::new("/etc/cairn/data/chroma"));
        assert_eq!(
            cfg.stores[0].path_option("lock_file").unwrap().unwrap(),
            Path::new("/etc/cairn/data/.ingest.lock")
        );
        assert_eq!(cfg.retention, Retention::default());
    }

    #[test]
    fn verify_rotation_defaults_to_7_and_refuses_nonsense_naming_the_key() {
        assert_eq!(parse("repository = \"b\"\n").unwrap().verify_rotation, 7);
        assert_eq!(
            parse("repository = \"b\"\nverify_rotation = 1\n")
                .unwrap()
                .verify_rotation,
            1
        );
        for bad in ["0", "-3", "10001", "\"7\""] {
            let err = parse(&format!("repository = \"b\"\nverify_rotation = {bad}\n")).unwrap_err();
            assert!(err.to_string().contains("verify_rotation"), "{bad}: {err}");
        }
    }

    #[test]
    fn unknown_keys_name_the_key_and_file() {
        let err = parse("repository = \"b\"\nrepo_sitory = 1\n").unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("repo_sitory") && text.contains("/etc/cairn/cairn.toml"),
            "{text}"
        );
        let err = parse("repository = \"b\"\n[retention]\nkeep_yearly = 1\n").unwrap_err();
        assert!(err.to_string().contains("keep_yearly"), "{err}");
    }

    fn stores(list: &[(&str, &str)]) -> String {
        list.iter()
            .map(|(name, path)| {
                format!("[[store]]\nname = \"{name}\"\nkind = \"k\"\npath = \"{path}\"\n")
            })
            .collect()
    }

    #[test]
    fn overlapping_paths_are_refused_naming_both() {
        // /etc/cairn/data does not exist: these are compared lexically.
        let refused = [
            (
                "data/chroma/backups",
                &[("chroma", "data/chroma")][..],
                "chroma",
            ),
            ("backups", &[("repo", "backups")][..], "repo"),
            ("backups", &[("inner", "backups/snapshots")][..], "inner"),
            ("backups", &[("all", "/")][..], "all"),
            ("data/x/../backups", &[("data", "data/./")][..], "data"),
            (
                "backups",
                &[
                    ("chroma", "data/chroma"),
                    ("db", "data/chroma/chroma.sqlite3"),
                ][..],
                "db",
            ),
            (
                "backups",
                &[("a", "data/a.db"), ("b", "data/x/../a.db")][..],
                "b",
            ),
        ];
        for (repository, list, named) in refused {
            let text = format!("repository = \"{repository}\"\n{}", stores(list));
            let err = parse(&text).expect_err(&text);
            let msg = err.to_string();
            assert!(matches!(err, Error::Config { .. }), "{msg}");
            assert!(msg.contains(&format!("{named:?}")), "{text}\n{msg}");
            let other = list.iter().find(|(n, _)| *n != named);
            match other {
                Some((other, _)) => assert!(msg.contains(&format!("{other:?}")), "{msg}"),
                None => assert!(msg.contains("repository"), "{msg}"),
            }
        }
        let fine = format!(
            "repository = \"backups\"\n{}",
            stores(&[
                ("db", "data/app.db"),
                ("db2", "data/app.db2"),
                ("chroma", "data/chroma"),
                ("chroma2", "data/chroma-2"),
                ("b", "backups2"),
            ])
        );
        parse(&fine).unwrap();
    }

    #[test]
    fn symlinks_are_resolved_before_paths_are_compared() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/", dir.path().join("root")).unwrap();
        std::fs::create_dir(dir.path().join("real")).unwrap();
        std::os::unix::fs::symlink("real", dir.path().join("alias")).unwrap();
        let file = dir.path().join("cairn.toml");
        let parse = |text: String| Config::parse(&text, &file);
        let msg = parse(format!(
            "repository = \"b\"\n{}",
            stores(&[("all", "root")])
        ))
        .unwrap_err()
        .to_string();
        assert!(
            msg.contains("resolves to /") && msg.contains("\"all\""),
            "{msg}"
        );
        // The repository does not exist yet; its parent is resolved.
        let msg = parse(format!(
            "repository = \"alias/backups\"\n{}",
            stores(&[("tree", "real")])
        ))
        .unwrap_err()
        .to_string();
        assert!(
            msg.contains("\"tree\"") && msg.contains("repository"),
            "{msg}"
        );
        parse(format!(
            "repository = \"alias/backups\"\n{}",
            stores(&[("tree", "real/tree")])
        ))
        .unwrap();
    }

    #[test]
    fn duplicate_and_bad_store_names_are_refused() {
        let dup = "repository = \"b\"\n[[store]]\nname=\"a\"\nkind=\"k\"\npath=\"p\"\n[[store]]\nname=\"a\"\nkind=\"k\"\npath=\"q\"\n";
        assert!(parse(dup)
            .unwrap_err()
            .to_string()
            .contains("duplicate store name \"a\""));
        let bad = "repository = \"b\"\n[[store]]\nname=\"A/b\"\nkind=\"k\"\npath=\"p\"\n";
        assert!(parse(bad).unwrap_err().to_string().contains("\"A/b\""));
    }
}
