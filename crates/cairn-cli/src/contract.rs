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
        | Error::EmptyPolicy
        | Error::NotConfigured { .. }
        | Error::KindChanged { .. }
        | Error::TargetNotEmpty { .. }
        | Error::SourceType { .. }
        | Error::SourceRejected { .. } => USAGE,
        Error::NotConfirmed
        | Error::InUse { .. }
        | Error::Unsound { .. }
        | Error::NotRegularFile { .. }
        | Error::Busy { .. }
        | Error::NoRoom { .. }
        | Error::ServiceBusy { .. } => REFUSED,
        Error::SourceMissing { .. }
        | Error::Source { .. }
        | Error::Io { .. }
        | Error::Plugin { .. }
        | Error::Store { .. } => IO,
        Error::Manifest { .. } | Error::Hook { .. } => UNSOUND,
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
        Error::BadTag { tag } => {
            format!("--tag {tag:?}: a tag is 1-128 printable characters without commas")
        }
        Error::EmptyPolicy => format!("{e}; pass --allow-empty-policy to delete every snapshot"),
        Error::TargetNotEmpty { path } => format!(
            "--to: {} is not empty; restore into an empty or new directory",
            path.display()
        ),
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

/// A second line for the operator, where one helps.
pub fn hint(e: &Error) -> Option<String> {
    let text = match e.cause() {
        Error::NotConfirmed => "stop the service that writes these stores (e.g. `systemctl stop <service>` or `docker compose stop`), then rerun with --confirm-service-stopped; or restore elsewhere with --to DIR".to_owned(),
        Error::InUse { .. } => "stop every process that has the store open (the service, workers, shells), then rerun".to_owned(),
        Error::Unsound { id, .. } => format!("run `cairn validate {id}` for every problem, and restore another snapshot"),
        Error::NotRegularFile { path, .. } => format!(
            "a database and its -wal, -shm and -journal sidecars are only ever regular files: remove or rename {}, then rerun",
            path.display()
        ),
        Error::Busy { .. } => "wait for the other run (snapshot, restore or prune) to finish, then run again".to_owned(),
        Error::BadId { .. } | Error::SnapshotNotFound { .. } => "`cairn list` shows the snapshot ids".to_owned(),
        Error::NoRoom { .. } => "pass --scratch DIR on a filesystem with room for one full copy of the snapshot".to_owned(),
        Error::SourceMissing { .. } => "mark the store `optional = true` if that is expected".to_owned(),
        Error::Io { source, .. } if source.raw_os_error() == Some(libc::ENOSPC) => {
            "the filesystem is full: free space or point `repository` elsewhere".to_owned()
        }
        _ => return None,
    };
    Some(text)
}

/// What the operator runs to finish a rollback that failed.
pub fn finish_rollback_by_hand(pre_restore: &str) -> String {
    format!("cairn restore {pre_restore} --confirm-service-stopped --no-pre-snapshot")
}

fn human_bytes(n: u64) -> String {
    cairn_engine::fsutil::human_bytes(n)
}
