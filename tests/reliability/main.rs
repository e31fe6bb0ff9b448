//! Reliability and security invariants, each driven through the real binary.
#![allow(clippy::unwrap_used)] // a panic is how a test fails

#[path = "../support/mod.rs"]
mod support;

mod crash_restore;
mod crash_snapshot;
mod util;
