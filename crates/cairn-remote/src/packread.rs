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
    let mut short = false;
    for (i, want) in wanted.iter().enumerate() {
        cairn_engine::cancel::check()?;
        let gap = want.offset.saturating_sub(at);
        let skipped =
            pass_over(&mut reader, gap, &mut hasher).map_err(|e| fail(backend, &key, e))?;
        at += skipped;
        if skipped < gap {
            short = true;
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
            short = true;
            break;
        }
        if Checksum::of(&chunk) == want.sha256 {
            each(i, &chunk)?;
        } else {
            problems.push(
                Problem::new(
                    BLOB_CHECKSUM_MISMATCH,
                    format!(
                        "chunk {} at offset {} does not match its hash",
                        want.sha256, want.offset
                    ),
                )
                .at(&key),
            );
        }
    }
    // The rest, for the pack's own hash and size; one byte past the
    // recorded size is enough to know it is longer.
    if !short {
        at += pass_over(
            &mut reader,
            (size - at.min(size)).saturating_add(1),
            &mut hasher,
        )
        .map_err(|e| fail(backend, &key, e))?;
    }
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
