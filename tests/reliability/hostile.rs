//! Invariant 6: hostile snapshot content is refused (exit 3) before anything
//! is written, and a restore never follows a symlink in its target.
//!
//! Fails without: `manifest::check_rel_path` and the duplicate check in
//! `Manifest::check_shape` (paths are joined onto the target unchecked),
//! the up-front `validate::check_files` gate in `restore::run` (a symlink
//! in the snapshot is only noticed while staging), `fsutil::open_nofollow`,
//! and `fsutil::remove_any`/`replace_dir_contents` never following links.

use cairn_engine::{Entry, EntryKind};

use crate::support::{self, Env};
use crate::util::*;

/// Restores `id` both live and `--to`, expecting exit 3 and no write.
fn assert_refused_untouched(env: &Env, id: &str, what: &str) {
    let outside = tempfile::tempdir().unwrap();
    let before = live_state(env);
    let run = env.cairn(&["restore", id, "--confirm-service-stopped"]);
    assert_eq!(
        run.code, 3,
        "{what}: live restore: {}\n{}",
        run.stdout, run.stderr
    );
    no_panic(&run, what);
    assert!(live_state(env) == before, "{what}: live data changed");
    let to = outside.path().join("restored");
    let run = env.cairn(&["restore", id, "--to", to.to_str().unwrap()]);
    assert_eq!(
        run.code, 3,
        "{what}: --to restore: {}\n{}",
        run.stdout, run.stderr
    );
    assert!(!to.exists(), "{what}: --to target was created");
    assert!(live_state(env) == before, "{what}: live data changed");
    assert_eq!(
        support::tree(outside.path()),
        Vec::new(),
        "{what}: something was written outside"
    );
    assert_eq!(
        std::fs::read_dir(env.path("data/chroma"))
            .unwrap()
            .filter(|e| e
                .as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with(".cairn"))
            .count(),
        0,
        "{what}: staging left in the live chroma dir"
    );
}

#[test]
fn hostile_manifest_paths_are_refused_before_anything_is_written() {
    let env = Env::new();
    let cases: [(&str, &str); 5] = [
        ("dotdot", "../../escaped"),
        ("deep dotdot", "seg-0001/../../../escaped"),
        ("absolute", "/tmp/cairn-escaped"),
        ("empty component", "seg-0001//header.bin"),
        ("dot component", "./seg-0001"),
    ];
    for (what, path) in cases {
        let id = env.snapshot(&[]);
        env.edit_manifest(&id, |m| {
            let chroma = m.stores.iter_mut().find(|s| s.name == "chroma").unwrap();
            let e = chroma
                .entries
                .iter_mut()
                .find(|e| e.path == "seg-0001/header.bin")
                .unwrap();
            e.path = path.into();
        });
        assert_refused_untouched(&env, &id, what);
        let run = env.cairn(&["--json", "validate", &id]);
        assert_eq!(run.code, 1, "{what}");
        assert_eq!(
            run.json()["results"][0]["errors"][0]["code"],
            "manifest_invalid",
            "{what}"
        );
    }
    assert!(!std::path::Path::new("/tmp/cairn-escaped").exists());

    // The same entry twice.
    let id = env.snapshot(&[]);
    env.edit_manifest(&id, |m| {
        let chroma = m.stores.iter_mut().find(|s| s.name == "chroma").unwrap();
        let dup: Entry = chroma.entries.last().unwrap().clone();
        chroma.entries.push(dup);
    });
    assert_refused_untouched(&env, &id, "duplicate entry");

    // A symlink entry whose parent is a file: no entry may hang below one.
    let id = env.snapshot(&[]);
    env.edit_manifest(&id, |m| {
        let chroma = m.stores.iter_mut().find(|s| s.name == "chroma").unwrap();
        let mut link: Entry = chroma.entries.last().unwrap().clone();
        link.path = "seg-0001/header.bin/x".into();
        link.kind = EntryKind::Symlink;
        link.size = None;
        link.sha256 = None;
        link.set_target(Some("/etc/passwd".into()));
        chroma.entries.push(link);
    });
    assert_refused_untouched(&env, &id, "entry below a file");
}

#[test]
fn a_symlink_planted_in_a_snapshot_is_refused_and_never_read_through() {
    let env = Env::new();
    let outside = tempfile::tempdir().unwrap();
    // Same bytes as the real file, so only the type can give it away.
    let secret = outside.path().join("header.bin");
    std::fs::write(&secret, b"header").unwrap();

    // Both snapshots first: a later snapshot may hard-link files of an
    // earlier one (see `a_damaged_parent_snapshot_does_not_damage_the_next_one`).
    let id = env.snapshot(&[]);
    let id2 = env.snapshot(&[]);
    env.unlock_snapshot(&id);
    let planted = env
        .snapshot_dir(&id)
        .join("stores/chroma/seg-0001/header.bin");
    std::fs::remove_file(&planted).unwrap();
    std::os::unix::fs::symlink(&secret, &planted).unwrap();
    assert_refused_untouched(&env, &id, "file replaced by a symlink");

    // A whole directory of the snapshot replaced by a link to outside.
    let id = id2;
    env.unlock_snapshot(&id);
    let seg = env.snapshot_dir(&id).join("stores/chroma/seg-0001");
    let elsewhere = outside.path().join("seg");
    std::fs::rename(&seg, &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &seg).unwrap();
    let before_outside = support::tree(outside.path());
    let before = live_state(&env);
    let run = env.cairn(&["restore", &id, "--confirm-service-stopped"]);
    assert_eq!(run.code, 3, "{}\n{}", run.stdout, run.stderr);
    assert!(live_state(&env) == before);
    assert!(support::tree(outside.path()) == before_outside);
    let run = env.cairn(&["--json", "validate", &id]);
    assert_eq!(run.code, 1);
    assert!(run.stdout.contains("file_type_mismatch"), "{}", run.stdout);
}

#[test]
fn restore_never_follows_a_symlink_in_the_live_target() {
    let env = Env::new();
    let id = env.snapshot(&[]);
    let outside = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(outside.path().join("dir/sub")).unwrap();
    std::fs::write(outside.path().join("dir/keep.txt"), b"outside file").unwrap();
    std::fs::write(outside.path().join("dir/sub/deep.txt"), b"deep").unwrap();
    std::fs::write(outside.path().join("registry.json"), b"{\"outside\":true}").unwrap();
    let outside_before = support::tree(outside.path());

    let chroma = env.path("data/chroma");
    // A link to an outside directory, and a real directory of the snapshot
    // replaced by such a link.
    std::os::unix::fs::symlink(outside.path().join("dir"), chroma.join("evil")).unwrap();
    std::fs::remove_dir_all(chroma.join("seg-0001")).unwrap();
    std::os::unix::fs::symlink(outside.path().join("dir"), chroma.join("seg-0001")).unwrap();

    let run = env.cairn(&["--json", "restore", &id, "--confirm-service-stopped"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        support::tree(outside.path()) == outside_before,
        "files outside the target changed"
    );
    assert!(chroma.join("seg-0001").is_dir() && !chroma.join("seg-0001").is_symlink());
    assert_eq!(
        std::fs::read(chroma.join("seg-0001/header.bin")).unwrap(),
        b"header"
    );
    assert!(!chroma.join("evil").exists() && !chroma.join("evil").is_symlink());

    // A store whose *configured* path is a symlink (an operator pointing at
    // a volume) is restored through it by design: the link stays, what it
    // names gets the snapshot's bytes, and nothing else outside changes.
    let registry = env.path("config/project-registry.json");
    let named = outside.path().join("registry.json");
    std::fs::remove_file(&registry).unwrap();
    std::os::unix::fs::symlink(&named, &registry).unwrap();
    let run = env.cairn(&[
        "restore",
        &id,
        "--confirm-service-stopped",
        "--only",
        "registry",
        "--no-pre-snapshot",
    ]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(registry.is_symlink(), "the configured link was replaced");
    assert!(std::fs::read_to_string(&named)
        .unwrap()
        .contains("p01-example"));
    let dir_only = |t: Vec<(String, String, Vec<u8>)>| -> Vec<_> {
        t.into_iter()
            .filter(|(p, _, _)| p.starts_with("dir"))
            .collect()
    };
    assert!(dir_only(support::tree(outside.path())) == dir_only(outside_before));
}

/// A new snapshot may reuse (hard-link) unchanged files of the previous
/// one; a damaged previous snapshot must not carry its damage forward.
///
/// Fails without: a check in `capture::link_from_parent` that the parent's
/// file is still a regular file with the recorded size (and ideally hash).
#[test]
fn a_damaged_parent_snapshot_does_not_damage_the_next_one() {
    let env = Env::new();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("header.bin"), b"header").unwrap();
    let first = env.snapshot(&[]);
    env.unlock_snapshot(&first);
    let planted = env
        .snapshot_dir(&first)
        .join("stores/chroma/seg-0001/header.bin");
    std::fs::remove_file(&planted).unwrap();
    std::os::unix::fs::symlink(outside.path().join("header.bin"), &planted).unwrap();
    let run = env.cairn(&["--json", "snapshot"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(run.json()["validated"], true);
}

/// A tree nested past what one system call takes (`PATH_MAX`, 4,096
/// bytes) cannot be copied into the repository by path: the snapshot must
/// say so, name the path, and publish nothing, rather than a snapshot
/// with a hole in it. The snapshots before it stay valid.
#[test]
fn a_tree_nested_past_path_max_fails_the_snapshot_loudly_and_publishes_nothing() {
    let env = Env::new();
    let earlier = env.snapshot(&[]);
    // 20 names of 250 bytes (5,020 bytes of path), made one level at a
    // time, so no single path given to the kernel is over the limit.
    let name = "n".repeat(250);
    let mut parent: rustix::fd::OwnedFd =
        std::fs::File::open(env.path("data/chroma")).unwrap().into();
    for _ in 0..20 {
        rustix::fs::mkdirat(
            &parent,
            name.as_str(),
            rustix::fs::Mode::from_raw_mode(0o755),
        )
        .unwrap();
        parent = rustix::fs::openat(
            &parent,
            name.as_str(),
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY,
            rustix::fs::Mode::empty(),
        )
        .unwrap();
    }

    let run = env.cairn(&["snapshot"]);
    assert_eq!(run.code, 4, "{}\n{}", run.stdout, run.stderr);
    no_panic(&run, "deep tree");
    assert!(
        run.stderr.contains("File name too long") && run.stderr.contains(&name),
        "{}",
        run.stderr
    );
    assert_eq!(env.listed_ids(), vec![earlier]);
    assert_eq!(tmp_entries(&env), Vec::<String>::new());
    assert_all_valid(&env, "after the refused snapshot");
}
