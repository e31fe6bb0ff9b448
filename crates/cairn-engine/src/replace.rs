//! The engine's swap primitives: how verified, staged content replaces a
//! live store. This module holds the invariant "live data is replaced
//! atomically"; plug-ins add steps before and after a swap
//! (`StoreHandler::before_swap`/`after_swap`), never a swap of their own.

use std::ffi::{OsStr, OsString};

use crate::dirfd::DirFd;
use crate::error::Result;

/// Restore's work directories inside a directory store. Snapshots never
/// capture them (see `tree::capture_tree`): a pre-restore snapshot is taken
/// while staged content sits there, and a crash can leave them behind.
pub(crate) const STAGING_PREFIX: &str = ".cairn-restore-";
pub(crate) const PARKED_PREFIX: &str = ".cairn-old-";

/// Renames the staged file `file` (in the staging directory `staging`)
/// over `name` in `parent`: a reader sees the old file or the new one,
/// never a mix; both ends are descriptors, so no link on either path can
/// redirect the rename.
pub(crate) fn replace_file(
    staging: &DirFd,
    file: &OsStr,
    parent: &DirFd,
    name: &OsStr,
) -> Result<()> {
    staging.rename(file, parent, name)?;
    parent.sync()
}

/// Replaces the contents of the directory `live` with those of its child
/// `staging_name` (open as `staging`), keeping `live` itself: its inode,
/// owner and mode stay, so a bind-mounted volume keeps working. Old
/// contents are parked in a fresh hidden directory until the new ones are
/// all in; on failure they are moved back.
pub(crate) fn replace_dir_contents(
    live: &DirFd,
    staging: &DirFd,
    staging_name: &OsStr,
) -> Result<()> {
    let (parked_name, parked) = live.create_unique_dir(PARKED_PREFIX)?;
    let old: Vec<OsString> = live
        .names()?
        .into_iter()
        .filter(|n| n != staging_name && *n != parked_name)
        .collect();
    let new = staging.names()?;

    let result = (|| {
        move_all(&old, live, &parked)?;
        move_all(&new, staging, live)
    })();
    if let Err(e) = result {
        // Put the old contents back: whatever of the new is in goes back to
        // staging first, so no name collides.
        let _ = move_present(&new, live, staging);
        let _ = move_present(&old, &parked, live);
        let _ = live.remove_empty_dir(&parked_name);
        return Err(e);
    }
    live.sync()?;
    live.remove_tree(&parked_name)?;
    live.sync()
}

fn move_all(names: &[OsString], from: &DirFd, to: &DirFd) -> Result<()> {
    for name in names {
        from.rename(name, to, name)?;
    }
    Ok(())
}

fn move_present(names: &[OsString], from: &DirFd, to: &DirFd) -> Result<()> {
    for name in names {
        if from.stat(name).is_ok() {
            from.rename(name, to, name)?;
        }
    }
    Ok(())
}
