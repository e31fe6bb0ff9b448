//! moto, the second S3 implementation `.ci/remote-servers start` runs:
//! the same checks through the same OpenDAL client as against s3s. moto
//! does not check signatures; s3s does (tests/s3s.rs).
//!
//! These need `.ci/remote-servers start` and its env file sourced; without
//! them they fail (moto_from_env names the missing variable), never skip.

mod common;

use common::*;

fn moto(root: &str) -> opendal::blocking::Operator {
    let moto = cairn_testservers::moto_from_env().unwrap_or_else(|e| panic!("{e}"));
    s3_operator(
        &moto.endpoint,
        &moto.bucket,
        &moto.region,
        &moto.access_key_id,
        &moto.secret_access_key,
        root,
    )
}

#[test]
#[ignore = "needs .ci/remote-servers start"]
fn moto_round_trips_20_mb_by_multipart() {
    let op = moto(&fresh_prefix("large"));
    check_large_round_trip(&op, "big/object.bin");
    // moto, like AWS, gives a completed multipart upload a "-<parts>" ETag.
    let etag = op
        .stat("big/object.bin")
        .unwrap()
        .etag()
        .unwrap()
        .to_owned();
    assert!(etag.trim_matches('"').ends_with("-3"), "etag {etag}");
}

#[test]
#[ignore = "needs .ci/remote-servers start"]
fn moto_refuses_a_second_conditional_create() {
    check_conditional_create(&moto(&fresh_prefix("cond")), "locks/prune");
}

#[test]
#[ignore = "needs .ci/remote-servers start"]
fn moto_lists_across_pages() {
    check_listing(&moto(&fresh_prefix("list")), "chunks/", 25, 10);
}

#[test]
#[ignore = "needs .ci/remote-servers start"]
fn moto_deletes() {
    check_delete(&moto(&fresh_prefix("delete")), "a/b/c");
}
