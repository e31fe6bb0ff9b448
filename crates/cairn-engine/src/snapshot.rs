//! The Snapshot stage of the pipeline.
//!
//! A snapshot is built in `tmp/<ID>`, synced, its manifest written and
//! synced, and only then renamed into `snapshots/<ID>`: a crash at any point
//! leaves either a complete snapshot or a leftover in `tmp/` that `list`
//! never shows and `prune` removes.

use std::fs;
use std::path::Path;

use chrono::{DateTime, Utc};

use crate::capture::CaptureCtx;
use crate::config::Config;
use crate::dirfd::{self, DirFd};
use crate::error::{io_at, Error, Result};
use crate::hooks;
use crate::lock::FileLock;
use crate::manifest::{Manifest, Shape, StoreRecord, StoreStatus, FORMAT_VERSION};
use crate::parent::{Parent, ParentManifest};
use crate::plugin::{PluginDescriptor, StoreHandler};
use crate::problem::{codes, Problem};
use crate::repo::{Repository, STORES_DIR};
use crate::share::Subset;
use crate::stores::{Store, Stores};
use crate::validate::{self, KindCheck, Reading, ValidationReport};
use crate::{fsutil, Depth};

#[derive(Debug, Default)]
pub struct SnapshotRequest {
    /// Only these stores; empty means every configured store.
    pub only: Vec<String>,
    /// Leave these stores out.
    pub skip: Vec<String>,
    /// The snapshot's time (default: now).
    pub at: Option<DateTime<Utc>>,
    pub tags: Vec<String>,
    /// Read every source byte, reusing nothing from the parent.
    pub full: bool,
    /// Accept an `at` in the future.
    pub allow_future: bool,
}

#[derive(Debug)]
pub struct SnapshotOutcome {
    pub snapshot: SnapshotSummary,
    pub validation: ValidationReport,
    /// The `after_snapshot` hook failed (the snapshot itself is kept).
    pub after_hook_error: Option<String>,
}

/// The new snapshot as `cairn snapshot` reports it: its manifest without
/// the entries. Those are tens of MiB for a large tree, and the validation
/// that follows reads its own copy from disk; holding both doubled the
/// peak memory.
#[derive(Debug)]
pub struct SnapshotSummary {
    pub id: String,
    pub created_at: DateTime<Utc>,
    pub tags: Vec<String>,
    pub stores: Vec<StoreSummary>,
}

#[derive(Debug)]
pub struct StoreSummary {
    pub name: String,
    pub kind: String,
    pub status: StoreStatus,
    pub files: usize,
    pub bytes: u64,
    pub warnings: Vec<String>,
}

impl SnapshotSummary {
    pub fn total_bytes(&self) -> u64 {
        self.stores
            .iter()
            .map(|s| s.bytes)
            .fold(0, u64::saturating_add)
    }

    fn of(manifest: Manifest) -> Self {
        SnapshotSummary {
            stores: manifest
                .stores
                .into_iter()
                .map(|s| StoreSummary {
                    files: s.files(),
                    bytes: s.bytes(),
                    name: s.name,
                    kind: s.kind,
                    status: s.status,
                    warnings: s.warnings,
                })
                .collect(),
            id: manifest.id,
            created_at: manifest.created_at,
            tags: manifest.tags,
        }
    }
}

/// The stores one capture covers, with the handlers the command built.
pub(crate) struct Plan<'a> {
    stores: Vec<&'a Store>,
    at: DateTime<Utc>,
    tags: Vec<String>,
    restore_of: Option<String>,
    /// For pre-restore snapshots: a live store that does not exist yet is
    /// recorded absent rather than failing the restore.
    missing_is_absent: bool,
    /// For pre-restore snapshots: stores that did not exist before the
    /// restore (staging may have created their directory since), recorded
    /// absent so the way back removes them instead of emptying them.
    absent_before: Vec<String>,
    /// Hard-link unchanged files from the latest snapshot of each store.
    reuse_parent: bool,
    /// Whether the build is published (see [`Publish`]).
    publish: Publish,
    /// Warnings recorded in a store's record from the start (an import's
    /// findings about the legacy files), by store name.
    notes: Vec<(String, String)>,
    /// The new snapshot re-reads 1/`verify_rotation` of the copies it
    /// reuses (`verify_rotation` in the config).
    verify_rotation: u32,
    /// Re-read every byte of the new snapshot, reused or not: the way
    /// back of a restore is read in full before anything is swapped.
    read_all: bool,
}

/// What happens to a build once every store is captured and validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Publish {
    /// Always (a snapshot is kept whatever its validation found).
    Always,
    /// Only when validation found nothing (an import without leave to
    /// import damaged snapshots).
    IfSound,
    /// Never: built and validated, then removed (an import's dry run).
    Never,
}

impl<'a> Plan<'a> {
    pub(crate) fn new(
        stores: Vec<&'a Store>,
        at: Option<DateTime<Utc>>,
        tags: Vec<String>,
    ) -> Result<Self> {
        for tag in &tags {
            if tag.is_empty() || tag.len() > 128 || tag.chars().any(|c| c.is_control() || c == ',')
            {
                return Err(Error::BadTag { tag: tag.clone() });
            }
        }
        Ok(Plan {
            stores,
            at: at.unwrap_or_else(Utc::now),
            tags,
            restore_of: None,
            missing_is_absent: false,
            absent_before: Vec::new(),
            reuse_parent: true,
            publish: Publish::Always,
            notes: Vec::new(),
            verify_rotation: crate::config::DEFAULT_VERIFY_ROTATION,
            read_all: false,
        })
    }

    /// Re-read 1/`rotation` of the reused copies (1: all of them).
    pub(crate) fn verify_rotation(mut self, rotation: u32) -> Self {
        self.verify_rotation = rotation.max(1);
        self
    }

    /// An import of a legacy snapshot: read every byte, publish as asked,
    /// and start each named store's record with these warnings.
    pub(crate) fn import(mut self, publish: Publish, notes: Vec<(String, String)>) -> Self {
        self.reuse_parent = false;
        self.publish = publish;
        self.notes = notes;
        self
    }

    /// Reads every source byte instead of reusing unchanged files.
    pub(crate) fn full(mut self, full: bool) -> Self {
        self.reuse_parent = !full;
        self
    }

    /// A safety snapshot taken by restore before it swaps anything in;
    /// `absent_before` names the stores that did not exist when the
    /// restore was planned.
    pub(crate) fn pre_restore(mut self, restore_of: &str, absent_before: Vec<String>) -> Self {
        self.restore_of = Some(restore_of.to_owned());
        self.missing_is_absent = true;
        self.absent_before = absent_before;
        self.read_all = true;
        self
    }
}

/// `cairn snapshot`: hooks around a locked capture, then a deep validation.
pub fn run(cfg: &Config, stores: &Stores, req: SnapshotRequest) -> Result<SnapshotOutcome> {
    crate::id::check_at(req.at, Utc::now(), req.allow_future)?;
    let selected = stores.select(&req.only, &req.skip)?;
    let plan = Plan::new(selected, req.at, req.tags)?
        .full(req.full)
        .verify_rotation(cfg.verify_rotation);
    let repo = Repository::new(&cfg.repository);

    let result = (|| {
        let lock = repo.lock(cfg.lock_wait)?;
        if let Some(argv) = &cfg.hooks.before_snapshot {
            hooks::run("before_snapshot", argv)?;
        }
        crate::cancel::check()?;
        capture_validated(&repo, &lock, &plan)
    })();

    let after_hook_error = match &cfg.hooks.after_snapshot {
        // Runs even when the snapshot failed: it typically restarts the
        // service that before_snapshot stopped.
        Some(argv) => hooks::run("after_snapshot", argv)
            .err()
            .map(|e| e.to_string()),
        None => None,
    };
    let (snapshot, validation) = result?;
    Ok(SnapshotOutcome {
        snapshot,
        validation,
        after_hook_error,
    })
}

/// Captures and deep-validates a new snapshot, under the caller's lock so
/// nothing can prune it meanwhile.
///
/// Each store is validated as soon as its capture is complete, while the
/// other stores may still be copying: its files are final (nothing writes
/// a snapshot file twice, and publishing only renames the directory), so
/// this is the same check `cairn validate` makes, every byte re-read from
/// the snapshot, overlapped with the rest of the work instead of after it.
/// Once published, the manifest's bytes are read back from disk and must
/// be the ones serialized from the manifest the stores were checked
/// against (they hash to its digest), and the snapshot's top level is
/// checked. The result is recorded beside the manifest, as
/// `cairn validate` records its own. Restore's pre-restore snapshot is
/// made the same way: the way back is known restorable before anything is
/// swapped.
pub(crate) fn capture_validated(
    repo: &Repository,
    _lock: &FileLock,
    plan: &Plan<'_>,
) -> Result<(SnapshotSummary, ValidationReport)> {
    let (summary, report, _) = capture_checked(repo, plan)?;
    Ok((summary, report))
}

/// [`capture_validated`] for a plan that may not publish: also says
/// whether the snapshot was published. Unpublished, the report holds what
/// the stores' validation found, and nothing is left in the repository.
pub(crate) fn capture_checked(
    repo: &Repository,
    plan: &Plan<'_>,
) -> Result<(SnapshotSummary, ValidationReport, bool)> {
    let Built {
        manifest,
        problems: store_problems,
        rotation,
        published,
    } = create(repo, plan, true)?;
    let id = crate::SnapshotId::parse(&manifest.id)?;
    let Some(written) = published else {
        return Ok((
            SnapshotSummary::of(manifest),
            ValidationReport::new(&id, store_problems),
            false,
        ));
    };
    // The manifest must be one `cairn validate` accepts: its shape is
    // checked as a reader checks it.
    let shape = manifest
        .check_shape(id.as_str())
        .err()
        .map(|detail| Problem::new(codes::MANIFEST_INVALID, detail).at(crate::manifest::FILE_NAME));
    let summary = SnapshotSummary::of(manifest);
    let captured: std::collections::BTreeSet<&str> = summary
        .stores
        .iter()
        .filter(|s| s.status == StoreStatus::Captured)
        .map(|s| s.name.as_str())
        .collect();
    // The published file's bytes must be the ones serialized: they hash
    // to the digest written. A byte check, not a second parse of every
    // entry (at 100,000 files a parse is a quarter of a second, and the
    // parsed copy held beside the summary doubled the memory).
    let dir = repo.snapshot_dir(&id);
    let mut problems: Vec<Problem> = shape.into_iter().collect();
    match Manifest::digest_as_written(&dir) {
        Ok(on_disk) if on_disk == written => {
            problems.extend(validate::check_layout_of(&dir, &captured))
        }
        Ok(on_disk) => problems.push(
            Problem::new(
                codes::MANIFEST_DIGEST_MISMATCH,
                format!(
                    "the manifest on disk (digest {on_disk}) is not the one this snapshot wrote ({written})"
                ),
            )
            .at(crate::manifest::FILE_NAME),
        ),
        Err(p) => problems.push(p),
    };
    problems.extend(store_problems);
    validate::write_record_read(
        &dir,
        Depth::Deep,
        &problems,
        validate::RecordRead {
            subset: None,
            rotation: Some(rotation),
        },
    );
    Ok((summary, ValidationReport::new(&id, problems), true))
}

/// Allocates the id and builds the snapshot; a failure leaves nothing
/// behind in `tmp/`. With `verify`, also returns each store's validation
/// problems.
fn create(repo: &Repository, plan: &Plan<'_>, verify: bool) -> Result<Built> {
    repo.ensure_layout()?;
    let id = repo.allocate_id(plan.at)?;
    let build = repo.tmp_dir().join(id.as_str());
    fsutil::create_dir_private(&build)?;
    let result = build_snapshot(repo, &build, &id, plan, verify);
    if !matches!(
        result,
        Ok(Built {
            published: Some(_),
            ..
        })
    ) {
        // Best effort: a leftover would be removed by prune anyway.
        let _ = fsutil::remove_any(&build);
    }
    result
}

/// A built snapshot: its manifest, what validating its stores found, the
/// share of reused copies that validation re-read, and the digest of the
/// manifest published (`None`: not published, see [`Publish`]; `create`
/// then removes it).
struct Built {
    manifest: Manifest,
    problems: Vec<Problem>,
    rotation: Subset,
    published: Option<crate::checksum::Checksum>,
}

fn build_snapshot(
    repo: &Repository,
    build: &Path,
    id: &crate::SnapshotId,
    plan: &Plan<'_>,
    verify: bool,
) -> Result<Built> {
    let stores_dir = build.join(STORES_DIR);
    fsutil::create_dir_private(&stores_dir)?;

    let newest = latest_manifest(repo);
    // The rotation goes on from the newest snapshot's share, reused from
    // or not (a --full snapshot still counts: it re-read everything).
    let rotation = next_rotation(
        newest
            .as_ref()
            .and_then(|(id, _)| validate::last_validation(repo, id))
            .and_then(|r| r.rotation),
        plan.verify_rotation,
    );
    let reading_all = plan.read_all;
    let mut latest = if plan.reuse_parent { newest } else { None };
    // Set up every store in config order (absent ones are decided here),
    // then capture them all at once: an SQLite online copy runs on one
    // core, so a tree copied beside it uses the others, and the stores'
    // capture times overlap instead of adding up.
    let mut records = Vec::with_capacity(plan.stores.len());
    let mut jobs = Vec::new();
    for built in &plan.stores {
        let store = &built.config;
        let record = StoreRecord {
            name: store.name.clone(),
            kind: store.kind.clone(),
            source: store.path.to_string_lossy().into_owned(),
            status: StoreStatus::Absent,
            shape: built.descriptor.shape,
            metadata: Default::default(),
            options: store.options.clone(),
            root: None,
            warnings: Vec::new(),
            entries: Vec::new(),
        };
        if plan.absent_before.contains(&store.name) {
            records.push(record);
            continue;
        }
        // The configured path is resolved once, safely (a symlink only
        // where no one but root or the invoker could have planted it), and
        // the store is read through the descriptors held from here on.
        let Some(resolved) = dirfd::resolve_existing(&store.path, store.follow_symlink)
            .map_err(|e| e.in_store(&store.name))?
        else {
            if store.optional || plan.missing_is_absent {
                tracing::info!(store = %store.name, source = %store.path.display(), "source absent; recorded as absent");
                records.push(record);
                continue;
            }
            return Err(Error::SourceMissing {
                path: store.path.clone(),
            }
            .in_store(&store.name));
        };
        let source_dir = match built.descriptor.shape {
            Shape::Dir if resolved.stat.as_ref().is_some_and(dirfd::is_dir) => {
                Some(resolved.open_dir().map_err(|e| e.in_store(&store.name))?)
            }
            _ => None,
        };
        let mut warnings: Vec<String> = plan
            .notes
            .iter()
            .filter(|(name, _)| *name == store.name)
            .map(|(_, note)| note.clone())
            .collect();
        if let Some(open) = &resolved.parent_open_to_others {
            warnings.push(format!(
                "{} can be changed by users other than root and you, so the store could be swapped for a link between runs; Cairn never follows one there, but consider a path only root controls",
                open.display()
            ));
        }
        let dest = stores_dir.join(&store.name);
        fsutil::create_dir_private(&dest)?;
        let parent = latest
            .as_mut()
            .and_then(|(id, m)| m.take_store(repo, id, &store.name, &store.kind, &mut warnings));
        jobs.push(CaptureJob {
            slot: records.len(),
            record: record.clone(),
            descriptor: built.descriptor,
            handler: built.handler(),
            source: match &source_dir {
                Some(dir) => dir.fd_path(""),
                None => resolved.fd_path(),
            },
            shown: store.path.clone(),
            source_dir,
            _resolved: resolved,
            warnings,
            dest,
            parent,
        });
        records.push(record);
    }
    drop(latest);

    // A total that grows as the walks queue files (`progress::grow`).
    crate::progress::begin("snapshot", Some(0));
    let slots: Vec<usize> = jobs.iter().map(|job| job.slot).collect();
    let captured = crate::parallel::each_on_its_own_thread(
        jobs,
        |job| job.run(verify.then_some(if reading_all { None } else { Some(rotation) })),
        |i| {
            Err(Error::Plugin {
                message: "the capture panicked".into(),
            }
            .in_store(&records[slots[i]].name))
        },
    );
    // The first failure in config order is the one reported.
    let mut problems = Vec::new();
    for (slot, result) in slots.into_iter().zip(captured) {
        let (record, found) = result?;
        records[slot] = record;
        problems.extend(found);
    }

    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        id: id.to_string(),
        created_at: plan.at,
        tool_version: env!("CARGO_PKG_VERSION").to_owned(),
        host: hostname(),
        tags: plan.tags.clone(),
        restore_of: plan.restore_of.clone(),
        stores: records,
    };

    let publish = match plan.publish {
        Publish::Always => true,
        Publish::IfSound => problems.is_empty(),
        Publish::Never => false,
    };
    if !publish {
        // `create` removes the build.
        crate::progress::finish();
        return Ok(Built {
            manifest,
            problems,
            rotation,
            published: None,
        });
    }
    // Durability order: every copied byte and directory entry reaches the
    // disk, then the manifest (synced), then the build directory, then the
    // rename that publishes the snapshot, then its parent directory.
    crate::progress::finish();
    let started = std::time::Instant::now();
    fsutil::sync_filesystem(build)?;
    let digest = manifest.write_to(build)?;
    fsutil::sync_dir(build)?;
    // The last safe point: a signal during validation (whose reads then
    // failed) must not publish the snapshot.
    crate::cancel::check()?;
    let final_dir = repo.snapshot_dir(id);
    fs::rename(build, &final_dir).map_err(io_at("publish snapshot", &final_dir))?;
    fsutil::sync_dir(&repo.snapshots_dir())?;
    tracing::info!(id = %id, elapsed_ms = started.elapsed().as_millis() as u64, "synced and published");
    Ok(Built {
        manifest,
        problems,
        rotation,
        published: Some(digest),
    })
}

/// The share of reused copies the next snapshot re-reads: the one after
/// `last`'s, so R snapshots in a row re-read every share of R once. A
/// changed `verify_rotation` starts its rotation where the count stood.
fn next_rotation(last: Option<Subset>, verify_rotation: u32) -> Subset {
    let of = verify_rotation.clamp(1, crate::share::MAX_SHARES);
    let n = match last {
        Some(last) => last.n() % of + 1,
        None => 1,
    };
    Subset::new(n, of).unwrap_or_else(Subset::whole)
}

/// A store's record as its capture filled it in, and what validating it
/// found (nothing when not asked to validate).
type CapturedStore = (StoreRecord, Vec<Problem>);

/// One store to capture, set up and ready to run on its own thread.
struct CaptureJob<'p> {
    /// Its record's index in the manifest (config order).
    slot: usize,
    /// The record so far (no entries yet); `run` fills it in.
    record: StoreRecord,
    descriptor: &'static PluginDescriptor,
    handler: &'p dyn StoreHandler,
    /// The store as the plug-in reads it: through a held descriptor.
    source: std::path::PathBuf,
    /// The configured path, for messages.
    shown: std::path::PathBuf,
    source_dir: Option<DirFd>,
    /// Holds the descriptor `source` goes through.
    _resolved: dirfd::Resolved,
    /// Found while resolving the path, before the capture.
    warnings: Vec<String>,
    dest: std::path::PathBuf,
    parent: Option<Parent>,
}

impl CaptureJob<'_> {
    /// Captures the store; with `verify`, then validates what it captured
    /// (see [`capture_validated`]): every copy written re-read, and of the
    /// copies reused from the parent the rotation's share (`Some(share)`)
    /// or all of them (`Some(None)`).
    fn run(self, verify: Option<Option<Subset>>) -> Result<CapturedStore> {
        let mut record = self.record;
        let started = std::time::Instant::now();
        let mut ctx = CaptureCtx::new(
            &record.name,
            &self.source,
            &self.shown,
            self.source_dir,
            self.dest.clone(),
            self.parent,
        );
        for warning in self.warnings {
            ctx.warn(warning);
        }
        let captured = self
            .handler
            .snapshot(&mut ctx)
            .and_then(|()| ctx.finish())
            .map_err(|e| e.in_store(&record.name))?;
        if self.descriptor.shape == Shape::File && captured.entries.len() != 1 {
            return Err(Error::Plugin {
                message: format!(
                    "plug-in {} captured {} entries for a single-file store",
                    self.descriptor.kind,
                    captured.entries.len()
                ),
            }
            .in_store(&record.name));
        }
        tracing::info!(
            store = %record.name,
            kind = %self.descriptor.kind,
            entries = captured.entries.len(),
            reused_bytes = captured.reused_bytes,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "captured"
        );
        record.status = StoreStatus::Captured;
        record.entries = captured.entries;
        record.metadata = captured.metadata;
        record.warnings = captured.warnings;
        record.root = captured.root;
        let Some(rotation) = verify else {
            return Ok((record, Vec::new()));
        };
        // The disk writes this store's copies while the CPU re-reads them
        // from the page cache; the sync before publishing then finds them
        // done. Only an overlap: that later sync is still what makes the
        // snapshot durable, so the result here does not matter.
        let dest = &self.dest;
        let problems = std::thread::scope(|scope| {
            scope.spawn(|| fsutil::sync_filesystem(dest));
            match rotation {
                None => validate::check_store(self.handler, dest, &record, Depth::Deep),
                Some(share) => validate::check_store_reading(
                    self.handler,
                    dest,
                    &record,
                    Reading::NewSnapshot {
                        reused: &captured.reused,
                        share,
                    },
                    KindCheck::UnlessAllReused {
                        parent_clean: captured.parent_clean,
                    },
                ),
            }
        });
        Ok((record, problems))
    }
}

/// The newest snapshot's id and, when its manifest reads and checks, its
/// parent index (streamed: see `parent`).
fn latest_manifest(repo: &Repository) -> Option<(crate::SnapshotId, ParentManifest)> {
    let ids = repo.list().ok()?.ids;
    let id = ids.last()?.clone();
    let manifest = ParentManifest::read(repo, &id)?;
    Some((id, manifest))
}

fn hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::lstat;

    /// A kind whose capture leaves its store unlike the entries it
    /// recorded: the copied file's bytes change after they were hashed,
    /// and a file nobody listed appears. Stands for a plug-in bug or a
    /// disk that does not keep what was written.
    static TAMPER: PluginDescriptor = PluginDescriptor {
        kind: "tamper",
        summary: "test kind that damages its own capture",
        shape: Shape::Dir,
        example_path: "\"x\"",
        options: &[],
        build: |_| Ok(Box::new(Tamper)),
        origin: module_path!(),
    };

    struct Tamper;

    impl StoreHandler for Tamper {
        fn snapshot(&self, ctx: &mut CaptureCtx<'_>) -> Result<()> {
            let src = ctx.source().join("a.txt");
            ctx.copy_file(&src, "a.txt", &lstat(&src)?)?;
            let copy = ctx.dest_path("a.txt");
            fs::remove_file(&copy).map_err(io_at("remove", &copy))?;
            fs::write(&copy, b"XXXX").map_err(io_at("write", &copy))?;
            let stray = ctx.dest_path("stray");
            fs::write(&stray, b"?").map_err(io_at("write", &stray))
        }
    }

    #[test]
    fn the_snapshots_own_validation_reports_bytes_that_changed_after_capture() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("live")).unwrap();
        fs::write(dir.path().join("live/a.txt"), b"abcd").unwrap();
        let config = Config::parse(
            "repository = \"repo\"\n[[store]]\nname = \"t\"\nkind = \"tamper\"\npath = \"live\"\n",
            &dir.path().join("cairn.toml"),
        )
        .unwrap();
        let registry = crate::plugin::Registry::from_descriptors([&TAMPER]).unwrap();
        let stores = Stores::build(&config, registry).unwrap();

        let outcome = run(&config, &stores, SnapshotRequest::default()).unwrap();
        let codes = |problems: &[Problem]| {
            let mut found: Vec<(String, String)> = problems
                .iter()
                .map(|p| (p.code.to_owned(), p.path.clone().unwrap_or_default()))
                .collect();
            found.sort();
            found
        };
        let expected = vec![
            ("file_checksum_mismatch".to_owned(), "a.txt".to_owned()),
            ("file_unexpected".to_owned(), "stray".to_owned()),
        ];
        assert!(!outcome.validation.valid);
        assert_eq!(codes(&outcome.validation.errors), expected);
        assert_eq!(outcome.snapshot.stores[0].files, 1);

        // The snapshot is kept, and `validate` finds the same.
        let repo = Repository::new(&config.repository);
        let id = crate::SnapshotId::parse(&outcome.snapshot.id).unwrap();
        let (report, _) = validate::validate_snapshot(&repo, &stores, &id, Depth::Deep);
        assert_eq!(codes(&report.errors), expected);
    }
}
