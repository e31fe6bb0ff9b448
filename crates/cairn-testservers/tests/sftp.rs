//! The sshd `.ci/remote-servers start` runs, through OpenDAL's sftp
//! service (which drives the system `ssh` binary): the same checks as
//! the S3 servers, plus the local-disk view tests use for tampering.
//!
//! These need `.ci/remote-servers start` and its env file sourced; without
//! them they fail (sftp_from_env names the missing variable), never skip.

mod common;

use cairn_testservers::SftpTarget;
use common::*;

fn target() -> SftpTarget {
    cairn_testservers::sftp_from_env().unwrap_or_else(|e| panic!("{e}"))
}

#[test]
#[ignore = "needs .ci/remote-servers start"]
fn sftp_round_trips_20_mb_and_the_bytes_land_under_the_root() {
    let target = target();
    let prefix = fresh_prefix("large");
    let op = sftp_operator(&target, &prefix);
    let data = check_large_round_trip(&op, "big/object.bin");
    let dir = target.root.join(prefix.trim_matches('/'));
    assert_eq!(
        sha256(&std::fs::read(dir.join("big/object.bin")).unwrap()),
        sha256(&data)
    );
    // 20 MB per run would pile up in target/remote-servers/sftp-root.
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
#[ignore = "needs .ci/remote-servers start"]
fn sftp_refuses_a_second_conditional_create() {
    check_conditional_create(
        &sftp_operator(&target(), &fresh_prefix("cond")),
        "locks/prune",
    );
}

#[test]
#[ignore = "needs .ci/remote-servers start"]
fn sftp_lists_across_pages() {
    check_listing(
        &sftp_operator(&target(), &fresh_prefix("list")),
        "chunks/",
        25,
        10,
    );
}

#[test]
#[ignore = "needs .ci/remote-servers start"]
fn sftp_deletes() {
    check_delete(&sftp_operator(&target(), &fresh_prefix("delete")), "a/b/c");
}

#[test]
#[ignore = "needs .ci/remote-servers start"]
fn sftp_with_an_unauthorised_key_is_refused() {
    let mut target = target();
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("stranger");
    let made = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(made.success());
    target.key_file = key;
    let err = sftp_operator(&target, &fresh_prefix("refused"))
        .write("x", b"x".to_vec())
        .expect_err("a write with a key the server does not know");
    // OpenDAL reports ssh's failure as Unexpected ("ssh error").
    assert_eq!(err.kind(), opendal::ErrorKind::Unexpected, "{err}");
}
