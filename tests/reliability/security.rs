//! The service's own user attacks a root-run Cairn (docs/security.md):
//! it owns the service's tree and plants symlinks there; Cairn, run as
//! root, must never let one redirect a delete, a write or a read. Each
//! test runs the attack, then checks that the victim (a root-owned stand-in
//! for /etc or a private key) is byte-for-byte and mode-for-mode unchanged
//! and nothing of it reached a snapshot. They need root (to own files as
//! root and give the tree to another uid): `#[ignore = "needs root"]`,
//! run by .ci/run as root.

use std::os::unix::fs::{lchown, symlink, MetadataExt, PermissionsExt};
use std::path::Path;

use crate::support::{self, Env};

/// The unprivileged `nobody` of most systems, standing for the service's
/// user; no account needs to exist for files to be owned by it.
const SERVICE_UID: u32 = 65534;

/// Gives `root` and everything in it to the service's user, as a service
/// tree is (`chown -R`), links included.
fn give_to_service(root: &Path) {
    lchown(root, Some(SERVICE_UID), Some(SERVICE_UID)).unwrap();
    for (rel, _, _) in support::tree(root) {
        lchown(root.join(rel), Some(SERVICE_UID), Some(SERVICE_UID)).unwrap();
    }
}

/// A root-only directory holding what an attacker wants to replace or
/// read: everything about it, to compare after the attack.
struct Victim {
    _dir: tempfile::TempDir,
    root: std::path::PathBuf,
}

impl Victim {
    fn new() -> Victim {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("etc");
        std::fs::create_dir(&root).unwrap();
        std::fs::write(root.join("sudoers"), b"root ALL=(ALL) ALL\n").unwrap();
        std::fs::write(root.join("id_ed25519"), b"-----PRIVATE KEY-----\n").unwrap();
        std::fs::write(root.join("db"), b"not a database, root's own\n").unwrap();
        std::fs::write(root.join("db-wal"), b"root's wal\n").unwrap();
        for name in ["sudoers", "id_ed25519", "db", "db-wal"] {
            std::fs::set_permissions(root.join(name), std::fs::Permissions::from_mode(0o600))
                .unwrap();
        }
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o700)).unwrap();
        Victim { _dir: dir, root }
    }

    /// Every entry with its bytes, mode and owner.
    fn state(&self) -> Vec<(String, Vec<u8>, u32, u32)> {
        let mut out = vec![(
            ".".to_owned(),
            Vec::new(),
            std::fs::metadata(&self.root).unwrap().mode(),
            std::fs::metadata(&self.root).unwrap().uid(),
        )];
        for (rel, _, bytes) in support::tree(&self.root) {
            let meta = std::fs::symlink_metadata(self.root.join(&rel)).unwrap();
            out.push((rel, bytes, meta.mode(), meta.uid()));
        }
        out
    }
}

/// Replaces `path` (in the service's tree) with a link to `to`, owned by
/// the service's user, as that user would.
fn plant_link(path: &Path, to: &Path) {
    support::remove_any(path);
    symlink(to, path).unwrap();
    lchown(path, Some(SERVICE_UID), Some(SERVICE_UID)).unwrap();
}

/// Every byte under the repository, to search for a victim's secret.
fn repository_holds(env: &Env, needle: &[u8]) -> bool {
    support::tree(&env.path("backups"))
        .iter()
        .any(|(_, _, bytes)| bytes.windows(needle.len()).any(|w| w == needle))
}

#[test]
#[ignore = "needs root"]
fn a_live_restore_never_follows_a_directory_store_swapped_for_a_symlink() {
    support::require_root();
    let env = Env::new();
    let id = env.snapshot(&[]);
    let victim = Victim::new();
    let before = victim.state();
    give_to_service(&env.path("data"));
    plant_link(&env.path("data/chroma"), &victim.root);

    let run = env.cairn(&[
        "restore",
        &id,
        "--only",
        "chroma",
        "--confirm-service-stopped",
    ]);
    assert_eq!(run.code, 3, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("data/chroma"), "{}", run.stderr);
    assert!(run.stderr.contains("symlink"), "{}", run.stderr);
    assert_eq!(victim.state(), before, "the victim directory changed");
}

#[test]
#[ignore = "needs root"]
fn a_live_restore_never_follows_file_stores_swapped_for_symlinks() {
    support::require_root();
    let env = Env::new();
    let id = env.snapshot(&[]);
    let victim = Victim::new();
    let before = victim.state();
    give_to_service(&env.path("data"));
    give_to_service(&env.path("config"));
    plant_link(
        &env.path("config/project-registry.json"),
        &victim.root.join("sudoers"),
    );
    plant_link(&env.path("data/atocore.db"), &victim.root.join("db"));

    for store in ["registry", "db"] {
        let run = env.cairn(&["restore", &id, "--only", store, "--confirm-service-stopped"]);
        assert_eq!(run.code, 3, "{store}: {}\n{}", run.stdout, run.stderr);
        assert!(run.stderr.contains("symlink"), "{store}: {}", run.stderr);
    }
    // Neither the files nor the database's sidecars beside the link's
    // target were touched.
    assert_eq!(victim.state(), before, "a victim file changed");
}

#[test]
#[ignore = "needs root"]
fn a_snapshot_never_follows_a_store_path_swapped_for_a_symlink() {
    support::require_root();
    let env = Env::new();
    let victim = Victim::new();
    give_to_service(&env.path("data"));
    plant_link(&env.path("data/chroma"), &victim.root);

    let run = env.cairn(&["snapshot"]);
    assert_eq!(run.code, 3, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("data/chroma"), "{}", run.stderr);
    assert!(
        !repository_holds(&env, b"PRIVATE KEY"),
        "the key reached the repository"
    );
    assert!(env.listed_ids().is_empty());
}

#[test]
#[ignore = "needs root"]
fn a_symlink_root_placed_in_a_root_only_directory_is_still_followed() {
    // The common, safe case: root points a store at a volume with a link
    // in a directory only root can change. Refusing it would break setups
    // that never involved the service's user.
    support::require_root();
    let env = Env::new();
    let volume = tempfile::tempdir().unwrap();
    std::fs::rename(env.path("data/chroma"), volume.path().join("chroma")).unwrap();
    symlink(volume.path().join("chroma"), env.path("data/chroma")).unwrap();
    let id = env.snapshot(&[]);
    let manifest = env.snapshot_dir(&id).join("stores/chroma");
    assert!(manifest.join("seg-0001").is_dir());
}

#[test]
#[ignore = "needs root"]
fn follow_symlink_allows_a_trusted_link_but_never_one_the_service_owns() {
    support::require_root();
    let env = Env::new();
    let volume = tempfile::tempdir().unwrap();
    std::fs::rename(env.path("data/chroma"), volume.path().join("chroma")).unwrap();
    give_to_service(&env.path("data"));
    // Root's own link, but in a directory the service's user can change.
    symlink(volume.path().join("chroma"), env.path("data/chroma")).unwrap();
    let refused = env.cairn(&["snapshot"]);
    assert_eq!(refused.code, 3, "{}", refused.stderr);

    let config = support::CONFIG.replace(
        "path = \"data/chroma\"",
        "path = \"data/chroma\"\nfollow_symlink = true",
    );
    assert_ne!(config, support::CONFIG);
    env.write_config(&config);
    let run = env.cairn(&["snapshot"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);

    // The same link owned by the service's user is refused even so.
    lchown(
        env.path("data/chroma"),
        Some(SERVICE_UID),
        Some(SERVICE_UID),
    )
    .unwrap();
    let run = env.cairn(&["snapshot"]);
    assert_eq!(run.code, 3, "{}\n{}", run.stdout, run.stderr);
}

#[test]
#[ignore = "needs root"]
fn restore_to_adopts_no_one_elses_directory_and_follows_no_link() {
    support::require_root();
    let env = Env::new();
    let id = env.snapshot(&[]);
    let to = tempfile::tempdir().unwrap();

    // Another user's empty directory where the chroma store would go.
    let theirs = to.path().join("a");
    std::fs::create_dir_all(theirs.join("chroma")).unwrap();
    lchown(theirs.join("chroma"), Some(SERVICE_UID), Some(SERVICE_UID)).unwrap();
    let run = env.cairn(&["restore", &id, "--to", theirs.to_str().unwrap()]);
    assert_eq!(run.code, 3, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("uid 65534"), "{}", run.stderr);
    assert_eq!(
        support::dir_names(&theirs.join("chroma")),
        Vec::<String>::new()
    );

    // A link where the store would go.
    let victim = Victim::new();
    let before = victim.state();
    let linked = to.path().join("b");
    std::fs::create_dir(&linked).unwrap();
    symlink(&victim.root, linked.join("chroma")).unwrap();
    let run = env.cairn(&["restore", &id, "--to", linked.to_str().unwrap()]);
    assert_eq!(run.code, 3, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(victim.state(), before);

    // The --to path itself through the service user's link, given
    // relative (Cairn runs in env.root): refused, nothing written there,
    // and the hint speaks of --to, not only of a store's path.
    plant_link(&env.path("planted"), &victim.root);
    let run = env.cairn(&["restore", &id, "--to", "planted/out"]);
    assert_eq!(run.code, 3, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("--to"), "{}", run.stderr);
    assert_eq!(victim.state(), before);

    // A fresh directory: stores land 0700 at the top, the restorer's own,
    // whatever the umask.
    let fresh = to.path().join("c");
    let run = support::run_with_umask(
        &env,
        0o000,
        &["restore", &id, "--to", fresh.to_str().unwrap()],
    );
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    for top in ["db", "registry", "chroma"] {
        let meta = std::fs::metadata(fresh.join(top)).unwrap();
        assert_eq!(meta.mode() & 0o7777, 0o700, "{top}");
        assert_eq!(meta.uid(), 0, "{top}");
    }
    let db = std::fs::metadata(fresh.join("db/atocore.db")).unwrap();
    assert_eq!(db.uid(), 0, "the database was given away");
}

#[test]
#[ignore = "needs root"]
fn a_missing_lock_file_is_created_for_the_service_not_for_root() {
    support::require_root();
    let env = Env::new();
    // The standard config names lock_file = "data/.ingest.lock".
    assert!(support::CONFIG.contains("lock_file = \"data/.ingest.lock\""));
    support::remove_any(&env.path("data/.ingest.lock"));
    give_to_service(&env.path("data"));
    env.snapshot(&[]);
    let lock = std::fs::metadata(env.path("data/.ingest.lock")).unwrap();
    assert_eq!((lock.uid(), lock.gid()), (SERVICE_UID, SERVICE_UID));
    assert_eq!(lock.mode() & 0o777, 0o644);

    // A lock file swapped for a link to a root file is refused, not created
    // or truncated through.
    let victim = Victim::new();
    let before = victim.state();
    plant_link(&env.path("data/.ingest.lock"), &victim.root.join("sudoers"));
    let run = env.cairn(&["snapshot"]);
    assert_eq!(run.code, 3, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(victim.state(), before);
}

#[test]
fn a_huge_manifest_not_in_cairns_layout_is_refused_without_parsing_it() {
    // Anyone who can write the repository can plant one; `list` once
    // parsed any layout into a JSON tree (~9 GB of memory for 500 MB).
    let env = Env::new();
    let id = env.snapshot(&[]);
    let path = env.snapshot_dir(&id).join("manifest.json");
    support::make_writable(&env.snapshot_dir(&id));
    let mut doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    doc["padding"] = serde_json::Value::String("x".repeat(20 << 20));
    std::fs::write(&path, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();

    let run = env.cairn(&["--json", "list"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json()["snapshots"][0]["problem"], "manifest_invalid");
    let run = env.cairn(&["--json", "validate", &id]);
    assert_eq!(run.code, 1);
    let detail = run.json()["results"][0]["errors"][0]["detail"].clone();
    assert!(detail.as_str().unwrap().contains("limit"), "{detail}");
}

#[test]
fn a_large_manifest_of_cairns_own_that_rotted_is_a_digest_mismatch() {
    // The size cap is for other layouts; one of Cairn's own manifests over
    // it (a big tree) with a flipped bit is damage, and says so.
    let env = Env::new();
    let id = env.snapshot(&[]);
    env.edit_manifest(&id, |m| {
        m.stores[0]
            .metadata
            .insert("padding".into(), "x".repeat(20 << 20).into());
    });
    let path = env.snapshot_dir(&id).join("manifest.json");
    assert!(
        env.cairn(&["validate", &id]).code == 0,
        "resealed manifest reads"
    );
    let at = std::fs::read(&path).unwrap().len() / 2;
    support::make_writable(&path);
    support::flip_byte(&path, at, 0x01);

    let run = env.cairn(&["--json", "validate", &id]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(
        run.json()["results"][0]["errors"][0]["code"],
        "manifest_digest_mismatch"
    );
}
