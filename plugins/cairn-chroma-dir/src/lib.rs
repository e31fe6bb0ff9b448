//! Store kind `chroma-dir`: a directory tree, typically a Chroma persist
//! directory (often a Docker bind-mounted volume).
//!
//! - Snapshot: the tree is copied while the optional `lock_file` is held
//!   with an exclusive flock, so a service that takes the same lock while
//!   ingesting cannot change the tree mid-copy. Empty directories, modes and
//!   mtimes are kept; symlinks are stored as links, never followed; FIFOs,
//!   sockets and devices are skipped with a warning and never opened (not
//!   even to look for an SQLite header: `WalkedFile::starts_with` opens
//!   only a regular file). SQLite files inside
//!   the tree (found by their header) are copied online, and
//!   their `-wal`/`-shm`/`-journal` sidecars are folded into that copy;
//!   the copy is stored in rollback-journal mode, and each file's own mode
//!   is recorded (metadata `sqlite_journal_modes`).
//! - Validate: the engine checks the tree against the manifest; this adds
//!   `integrity_check` of each embedded SQLite file.
//! - Restore: the engine's directory swap keeps the directory itself (same
//!   inode, so a bind mount keeps working) and replaces its contents; on
//!   the configured directory, each embedded database recorded in WAL mode
//!   is put back in WAL mode.

use std::path::Path;
use std::time::Duration;

use cairn_engine::lock::FileLock;
use cairn_engine::plugin::{lstat, same_file, OptionDoc, SwapReport};
use cairn_engine::tree::{capture_tree, FileAction};
use cairn_engine::{
    CaptureCtx, Depth, Error, PluginDescriptor, Problem, Result, Shape, StoreConfig, StoreHandler,
    StoreRecord,
};

pub const KIND: &str = "chroma-dir";
/// Manifest metadata key listing the tree's embedded SQLite files.
const SQLITE_FILES: &str = "sqlite_files";
/// Manifest metadata key: each embedded SQLite file's own journal mode
/// (`wal`, `delete`, …), by path, put back on a live restore.
const SQLITE_JOURNAL_MODES: &str = "sqlite_journal_modes";
const DEFAULT_LOCK_TIMEOUT_SECONDS: u64 = 60;
/// A day: longer is a mistake, not a wait.
const MAX_LOCK_TIMEOUT_SECONDS: u64 = 86_400;
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(30);

inventory::submit! {
    PluginDescriptor {
        kind: KIND,
        summary: "a directory tree (a Chroma persist dir, or any directory); embedded SQLite files copied online",
        shape: Shape::Dir,
        example_path: "\"data/chroma\"",
        options: &[
            OptionDoc {
                name: "lock_file",
                doc: "a file the service flocks while it writes the tree; held exclusively while the tree is copied",
                example: "\"data/.ingest.lock\"",
            },
            OptionDoc {
                name: "lock_timeout_seconds",
                doc: "how long to wait for lock_file before giving up (default 60)",
                example: "60",
            },
        ],
        build,
        origin: module_path!(),
    }
}

fn build(config: &StoreConfig) -> Result<Box<dyn StoreHandler>> {
    config.check_options(&["lock_file", "lock_timeout_seconds"])?;
    let lock_timeout = config.seconds_option(
        "lock_timeout_seconds",
        DEFAULT_LOCK_TIMEOUT_SECONDS,
        MAX_LOCK_TIMEOUT_SECONDS,
    )?;
    Ok(Box::new(ChromaDir {
        lock_file: config.path_option("lock_file")?,
        lock_timeout,
        path: config.path.clone(),
    }))
}

struct ChromaDir {
    lock_file: Option<std::path::PathBuf>,
    lock_timeout: Duration,
    /// The configured directory: a restore onto it is a live restore.
    path: std::path::PathBuf,
}

impl StoreHandler for ChromaDir {
    fn snapshot(&self, ctx: &mut CaptureCtx<'_>) -> Result<()> {
        let source = ctx.source().to_owned();
        if !lstat(&source)?.is_dir() {
            return Err(Error::SourceType {
                path: ctx.source_shown().to_owned(),
                expected: "a directory (kind chroma-dir expects one)",
            });
        }
        // Held until the end of this function: the whole tree is copied
        // under the service's own lock.
        let _guard = match &self.lock_file {
            Some(path) => Some(
                FileLock::acquire_service_lock(path, self.lock_timeout).map_err(|e| match e {
                    Error::Busy {
                        lock, waited_secs, ..
                    } => Error::ServiceBusy {
                        what: format!("lock_file {}", lock.display()),
                        waited_secs,
                    },
                    other => other,
                })?,
            ),
            None => None,
        };

        let mut sqlite_files: Vec<serde_json::Value> = Vec::new();
        let mut journal_modes = serde_json::Map::new();
        let parent_databases = parent_sqlite_files(ctx);
        capture_tree(ctx, &mut |ctx, file, rel, meta| {
            let path = file.path();
            if is_sidecar_of_sqlite(path) {
                return Ok(FileAction::Skip);
            }
            // A file unchanged since the parent snapshot holds the bytes
            // the parent read: one it did not find to be a database is
            // none now, and its header is not opened and read again (an
            // open and a read per file, most of a nightly snapshot's
            // system calls in a large tree).
            let known_plain = parent_databases
                .as_ref()
                .is_some_and(|dbs| !dbs.contains(&String::from(rel)))
                && ctx.unchanged_since_parent(rel, meta);
            // Its header read by name in the walk's directory (no lookup
            // of the path through /proc).
            if known_plain || !file.starts_with(cairn_sqlite_support::HEADER) {
                return Ok(FileAction::Copy);
            }
            // Its path as the manifest writes it (readable form).
            sqlite_files.push(String::from(rel).into());
            // An embedded database nobody wrote since the last snapshot
            // (no pending WAL, file unchanged) is shared with it.
            if cairn_sqlite_support::is_self_contained(path) && ctx.reuse_unchanged(rel, meta) {
                // Unchanged since the parent: its mode is the file's own.
                if let Some(mode) = cairn_sqlite_support::persistent_journal_mode(path) {
                    journal_modes.insert(rel.into(), mode.into());
                }
                return Ok(FileAction::Handled);
            }
            let info =
                cairn_sqlite_support::online_copy(path, &ctx.dest_path(rel), SQLITE_BUSY_TIMEOUT)
                    .map_err(|e| match e.failure {
                    cairn_sqlite_support::CopyFailure::Busy => Error::ServiceBusy {
                        what: format!("database {}", ctx.source_shown().join(rel).display()),
                        waited_secs: SQLITE_BUSY_TIMEOUT.as_secs(),
                    },
                    cairn_sqlite_support::CopyFailure::Interrupted(signal) => {
                        Error::Interrupted { signal }
                    }
                    _ => Error::Source {
                        path: ctx.source_shown().join(rel),
                        message: e.message,
                    },
                })?;
            journal_modes.insert(rel.into(), info.journal_mode.into());
            ctx.add_hashed_file(rel, meta, info.size, info.sha256)?;
            Ok(FileAction::Handled)
        })?;
        ctx.metadata_mut()
            .insert(SQLITE_FILES.into(), sqlite_files.into());
        ctx.metadata_mut()
            .insert(SQLITE_JOURNAL_MODES.into(), journal_modes.into());
        Ok(())
    }

    /// On the configured directory (a live restore, or a rollback), each
    /// embedded database recorded in WAL mode is put back in WAL mode: the
    /// snapshot holds them in rollback-journal mode. Idempotent; a restore
    /// elsewhere keeps the snapshot's bytes.
    fn after_swap(&self, live: &Path, record: &StoreRecord) -> SwapReport {
        if !same_file(live, &self.path) {
            return SwapReport::default();
        }
        let Some(modes) = record
            .metadata
            .get(SQLITE_JOURNAL_MODES)
            .and_then(|v| v.as_object())
        else {
            return SwapReport::default();
        };
        let failed: Vec<String> = modes
            .iter()
            // Only paths the manifest lists (and so were checked on read).
            .filter(|(rel, _)| record.entries.iter().any(|e| e.path == **rel))
            .filter_map(|(rel, mode)| {
                let mode = mode.as_str()?;
                cairn_sqlite_support::restore_journal_mode(&live.join(rel), mode).err()
            })
            .collect();
        if failed.is_empty() {
            SwapReport::default()
        } else {
            SwapReport {
                integrity_ok: Some(false),
                detail: Some(failed.join("; ")),
            }
        }
    }

    /// The tree is in use when the service holds its lock file, or when
    /// any embedded SQLite database is open (the `sqlite` kind's probe).
    fn in_use(&self, live: &Path) -> Result<Option<String>> {
        if cairn_engine::fsutil::is_absent(live) {
            return Ok(None);
        }
        if let Some(lock) = &self.lock_file {
            if FileLock::service_lock_held(lock)? {
                return Ok(Some(format!(
                    "lock_file {} is held: the service is writing the tree",
                    lock.display()
                )));
            }
        }
        let mut reason = None;
        cairn_engine::tree::walk_tree(live, &mut |rel, meta| {
            let path = live.join(rel);
            if reason.is_none() && meta.is_file() && cairn_sqlite_support::is_sqlite_file(&path) {
                reason = cairn_sqlite_support::in_use(&path)?;
            }
            Ok(())
        })?;
        Ok(reason)
    }

    fn check(&self, root: &Path, record: &StoreRecord, depth: Depth) -> Vec<Problem> {
        let files = record
            .metadata
            .get(SQLITE_FILES)
            .and_then(|v| v.as_array())
            .map(|a| a.iter().filter_map(|v| v.as_str()).collect::<Vec<_>>())
            .unwrap_or_default();
        files
            .into_iter()
            // Only paths the manifest lists (and so were checked on read),
            // opened by the entry's exact bytes.
            .filter_map(|rel| record.entries.iter().find(|e| e.path.shown() == rel))
            .filter_map(|entry| {
                cairn_sqlite_support::integrity_check(&root.join(&entry.path), depth)
                    .err()
                    .map(|detail| {
                        Problem::new(cairn_sqlite_support::INTEGRITY_FAILED, detail).at(&entry.path)
                    })
            })
            .collect()
    }
}

/// `x.sqlite3-wal` next to an SQLite `x.sqlite3`: its content is in the
/// database's online copy already.
/// The embedded SQLite files the parent snapshot listed, by path as the
/// manifest writes it; `None` without a parent, or with one that kept no
/// list (then every file's header is read).
fn parent_sqlite_files(ctx: &CaptureCtx<'_>) -> Option<std::collections::HashSet<String>> {
    let listed = ctx.parent_metadata()?.get(SQLITE_FILES)?.as_array()?;
    listed
        .iter()
        .map(|path| path.as_str().map(str::to_owned))
        .collect()
}

fn is_sidecar_of_sqlite(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    cairn_sqlite_support::SIDECAR_SUFFIXES.iter().any(|suffix| {
        name.strip_suffix(suffix)
            .filter(|base| !base.is_empty())
            .is_some_and(|base| cairn_sqlite_support::is_sqlite_file(&path.with_file_name(base)))
    })
}
