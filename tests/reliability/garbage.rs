//! Invariant 7: whatever bytes sit in a manifest, `validate` reports a
//! coded error and never panics; the manifest reader never panics on any
//! mutation of a real manifest; every fuzz-corpus file parses or fails
//! with a code.
//!
//! Fails without: `Manifest::parse`'s layered checks (JSON, object,
//! `format_version` before anything else, digest, typed fields) and the
//! problem codes in `problem::codes`.

use std::path::PathBuf;

use cairn_engine::Manifest;
use proptest::prelude::*;

use crate::support::Env;
use crate::util::*;

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fuzz-corpus/manifest")
}

/// Replaces a snapshot's manifest with `bytes` and validates it.
fn validate_with(env: &Env, id: &str, bytes: &[u8]) -> (i32, String, String) {
    env.unlock_snapshot(id);
    std::fs::write(manifest_path(env, id), bytes).unwrap();
    let run = env.cairn(&["--json", "validate", id]);
    no_panic(
        &run,
        &String::from_utf8_lossy(&bytes[..bytes.len().min(80)]),
    );
    let code = run.json()["results"][0]["errors"][0]["code"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    (run.code, code, run.stderr)
}

#[test]
fn garbage_manifests_give_a_clear_code_never_a_panic() {
    let env = Env::new();
    let id = env.snapshot(&[]);
    let real = std::fs::read(manifest_path(&env, &id)).unwrap();
    let value: serde_json::Value = serde_json::from_slice(&real).unwrap();

    let reseal = |v: &serde_json::Value| -> Vec<u8> {
        let mut v = v.clone();
        v.as_object_mut().unwrap().remove("digest");
        let digest = cairn_engine::manifest::digest_of(&v);
        v["digest"] = digest.into();
        serde_json::to_vec_pretty(&v).unwrap()
    };

    let mut future = value.clone();
    future["format_version"] = 99.into();
    let mut huge = value.clone();
    huge["stores"][0]["entries"][0]["size"] =
        serde_json::from_str::<serde_json::Value>("1e300").unwrap();
    let mut wrong_type = value.clone();
    wrong_type["stores"] = "all of them".into();
    let mut big_int = value.clone();
    big_int["stores"][0]["entries"][0]["mode"] = u64::MAX.into();
    let mut edited = value.clone();
    edited["host"] = "somewhere-else".into();

    let random: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("random bytes", random, "manifest_invalid"),
        ("empty", Vec::new(), "manifest_invalid"),
        (
            "truncated",
            real[..real.len() / 2].to_vec(),
            "manifest_invalid",
        ),
        ("json array", b"[1,2,3]".to_vec(), "manifest_invalid"),
        (
            "huge version",
            b"{\"format_version\": 1e999}".to_vec(),
            "manifest_invalid",
        ),
        (
            "deep nesting",
            [vec![b'['; 200_000], vec![b']'; 200_000]].concat(),
            "manifest_invalid",
        ),
        (
            "future format_version",
            reseal(&future),
            "manifest_unsupported_version",
        ),
        ("huge size", reseal(&huge), "manifest_invalid"),
        ("wrong type", reseal(&wrong_type), "manifest_invalid"),
        ("mode over u32", reseal(&big_int), "manifest_invalid"),
        (
            "edited without resealing",
            serde_json::to_vec(&edited).unwrap(),
            "manifest_digest_mismatch",
        ),
    ];
    for (what, bytes, expected) in cases {
        let (exit, code, stderr) = validate_with(&env, &id, &bytes);
        assert_eq!(exit, 1, "{what}: {stderr}");
        assert_eq!(code, expected, "{what}");
    }
    // And the real bytes are still fine (the harness itself is sound).
    let (exit, code, _) = validate_with(&env, &id, &real);
    assert_eq!((exit, code.as_str()), (0, ""));
}

#[test]
fn every_fuzz_corpus_file_parses_or_fails_with_a_code() {
    let mut seen = 0;
    for entry in std::fs::read_dir(corpus_dir()).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let result = std::panic::catch_unwind(|| Manifest::parse(&bytes, "20260101T000000Z"));
        let result = result.unwrap_or_else(|_| panic!("{name}: Manifest::parse panicked"));
        match (name.as_str(), &result) {
            ("valid-three-stores.json", Ok(_)) => {}
            ("valid-three-stores.json", Err(p)) => panic!("{name}: {p}"),
            ("future-version.json", Err(p)) => assert_eq!(p.code, "manifest_unsupported_version"),
            ("digest-mismatch.json", Err(p)) => assert_eq!(p.code, "manifest_digest_mismatch"),
            // Format 3's own rules, behind a digest that matches.
            (
                "path-b64-disagrees.json"
                | "path-b64-escapes.json"
                | "link-of-a-directory.json"
                | "mode-with-type-bits.json",
                Err(p),
            ) => assert_eq!(p.code, "manifest_invalid", "{name}: {p}"),
            (_, Err(p)) => assert!(
                p.code.starts_with("manifest_") && !p.detail.is_empty(),
                "{name}: {p}"
            ),
            (_, Ok(_)) if name.starts_with("valid") => {}
            (_, Ok(_)) => panic!("{name}: hostile corpus file accepted"),
        }
        seen += 1;
    }
    assert!(seen >= 20, "corpus has only {seen} files");
}

fn real_manifest() -> Vec<u8> {
    std::fs::read(corpus_dir().join("valid-three-stores.json")).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Random byte edits of a real manifest: never a panic, and anything
    /// that still parses must be the unedited manifest (the digest covers
    /// every field).
    #[test]
    fn mutated_manifests_never_panic(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..8)
    ) {
        let original = real_manifest();
        let mut bytes = original.clone();
        for (at, byte, op) in edits {
            if bytes.is_empty() { break; }
            let i = at.index(bytes.len());
            match op {
                0 => bytes[i] = byte,
                1 => { bytes.remove(i); }
                _ => bytes.insert(i, byte),
            }
        }
        let parsed = Manifest::parse(&bytes, "20260101T000000Z");
        if let Ok(m) = parsed {
            let reference = Manifest::parse(&original, "20260101T000000Z").unwrap();
            prop_assert_eq!(m, reference);
        }
    }
}
