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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_parents_very_inodes_are_the_share_and_a_record_without_a_rotation_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let snaps = dir.path();
        for id in ["P", "C"] {
            std::fs::create_dir_all(snaps.join(id).join("stores/chroma/sub")).unwrap();
        }
        let (parent, child) = (snaps.join("P/stores/chroma"), snaps.join("C/stores/chroma"));
        std::fs::write(parent.join("sub/kept"), b"same inode").unwrap();
        std::fs::hard_link(parent.join("sub/kept"), child.join("sub/kept")).unwrap();
        std::fs::write(parent.join("rewritten"), b"old").unwrap();
        std::fs::write(child.join("rewritten"), b"new").unwrap();
        std::fs::write(child.join("new-file"), b"new").unwrap();

        // 1/1: every reused file is in the share; the rewritten and the
        // new file were read as written, not as the rotation's share.
        std::fs::write(snaps.join("C/validated.json"), r#"{"rotation": "1/1"}"#).unwrap();
        assert_eq!(
            reused_share(snaps, "C", "P").unwrap(),
            vec![child.join("sub/kept")]
        );

        std::fs::write(snaps.join("C/validated.json"), r#"{"valid": true}"#).unwrap();
        let e = reused_share(snaps, "C", "P").unwrap_err().to_string();
        assert!(e.contains("no rotation share"), "{e}");
    }
}
