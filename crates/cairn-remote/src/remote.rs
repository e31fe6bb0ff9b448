//! An opened remote: its backend, its `config.json`, what chunks it
//! holds, its snapshot documents, and its locks.

use std::collections::{BTreeMap, HashMap, HashSet};

use cairn_engine::checksum::Checksum;
use cairn_engine::config::RemoteConfig;
use cairn_engine::{Error, Result, SnapshotId};
use chrono::{TimeDelta, Utc};

use crate::backend::{Backend, Listed};
use crate::chunk::ChunkerParams;
use crate::format::{self, LockDoc, PackIndex, RemoteRoot, SnapshotDoc};

pub struct Remote {
    pub backend: Backend,
    pub config: RemoteConfig,
}

/// Where a chunk lives.
#[derive(Debug, Clone, Copy)]
pub struct Loc {
    /// Index into [`ChunkMap::packs`].
    pub pack: u32,
    pub offset: u64,
    pub length: u64,
}

/// Every chunk the remote holds in a complete pack.
#[derive(Debug, Default)]
pub struct ChunkMap {
    pub packs: Vec<(String, u64)>,
    pub chunks: HashMap<Checksum, Loc>,
}

impl ChunkMap {
    pub fn add_pack(&mut self, index: &PackIndex) {
        let n = u32::try_from(self.packs.len()).unwrap_or(u32::MAX);
        self.packs.push((index.pack.clone(), index.size));
        for c in &index.chunks {
            self.chunks.entry(c.sha256).or_insert(Loc {
                pack: n,
                offset: c.offset,
                length: c.length,
            });
        }
    }
}

/// How long a lock counts as held: a prune's for an hour (a crashed
/// prune blocks pushes no longer than that); a push's marker for two
/// hours, renewed every half hour while the push runs, so a marker a
/// push could not delete (an append-only credential, a crash) holds
/// prunes off for two hours at most.
pub const PRUNE_LOCK_TTL: TimeDelta = TimeDelta::hours(1);
pub const PUSH_MARKER_TTL: TimeDelta = TimeDelta::hours(2);
pub const PUSH_MARKER_RENEW: std::time::Duration = std::time::Duration::from_secs(30 * 60);
pub const PRUNE_LOCK_KEY: &str = "locks/prune.json";

/// A lock object deleted when this goes (best effort: a leftover expires).
pub struct Held<'a> {
    remote: &'a Remote,
    key: String,
    written: std::cell::Cell<std::time::Instant>,
}

impl Held<'_> {
    /// Writes a push marker again with a new expiry once it is half-way
    /// through its life.
    pub fn renew_if_due(&self) -> Result<()> {
        if self.written.get().elapsed() < PUSH_MARKER_RENEW {
            return Ok(());
        }
        let doc = self.remote.lock_doc("push", PUSH_MARKER_TTL);
        self.remote
            .backend
            .put(&self.key, serde_json::to_vec(&doc).unwrap_or_default())?;
        self.written.set(std::time::Instant::now());
        Ok(())
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        let _ = self.remote.backend.delete(&self.key);
    }
}

impl Remote {
    pub fn open(config: &RemoteConfig) -> Result<Remote> {
        Ok(Remote {
            backend: Backend::open(config)?,
            config: config.clone(),
        })
    }

    pub fn format_error(&self, message: impl Into<String>) -> Error {
        Error::RemoteFormat {
            remote: self.config.name.clone(),
            url: self.config.url.clone(),
            message: message.into(),
        }
    }

    fn parse<T: serde::de::DeserializeOwned>(&self, key: &str, bytes: &[u8]) -> Result<T> {
        serde_json::from_slice(bytes).map_err(|e| {
            self.format_error(format!("{key} is not a document this cairn reads: {e}"))
        })
    }

    /// `config.json`, checked; `None` on a remote never pushed to.
    pub fn root(&self) -> Result<Option<RemoteRoot>> {
        let Some(bytes) = self.backend.get(format::CONFIG_KEY)? else {
            return Ok(None);
        };
        let root: RemoteRoot = self.parse(format::CONFIG_KEY, &bytes)?;
        if root.format_version > format::FORMAT_VERSION {
            return Err(self.format_error(format!(
                "config.json is format {}; this cairn reads up to {}",
                root.format_version,
                format::FORMAT_VERSION
            )));
        }
        if root.encryption != "none" {
            return Err(self.format_error(format!(
                "config.json says encryption {:?}, which this cairn does not support",
                root.encryption
            )));
        }
        Ok(Some(root))
    }

    /// `config.json`, created on first use; refuses a remote chunked with
    /// other parameters (its chunks would never match ours).
    pub fn ensure_root(&self) -> Result<RemoteRoot> {
        let fresh = RemoteRoot {
            format_version: format::FORMAT_VERSION,
            chunker: ChunkerParams::current(),
            encryption: "none".into(),
            created_at: Utc::now(),
        };
        let root = match self.root()? {
            Some(root) => root,
            None => {
                let bytes = serde_json::to_vec_pretty(&fresh).unwrap_or_default();
                if self.backend.put_new(format::CONFIG_KEY, bytes)? {
                    fresh
                } else {
                    self.root()?
                        .ok_or_else(|| self.format_error("config.json vanished while read"))?
                }
            }
        };
        if root.chunker != ChunkerParams::current() {
            return Err(self.format_error(format!(
                "config.json records chunker parameters {:?}, not this cairn's {:?}",
                root.chunker,
                ChunkerParams::current()
            )));
        }
        Ok(root)
    }

    /// Objects under `prefix`, by key.
    pub fn listing(&self, prefix: &str) -> Result<BTreeMap<String, Listed>> {
        Ok(self
            .backend
            .list(prefix)?
            .into_iter()
            .map(|l| (l.key.clone(), l))
            .collect())
    }

    /// Snapshot ids on the remote, oldest first (names that are not ids
    /// are ignored).
    pub fn snapshot_ids(&self) -> Result<Vec<SnapshotId>> {
        let mut ids: Vec<SnapshotId> = self
            .backend
            .list("snapshots/")?
            .iter()
            .filter_map(|l| format::snapshot_of_key(&l.key))
            .filter_map(|s| SnapshotId::parse(s).ok())
            .collect();
        ids.sort();
        Ok(ids)
    }

    pub fn doc(&self, id: &str) -> Result<SnapshotDoc> {
        let key = format::snapshot_key(id);
        let bytes = self
            .backend
            .get(&key)?
            .ok_or_else(|| Error::RemoteSnapshotNotFound {
                id: id.to_owned(),
                remote: self.config.name.clone(),
                url: self.config.url.clone(),
            })?;
        if bytes.len() > format::MAX_DOC_BYTES {
            return Err(self.format_error(format!("{key} is over {} bytes", format::MAX_DOC_BYTES)));
        }
        let doc: SnapshotDoc = self.parse(&key, &bytes)?;
        if doc.id != id || doc.format_version > format::FORMAT_VERSION {
            return Err(self.format_error(format!(
                "{key} holds snapshot {:?} in format {}, not {id} in a format up to {}",
                doc.id,
                doc.format_version,
                format::FORMAT_VERSION
            )));
        }
        Ok(doc)
    }

    pub fn index(&self, pack: &str) -> Result<Option<PackIndex>> {
        let key = format::index_key(pack);
        match self.backend.get(&key)? {
            None => Ok(None),
            Some(bytes) => {
                let index: PackIndex = self.parse(&key, &bytes)?;
                if index.pack != pack {
                    return Err(self.format_error(format!("{key} indexes pack {}", index.pack)));
                }
                if let Some(why) = index_flaw(&index) {
                    return Err(self.format_error(format!("{key} {why}")));
                }
                Ok(Some(index))
            }
        }
    }

    /// Every chunk in a complete pack: an index counts only when its pack
    /// is listed with the size the index records (a pack cut short by a
    /// crash on SFTP is sent again).
    pub fn chunk_map(&self) -> Result<ChunkMap> {
        let packs: HashMap<String, u64> = self
            .backend
            .list("packs/")?
            .into_iter()
            .filter_map(|l| format::pack_of_key(&l.key).map(|p| (p.to_owned(), l.size)))
            .collect();
        let mut map = ChunkMap::default();
        for listed in self.backend.list("index/")? {
            let Some(pack) = format::index_of_key(&listed.key) else {
                continue;
            };
            let Some(&size) = packs.get(pack) else {
                continue;
            };
            // A damaged index only costs a re-upload of its chunks: push
            // must not be stopped by what it can repair.
            match self.index(pack) {
                Ok(Some(index)) if index.size == size => map.add_pack(&index),
                Ok(_) => {}
                Err(Error::RemoteFormat { message, .. }) => {
                    tracing::warn!(remote = %self.config.name, %message, "ignoring an unusable index");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(map)
    }

    fn lock_doc(&self, purpose: &str, ttl: TimeDelta) -> LockDoc {
        let now = Utc::now();
        LockDoc {
            host: format::host_name(),
            pid: std::process::id(),
            created_at: now,
            expires_at: now + ttl,
            purpose: purpose.into(),
        }
    }

    fn locked(&self, doc: &LockDoc) -> Error {
        Error::RemoteLocked {
            remote: self.config.name.clone(),
            url: self.config.url.clone(),
            holder: format!("{} on {} (pid {})", doc.purpose, doc.host, doc.pid),
            since: format!(
                "{} (stale after {})",
                doc.created_at.to_rfc3339(),
                doc.expires_at.to_rfc3339()
            ),
        }
    }

    fn live_lock(&self, key: &str) -> Result<Option<LockDoc>> {
        let Some(bytes) = self.backend.get(key)? else {
            return Ok(None);
        };
        // An unreadable lock is treated as held until it is old: it may be
        // a write in progress.
        match serde_json::from_slice::<LockDoc>(&bytes) {
            Ok(doc) if doc.expires_at < Utc::now() => Ok(None),
            Ok(doc) => Ok(Some(doc)),
            Err(_) => Ok(Some(LockDoc {
                host: "unknown".into(),
                pid: 0,
                created_at: Utc::now(),
                expires_at: Utc::now() + PRUNE_LOCK_TTL,
                purpose: format!("an unreadable lock {key}"),
            })),
        }
    }

    /// A push's marker: pushes run side by side, but not beside a prune.
    pub fn push_marker(&self) -> Result<Held<'_>> {
        let doc = self.lock_doc("push", PUSH_MARKER_TTL);
        let key = format!(
            "locks/push-{}-{}-{}.json",
            sanitize(&doc.host),
            doc.pid,
            Utc::now().timestamp_nanos_opt().unwrap_or_default()
        );
        self.backend
            .put(&key, serde_json::to_vec(&doc).unwrap_or_default())?;
        let held = Held {
            remote: self,
            key,
            written: std::cell::Cell::new(std::time::Instant::now()),
        };
        if let Some(prune) = self.live_lock(PRUNE_LOCK_KEY)? {
            return Err(self.locked(&prune));
        }
        Ok(held)
    }

    /// Prune's lock: one prune at a time, and no push running. Created
    /// with a conditional create; one past its expiry is taken over.
    pub fn prune_lock(&self) -> Result<Held<'_>> {
        let body =
            || serde_json::to_vec(&self.lock_doc("prune", PRUNE_LOCK_TTL)).unwrap_or_default();
        if !self.backend.put_new(PRUNE_LOCK_KEY, body())? {
            match self.live_lock(PRUNE_LOCK_KEY)? {
                Some(doc) => return Err(self.locked(&doc)),
                None => {
                    tracing::warn!(remote = %self.config.name, "taking over a stale prune lock");
                    self.backend.delete(PRUNE_LOCK_KEY)?;
                    if !self.backend.put_new(PRUNE_LOCK_KEY, body())? {
                        let doc = self.live_lock(PRUNE_LOCK_KEY)?;
                        return Err(doc.map_or_else(
                            || self.format_error("the prune lock keeps changing"),
                            |d| self.locked(&d),
                        ));
                    }
                }
            }
        }
        let held = Held {
            remote: self,
            key: PRUNE_LOCK_KEY.into(),
            written: std::cell::Cell::new(std::time::Instant::now()),
        };
        for listed in self.backend.list("locks/")? {
            if listed.key.starts_with("locks/push-") {
                if let Some(doc) = self.live_lock(&listed.key)? {
                    return Err(self.locked(&doc));
                }
            }
        }
        Ok(held)
    }
}

/// What makes an index unusable, if anything: its chunks must be sorted,
/// inside the pack, apart, and no longer than a chunk can be, so a reader
/// streams the pack once and holds one chunk at most.
fn index_flaw(index: &PackIndex) -> Option<String> {
    let mut end = 0u64;
    for c in &index.chunks {
        let last = c.offset.checked_add(c.length);
        if c.length == 0 || c.length > crate::chunk::CDC_MAX as u64 {
            return Some(format!("lists chunk {} of {} bytes", c.sha256, c.length));
        }
        if c.offset < end || last.is_none_or(|last| last > index.size) {
            return Some(format!(
                "lists chunk {} at offset {} overlapping another or past the pack's {} bytes",
                c.sha256, c.offset, index.size
            ));
        }
        end = last.unwrap_or(u64::MAX);
    }
    None
}

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect()
}

/// Each distinct chunk of `doc` once.
pub fn chunks_of(doc: &SnapshotDoc) -> HashSet<Checksum> {
    doc.contents
        .iter()
        .flat_map(|f| f.chunks.iter())
        .chain(doc.manifest.chunks.iter())
        .copied()
        .collect()
}
