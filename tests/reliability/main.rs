//! Reliability and security invariants, each driven through the real binary.

#[path = "../support/mod.rs"]
mod support;
