//! Off-site copies against the servers `.ci/remote-servers start` runs on
//! loopback: moto (a second, independent S3 implementation) and Debian's
//! sshd (SFTP with a generated key). `.ci/run` starts them and runs these
//! with `--ignored`; without them each test fails naming what to run,
//! never passes silently.

use cairn_testservers::{moto_from_env, sftp_from_env};

use crate::common::*;
use crate::support::{flip_byte, memories, Env, Run};

const NEEDS: &str = "needs .ci/remote-servers start (run by .ci/run)";

/// The cycle every remote must pass: push, a no-change push sending
/// only the manifest, validate with data, prune's lock, a drill and a
/// restore after the local repository is deleted, a flipped byte found
/// and refused.
fn full_cycle(env: &Env, run: &dyn Fn(&[&str]) -> Run, damage: &dyn Fn(&str)) {
    let id = env.snapshot(&[]);
    let first = pushed(&run(&["--json", "push"]));
    assert_eq!(first["id"], id.as_str());
    let id = env.snapshot(&[]);
    let second = pushed(&run(&["--json", "push", "--latest"]));
    assert_eq!(second["new_chunks"], 1, "{second}");
    let v = ok(&run(&[
        "--json",
        "validate",
        "--remote",
        "offsite",
        "--all",
        "--read-data",
    ]));
    assert_eq!(v["valid"], true, "{v}");
    let p = ok(&run(&[
        "--json",
        "prune",
        "--remote",
        "offsite",
        "--confirm",
    ]));
    assert_eq!(p["dry_run"], false);
    let want = memories(&env.path("data/atocore.db"));
    std::fs::remove_dir_all(env.path("backups")).unwrap();
    let d = ok(&run(&["--json", "drill", "--remote", "offsite"]));
    assert_eq!(d["ok"], true, "{d}");
    let out = env.path("out");
    ok(&run(&[
        "--json",
        "restore",
        &id,
        "--remote",
        "offsite",
        "--to",
        out.to_str().unwrap(),
    ]));
    assert_eq!(memories(&env.path("out/db/atocore.db")), want);
    damage(&id);
    let v = run(&[
        "--json",
        "validate",
        "--remote",
        "offsite",
        "--all",
        "--read-data",
    ]);
    assert_eq!(v.code, 1, "{}", v.stdout);
    assert!(v.stdout.contains("blob_checksum_mismatch"), "{}", v.stdout);
}

#[test]
#[ignore = "needs .ci/remote-servers start (run by .ci/run)"]
fn moto_full_cycle_with_a_credentials_file() {
    use std::os::unix::fs::PermissionsExt;
    let moto = moto_from_env().unwrap_or_else(|e| panic!("{NEEDS}: {e}"));
    let env = Env::new();
    let creds = env.path("moto.env");
    std::fs::write(
        &creds,
        format!(
            "AWS_ACCESS_KEY_ID={}\nAWS_SECRET_ACCESS_KEY={}\n",
            moto.access_key_id, moto.secret_access_key
        ),
    )
    .unwrap();
    std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(0o600)).unwrap();
    let prefix = format!("t{}", std::process::id());
    with_remote(
        &env,
        &format!(
            "name = \"offsite\"\nurl = \"s3://{}/{prefix}\"\nendpoint = \"{}\"\nregion = \"{}\"\ncredentials_file = \"{}\"",
            moto.bucket,
            moto.endpoint,
            moto.region,
            creds.display()
        ),
    );
    let run = |args: &[&str]| env.cairn(args);
    // moto keeps objects in memory: the byte is flipped through the S3
    // API, as someone holding the keys would.
    full_cycle(&env, &run, &|_id| {
        let cfg = cairn_engine::Config::load(&env.path("cairn.toml")).unwrap();
        let remote = cairn_remote::Remote::open(cfg.remote("offsite").unwrap()).unwrap();
        let key = remote.backend.list("packs/").unwrap().pop().unwrap().key;
        let mut bytes = remote.backend.get(&key).unwrap().unwrap();
        let at = bytes.len() / 2;
        bytes[at] ^= 0x01;
        remote.backend.put(&key, bytes).unwrap();
    });
}

#[test]
#[ignore = "needs .ci/remote-servers start (run by .ci/run)"]
fn sftp_full_cycle() {
    let sftp = sftp_from_env().unwrap_or_else(|e| panic!("{NEEDS}: {e}"));
    let env = Env::new();
    let sub = format!("t{}", std::process::id());
    with_remote(
        &env,
        &format!(
            "name = \"offsite\"\nurl = \"{}/{sub}\"\nkey_file = \"{}\"",
            sftp.url.trim_end_matches('/'),
            sftp.key_file.display()
        ),
    );
    let run = |args: &[&str]| env.cairn(args);
    let root = sftp.root.join(&sub);
    full_cycle(&env, &run, &|_id| {
        let pack = packs(&root).pop().unwrap();
        let len = std::fs::metadata(&pack).unwrap().len() as usize;
        flip_byte(&pack, len / 2, 0x40);
    });
}
