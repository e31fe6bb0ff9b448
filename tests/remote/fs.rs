//! Off-site copies on a `file://` remote (a NAS mount, a second disk).

use crate::common::*;
use crate::support::{flip_byte, memories, tree, Env};

#[test]
fn push_list_show_validate_then_restore_and_drill_after_the_local_repository_is_gone() {
    let env = Env::new();
    let remote = fs_remote(&env, "");
    let id = env.snapshot(&[]);
    let push = pushed(&env.cairn(&["--json", "push"]));
    assert_eq!(push["id"], id.as_str());
    assert_eq!(push["already_there"], false);
    assert!(push["new_chunks"].as_u64().unwrap() > 0);
    assert!(remote.join("config.json").is_file());
    assert!(remote.join(format!("snapshots/{id}.json")).is_file());

    // A second push has nothing to send.
    let again = pushed(&env.cairn(&["--json", "push", "--remote", "offsite"]));
    assert_eq!(again["already_there"], true);

    let list = ok(&env.cairn(&["--json", "list", "--remote", "offsite"]));
    assert_eq!(list["snapshots"][0]["id"], id.as_str());
    assert_eq!(list["snapshots"][0]["stores"][0], "db");
    let show = ok(&env.cairn(&["--json", "show", &id, "--remote", "offsite"]));
    assert_eq!(show["id"], id.as_str());
    assert!(!show["packs"].as_array().unwrap().is_empty());
    let v = ok(&env.cairn(&["--json", "validate", "--remote", "offsite", "--all"]));
    assert_eq!(v["valid"], true, "{v}");
    let v = ok(&env.cairn(&[
        "--json",
        "validate",
        "--remote",
        "offsite",
        "--latest",
        "--read-data",
    ]));
    assert_eq!(v["snapshots"][0]["packs_read"], v["snapshots"][0]["packs"]);

    // A fresh machine: only cairn.toml and the remote.
    let want_rows = memories(&env.path("data/atocore.db"));
    let want_chroma = tree(&env.path("data/chroma"));
    std::fs::remove_dir_all(env.path("backups")).unwrap();
    let drill = ok(&env.cairn(&["--json", "drill", "--remote", "offsite"]));
    assert_eq!(drill["ok"], true, "{drill}");
    assert!(drill["rto_seconds"].as_f64().unwrap() >= drill["download_seconds"].as_f64().unwrap());
    assert!(
        !env.path(&format!("backups/snapshots/{id}")).exists(),
        "a drill leaves the local repository as it was"
    );
    let out = env.path("out");
    let restored = env.cairn(&[
        "--json",
        "restore",
        &id,
        "--remote",
        "offsite",
        "--to",
        out.to_str().unwrap(),
    ]);
    let doc = ok(&restored);
    assert_eq!(doc["pull"]["already_local"], false);
    assert_eq!(memories(&env.path("out/db/atocore.db")), want_rows);
    // Plain files come back byte for byte (SQLite files are compared by
    // rows: their copies are kept in rollback-journal mode).
    let plain = |t: Vec<(String, String, Vec<u8>)>| {
        t.into_iter()
            .filter(|(p, _, _)| !p.ends_with(".sqlite3"))
            .map(|(p, _, b)| (p, b))
            .collect::<Vec<_>>()
    };
    let got_chroma = plain(tree(&env.path("out/chroma")));
    assert!(!got_chroma.is_empty());
    assert!(got_chroma == plain(want_chroma), "chroma's files differ");
    // It is now a normal, deep-validated local snapshot.
    let v = ok(&env.cairn(&["--json", "validate", &id]));
    assert_eq!(v["results"][0]["valid"], true, "{v}");
}

#[test]
fn pull_rebuilds_the_snapshot_byte_for_byte() {
    let env = Env::new();
    fs_remote(&env, "");
    let id = env.snapshot(&[]);
    let before = tree(&env.snapshot_dir(&id).join("stores"));
    let manifest = std::fs::read(env.snapshot_dir(&id).join("manifest.json")).unwrap();
    ok(&env.cairn(&["--json", "push"]));
    std::fs::remove_dir_all(env.path("backups")).unwrap();
    let pull = ok(&env.cairn(&["--json", "pull", &id, "--remote", "offsite"]));
    assert_eq!(pull["id"], id.as_str());
    let after = tree(&env.snapshot_dir(&id).join("stores"));
    assert_eq!(
        after.iter().map(|(p, _, b)| (p, b)).collect::<Vec<_>>(),
        before.iter().map(|(p, _, b)| (p, b)).collect::<Vec<_>>()
    );
    assert_eq!(
        std::fs::read(env.snapshot_dir(&id).join("manifest.json")).unwrap(),
        manifest
    );
    assert_eq!(env.listed_ids(), vec![id.clone()]);
    // Nothing left in tmp/.
    assert!(crate::support::dir_names(&env.path("backups/tmp")).is_empty());
    // Pulling again is a no-op.
    let again = ok(&env.cairn(&["--json", "pull", "--latest", "--remote", "offsite"]));
    assert_eq!(again["already_local"], true);
}

#[test]
fn dedup_no_change_sends_no_file_chunk_and_one_percent_of_pages_sends_under_ten_percent() {
    let env = Env::new();
    fs_remote(&env, "");
    grow_db(&env, 4000); // about 4.5 MiB, ~1,100 pages of 4 KiB
    env.snapshot(&[]);
    let first = pushed(&env.cairn(&["--json", "push", "--latest"]));
    let db_bytes = std::fs::metadata(env.path("data/atocore.db"))
        .unwrap()
        .len();

    // No change: the next snapshot's files are all on the remote; only
    // its manifest (a new id) is a new chunk.
    env.snapshot(&[]);
    let same = pushed(&env.cairn(&["--json", "push", "--latest"]));
    assert_eq!(same["new_chunks"], 1, "{same}");
    assert!(
        same["new_chunk_bytes"].as_u64().unwrap() < 64 * 1024,
        "{same}"
    );

    // About 1% of the pages rewritten, spread through the file.
    let db = env.db();
    let pages: i64 = db.query_row("PRAGMA page_count", [], |r| r.get(0)).unwrap();
    let step = 4000 / (pages / 100).max(1);
    db.execute(
        &format!("UPDATE memories SET content = 'changed ' || content WHERE id % {step} = 0"),
        [],
    )
    .unwrap();
    db.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
        .unwrap();
    drop(db);
    env.snapshot(&[]);
    let changed = pushed(&env.cairn(&["--json", "push", "--latest"]));
    let sent = changed["bytes_uploaded"].as_u64().unwrap();
    eprintln!(
        "db {db_bytes} bytes, {pages} pages; first push {} bytes, no change {} bytes, 1% pages {} bytes ({:.1}%)",
        first["bytes_uploaded"],
        same["bytes_uploaded"],
        sent,
        sent as f64 * 100.0 / db_bytes as f64
    );
    assert!(
        changed["new_chunks"].as_u64().unwrap() >= 2,
        "the change was sent: {changed}"
    );
    assert!(sent * 10 <= db_bytes, "{sent} of {db_bytes}: {changed}");
}

#[test]
fn a_flipped_byte_and_a_deleted_pack_are_found_by_validate_and_refused_by_restore() {
    let env = Env::new();
    let remote = fs_remote(&env, "");
    let id = env.snapshot(&[]);
    ok(&env.cairn(&["--json", "push"]));
    let pack = packs(&remote).pop().unwrap();
    let len = std::fs::metadata(&pack).unwrap().len() as usize;
    flip_byte(&pack, len / 2, 0x20);

    // From listings the pack is there with its size; reading finds it.
    let quick = ok(&env.cairn(&["--json", "validate", "--remote", "offsite", "--all"]));
    assert_eq!(quick["valid"], true);
    let deep = env.cairn(&[
        "--json",
        "validate",
        "--remote",
        "offsite",
        "--all",
        "--read-data",
    ]);
    assert_eq!(deep.code, 1, "{}", deep.stderr);
    let codes: Vec<String> = deep.json()["snapshots"][0]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["code"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        codes.contains(&"blob_checksum_mismatch".to_owned()),
        "{codes:?}"
    );

    // Restore from it: refused, nothing touched, nothing left behind.
    let live_before = std::fs::read(env.path("data/atocore.db")).unwrap();
    std::fs::remove_dir_all(env.path("backups")).unwrap();
    let r = env.cairn(&[
        "restore",
        &id,
        "--remote",
        "offsite",
        "--confirm-service-stopped",
    ]);
    assert_eq!(r.code, 3, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("blob_checksum_mismatch"), "{}", r.stderr);
    assert_eq!(
        std::fs::read(env.path("data/atocore.db")).unwrap(),
        live_before
    );
    assert!(env.listed_ids().is_empty());
    assert!(crate::support::dir_names(&env.path("backups/tmp")).is_empty());

    // A deleted pack: blob_missing from listings alone.
    std::fs::remove_file(&pack).unwrap();
    let gone = env.cairn(&["--json", "validate", "--remote", "offsite", "--all"]);
    assert_eq!(gone.code, 1);
    assert_eq!(
        gone.json()["snapshots"][0]["errors"][0]["code"],
        "blob_missing"
    );
    let r = env.cairn(&["pull", &id, "--remote", "offsite"]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("blob_missing"), "{}", r.stderr);
}

#[test]
fn a_push_killed_mid_way_leaves_no_snapshot_and_the_rerun_sends_only_the_rest() {
    let env = Env::new();
    let remote = fs_remote(&env, "");
    // Three packs' worth of incompressible data in the directory store.
    std::fs::write(env.path("data/chroma/seg-0001/big.bin"), noise(40 << 20, 5)).unwrap();
    let id = env.snapshot(&[]);
    let killed = env.cairn_env(&["push"], &[("CAIRN_REMOTE_CRASH_AFTER_PACKS", "1")]);
    assert_ne!(killed.code, 0, "the push was cut short");
    assert!(!remote.join(format!("snapshots/{id}.json")).exists());
    let list = ok(&env.cairn(&["--json", "list", "--remote", "offsite"]));
    assert!(list["snapshots"].as_array().unwrap().is_empty(), "{list}");
    let kept = packs(&remote);
    assert_eq!(kept.len(), 1, "the pack sent before the kill stays");

    let rerun = pushed(&env.cairn(&["--json", "push"]));
    let total: u64 = rerun["bytes"].as_u64().unwrap();
    assert!(rerun["packs_uploaded"].as_u64().unwrap() >= 2, "{rerun}");
    let resent = rerun["new_chunk_bytes"].as_u64().unwrap();
    assert!(
        resent + (15 << 20) < total,
        "the first pack was not sent again: {rerun}"
    );
    let v = ok(&env.cairn(&[
        "--json",
        "validate",
        "--remote",
        "offsite",
        "--all",
        "--read-data",
    ]));
    assert_eq!(v["valid"], true, "{v}");
}

#[test]
fn a_damaged_local_snapshot_is_never_pushed() {
    let env = Env::new();
    let remote = fs_remote(&env, "");
    let id = env.snapshot(&[]);
    env.unlock_snapshot(&id);
    flip_byte(
        &env.snapshot_dir(&id)
            .join("stores/registry/project-registry.json"),
        3,
        1,
    );
    let r = env.cairn(&["push"]);
    assert_eq!(r.code, 3, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("file_checksum_mismatch"), "{}", r.stderr);
    assert!(!remote.join(format!("snapshots/{id}.json")).exists());
}

#[test]
fn push_after_snapshot_pushes_and_a_failed_push_is_exit_1_keeping_the_snapshot() {
    let env = Env::new();
    let remote = fs_remote(&env, "push_after_snapshot = true");
    let run = env.cairn(&["--json", "snapshot"]);
    let doc = ok(&run);
    let id = doc["id"].as_str().unwrap();
    assert_eq!(doc["push"]["remotes"][0]["ok"], true, "{doc}");
    assert!(remote.join(format!("snapshots/{id}.json")).is_file());

    // A remote that cannot be written: a regular file where its directory goes.
    std::fs::write(env.path("blocker"), b"").unwrap();
    with_remote(
        &env,
        &format!(
            "name = \"offsite\"\nurl = \"file://{}\"\npush_after_snapshot = true",
            env.path("blocker/remote").display()
        ),
    );
    let run = env.cairn(&["--json", "snapshot"]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let doc = run.json();
    assert_eq!(doc["push"]["remotes"][0]["ok"], false);
    assert_eq!(doc["push"]["remotes"][0]["exit_code"], 4);
    assert_eq!(env.listed_ids().len(), 2, "the local snapshot stays");
}

#[test]
fn prune_applies_the_remote_retention_then_collects_unreferenced_packs_after_the_grace_period() {
    let env = Env::new();
    let remote = fs_remote(
        &env,
        "gc_grace_hours = 0\n[remote.retention]\nkeep_daily = 1\nkeep_weekly = 0\nkeep_monthly = 0",
    );
    // Packs are collected whole: the old snapshot's own data fills packs
    // of its own (36 MiB, more than two packs), pushed before the new one.
    std::fs::write(
        env.path("data/chroma/seg-0001/old.bin"),
        noise(36 << 20, 11),
    )
    .unwrap();
    let old = env.snapshot(&["--at", "2026-01-05T10:00:00Z"]);
    ok(&env.cairn(&["--json", "push", &old]));
    std::fs::remove_file(env.path("data/chroma/seg-0001/old.bin")).unwrap();
    let new = env.snapshot(&["--at", "2026-01-06T10:00:00Z"]);
    ok(&env.cairn(&["--json", "push", &new]));
    let packs_before = packs(&remote).len();

    let dry = ok(&env.cairn(&["--json", "prune", "--remote", "offsite"]));
    assert_eq!(dry["delete"][0], old.as_str());
    assert!(
        remote.join(format!("snapshots/{old}.json")).exists(),
        "a dry run deletes nothing"
    );

    let done = ok(&env.cairn(&["--json", "prune", "--remote", "offsite", "--confirm"]));
    assert_eq!(done["deleted"][0], old.as_str(), "{done}");
    assert!(done["packs_deleted"].as_u64().unwrap() >= 1, "{done}");
    assert!(packs(&remote).len() < packs_before);
    assert!(!remote.join(format!("snapshots/{old}.json")).exists());
    // What stays is whole.
    let v = ok(&env.cairn(&[
        "--json",
        "validate",
        "--remote",
        "offsite",
        "--all",
        "--read-data",
    ]));
    assert_eq!(v["snapshots"][0]["id"], new.as_str());
    assert_eq!(v["valid"], true, "{v}");
    // The local repository is not the remote's business.
    assert_eq!(env.listed_ids().len(), 2);
}

#[test]
fn the_grace_period_keeps_young_unreferenced_packs() {
    let env = Env::new();
    let remote = fs_remote(
        &env,
        "[remote.retention]\nkeep_daily = 1\nkeep_weekly = 0\nkeep_monthly = 0",
    );
    std::fs::write(
        env.path("data/chroma/seg-0001/old.bin"),
        noise(36 << 20, 12),
    )
    .unwrap();
    let old = env.snapshot(&["--at", "2026-01-05T10:00:00Z"]);
    ok(&env.cairn(&["--json", "push", &old]));
    std::fs::remove_file(env.path("data/chroma/seg-0001/old.bin")).unwrap();
    let new = env.snapshot(&["--at", "2026-01-06T10:00:00Z"]);
    ok(&env.cairn(&["--json", "push", &new]));
    let before = packs(&remote);
    let done = ok(&env.cairn(&["--json", "prune", "--remote", "offsite", "--confirm"]));
    assert_eq!(done["deleted"].as_array().unwrap().len(), 1);
    assert_eq!(done["packs_deleted"], 0, "{done}");
    assert!(done["packs_in_grace"].as_u64().unwrap() >= 1, "{done}");
    assert_eq!(packs(&remote), before);
}

#[test]
fn a_held_prune_lock_refuses_push_and_a_running_push_refuses_prune_with_exit_3() {
    let env = Env::new();
    let remote = fs_remote(&env, "");
    env.snapshot(&[]);
    ok(&env.cairn(&["--json", "push"]));
    let now = chrono::Utc::now();
    let lock = |purpose: &str, expires: chrono::DateTime<chrono::Utc>| {
        serde_json::json!({
            "host": "other-host", "pid": 4242, "created_at": now,
            "expires_at": expires, "purpose": purpose,
        })
        .to_string()
    };
    std::fs::create_dir_all(remote.join("locks")).unwrap();
    std::fs::write(
        remote.join("locks/prune.json"),
        lock("prune", now + chrono::TimeDelta::hours(1)),
    )
    .unwrap();
    env.snapshot(&[]);
    let r = env.cairn(&["push"]);
    assert_eq!(r.code, 3, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("other-host"), "{}", r.stderr);
    let r = env.cairn(&["prune", "--remote", "offsite", "--confirm"]);
    assert_eq!(r.code, 3, "{}", r.stderr);

    // Stale: taken over.
    std::fs::write(
        remote.join("locks/prune.json"),
        lock("prune", now - chrono::TimeDelta::hours(1)),
    )
    .unwrap();
    ok(&env.cairn(&["--json", "push"]));
    ok(&env.cairn(&["--json", "prune", "--remote", "offsite", "--confirm"]));
    assert!(!remote.join("locks/prune.json").exists(), "released");

    // A push running elsewhere holds prune off.
    std::fs::write(
        remote.join("locks/push-other-4242-1.json"),
        lock("push", now + chrono::TimeDelta::hours(24)),
    )
    .unwrap();
    let r = env.cairn(&["prune", "--remote", "offsite", "--confirm"]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        !remote.join("locks/prune.json").exists(),
        "a refused prune leaves no lock"
    );
}

#[test]
fn remote_config_errors_name_the_remote_and_key() {
    let env = Env::new();
    for (toml, needle) in [
        ("name = \"Bad Name\"\nurl = \"file:///x\"", "remote name"),
        (
            "name = \"r\"\nurl = \"ftp://x/y\"",
            "s3://, sftp:// or file://",
        ),
        (
            "name = \"r\"\nurl = \"sftp://u:hunter2@h/x\"",
            "must not hold a password",
        ),
        (
            "name = \"r\"\nurl = \"file:///x\"\nendpoint = \"http://x\"",
            "`endpoint` does not apply",
        ),
        (
            "name = \"r\"\nurl = \"s3://bucket/x\"\nrate_limit = \"fast\"",
            "rate_limit",
        ),
        (
            "name = \"r\"\nurl = \"s3://bucket/x\"\nsecret = \"x\"",
            "unknown field",
        ),
    ] {
        with_remote(&env, toml);
        let r = env.cairn(&["list"]);
        assert_eq!(r.code, 2, "{toml}: {}", r.stderr);
        assert!(r.stderr.contains(needle), "{toml}: {}", r.stderr);
        assert!(!r.stderr.contains("hunter2"), "{}", r.stderr);
    }
    fs_remote(&env, "");
    let r = env.cairn(&["list", "--remote", "elsewhere"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("no [[remote]] named \"elsewhere\""),
        "{}",
        r.stderr
    );
}

#[test]
fn an_unreachable_s3_remote_is_exit_4_naming_the_url_and_no_secret() {
    let env = Env::new();
    // Nothing listens on port 9 of loopback.
    with_remote(
        &env,
        "name = \"offsite\"\nurl = \"s3://cairn-test/atocore\"\nendpoint = \"http://127.0.0.1:9\"\nregion = \"us-east-1\"\nio_timeout_seconds = 2",
    );
    env.snapshot(&[]);
    let secret = "SECRETsecretSECRET0123456789abcdefSECRET";
    let r = env.cairn_env(
        &["push"],
        &[
            ("AWS_ACCESS_KEY_ID", "AKIDTESTKEY"),
            ("AWS_SECRET_ACCESS_KEY", secret),
        ],
    );
    assert_eq!(r.code, 4, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("s3://cairn-test/atocore"), "{}", r.stderr);
    assert!(!r.stdout.contains(secret) && !r.stderr.contains(secret));
    let r = env.cairn_env(
        &["--json", "-v", "list", "--remote", "offsite"],
        &[
            ("AWS_ACCESS_KEY_ID", "AKIDTESTKEY"),
            ("AWS_SECRET_ACCESS_KEY", secret),
        ],
    );
    assert_eq!(r.code, 4);
    assert!(!r.stdout.contains(secret) && !r.stderr.contains(secret));
    // No credentials at all: a config error naming where they are looked for.
    let r = env.cairn(&["list", "--remote", "offsite"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("AWS_ACCESS_KEY_ID"), "{}", r.stderr);
}

#[test]
fn a_credentials_file_others_can_read_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    let creds = env.path("s3.env");
    std::fs::write(
        &creds,
        "AWS_ACCESS_KEY_ID=AKID\nAWS_SECRET_ACCESS_KEY=topsecretvalue\n",
    )
    .unwrap();
    std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(0o644)).unwrap();
    with_remote(
        &env,
        &format!(
            "name = \"offsite\"\nurl = \"s3://cairn-test/x\"\nendpoint = \"http://127.0.0.1:9\"\ncredentials_file = \"{}\"",
            creds.display()
        ),
    );
    let r = env.cairn(&["list", "--remote", "offsite"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("chmod 600"), "{}", r.stderr);
    assert!(!r.stderr.contains("topsecretvalue"));
}

#[test]
fn a_snapshot_document_cut_short_is_written_again_by_the_next_push() {
    let env = Env::new();
    let remote = fs_remote(&env, "");
    let id = env.snapshot(&[]);
    ok(&env.cairn(&["--json", "push"]));
    // What an SFTP upload killed mid-write leaves: the first bytes only.
    let doc = remote.join(format!("snapshots/{id}.json"));
    let bytes = std::fs::read(&doc).unwrap();
    std::fs::write(&doc, &bytes[..bytes.len() / 2]).unwrap();
    let list = ok(&env.cairn(&["--json", "list", "--remote", "offsite"]));
    assert!(list["snapshots"][0]["problem"].is_string(), "{list}");
    let again = pushed(&env.cairn(&["--json", "push"]));
    assert_eq!(again["already_there"], false);
    assert_eq!(again["new_chunks"], 0, "every chunk was there: {again}");
    let v = ok(&env.cairn(&[
        "--json",
        "validate",
        "--remote",
        "offsite",
        "--all",
        "--read-data",
    ]));
    assert_eq!(v["valid"], true, "{v}");
}

#[test]
fn show_takes_latest_on_a_remote_and_restore_from_a_remote_needs_an_id() {
    let env = Env::new();
    fs_remote(&env, "");
    let first = env.snapshot(&[]);
    ok(&env.cairn(&["--json", "push"]));
    // A newer local snapshot that is not on the remote: `--latest` would
    // mean it locally and `first` on the remote.
    let second = env.snapshot(&["--at", "2099-01-01T00:00:00Z", "--allow-future"]);
    assert_ne!(first, second);

    let show = ok(&env.cairn(&["--json", "show", "--latest", "--remote", "offsite"]));
    assert_eq!(show["id"], first.as_str());

    let before = memories(&env.path("data/atocore.db"));
    let r = env.cairn(&[
        "restore",
        "--latest",
        "--remote",
        "offsite",
        "--confirm-service-stopped",
    ]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("needs the snapshot's id"), "{}", r.stderr);
    assert!(r.stderr.contains("list --remote offsite"), "{}", r.stderr);
    assert_eq!(memories(&env.path("data/atocore.db")), before);
}

#[test]
fn an_index_that_lists_an_impossible_chunk_is_refused_by_pull_and_worked_around_by_the_next_push() {
    let env = Env::new();
    let remote = fs_remote(&env, "");
    let first = env.snapshot(&[]);
    ok(&env.cairn(&["--json", "push"]));
    // Every index of the remote claims a chunk of 1 TiB: a reader that
    // trusted it would try to hold that much.
    let indexes = files_under(&remote.join("index"));
    assert!(!indexes.is_empty());
    for name in &indexes {
        let path = remote.join("index").join(name);
        let mut index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        index["chunks"][0]["length"] = serde_json::json!(1u64 << 40);
        std::fs::write(&path, serde_json::to_vec(&index).unwrap()).unwrap();
    }
    let live = tree(&env.path("data"));
    std::fs::remove_dir_all(env.path("backups")).unwrap();
    // A remote document this cairn cannot use: exit 1, as for any
    // unreadable remote document, naming the index and the chunk.
    let r = env.cairn(&["pull", &first, "--remote", "offsite"]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("index/") && r.stderr.contains("1099511627776 bytes"),
        "{}",
        r.stderr
    );
    assert!(env.listed_ids().is_empty());

    // The next push does not trust those indexes either: it sends the
    // chunks again, and the snapshot it publishes pulls whole.
    // Ids are by the second, and the local repository that would make
    // the next one differ is gone.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let second = env.snapshot(&[]);
    assert_ne!(second, first);
    let sent = pushed(&env.cairn(&["--json", "push", &second]));
    assert!(sent["new_chunks"].as_u64().unwrap() > 0, "{sent}");
    let before = tree(&env.snapshot_dir(&second).join("stores"));
    std::fs::remove_dir_all(env.path("backups")).unwrap();
    ok(&env.cairn(&["--json", "pull", &second, "--remote", "offsite"]));
    let after = tree(&env.snapshot_dir(&second).join("stores"));
    assert_eq!(
        after.iter().map(|(p, _, b)| (p, b)).collect::<Vec<_>>(),
        before.iter().map(|(p, _, b)| (p, b)).collect::<Vec<_>>()
    );
    assert_eq!(
        tree(&env.path("data")),
        live,
        "the live tree was not touched"
    );
}
