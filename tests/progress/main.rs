//! The snapshot's progress (issue 17, point 7): a total known from the
//! walk, never passed by the bytes counted, which end equal to the
//! snapshot's size; its own validation's hashing is reported apart.
//!
//! Its own test binary: the progress sink is process-wide, and this one
//! must see no other test's runs.
#![allow(clippy::unwrap_used)] // a panic is how a test fails

#[path = "../support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};

use cairn_chroma_dir as _;
use cairn_engine::progress::ProgressSink;
use cairn_registry_json as _;
use cairn_sqlite as _;

static IN_SNAPSHOT: AtomicBool = AtomicBool::new(false);
static TOTAL_KNOWN: AtomicBool = AtomicBool::new(false);
static GROWN: AtomicU64 = AtomicU64::new(0);
static COUNTED: AtomicU64 = AtomicU64::new(0);
static VERIFIED: AtomicU64 = AtomicU64::new(0);
static PASSED_TOTAL: AtomicBool = AtomicBool::new(false);

struct Recorder;

impl ProgressSink for Recorder {
    fn begin(&self, phase: &str, total: Option<u64>) {
        if phase == "snapshot" {
            IN_SNAPSHOT.store(true, SeqCst);
            TOTAL_KNOWN.store(total.is_some(), SeqCst);
            GROWN.store(total.unwrap_or(0), SeqCst);
        }
    }
    fn advance(&self, bytes: u64) {
        if IN_SNAPSHOT.load(SeqCst) {
            let counted = COUNTED.fetch_add(bytes, SeqCst) + bytes;
            if counted > GROWN.load(SeqCst) {
                PASSED_TOTAL.store(true, SeqCst);
            }
        }
    }
    fn grow(&self, bytes: u64) {
        if IN_SNAPSHOT.load(SeqCst) {
            GROWN.fetch_add(bytes, SeqCst);
        }
    }
    fn verified(&self, bytes: u64) {
        if IN_SNAPSHOT.load(SeqCst) {
            VERIFIED.fetch_add(bytes, SeqCst);
        }
    }
    fn finish(&self) {
        IN_SNAPSHOT.store(false, SeqCst);
    }
}

/// Takes a snapshot in this process; returns its size as its manifest
/// records it (every entry's size, what `list` shows).
fn snapshot_size(env: &support::Env) -> u64 {
    let cfg = env.path("cairn.toml");
    let cfg = cfg.to_str().unwrap();
    let run = support::cairn_in_process(&["--config", cfg, "--json", "snapshot"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let id = run.json()["id"].as_str().unwrap().to_owned();
    let list = support::cairn_in_process(&["--config", cfg, "--json", "list"]).json();
    list["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id.as_str())
        .and_then(|s| s["bytes"].as_u64())
        .unwrap()
}

#[test]
fn a_snapshot_counts_its_bytes_once_against_a_total_from_its_walk() {
    cairn_engine::progress::install(Box::new(Recorder));
    let env = support::Env::new();
    // Twice: a full copy, then one that hard-links unchanged files from
    // the first and copies the changed one.
    for round in 0..2 {
        GROWN.store(0, SeqCst);
        COUNTED.store(0, SeqCst);
        VERIFIED.store(0, SeqCst);
        if round == 1 {
            std::fs::write(env.path("data/chroma/seg-0001/header.bin"), b"header v2").unwrap();
        }
        let size = snapshot_size(&env);
        assert!(TOTAL_KNOWN.load(SeqCst), "round {round}: no total up front");
        assert!(
            !PASSED_TOTAL.load(SeqCst),
            "round {round}: counted past the total"
        );
        assert_eq!(COUNTED.load(SeqCst), size, "round {round}: counted bytes");
        assert_eq!(GROWN.load(SeqCst), size, "round {round}: total");
        // Its validation hashed the copies, reported apart.
        assert!(VERIFIED.load(SeqCst) > 0, "round {round}");
    }
}
