//! The off-site commands (`push`, `pull`, and `--remote` on list, show,
//! validate, restore, drill and prune): load the remote from the config,
//! call `cairn-remote`, hand results to `remote_json` and `remote_render`.

use std::time::Instant;

use cairn_engine::config::RemoteConfig;
use cairn_engine::drill::DrillRequest;
use cairn_engine::{Config, Error, Repository, Result, SnapshotId, Stores};
use cairn_remote::check::{ReadData, Subset};
use cairn_remote::push::PushOutcome;
use cairn_remote::Remote;

use crate::cli::{DrillArgs, PullArgs, PushArgs, RestoreArgs, ValidateArgs};
use crate::{remote_json, remote_render, Output};

fn remote_config<'a>(cfg: &'a Config, name: &str) -> Result<&'a RemoteConfig> {
    cfg.remote(name).ok_or_else(|| {
        Error::config(
            &cfg.file,
            format!(
                "no [[remote]] named {name:?} (configured: {})",
                if cfg.remotes.is_empty() {
                    "none".to_owned()
                } else {
                    cfg.remotes
                        .iter()
                        .map(|r| r.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ),
        )
    })
}

fn open(cfg: &Config, name: &str) -> Result<Remote> {
    Remote::open(remote_config(cfg, name)?)
}

/// One remote's pushes, for the report.
pub struct PushReport {
    pub remote: String,
    pub url: String,
    pub pushed: Vec<PushOutcome>,
    pub error: Option<Error>,
}

/// Pushes `ids` to each remote in `names`; an error stops that remote
/// (the next is still tried) and is reported.
fn push_all(cfg: &Config, names: &[String], which: &Which) -> Result<Vec<PushReport>> {
    let repo = Repository::new(&cfg.repository);
    // Held for the whole push: a prune must not delete what is being read.
    let _lock = repo.lock(cfg.lock_wait)?;
    let ids = match which {
        Which::All => repo.list()?.ids,
        Which::Latest => vec![repo.latest()?.ok_or_else(|| Error::NoSnapshots {
            repo: repo.root().to_owned(),
        })?],
        Which::Id(text) => vec![repo.resolve(text)?],
    };
    let mut reports = Vec::new();
    for name in names {
        let rc = remote_config(cfg, name)?;
        let mut report = PushReport {
            remote: rc.name.clone(),
            url: rc.url.clone(),
            pushed: Vec::new(),
            error: None,
        };
        match Remote::open(rc) {
            Err(e) => report.error = Some(e),
            Ok(remote) => {
                for id in &ids {
                    match cairn_remote::push::push(&remote, &repo, id) {
                        Ok(out) => report.pushed.push(out),
                        Err(e) => {
                            report.error = Some(e);
                            break;
                        }
                    }
                }
            }
        }
        reports.push(report);
    }
    Ok(reports)
}

pub enum Which {
    All,
    Latest,
    Id(String),
}

pub fn push_cmd(cfg: &Config, args: &PushArgs) -> Result<Output> {
    let names: Vec<String> = match &args.remote {
        Some(name) => vec![name.clone()],
        None => cfg.remotes.iter().map(|r| r.name.clone()).collect(),
    };
    if names.is_empty() {
        return Err(Error::config(
            &cfg.file,
            "no [[remote]] is configured; add one (see the operator guide, Off-site copies)",
        ));
    }
    let which = match (&args.id, args.latest) {
        (Some(id), _) => Which::Id(id.clone()),
        (None, true) => Which::Latest,
        (None, false) => Which::All,
    };
    let reports = push_all(cfg, &names, &which)?;
    // One remote failing fails the run with that remote's own code when
    // it is the only one; otherwise the report says which failed.
    if let [only] = reports.as_slice() {
        if only.error.is_some() {
            let mut reports = reports;
            let e = reports.pop().and_then(|r| r.error);
            return Err(e.unwrap_or(Error::Usage {
                message: String::new(),
            }));
        }
    }
    let sound = reports.iter().all(|r| r.error.is_none());
    Ok(Output {
        human: remote_render::push(&reports),
        json: remote_json::push(&reports),
        sound,
        stream: None,
    })
}

/// After a successful `cairn snapshot`: push it to every remote with
/// `push_after_snapshot = true`. A failure keeps the snapshot and makes
/// the run unsound (exit 1).
pub fn after_snapshot(cfg: &Config, id: &str, output: &mut Output) {
    let names: Vec<String> = cfg
        .remotes
        .iter()
        .filter(|r| r.push_after_snapshot)
        .map(|r| r.name.clone())
        .collect();
    if names.is_empty() {
        return;
    }
    let reports = match push_all(cfg, &names, &Which::Id(id.to_owned())) {
        Ok(r) => r,
        Err(e) => vec![PushReport {
            remote: names.join(","),
            url: String::new(),
            pushed: Vec::new(),
            error: Some(e),
        }],
    };
    if reports.iter().any(|r| r.error.is_some()) {
        output.sound = false;
    }
    output.human.push_str(&remote_render::push(&reports));
    if let Some(obj) = output.json.as_object_mut() {
        obj.insert("push".into(), remote_json::push(&reports));
    }
}

pub fn list(cfg: &Config, name: &str) -> Result<Output> {
    let remote = open(cfg, name)?;
    remote.root()?;
    let ids = remote.snapshot_ids()?;
    let mut docs = Vec::new();
    for id in &ids {
        docs.push((id.to_string(), remote.doc(id.as_str())));
    }
    Ok(Output {
        human: remote_render::list(&remote, &docs),
        json: remote_json::list(&remote, &docs),
        sound: true,
        stream: None,
    })
}

pub fn show(cfg: &Config, name: &str, which: &crate::cli::IdArgs) -> Result<Output> {
    let remote = open(cfg, name)?;
    let id = one_remote_id(&remote, which.id.as_deref(), which.latest)?;
    let doc = remote.doc(id.as_str())?;
    Ok(Output {
        human: remote_render::show(&remote, &doc),
        json: remote_json::show(&remote, &doc),
        sound: true,
        stream: None,
    })
}

/// The one snapshot `id` or `--latest` names on the remote.
fn one_remote_id(remote: &Remote, id: Option<&str>, latest: bool) -> Result<SnapshotId> {
    remote_ids(remote, id, latest, false)?
        .pop()
        .ok_or_else(|| Error::NoSnapshots {
            repo: remote.config.url.clone().into(),
        })
}

fn remote_ids(
    remote: &Remote,
    id: Option<&str>,
    latest: bool,
    all: bool,
) -> Result<Vec<SnapshotId>> {
    let ids = remote.snapshot_ids()?;
    if all {
        return Ok(ids);
    }
    if latest || id.is_none() {
        let now = chrono::Utc::now();
        return ids
            .into_iter()
            .rev()
            .find(|i| !i.is_future(now))
            .map(|i| vec![i])
            .ok_or_else(|| Error::NoSnapshots {
                repo: remote.config.url.clone().into(),
            });
    }
    Ok(vec![SnapshotId::parse(id.unwrap_or_default())?])
}

pub fn validate(cfg: &Config, name: &str, args: &ValidateArgs) -> Result<Output> {
    let remote = open(cfg, name)?;
    let read = match (&args.subset, args.read_data) {
        (Some(share), _) => ReadData::Subset(Subset {
            n: share.n(),
            t: share.t(),
        }),
        (None, true) => ReadData::All,
        (None, false) => ReadData::No,
    };
    let ids = remote_ids(&remote, args.id.as_deref(), args.latest, args.all)?;
    let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
    let results = cairn_remote::check::validate(&remote, &ids, read)?;
    let sound = results.iter().all(|r| r.valid());
    Ok(Output {
        human: remote_render::validate(&remote, &results, read),
        json: remote_json::validate(&remote, &results),
        sound,
        stream: None,
    })
}

pub fn pull_cmd(cfg: &Config, stores: &Stores, args: &PullArgs) -> Result<Output> {
    let remote = open(cfg, &args.remote)?;
    let id = one_remote_id(&remote, args.id.as_deref(), args.latest)?;
    let repo = Repository::new(&cfg.repository);
    let _lock = repo.lock(cfg.lock_wait)?;
    let started = Instant::now();
    let out = cairn_remote::pull::pull(&remote, &repo, stores, &id)?;
    Ok(Output {
        human: remote_render::pull(&remote, &out, started.elapsed().as_secs_f64()),
        json: remote_json::pull(&remote, &out, started.elapsed().as_secs_f64()),
        sound: true,
        stream: None,
    })
}

/// `restore ID --remote NAME`: the snapshot is pulled into the local
/// repository (verified, deep-validated) unless it is there already,
/// then restored like any local snapshot, through every gate.
pub fn restore_cmd(
    cfg: &Config,
    stores: &Stores,
    name: &str,
    args: &RestoreArgs,
    restore_local: impl FnOnce() -> Result<Output>,
) -> Result<Output> {
    // After the pull, the local restore resolves the id again: `--latest`
    // there could name a newer local snapshot than the one pulled.
    let Some(id) = args.id.as_deref() else {
        return Err(Error::Usage {
            message: format!(
                "restore --remote {name} needs the snapshot's id, not --latest (`cairn list --remote {name}` lists them)"
            ),
        });
    };
    let remote = open(cfg, name)?;
    let id = SnapshotId::parse(id)?;
    let repo = Repository::new(&cfg.repository);
    let started = Instant::now();
    let pulled = {
        let _lock = repo.lock(cfg.lock_wait)?;
        cairn_remote::pull::pull(&remote, &repo, stores, &id)?
    };
    let pull_seconds = started.elapsed().as_secs_f64();
    let mut output = restore_local()?;
    output.human = format!(
        "{}{}",
        remote_render::pull(&remote, &pulled, pull_seconds),
        output.human
    );
    if let Some(obj) = output.json.as_object_mut() {
        obj.insert(
            "pull".into(),
            remote_json::pull(&remote, &pulled, pull_seconds),
        );
    }
    Ok(output)
}

/// `drill --remote NAME`: pull into a private repository under the local
/// repository's `tmp/`, drill from it, remove it. The RTO reported
/// includes the download.
pub fn drill_cmd(cfg: &Config, stores: &Stores, name: &str, args: &DrillArgs) -> Result<Output> {
    let remote = open(cfg, name)?;
    let id = one_remote_id(&remote, args.id.as_deref(), args.latest)?;
    let repo = Repository::new(&cfg.repository);
    repo.ensure_layout()?;
    let area = repo.tmp_dir().join(format!(
        "remote-drill-{}",
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
    ));
    let _cleanup = RemoveOnDrop(area.clone());
    let scratch_repo = Repository::new(&area);
    let started = Instant::now();
    let pulled = {
        let _lock = scratch_repo.lock(cfg.lock_wait)?;
        cairn_remote::pull::pull(&remote, &scratch_repo, stores, &id)?
    };
    let pull_seconds = started.elapsed().as_secs_f64();
    let mut from_remote = cfg.clone();
    from_remote.repository = area.clone();
    let report = cairn_engine::drill::run(
        &from_remote,
        stores,
        DrillRequest {
            id: Some(id.to_string()),
            scratch: args.scratch.clone(),
            keep: args.keep,
        },
    )?;
    let rto = started.elapsed().as_secs_f64();
    let mut human = remote_render::pull(&remote, &pulled, pull_seconds);
    human.push_str(&crate::render::drill(&report));
    human.push_str(&format!(
        "RTO from off-site: {rto:.1}s (download and rebuild {pull_seconds:.1}s, restore and checks {:.1}s)\n",
        rto - pull_seconds
    ));
    let mut json = crate::json::drill(&report);
    if let Some(obj) = json.as_object_mut() {
        obj.insert("remote".into(), remote.config.name.clone().into());
        obj.insert(
            "pull".into(),
            remote_json::pull(&remote, &pulled, pull_seconds),
        );
        obj.insert("download_seconds".into(), pull_seconds.into());
        obj.insert("rto_seconds".into(), rto.into());
    }
    Ok(Output {
        human,
        json,
        sound: report.ok,
        stream: None,
    })
}

struct RemoveOnDrop(std::path::PathBuf);
impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn prune_cmd(
    cfg: &Config,
    name: &str,
    confirm: bool,
    allow_empty_policy: bool,
) -> Result<Output> {
    let remote = open(cfg, name)?;
    let policy = remote
        .config
        .retention
        .clone()
        .unwrap_or_else(|| cfg.retention.clone());
    let plan = cairn_remote::gc::prune(&remote, &policy, confirm, allow_empty_policy)?;
    Ok(Output {
        human: remote_render::prune(&remote, &plan),
        json: remote_json::prune(&remote, &plan),
        sound: plan.damaged.is_empty(),
        stream: None,
    })
}
