//! The rotation's share of a second snapshot: the copies it reused from
//! its parent and re-read in its own validation (issue 15's
//! `verify_rotation`). Their bytes are part of what a second snapshot
//! must cost, so the floors under the second-snapshot targets hash the
//! very same files.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use cairn_engine::manifest::RawPath;
use cairn_engine::share::Subset;

/// The files of `snapshots/<id>` that are the very inodes of
/// `snapshots/<parent>`'s copies at the same path and fall in the share
/// `id`'s validation record names.
pub fn reused_share(snapshots: &Path, id: &str, parent: &str) -> Result<Vec<PathBuf>> {
    let share = recorded_rotation(&snapshots.join(id))?;
    let stores = snapshots.join(id).join("stores");
    let mut files = Vec::new();
    for store in read_dir_names(&stores)? {
        let Some(store_name) = store.to_str() else {
            continue;
        };
        let root = stores.join(&store);
        let parent_root = snapshots.join(parent).join("stores").join(&store);
        let mut stack = vec![PathBuf::new()];
        while let Some(rel_dir) = stack.pop() {
            for name in read_dir_names(&root.join(&rel_dir))? {
                let rel = rel_dir.join(&name);
                let path = root.join(&rel);
                let meta = std::fs::symlink_metadata(&path)
                    .with_context(|| format!("failed to stat {}", path.display()))?;
                if meta.is_dir() {
                    stack.push(rel);
                } else if meta.is_file() {
                    let reused = std::fs::symlink_metadata(parent_root.join(&rel))
                        .is_ok_and(|p| (p.dev(), p.ino()) == (meta.dev(), meta.ino()));
                    if reused && share.contains(store_name, &RawPath::from(rel.as_path())) {
                        files.push(path);
                    }
                }
            }
        }
    }
    Ok(files)
}

/// The `rotation` a new snapshot's `validated.json` records.
fn recorded_rotation(dir: &Path) -> Result<Subset> {
    let path = dir.join("validated.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("failed to read {}", path.display()))?;
    let record: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    let rotation = record["rotation"]
        .as_str()
        .ok_or_else(|| anyhow!("{} records no rotation share", path.display()))?;
    Subset::parse(rotation).map_err(|e| anyhow!("{}: rotation {e}", path.display()))
}

fn read_dir_names(dir: &Path) -> Result<Vec<std::ffi::OsString>> {
    let mut names = Vec::new();
    for entry in
        std::fs::read_dir(dir).with_context(|| format!("failed to list {}", dir.display()))?
    {
        names.push(
            entry
                .with_context(|| format!("failed to list {}", dir.display()))?
                .file_name(),
        );
    }
    Ok(names)
}
