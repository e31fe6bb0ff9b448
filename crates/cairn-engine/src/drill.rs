//! Restore drills: restore a snapshot into a scratch directory through the
//! same restore code as a restore elsewhere, then run every check on what came
//! out. Touches nothing live; the repository lock is held only while the
//! restore itself runs.

use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::Utc;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::manifest::{Manifest, StoreRecord, StoreStatus};
use crate::plugin::Depth;
use crate::repo::Repository;
use crate::restore::{self, RestoreRequest};
use crate::stores::Stores;
use crate::{fsutil, validate};

#[derive(Debug, Default)]
pub struct DrillRequest {
    /// `None`: the latest snapshot.
    pub id: Option<String>,
    /// Where the scratch directory goes (default: the system temp dir).
    pub scratch: Option<PathBuf>,
    /// Keep the scratch directory for inspection.
    pub keep: bool,
}

#[derive(Debug, Clone)]
pub struct DrillCheck {
    pub store: String,
    pub check: String,
    pub ok: bool,
    pub detail: String,
}

#[derive(Debug)]
pub struct DrillReport {
    pub id: String,
    pub ok: bool,
    /// Wall time of the restore: an honest estimate of the restore time
    /// objective for this snapshot on this machine.
    pub restore_seconds: f64,
    /// Age of the snapshot now: the recovery point if you restored it.
    pub snapshot_age_seconds: i64,
    pub checks: Vec<DrillCheck>,
    /// The scratch directory, when kept.
    pub scratch: Option<String>,
}

pub fn run(cfg: &Config, stores: &Stores, req: DrillRequest) -> Result<DrillReport> {
    let repo = Repository::new(&cfg.repository);
    let id = match &req.id {
        Some(text) => repo.resolve(text)?,
        None => repo.latest()?.ok_or_else(|| Error::NoSnapshots {
            repo: repo.root().to_owned(),
        })?,
    };
    let manifest = Manifest::read_from(&repo.snapshot_dir(&id), id.as_str());

    let base = match &req.scratch {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir(),
    };
    std::fs::create_dir_all(&base)
        .map_err(crate::error::io_at("create scratch directory", &base))?;
    if let Ok(m) = &manifest {
        check_room(&base, m.total_bytes())?;
    }
    let scratch = scratch_dir(&base)?;

    let mut report = DrillReport {
        id: id.to_string(),
        ok: false,
        restore_seconds: 0.0,
        snapshot_age_seconds: manifest
            .as_ref()
            .map(|m| (Utc::now() - m.created_at).num_seconds())
            .unwrap_or((Utc::now() - id.stamp()).num_seconds()),
        checks: Vec::new(),
        scratch: None,
    };

    let started = Instant::now();
    let restored = restore::run(
        cfg,
        stores,
        RestoreRequest {
            id: id.to_string(),
            to: Some(scratch.clone()),
            ..RestoreRequest::default()
        },
    );
    report.restore_seconds = started.elapsed().as_secs_f64();

    match (restored, manifest) {
        // Every byte came back as recorded; what a kind's check found in
        // them (the outcome's problems) the checks below report per store.
        (Ok(outcome), Ok(manifest))
            if outcome.failure.is_none()
                && outcome
                    .stores
                    .iter()
                    .all(|s| s.restored || s.skipped.is_some()) =>
        {
            report.checks.push(DrillCheck {
                store: String::new(),
                check: "restore".into(),
                ok: true,
                detail: format!(
                    "restored into {} with every checksum verified",
                    scratch.display()
                ),
            });
            report
                .checks
                .extend(check_restored(cfg, stores, &manifest, &scratch));
        }
        (Ok(outcome), _) => report.checks.push(DrillCheck {
            store: String::new(),
            check: "restore".into(),
            ok: false,
            detail: outcome
                .failure
                .unwrap_or_else(|| "a store failed its check after restore".into()),
        }),
        (Err(e), _) => report.checks.push(DrillCheck {
            store: String::new(),
            check: "restore".into(),
            ok: false,
            detail: e.to_string(),
        }),
    }
    // A signal during the restore or the checks: their failures say
    // nothing about the snapshot. Stop, without the scratch directory.
    if let Err(e) = crate::cancel::check() {
        let _ = fsutil::remove_any(&scratch);
        return Err(e);
    }
    report.ok = !report.checks.is_empty() && report.checks.iter().all(|c| c.ok);

    if req.keep {
        report.scratch = Some(scratch.display().to_string());
    } else {
        fsutil::remove_any(&scratch)?;
    }
    Ok(report)
}

/// Every check on the restored copy: the files against the manifest (each
/// byte re-read), then each kind's own drill checks.
/// Every store's checks at once, one thread each; within a store, the
/// files' hashes and the kind's own checks (SQLite integrity_check and row
/// counts) also run side by side. Reported in manifest order.
fn check_restored(
    cfg: &Config,
    stores: &Stores,
    manifest: &Manifest,
    scratch: &Path,
) -> Vec<DrillCheck> {
    crate::parallel::each_on_its_own_thread(
        manifest.stores.iter().collect(),
        |record| {
            let mut checks = check_store(stores, record, scratch);
            if let Some(store) = cfg.store(&record.name) {
                checks.extend(drill_command(store, record, &manifest.id, scratch));
            }
            checks
        },
        |i| {
            vec![DrillCheck {
                store: manifest.stores[i].name.clone(),
                check: "checks".into(),
                ok: false,
                detail: "a check panicked".into(),
            }]
        },
    )
    .into_iter()
    .flatten()
    .collect()
}

fn check_store(stores: &Stores, record: &StoreRecord, scratch: &Path) -> Vec<DrillCheck> {
    if record.status == StoreStatus::Absent {
        return vec![DrillCheck {
            store: record.name.clone(),
            check: "captured".into(),
            ok: true,
            detail: "absent in the snapshot (optional store); nothing to restore".into(),
        }];
    }
    let root = scratch.join(&record.name);
    let (files, kind) = std::thread::scope(|scope| {
        let kind = scope.spawn(|| kind_checks(stores, record, &root));
        let files = files_check(record, &root);
        let kind = kind.join().unwrap_or_else(|_| {
            vec![DrillCheck {
                store: record.name.clone(),
                check: "plugin".into(),
                ok: false,
                detail: "the kind's checks panicked".into(),
            }]
        });
        (files, kind)
    });
    let mut checks = vec![files];
    checks.extend(kind);
    checks
}

/// The store's `drill_command`, on the restored copy: `{path}` in an
/// argument and `CAIRN_DRILL_PATH` are the restored file (a file store) or
/// directory. The copy is the drill's own scratch copy, so nothing the
/// command does reaches the snapshot or the live store.
fn drill_command(
    store: &crate::config::StoreConfig,
    record: &StoreRecord,
    id: &str,
    scratch: &Path,
) -> Option<DrillCheck> {
    let argv = store.drill_command.as_ref()?;
    if record.status == StoreStatus::Absent {
        return None;
    }
    let root = scratch.join(&record.name);
    let path = match (record.shape, record.entries.first()) {
        (crate::manifest::Shape::File, Some(entry)) => root.join(&entry.path),
        _ => root,
    };
    let shown = path.to_string_lossy().into_owned();
    let argv: Vec<String> = argv.iter().map(|a| a.replace("{path}", &shown)).collect();
    let env = [
        ("CAIRN_DRILL_PATH".to_owned(), shown.clone()),
        ("CAIRN_STORE".to_owned(), record.name.clone()),
        ("CAIRN_STORE_KIND".to_owned(), record.kind.clone()),
        ("CAIRN_SNAPSHOT_ID".to_owned(), id.to_owned()),
    ];
    let result =
        crate::hooks::run_bounded("drill_command", &argv, &env, store.drill_command_timeout);
    Some(DrillCheck {
        store: record.name.clone(),
        check: "drill_command".into(),
        ok: result.is_ok(),
        detail: match result {
            Ok(()) => format!("{} exited 0", argv.join(" ")),
            Err(e) => e.to_string(),
        },
    })
}

/// Every restored file against the manifest, every byte hashed, and its
/// mode, owner and attributes as far as this drill's user could restore
/// them.
fn files_check(record: &StoreRecord, root: &Path) -> DrillCheck {
    let mut problems = validate::check_files(root, record, Depth::Deep);
    problems.extend(validate::check_restored_metadata(root, record));
    DrillCheck {
        store: record.name.clone(),
        check: "files_match_manifest".into(),
        ok: problems.is_empty(),
        detail: if problems.is_empty() {
            format!(
                "{} {}, {} bytes, every SHA-256 as recorded",
                record.files(),
                if record.files() == 1 { "file" } else { "files" },
                record.bytes()
            )
        } else {
            problems
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join("; ")
        },
    }
}

/// The plug-in's own drill checks of the restored copy.
fn kind_checks(stores: &Stores, record: &StoreRecord, root: &Path) -> Vec<DrillCheck> {
    match stores.for_record(record) {
        Ok(handler) => handler
            .drill(root, record)
            .into_iter()
            .map(|(check, result)| DrillCheck {
                store: record.name.clone(),
                check,
                ok: result.is_ok(),
                detail: result.unwrap_or_else(|e| e),
            })
            .collect(),
        Err(e) => vec![DrillCheck {
            store: record.name.clone(),
            check: "plugin".into(),
            ok: false,
            detail: validate::kind_unavailable(stores, record, &e).detail,
        }],
    }
}

fn check_room(base: &Path, needed: u64) -> Result<()> {
    if let Some(free) = fsutil::free_bytes(base) {
        // Room for the copy plus a little slack for directories and staging.
        let wanted = needed.saturating_add(needed / 50).saturating_add(16 << 20);
        if free < wanted {
            return Err(Error::NoRoom {
                dir: base.to_owned(),
                free,
                needed: wanted,
            });
        }
    }
    Ok(())
}

/// A new directory under `base` for the restored copy, which holds files
/// that may be private in the live tree (a 0644 database in a 0700
/// directory). Created in one exclusive mkdir with a random name, so no
/// one can plant or predict it in a shared /tmp, and with mode 0700, so
/// it is never more open than that whatever the umask (umask only clears
/// bits).
fn scratch_dir(base: &Path) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new()
        .prefix("cairn-drill-")
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir_in(base)
        .map_err(crate::error::io_at("create scratch directory", base))?;
    // `run` removes it itself (or keeps it when asked to) and reports a
    // failure to remove it, which a drop guard would swallow.
    Ok(dir.keep())
}
