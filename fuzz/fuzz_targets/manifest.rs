//! Feeds arbitrary bytes to the manifest reader. It must return a coded
//! `Problem` or a manifest, never panic, whatever the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match cairn_engine::Manifest::parse(data, "20260101T000000Z") {
        Ok(manifest) => {
            // Whatever parses must survive a round trip unchanged.
            let again = cairn_engine::Manifest::parse(&manifest.to_bytes(), "20260101T000000Z")
                .expect("a parsed manifest re-reads");
            assert_eq!(again, manifest);
        }
        Err(problem) => assert!(!problem.code.is_empty()),
    }
});
