//! End-to-end tests of the real `cairn` binary (core slice, restore,
//! retention, drill, operator experience).
#![allow(clippy::unwrap_used)] // a panic is how a test fails

#[path = "../support/mod.rs"]
mod support;

mod core;
mod drill;
mod escaping;
mod future;
mod incremental;
mod options;
mod output;
mod overlap;
mod plugin_guide;
mod prune;
mod repair;
mod required_option;
mod restore;
mod safety_net;
mod sqlite_mode;
mod trust;
