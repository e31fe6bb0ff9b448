//! Restoring some paths of a directory store, not all of it
//! (`RestoreRequest::paths`). Every step of a whole restore still runs —
//! plan with its gates, staging with every byte verified, the pre-restore
//! snapshot of the whole live store, rollback from it — on a store record
//! cut down to the chosen entries ([`subset`]). Only the swap differs:
//! instead of the directory's contents, each chosen path is swapped in on
//! its own ([`swap_paths`]), and nothing else in the store is touched.
//!
//! The live tree is hostile: each directory on the way to a chosen path is
//! opened by descriptor from the one above it with `O_NOFOLLOW`, so a
//! component the service's user swapped for a symlink is refused, never
//! followed, and the swap itself is a `renameat2` between held
//! descriptors (exchange when something is there, no-replace when not).

use std::collections::HashSet;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use crate::browse::is_at_or_under;
use crate::dirfd::{self, DirFd};
use crate::error::{Error, Result};
use crate::manifest::{RawPath, StoreRecord};

/// The chosen paths of one store, and its record cut down to them.
pub(crate) struct Partial {
    /// The chosen paths, none below another, parents first.
    pub(crate) tops: Vec<RawPath>,
    /// The store's record with only the chosen entries, everything under
    /// them, and the directories above them (so staging can build them).
    pub(crate) record: StoreRecord,
}

/// The chosen paths without those below another chosen one.
pub(crate) fn normalize(mut paths: Vec<RawPath>) -> Vec<RawPath> {
    paths.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    paths.dedup();
    let mut tops: Vec<RawPath> = Vec::new();
    for p in paths {
        if !tops.iter().any(|t| is_at_or_under(&p, t)) {
            tops.push(p);
        }
    }
    tops
}

/// `record` cut down to `tops`. A hard link whose first name is left out
/// becomes a copy of its own (the snapshot's file at its path is the same
/// inode, so it stages and verifies the same bytes).
pub(crate) fn subset(record: &StoreRecord, tops: Vec<RawPath>) -> Partial {
    let mut ancestors: HashSet<Vec<u8>> = HashSet::new();
    for t in &tops {
        let bytes = t.as_bytes();
        for (i, b) in bytes.iter().enumerate() {
            if *b == b'/' {
                ancestors.insert(bytes[..i].to_vec());
            }
        }
    }
    let mut kept: Vec<_> = record
        .entries
        .iter()
        .filter(|e| {
            ancestors.contains(e.path.as_bytes()) || tops.iter().any(|t| is_at_or_under(&e.path, t))
        })
        .cloned()
        .collect();
    let names: HashSet<Vec<u8>> = kept.iter().map(|e| e.path.as_bytes().to_vec()).collect();
    for e in &mut kept {
        if e.link_of()
            .is_some_and(|first| !names.contains(first.as_bytes()))
        {
            e.set_link_of(None);
        }
    }
    Partial {
        record: StoreRecord {
            entries: kept,
            ..record.clone()
        },
        tops,
    }
}

/// The plan's gate for a live store restored in part: every directory on
/// the way to each chosen path that exists live is a real directory, not
/// a symlink (which would point the restore elsewhere) nor a file. Read
/// only; the swap checks again as it opens each one.
pub(crate) fn check_live(live: &DirFd, tops: &[RawPath]) -> Result<()> {
    for top in tops {
        let names: Vec<&[u8]> = top.as_bytes().split(|b| *b == b'/').collect();
        let Some((_, above)) = names.split_last() else {
            continue;
        };
        let mut dir = live.clone();
        for name in above {
            let name = OsStr::from_bytes(name);
            match dir.stat(name) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                Err(e) => return Err(Error::io("stat", dir.shown(name), e)),
                Ok(st) => {
                    refuse_non_dir(&dir, name, &st)?;
                    dir = dir.open_dir(name)?;
                }
            }
        }
    }
    Ok(())
}

fn refuse_non_dir(dir: &DirFd, name: &OsStr, st: &rustix::fs::Stat) -> Result<()> {
    if dirfd::is_symlink(st) {
        return Err(Error::UnsafePath {
            path: dir.shown(name),
            reason: "is a symlink where the snapshot has a directory".into(),
        });
    }
    if !dirfd::is_dir(st) {
        return Err(Error::UnsafePath {
            path: dir.shown(name),
            reason: "is not a directory where the snapshot has one; restore the directory itself"
                .into(),
        });
    }
    Ok(())
}

/// Swaps each of `tops` from `staging` (laid out as the store) into the
/// live store directory `live`. For each, the directories above it are
/// opened one by one from `live`; the first that does not exist live is
/// what is moved in (with everything staged under it), else the path
/// itself: exchanged with what is there, which is then removed.
pub(crate) fn swap_paths(live: &DirFd, staging: &DirFd, tops: &[RawPath]) -> Result<()> {
    for top in tops {
        let mut live_dir = live.clone();
        let mut staged_dir = staging.clone();
        let names: Vec<&[u8]> = top.as_bytes().split(|b| *b == b'/').collect();
        let Some((last, above)) = names.split_last() else {
            continue;
        };
        let mut unit: &OsStr = OsStr::from_bytes(last);
        for name in above {
            let name = OsStr::from_bytes(name);
            match live_dir.stat(name) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    unit = name;
                    break;
                }
                Err(e) => return Err(Error::io("stat", live_dir.shown(name), e)),
                Ok(st) => refuse_non_dir(&live_dir, name, &st)?,
            }
            // Opened with O_NOFOLLOW: a link swapped in since the stat is
            // refused here, not followed.
            live_dir = live_dir.open_dir(name)?;
            staged_dir = staged_dir.open_dir(name)?;
        }
        match live_dir.stat(unit) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                staged_dir.rename_new(unit, &live_dir, unit)?;
            }
            Err(e) => return Err(Error::io("stat", live_dir.shown(unit), e)),
            Ok(_) => {
                // What was live is in staging now; it goes with it.
                staged_dir.exchange(unit, &live_dir, unit)?;
                staged_dir.remove_tree(unit)?;
            }
        }
        live_dir.sync()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The swap's own check, for a link planted after the plan's: a
    /// directory on the way swapped for a symlink between the plan and
    /// the swap is refused, and nothing is written through it.
    #[test]
    fn a_link_planted_after_the_plan_is_refused_by_the_swap() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("live");
        let staging = dir.path().join("staging");
        let elsewhere = dir.path().join("elsewhere");
        for d in [&live.join("a"), &staging.join("a"), &elsewhere] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(staging.join("a/f"), b"restored").unwrap();
        std::fs::write(live.join("a/f"), b"live").unwrap();
        let (live_fd, staging_fd) = (
            DirFd::open_trusted(&live).unwrap(),
            DirFd::open_trusted(&staging).unwrap(),
        );
        let tops = vec![RawPath::from("a/f")];
        check_live(&live_fd, &tops).unwrap();

        std::fs::rename(live.join("a"), dir.path().join("moved")).unwrap();
        std::os::unix::fs::symlink(&elsewhere, live.join("a")).unwrap();
        let err = swap_paths(&live_fd, &staging_fd, &tops).unwrap_err();
        assert!(matches!(err, Error::UnsafePath { .. }), "{err}");
        assert!(std::fs::read_dir(&elsewhere).unwrap().next().is_none());
        assert_eq!(std::fs::read(staging.join("a/f")).unwrap(), b"restored");

        // Put back, the same swap goes through, exchanging the file only.
        std::fs::remove_file(live.join("a")).unwrap();
        std::fs::rename(dir.path().join("moved"), live.join("a")).unwrap();
        swap_paths(&live_fd, &staging_fd, &tops).unwrap();
        assert_eq!(std::fs::read(live.join("a/f")).unwrap(), b"restored");
        assert!(
            !staging.join("a/f").exists(),
            "the old file went with staging"
        );
    }
}
