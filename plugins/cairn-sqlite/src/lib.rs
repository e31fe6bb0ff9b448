//! Store kind `sqlite`: one SQLite database file.
//!
//! - Snapshot: a database provably unchanged since the parent snapshot
//!   (its file, `-wal` and `-journal` in exactly the states the parent
//!   recorded before its copy, and those not racy: see
//!   `cairn_sqlite_support::LiveState`) is the parent's copy, hard-linked.
//!   Its integrity check is not run again either: the parent's validation
//!   checked those very bytes when they were copied, and the engine skips
//!   the kind's check for a store whose every file is the parent's
//!   verified copy. Otherwise every page is copied (and hashed) inside
//!   *one* read transaction (`cairn_sqlite_support::online_copy`), so the
//!   copy is consistent while other processes keep writing (a multi-step
//!   backup restarts on every foreign write and may never finish on a busy
//!   database). A writer holding its lock past
//!   `busy_timeout_seconds` is `ServiceBusy`, like any service lock. A
//!   source that is not a healthy database (not a database, or corrupt) is
//!   copied byte for byte with a warning: validation then fails it as
//!   `sqlite_integrity_failed`, and the bytes are kept.
//! - Validate: `PRAGMA integrity_check` (`quick_check` for `--quick`) on
//!   the copy, opened `immutable=1` so no `-wal`/`-shm` appears in the
//!   snapshot.
//!   The copy is stored in rollback-journal mode whatever the source's (so
//!   reading it with `sqlite3` leaves nothing beside it); the manifest
//!   records the source's `journal_mode`.
//! - Restore: refuse while another process has the live database open;
//!   checkpoint it, remove every sidecar so no stale byte survives, rename
//!   the verified copy over it, sync the directory, put the recorded
//!   journal mode back (a WAL database comes back in WAL mode), check
//!   integrity. A restore elsewhere keeps the snapshot's bytes as they are.
//!
//! - Drill: `integrity_check` and row counts of the restored copy, then
//!   each of the store's `drill_checks` (an operator's query, run
//!   read-only on the copy, its first value compared with `expect` or with
//!   the same query on the live database, `expect_live = true`).
//!
//! The SQLite helpers live in `cairn-sqlite-support`, which registers no
//! kind, so `chroma-dir` copies its embedded databases the same way
//! without linking this kind.

use std::path::Path;

use cairn_engine::plugin::{same_file, OptionDoc, SwapReport};
use cairn_engine::{
    CaptureCtx, Depth, Error, PluginDescriptor, Problem, Result, Shape, StoreConfig, StoreHandler,
    StoreRecord,
};
use cairn_sqlite_support::{
    clear_sidecars, in_use, integrity_check, online_copy_with_state, query_value,
    restore_journal_mode, row_counts, CopyFailure, LiveState, QueryTarget, INTEGRITY_FAILED,
};

pub const KIND: &str = "sqlite";
/// Manifest metadata key: the source's journal mode (`CopyInfo::record`).
const JOURNAL_MODE: &str = "journal_mode";
const DEFAULT_BUSY_TIMEOUT_SECONDS: u64 = 30;
/// SQLite takes its busy timeout in milliseconds as a C int.
const MAX_BUSY_TIMEOUT_SECONDS: u64 = (i32::MAX / 1000) as u64;

inventory::submit! {
    PluginDescriptor {
        kind: KIND,
        summary: "one SQLite database file, copied online in one read transaction (consistent while writers write)",
        shape: Shape::File,
        example_path: "\"data/app.db\"",
        options: &[
            OptionDoc {
                name: "busy_timeout_seconds",
                doc: "how long to wait for a writer holding an exclusive lock before giving up (default 30)",
                example: "30",
            },
            OptionDoc {
                name: "drill_checks",
                doc: "queries `cairn drill` runs read-only on the restored copy: each `sql` (one read-only statement) must give `expect` (its first column of its first row, as text), or with `expect_live = true` what the same query gives on the live database (opened read-only); optional `name`, `timeout_seconds` (default 60)",
                example: "[{ sql = \"SELECT sum(balance) FROM accounts\", expect = \"1000000\" }]",
            },
        ],
        build,
        origin: module_path!(),
    }
}

fn build(config: &StoreConfig) -> Result<Box<dyn StoreHandler>> {
    config.check_options(&["busy_timeout_seconds", "drill_checks"])?;
    let drill_checks = drill_checks(config)?;
    let busy_timeout = config.seconds_option(
        "busy_timeout_seconds",
        DEFAULT_BUSY_TIMEOUT_SECONDS,
        MAX_BUSY_TIMEOUT_SECONDS,
    )?;
    Ok(Box::new(SqliteStore {
        busy_timeout,
        path: config.path.clone(),
        drill_checks,
    }))
}

/// One `drill_checks` entry, checked.
struct DrillCheckSpec {
    name: String,
    sql: String,
    expected: Expected,
    timeout: std::time::Duration,
}

enum Expected {
    Value(String),
    /// The same query's value on the live database.
    Live,
}

const DEFAULT_CHECK_TIMEOUT_SECONDS: u64 = 60;

fn drill_checks(config: &StoreConfig) -> Result<Vec<DrillCheckSpec>> {
    let Some(value) = config.options.get("drill_checks") else {
        return Ok(Vec::new());
    };
    let bad = |i: Option<usize>, why: &str| {
        let which = i.map_or(String::new(), |i| format!("[{}]", i + 1));
        Error::config(
            &config.origin,
            format!(
                "store {:?}: option `drill_checks{which}` {why}; e.g. drill_checks = [{{ sql = \"SELECT count(*) FROM t\", expect = \"3\" }}]",
                config.name
            ),
        )
    };
    let list = value
        .as_array()
        .ok_or_else(|| bad(None, "must be an array of tables"))?;
    list.iter()
        .enumerate()
        .map(|(i, item)| {
            let table = item
                .as_table()
                .ok_or_else(|| bad(Some(i), "must be a table with `sql` and `expect` or `expect_live`"))?;
            if let Some(key) = table
                .keys()
                .find(|k| !["sql", "expect", "expect_live", "name", "timeout_seconds"].contains(&k.as_str()))
            {
                return Err(bad(Some(i), &format!("has unknown key `{key}` (known: sql, expect, expect_live, name, timeout_seconds)")));
            }
            let sql = match table.get("sql").and_then(|v| v.as_str()) {
                Some(sql) if !sql.trim().is_empty() && sql.len() <= 64 * 1024 => sql.to_owned(),
                _ => return Err(bad(Some(i), "needs `sql`, a non-empty string")),
            };
            let expected = match (table.get("expect"), table.get("expect_live")) {
                (Some(v), None | Some(cairn_engine::toml::Value::Boolean(false))) => Expected::Value(match v {
                    cairn_engine::toml::Value::String(s) => s.clone(),
                    cairn_engine::toml::Value::Integer(n) => n.to_string(),
                    cairn_engine::toml::Value::Float(x) => x.to_string(),
                    _ => return Err(bad(Some(i), "`expect` must be a string or a number")),
                }),
                (None, Some(cairn_engine::toml::Value::Boolean(true))) => Expected::Live,
                _ => {
                    return Err(bad(
                        Some(i),
                        "needs exactly one of `expect` (a value) and `expect_live = true`",
                    ))
                }
            };
            let timeout = match table.get("timeout_seconds") {
                None => DEFAULT_CHECK_TIMEOUT_SECONDS,
                Some(v) => match v.as_integer() {
                    Some(n @ 1..=86_400) => n as u64,
                    _ => return Err(bad(Some(i), "`timeout_seconds` must be 1 to 86400")),
                },
            };
            let name = match table.get("name") {
                None => format!("drill_check {}", i + 1),
                Some(cairn_engine::toml::Value::String(n)) if !n.is_empty() && n.len() <= 128 => n.clone(),
                Some(_) => return Err(bad(Some(i), "`name` must be a string of 1 to 128 bytes")),
            };
            Ok(DrillCheckSpec {
                name,
                sql,
                expected,
                timeout: std::time::Duration::from_secs(timeout),
            })
        })
        .collect()
}

/// One drill check on the restored copy at `copy`: what it saw, and
/// whether that is what was expected.
fn run_drill_check(
    spec: &DrillCheckSpec,
    copy: &Path,
    live: &Path,
) -> std::result::Result<String, String> {
    let seen = query_value(copy, &spec.sql, QueryTarget::Copy, spec.timeout)
        .map_err(|e| format!("{}: {e}", spec.sql))?;
    let (expected, from) = match &spec.expected {
        Expected::Value(v) => (v.clone(), "expected"),
        Expected::Live => (
            query_value(live, &spec.sql, QueryTarget::Live, spec.timeout).map_err(|e| {
                format!(
                    "{}: got {seen:?} from the copy; the live database: {e}",
                    spec.sql
                )
            })?,
            "live",
        ),
    };
    let text = format!("{}: got {seen:?}, {from} {expected:?}", spec.sql);
    if seen == expected {
        Ok(text)
    } else {
        Err(text)
    }
}

struct SqliteStore {
    /// The store's `drill_checks`, in config order.
    drill_checks: Vec<DrillCheckSpec>,
    busy_timeout: std::time::Duration,
    /// The configured database: a restore onto it is a live restore.
    path: std::path::PathBuf,
}

impl StoreHandler for SqliteStore {
    fn snapshot(&self, ctx: &mut CaptureCtx<'_>) -> Result<()> {
        let source = ctx.source().to_owned();
        // Stat'ed before anything opens the database, to compare with the
        // state the parent recorded before its copy's read transaction.
        let (state, meta) =
            LiveState::record(&source).map_err(|e| Error::io("stat", ctx.source_shown(), e))?;
        if !meta.is_file() {
            return Err(Error::SourceType {
                path: ctx.source_shown().to_owned(),
                expected: "a regular file (kind sqlite expects a database file)",
            });
        }
        let name = file_name(&source);
        if self.reuse_parent_copy(ctx, &name, &meta, &state) {
            return Ok(());
        }
        let dest = ctx.dest_path(&name);
        match online_copy_with_state(&source, &dest, self.busy_timeout) {
            Ok((info, copied_state)) => {
                // The state recorded with the source open, before the
                // copy's read transaction: what the next snapshot compares
                // its own with. The entry records the same stat of the file.
                let meta = match &copied_state {
                    Ok((_, meta)) => meta,
                    Err(_) => &meta,
                };
                ctx.add_hashed_file(&name, meta, info.size, info.sha256)?;
                info.record(ctx.metadata_mut());
                if let Ok((copied_state, _)) = &copied_state {
                    copied_state.record_into(ctx.metadata_mut());
                }
                Ok(())
            }
            Err(e) => match e.failure {
                CopyFailure::Busy => Err(Error::ServiceBusy {
                    what: format!("database {}", ctx.source_shown().display()),
                    waited_secs: self.busy_timeout.as_secs(),
                }),
                // Not a healthy database: its exact bytes are what an
                // operator may need back, so they are captured as they are
                // (validation then flags them sqlite_integrity_failed).
                CopyFailure::NotHealthy => {
                    match std::fs::remove_file(&dest) {
                        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                            return Err(Error::io("remove", &dest, e))
                        }
                        _ => {}
                    }
                    ctx.warn(format!(
                        "not a healthy database ({}); its bytes were copied exactly as they are",
                        e.message
                    ));
                    // The parent's copy is an online copy, not these bytes.
                    ctx.forget_parent(&name);
                    ctx.copy_file(&source, &name, &meta)
                }
                CopyFailure::Interrupted(signal) => Err(Error::Interrupted { signal }),
                CopyFailure::Other => Err(Error::Source {
                    path: ctx.source_shown().to_owned(),
                    message: e.message,
                }),
            },
        }
    }

    fn check(&self, root: &Path, record: &StoreRecord, depth: Depth) -> Vec<Problem> {
        // Run on every copy made; a reused copy was checked when it was
        // made (see the module docs).
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
            for spec in &self.drill_checks {
                checks.push((spec.name.clone(), run_drill_check(spec, &path, &self.path)));
            }
        }
        checks
    }

    fn row_counts(
        &self,
        root: &Path,
        record: &StoreRecord,
    ) -> Option<std::result::Result<Vec<(String, u64)>, String>> {
        let entry = record.entries.first()?;
        Some(row_counts(&root.join(&entry.path)).map(|rows| {
            rows.into_iter()
                .map(|(table, n)| (table, u64::try_from(n).unwrap_or(0)))
                .collect()
        }))
    }

    fn in_use(&self, live: &Path) -> Result<Option<String>> {
        in_use(live)
    }

    /// No stale byte may meet the restored file: checkpoint the live
    /// database, then remove `-wal`, `-shm` and `-journal`. Repeating it
    /// finds nothing left to remove.
    fn before_swap(&self, live: &Path) -> Result<()> {
        clear_sidecars(live)
    }

    /// On the configured path (a live restore, or a rollback), the
    /// recorded journal mode is put back first: the snapshot holds the
    /// database in rollback-journal mode, and a WAL database must come back
    /// in WAL mode (a write; idempotent: a file already in WAL mode is not
    /// touched). Elsewhere the file stays the snapshot's bytes. Then the
    /// file is checked as the service will open it.
    fn after_swap(&self, live: &Path, record: &StoreRecord) -> SwapReport {
        let recorded = record.metadata.get(JOURNAL_MODE).and_then(|v| v.as_str());
        let mode = match recorded {
            Some(mode) if same_file(live, &self.path) => restore_journal_mode(live, mode),
            _ => Ok(()),
        };
        let result = mode.and_then(|()| integrity_check(live, Depth::Deep));
        SwapReport {
            integrity_ok: Some(result.is_ok()),
            detail: result.err(),
        }
    }
}

impl SqliteStore {
    /// Hard-links the parent's copy when the database provably did not
    /// change since the parent recorded its state (`state` is now's);
    /// `true` when reused. The record then carries the parent's copy
    /// facts (journal mode, pages) and the state just recorded, so the
    /// snapshot after this one can reuse it again.
    fn reuse_parent_copy(
        &self,
        ctx: &mut CaptureCtx<'_>,
        name: &str,
        meta: &std::fs::Metadata,
        state: &LiveState,
    ) -> bool {
        let Some(parent) = ctx.parent_metadata() else {
            return false;
        };
        let unchanged =
            LiveState::recorded_in(parent).is_some_and(|then| state.unchanged_since(&then));
        if !unchanged {
            return false;
        }
        let facts: Vec<(String, cairn_engine::serde_json::Value)> = COPY_FACTS
            .iter()
            .filter_map(|k| parent.get(*k).map(|v| ((*k).to_owned(), v.clone())))
            .collect();
        if facts.len() != COPY_FACTS.len() || !ctx.reuse_unchanged(name, meta) {
            return false;
        }
        let metadata = ctx.metadata_mut();
        metadata.extend(facts);
        state.record_into(metadata);
        true
    }
}

/// What an online copy records about itself (`CopyInfo::record`), carried
/// from the parent's record when its copy is reused.
const COPY_FACTS: [&str; 4] = ["page_size", "page_count", JOURNAL_MODE, "user_version"];

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "database.sqlite".into())
}
