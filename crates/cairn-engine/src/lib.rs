//! Cairn's engine: everything that is the same for every kind of store.
//!
//! The engine owns the pipeline (snapshot, validate, restore, prune), the
//! on-disk formats (repository layout, manifest) and the plug-in registry.
//! It never names a store kind: kinds live in plug-in crates that submit a
//! [`plugin::PluginDescriptor`] with `inventory::submit!`.

// The plug-in API: what a store kind's crate needs, and all it may rely
// on. Each item is documented for plug-in authors (docs/plugin-guide.md).
pub mod capture;
pub mod checksum;
pub mod config;
pub mod error;
pub mod fsutil;
pub mod lock;
pub mod manifest;
pub mod plugin;
pub mod problem;
pub mod tree;

// The front-end API: one entry point per command, for `cairn` and `xtask`.
// Only each module's entry points and their request/outcome types are
// public; the stages' workings are `pub(crate)`.
pub mod browse;
pub mod cancel;
pub mod diff;
pub mod drill;
pub mod id;
pub mod legacy;
pub mod monitoring;
pub mod progress;
pub mod prune;
pub mod repair;
pub mod repo;
pub mod restore;
pub mod retention_span;
pub mod share;
pub mod snapshot;
pub mod space;
pub mod stores;
pub mod validate;

// The engine's own workings.
mod dirfd;
mod fault;
mod hooks;
mod parallel;
mod parent;
mod path_index;
mod replace;
mod trust;
mod xattr;

pub use capture::CaptureCtx;
pub use config::{Config, StoreConfig};
pub use error::{Error, Result};
pub use id::SnapshotId;
pub use manifest::Shape;
pub use manifest::{Entry, EntryKind, Manifest, StoreRecord, StoreStatus};
pub use plugin::{Depth, PluginDescriptor, Registry, StoreHandler};
pub use problem::Problem;
pub use repo::Repository;
pub use stores::{Store, Stores};

// Re-exported so plug-in crates submit descriptors and read options with the
// same versions the engine was built with.
pub use inventory;
pub use serde_json;
pub use toml;
