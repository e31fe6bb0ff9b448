//! `file://` remotes (a NAS mount): OpenDAL's fs service passes the same
//! checks as the servers, with and without an atomic-write directory.

mod common;

use common::*;

#[test]
fn fs_passes_the_server_checks_writing_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let op = fs_operator(dir.path(), None);
    let data = check_large_round_trip(&op, "big/object.bin");
    assert_eq!(
        sha256(&std::fs::read(dir.path().join("big/object.bin")).unwrap()),
        sha256(&data)
    );
    check_conditional_create(&op, "locks/prune");
    check_listing(&op, "chunks/", 25, 10);
    check_delete(&op, "a/b/c");
}

#[test]
fn fs_passes_the_server_checks_with_an_atomic_write_dir() {
    let dir = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let op = fs_operator(dir.path(), Some(tmp.path()));
    check_large_round_trip(&op, "big/object.bin");
    check_conditional_create(&op, "locks/prune");
    check_listing(&op, "chunks/", 25, 10);
    check_delete(&op, "a/b/c");
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert!(left.is_empty(), "temporary files left behind: {left:?}");
}
