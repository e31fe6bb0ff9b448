//! Off-site copies on an S3-protocol server started in-process on
//! 127.0.0.1 (cairn-testservers: s3s over s3s-fs, every request's SigV4
//! signature checked).

use std::process::{Command, Stdio};

use cairn_testservers::S3Server;

use crate::common::*;
use crate::support::{flip_byte, memories, Env, Run, CAIRN};

fn s3_remote(env: &Env, server: &S3Server, extra: &str) {
    with_remote(
        env,
        &format!(
            "name = \"offsite\"\nurl = \"s3://{}/atocore\"\nendpoint = \"{}\"\nregion = \"{}\"\nio_timeout_seconds = 5\n{extra}",
            server.bucket(),
            server.endpoint(),
            server.region()
        ),
    );
}

fn run(env: &Env, server: &S3Server, args: &[&str]) -> Run {
    let creds = server.credential_env();
    let pairs: Vec<(&str, &str)> = creds
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    env.cairn_env(args, &pairs)
}

fn pack_keys(server: &S3Server) -> Vec<String> {
    server
        .object_keys()
        .into_iter()
        .filter(|k| k.starts_with("atocore/packs/"))
        .collect()
}

#[test]
fn push_list_validate_then_restore_and_drill_from_s3_after_the_local_repository_is_gone() {
    let server = S3Server::start().unwrap();
    let env = Env::new();
    s3_remote(&env, &server, "");
    let id = env.snapshot(&[]);
    let before = server.request_count();
    let push = pushed(&run(&env, &server, &["--json", "push"]));
    assert_eq!(push["id"], id.as_str());
    eprintln!(
        "first push: {} bytes of files, {} bytes sent, {} requests by cairn, {} seen by the server",
        push["bytes"],
        push["bytes_uploaded"],
        push["requests"],
        server.request_count() - before
    );
    assert!(server
        .object_keys()
        .contains(&format!("atocore/snapshots/{id}.json")));
    let list = ok(&run(
        &env,
        &server,
        &["--json", "list", "--remote", "offsite"],
    ));
    assert_eq!(list["snapshots"][0]["id"], id.as_str());
    let v = ok(&run(
        &env,
        &server,
        &[
            "--json",
            "validate",
            "--remote",
            "offsite",
            "--all",
            "--read-data",
        ],
    ));
    assert_eq!(v["valid"], true, "{v}");

    let want = memories(&env.path("data/atocore.db"));
    std::fs::remove_dir_all(env.path("backups")).unwrap();
    let drill = ok(&run(
        &env,
        &server,
        &["--json", "drill", "--remote", "offsite", "--latest"],
    ));
    assert_eq!(drill["ok"], true, "{drill}");
    // A live restore onto a lost machine: the service's files are gone too.
    std::fs::remove_file(env.path("data/atocore.db")).unwrap();
    let r = run(
        &env,
        &server,
        &[
            "--json",
            "restore",
            &id,
            "--remote",
            "offsite",
            "--confirm-service-stopped",
        ],
    );
    ok(&r);
    assert_eq!(memories(&env.path("data/atocore.db")), want);
}

#[test]
fn dedup_on_s3_counts_bytes_the_server_received() {
    let server = S3Server::start().unwrap();
    let env = Env::new();
    s3_remote(&env, &server, "");
    grow_db(&env, 4000);
    env.snapshot(&[]);
    let b0 = server.bytes_received();
    ok(&run(&env, &server, &["--json", "push"]));
    let first = server.bytes_received() - b0;
    env.snapshot(&[]);
    let (b1, r1) = (server.bytes_received(), server.request_count());
    let same = pushed(&run(&env, &server, &["--json", "push", "--latest"]));
    let unchanged = server.bytes_received() - b1;
    let unchanged_requests = server.request_count() - r1;
    assert_eq!(same["new_chunks"], 1, "only the new manifest: {same}");
    let db_bytes = std::fs::metadata(env.path("data/atocore.db"))
        .unwrap()
        .len();
    env.db()
        .execute(
            "UPDATE memories SET content = 'edited' WHERE id % 400 = 0",
            [],
        )
        .unwrap();
    env.db()
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
        .unwrap();
    env.snapshot(&[]);
    let b2 = server.bytes_received();
    ok(&run(&env, &server, &["--json", "push", "--latest"]));
    let commit = server.bytes_received() - b2;
    eprintln!(
        "db {db_bytes} bytes: first push {first} bytes received; no change {unchanged} bytes in {unchanged_requests} requests; ~1% of rows edited {commit} bytes ({:.1}% of the db)",
        commit as f64 * 100.0 / db_bytes as f64
    );
    assert!(unchanged < 64 * 1024, "{unchanged}");
    assert!(commit * 10 <= db_bytes, "{commit} of {db_bytes}");
}

#[test]
fn a_deleted_object_and_a_flipped_byte_on_the_server_are_found_and_refused() {
    let server = S3Server::start().unwrap();
    let env = Env::new();
    s3_remote(&env, &server, "");
    let id = env.snapshot(&[]);
    ok(&run(&env, &server, &["--json", "push"]));
    let key = pack_keys(&server).pop().unwrap();
    let file = server.object_file(&key);
    let len = std::fs::metadata(&file).unwrap().len() as usize;
    flip_byte(&file, len / 3, 0x01);
    let v = run(
        &env,
        &server,
        &[
            "--json",
            "validate",
            "--remote",
            "offsite",
            "--all",
            "--read-data",
        ],
    );
    assert_eq!(v.code, 1, "{}", v.stderr);
    assert!(v.stdout.contains("blob_checksum_mismatch"), "{}", v.stdout);
    let live = std::fs::read(env.path("data/atocore.db")).unwrap();
    std::fs::remove_dir_all(env.path("backups")).unwrap();
    let r = run(
        &env,
        &server,
        &[
            "restore",
            &id,
            "--remote",
            "offsite",
            "--confirm-service-stopped",
        ],
    );
    assert_eq!(r.code, 3, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(
        std::fs::read(env.path("data/atocore.db")).unwrap(),
        live,
        "nothing touched"
    );
    assert!(env.listed_ids().is_empty());

    std::fs::remove_file(&file).unwrap();
    let v = run(
        &env,
        &server,
        &["--json", "validate", "--remote", "offsite", "--all"],
    );
    assert_eq!(v.code, 1);
    assert_eq!(
        v.json()["snapshots"][0]["errors"][0]["code"],
        "blob_missing"
    );
    let r = run(
        &env,
        &server,
        &[
            "restore",
            &id,
            "--remote",
            "offsite",
            "--confirm-service-stopped",
        ],
    );
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert_eq!(std::fs::read(env.path("data/atocore.db")).unwrap(), live);
}

#[test]
fn wrong_credentials_are_exit_4_and_no_secret_is_printed() {
    let server = S3Server::start().unwrap();
    let env = Env::new();
    s3_remote(&env, &server, "");
    env.snapshot(&[]);
    let wrong = "WRONGsecretWRONGsecretWRONGsecret0123456789";
    for args in [
        &["push"][..],
        &["--json", "-v", "push"][..],
        &["--json", "list", "--remote", "offsite"][..],
        &["validate", "--remote", "offsite", "--all"][..],
    ] {
        let r = env.cairn_env(
            args,
            &[
                ("AWS_ACCESS_KEY_ID", server.access_key_id()),
                ("AWS_SECRET_ACCESS_KEY", wrong),
            ],
        );
        assert_eq!(r.code, 4, "{args:?}: {}\n{}", r.stdout, r.stderr);
        assert!(r.stderr.contains("offsite"), "{}", r.stderr);
        for secret in [wrong, server.secret_access_key()] {
            assert!(
                !r.stdout.contains(secret) && !r.stderr.contains(secret),
                "{args:?} printed a secret"
            );
        }
    }
    assert!(pack_keys(&server).is_empty());
}

#[test]
fn killed_mid_push_then_the_server_stopped_mid_push_then_a_rerun_resumes() {
    let mut server = S3Server::start().unwrap();
    let env = Env::new();
    s3_remote(&env, &server, "");
    std::fs::write(
        env.path("data/chroma/seg-0001/big.bin"),
        noise(50 << 20, 21),
    )
    .unwrap();
    let id = env.snapshot(&[]);
    // kill -9 after the first pack.
    let creds = server.credential_env();
    let mut pairs: Vec<(&str, &str)> = creds
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    pairs.push(("CAIRN_REMOTE_CRASH_AFTER_PACKS", "1"));
    let killed = env.cairn_env(&["push"], &pairs);
    assert_ne!(killed.code, 0);
    assert_eq!(pack_keys(&server).len(), 1);
    assert!(!server
        .object_keys()
        .contains(&format!("atocore/snapshots/{id}.json")));

    // The server goes away once the rerun has sent another pack.
    let mut child = Command::new(CAIRN)
        .current_dir(&env.root)
        .args(env.with_config(&["push"]))
        .envs(creds.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    while pack_keys(&server).len() < 2 {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::yield_now();
    }
    server.stop();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("s3://cairn-test/atocore"), "{stderr}");
    assert!(!server
        .object_keys()
        .contains(&format!("atocore/snapshots/{id}.json")));
    let sent_before = pack_keys(&server).len();
    assert!(sent_before >= 2);

    server.restart().unwrap();
    let b = server.bytes_received();
    let rerun = pushed(&run(&env, &server, &["--json", "push"]));
    let resent = server.bytes_received() - b;
    let total = rerun["bytes"].as_u64().unwrap();
    eprintln!(
        "rerun sent {resent} of {total} bytes ({} packs already there)",
        sent_before
    );
    assert!(
        resent + (sent_before as u64 - 1) * (15 << 20) < total,
        "{resent} of {total}"
    );
    let v = ok(&run(
        &env,
        &server,
        &[
            "--json",
            "validate",
            "--remote",
            "offsite",
            "--all",
            "--read-data",
        ],
    ));
    assert_eq!(v["valid"], true, "{v}");
}

#[test]
fn concurrent_pushes_and_prunes_never_lose_a_referenced_object() {
    let server = S3Server::start().unwrap();
    let env = Env::new();
    // No grace period and a retention that deletes: the worst case for GC.
    s3_remote(
        &env,
        &server,
        "gc_grace_hours = 0\n[remote.retention]\nkeep_daily = 1\nkeep_weekly = 0\nkeep_monthly = 0",
    );
    let creds = server.credential_env();
    let spawn = |args: &[&str]| {
        Command::new(CAIRN)
            .current_dir(&env.root)
            .args(env.with_config(args))
            .envs(creds.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    for round in 0..4 {
        std::fs::write(
            env.path("data/chroma/seg-0001/round.bin"),
            noise(3 << 20, round + 40),
        )
        .unwrap();
        env.snapshot(&[]);
        let push = spawn(&["push", "--latest"]);
        let prune = spawn(&["prune", "--remote", "offsite", "--confirm"]);
        for (what, child) in [("push", push), ("prune", prune)] {
            let out = child.wait_with_output().unwrap();
            let code = out.status.code();
            // Each either ran or was refused by the other's lock.
            assert!(
                matches!(code, Some(0 | 3)),
                "{what}: {code:?} {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        // A refused push is simply run again.
        ok(&run(&env, &server, &["--json", "push", "--latest"]));
    }
    let v = ok(&run(
        &env,
        &server,
        &[
            "--json",
            "validate",
            "--remote",
            "offsite",
            "--all",
            "--read-data",
        ],
    ));
    assert_eq!(v["valid"], true, "{v}");
    assert!(!v["snapshots"].as_array().unwrap().is_empty());
}
