//! Invariant 4: the files that make a snapshot final reach the disk in the
//! right order: data and manifest synced, then the rename into
//! `snapshots/`, then the directory synced. Observed with strace, so the
//! test is `#[ignore = "needs strace"]` (.ci/run installs it and runs it).
//!
//! Fails without: the sync calls in `snapshot::build_snapshot` and
//! `Manifest::write_to`, and their order.

use std::process::Command;

use crate::support::{self, Env, CAIRN};

#[test]
#[ignore = "needs strace"]
fn snapshot_syncs_manifest_then_renames_then_syncs_the_directory() {
    support::require_program("strace", "-V", "strace");
    let env = Env::new();
    let log = env.path("strace.log");
    let out = Command::new("strace")
        .args([
            "-f",
            "-y",
            "-qq",
            "-e",
            "trace=fsync,fdatasync,syncfs,rename,renameat,renameat2",
            "-o",
        ])
        .arg(&log)
        .arg(CAIRN)
        .args(env.with_config(&["--json", "snapshot"]))
        .current_dir(&env.root)
        .env_remove("CAIRN_CONFIG")
        .env_remove("CAIRN_FAILPOINT")
        .output()
        .unwrap();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    // Where ptrace is not permitted, strace says so on stderr: a failure
    // to report, never a pass.
    assert!(
        out.status.success(),
        "strace or cairn failed: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = doc["id"].as_str().unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let find = |pred: &dyn Fn(&str) -> bool, what: &str| -> usize {
        lines
            .iter()
            .position(|l| pred(l))
            .unwrap_or_else(|| panic!("no {what} in the trace:\n{text}"))
    };
    let tmp = format!("tmp/{id}");
    let snap = format!("snapshots/{id}");
    let data_sync = find(
        &|l| {
            l.contains("syncfs(") || (l.contains("fsync(") && l.contains(&format!("{tmp}/stores")))
        },
        "data sync",
    );
    let manifest_sync = find(
        &|l| {
            (l.contains("fsync(") || l.contains("fdatasync("))
                && l.contains(&format!("{tmp}/manifest.json"))
        },
        "manifest fsync",
    );
    let rename = find(
        &|l| {
            l.contains("rename") && l.contains(&tmp) && l.contains(&snap) && !l.contains("manifest")
        },
        "rename into snapshots/",
    );
    let dir_sync = lines
        .iter()
        .enumerate()
        .skip(rename + 1)
        .find(|(_, l)| l.contains("fsync(") && l.trim_end().contains("snapshots>)"))
        .map(|(i, _)| i)
        .unwrap_or_else(|| panic!("no fsync of snapshots/ after the rename:\n{text}"));
    assert!(data_sync < manifest_sync, "data synced after the manifest");
    assert!(manifest_sync < rename, "manifest synced after the rename");
    assert!(rename < dir_sync);
}
