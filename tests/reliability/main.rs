//! Reliability and security invariants, each driven through the real binary.
//! See docs/reliability.md for the guarantee each module proves.
#![allow(clippy::unwrap_used)] // a panic is how a test fails

#[path = "../support/mod.rs"]
mod support;

mod concurrency;
mod crash_restore;
mod crash_snapshot;
mod disk_full;
mod durability;
mod fidelity;
mod garbage;
mod hostile;
mod permissions;
mod security;
mod signals;
mod special_files;
mod symlinks;
mod util;
