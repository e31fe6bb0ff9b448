//! Cairn's engine: everything that is the same for every kind of store.
//!
//! The engine owns the pipeline (snapshot, validate, restore, prune), the
//! on-disk formats (repository layout, manifest) and the plug-in registry.
//! It never names a store kind: kinds live in plug-in crates that submit a
//! [`plugin::PluginDescriptor`] with `inventory::submit!`.

pub mod capture;
pub mod checksum;
pub mod config;
pub mod drill;
pub mod error;
pub mod fault;
pub mod fsutil;
pub mod hooks;
pub mod id;
pub mod lock;
pub mod manifest;
pub mod parallel;
pub mod plugin;
pub mod problem;
pub mod progress;
pub mod prune;
pub mod repo;
pub mod restore;
pub mod snapshot;
pub mod tree;
pub mod trust;
pub mod validate;

pub use config::{Config, StoreConfig};
pub use error::{Error, ExitClass, Result};
pub use id::SnapshotId;
pub use manifest::{Entry, EntryKind, Manifest, StoreRecord, StoreStatus};
pub use plugin::{CaptureCtx, Depth, PluginDescriptor, Registry, Shape, StoreHandler};
pub use problem::Problem;
pub use repo::Repository;

// Re-exported so plug-in crates submit descriptors and read options with the
// same versions the engine was built with.
pub use inventory;
pub use serde_json;
pub use toml;
