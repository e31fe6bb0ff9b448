//! The command line, as clap derives it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

pub const EXIT_CODES: &str = "\
Exit codes:
  0  done, and everything checked was sound
  1  ran, and something checked was not sound (invalid snapshot, failed drill, restore rolled back,
     damage repair could not fix)
  2  bad usage or bad config (the message names the flag, key or file)
  3  refused by a safety gate before anything was touched (no --confirm-service-stopped,
     snapshot invalid before restore, service still running, repository busy, a remote's lock held,
     damaged data on a remote)
  4  an I/O or system error stopped the run (the message names the path; for a remote that cannot
     be reached, the remote and its URL, never a credential)
  130  stopped by SIGINT at a safe point (snapshot, restore, prune, drill): after_snapshot ran,
     work directories removed, lock released; a restore's swaps finish first
  143  stopped by SIGTERM, the same way
  129  stopped by SIGHUP (the terminal or SSH session went away), the same way";

#[derive(Debug, Parser)]
#[command(
    name = "cairn",
    version,
    about = "Consistent, checksummed backups of a service's SQLite, JSON and directory stores; safe restores; retention; restore drills.",
    after_help = EXIT_CODES,
    propagate_version = true
)]
pub struct Cli {
    /// The config file [default: $CAIRN_CONFIG, else ./cairn.toml (not as root)]
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,

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
    Show {
        /// Snapshot id (YYYYMMDDTHHMMSSZ[-N])
        id: String,
        /// Show the snapshot as this [[remote]] holds it
        #[arg(long, value_name = "NAME")]
        remote: Option<String>,
    },
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
    Pin {
        /// Snapshot id
        id: String,
    },
    /// Make a pinned snapshot prunable again
    Unpin {
        /// Snapshot id
        id: String,
    },
    /// Restore into a scratch directory, run every check, report timings; touches nothing live
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
    /// List the registered store plug-ins and their options
    Stores,
    /// Write a commented starter cairn.toml
    Init {
        /// Where to write it
        #[arg(long, value_name = "P", default_value = "cairn.toml")]
        path: PathBuf,
    },
    /// Print a shell completion script
    Completions {
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
    /// Validate the snapshots on this [[remote]]: every object present with
    /// its recorded size, from listings (no data read)
    #[arg(long, value_name = "NAME", conflicts_with = "quick")]
    pub remote: Option<String>,
    /// With --remote: download every pack and hash it, and rebuild each manifest
    #[arg(long, requires = "remote")]
    pub read_data: bool,
    /// With --remote: read the packs of subset N of T only (1/7 on Mondays, 2/7 on Tuesdays…)
    #[arg(
        long,
        value_name = "N/T",
        requires = "remote",
        conflicts_with = "read_data"
    )]
    pub subset: Option<String>,
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
pub struct RestoreArgs {
    /// Snapshot id
    pub id: String,
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
    /// Restore into DIR/<store>/… instead of the live paths
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
