//! The store plug-in interface and the registry that plug-in crates fill.
//!
//! A plug-in crate submits one const [`PluginDescriptor`] with
//! `inventory::submit!`; the engine looks kinds up by name and never matches
//! on one. A binary (or test) links a plug-in with `use <crate> as _;`.

use std::collections::BTreeMap;
use std::fs::{self, Metadata};
use std::path::Path;

use crate::capture::CaptureCtx;
use crate::config::StoreConfig;
use crate::error::{io_at, Error, Result};
use crate::manifest::{Shape, StoreRecord};
use crate::problem::Problem;

/// Documentation of one plug-in option, shown by `cairn stores` and written
/// into the starter config by `cairn init`.
#[derive(Debug)]
pub struct OptionDoc {
    pub name: &'static str,
    pub doc: &'static str,
    /// A TOML value, e.g. `"data/.ingest.lock"`.
    pub example: &'static str,
}

/// What a plug-in crate registers. Everything is `'static` so it can be
/// built in a const context, as `inventory::submit!` requires.
#[derive(Debug)]
pub struct PluginDescriptor {
    /// The `kind` users write in `cairn.toml`.
    pub kind: &'static str,
    /// One line for `cairn stores`.
    pub summary: &'static str,
    /// Whether `path` names one file or a directory.
    pub shape: Shape,
    /// An example `path` for the starter config.
    pub example_path: &'static str,
    pub options: &'static [OptionDoc],
    /// Checks the store's options and builds its handler.
    pub build: fn(&StoreConfig) -> Result<Box<dyn StoreHandler>>,
    /// `module_path!()` of the plug-in, to name it in duplicate reports.
    pub origin: &'static str,
}

inventory::collect!(PluginDescriptor);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// Sizes and quick checks (a quick validation).
    Quick,
    /// Every byte hashed, full integrity checks.
    Deep,
}

/// The pipeline stages a store kind implements. The engine does everything
/// generic around them: manifests, hashing, verification, staging,
/// locking, the swap itself and rollback.
///
/// A handler is built once per command from the store's config (see
/// [`crate::Stores`]) and used by every stage of that command.
pub trait StoreHandler: Send + Sync {
    /// Snapshot: capture the live source (`ctx.source()`) into `ctx`.
    fn snapshot(&self, ctx: &mut CaptureCtx<'_>) -> Result<()>;

    /// Validate: the kind's own checks on a captured store whose files the
    /// engine has already compared with the manifest. `root` is the store's
    /// directory inside a snapshot or a restore staging area.
    fn check(&self, _root: &Path, _record: &StoreRecord, _depth: Depth) -> Vec<Problem> {
        Vec::new()
    }

    /// Diff: what the kind counts in a store's copy at `root` (a snapshot's
    /// store directory, opened read-only), by name — SQLite: rows per
    /// table. `None`: the kind counts nothing; `Some(Err(detail))`: the
    /// copy could not be counted (a damaged database), never a panic.
    fn row_counts(
        &self,
        _root: &Path,
        _record: &StoreRecord,
    ) -> Option<std::result::Result<Vec<(String, u64)>, String>> {
        None
    }

    /// Restore gate: `Some(reason)` when the live store is visibly in use
    /// by another process, so swapping it now would corrupt it.
    fn in_use(&self, _live: &Path) -> Result<Option<String>> {
        Ok(None)
    }

    /// Drill: checks on a restored copy at `root`, each named, with a detail
    /// for the report (`Ok` passed, `Err` failed). The default runs
    /// [`StoreHandler::check`]; kinds add what an operator wants to see
    /// (SQLite: row counts per table).
    fn drill(
        &self,
        root: &Path,
        record: &StoreRecord,
    ) -> Vec<(String, std::result::Result<String, String>)> {
        let problems = self.check(root, record, Depth::Deep);
        if problems.is_empty() {
            return vec![(format!("{}_check", record.kind), Ok("ok".into()))];
        }
        problems
            .into_iter()
            .map(|p| (p.code.to_owned(), Err(p.to_string())))
            .collect()
    }

    /// Restore, just before the engine swaps the verified copy in at
    /// `live` (the configured path; it may not exist yet). For what must
    /// go before the swap: SQLite checkpoints the live database and
    /// removes its sidecars, so no stale `-wal` can meet the restored file.
    ///
    /// Must be idempotent: a rollback calls it again on the same path, and
    /// a rerun after a crash may call it on a target it already prepared.
    fn before_swap(&self, _live: &Path) -> Result<()> {
        Ok(())
    }

    /// Restore, right after the swap, on `live` as the service will open
    /// it: put back what the snapshot holds differently from the live
    /// store, then report (SQLite: the recorded journal mode — a snapshot
    /// holds databases in rollback-journal mode — then `integrity_check`).
    ///
    /// It may write, but only to make the store what it was when captured,
    /// and it must be idempotent, like `before_swap`: a rollback calls it
    /// again, and a rerun may call it on a store it already finished. It
    /// is also called on a restore elsewhere (into a new directory; a
    /// drill, which then checks every byte against the manifest): a kind
    /// that writes should do so only when `live` is its configured path
    /// ([`same_file`]), so a restore elsewhere gives the snapshot's bytes.
    fn after_swap(&self, _live: &Path, _record: &StoreRecord) -> SwapReport {
        SwapReport::default()
    }
}

/// What a kind found when it looked at a store just swapped in.
#[derive(Debug, Default, Clone)]
pub struct SwapReport {
    /// `None` when the kind has no integrity check to run after a swap.
    pub integrity_ok: Option<bool>,
    pub detail: Option<String>,
}

/// The registered plug-ins, by kind.
#[derive(Debug)]
pub struct Registry {
    kinds: BTreeMap<&'static str, &'static PluginDescriptor>,
}

impl Registry {
    /// Every descriptor linked into this binary. Two plug-ins claiming one
    /// kind is an error naming both, never a silent shadowing.
    pub fn from_inventory() -> Result<Registry> {
        Registry::from_descriptors(inventory::iter::<PluginDescriptor>)
    }

    pub fn from_descriptors(
        descriptors: impl IntoIterator<Item = &'static PluginDescriptor>,
    ) -> Result<Registry> {
        let mut kinds: BTreeMap<&'static str, &'static PluginDescriptor> = BTreeMap::new();
        for d in descriptors {
            if let Some(first) = kinds.insert(d.kind, d) {
                return Err(Error::Usage {
                    message: format!(
                        "store kind {:?} is registered twice (by {} and {}); link only one of them",
                        d.kind, first.origin, d.origin
                    ),
                });
            }
        }
        Ok(Registry { kinds })
    }

    pub fn get(&self, kind: &str) -> Option<&'static PluginDescriptor> {
        self.kinds.get(kind).copied()
    }

    pub fn descriptors(&self) -> impl Iterator<Item = &'static PluginDescriptor> + '_ {
        self.kinds.values().copied()
    }

    pub fn kind_names(&self) -> Vec<&'static str> {
        self.kinds.keys().copied().collect()
    }

    /// Builds the handler for a store; an unknown kind is a config error
    /// naming the kind, the store and the file.
    pub(crate) fn build(
        &self,
        store: &StoreConfig,
    ) -> Result<(&'static PluginDescriptor, Box<dyn StoreHandler>)> {
        let d = self.get(&store.kind).ok_or_else(|| {
            Error::config(
                &store.origin,
                format!(
                    "store {:?}: unknown kind {:?} (registered kinds: {})",
                    store.name,
                    store.kind,
                    self.kind_names().join(", ")
                ),
            )
        })?;
        Ok((d, (d.build)(store)?))
    }
}

/// `fs::symlink_metadata` with the error naming the path.
pub fn lstat(path: &Path) -> Result<Metadata> {
    fs::symlink_metadata(path).map_err(io_at("stat", path))
}

/// True when `a` and `b` are the same file or directory (device and
/// inode, symlinks followed); false when either cannot be looked at.
/// For `after_swap`: is the store restored onto its configured path?
pub fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (fs::metadata(a), fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build_nothing(_: &StoreConfig) -> Result<Box<dyn StoreHandler>> {
        Err(Error::Usage {
            message: "test descriptor".into(),
        })
    }

    static FIRST: PluginDescriptor = PluginDescriptor {
        kind: "twice",
        summary: "first",
        shape: Shape::File,
        example_path: "\"x\"",
        options: &[],
        build: build_nothing,
        origin: "plugin_a",
    };
    static SECOND: PluginDescriptor = PluginDescriptor {
        kind: "twice",
        summary: "second",
        shape: Shape::File,
        example_path: "\"x\"",
        options: &[],
        build: build_nothing,
        origin: "plugin_b",
    };

    #[test]
    fn a_duplicate_kind_is_reported_with_both_plugins_not_shadowed() {
        let err = Registry::from_descriptors([&FIRST, &SECOND]).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("\"twice\"") && text.contains("plugin_a") && text.contains("plugin_b"),
            "{text}"
        );
        assert!(matches!(err, Error::Usage { .. }), "{err:?}");
        let one = Registry::from_descriptors([&FIRST]).unwrap();
        assert_eq!(one.kind_names(), vec!["twice"]);
    }
}
