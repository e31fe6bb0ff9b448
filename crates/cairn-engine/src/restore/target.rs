//! Where one store is restored: resolved once, safely, and held open.
//!
//! A live target is the store's configured path, resolved by
//! `dirfd::resolve` (no symlink the service's user could have planted is
//! followed). A target elsewhere, under a directory DIR, is `DIR/<store>`, which must
//! be new or an empty directory of the invoking user's: Cairn creates it
//! 0700 and never adopts another user's directory or follows a link there.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use crate::dirfd::{self, DirFd, Resolved};
use crate::error::{Error, Result};
use crate::manifest::{Shape, StoreRecord};

/// Directories a restore creates on the way to a live store that does
/// not exist yet: as `mkdir -p` would, before the store's own owner and
/// modes are known.
const LIVE_PARENT_MODE: u32 = 0o755;
/// Directories a restore elsewhere creates: private to the invoker.
const TO_DIR_MODE: u32 = 0o700;

pub(crate) struct Target {
    /// The directory that holds the store (a file store: its file's
    /// directory; a directory store: the store directory's parent).
    pub parent: DirFd,
    /// The store's name in `parent`.
    pub name: OsString,
    /// The store's path, for messages.
    pub shown: PathBuf,
    /// Directories created to reach it, outermost first (removed again if
    /// the restore is refused).
    pub created: Vec<(DirFd, OsString)>,
    /// A live restore: replaced files keep the live owner and mode.
    pub live: bool,
    /// The store existed when the restore was planned.
    pub existed: bool,
}

impl Target {
    /// The configured path of a live store.
    pub(crate) fn live(path: &Path, follow_symlink: bool) -> Result<Target> {
        let (resolved, created) = dirfd::resolve_creating(path, follow_symlink, LIVE_PARENT_MODE)?;
        let Resolved {
            parent, name, stat, ..
        } = resolved;
        Ok(Target {
            parent,
            name,
            shown: path.to_owned(),
            created,
            live: true,
            existed: stat.is_some(),
        })
    }

    /// `DIR/<store>` (and, for a file store, the file in it). Refused, it
    /// leaves no directory it created.
    pub(crate) fn elsewhere(dir: &Path, record: &StoreRecord) -> Result<Target> {
        let mut created = Vec::new();
        let target = Target::elsewhere_into(dir, record, &mut created);
        if target.is_err() {
            for (parent, name) in created.iter().rev() {
                let _ = parent.remove_empty_dir(name);
            }
        }
        target
    }

    fn elsewhere_into(
        dir: &Path,
        record: &StoreRecord,
        created: &mut Vec<(DirFd, OsString)>,
    ) -> Result<Target> {
        let (resolved, made) = dirfd::resolve_creating(dir, false, TO_DIR_MODE)?;
        created.extend(made);
        let top = match resolved.stat {
            Some(_) => resolved.open_dir()?,
            None => {
                let made = resolved.parent.create_dir(&resolved.name)?;
                created.push((resolved.parent.clone(), resolved.name.clone()));
                made
            }
        };
        let store = OsString::from(&record.name);
        match top.stat(&store) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("stat", top.shown(&store), e)),
            Ok(st) if dirfd::is_symlink(&st) => {
                return Err(Error::UnsafePath {
                    path: top.shown(&store),
                    reason: "is a symlink".into(),
                })
            }
            Ok(st) if !dirfd::is_dir(&st) => {
                return Err(Error::TargetNotEmpty {
                    path: top.shown(&store),
                })
            }
            Ok(st) if st.st_uid != rustix::process::geteuid().as_raw() => {
                return Err(Error::UnsafePath {
                    path: top.shown(&store),
                    reason: format!(
                        "already exists and belongs to uid {}, not to you (restored files would be reachable by its owner)",
                        st.st_uid
                    ),
                })
            }
            Ok(_) => {
                if !top.open_dir(&store)?.names()?.is_empty() {
                    return Err(Error::TargetNotEmpty {
                        path: top.shown(&store),
                    });
                }
            }
        }
        let target = match (record.shape, record.entries.first()) {
            (Shape::File, Some(entry)) => {
                let store_dir = match top.stat(&store) {
                    Ok(_) => top.open_dir(&store)?,
                    Err(_) => {
                        let made = top.create_dir(&store)?;
                        created.push((top.clone(), store.clone()));
                        made
                    }
                };
                Target {
                    shown: store_dir.shown(&entry.path),
                    name: OsString::from(&entry.path),
                    parent: store_dir,
                    created: std::mem::take(created),
                    live: false,
                    existed: false,
                }
            }
            _ => Target {
                shown: top.shown(&store),
                name: store,
                parent: top,
                created: std::mem::take(created),
                live: false,
                existed: false,
            },
        };
        Ok(target)
    }

    /// A path any library may open that reaches the store through the held
    /// parent directory.
    pub(crate) fn library_path(&self) -> PathBuf {
        self.parent.fd_path(&self.name)
    }

    pub(crate) fn exists(&self) -> bool {
        self.parent.stat(&self.name).is_ok()
    }

    /// A directory store's directory, opened (never through a link), or
    /// created when it does not exist (0700 elsewhere; as `mkdir` would for
    /// a live store). `true` when created.
    pub(crate) fn open_or_create_dir(&self) -> Result<(DirFd, bool)> {
        let mode = if self.live {
            LIVE_PARENT_MODE
        } else {
            TO_DIR_MODE
        };
        match self.parent.stat(&self.name) {
            Ok(_) => Ok((self.parent.open_dir(&self.name)?, false)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Ok((self.parent.create_dir_mode(&self.name, mode)?, true))
            }
            Err(e) => Err(Error::io("stat", &self.shown, e)),
        }
    }

    /// Removes the directories this target created, innermost first, if
    /// they are still empty.
    pub(crate) fn remove_created(&self) {
        for (parent, name) in self.created.iter().rev() {
            let _ = parent.remove_empty_dir(name);
        }
    }

    pub(crate) fn name(&self) -> &OsStr {
        &self.name
    }
}
