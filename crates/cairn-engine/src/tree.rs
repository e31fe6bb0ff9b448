//! Walking directory trees without following symlinks: capturing a live
//! tree into a snapshot, and visiting what a directory holds.

use std::fs::{self, Metadata};
use std::path::{Path, PathBuf};

use crate::capture::CaptureCtx;
use crate::error::{io_at, Error, Result};

/// What a plug-in wants done with one regular file of a tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileAction {
    /// Copy it byte for byte (the default; copies run on every core once
    /// the walk is done).
    Copy,
    /// The plug-in captured it itself (e.g. an SQLite file via the backup API).
    Handled,
    /// Leave it out (e.g. a `-wal` sidecar folded into its database's copy).
    Skip,
}

/// Captures the directory `ctx.source()` into `ctx`: directories (empty ones
/// too), regular files, symlinks as links. FIFOs, sockets and devices are
/// never opened; each is skipped with a warning kept in the manifest.
/// `on_file` decides per regular file (see [`FileAction`]).
pub fn capture_tree(
    ctx: &mut CaptureCtx<'_>,
    on_file: &mut dyn FnMut(&mut CaptureCtx<'_>, &Path, &str, &Metadata) -> Result<FileAction>,
) -> Result<()> {
    let root = ctx.source().to_owned();
    walk(&root, &mut |path, rel, meta| {
        if !rel.contains('/') && is_restore_work_dir(rel) {
            ctx.warn(format!(
                "skipped {rel}: a restore's work directory (staged or parked contents), not store data"
            ));
            return Ok(Descend::No);
        }
        let ft = meta.file_type();
        if ft.is_dir() {
            ctx.add_dir(rel, meta)?;
            return Ok(Descend::Yes);
        }
        if ft.is_symlink() {
            let target = fs::read_link(path).map_err(io_at("read symlink", path))?;
            ctx.add_symlink(rel, &target, meta)?;
        } else if ft.is_file() {
            match on_file(ctx, path, rel, meta)? {
                FileAction::Copy => ctx.queue_copy(path, rel, meta)?,
                FileAction::Handled | FileAction::Skip => {}
            }
        } else {
            ctx.warn(format!(
                "skipped {rel}: not a regular file, directory or symlink (FIFO, socket or device)"
            ));
        }
        Ok(Descend::No)
    })
}

fn is_restore_work_dir(name: &str) -> bool {
    name.starts_with(crate::replace::STAGING_PREFIX)
        || name.starts_with(crate::replace::PARKED_PREFIX)
}

/// Visits every path under `root` (relative, `/`-separated) with its
/// metadata: symlinks not followed, parents before children, siblings in
/// name order. Only the directories still to visit are held, never the
/// whole listing, so memory does not grow with the size of the tree.
pub fn walk_tree(root: &Path, visit: &mut dyn FnMut(&str, &Metadata) -> Result<()>) -> Result<()> {
    walk(root, &mut |_, rel, meta| {
        visit(rel, meta)?;
        Ok(if meta.is_dir() {
            Descend::Yes
        } else {
            Descend::No
        })
    })
}

/// Whether a walk goes into the directory it was just shown.
enum Descend {
    Yes,
    No,
}

/// The one tree walker: depth first, in name order, so parents are always
/// met before their children and every walk of a tree is deterministic.
fn walk(
    root: &Path,
    visit: &mut dyn FnMut(&Path, &str, &Metadata) -> Result<Descend>,
) -> Result<()> {
    let mut stack: Vec<(PathBuf, String)> = vec![(root.to_owned(), String::new())];
    while let Some((dir, rel_dir)) = stack.pop() {
        let mut children = Vec::new();
        for name in sorted_children(&dir)? {
            let path = dir.join(&name);
            let rel = if rel_dir.is_empty() {
                name
            } else {
                format!("{rel_dir}/{name}")
            };
            let meta = fs::symlink_metadata(&path).map_err(io_at("stat", &path))?;
            if let Descend::Yes = visit(&path, &rel, &meta)? {
                children.push((path, rel));
            }
        }
        stack.extend(children.into_iter().rev());
    }
    Ok(())
}

/// The names in `dir`, sorted; an error names the first one that is not
/// UTF-8 (the manifest records paths as JSON strings).
fn sorted_children(dir: &Path) -> Result<Vec<String>> {
    let mut children = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_at("read directory", dir))? {
        let entry = entry.map_err(io_at("read directory", dir))?;
        let name = entry
            .file_name()
            .into_string()
            .map_err(|raw| Error::Source {
                path: dir.join(raw),
                message: "the file name is not UTF-8; Cairn's manifest cannot record it".into(),
            })?;
        children.push(name);
    }
    children.sort_unstable();
    Ok(children)
}
