//! The engine's swap primitives: how verified, staged content replaces a
//! live store. This module holds the invariant "live data is replaced
//! atomically"; plug-ins add steps before and after a swap
//! (`StoreHandler::before_swap`/`after_swap`), never a swap of their own.

use std::ffi::OsString;
use std::fs;
use std::path::Path;

use crate::error::{io_at, Result};
use crate::fsutil;
use crate::manifest::Shape;

/// Restore's work directories inside a directory store. Snapshots never
/// capture them (see `tree::capture_tree`): a pre-restore snapshot is taken
/// while staged content sits there, and a crash can leave them behind.
pub(crate) const STAGING_PREFIX: &str = ".cairn-restore-";
pub(crate) const PARKED_PREFIX: &str = ".cairn-old-";

/// Swaps `staged` in at `live` the way the store's shape requires.
pub(crate) fn swap_in(shape: Shape, staged: &Path, live: &Path) -> Result<()> {
    match shape {
        Shape::File => replace_file(staged, live),
        Shape::Dir => replace_dir_contents(staged, live),
    }
}

/// Atomically replaces `live` with `staged` (same filesystem): a reader
/// sees the old file or the new one, never a mix.
fn replace_file(staged: &Path, live: &Path) -> Result<()> {
    fs::rename(staged, live).map_err(io_at("rename into place", live))?;
    fsutil::sync_dir(live.parent().unwrap_or(Path::new("/")))
}

/// Replaces the contents of `live` with those of `staged` (a directory
/// inside `live`), keeping `live` itself: its inode, owner and mode stay,
/// so a bind-mounted volume keeps working. Old contents are parked in a
/// hidden directory until the new ones are all in; on failure they are
/// moved back.
fn replace_dir_contents(staged: &Path, live: &Path) -> Result<()> {
    let parked = live.join(format!("{PARKED_PREFIX}{}", std::process::id()));
    fsutil::create_dir_private(&parked)?;
    let staged_name = staged.file_name().map(|n| n.to_owned());
    let parked_name = parked.file_name().map(|n| n.to_owned());

    let old: Vec<_> = children(live)?
        .into_iter()
        .filter(|n| Some(n) != staged_name.as_ref() && Some(n) != parked_name.as_ref())
        .collect();
    let new = children(staged)?;

    let result = (|| {
        move_all(&old, live, &parked)?;
        move_all(&new, staged, live)
    })();
    if let Err(e) = result {
        // Put the old contents back: whatever of the new is in goes back to
        // staging first, so no name collides.
        let _ = move_present(&new, live, staged);
        let _ = move_present(&old, &parked, live);
        let _ = fs::remove_dir(&parked);
        return Err(e);
    }
    fsutil::sync_dir(live)?;
    fsutil::remove_any(&parked)?;
    fsutil::sync_dir(live)
}

fn children(dir: &Path) -> Result<Vec<OsString>> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_at("read directory", dir))? {
        names.push(entry.map_err(io_at("read directory", dir))?.file_name());
    }
    names.sort();
    Ok(names)
}

fn move_all(names: &[OsString], from: &Path, to: &Path) -> Result<()> {
    for name in names {
        let dst = to.join(name);
        fs::rename(from.join(name), &dst).map_err(io_at("move into place", &dst))?;
    }
    Ok(())
}

fn move_present(names: &[OsString], from: &Path, to: &Path) -> Result<()> {
    for name in names {
        let src = from.join(name);
        if !fsutil::is_absent(&src) {
            fs::rename(&src, to.join(name)).map_err(io_at("move back", &src))?;
        }
    }
    Ok(())
}
