//! Whether a root process may trust a path: a file it is about to read
//! and act on (the config, a hook it will execute).
//!
//! Cairn runs as root over trees that the service's unprivileged user
//! owns (docs/security.md). A path is trusted when no one but root can
//! change what it names: the file is owned by root and writable by no
//! group or other user, and so is every directory on the way to it,
//! symlinks resolved, except that a root-owned directory with the sticky
//! bit (like `/tmp`) may be writable by others, since they cannot rename
//! or remove entries that are not theirs. OpenSSH's StrictModes, sudo
//! and cron apply the same rule to their own files.

use std::ffi::OsString;
use std::fmt;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

/// Group- and other-write bits.
const WRITABLE_BY_OTHERS: u32 = 0o022;
const STICKY: u32 = 0o1000;
/// Linux's own limit on symlinks followed while resolving one path.
const MAX_LINKS: u32 = 40;

/// Why a path is not trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Owned by a user other than root.
    NotOwnedByRoot,
    /// Writable by its group or by other users.
    WritableByOthers,
}

/// The file or directory that makes a path untrusted, as found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Untrusted {
    /// The offending file or directory (symlinks resolved up to it).
    pub path: PathBuf,
    pub is_dir: bool,
    pub uid: u32,
    /// Permission bits, including setuid/setgid/sticky.
    pub mode: u32,
    pub reason: Reason,
}

impl fmt::Display for Untrusted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = if self.is_dir { "directory" } else { "file" };
        let why = match self.reason {
            Reason::NotOwnedByRoot => "is not owned by root",
            Reason::WritableByOthers => "is writable by its group or other users",
        };
        write!(
            f,
            "{what} {} (owner uid {}, mode {:04o}) {why}",
            self.path.display(),
            self.uid,
            self.mode
        )
    }
}

/// Whether the effective user is root: only then does trust matter (any
/// other user can only be harmed within what it may already do).
pub fn running_as_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// The rule, on an inode's owner and mode: `None` when root may trust it.
pub fn judge(is_dir: bool, uid: u32, mode: u32) -> Option<Reason> {
    if uid != 0 {
        return Some(Reason::NotOwnedByRoot);
    }
    let sticky_dir = is_dir && mode & STICKY != 0;
    if mode & WRITABLE_BY_OTHERS != 0 && !sticky_dir {
        return Some(Reason::WritableByOthers);
    }
    None
}

/// Walks `path` from `/`, resolving every symlink, and judges each
/// directory passed through (including those that hold a symlink) and the
/// file at the end. `Ok(None)`: trusted. An error (the path does not
/// exist, a component is not a directory, too many links) keeps its kind
/// and names the path it happened at; every directory before that one was
/// trusted.
pub fn inspect(path: &Path) -> io::Result<Option<Untrusted>> {
    let absolute = std::path::absolute(path).map_err(|e| at(path, e))?;
    let root = PathBuf::from("/");
    let meta = std::fs::symlink_metadata(&root).map_err(|e| at(&root, e))?;
    if let Some(u) = untrusted(&root, &meta) {
        return Ok(Some(u));
    }
    // Components still to walk, the next one last.
    let mut pending: Vec<OsString> = Vec::new();
    push_components(&mut pending, &absolute);
    // Always a real directory (no symlink in it), already judged.
    let mut dir = root;
    let mut links = 0;
    while let Some(name) = pending.pop() {
        if name == ".." {
            // `dir` has no symlinks, so its lexical parent is its real one.
            dir.pop();
            continue;
        }
        let next = dir.join(&name);
        let meta = std::fs::symlink_metadata(&next).map_err(|e| at(&next, e))?;
        if meta.file_type().is_symlink() {
            links += 1;
            if links > MAX_LINKS {
                return Err(at(
                    &next,
                    io::Error::other(format!("more than {MAX_LINKS} symlinks")),
                ));
            }
            let target = std::fs::read_link(&next).map_err(|e| at(&next, e))?;
            if target.is_absolute() {
                dir = PathBuf::from("/");
            }
            push_components(&mut pending, &target);
            continue;
        }
        if let Some(u) = untrusted(&next, &meta) {
            return Ok(Some(u));
        }
        dir = next;
    }
    Ok(None)
}

fn untrusted(path: &Path, meta: &std::fs::Metadata) -> Option<Untrusted> {
    judge(meta.is_dir(), meta.uid(), meta.mode()).map(|reason| Untrusted {
        path: path.to_owned(),
        is_dir: meta.is_dir(),
        uid: meta.uid(),
        mode: meta.mode() & 0o7777,
        reason,
    })
}

/// Pushes `path`'s components so that the first is popped first; `/` and
/// `.` say nothing about where to go next.
fn push_components(pending: &mut Vec<OsString>, path: &Path) {
    let start = pending.len();
    for c in path.components() {
        match c {
            Component::Normal(n) => pending.push(n.to_owned()),
            Component::ParentDir => pending.push("..".into()),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    pending[start..].reverse();
}

fn at(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn judge_wants_root_and_no_group_or_other_write() {
        assert_eq!(judge(false, 0, 0o100600), None);
        assert_eq!(judge(false, 0, 0o100644), None);
        assert_eq!(judge(false, 0, 0o100755), None);
        assert_eq!(judge(true, 0, 0o040755), None);
        assert_eq!(judge(false, 1000, 0o100600), Some(Reason::NotOwnedByRoot));
        assert_eq!(judge(true, 65534, 0o040700), Some(Reason::NotOwnedByRoot));
        assert_eq!(judge(false, 0, 0o100664), Some(Reason::WritableByOthers));
        assert_eq!(judge(false, 0, 0o100602), Some(Reason::WritableByOthers));
        assert_eq!(judge(true, 0, 0o040775), Some(Reason::WritableByOthers));
        assert_eq!(judge(true, 0, 0o042775), Some(Reason::WritableByOthers));
    }

    #[test]
    fn a_sticky_root_directory_may_be_world_writable_but_not_a_sticky_file() {
        assert_eq!(judge(true, 0, 0o041777), None, "like /tmp");
        assert_eq!(judge(true, 0, 0o040777), Some(Reason::WritableByOthers));
        assert_eq!(judge(true, 1000, 0o041777), Some(Reason::NotOwnedByRoot));
        assert_eq!(judge(false, 0, 0o101666), Some(Reason::WritableByOthers));
    }

    #[test]
    fn the_message_names_the_path_owner_and_octal_mode() {
        let u = Untrusted {
            path: PathBuf::from("/srv/svc"),
            is_dir: true,
            uid: 65534,
            mode: 0o755,
            reason: Reason::NotOwnedByRoot,
        };
        assert_eq!(
            u.to_string(),
            "directory /srv/svc (owner uid 65534, mode 0755) is not owned by root"
        );
    }

    #[test]
    fn a_missing_path_is_an_error_naming_where_the_walk_stopped() {
        let err = inspect(Path::new("/cairn-trust-no-such-dir/cairn.toml")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(
            err.to_string().contains("/cairn-trust-no-such-dir"),
            "{err}"
        );
    }

    fn require_root() {
        assert!(running_as_root(), "this test needs root");
    }

    fn set_mode(path: &Path, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    /// A temp dir (root-owned when run as root) holding a 0600 `cairn.toml`.
    fn root_tree() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cairn.toml");
        std::fs::write(&file, "repository = \"b\"\n").unwrap();
        set_mode(&file, 0o600);
        (dir, file)
    }

    #[test]
    #[ignore = "needs root"]
    fn a_root_owned_private_file_in_root_owned_directories_is_trusted() {
        require_root();
        let (_dir, file) = root_tree();
        assert_eq!(inspect(&file).unwrap(), None);
    }

    #[test]
    #[ignore = "needs root"]
    fn the_first_untrusted_file_or_directory_is_reported() {
        require_root();
        let (dir, file) = root_tree();
        set_mode(&file, 0o620);
        let u = inspect(&file).unwrap().unwrap();
        assert_eq!(
            (u.path.as_path(), u.reason),
            (file.as_path(), Reason::WritableByOthers)
        );
        assert_eq!((u.is_dir, u.mode), (false, 0o620));

        set_mode(&file, 0o600);
        std::os::unix::fs::chown(dir.path(), Some(65534), None).unwrap();
        let u = inspect(&file).unwrap().unwrap();
        assert_eq!(u.path, dir.path());
        assert_eq!(
            (u.is_dir, u.uid, u.reason),
            (true, 65534, Reason::NotOwnedByRoot)
        );
    }

    #[test]
    #[ignore = "needs root"]
    fn symlinks_are_resolved_and_the_directories_they_lead_through_judged() {
        require_root();
        let (dir, _) = root_tree();
        let open = dir.path().join("open");
        std::fs::create_dir(&open).unwrap();
        set_mode(&open, 0o777);
        std::fs::write(open.join("real.toml"), "").unwrap();
        set_mode(&open.join("real.toml"), 0o600);
        // A trusted-looking name in a trusted directory, leading into one
        // every user can write: the link's target can be swapped.
        let link = dir.path().join("link.toml");
        std::os::unix::fs::symlink("open/real.toml", &link).unwrap();
        let u = inspect(&link).unwrap().unwrap();
        assert_eq!(
            (u.path.as_path(), u.reason),
            (open.as_path(), Reason::WritableByOthers)
        );

        // Sticky, like /tmp: others cannot replace root's entries in it.
        set_mode(&open, 0o1777);
        assert_eq!(inspect(&link).unwrap(), None);
        // `..` after a symlink goes to the target's parent (open/), not
        // the link's (where there is no real.toml).
        std::fs::create_dir(open.join("inner")).unwrap();
        let via = dir.path().join("via");
        std::os::unix::fs::symlink(open.join("inner"), &via).unwrap();
        assert_eq!(inspect(&via.join("../real.toml")).unwrap(), None);
        std::os::unix::fs::chown(&open, Some(65534), None).unwrap();
        let u = inspect(&via.join("../real.toml")).unwrap().unwrap();
        assert_eq!((u.path, u.uid), (open, 65534));
    }
}
