//! The OpenDAL client the way cairn-remote is meant to build it (see
//! docs/offsite-servers.md), and the checks every server must pass
//! through it. Shared by the s3s, moto and sftp test files.
#![allow(dead_code)] // each test binary uses its own part of this

use std::sync::{LazyLock, Once};
use std::time::Duration;

use opendal::blocking;
use opendal::layers::{RetryLayer, TimeoutLayer};
use opendal::options::{ListOptions, ReadOptions, WriteOptions};
use opendal::{ErrorKind, Operator};
use sha2::{Digest, Sha256};

/// OpenDAL's blocking operator needs a tokio runtime that outlives it, and
/// must not be called from a thread that is already inside a runtime.
pub static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime for the OpenDAL client")
});

/// With `default-features = false` OpenDAL has no HTTP transport until one
/// is installed, and reqwest's `rustls-no-provider` panics on building a
/// client until a rustls crypto provider is installed. Both calls are
/// first-installed-wins, so this is safe to call from every test.
pub fn install_http_transport() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .expect("a reqwest client");
        opendal::HttpTransporter::install_default(
            opendal_http_transport_reqwest::ReqwestTransport::new(client),
        );
    });
}

/// Explicit timeouts: TimeoutLayer's defaults (60 s per operation, 10 s
/// per I/O call) would cut off a large part on a slow link; retries with
/// backoff, few and short here so a test against a stopped server ends
/// quickly.
fn finish(op: Operator) -> blocking::Operator {
    let op = op
        .layer(
            TimeoutLayer::new()
                .with_timeout(Duration::from_secs(120))
                .with_io_timeout(Duration::from_secs(120)),
        )
        .layer(
            RetryLayer::new()
                .with_max_times(3)
                .with_min_delay(Duration::from_millis(50))
                .with_max_delay(Duration::from_millis(400))
                .with_jitter(),
        );
    let _in_runtime = RUNTIME.enter();
    blocking::Operator::new(op).expect("a blocking operator")
}

/// An S3 operator with path-style requests to a custom endpoint and only
/// the given keys (no environment, no ~/.aws, no instance metadata).
pub fn s3_operator(
    endpoint: &str,
    bucket: &str,
    region: &str,
    access_key_id: &str,
    secret_access_key: &str,
    root: &str,
) -> blocking::Operator {
    install_http_transport();
    let builder = opendal::services::S3::default()
        .endpoint(endpoint)
        .bucket(bucket)
        .region(region)
        .access_key_id(access_key_id)
        .secret_access_key(secret_access_key)
        .root(root)
        .disable_config_load()
        .disable_ec2_metadata();
    finish(Operator::new(builder).expect("an S3 operator"))
}

pub fn server_operator(server: &cairn_testservers::S3Server, root: &str) -> blocking::Operator {
    s3_operator(
        &server.endpoint(),
        server.bucket(),
        server.region(),
        server.access_key_id(),
        server.secret_access_key(),
        root,
    )
}

/// Deterministic, incompressible-looking bytes (xorshift), so a test
/// failure can be reproduced and no two chunks are alike.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

pub const MIB: usize = 1024 * 1024;

/// Writes `len` bytes through OpenDAL's writer in 8 MiB parts, 2 at a time
/// (a multipart upload on S3), returns the bytes written.
pub fn write_in_parts(op: &blocking::Operator, path: &str, len: usize, seed: u64) -> Vec<u8> {
    let data = pseudo_random(len, seed);
    let options = WriteOptions {
        chunk: Some(8 * MIB),
        concurrent: 2,
        ..WriteOptions::default()
    };
    let mut writer = op
        .writer_options(path, options)
        .expect("open a writer for the large object");
    // Feed it in 1 MiB pieces, as a streaming push would.
    for piece in data.chunks(MIB) {
        writer
            .write(piece.to_vec())
            .expect("write a piece of the large object");
    }
    writer.close().expect("complete the large object");
    data
}

/// A 20 MB object written in parts comes back with the same SHA-256, in
/// full and by range.
pub fn check_large_round_trip(op: &blocking::Operator, path: &str) -> Vec<u8> {
    let data = write_in_parts(op, path, 20 * 1000 * 1000, 20);
    let meta = op.stat(path).expect("stat the large object");
    assert_eq!(meta.content_length(), data.len() as u64);
    let back = op.read(path).expect("read the large object back").to_vec();
    assert_eq!(back.len(), data.len());
    assert_eq!(
        sha256(&back),
        sha256(&data),
        "20 MB object changed in transit"
    );

    let range = 9 * MIB as u64 - 100..9 * MIB as u64 + 100; // across a part boundary
    let slice = op
        .read_options(
            path,
            ReadOptions {
                range: range.clone().into(),
                ..ReadOptions::default()
            },
        )
        .expect("ranged read")
        .to_vec();
    assert_eq!(slice, data[range.start as usize..range.end as usize]);
    data
}

/// A conditional create succeeds once, then fails with ConditionNotMatch
/// and leaves the first object's bytes in place.
pub fn check_conditional_create(op: &blocking::Operator, path: &str) {
    let create = || WriteOptions {
        if_not_exists: true,
        ..WriteOptions::default()
    };
    op.write_options(path, b"first".to_vec(), create())
        .expect("the first conditional create");
    let err = op
        .write_options(path, b"second".to_vec(), create())
        .expect_err("a second conditional create of the same key must fail");
    assert_eq!(err.kind(), ErrorKind::ConditionNotMatch, "{err}");
    assert_eq!(op.read(path).expect("read back").to_vec(), b"first");
}

/// `count` objects under `dir` come back from a recursive listing with
/// their sizes, also when listed `page` keys at a time.
pub fn check_listing(op: &blocking::Operator, dir: &str, count: usize, page: usize) {
    let mut expected = Vec::new();
    for i in 0..count {
        let path = format!("{dir}obj-{i:03}");
        op.write(&path, vec![b'x'; i + 1])
            .expect("write a small object");
        expected.push((path, i as u64 + 1));
    }
    let options = ListOptions {
        recursive: true,
        limit: Some(page),
        ..ListOptions::default()
    };
    let mut listed: Vec<(String, u64)> = op
        .list_options(dir, options)
        .expect("list the objects")
        .into_iter()
        .filter(|e| e.metadata().is_file())
        .map(|e| (e.path().to_owned(), e.metadata().content_length()))
        .collect();
    listed.sort();
    expected.sort();
    assert_eq!(listed, expected);
}

/// A deleted object is gone (stat says NotFound) and deleting it again is
/// not an error.
pub fn check_delete(op: &blocking::Operator, path: &str) {
    op.write(path, b"doomed".to_vec()).expect("write");
    op.delete(path).expect("delete");
    let err = op.stat(path).expect_err("stat after delete");
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    op.delete(path)
        .expect("deleting a missing object is not an error");
}

/// A key prefix no earlier run against the same long-lived server used.
pub fn fresh_prefix(what: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("/{what}-{}-{nanos}/", std::process::id())
}

/// The SFTP operator for a target from .ci/remote-servers. OpenDAL wants
/// the URL split: endpoint `ssh://user@host:port`, root the absolute path.
/// Host keys are checked strictly against the known_hosts file that ssh
/// reads from the passwd home of the user running the test.
pub fn sftp_operator(target: &cairn_testservers::SftpTarget, sub_root: &str) -> blocking::Operator {
    let rest = target
        .url
        .strip_prefix("sftp://")
        .expect("CAIRN_TEST_SFTP_URL starts with sftp://");
    let slash = rest.find('/').expect("CAIRN_TEST_SFTP_URL has a path");
    let (authority, path) = rest.split_at(slash);
    let (user, _) = authority
        .split_once('@')
        .expect("CAIRN_TEST_SFTP_URL names a user");
    let root = format!("{}{}", path.trim_end_matches('/'), sub_root);
    let key = target.key_file.to_str().expect("a UTF-8 key path");
    let builder = opendal::services::Sftp::default()
        .endpoint(&format!("ssh://{authority}"))
        .user(user)
        .key(key)
        .root(&root)
        .known_hosts_strategy("strict");
    finish(Operator::new(builder).expect("an SFTP operator"))
}

/// A `file://` remote: OpenDAL's fs service rooted at `root`. With
/// `atomic_write_dir`, writes go to a temporary file there and are renamed
/// into place; without it they are written in place.
pub fn fs_operator(
    root: &std::path::Path,
    atomic_write_dir: Option<&std::path::Path>,
) -> blocking::Operator {
    let mut builder = opendal::services::Fs::default().root(root.to_str().expect("a UTF-8 root"));
    if let Some(dir) = atomic_write_dir {
        builder = builder.atomic_write_dir(dir.to_str().expect("a UTF-8 temp dir"));
    }
    finish(Operator::new(builder).expect("an fs operator"))
}
