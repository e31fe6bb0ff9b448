//! Invariant 9: symlinks in a `chroma-dir` source are stored and restored
//! as links, never followed; a symlink loop and a FIFO are handled, the
//! FIFO skipped with a warning and never opened.
//!
//! Fails without: `tree::capture_tree` using `symlink_metadata` and
//! `CaptureCtx::add_symlink` (a followed link copies outside data or loops;
//! an opened FIFO blocks forever), and the symlink branch of restore's
//! staging.

use std::time::Duration;

use crate::support::{self, Env};
use crate::util::*;

#[test]
fn symlinks_are_kept_as_links_and_a_fifo_is_skipped_without_hanging() {
    let env = Env::new();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret"), b"outside data").unwrap();
    let chroma = env.path("data/chroma");
    let links = [
        ("rel-link", "seg-0001/header.bin".to_owned()),
        (
            "abs-link",
            outside.path().join("secret").display().to_string(),
        ),
        ("dir-link", outside.path().display().to_string()),
        ("dangling", "no/such/file".to_owned()),
        ("loop-a", "loop-b".to_owned()),
        ("loop-b", "loop-a".to_owned()),
    ];
    for (name, target) in &links {
        std::os::unix::fs::symlink(target, chroma.join(name)).unwrap();
    }
    let fifo = chroma.join("pipe");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY-free alternative does not exist in std; libc::mkfifo is the call.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::mkfifo(c.as_ptr(), 0o644) };
    assert_eq!(rc, 0, "mkfifo failed");

    // A snapshot that opened the FIFO would block forever: run with a limit.
    let child = spawn(&env, &["--json", "snapshot"], &[]);
    let run = wait_or_kill(child, Duration::from_secs(120))
        .expect("snapshot hung (did it open the FIFO?)");
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let id = run.json()["id"].as_str().unwrap().to_owned();

    let manifest = read_manifest(&env, &id);
    let record = manifest.store("chroma").unwrap();
    for (name, target) in &links {
        let e = record
            .entries
            .iter()
            .find(|e| e.path == *name)
            .unwrap_or_else(|| panic!("{name} not in the manifest"));
        assert_eq!(e.kind, cairn_engine::EntryKind::Symlink, "{name}");
        assert_eq!(
            e.target().and_then(|t| t.to_str()),
            Some(target.as_str()),
            "{name}"
        );
        let stored = env.snapshot_dir(&id).join("stores/chroma").join(name);
        assert_eq!(
            std::fs::read_link(&stored).unwrap().to_str().unwrap(),
            target
        );
    }
    assert!(record.entries.iter().all(|e| e.path != "pipe"));
    assert!(
        record.warnings.iter().any(|w| w.contains("pipe")),
        "no warning for the FIFO: {:?}",
        record.warnings
    );
    // Nothing from outside was copied in.
    for (_, kind, bytes) in support::tree(&env.snapshot_dir(&id)) {
        assert!(
            !(kind == "file" && bytes == b"outside data"),
            "outside data copied"
        );
    }
    let run = env.cairn(&["validate", &id]);
    assert_eq!(run.code, 0, "{}", run.stdout);

    // Restored as links, elsewhere and live.
    let to = tempfile::tempdir().unwrap();
    let dest = to.path().join("out");
    let run = env.cairn(&["restore", &id, "--to", dest.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    for (name, target) in &links {
        let p = dest.join("chroma").join(name);
        assert_eq!(
            std::fs::read_link(&p).unwrap().to_str().unwrap(),
            target,
            "--to {name}"
        );
    }
    for (name, _) in &links {
        std::fs::remove_file(chroma.join(name)).unwrap();
    }
    std::fs::remove_file(&fifo).unwrap();
    let run = env.cairn(&[
        "restore",
        &id,
        "--confirm-service-stopped",
        "--only",
        "chroma",
    ]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    for (name, target) in &links {
        let p = chroma.join(name);
        assert_eq!(
            std::fs::read_link(&p).unwrap().to_str().unwrap(),
            target,
            "live {name}"
        );
    }
    assert_eq!(
        std::fs::read(outside.path().join("secret")).unwrap(),
        b"outside data"
    );
}
