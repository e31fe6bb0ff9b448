//! One function per command: call the engine, hand its result to `json`
//! and `render`. No policy lives here; it is all in cairn-engine.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use cairn_engine::drill::DrillRequest;
use cairn_engine::repair::{RepairRequest, Which};
use cairn_engine::restore::RestoreRequest;
use cairn_engine::snapshot::SnapshotRequest;
use cairn_engine::validate::{
    last_validation, validate_snapshot, validate_snapshot_subset, ValidationRecord,
    ValidationReport,
};
use cairn_engine::{
    drill, prune, repair, restore, snapshot, Config, Depth, Error, Manifest, Registry, Repository,
    Result, SnapshotId, Stores,
};
use chrono::{DateTime, Utc};
use serde_json::json;

use crate::cli::{
    Cli, Command, DrillArgs, IdArgs, RepairArgs, RestoreArgs, ShowArgs, SnapshotArgs, ValidateArgs,
};
use crate::{browse, clock, diff, json, render, starter, stats, Format, Output};

/// Set by the binary's `main`: commands that write stop at a safe point on
/// SIGINT/SIGTERM. Left unset where `run` is called in-process (tests), so
/// a test harness keeps its own signal handling.
static STOP_ON_SIGNALS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub fn stop_on_signals() {
    STOP_ON_SIGNALS.store(true, std::sync::atomic::Ordering::SeqCst);
}

pub fn dispatch(cli: &Cli, command_name: &str, out: &mut dyn Write) -> Result<Output> {
    let registry = Registry::from_inventory()?;
    // Commands that need no config first: they work on a fresh machine.
    match &cli.command {
        Command::Stores => return Ok(stores(&registry)),
        Command::Init { path } => return init(&registry, path.as_deref(), cli.config.as_deref()),
        Command::Completions { shell } => return Ok(completions(*shell)),
        _ => {}
    }
    if matches!(cli.command, Command::Cat(_)) && cli.json {
        return Err(Error::Usage {
            message: "cat writes the file's bytes to stdout; --json has no place there (`cairn --json ls` describes entries)".into(),
        });
    }
    let cfg = load_config(cli)?;
    // `[monitoring]` sees every command that has a config, however it ends.
    let monitor = crate::monitor::Monitor::start(&cfg, command_name, cli.quiet);
    // A copy (a few paths and strings) so the command's code below reads
    // as before: it owns its `cfg`.
    let result = dispatch_with_config(cli, cfg.clone(), registry, out);
    monitor.finish(&cfg, &result);
    result
}

fn dispatch_with_config(
    cli: &Cli,
    cfg: Config,
    registry: Registry,
    out: &mut dyn Write,
) -> Result<Output> {
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
                | Command::ImportLegacy(_)
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
        Command::Show(args) => match &args.remote {
            None => show(&cfg, &args.which),
            Some(r) => crate::remote::show(&cfg, r, &args.which),
        },
        Command::Ls(args) => browse::ls(&cfg, args),
        Command::Cat(args) => browse::cat(&cfg, args, out),
        Command::Diff(args) => diff::run(&cfg, &stores, args),
        Command::Stats => stats::run(&cfg),
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
        Command::Pin(which) => pin(&cfg, which, true),
        Command::Unpin(which) => pin(&cfg, which, false),
        Command::Drill(args) => match &args.remote {
            Some(r) => crate::remote::drill_cmd(&cfg, &stores, r, args),
            None => drill_cmd(&cfg, &stores, args),
        },
        Command::Repair(args) => repair_cmd(&cfg, &stores, args),
        Command::ImportLegacy(args) => {
            crate::import::run(&cfg, &args.dir, args.confirm, args.include_damaged)
        }
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

/// The config file, or with `--repo` a config naming only that repository
/// (for the commands that only read one).
fn load_config(cli: &Cli) -> Result<Config> {
    let Some(repo) = &cli.repo else {
        return Config::load(&Config::locate(cli.config.as_deref())?);
    };
    let read_only = matches!(
        cli.command,
        Command::List { remote: None }
            | Command::Show(ShowArgs { remote: None, .. })
            | Command::Ls(_)
            | Command::Cat(_)
            | Command::Diff(_)
            | Command::Stats
            | Command::Validate(_)
    );
    if !read_only {
        return Err(Error::Usage {
            message: "--repo works only with the commands that read a repository (list, show, ls, cat, diff, stats, validate); the others need the config (--config)".into(),
        });
    }
    if cli.config.is_some() {
        return Err(Error::Usage {
            message: "--repo and --config both name a repository; give one".into(),
        });
    }
    Config::for_repository(repo)
}

/// The snapshot a command was given, as the operator typed it (an id, or
/// `--latest`), for hints that spell out a command.
pub(crate) fn snapshot_named(command: &Command) -> Option<String> {
    let (id, latest) = match command {
        // A hint spelling out `cairn restore ID --confirm-service-stopped`
        // must not widen a restore that chose paths or stores.
        Command::Restore(a) if !a.paths.is_empty() || !a.only.is_empty() || !a.skip.is_empty() => {
            return None
        }
        Command::Restore(a) => (a.id.as_ref(), a.latest),
        Command::Show(ShowArgs { which: a, .. }) | Command::Pin(a) | Command::Unpin(a) => {
            (a.id.as_ref(), a.latest)
        }
        _ => return None,
    };
    match (id, latest) {
        (Some(id), _) => Some(id.clone()),
        (None, true) => Some("--latest".to_owned()),
        (None, false) => None,
    }
}

/// The snapshot an id or `--latest` names, checked to exist.
pub(crate) fn pick(repo: &Repository, id: Option<&str>, latest: bool) -> Result<SnapshotId> {
    match (id, latest) {
        (Some(id), _) => repo.resolve(id),
        (None, true) => repo.latest()?.ok_or_else(|| Error::NoSnapshots {
            repo: repo.root().to_owned(),
        }),
        (None, false) => Err(Error::Usage {
            message: "name a snapshot: an id, or --latest".into(),
        }),
    }
}

fn stores(registry: &Registry) -> Output {
    Output {
        human: render::stores(registry),
        json: json::stores(registry),
        sound: true,
        stream: None,
    }
}

/// Where `init` writes: `--path` (init's own option, the most specific),
/// else `--config`, else `$CAIRN_CONFIG`, else `./cairn.toml` — so without
/// `--path` it writes the file the next command reads by default.
fn init_target(path: Option<&Path>, config: Option<&Path>) -> PathBuf {
    if let Some(p) = path.or(config) {
        return p.to_owned();
    }
    match std::env::var_os("CAIRN_CONFIG") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from("cairn.toml"),
    }
}

fn init(registry: &Registry, path: Option<&Path>, config: Option<&Path>) -> Result<Output> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let path = &init_target(path, config);
    let text = starter::config_text(registry);
    // 0600 whatever the umask: root refuses a config its group or others
    // can write, and must not refuse the file it has just written.
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
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
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(cairn_engine::error::io_at("chmod", path))?;
    file.write_all(text.as_bytes())
        .map_err(cairn_engine::error::io_at("write", path))?;
    Ok(Output {
        human: format!(
            "wrote {}: edit the [[store]] tables, then run `cairn snapshot`\n",
            render::clean(&path.display().to_string())
        ),
        json: json!({ "path": path.display().to_string() }),
        sound: true,
        stream: None,
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
        stream: None,
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
        stream: None,
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
        stream: None,
    })
}

fn show(cfg: &Config, which: &IdArgs) -> Result<Output> {
    let repo = Repository::new(&cfg.repository);
    let id = pick(&repo, which.id.as_deref(), which.latest)?;
    let manifest =
        Manifest::read_from(&repo.snapshot_dir(&id), id.as_str()).map_err(|p| Error::Manifest {
            id: id.to_string(),
            message: p.to_string(),
        })?;
    let pinned = repo.is_pinned(&id);
    Ok(Output {
        human: String::new(),
        json: serde_json::json!({ "id": id.as_str() }),
        sound: true,
        stream: Some(Box::new(move |out, format| match format {
            Format::Human => out.write_all(render::show(&manifest, pinned).as_bytes()),
            Format::Json => json::write_show(out, manifest, pinned),
        })),
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
        .map(|id| match args.subset {
            Some(subset) => validate_snapshot_subset(&repo, stores, id, subset).0,
            None => validate_snapshot(&repo, stores, id, depth).0,
        })
        .collect();
    let sound = results.iter().all(|r| r.valid);
    Ok(Output {
        human: match args.subset {
            // Only one share's bytes were read: the summary must not say all.
            Some(share) => render::validate(&results, depth).replace(
                "(every byte hashed)",
                &format!("(the bytes of share {share} of the files hashed)"),
            ),
            None => render::validate(&results, depth),
        },
        json: json::validate(&results),
        sound,
        stream: None,
    })
}

fn restore_cmd(cfg: &Config, stores: &Stores, args: &RestoreArgs) -> Result<Output> {
    let repo = Repository::new(&cfg.repository);
    let id = match &args.id {
        // Resolved by the plan, under the lock.
        Some(id) => id.clone(),
        None => pick(&repo, None, args.latest)?.to_string(),
    };
    let paths = crate::address::restore_paths(&repo, &id, &args.paths)?;
    let req = RestoreRequest {
        id,
        paths,
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
        plan.check_snapshot()?;
        return Ok(Output {
            human: render::restore_plan(&plan),
            json: json::restore_plan(&plan),
            sound: true,
            stream: None,
        });
    }
    let outcome = plan.stage()?.swap()?;
    Ok(Output {
        human: render::restore(&outcome),
        json: json::restore(&outcome),
        sound: outcome.is_sound(),
        stream: None,
    })
}

fn prune_cmd(cfg: &Config, confirm: bool, allow_empty_policy: bool) -> Result<Output> {
    let plan = prune::run(cfg, confirm, allow_empty_policy)?;
    Ok(Output {
        human: render::prune(&plan, &cfg.retention),
        json: json::prune(&plan),
        sound: true,
        stream: None,
    })
}

fn pin(cfg: &Config, which: &IdArgs, pinned: bool) -> Result<Output> {
    let repo = Repository::new(&cfg.repository);
    // Parsed before the lock: a path-like id is refused before any file.
    if let Some(id) = &which.id {
        SnapshotId::parse(id)?;
    }
    // Under the lock, so a concurrent prune sees the pin or deletes first.
    let _lock = repo.lock(cfg.lock_wait)?;
    let id = pick(&repo, which.id.as_deref(), which.latest)?;
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
        stream: None,
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
        stream: None,
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
        stream: None,
    })
}
