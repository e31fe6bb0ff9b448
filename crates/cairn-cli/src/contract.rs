//! The operator contract's side of errors: which exit code each situation
//! is, what the `error:` line says when it needs a flag's name, and the
//! `hint:` line. The engine types errors by cause and names no flag; this
//! is the one `match` that turns a cause into what the operator sees.

use cairn_engine::Error;

/// 0: done, and everything checked was sound.
pub const OK: u8 = 0;
/// 1: ran, and something checked was not sound.
pub const UNSOUND: u8 = 1;
/// 2: bad usage or bad config.
pub const USAGE: u8 = 2;
/// 3: refused by a safety gate before anything was touched.
pub const REFUSED: u8 = 3;
/// 4: an I/O or system error stopped the run.
pub const IO: u8 = 4;
/// 128 + N: stopped by signal N (SIGHUP 129, SIGINT 130, SIGTERM 143) at a
/// safe point.
pub const INTERRUPTED_BASE: u8 = 128;

/// The exit code of a run that ended in `e`. No wildcard arm: a cause the
/// engine adds does not compile here until someone decides its code.
pub fn exit_code(e: &Error) -> u8 {
    match e.cause() {
        Error::BadId { .. }
        | Error::Config { .. }
        | Error::ConfigNotFound { .. }
        | Error::ConfigRequired
        | Error::Usage { .. }
        | Error::SnapshotNotFound { .. }
        | Error::NoSnapshots { .. }
        | Error::NothingSelected
        | Error::UnknownStore { .. }
        | Error::BadTag { .. }
        | Error::FutureTime { .. }
        | Error::EmptyPolicy
        | Error::NotConfigured { .. }
        | Error::KindChanged { .. }
        | Error::TargetNotEmpty { .. }
        | Error::TargetOverlaps { .. }
        | Error::SourceType { .. }
        | Error::SourceRejected { .. }
        | Error::NoSuchEntry { .. }
        | Error::RemoteSnapshotNotFound { .. } => USAGE,
        Error::NotConfirmed
        | Error::InUse { .. }
        | Error::UnsafePath { .. }
        | Error::Unsound { .. }
        | Error::PreRestoreUnsound { .. }
        | Error::NotRegularFile { .. }
        | Error::Busy { .. }
        | Error::NoRoom { .. }
        | Error::ServiceBusy { .. }
        | Error::RemoteLocked { .. } => REFUSED,
        Error::SourceMissing { .. }
        | Error::Source { .. }
        | Error::Io { .. }
        | Error::Plugin { .. }
        | Error::Store { .. }
        | Error::RemoteUnreachable { .. } => IO,
        Error::Manifest { .. }
        | Error::Hook { .. }
        | Error::FileDamaged { .. }
        | Error::RemoteFormat { .. } => UNSOUND,
        // The shell's convention: 128 + the signal (130 SIGINT, 143 SIGTERM).
        Error::Interrupted { signal } => {
            INTERRUPTED_BASE.saturating_add(u8::try_from(*signal).unwrap_or(0))
        }
    }
}

/// The problem code of an error that is a finding about a snapshot's
/// files (`cat` of a damaged copy: `file_checksum_mismatch`).
pub fn code(e: &Error) -> Option<&'static str> {
    match e.cause() {
        Error::FileDamaged { problem, .. } => Some(problem.code),
        _ => None,
    }
}

/// The `error:` line. The engine's text, except where the situation is
/// best said with the flag that changes it.
pub fn message(e: &Error) -> String {
    match e.cause() {
        Error::NotConfirmed => {
            "restoring into the live paths needs --confirm-service-stopped; nothing was touched"
                .into()
        }
        Error::ConfigNotFound { file } => format!(
            "config {}: not found (pass --config PATH, set CAIRN_CONFIG, or run `cairn init`)",
            file.display()
        ),
        Error::ConfigRequired => "running as root, cairn does not read ./cairn.toml from the current directory: pass --config PATH (or set CAIRN_CONFIG)".into(),
        Error::NothingSelected => {
            "no stores selected (check --only/--skip and the [[store]] tables)".into()
        }
        Error::FutureTime { at, ahead, now } => format!(
            "--at {at}: that is {ahead} ahead of this machine's clock ({now}); pass --allow-future to date a snapshot in the future anyway"
        ),
        Error::BadTag { tag } => {
            format!("--tag {tag:?}: a tag is 1-128 printable characters without commas")
        }
        Error::EmptyPolicy => format!("{e}; pass --allow-empty-policy to delete every snapshot"),
        Error::TargetNotEmpty { path } => format!(
            "--to: {} is not empty; restore into an empty or new directory",
            path.display()
        ),
        Error::TargetOverlaps { path, reason } => {
            format!("--to {}: {reason}", path.display())
        }
        Error::NotConfigured { store, file } => format!(
            "store {store:?} is in the snapshot but not in {}; restore it with --to DIR, or leave it out with --skip {store}",
            file.display()
        ),
        Error::NoRoom { dir, free, needed } => format!(
            "scratch directory {} has {} free; the drill needs about {} for one full copy",
            dir.display(),
            human_bytes(*free),
            human_bytes(*needed)
        ),
        _ => e.to_string(),
    }
}

/// A second line for the operator, where one helps, naming the snapshot
/// the command was given (its id, or `--latest`) where the hint spells out
/// a command to run.
pub fn hint_for(e: &Error, snapshot: Option<&str>) -> Option<String> {
    let text = match e.cause() {
        Error::NotConfirmed => format!(
            "stop the service that writes these stores (e.g. with systemctl stop or docker compose stop), then rerun {}; or restore elsewhere with --to DIR",
            match snapshot {
                Some(id) => format!("`cairn restore {id} --confirm-service-stopped`"),
                None => "the same command with --confirm-service-stopped added".to_owned(),
            }
        ),
        Error::UnsafePath { .. } => "a path Cairn reads or writes (a store's, --to, --scratch) must not pass through a symlink that the service's user (or anyone but root and you) could have planted; give the real path, or for a store set `follow_symlink = true` if the link and its target are root's or yours".to_owned(),
        Error::InUse { .. } => "stop every process that has the store open (the service, workers, shells), then rerun".to_owned(),
        Error::Unsound { id, problems } => unsound_hint(id, problems),
        Error::PreRestoreUnsound { .. } => "the repository's disk did not keep what was written: run `cairn validate --all` and check the disk (`dmesg`, SMART) before restoring; --no-pre-snapshot restores without a way back".to_owned(),
        Error::NotRegularFile { path, .. } => format!(
            "a database and its -wal, -shm and -journal sidecars are only ever regular files: remove or rename {}, then rerun",
            path.display()
        ),
        Error::Busy { .. } => "wait for the other run (snapshot, restore or prune) to finish, then run again".to_owned(),
        Error::RemoteLocked { .. } => "another `cairn prune --remote` holds the remote's lock (on this or another host): wait for it; a lock older than its stated expiry is stale and the next prune takes it over".to_owned(),
        Error::RemoteUnreachable { .. } => "check the network, the endpoint, and the credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or credentials_file; key_file for sftp); a push can be run again and uploads only what is missing".to_owned(),
        Error::RemoteSnapshotNotFound { .. } => "`cairn list --remote NAME` shows the snapshots on the remote".to_owned(),
        Error::BadId { .. } | Error::SnapshotNotFound { .. } => "`cairn list` shows the snapshot ids".to_owned(),
        Error::FileDamaged { id, problem } => format!(
            "what was written to stdout is not the file as captured: discard it; {}",
            repair_hint(id, std::slice::from_ref(problem))
                .unwrap_or_else(|| format!("`cairn validate {id}` checks the whole snapshot"))
        ),
        Error::NoSuchEntry { id, store, .. } => format!("`cairn ls {id} {store}` lists the entries of that store"),
        Error::NoRoom { .. } => "pass --scratch DIR on a filesystem with room for one full copy of the snapshot".to_owned(),
        Error::SourceMissing { .. } => "mark the store `optional = true` if that is expected".to_owned(),
        Error::Interrupted { .. } => "after_snapshot ran (for a snapshot), work directories were removed and the lock released; run the command again when ready".to_owned(),
        Error::Io { source, path, .. }
            if source.raw_os_error() == Some(libc::ENOSPC)
                && path.as_os_str() == "standard output" =>
        {
            "where standard output goes is full: free space there, or send the output elsewhere"
                .to_owned()
        }
        Error::Io { source, .. } if source.raw_os_error() == Some(libc::ENOSPC) => {
            "the filesystem is full: free space or point `repository` elsewhere".to_owned()
        }
        _ => return None,
    };
    Some(text)
}

/// A refused restore: see every problem, then what gets past it. Damage
/// in some stores: leave them out. Files that match their manifest but
/// fail their kind's check: their bytes still come back with `--to`.
fn unsound_hint(id: &str, problems: &[cairn_engine::Problem]) -> String {
    let mut stores: Vec<&str> = Vec::new();
    for store in problems.iter().filter_map(|p| p.store.as_deref()) {
        if !stores.contains(&store) {
            stores.push(store);
        }
    }
    let mut hint = format!("run `cairn validate {id}` for every problem; restore another snapshot");

    if !stores.is_empty() {
        hint.push_str(&format!(
            ", or leave the damaged store{} out with --skip {} (or name the others with --only)",
            if stores.len() == 1 { "" } else { "s" },
            stores.join(",")
        ));
    }
    if let Some(repair) = repair_hint(id, problems) {
        hint.push_str(&format!("; to heal this one: {repair}"));
    }
    if !problems.is_empty() && !problems.iter().any(|p| p.is_about_files()) {
        hint.push_str(&format!(
            "; its files match the manifest, so `cairn restore {id} --to DIR` gets their bytes back as captured"
        ));
    }
    hint
}

/// Where a snapshot's problems include damaged copies (files whose
/// bytes, size or presence differ from the manifest): the command that
/// rewrites them.
pub fn repair_hint(id: &str, problems: &[cairn_engine::Problem]) -> Option<String> {
    let damaged = problems
        .iter()
        .filter(|p| cairn_engine::repair::is_repairable(p.code))
        .count();
    (damaged > 0).then(|| {
        format!(
            "`cairn repair {id}` rewrites the damaged cop{} from the live files or an intact copy in another snapshot",
            if damaged == 1 { "y" } else { "ies" }
        )
    })
}

/// What the operator runs to finish a rollback that failed.
pub fn finish_rollback_by_hand(pre_restore: &str) -> String {
    format!("cairn restore {pre_restore} --confirm-service-stopped --no-pre-snapshot")
}

fn human_bytes(n: u64) -> String {
    cairn_engine::fsutil::human_bytes(n)
}
