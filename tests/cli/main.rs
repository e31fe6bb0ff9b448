//! End-to-end tests of the real `cairn` binary (core slice, restore,
//! retention, drill, operator experience).
#![allow(clippy::unwrap_used)] // a panic is how a test fails

#[path = "../support/mod.rs"]
mod support;

mod browse;
mod core;
mod drill;
mod drill_checks;
mod escaping;
mod future;
mod incremental;
mod legacy;
mod monitoring;
mod options;
mod output;
mod overlap;
mod partial_restore;
mod plugin_guide;
mod prune;
mod repair;
mod required_option;
mod restore;
mod retention;
mod rough_edges;
mod safety_net;
mod space;
mod sqlite_mode;
mod trust;
