//! Where the bench puts the trees it is done with until its runs are
//! over, instead of deleting them between timed commands.
//!
//! Why: ext4 without a journal (the machines this project is benched on)
//! will not reuse an inode freed in the last 60 s, or 6 min while its
//! inode-table block is dirty, and finding a new inode walks past every
//! such one in its block group, each a buffer-cache lookup
//! (`recently_deleted` in the kernel's fs/ext4/ialloc.c). A full `default`
//! snapshot taken right after the bench deleted a 5,000-file tree spent
//! 2.0–2.5 s of system CPU, a quarter of its samples in that walk; with
//! nothing deleted in the 6 minutes before, 0.9–1.1 s. So what a command
//! cost depended on what the bench had deleted before it, and the full
//! snapshot, which ran right after two trees were deleted, paid most.
//!
//! A discarded tree keeps its inodes: each file's data is truncated away
//! (freed blocks cost later writes nothing) and the tree is moved into
//! the trash. [`Trash::empty`] deletes it once the runs are done and
//! stamps the time; [`settle`] makes the next bench wait out the window.

use std::fs::{self, OpenOptions};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};

/// How long a freed inode can stay skipped: 60 s, plus 300 s while its
/// inode-table block is dirty; and a little more.
const WINDOW: Duration = Duration::from_secs(370);

/// Names the discarded trees apart within one trash.
static NEXT: AtomicU64 = AtomicU64::new(0);

#[derive(Clone)]
pub struct Trash {
    dir: PathBuf,
}

impl Trash {
    /// The trash under `bench_work` (shared by every fixture size, so a
    /// `large` bench right after a `default` one sees the same stamp).
    pub fn open(bench_work: &Path) -> Result<Trash> {
        let dir = bench_work.join("trash");
        fs::create_dir_all(&dir).with_context(|| format!("failed to create {}", dir.display()))?;
        Ok(Trash { dir })
    }

    /// Moves `path` (a file or a tree) into the trash, its files emptied;
    /// nothing if it does not exist. Frees no inode: a file with other
    /// links is unlinked (its inode lives on), every other one is
    /// truncated and kept.
    pub fn discard(&self, path: &Path) -> Result<()> {
        let meta = match fs::symlink_metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e).with_context(|| format!("failed to stat {}", path.display())),
            Ok(m) => m,
        };
        if meta.is_dir() {
            super::make_writable(path)?;
            empty_files_under(path)?;
        } else if meta.is_file() {
            empty_file(path, &meta)?;
            if !path.exists() {
                return Ok(());
            }
        }
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let to = self.dir.join(format!("{}-{n}", std::process::id()));
        fs::rename(path, &to)
            .with_context(|| format!("failed to move {} to {}", path.display(), to.display()))
    }

    /// `dir` discarded, then made again, empty.
    pub fn fresh_dir(&self, dir: &Path) -> Result<()> {
        self.discard(dir)?;
        fs::create_dir_all(dir).with_context(|| format!("failed to create {}", dir.display()))
    }

    /// Deletes everything in the trash and stamps when, for [`settle`].
    pub fn empty(&self) -> Result<()> {
        super::make_writable(&self.dir)?;
        for entry in fs::read_dir(&self.dir)
            .with_context(|| format!("failed to list {}", self.dir.display()))?
        {
            let path = entry?.path();
            if path.is_dir() {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            }
            .with_context(|| format!("failed to remove {}", path.display()))?;
        }
        let stamp = stamp_path(&self.dir);
        fs::write(&stamp, b"").with_context(|| format!("failed to write {}", stamp.display()))
    }
}

/// Before the first timed command: if the trash was emptied less than
/// [`WINDOW`] ago on a file system that skips recently freed inodes,
/// waits out the rest, saying so.
pub fn settle(trash: &Trash) -> Result<()> {
    if !skips_recently_freed_inodes(&trash.dir) {
        return Ok(());
    }
    let Ok(emptied) = fs::metadata(stamp_path(&trash.dir)).and_then(|m| m.modified()) else {
        return Ok(());
    };
    // A stamp from the future (clock stepped back) counts as just now.
    let since = SystemTime::now()
        .duration_since(emptied)
        .unwrap_or(Duration::ZERO);
    if let Some(left) = WINDOW.checked_sub(since) {
        println!(
            "bench: waiting {} s: the last bench deleted its trees {} s ago, and this \
             file system (ext4, no journal) makes creating files slower for 6 min after \
             a mass delete (see xtask/src/bench/trash.rs)",
            left.as_secs(),
            since.as_secs()
        );
        std::thread::sleep(left);
    }
    Ok(())
}

fn stamp_path(trash_dir: &Path) -> PathBuf {
    trash_dir.with_file_name(".trash-emptied")
}

/// Every regular file under `dir` emptied, or unlinked when it has other
/// links.
fn empty_files_under(dir: &Path) -> Result<()> {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).with_context(|| format!("failed to list {}", d.display()))? {
            let path = entry?.path();
            let meta = fs::symlink_metadata(&path)
                .with_context(|| format!("failed to stat {}", path.display()))?;
            if meta.is_dir() {
                stack.push(path);
            } else if meta.is_file() {
                empty_file(&path, &meta)?;
            }
        }
    }
    Ok(())
}

fn empty_file(path: &Path, meta: &fs::Metadata) -> Result<()> {
    if meta.nlink() > 1 {
        return fs::remove_file(path)
            .with_context(|| format!("failed to remove {}", path.display()));
    }
    if meta.len() == 0 {
        return Ok(());
    }
    let open = || {
        OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
    };
    let file = match open() {
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            // Snapshot and pack files are read-only to their owner.
            fs::set_permissions(path, fs::Permissions::from_mode(meta.mode() | 0o200))
                .with_context(|| format!("failed to chmod {}", path.display()))?;
            open()
        }
        other => other,
    }
    .with_context(|| format!("failed to open {}", path.display()))?;
    file.set_len(0)
        .with_context(|| format!("failed to truncate {}", path.display()))
}

/// Whether `dir` is on ext4 without a journal: the kernel lists each
/// mounted ext4 file system under /proc/fs/ext4/<device> and each journal
/// under /proc/fs/jbd2/<device>-<inode>.
fn skips_recently_freed_inodes(dir: &Path) -> bool {
    let Ok(meta) = fs::metadata(dir) else {
        return false;
    };
    let dev = meta.dev();
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    let Ok(sys) = fs::read_link(format!("/sys/dev/block/{major}:{minor}")) else {
        return false;
    };
    let Some(name) = sys.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    if !Path::new("/proc/fs/ext4").join(name).exists() {
        return false;
    }
    let journal_prefix = format!("{name}-");
    let has_journal = fs::read_dir("/proc/fs/jbd2").is_ok_and(|entries| {
        entries.flatten().any(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(&journal_prefix))
        })
    });
    !has_journal
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_discarded_tree_keeps_its_inodes_and_frees_its_data() {
        let root = tempfile::tempdir().unwrap();
        let trash = Trash::open(&root.path().join("work")).unwrap();
        let tree = root.path().join("tree");
        fs::create_dir_all(tree.join("sub")).unwrap();
        fs::write(tree.join("sub/a"), vec![1u8; 10_000]).unwrap();
        fs::write(tree.join("b"), b"bb").unwrap();
        fs::set_permissions(tree.join("b"), fs::Permissions::from_mode(0o400)).unwrap();
        // A link to a file the bench keeps: unlinked, the kept file untouched.
        let kept = root.path().join("kept");
        fs::write(&kept, b"keep me").unwrap();
        fs::hard_link(&kept, tree.join("link")).unwrap();
        let a_ino = fs::metadata(tree.join("sub/a")).unwrap().ino();

        trash.discard(&tree).unwrap();

        assert!(!tree.exists());
        assert_eq!(fs::read(&kept).unwrap(), b"keep me");
        let moved: Vec<PathBuf> = fs::read_dir(&trash.dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(moved.len(), 1);
        let a = fs::metadata(moved[0].join("sub/a")).unwrap();
        assert_eq!((a.ino(), a.len()), (a_ino, 0));
        assert_eq!(fs::metadata(moved[0].join("b")).unwrap().len(), 0);
        assert!(!moved[0].join("link").exists());

        trash.discard(&root.path().join("absent")).unwrap();
        trash.empty().unwrap();
        assert_eq!(fs::read_dir(&trash.dir).unwrap().count(), 0);
        assert!(stamp_path(&trash.dir).exists());
    }
}
