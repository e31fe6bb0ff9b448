//! Walking directory trees without following symlinks: capturing a live
//! tree into a snapshot, and visiting what a directory holds.

use std::ffi::{OsStr, OsString};
use std::fs::Metadata;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::capture::CaptureCtx;
use crate::dirfd::DirFd;
use crate::error::{Error, Result};
use crate::manifest::RawPath;

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

/// A regular file the walk met, as `on_file` is shown it: reached through
/// the descriptor of the directory the walk holds, never by a path that
/// could lead elsewhere.
pub struct WalkedFile<'a> {
    dir: &'a DirFd,
    name: &'a OsStr,
    path: PathBuf,
}

impl WalkedFile<'_> {
    /// A path through the walk's directory descriptor
    /// (`/proc/self/fd/N/name`), for a library that wants a path (SQLite):
    /// it names this directory's file whatever its path has become.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the file begins with `prefix`: opened by its name in the
    /// walk's directory (a symlink, FIFO or device put in its place is
    /// not read), read and closed. `false` when it is shorter or cannot
    /// be read.
    pub fn starts_with(&self, prefix: &[u8]) -> bool {
        let Ok((mut file, _)) = self.dir.open_file(self.name) else {
            return false;
        };
        let mut head = vec![0u8; prefix.len()];
        file.read_exact(&mut head).is_ok() && head == prefix
    }
}

/// Captures the directory `ctx.source()` into `ctx`: the directory's own
/// owner, mode and attributes, directories (empty ones too), regular files
/// (holes kept; the later names of an inode as hard links of its first),
/// symlinks as links. FIFOs, sockets and devices are never opened; each is
/// skipped with a warning kept in the manifest. Names are bytes: every
/// name Linux allows is captured. `on_file` decides per regular file (see
/// [`FileAction`]); `rel` is the file's path in the store.
pub fn capture_tree(
    ctx: &mut CaptureCtx<'_>,
    on_file: &mut dyn FnMut(
        &mut CaptureCtx<'_>,
        &WalkedFile<'_>,
        &RawPath,
        &Metadata,
    ) -> Result<FileAction>,
) -> Result<()> {
    let root = match ctx.source_dir() {
        Some(dir) => dir.clone(),
        None => DirFd::open_trusted(ctx.source())?,
    };
    ctx.set_root(&root)?;
    walk(&root, &mut |dir, name, rel, meta| {
        if !rel.as_bytes().contains(&b'/') && is_restore_work_dir(rel) {
            ctx.warn(format!(
                "skipped {rel}: a restore's work directory (staged or parked contents), not store data"
            ));
            return Ok(Descend::No);
        }
        let ft = meta.file_type();
        if ft.is_dir() {
            ctx.add_dir_in(dir, name, rel, meta)?;
            return Ok(Descend::Yes);
        }
        if ft.is_symlink() {
            let target = dir.read_link(name)?;
            ctx.add_symlink(rel, &target, meta)?;
        } else if ft.is_file() {
            let file = WalkedFile {
                dir,
                name,
                path: dir.fd_path(name),
            };
            match on_file(ctx, &file, rel, meta)? {
                FileAction::Copy => ctx.queue_copy_in(dir, name, rel, meta)?,
                FileAction::Handled => ctx.record_xattrs_in(dir, name, rel, meta)?,
                FileAction::Skip => {}
            }
        } else {
            ctx.warn(format!(
                "skipped {rel}: not a regular file, directory or symlink (FIFO, socket or device)"
            ));
        }
        Ok(Descend::No)
    })
}

/// A work directory restore made: its prefix and exactly the 16 hex
/// digits of its random part. A user's own `.cairn-old-notes` is data.
fn is_restore_work_dir(name: &RawPath) -> bool {
    let Some(name) = name.to_str() else {
        return false;
    };
    [
        crate::replace::STAGING_PREFIX,
        crate::replace::PARKED_PREFIX,
    ]
    .iter()
    .filter_map(|prefix| name.strip_prefix(prefix))
    .any(|rest| rest.len() == 16 && rest.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Visits every path under `root` (relative, `/`-separated, as bytes)
/// with its metadata: symlinks not followed, parents before children,
/// siblings in name order. Only the directories still to visit are held,
/// never the whole listing, so memory does not grow with the size of the
/// tree.
pub fn walk_tree(
    root: &Path,
    visit: &mut dyn FnMut(&RawPath, &Metadata) -> Result<()>,
) -> Result<()> {
    walk(&DirFd::open_trusted(root)?, &mut |_, _, rel, meta| {
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
/// It goes by descriptor: each directory is opened from its parent's
/// descriptor with `O_NOFOLLOW`, so a directory swapped for a symlink
/// during the walk fails to open instead of being walked into, and an
/// entry that disappeared meanwhile (the service deleted it) is passed by.
fn walk(
    root: &DirFd,
    visit: &mut dyn FnMut(&DirFd, &OsStr, &RawPath, &Metadata) -> Result<Descend>,
) -> Result<()> {
    // Directories still to visit: the parent's descriptor, the name, the
    // relative path. Opened only when visited.
    let mut stack: Vec<(Option<(DirFd, OsString)>, RawPath)> = vec![(None, RawPath::default())];
    while let Some((at, rel_dir)) = stack.pop() {
        let dir = match at {
            None => root.clone(),
            Some((parent, name)) => parent.open_dir(&name)?,
        };
        let mut children = Vec::new();
        for (name, entry) in dir.entries()? {
            // Any bytes but `/` and NUL, which no name holds.
            let rel = rel_dir.join(&name);
            let meta = match entry.metadata() {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io("stat", dir.shown(&name), e)),
            };
            if let Descend::Yes = visit(&dir, &name, &rel, &meta)? {
                children.push((Some((dir.clone(), name)), rel));
            }
        }
        stack.extend(children.into_iter().rev());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// A root-only directory outside the tree, with a secret in it.
    fn victim() -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::create_dir(&victim).unwrap();
        fs::write(victim.join("secret.txt"), b"PRIVATE").unwrap();
        (dir, victim)
    }

    #[test]
    fn a_directory_swapped_for_a_link_during_the_walk_is_never_walked_into() {
        let (_keep, victim) = victim();
        let dir = tempfile::tempdir().unwrap();
        let root_path = dir.path().join("tree");
        fs::create_dir_all(root_path.join("sub")).unwrap();
        fs::write(root_path.join("sub/a.txt"), b"a").unwrap();
        let root = DirFd::open_trusted(&root_path).unwrap();

        let mut seen = Vec::new();
        let result = walk(&root, &mut |_, _, rel, meta| {
            seen.push(rel.to_owned());
            if *rel == "sub" {
                // The swap lands after the walk saw a directory and before
                // it goes in (what renameat2 RENAME_EXCHANGE does in one go).
                fs::rename(root_path.join("sub"), root_path.join("old")).unwrap();
                std::os::unix::fs::symlink(&victim, root_path.join("sub")).unwrap();
            }
            Ok(if meta.is_dir() {
                Descend::Yes
            } else {
                Descend::No
            })
        });
        assert!(result.is_err(), "walked into a link: {seen:?}");
        assert!(
            !seen.iter().any(|r| r.shown().contains("secret")),
            "{seen:?}"
        );
    }

    #[test]
    fn a_file_replaced_between_the_walk_and_its_copy_is_not_read() {
        let (_keep, victim) = victim();
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("live");
        fs::create_dir(&live).unwrap();
        fs::write(live.join("data.bin"), b"service data").unwrap();
        let dest = dir.path().join("dest");
        fs::create_dir(&dest).unwrap();
        let root = DirFd::open_trusted(&live).unwrap();
        let source = root.fd_path("");
        let mut ctx = CaptureCtx::new("t", &source, &live, Some(root.clone()), dest.clone(), None);

        let result = capture_tree(&mut ctx, &mut |_, _, _, _| {
            // After the walk's lstat, another file is moved into the name.
            fs::copy(victim.join("secret.txt"), live.join("swap")).unwrap();
            fs::rename(live.join("swap"), live.join("data.bin")).unwrap();
            Ok(FileAction::Copy)
        })
        .and_then(|()| ctx.finish().map(|_| ()));
        let err = result.expect_err("a replaced file was copied");
        assert!(err.to_string().contains("replaced"), "{err}");
        let copied = fs::read(dest.join("data.bin")).unwrap_or_default();
        assert!(
            !copied.starts_with(b"PRIVATE"),
            "the victim's bytes were copied"
        );
    }
}

#[cfg(test)]
mod vanished {
    use super::*;
    use std::fs;

    #[test]
    fn a_file_deleted_between_the_walk_and_its_copy_is_a_warning_not_a_failure() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("live");
        fs::create_dir(&live).unwrap();
        fs::write(live.join("gone.bin"), b"deleted by the service").unwrap();
        fs::write(live.join("kept.bin"), b"still here").unwrap();
        let dest = dir.path().join("dest");
        fs::create_dir(&dest).unwrap();
        let root = DirFd::open_trusted(&live).unwrap();
        let source = root.fd_path("");
        let mut ctx = CaptureCtx::new("t", &source, &live, Some(root.clone()), dest.clone(), None);

        capture_tree(&mut ctx, &mut |_, _, rel, _| {
            if rel == "gone.bin" {
                fs::remove_file(live.join("gone.bin")).unwrap();
            }
            Ok(FileAction::Copy)
        })
        .unwrap();
        let captured = ctx.finish().unwrap();
        let paths: Vec<String> = captured
            .entries
            .iter()
            .map(|e| String::from(&e.path))
            .collect();
        assert_eq!(paths, vec!["kept.bin"]);
        assert!(
            captured
                .warnings
                .iter()
                .any(|w| w.contains("gone.bin") && w.contains("disappeared")),
            "{:?}",
            captured.warnings
        );
    }
}

#[cfg(test)]
mod walked_file {
    use super::*;
    use std::fs;

    /// What `on_file` is shown reads a header by name in the walked
    /// directory: a file that starts with the prefix says so; a shorter
    /// one, a symlink to a file that would match, and a FIFO (which must
    /// not block the walk) do not.
    #[test]
    fn starts_with_reads_only_the_regular_file_itself() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        fs::write(root.join("db"), b"SQLite format 3\0 and pages").unwrap();
        fs::write(root.join("short"), b"SQLite").unwrap();
        std::os::unix::fs::symlink(root.join("db"), root.join("link")).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            root.join("fifo"),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let dir = DirFd::open_trusted(root).unwrap();
        let walked = |name: &'static str| WalkedFile {
            dir: &dir,
            name: OsStr::new(name),
            path: dir.fd_path(name),
        };
        let sniff = |name| walked(name).starts_with(b"SQLite format 3\0");
        assert!(sniff("db"));
        assert!(!sniff("short"));
        assert!(!sniff("link"));
        assert!(!sniff("fifo"));
        assert!(!sniff("missing"));
        let file = walked("db");
        assert_eq!(
            fs::read(file.path()).unwrap(),
            b"SQLite format 3\0 and pages"
        );
    }
}
