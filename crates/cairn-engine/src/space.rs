//! What a repository costs on disk, honestly: snapshots share unchanged
//! files by hard link, so the sum of their sizes says little. Here every
//! inode is counted once, by (device, inode), at the blocks it occupies
//! (`st_blocks` × 512, so holes cost nothing); what deleting a set of
//! snapshots frees is the blocks of the inodes whose every link is in
//! that set (`st_nlink` says how many there are).
//!
//! The repository is Cairn's own tree (root's or the invoker's), walked by
//! path without following a symlink.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::error::{io_at, Error, Result};
use crate::id::SnapshotId;
use crate::repo::Repository;

/// One snapshot's share of the repository.
#[derive(Debug, Clone, Default)]
pub struct SnapshotSpace {
    pub id: String,
    /// The sum of its files' sizes as recorded (what a restore writes);
    /// `None` when its manifest cannot be read.
    pub apparent: Option<u64>,
    /// Blocks of every inode in its directory, each counted once.
    pub on_disk: u64,
    /// Blocks of the inodes no other snapshot shares: what deleting this
    /// snapshot alone would free.
    pub unique: u64,
    /// Inodes in its directory (files, directories, links).
    pub inodes: u64,
}

/// Every snapshot's, and the repository's.
#[derive(Debug, Clone, Default)]
pub struct Space {
    pub snapshots: Vec<SnapshotSpace>,
    /// The sum of the snapshots' apparent sizes.
    pub apparent: u64,
    /// Blocks of every inode under `snapshots/`, each counted once.
    pub on_disk: u64,
    /// Inodes counted once.
    pub inodes: u64,
}

/// An inode met during a walk.
struct Inode {
    blocks: u64,
    nlink: u64,
    /// Links met in the set walked.
    seen: u64,
    /// The one snapshot holding it, or `None` once a second one does.
    owner: Option<usize>,
}

type Inodes = HashMap<(u64, u64), Inode>;

/// Every snapshot's space and the total, oldest first.
pub fn measure(repo: &Repository) -> Result<Space> {
    let ids = repo.list()?.ids;
    let mut inodes: Inodes = HashMap::new();
    let mut space = Space::default();
    for (i, id) in ids.iter().enumerate() {
        let apparent = crate::manifest::Manifest::read_from(&repo.snapshot_dir(id), id.as_str())
            .ok()
            .map(|m| m.total_bytes());
        space.apparent = space.apparent.saturating_add(apparent.unwrap_or(0));
        let mut own: HashMap<(u64, u64), ()> = HashMap::new();
        let mut on_disk = 0u64;
        walk(&repo.snapshot_dir(id), &mut |key, meta| {
            let node = inodes.entry(key).or_insert_with(|| Inode {
                blocks: blocks(meta),
                nlink: links(meta),
                seen: 0,
                owner: Some(i),
            });
            node.seen += 1;
            if node.owner != Some(i) {
                node.owner = None;
            }
            if own.insert(key, ()).is_none() {
                on_disk = on_disk.saturating_add(node.blocks);
            }
        })?;
        space.snapshots.push(SnapshotSpace {
            id: id.to_string(),
            apparent,
            on_disk,
            unique: 0,
            inodes: own.len() as u64,
        });
    }
    for node in inodes.values() {
        space.on_disk = space.on_disk.saturating_add(node.blocks);
        // Linked from outside the repository too: deleting it frees nothing.
        if let (Some(i), true) = (node.owner, node.seen >= node.nlink) {
            let s = &mut space.snapshots[i];
            s.unique = s.unique.saturating_add(node.blocks);
        }
    }
    space.inodes = inodes.len() as u64;
    Ok(space)
}

/// The bytes deleting every directory in `dirs` together would free: the
/// blocks of each inode whose every link lies inside them.
pub fn freed_by_dirs(dirs: &[PathBuf]) -> Result<u64> {
    let mut inodes: Inodes = HashMap::new();
    for dir in dirs {
        walk(dir, &mut |key, meta| {
            inodes
                .entry(key)
                .or_insert_with(|| Inode {
                    blocks: blocks(meta),
                    nlink: links(meta),
                    seen: 0,
                    owner: None,
                })
                .seen += 1;
        })?;
    }
    Ok(inodes
        .values()
        .filter(|n| n.seen >= n.nlink)
        .map(|n| n.blocks)
        .fold(0, u64::saturating_add))
}

/// What deleting the snapshots `ids` would free (a snapshot already gone
/// counts nothing).
pub fn freed_by(repo: &Repository, ids: &[SnapshotId]) -> Result<u64> {
    let dirs: Vec<PathBuf> = ids
        .iter()
        .map(|id| repo.snapshot_dir(id))
        .filter(|d| d.is_dir())
        .collect();
    freed_by_dirs(&dirs)
}

/// The links that must be met for an inode to go with its tree: a
/// directory's other links are its children's `..` and its own `.`, all
/// inside it, so one name is enough.
fn links(meta: &fs::Metadata) -> u64 {
    if meta.is_dir() {
        1
    } else {
        meta.nlink()
    }
}

fn blocks(meta: &fs::Metadata) -> u64 {
    meta.blocks().saturating_mul(512)
}

/// Calls `f` for `dir` and everything below it, never following a
/// symlink (a link is an inode of its own, counted as such).
fn walk(dir: &Path, f: &mut dyn FnMut((u64, u64), &fs::Metadata)) -> Result<()> {
    let meta = fs::symlink_metadata(dir).map_err(io_at("stat", dir))?;
    f((meta.dev(), meta.ino()), &meta);
    if !meta.is_dir() {
        return Ok(());
    }
    let mut pending = vec![dir.to_owned()];
    while let Some(d) = pending.pop() {
        let entries = fs::read_dir(&d).map_err(io_at("read directory", &d))?;
        for entry in entries {
            let entry = entry.map_err(io_at("read directory", &d))?;
            let path = entry.path();
            let meta = match fs::symlink_metadata(&path) {
                Ok(m) => m,
                // Gone since it was listed (a concurrent prune).
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io("stat", &path, e)),
            };
            f((meta.dev(), meta.ino()), &meta);
            if meta.is_dir() {
                pending.push(path);
            }
        }
    }
    Ok(())
}
