//! Store kind `sqlite`: one SQLite database file.
//!
//! - Snapshot: the backup API copies every page in *one* step, so the copy
//!   is one read transaction — consistent while other processes keep
//!   writing (a multi-step backup restarts on every foreign write and may
//!   never finish on a busy database).
//! - Validate: `PRAGMA integrity_check` (`quick_check` for `--quick`) on
//!   the copy, opened `immutable=1` so no `-wal`/`-shm` appears in the
//!   snapshot.
//! - Restore: refuse while another process has the live database open;
//!   checkpoint it, remove every sidecar so no stale byte survives, rename
//!   the verified copy over it, sync the directory, check integrity.
//!
//! The helpers are public: other plug-ins (`chroma-dir`) copy SQLite files
//! found inside their trees the same way.

mod copy;
mod integrity;
mod live;

use std::path::Path;
use std::time::Duration;

use cairn_engine::plugin::{OptionDoc, SwapCtx, SwapReport};
use cairn_engine::{
    CaptureCtx, Depth, ExitClass, PluginDescriptor, Problem, Result, Shape, StoreConfig,
    StoreHandler, StoreRecord,
};

pub use copy::{is_sqlite_file, online_copy, CopyInfo};
pub use integrity::{integrity_check, row_counts, INTEGRITY_FAILED};
pub use live::{clear_sidecars, in_use, is_self_contained, SIDECAR_SUFFIXES};

pub const KIND: &str = "sqlite";
const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(30);

inventory::submit! {
    PluginDescriptor {
        kind: KIND,
        summary: "one SQLite database file, copied online with the backup API (consistent while writers write)",
        shape: Shape::File,
        example_path: "\"data/app.db\"",
        options: &[OptionDoc {
            name: "busy_timeout_seconds",
            doc: "how long to wait for a writer holding an exclusive lock before giving up (default 30)",
            example: "30",
        }],
        build,
        origin: module_path!(),
    }
}

fn build(config: &StoreConfig) -> Result<Box<dyn StoreHandler>> {
    config.check_options(&["busy_timeout_seconds"])?;
    let busy_timeout = match config.options.get("busy_timeout_seconds") {
        None => DEFAULT_BUSY_TIMEOUT,
        Some(v) => match v.as_integer() {
            Some(n) if n >= 0 => Duration::from_secs(n as u64),
            _ => {
                return Err(cairn_engine::Error::config(
                    &config.origin,
                    format!(
                    "store {:?}: option `busy_timeout_seconds` must be a whole number of seconds",
                    config.name
                ),
                ))
            }
        },
    };
    Ok(Box::new(SqliteStore { busy_timeout }))
}

struct SqliteStore {
    busy_timeout: Duration,
}

impl StoreHandler for SqliteStore {
    fn snapshot(&self, ctx: &mut CaptureCtx<'_>) -> Result<()> {
        let source = ctx.source().to_owned();
        let meta = cairn_engine::plugin::lstat(&source)?;
        if !meta.is_file() {
            return Err(cairn_engine::Error::store(
                ctx.store_name(),
                ExitClass::Usage,
                format!(
                    "{} is not a regular file (kind sqlite expects a database file)",
                    source.display()
                ),
            ));
        }
        let name = file_name(&source);
        let info = online_copy(&source, &ctx.dest_path(&name), self.busy_timeout)
            .map_err(|e| cairn_engine::Error::store(ctx.store_name(), ExitClass::Io, e))?;
        ctx.add_written_file(&name, &meta)?;
        info.record(ctx.metadata_mut());
        Ok(())
    }

    fn check(&self, root: &Path, record: &StoreRecord, depth: Depth) -> Vec<Problem> {
        record
            .entries
            .iter()
            .filter_map(|e| {
                integrity_check(&root.join(&e.path), depth)
                    .err()
                    .map(|d| (e, d))
            })
            .map(|(e, detail)| Problem::new(INTEGRITY_FAILED, detail).at(e.path.clone()))
            .collect()
    }

    fn drill(
        &self,
        root: &Path,
        record: &StoreRecord,
    ) -> Vec<(String, std::result::Result<String, String>)> {
        let mut checks = Vec::new();
        for entry in &record.entries {
            let path = root.join(&entry.path);
            checks.push((
                "integrity_check".to_owned(),
                integrity_check(&path, Depth::Deep).map(|()| "ok".into()),
            ));
            let counts = row_counts(&path).map(|rows| {
                let shown: Vec<String> = rows.iter().map(|(t, n)| format!("{t}={n}")).collect();
                if shown.is_empty() {
                    "no tables".into()
                } else {
                    shown.join(", ")
                }
            });
            checks.push(("row_counts".to_owned(), counts));
        }
        checks
    }

    fn in_use(&self, live: &Path) -> Result<Option<String>> {
        in_use(live)
    }

    fn restore(&self, swap: &SwapCtx<'_>) -> Result<SwapReport> {
        clear_sidecars(swap.live)?;
        cairn_engine::restore::replace_file(swap.staged, swap.live)?;
        // The restored file is checked as the service will open it.
        let result = integrity_check(swap.live, Depth::Deep);
        Ok(SwapReport {
            integrity_ok: Some(result.is_ok()),
            detail: result.err(),
        })
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "database.sqlite".into())
}
