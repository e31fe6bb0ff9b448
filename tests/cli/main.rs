//! End-to-end tests of the real `cairn` binary (core slice, restore,
//! retention, drill, operator experience).

#[path = "../support/mod.rs"]
mod support;
