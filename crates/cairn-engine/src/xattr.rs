//! Extended attributes and POSIX ACLs, read from and written to open
//! descriptors only (`flistxattr`, `fgetxattr`, `fsetxattr`,
//! `fremovexattr`): the inode whose attributes are recorded is the one
//! whose bytes were copied, and a restore writes them to the file it made.
//!
//! Kept: the `user.`, `trusted.` and `security.` namespaces, and the ACLs
//! `system.posix_acl_access` and `system.posix_acl_default`. Not kept:
//! other `system.` attributes (NFSv4 ACLs and the like), attributes of
//! symlinks, and inode flags (`chattr +i`, `+a`), which are not extended
//! attributes. What a process may read or set depends on who it is:
//! `trusted.` is invisible to anyone but root, and setting
//! `security.capability` or `trusted.` needs root.

use std::os::fd::AsFd;
use std::path::Path;

use rustix::io::Errno;

use crate::error::{Error, Result};
use crate::manifest::{RawPath, Xattr};

pub(crate) const ACL_ACCESS: &[u8] = b"system.posix_acl_access";
pub(crate) const ACL_DEFAULT: &[u8] = b"system.posix_acl_default";
/// The kernel's limit on one value (XATTR_SIZE_MAX) and on a name list
/// (XATTR_LIST_MAX).
const MAX_VALUE: usize = 64 * 1024;

/// Whether an attribute of this name is recorded and restored.
pub(crate) fn kept(name: &[u8]) -> bool {
    name.starts_with(b"user.")
        || name.starts_with(b"trusted.")
        || name.starts_with(b"security.")
        || name == ACL_ACCESS
        || name == ACL_DEFAULT
}

/// The file system does not do extended attributes at all.
fn unsupported(e: Errno) -> bool {
    e == Errno::NOTSUP || e == Errno::OPNOTSUPP
}

/// Every kept attribute of the open file or directory `fd`, sorted by
/// name. A file system without extended attributes has none.
pub(crate) fn read(fd: impl AsFd, shown: &Path) -> Result<Vec<Xattr>> {
    let fd = fd.as_fd();
    let err = |e: Errno| Error::io("read extended attributes of", shown, e.into());
    let mut list = vec![0u8; 4096];
    let n = loop {
        match rustix::fs::flistxattr(fd, &mut list[..]) {
            Ok(n) => break n,
            Err(Errno::RANGE) if list.len() < MAX_VALUE => list.resize(MAX_VALUE, 0),
            Err(e) if unsupported(e) => return Ok(Vec::new()),
            Err(e) => return Err(err(e)),
        }
    };
    let mut out = Vec::new();
    let mut value = vec![0u8; 256];
    for name in list[..n].split(|b| *b == 0).filter(|n| !n.is_empty()) {
        if !kept(name) {
            continue;
        }
        let len = loop {
            match rustix::fs::fgetxattr(fd, name, &mut value[..]) {
                Ok(len) => break Some(len),
                Err(Errno::RANGE) if value.len() < MAX_VALUE => value.resize(MAX_VALUE, 0),
                // Removed since it was listed.
                Err(Errno::NODATA) => break None,
                Err(e) => return Err(err(e)),
            }
        };
        if let Some(len) = len {
            out.push(Xattr {
                name: RawPath::from_bytes(name),
                value: value[..len].to_vec(),
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// One attribute of `path` (Cairn's own restored copy; not followed if a
/// link), `None` when it has none of that name or it cannot be read.
pub(crate) fn read_path(path: &Path, name: &[u8]) -> Option<Vec<u8>> {
    let mut value = vec![0u8; MAX_VALUE];
    let len = rustix::fs::lgetxattr(path, name, &mut value[..]).ok()?;
    value.truncate(len);
    Some(value)
}

/// Takes the default ACL off a directory Cairn made for itself, so that
/// nothing made in it inherits an ACL. `true` when nothing can inherit
/// one now (taken off, there was none, or the file system has no ACLs);
/// `false` when it may still be there.
pub(crate) fn clear_default_acl(dir: impl AsFd) -> bool {
    match rustix::fs::fremovexattr(dir.as_fd(), ACL_DEFAULT) {
        Ok(()) | Err(Errno::NODATA) => true,
        Err(e) => unsupported(e),
    }
}

/// Gives the open file or directory `fd` exactly the recorded attributes
/// Cairn keeps: each one set, and, where it `may_have_inherited` one, an
/// ACL inherited from a parent's default ACL that was not recorded
/// removed. Returns the names that could not be set because of who is
/// restoring (not root) or what the file system does; any other failure
/// is an error.
pub(crate) fn apply(
    fd: impl AsFd,
    xattrs: &[Xattr],
    shown: &Path,
    may_have_inherited: bool,
) -> Result<Vec<RawPath>> {
    let fd = fd.as_fd();
    let mut not_set = Vec::new();
    for acl in [ACL_ACCESS, ACL_DEFAULT] {
        if !may_have_inherited || xattrs.iter().any(|x| x.name.as_bytes() == acl) {
            continue;
        }
        match rustix::fs::fremovexattr(fd, acl) {
            Ok(()) | Err(Errno::NODATA) => {}
            // No ACLs here (or a file, which has no default ACL).
            Err(e) if unsupported(e) || e == Errno::INVAL || e == Errno::ACCESS => {}
            Err(e) if e == Errno::PERM => {}
            Err(e) => return Err(Error::io("remove an inherited ACL of", shown, e.into())),
        }
    }
    for x in xattrs {
        match rustix::fs::fsetxattr(
            fd,
            x.name.as_bytes(),
            &x.value,
            rustix::fs::XattrFlags::empty(),
        ) {
            Ok(()) => {}
            Err(e)
                if e == Errno::PERM
                    || e == Errno::ACCESS
                    || e == Errno::INVAL
                    || unsupported(e) =>
            {
                not_set.push(x.name.clone())
            }
            Err(e) => return Err(Error::io("set an extended attribute of", shown, e.into())),
        }
    }
    Ok(not_set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_namespaces() {
        for name in [
            &b"user.origin"[..],
            b"trusted.overlay.opaque",
            b"security.capability",
            ACL_ACCESS,
            ACL_DEFAULT,
        ] {
            assert!(kept(name), "{name:?}");
        }
        for name in [
            &b"system.nfs4_acl"[..],
            b"system.posix_acl_accessX",
            b"other.x",
        ] {
            assert!(!kept(name), "{name:?}");
        }
    }

    #[test]
    fn user_attributes_round_trip_by_descriptor() {
        let dir = tempfile::tempdir().unwrap();
        let a = std::fs::File::create(dir.path().join("a")).unwrap();
        let b = std::fs::File::create(dir.path().join("b")).unwrap();
        match rustix::fs::fsetxattr(&a, "user.x", b"\0\xff", rustix::fs::XattrFlags::empty()) {
            Ok(()) => {}
            Err(e) if unsupported(e) => panic!(
                "this test needs a file system with user extended attributes under {}: {e}",
                dir.path().display()
            ),
            Err(e) => panic!("{e}"),
        }
        let read_a = read(&a, Path::new("a")).unwrap();
        assert_eq!(
            read_a,
            vec![Xattr {
                name: "user.x".into(),
                value: b"\0\xff".to_vec()
            }]
        );
        assert!(apply(&b, &read_a, Path::new("b"), true).unwrap().is_empty());
        assert_eq!(read(&b, Path::new("b")).unwrap(), read_a);
    }
}
