//! Reading a pack as one stream: the chunks a caller wants, each checked
//! against its SHA-256 before the caller sees it, and the whole pack
//! against its name and recorded size, in one pass. At most one chunk is
//! held (`chunk::CDC_MAX`), never the pack: this is what keeps pull and
//! `validate --read-data` within their memory bound whatever the pack size.
//!
//! The chunks passed in come from an index [`crate::remote::Remote::index`]
//! has checked (sorted, inside the pack, none longer than a chunk can be),
//! so a hostile index cannot make this allocate or seek without bound.

use std::io::{self, Read};

use cairn_engine::checksum::Checksum;
use cairn_engine::{Problem, Result};
use sha2::{Digest, Sha256};

use crate::backend::Backend;
use crate::format::{self, IndexedChunk};
use crate::pull::{BLOB_CHECKSUM_MISMATCH, BLOB_MISSING, BLOB_SIZE_MISMATCH};

/// Reads pack `pack` (recorded as `size` bytes) from `backend` and calls
/// `each(i, bytes)` for each `wanted[i]` whose bytes match its hash, in
/// order. `wanted` must be sorted by offset and not overlap. Returns what
/// is wrong with the pack (nothing: it is sound); a chunk that does not
/// match is reported and not handed over. Errors are the remote's (it
/// could not be read), or `each`'s.
pub fn stream_pack(
    backend: &Backend,
    pack: &str,
    size: u64,
    wanted: &[IndexedChunk],
    mut each: impl FnMut(usize, &[u8]) -> Result<()>,
) -> Result<Vec<Problem>> {
    let key = format::pack_key(pack);
    let Some(mut reader) = backend.read_stream(&key)? else {
        return Ok(vec![
            Problem::new(BLOB_MISSING, "not on the remote").at(&key)
        ]);
    };
    let mut problems = Vec::new();
    let mut hasher = Sha256::new();
    let mut at = 0u64;
    let mut chunk = Vec::new();
    // The first wanted chunk the stream ended inside of, if any.
    let mut short: Option<&IndexedChunk> = None;
    for (i, want) in wanted.iter().enumerate() {
        cairn_engine::cancel::check()?;
        let gap = want.offset.saturating_sub(at);
        let skipped =
            pass_over(&mut reader, gap, &mut hasher).map_err(|e| fail(backend, &key, e))?;
        at += skipped;
        if skipped < gap {
            short = Some(want);
            break;
        }
        let length = usize::try_from(want.length).unwrap_or(usize::MAX);
        chunk.clear();
        let got = (&mut reader)
            .take(want.length)
            .read_to_end(&mut chunk)
            .map_err(|e| fail(backend, &key, e))?;
        hasher.update(&chunk);
        at += got as u64;
        if got < length {
            short = Some(want);
            break;
        }
        if Checksum::of(&chunk) == want.sha256 {
            each(i, &chunk)?;
        } else {
            problems.push(chunk_mismatch(&key, want));
        }
    }
    // The rest, for the pack's own hash and size; one byte past the
    // recorded size is enough to know it is longer.
    if let Some(cut) = short {
        // Whatever the recorded size says: a chunk the caller needs is not
        // all there, and it must hear so.
        problems.push(
            Problem::new(
                BLOB_SIZE_MISMATCH,
                format!(
                    "ends at byte {at}, inside chunk {} at offset {} ({} bytes)",
                    cut.sha256, cut.offset, cut.length
                ),
            )
            .at(&key),
        );
        return Ok(problems);
    }
    at += pass_over(
        &mut reader,
        (size - at.min(size)).saturating_add(1),
        &mut hasher,
    )
    .map_err(|e| fail(backend, &key, e))?;
    if at != size {
        problems.push(
            Problem::new(
                BLOB_SIZE_MISMATCH,
                format!(
                    "{} bytes, the snapshot records {size}",
                    if at > size {
                        "more than that".to_owned()
                    } else {
                        at.to_string()
                    }
                ),
            )
            .at(&key),
        );
    } else if Checksum::from_hasher(hasher).to_hex() != pack {
        problems.push(
            Problem::new(BLOB_CHECKSUM_MISMATCH, "its bytes do not hash to its name").at(&key),
        );
    }
    Ok(problems)
}

/// The few chunks wanted from pack `pack`, one ranged read each (cheaper
/// than the whole pack when they are a small part of it), each checked
/// against its hash; what does not match is reported, not handed over.
pub fn read_chunks(
    backend: &Backend,
    pack: &str,
    wanted: &[IndexedChunk],
    mut each: impl FnMut(usize, &[u8]) -> Result<()>,
) -> Result<Vec<Problem>> {
    let key = format::pack_key(pack);
    let mut problems = Vec::new();
    for (i, want) in wanted.iter().enumerate() {
        cairn_engine::cancel::check()?;
        let data = backend.get_range(&key, want.offset, want.length)?;
        if Checksum::of(&data) == want.sha256 {
            each(i, &data)?;
        } else {
            problems.push(chunk_mismatch(&key, want));
        }
    }
    Ok(problems)
}

fn chunk_mismatch(key: &str, chunk: &IndexedChunk) -> Problem {
    Problem::new(
        BLOB_CHECKSUM_MISMATCH,
        format!(
            "chunk {} at offset {} does not match its hash",
            chunk.sha256, chunk.offset
        ),
    )
    .at(key)
}

fn fail(backend: &Backend, key: &str, e: io::Error) -> cairn_engine::Error {
    backend.read_failed(key, e)
}

/// Reads and hashes up to `n` bytes, returning how many there were.
fn pass_over(reader: &mut impl Read, n: u64, hasher: &mut Sha256) -> io::Result<u64> {
    let mut buf = [0u8; 64 * 1024];
    let mut done = 0u64;
    while done < n {
        let want = usize::try_from((n - done).min(buf.len() as u64)).unwrap_or(buf.len());
        let got = match reader.read(&mut buf[..want]) {
            Ok(0) => break,
            Ok(got) => got,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..got]);
        done += got as u64;
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(root: &std::path::Path) -> Backend {
        let url = format!("file://{}", root.display());
        Backend::open(&crate::target::test_config(&url)).unwrap()
    }

    /// Three chunks back to back (the middle one 200 KiB, so the gap
    /// before the third spans several reads); the pack's name is its hash.
    fn pack(root: &std::path::Path, flip: Option<usize>) -> (String, Vec<u8>, Vec<IndexedChunk>) {
        let bytes: Vec<u8> = (0..(300 * 1024u32))
            .map(|i| (i * 7 + i / 251) as u8)
            .collect();
        let cuts = [
            (0u64, 1000u64),
            (1000, 200 * 1024),
            (1000 + 200 * 1024, 300 * 1024 - 1000 - 200 * 1024),
        ];
        let chunks: Vec<IndexedChunk> = cuts
            .iter()
            .map(|&(offset, length)| IndexedChunk {
                sha256: Checksum::of(&bytes[offset as usize..(offset + length) as usize]),
                offset,
                length,
            })
            .collect();
        let name = Checksum::of(&bytes).to_hex();
        let mut stored = bytes.clone();
        if let Some(at) = flip {
            stored[at] ^= 0x01;
        }
        let path = root.join(format::pack_key(&name));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &stored).unwrap();
        (name, bytes, chunks)
    }

    /// (the wanted indexes handed over with their bytes, the problem codes).
    fn read(
        b: &Backend,
        name: &str,
        size: u64,
        wanted: &[IndexedChunk],
    ) -> (Vec<(usize, Vec<u8>)>, Vec<&'static str>) {
        let mut got = Vec::new();
        let problems = stream_pack(b, name, size, wanted, |i, data| {
            got.push((i, data.to_vec()));
            Ok(())
        })
        .unwrap();
        (got, problems.iter().map(|p| p.code).collect())
    }

    #[test]
    fn a_sound_pack_hands_over_exactly_the_wanted_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let (name, bytes, chunks) = pack(dir.path(), None);
        let b = backend(dir.path());
        // The first and the last: the middle one is read past, not handed over.
        let wanted = [chunks[0].clone(), chunks[2].clone()];
        let (got, problems) = read(&b, &name, bytes.len() as u64, &wanted);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(got.len(), 2);
        assert_eq!(got[0], (0, bytes[..1000].to_vec()));
        assert_eq!(got[1], (1, bytes[1000 + 200 * 1024..].to_vec()));
    }

    #[test]
    fn a_flipped_byte_in_a_wanted_chunk_is_reported_and_that_chunk_withheld() {
        let dir = tempfile::tempdir().unwrap();
        let (name, bytes, chunks) = pack(dir.path(), Some(500));
        let b = backend(dir.path());
        let (got, problems) = read(&b, &name, bytes.len() as u64, &chunks);
        assert_eq!(got.iter().map(|g| g.0).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(problems, [BLOB_CHECKSUM_MISMATCH, BLOB_CHECKSUM_MISMATCH]);
    }

    #[test]
    fn a_flipped_byte_between_wanted_chunks_fails_the_pack_but_not_the_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let (name, bytes, chunks) = pack(dir.path(), Some(1000 + 100 * 1024));
        let b = backend(dir.path());
        let wanted = [chunks[0].clone(), chunks[2].clone()];
        let (got, problems) = read(&b, &name, bytes.len() as u64, &wanted);
        assert_eq!(got.len(), 2);
        assert_eq!(problems, [BLOB_CHECKSUM_MISMATCH]);
    }

    #[test]
    fn a_pack_shorter_or_longer_than_recorded_is_a_size_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        let (name, bytes, chunks) = pack(dir.path(), None);
        let b = backend(dir.path());
        let len = bytes.len() as u64;
        let (_, longer) = read(&b, &name, len - 1, &chunks[..2]);
        assert_eq!(longer, [BLOB_SIZE_MISMATCH]);
        let (got, shorter) = read(&b, &name, len + 10, &chunks);
        assert_eq!(shorter, [BLOB_SIZE_MISMATCH]);
        assert_eq!(got.len(), 3, "the chunks that were there still matched");
        // A chunk the pack ends before: size mismatch, nothing invented.
        let past = IndexedChunk {
            sha256: chunks[0].sha256,
            offset: len + 5,
            length: 10,
        };
        let (got, problems) = read(&b, &name, len + 15, &[past]);
        assert!(got.is_empty());
        assert_eq!(problems, [BLOB_SIZE_MISMATCH]);
        // A chunk said to run past the end of a pack of the right size:
        // still reported, never silently left out.
        let overlong = IndexedChunk {
            length: len + 100,
            ..chunks[0].clone()
        };
        let (got, problems) = read(&b, &name, len, &[overlong]);
        assert!(got.is_empty());
        assert_eq!(problems, [BLOB_SIZE_MISMATCH]);
    }

    #[test]
    fn a_pack_not_on_the_remote_is_blob_missing() {
        let dir = tempfile::tempdir().unwrap();
        let b = backend(dir.path());
        let (got, problems) = read(&b, &"ab".repeat(32), 10, &[]);
        assert!(got.is_empty());
        assert_eq!(problems, [BLOB_MISSING]);
    }
}
