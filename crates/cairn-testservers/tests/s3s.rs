//! The in-process S3 server, exercised through OpenDAL as cairn-remote
//! uses it: signatures checked, multipart, conditional create, paginated
//! listing, delete, ranged GET, stop/restart, the counters and the
//! server-side tampering hooks.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};

use cairn_testservers::S3Server;
use common::*;
use opendal::options::WriteOptions;
use opendal::ErrorKind;

#[test]
fn requests_signed_with_wrong_keys_are_refused() {
    let server = S3Server::start().unwrap();
    let wrong_secret = s3_operator(
        &server.endpoint(),
        server.bucket(),
        server.region(),
        server.access_key_id(),
        "not-the-secret-not-the-secret-not-the-se",
        "/",
    );
    let err = wrong_secret
        .write("refused", b"x".to_vec())
        .expect_err("a PUT signed with the wrong secret");
    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
    // OpenDAL's error (Display and Debug) carries the endpoint, never the
    // secret nor the signature computed from it.
    for shown in [err.to_string(), format!("{err:?}")] {
        assert!(!shown.contains("not-the-secret"), "{shown}");
        assert!(!shown.contains("Signature="), "{shown}");
        assert!(shown.contains(&server.endpoint()), "{shown}");
    }
    let err = wrong_secret
        .stat("refused")
        .expect_err("a HEAD signed with the wrong secret");
    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");

    let wrong_key_id = s3_operator(
        &server.endpoint(),
        server.bucket(),
        server.region(),
        "AKIAWRONGWRONGWRONG1",
        server.secret_access_key(),
        "/",
    );
    let err = wrong_key_id
        .write("refused", b"x".to_vec())
        .expect_err("a PUT signed with an unknown key id");
    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
    let err = wrong_key_id
        .list("/")
        .expect_err("a listing with an unknown key id");
    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
    assert!(
        server.object_keys().is_empty(),
        "{:?}",
        server.object_keys()
    );

    // The right keys work on the same server, so the refusals above were
    // about the signature, not about the server.
    let right = server_operator(&server, "/");
    right.write("accepted", b"x".to_vec()).unwrap();
    assert_eq!(server.object_keys(), vec!["accepted".to_string()]);
}

#[test]
fn a_20_mb_object_round_trips_by_multipart_with_its_sha256() {
    let server = S3Server::start().unwrap();
    let op = server_operator(&server, "/cairn/");
    let before = server.bytes_received();
    let data = check_large_round_trip(&op, "big/object.bin");

    // It went up as a multipart upload: s3s-fs gives a completed multipart
    // object the ETag "<md5 of part md5s>-<number of parts>".
    let etag = op
        .stat("big/object.bin")
        .unwrap()
        .etag()
        .unwrap()
        .to_owned();
    assert!(etag.trim_matches('"').ends_with("-3"), "etag {etag}");
    // The bytes on the server's disk are the bytes sent.
    let on_disk = std::fs::read(server.object_file("cairn/big/object.bin")).unwrap();
    assert_eq!(sha256(&on_disk), sha256(&data));
    assert_eq!(
        server.object_keys(),
        vec!["cairn/big/object.bin".to_string()]
    );
    // Every body byte was counted (and nothing like twice the object).
    let received = server.bytes_received() - before;
    assert!(received >= data.len() as u64, "{received}");
    assert!(received < 2 * data.len() as u64, "{received}");
}

#[test]
fn a_conditional_create_fails_the_second_time() {
    let server = S3Server::start().unwrap();
    let op = server_operator(&server, "/");
    check_conditional_create(&op, "locks/prune");

    // Also when the second writer goes by multipart (CompleteMultipartUpload
    // carries the If-None-Match).
    let options = WriteOptions {
        if_not_exists: true,
        chunk: Some(5 * MIB),
        ..WriteOptions::default()
    };
    let mut writer = op.writer_options("locks/prune", options).unwrap();
    writer.write(pseudo_random(11 * MIB, 7)).unwrap();
    let err = writer
        .close()
        .expect_err("multipart create over an existing key");
    assert_eq!(err.kind(), ErrorKind::ConditionNotMatch, "{err}");
    assert_eq!(op.read("locks/prune").unwrap().to_vec(), b"first");
    // OpenDAL does not abort a multipart upload whose completion was
    // refused: its parts stay on the server (docs/offsite-servers.md).
    assert_eq!(server.incomplete_multipart_uploads(), 1);
}

#[test]
fn racing_conditional_creates_let_exactly_one_writer_win() {
    let server = S3Server::start().unwrap();
    let winners: usize = std::thread::scope(|scope| {
        let racers: Vec<_> = (0..8)
            .map(|i| {
                let op = server_operator(&server, "/");
                scope.spawn(move || {
                    let options = WriteOptions {
                        if_not_exists: true,
                        ..WriteOptions::default()
                    };
                    match op.write_options("lock", pseudo_random(256 * 1024, i), options) {
                        Ok(_) => 1,
                        Err(e) if e.kind() == ErrorKind::ConditionNotMatch => 0,
                        Err(e) => panic!("racer {i}: {e}"),
                    }
                })
            })
            .collect();
        racers.into_iter().map(|r| r.join().unwrap()).sum()
    });
    assert_eq!(winners, 1);
}

#[test]
fn listing_is_complete_across_pages() {
    let server = S3Server::start().unwrap();
    let op = server_operator(&server, "/repo/");
    op.write("elsewhere", b"not listed".to_vec()).unwrap();
    let before = server.request_count();
    check_listing(&op, "chunks/", 25, 10);
    // 25 PUTs, then at least 3 ListObjectsV2 pages of at most 10 keys.
    let requests = server.request_count() - before;
    assert!(requests >= 25 + 3, "{requests} requests");
}

#[test]
fn deleted_objects_are_gone() {
    let server = S3Server::start().unwrap();
    let op = server_operator(&server, "/");
    check_delete(&op, "a/b/c");
    assert!(server.object_keys().is_empty());
    assert!(!server.object_file("a/b/c").exists());
}

#[test]
fn damage_done_on_the_server_side_is_served() {
    let server = S3Server::start().unwrap();
    let op = server_operator(&server, "/");
    op.write("pack", vec![0u8; 4096]).unwrap();
    let file = server.object_file("pack");
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[100] ^= 0x01;
    std::fs::write(&file, &bytes).unwrap();
    let back = op.read("pack").unwrap().to_vec();
    assert_eq!(back[100], 0x01, "the flipped byte is what a client gets");

    std::fs::remove_file(&file).unwrap();
    let err = op.read("pack").expect_err("read after server-side delete");
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
}

#[test]
fn a_stopped_server_refuses_connections_and_restarts_with_its_data() {
    let mut server = S3Server::start().unwrap();
    let endpoint = server.endpoint();
    let op = server_operator(&server, "/");
    op.write("kept", b"across the restart".to_vec()).unwrap();

    server.stop();
    let refused = std::net::TcpStream::connect(endpoint.trim_start_matches("http://"));
    assert!(refused.is_err(), "the port still accepts connections");
    let err = op.read("kept").expect_err("read from a stopped server");
    // After the retries: Unexpected, marked persistent, naming the URL.
    assert_eq!(err.kind(), ErrorKind::Unexpected, "{err}");
    assert!(err.to_string().contains(&endpoint), "{err}");

    server.restart().unwrap();
    assert_eq!(server.endpoint(), endpoint);
    assert_eq!(op.read("kept").unwrap().to_vec(), b"across the restart");
    op.write("after", b"restart".to_vec()).unwrap();
    assert_eq!(
        server.object_keys(),
        vec!["after".to_string(), "kept".to_string()]
    );
}

#[test]
fn the_server_binary_prints_its_settings_and_serves() {
    let root = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_cairn-testservers"))
        .args(["s3", "--root"])
        .arg(root.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut settings = std::collections::HashMap::new();
    for _ in 0..5 {
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let (key, value) = line.trim_end().split_once('=').expect("KEY=value");
        settings.insert(key.to_owned(), value.to_owned());
    }
    let op = s3_operator(
        &settings["CAIRN_TEST_S3_ENDPOINT"],
        &settings["CAIRN_TEST_S3_BUCKET"],
        &settings["CAIRN_TEST_S3_REGION"],
        &settings["CAIRN_TEST_S3_KEY_ID"],
        &settings["CAIRN_TEST_S3_SECRET"],
        "/",
    );
    op.write("from-the-binary", b"hello".to_vec()).unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "", "nothing else on stdout");
    // --root keeps the data after the server is gone.
    let kept = std::fs::read(root.path().join("cairn-test/from-the-binary")).unwrap();
    assert_eq!(kept, b"hello");
}

#[test]
fn credential_env_names_the_standard_variables() {
    let server = S3Server::start().unwrap();
    let env = server.credential_env();
    let names: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"]
    );
    assert_eq!(env[0].1, server.access_key_id());
    assert_eq!(env[1].1, server.secret_access_key());
    assert_eq!(env[2].1, "us-east-1");
    assert!(server.endpoint().starts_with("http://127.0.0.1:"));
}

#[test]
fn dropping_the_server_removes_its_data() {
    let server = S3Server::start().unwrap();
    let dir = server.data_dir().to_path_buf();
    assert!(dir.join("cairn-test").is_dir());
    drop(server);
    assert!(!dir.exists());
}

#[test]
fn the_external_servers_are_an_error_naming_the_variable_when_not_started() {
    // Runs in its own process under `cargo test` (this binary never sets
    // these), so reading the environment races with nothing.
    if std::env::var_os("CAIRN_TEST_MOTO_ENDPOINT").is_none() {
        let err = cairn_testservers::moto_from_env().unwrap_err();
        assert!(err.contains("CAIRN_TEST_MOTO_ENDPOINT"), "{err}");
        assert!(err.contains(".ci/remote-servers start"), "{err}");
    }
    if std::env::var_os("CAIRN_TEST_SFTP_URL").is_none() {
        let err = cairn_testservers::sftp_from_env().unwrap_err();
        assert!(err.contains("CAIRN_TEST_SFTP_URL"), "{err}");
    }
}

#[test]
fn injected_503s_are_retried_and_too_many_end_the_operation() {
    let server = S3Server::start().unwrap();
    let op = server_operator(&server, "/");
    // The client retries 3 times (tests/common): two failures are absorbed.
    server.fail_next_requests(2);
    let before = server.request_count();
    op.write("retried", b"made it".to_vec()).unwrap();
    assert_eq!(server.request_count() - before, 3);
    assert_eq!(server.object_keys(), vec!["retried".to_string()]);

    // Four in a row outlast the retries; nothing is written.
    server.fail_next_requests(4);
    let err = op.write("given-up", b"no".to_vec()).expect_err("4 x 503");
    assert!(err.to_string().contains("SlowDown"), "{err}");
    assert_eq!(server.object_keys(), vec!["retried".to_string()]);
    // And the server is fine again afterwards.
    op.write("given-up", b"later".to_vec()).unwrap();
}

#[test]
fn a_client_can_be_cut_off_once_some_bytes_have_arrived() {
    let mut server = S3Server::start().unwrap();
    let op = server_operator(&server, "/");
    let one_part = server.bytes_received() + 5 * MIB as u64;
    let (resume, resumed) = std::sync::mpsc::channel::<()>();
    std::thread::scope(|scope| {
        let upload = scope.spawn(move || {
            let options = WriteOptions {
                chunk: Some(5 * MIB),
                ..WriteOptions::default()
            };
            let mut writer = op.writer_options("cut-off", options)?;
            // 16 MiB: OpenDAL holds the first chunk until a second one is
            // full (one PUT or multipart?), then sends both; wait for the
            // server to be stopped before writing the rest.
            writer.write(pseudo_random(16 * MIB, 3))?;
            resumed.recv().expect("the test thread lives");
            writer.write(pseudo_random(8 * MIB, 4))?;
            writer.close()
        });
        let arrived = server.wait_for_bytes_received(one_part, std::time::Duration::from_secs(10));
        server.stop();
        // Resume before asserting: a panic here would leave the upload
        // thread waiting forever and the scope joining it.
        resume.send(()).unwrap();
        assert!(arrived, "no part arrived");
        let err = upload
            .join()
            .unwrap()
            .expect_err("an upload cut off mid-way");
        assert_eq!(err.kind(), ErrorKind::Unexpected, "{err}");
    });
    assert!(
        server.object_keys().is_empty(),
        "{:?}",
        server.object_keys()
    );
    assert_eq!(server.incomplete_multipart_uploads(), 1);
}
