//! End-to-end tests of off-site copies through the real `cairn` binary:
//! against a `file://` remote (`fs.rs`), against an S3-protocol server
//! started in-process on 127.0.0.1 that checks request signatures
//! (`s3.rs`), and, when `.ci/remote-servers start` has run, against moto
//! and an sshd on loopback (`external.rs`).
#![allow(clippy::unwrap_used)] // a panic is how a test fails

#[path = "../support/mod.rs"]
mod support;

mod common;
mod external;
mod fs;
mod s3;
