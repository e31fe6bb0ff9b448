//! One function per command: call the engine, hand its result to `json`
//! and `render`. No policy lives here; it is all in cairn-engine.

use std::io::Write;
use std::time::Instant;

use cairn_engine::drill::DrillRequest;
use cairn_engine::repair::{RepairRequest, Which};
use cairn_engine::restore::RestoreRequest;
use cairn_engine::snapshot::SnapshotRequest;
use cairn_engine::validate::{
    last_validation, validate_snapshot, ValidationRecord, ValidationReport,
};
use cairn_engine::{
    drill, prune, repair, restore, snapshot, Config, Depth, Error, Manifest, Registry, Repository,
    Result, Stores,
};
use chrono::{DateTime, Utc};
use serde_json::json;

use crate::cli::{Cli, Command, DrillArgs, RepairArgs, RestoreArgs, SnapshotArgs, ValidateArgs};
use crate::{clock, json, render, starter, Output};

/// Set by the binary's `main`: commands that write stop at a safe point on
/// SIGINT/SIGTERM. Left unset where `run` is called in-process (tests), so
/// a test harness keeps its own signal handling.
static STOP_ON_SIGNALS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub fn stop_on_signals() {
    STOP_ON_SIGNALS.store(true, std::sync::atomic::Ordering::SeqCst);
}

pub fn dispatch(cli: &Cli) -> Result<Output> {
    let registry = Registry::from_inventory()?;
    // Commands that need no config first: they work on a fresh machine.
    match &cli.command {
        Command::Stores => return Ok(stores(&registry)),
        Command::Init { path } => return init(&registry, path),
        Command::Completions { shell } => return Ok(completions(*shell)),
        _ => {}
    }
    let cfg = Config::load(&Config::locate(cli.config.as_deref())?)?;
    // Every store's handler, built once for the whole command: a bad kind
    // or option fails here, before any hook runs or file is touched.
    let stores = Stores::build(&cfg, registry)?;
    tracing::info!(config = %cfg.file.display(), repository = %cfg.repository.display(), "loaded config");
    clock::warn(&cfg, cli.quiet);
    // The commands that write (or, for drill, build a scratch copy) stop
    // at a safe point; read-only commands keep the default: die at once.
    if STOP_ON_SIGNALS.load(std::sync::atomic::Ordering::SeqCst)
        && matches!(
            cli.command,
            Command::Snapshot(_)
                | Command::Restore(_)
                | Command::Prune { .. }
                | Command::Drill(_)
                | Command::Repair(_)
                | Command::Push(_)
                | Command::Pull(_)
        )
    {
        cairn_engine::cancel::install()?;
    }
    let started = Instant::now();
    let output = match &cli.command {
        Command::Snapshot(args) => snapshot_cmd(&cfg, &stores, args),
        Command::List { remote: None } => list(&cfg),
        Command::List { remote: Some(r) } => crate::remote::list(&cfg, r),
        Command::Show { id, remote: None } => show(&cfg, id),
        Command::Show {
            id,
            remote: Some(r),
        } => crate::remote::show(&cfg, r, id),
        Command::Push(args) => crate::remote::push_cmd(&cfg, args),
        Command::Pull(args) => crate::remote::pull_cmd(&cfg, &stores, args),
        Command::Validate(args) => match &args.remote {
            Some(r) => crate::remote::validate(&cfg, r, args),
            None => validate(&cfg, &stores, args),
        },
        Command::Restore(args) => match &args.remote {
            Some(r) => crate::remote::restore_cmd(&cfg, &stores, r, args, || {
                restore_cmd(&cfg, &stores, args)
            }),
            None => restore_cmd(&cfg, &stores, args),
        },
        Command::Prune {
            confirm,
            allow_empty_policy,
            remote: Some(r),
        } => crate::remote::prune_cmd(&cfg, r, *confirm, *allow_empty_policy),
        Command::Prune {
            confirm,
            allow_empty_policy,
            remote: None,
        } => prune_cmd(&cfg, *confirm, *allow_empty_policy),
        Command::Pin { id } => pin(&cfg, id, true),
        Command::Unpin { id } => pin(&cfg, id, false),
        Command::Drill(args) => match &args.remote {
            Some(r) => crate::remote::drill_cmd(&cfg, &stores, r, args),
            None => drill_cmd(&cfg, &stores, args),
        },
        Command::Repair(args) => repair_cmd(&cfg, &stores, args),
        Command::Stores | Command::Init { .. } | Command::Completions { .. } => {
            unreachable!("handled above")
        }
    };
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "command finished"
    );
    // A run a signal stopped is reported as stopped, whatever error the
    // stop surfaced as on its way out (a failed read, a refused staging).
    match (output, cairn_engine::cancel::requested()) {
        (Err(e), Some(signal)) if !matches!(e.cause(), Error::Interrupted { .. }) => {
            tracing::info!(error = %e, "stopped by a signal");
            Err(Error::Interrupted { signal })
        }
        (output, _) => output,
    }
}

fn stores(registry: &Registry) -> Output {
    Output {
        human: render::stores(registry),
        json: json::stores(registry),
        sound: true,
    }
}

fn init(registry: &Registry, path: &std::path::Path) -> Result<Output> {
    let text = starter::config_text(registry);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                Error::Usage {
                    message: format!(
                        "{} already exists; refusing to overwrite it (use --path for another file)",
                        path.display()
                    ),
                }
            } else {
                Error::io("create", path, e)
            }
        })?;
    file.write_all(text.as_bytes())
        .map_err(cairn_engine::error::io_at("write", path))?;
    Ok(Output {
        human: format!(
            "wrote {}: edit the [[store]] tables, then run `cairn snapshot`\n",
            render::clean(&path.display().to_string())
        ),
        json: json!({ "path": path.display().to_string() }),
        sound: true,
    })
}

fn completions(shell: clap_complete::Shell) -> Output {
    use clap::CommandFactory;
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "cairn", &mut buf);
    let script = String::from_utf8_lossy(&buf).into_owned();
    Output {
        json: json!({ "shell": shell.to_string(), "script": script }),
        human: script,
        sound: true,
    }
}

fn snapshot_cmd(cfg: &Config, stores: &Stores, args: &SnapshotArgs) -> Result<Output> {
    let at = match &args.at {
        None => None,
        Some(text) => Some(
            DateTime::parse_from_rfc3339(text)
                .map_err(|e| Error::Usage {
                    message: format!(
                        "--at {text:?} is not an RFC 3339 time ({e}); e.g. 2026-04-06T18:00:00Z"
                    ),
                })?
                .with_timezone(&Utc),
        ),
    };
    let outcome = snapshot::run(
        cfg,
        stores,
        SnapshotRequest {
            only: args.only.clone(),
            skip: args.skip.clone(),
            at,
            tags: args.tags.clone(),
            full: args.full,
            allow_future: args.allow_future,
        },
    )?;
    let mut output = Output {
        human: render::snapshot(&outcome),
        json: json::snapshot(&outcome),
        sound: outcome.validation.valid && outcome.after_hook_error.is_none(),
    };
    // push_after_snapshot: only a sound snapshot goes off-site.
    if output.sound {
        crate::remote::after_snapshot(cfg, &outcome.snapshot.id, &mut output);
    }
    Ok(output)
}

/// One row of `list`.
pub struct ListRow {
    pub id: String,
    pub created_at: Option<DateTime<Utc>>,
    pub tags: Vec<String>,
    pub pinned: bool,
    pub stores: Vec<String>,
    pub bytes: Option<u64>,
    /// What is wrong with it now (its manifest), else what its last
    /// validation found.
    pub problem: Option<String>,
    /// Its last deep validation, when one left a record.
    pub validation: Option<ValidationRecord>,
}

fn list(cfg: &Config) -> Result<Output> {
    let repo = Repository::new(&cfg.repository);
    let listing = repo.list()?;
    let rows: Vec<ListRow> = listing
        .ids
        .iter()
        .map(|id| {
            let pinned = repo.is_pinned(id);
            let validation = last_validation(&repo, id);
            let found = validation
                .as_ref()
                .and_then(|v| v.problems.first())
                .map(|p| p.code.clone());
            match Manifest::read_from(&repo.snapshot_dir(id), id.as_str()) {
                Ok(m) => ListRow {
                    id: id.to_string(),
                    created_at: Some(m.created_at),
                    tags: m.tags.clone(),
                    pinned,
                    stores: m
                        .stores
                        .iter()
                        .filter(|s| s.status == cairn_engine::StoreStatus::Captured)
                        .map(|s| s.name.clone())
                        .collect(),
                    bytes: Some(m.total_bytes()),
                    problem: found,
                    validation,
                },
                Err(p) => ListRow {
                    id: id.to_string(),
                    created_at: None,
                    tags: Vec::new(),
                    pinned,
                    stores: Vec::new(),
                    bytes: None,
                    problem: Some(p.code.to_owned()),
                    validation,
                },
            }
        })
        .collect();
    let now = Utc::now();
    Ok(Output {
        human: render::list(&rows, &listing.unparseable, now),
        json: json::list(&rows, &listing.unparseable, now),
        sound: true,
    })
}

fn show(cfg: &Config, id: &str) -> Result<Output> {
    let repo = Repository::new(&cfg.repository);
    let id = repo.resolve(id)?;
    let manifest =
        Manifest::read_from(&repo.snapshot_dir(&id), id.as_str()).map_err(|p| Error::Manifest {
            id: id.to_string(),
            message: p.to_string(),
        })?;
    let pinned = repo.is_pinned(&id);
    Ok(Output {
        human: render::show(&manifest, pinned),
        json: json::show(&manifest, pinned),
        sound: true,
    })
}

fn validate(cfg: &Config, stores: &Stores, args: &ValidateArgs) -> Result<Output> {
    let repo = Repository::new(&cfg.repository);
    let ids = if args.all {
        repo.list()?.ids
    } else if args.latest {
        vec![repo.latest()?.ok_or_else(|| Error::NoSnapshots {
            repo: repo.root().to_owned(),
        })?]
    } else {
        // Parsed before any file is touched: a path-like id is refused here.
        vec![cairn_engine::SnapshotId::parse(
            args.id.as_deref().unwrap_or_default(),
        )?]
    };
    let depth = if args.quick {
        Depth::Quick
    } else {
        Depth::Deep
    };
    let results: Vec<ValidationReport> = ids
        .iter()
        .map(|id| validate_snapshot(&repo, stores, id, depth).0)
        .collect();
    let sound = results.iter().all(|r| r.valid);
    Ok(Output {
        human: render::validate(&results, depth),
        json: json::validate(&results),
        sound,
    })
}

fn restore_cmd(cfg: &Config, stores: &Stores, args: &RestoreArgs) -> Result<Output> {
    let req = RestoreRequest {
        id: args.id.clone(),
        only: args.only.clone(),
        skip: args.skip.clone(),
        // A dry run touches nothing, so it needs no word that the service
        // is stopped: an operator looks at the plan before stopping it.
        confirm_service_stopped: args.confirm_service_stopped || args.dry_run,
        no_pre_snapshot: args.no_pre_snapshot,
        to: args.to.clone(),
    };
    let plan = restore::plan(cfg, stores, &req)?;
    if args.dry_run {
        return Ok(Output {
            human: render::restore_plan(&plan),
            json: json::restore_plan(&plan),
            sound: true,
        });
    }
    let outcome = plan.stage()?.swap()?;
    Ok(Output {
        human: render::restore(&outcome),
        json: json::restore(&outcome),
        sound: outcome.is_sound(),
    })
}

fn prune_cmd(cfg: &Config, confirm: bool, allow_empty_policy: bool) -> Result<Output> {
    let plan = prune::run(cfg, confirm, allow_empty_policy)?;
    Ok(Output {
        human: render::prune(&plan, &cfg.retention),
        json: json::prune(&plan),
        sound: true,
    })
}

fn pin(cfg: &Config, id: &str, pinned: bool) -> Result<Output> {
    let repo = Repository::new(&cfg.repository);
    let id = cairn_engine::SnapshotId::parse(id)?;
    // Under the lock, so a concurrent prune sees the pin or deletes first.
    let _lock = repo.lock(cfg.lock_wait)?;
    let id = repo.resolve(id.as_str())?;
    repo.set_pinned(&id, pinned)?;
    Ok(Output {
        human: format!(
            "{id} {}\n",
            if pinned {
                "pinned: prune keeps it"
            } else {
                "unpinned"
            }
        ),
        json: json!({ "id": id.to_string(), "pinned": pinned }),
        sound: true,
    })
}

fn drill_cmd(cfg: &Config, stores: &Stores, args: &DrillArgs) -> Result<Output> {
    let report = drill::run(
        cfg,
        stores,
        DrillRequest {
            // `--latest` is the default; the flag exists to say it aloud.
            id: if args.latest { None } else { args.id.clone() },
            scratch: args.scratch.clone(),
            keep: args.keep,
        },
    )?;
    Ok(Output {
        human: render::drill(&report),
        json: json::drill(&report),
        sound: report.ok,
    })
}

fn repair_cmd(cfg: &Config, stores: &Stores, args: &RepairArgs) -> Result<Output> {
    let which = match (&args.id, args.latest) {
        (Some(id), _) => Which::Id(id.clone()),
        (None, true) => Which::Latest,
        // `--all` is the default: a repair only ever rewrites a snapshot
        // file with bytes that hash to what its manifest recorded.
        (None, false) => Which::All,
    };
    let outcome = repair::run(
        cfg,
        stores,
        &RepairRequest {
            which,
            dry_run: args.dry_run,
        },
    )?;
    Ok(Output {
        human: render::repair(&outcome),
        json: json::repair(&outcome),
        sound: outcome.is_sound(),
    })
}
