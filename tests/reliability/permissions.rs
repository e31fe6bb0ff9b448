//! Invariant 8: snapshot directories are private (0700), snapshot files
//! read-only; a restored file keeps the live file's mode and owner; the
//! repository lock file cannot redirect a write.
//!
//! Fails without: `fsutil::create_dir_private`/`make_read_only` in the
//! capture path, `restore::apply_metadata` taking mode and owner from the
//! live target, and `O_NOFOLLOW` in `lock::FileLock::acquire`.

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use crate::support::Env;
use crate::util::*;

#[test]
fn snapshot_directories_are_private_and_files_read_only() {
    let env = Env::new();
    let id = env.snapshot(&[]);
    let dir = env.snapshot_dir(&id);
    let mut files = 0;
    let mut stack = vec![dir.clone()];
    for top in ["backups/snapshots", "backups/tmp"] {
        let mode = std::fs::metadata(env.path(top)).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o700, "{top} is {mode:o}");
    }
    while let Some(d) = stack.pop() {
        let mode = std::fs::symlink_metadata(&d).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o700, "{} is {mode:o}", d.display());
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            if meta.is_dir() {
                stack.push(p);
            } else if meta.is_file() {
                files += 1;
                let mode = meta.mode() & 0o777;
                assert_eq!(mode & 0o222, 0, "{} is writable ({mode:o})", p.display());
                assert_eq!(
                    mode & 0o077,
                    0,
                    "{} is readable by others ({mode:o})",
                    p.display()
                );
            }
        }
    }
    assert!(files >= 5, "only {files} files checked");
}

#[test]
fn a_restored_file_keeps_the_live_files_mode() {
    a_restored_file_keeps_the_live_files_mode_and(false);
}

#[test]
#[ignore = "needs root"]
fn a_restored_file_keeps_the_live_files_mode_and_owner() {
    crate::support::require_root();
    a_restored_file_keeps_the_live_files_mode_and(true);
}

fn a_restored_file_keeps_the_live_files_mode_and(owner: bool) {
    let env = Env::new();
    let registry = env.path("config/project-registry.json");
    std::fs::set_permissions(&registry, std::fs::Permissions::from_mode(0o644)).unwrap();
    let id = env.snapshot(&[]);
    std::fs::write(&registry, b"{\"projects\":[]}\n").unwrap();
    std::fs::set_permissions(&registry, std::fs::Permissions::from_mode(0o640)).unwrap();
    if owner {
        std::os::unix::fs::chown(&registry, Some(12345), Some(12345)).unwrap();
    }
    let run = env.cairn(&[
        "restore",
        &id,
        "--confirm-service-stopped",
        "--only",
        "registry",
    ]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let meta = std::fs::metadata(&registry).unwrap();
    assert!(std::fs::read_to_string(&registry)
        .unwrap()
        .contains("p01-example"));
    assert_eq!(meta.mode() & 0o7777, 0o640);
    if owner {
        assert_eq!((meta.uid(), meta.gid()), (12345, 12345));
    }
}

#[test]
fn a_symlinked_lock_file_is_refused_and_its_target_untouched() {
    let env = Env::new();
    env.snapshot(&[]); // creates the layout
    let outside = tempfile::tempdir().unwrap();
    let lock = env.path("backups/lock");

    // Target exists: never truncated or written.
    let victim = outside.path().join("victim");
    std::fs::write(&victim, b"precious bytes").unwrap();
    std::fs::remove_file(&lock).unwrap();
    std::os::unix::fs::symlink(&victim, &lock).unwrap();
    for args in [&["snapshot"][..], &["prune", "--confirm"]] {
        let run = env.cairn(args);
        assert_ne!(run.code, 0, "{args:?} ran through a symlinked lock");
        assert!(run.stderr.contains("lock"), "{args:?}: {}", run.stderr);
        no_panic(&run, "symlinked lock");
    }
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious bytes");

    // Target missing: never created.
    let ghost = outside.path().join("ghost");
    std::fs::remove_file(&lock).unwrap();
    std::os::unix::fs::symlink(&ghost, &lock).unwrap();
    let run = env.cairn(&["snapshot"]);
    assert_ne!(run.code, 0);
    assert!(
        !ghost.exists() && !ghost.is_symlink(),
        "lock target was created"
    );
    assert_eq!(env.listed_ids().len(), 1);
}
