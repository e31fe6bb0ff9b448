//! The command line, as clap derives it.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

pub const EXIT_CODES: &str = "\
Exit codes:
  0  done, and everything checked was sound
  1  ran, and something checked was not sound (invalid snapshot, failed drill, restore rolled back,
     damage repair could not fix, cat of a copy that does not match its manifest)
  2  bad usage or bad config (the message names the flag, key or file)
  3  refused by a safety gate before anything was touched (no --confirm-service-stopped,
     snapshot invalid before restore, service still running, repository busy, a remote's lock held,
     damaged data on a remote)
  4  an I/O or system error stopped the run (the message names the path; for a remote that cannot
     be reached, the remote and its URL, never a credential; a report that could not be written
     to standard output, e.g. a full disk under --json > file; a reader that stops reading,
     as head does, is not an error)
  130  stopped by SIGINT at a safe point (snapshot, restore, prune, drill): after_snapshot ran,
     work directories removed, lock released; a restore's swaps finish first
  143  stopped by SIGTERM, the same way
  129  stopped by SIGHUP (the terminal or SSH session went away), the same way";

/// `cairn --version`: the crate version and the git commit built from
/// ("unknown" when built outside a git checkout; see build.rs).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("CAIRN_GIT_COMMIT"),
    ")"
);

#[derive(Debug, Parser)]
#[command(
    name = "cairn",
    version = VERSION,
    about = "Consistent, checksummed backups of a service's SQLite, JSON and directory stores; safe restores; retention; restore drills.",
    long_about = "Consistent, checksummed backups of a service's SQLite, JSON and directory stores; safe restores; retention; restore drills.\n\n\
        Monitoring (cairn.toml [monitoring]): ping_url is pinged at <url>/start, <url> on success and <url>/fail on failure \
        for ping_commands (default snapshot, push, drill, validate, prune), each bounded by ping_timeout_seconds (default 5); \
        textfile is a Prometheus textfile (cairn_last_success_timestamp_seconds{command,store}, cairn_snapshot_bytes{store}, \
        cairn_drill_ok, cairn_drill_restore_seconds, cairn_snapshot_age_seconds, cairn_validate_problems); on_success and \
        on_failure are argv hooks run after every command with CAIRN_COMMAND, CAIRN_RESULT, CAIRN_EXIT_CODE, CAIRN_MESSAGE, \
        CAIRN_SNAPSHOT_ID, killed after hook_timeout_seconds (default 60). None of it changes the exit code.",
    after_help = EXIT_CODES,
    propagate_version = true
)]
pub struct Cli {
    /// The config file [default: $CAIRN_CONFIG, else ./cairn.toml (not as root)]
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Read this repository directly, without a config file (list, show, ls,
    /// cat, diff, stats, validate only; it must be owned by root or by you)
    #[arg(long, global = true, value_name = "PATH")]
    pub repo: Option<PathBuf>,

    /// Print one JSON document on stdout and nothing else
    #[arg(long, global = true)]
    pub json: bool,

    /// Print nothing but errors (and the JSON document with --json)
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    /// Log what each stage does, per store, with durations, to stderr
    #[arg(short, long, global = true)]
    pub verbose: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Snapshot the configured stores, then validate the new snapshot
    Snapshot(SnapshotArgs),
    /// List every snapshot, oldest first, with its last validation and a problem column for damaged ones
    List {
        /// List the snapshots on this [[remote]] instead
        #[arg(long, value_name = "NAME")]
        remote: Option<String>,
    },
    /// Summarize one snapshot's manifest (the whole manifest with --json)
    Show(ShowArgs),
    /// List a snapshot's entries (type, mode, size, mtime, path), all or at/under STORE[/PATH]
    #[command(
        override_usage = "cairn ls <ID> [STORE[/PATH]]\n       cairn ls --latest [STORE[/PATH]]"
    )]
    Ls(BrowseArgs),
    /// Write one file of a snapshot to stdout, verified against its manifest's SHA-256 as it streams
    ///
    /// The bytes are written as they are read and checked at the end: a copy
    /// that does not match its manifest makes cat stop with
    /// file_checksum_mismatch (or file_size_mismatch) and exit 1, after
    /// part of it (or all of it) has been written. Whoever reads the output
    /// must check the exit status before using it, e.g. `cairn cat ID
    /// db/app.db > app.db || rm -f app.db`; under `set -o pipefail` a pipe
    /// fails too. A name may be given as its exact bytes or as `ls` prints it.
    #[command(
        override_usage = "cairn cat <ID> <STORE/PATH>\n       cairn cat --latest <STORE/PATH>"
    )]
    Cat(BrowseArgs),
    /// What changed between two snapshots: entries added, removed, changed; SQLite row counts per table
    #[command(
        override_usage = "cairn diff <A> <B> [--stores A,B]\n       cairn diff <A> --latest\n       cairn diff --latest   (the snapshot before the latest against the latest)"
    )]
    Diff(DiffArgs),
    /// Space on disk: apparent size and bytes on disk (hard links counted once), per snapshot and in total
    Stats,
    /// Upload snapshots to the off-site [[remote]]s: only chunks a remote lacks are sent
    ///
    /// Resumable: a push stopped at any moment (killed, network gone)
    /// leaves no snapshot visible on the remote and loses nothing already
    /// sent; running it again sends only what is missing. Each file is
    /// checked against the manifest's SHA-256 as it is read: a damaged
    /// local copy is never pushed (exit 3).
    Push(PushArgs),
    /// Rebuild a snapshot from a [[remote]] into the local repository, every byte verified
    Pull(PullArgs),
    /// Check snapshots against their manifests and each plug-in's own checks
    Validate(ValidateArgs),
    /// Restore a snapshot into the live paths (or elsewhere with --to)
    Restore(RestoreArgs),
    /// Apply the retention policy (a dry run unless --confirm)
    ///
    /// `[retention]` keys: keep_daily, keep_weekly (a missed Sunday: that
    /// week's newest), keep_monthly (a missed 1st: that month's oldest),
    /// keep_last, keep_within ("14d"; units h, d, w, m, y; counted from the
    /// newest snapshot), keep_tag (["release"]), keep_pre_restore_days.
    /// Every kept snapshot lists its reasons.
    Prune {
        /// Delete what the plan says (without it, only print the plan)
        #[arg(long)]
        confirm: bool,
        /// Prune this [[remote]] instead: its retention ([remote.retention],
        /// else [retention]), then packs no kept snapshot needs and older
        /// than the grace period (gc_grace_hours, default 24), under the
        /// remote's lock
        #[arg(long, value_name = "NAME")]
        remote: Option<String>,
        /// Allow a policy that keeps nothing (every keep_* is 0, nothing pinned)
        #[arg(long)]
        allow_empty_policy: bool,
    },
    /// Exempt a snapshot from pruning
    Pin(IdArgs),
    /// Make a pinned snapshot prunable again
    Unpin(IdArgs),
    /// Restore into a scratch directory, run every check, report timings; touches nothing live
    ///
    /// Checks: every file against the manifest, each kind's own (SQLite integrity_check and row
    /// counts), a sqlite store's drill_checks (read-only queries, `expect = "…"` or `expect_live =
    /// true`), then a store's drill_command (argv, no shell; `{path}` and $CAIRN_DRILL_PATH are the
    /// restored copy). Exits 0 only when every check passed.
    Drill(DrillArgs),
    /// Rewrite damaged snapshot files from the live source or another intact copy, then re-verify
    ///
    /// Deep-validates the snapshot(s) under the repository lock. Each file
    /// whose bytes, size or presence differ from the manifest
    /// (file_checksum_mismatch, file_size_mismatch, file_missing) is
    /// rewritten in place from bytes proven to hash to its recorded SHA-256:
    /// the store's live file, else an intact copy in another snapshot (never
    /// one sharing the damaged inode). The same inode is rewritten, so every
    /// snapshot sharing the file by hard link is healed too, and validated
    /// again. Lists what could not be repaired and why; exits 0 when every
    /// snapshot checked is sound, 1 when something remains. Touches nothing
    /// live.
    Repair(RepairArgs),
    /// Adopt the reference system's snapshots (DIR/snapshots/<ID>/): a dry run unless --confirm
    ///
    /// Each DIR/snapshots/<YYYYMMDDTHHMMSSZ>/ with backup-metadata.json, db/<file>,
    /// config/<registry file> and an optional chroma/ becomes a Cairn snapshot with the same id,
    /// created_at from the metadata and tag `imported`: db/ goes into the config's sqlite store,
    /// config/ into its registry-json store, chroma/ into its chroma-dir store. Every byte is read
    /// and hashed into a manifest, each store validated, and the snapshot published by one rename.
    /// A damaged or partial one (missing db, unreadable metadata, SQLite integrity failure, a file
    /// that changed since the metadata) is reported, and imported only with --include-damaged
    /// (tagged import-damaged). An id already in the repository is skipped. Nothing under DIR is
    /// followed through a symlink, and the database is read from a private copy (nothing is
    /// written beside it). A dry run builds and validates each in tmp/, then removes it. Exits 1
    /// when any was damaged.
    ImportLegacy(ImportLegacyArgs),
    /// List the registered store plug-ins and their options
    Stores,
    /// Write a commented starter cairn.toml (mode 0600)
    ///
    /// Written to --path, else to --config, else to $CAIRN_CONFIG, else to
    /// ./cairn.toml: without --path, the file later commands read.
    Init {
        /// Where to write it [default: --config, else $CAIRN_CONFIG, else ./cairn.toml]
        #[arg(long, value_name = "P")]
        path: Option<PathBuf>,
    },
    /// Print a shell completion script (bash, elvish, fish, powershell, zsh)
    Completions {
        /// The shell: bash, elvish, fish, powershell or zsh
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Args)]
pub struct SnapshotArgs {
    /// Only these stores (comma-separated names)
    #[arg(long, value_delimiter = ',', value_name = "A,B")]
    pub only: Vec<String>,
    /// Leave out these stores (comma-separated names)
    #[arg(long, value_delimiter = ',', value_name = "C")]
    pub skip: Vec<String>,
    /// The snapshot's time instead of now (RFC 3339, e.g. 2026-04-06T18:00:00Z)
    #[arg(long, value_name = "RFC3339")]
    pub at: Option<String>,
    /// A tag to record (repeatable)
    #[arg(long = "tag", value_name = "T")]
    pub tags: Vec<String>,
    /// Accept an --at more than 5 minutes ahead of this machine's clock
    /// (refused by default: such a snapshot is not --latest and takes no
    /// retention slot until the clock catches up with it)
    #[arg(long, requires = "at")]
    pub allow_future: bool,
    /// Read every source byte; by default a file unchanged since the last
    /// snapshot (same size, mtime, ctime, inode, device) is hard-linked from it
    #[arg(long)]
    pub full: bool,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["id", "latest", "all"])))]
pub struct ValidateArgs {
    /// Snapshot id
    pub id: Option<String>,
    /// The newest snapshot
    #[arg(long)]
    pub latest: bool,
    /// Every snapshot
    #[arg(long)]
    pub all: bool,
    /// Sizes and quick_check instead of hashing every byte
    #[arg(long)]
    pub quick: bool,
    /// Hash only share N of T of the files (a fixed split by path; every
    /// file is still checked for presence and size, and damage found in
    /// other shares by earlier runs stays recorded): `--subset 1/7` … `7/7`
    /// over seven nights read every byte once. With --remote: read the
    /// packs of share N of T only
    #[arg(long, value_name = "N/T", conflicts_with_all = ["quick", "read_data"], value_parser = parse_subset)]
    pub subset: Option<cairn_engine::share::Subset>,
    /// Validate the snapshots on this [[remote]]: every object present with
    /// its recorded size, from listings (no data read)
    #[arg(long, value_name = "NAME", conflicts_with = "quick")]
    pub remote: Option<String>,
    /// With --remote: download every pack and hash it, and rebuild each manifest
    #[arg(long, requires = "remote")]
    pub read_data: bool,
}

/// `show`: a snapshot (an id, or --latest), local or on a remote.
#[derive(Debug, Args)]
pub struct ShowArgs {
    #[command(flatten)]
    pub which: IdArgs,
    /// Show the snapshot as this [[remote]] holds it
    #[arg(long, value_name = "NAME")]
    pub remote: Option<String>,
}

fn parse_subset(text: &str) -> Result<cairn_engine::share::Subset, String> {
    cairn_engine::share::Subset::parse(text)
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("which").args(["id", "latest", "all"])))]
pub struct PushArgs {
    /// Snapshot id [default: every local snapshot, as --all]
    pub id: Option<String>,
    /// The newest snapshot
    #[arg(long)]
    pub latest: bool,
    /// Every local snapshot not yet on the remote (the default)
    #[arg(long)]
    pub all: bool,
    /// Only this [[remote]] [default: every configured remote]
    #[arg(long, value_name = "NAME")]
    pub remote: Option<String>,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["id", "latest"])))]
pub struct PullArgs {
    /// Snapshot id on the remote
    pub id: Option<String>,
    /// The newest snapshot on the remote
    #[arg(long)]
    pub latest: bool,
    /// The [[remote]] to pull from
    #[arg(long, value_name = "NAME")]
    pub remote: String,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("which").args(["id", "latest", "all"])))]
pub struct RepairArgs {
    /// Snapshot id [default: every snapshot, as --all]
    pub id: Option<String>,
    /// The newest snapshot
    #[arg(long)]
    pub latest: bool,
    /// Every snapshot (the default)
    #[arg(long)]
    pub all: bool,
    /// Validate and find a verified source for every damaged file, but
    /// rewrite nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["id", "latest"])))]
pub struct RestoreArgs {
    /// Snapshot id
    pub id: Option<String>,
    /// The newest snapshot
    #[arg(long)]
    pub latest: bool,
    /// Only this entry of a store, and everything under it (repeatable);
    /// the rest of the store is left as it is. A name as its exact bytes
    /// or as `ls` prints it
    #[arg(long = "path", value_name = "STORE/PATH")]
    pub paths: Vec<OsString>,
    /// Confirm the service that writes the stores is stopped (required for live restores)
    #[arg(long)]
    pub confirm_service_stopped: bool,
    /// Only these stores (comma-separated names)
    #[arg(long, value_delimiter = ',', value_name = "A,B")]
    pub only: Vec<String>,
    /// Leave out these stores (comma-separated names)
    #[arg(long, value_delimiter = ',', value_name = "C")]
    pub skip: Vec<String>,
    /// Do not take the pre-restore safety snapshot (there is then no way back)
    #[arg(long)]
    pub no_pre_snapshot: bool,
    /// Restore into DIR/<store>/… instead of the live paths (a relative
    /// DIR is from the working directory)
    #[arg(long, value_name = "DIR")]
    pub to: Option<PathBuf>,
    /// Print what would be restored where, after every gate but the
    /// confirmation, and touch nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Pull the snapshot from this [[remote]] first (verified and
    /// deep-validated into the local repository; refused, exit 3, if any
    /// byte is wrong), then restore it through every gate. Not with
    /// --dry-run, which writes nothing: `cairn pull` first, then dry-run
    #[arg(long, value_name = "NAME", conflicts_with = "dry_run")]
    pub remote: Option<String>,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("which").args(["id", "latest"])))]
pub struct DrillArgs {
    /// Snapshot id [default: the latest]
    pub id: Option<String>,
    /// The newest snapshot (the default)
    #[arg(long)]
    pub latest: bool,
    /// Keep the scratch directory for inspection
    #[arg(long)]
    pub keep: bool,
    /// Where to make the scratch directory (needs room for one full copy)
    #[arg(long, value_name = "DIR")]
    pub scratch: Option<PathBuf>,
    /// Drill from this [[remote]]: pull into a temporary area, drill from
    /// it, report the RTO including the download
    #[arg(long, value_name = "NAME")]
    pub remote: Option<String>,
}

/// A snapshot named by id, or `--latest`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["id", "latest"])))]
pub struct IdArgs {
    /// Snapshot id (YYYYMMDDTHHMMSSZ[-N])
    pub id: Option<String>,
    /// The newest snapshot (not one dated in the future)
    #[arg(long)]
    pub latest: bool,
}

/// `ls` and `cat`: a snapshot (an id, or --latest) and a place in it.
#[derive(Debug, Args)]
pub struct BrowseArgs {
    /// The snapshot id (unless --latest), then STORE[/PATH]
    #[arg(value_name = "ARGS", num_args = 0..=2)]
    pub args: Vec<OsString>,
    /// The newest snapshot (not one dated in the future)
    #[arg(long)]
    pub latest: bool,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// Snapshot A, then B (unless --latest)
    #[arg(value_name = "ID", num_args = 0..=2)]
    pub ids: Vec<String>,
    /// B is the newest snapshot (with no id, A is the one before it)
    #[arg(long)]
    pub latest: bool,
    /// Only these stores (comma-separated names)
    #[arg(long, value_delimiter = ',', value_name = "A,B")]
    pub stores: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ImportLegacyArgs {
    /// The reference system's backup directory (the one holding snapshots/)
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// Import (without it, only report what would be imported)
    #[arg(long)]
    pub confirm: bool,
    /// Import damaged or partial snapshots too, tagged import-damaged
    #[arg(long)]
    pub include_damaged: bool,
}
