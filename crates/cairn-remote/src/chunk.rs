//! Cutting a file into chunks, the unit of deduplication.
//!
//! An SQLite database is cut at fixed offsets that are a multiple of its
//! page size: SQLite rewrites pages in place and never moves them, so a
//! commit that touches 1% of the pages changes only the chunks holding
//! them. With 4 KiB pages and 32 KiB chunks (8 pages), 1% of pages
//! rewritten at random dirties about 1 - 0.99^8 = 7.7% of the chunks; a
//! commit's pages are usually clustered (appends, one index), so fewer.
//!
//! Every other file is cut where a rolling hash of its content says
//! (content-defined chunking with a gear hash, FastCDC-style): an insert
//! near the start of a file moves its bytes but not the cut points after
//! it, so the rest still deduplicates. Cuts are at least `CDC_MIN` apart,
//! at most `CDC_MAX`, about `CDC_AVG` on average. A file no larger than
//! `CDC_MIN` is one chunk.
//!
//! The parameters are recorded in the remote's `config.json`: a remote
//! is only ever pushed to with the parameters it was created with, or the
//! same file would chunk differently and deduplicate against nothing.

use std::io::{self, Read};

use serde::{Deserialize, Serialize};

pub const SQLITE_CHUNK_BYTES: usize = 32 * 1024;
pub const CDC_MIN: usize = 256 * 1024;
pub const CDC_AVG_BITS: u32 = 20; // 1 MiB
pub const CDC_MAX: usize = 4 * 1024 * 1024;
const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChunkerParams {
    pub sqlite_chunk_bytes: usize,
    pub cdc: String,
    pub cdc_min_bytes: usize,
    pub cdc_avg_bits: u32,
    pub cdc_max_bytes: usize,
}

impl ChunkerParams {
    pub fn current() -> Self {
        ChunkerParams {
            sqlite_chunk_bytes: SQLITE_CHUNK_BYTES,
            cdc: "gear-splitmix64-v1".into(),
            cdc_min_bytes: CDC_MIN,
            cdc_avg_bits: CDC_AVG_BITS,
            cdc_max_bytes: CDC_MAX,
        }
    }
}

/// The gear table: 256 pseudo-random words from splitmix64, fixed
/// forever (named `gear-splitmix64-v1` in `config.json`).
const GEAR: [u64; 256] = {
    let mut table = [0u64; 256];
    let mut state: u64 = 0x6361_6972_6e00_0001; // "cairn", 1
    let mut i = 0;
    while i < 256 {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        table[i] = z ^ (z >> 31);
        i += 1;
    }
    table
};

/// Where the next cut falls in `data` (the bytes from the last cut on):
/// `data.len()` when no cut point is found before the end (the caller
/// then reads more, or it is the file's end).
fn cdc_cut(data: &[u8]) -> Option<usize> {
    if data.len() <= CDC_MIN {
        return None;
    }
    let mask: u64 = (1u64 << CDC_AVG_BITS) - 1;
    let mut hash: u64 = 0;
    let end = data.len().min(CDC_MAX);
    for (i, &b) in data.iter().enumerate().take(end).skip(CDC_MIN) {
        hash = (hash << 1).wrapping_add(GEAR[b as usize]);
        // The top bits of a gear hash are its best mixed.
        if (hash >> (64 - CDC_AVG_BITS)) & mask == mask {
            return Some(i + 1);
        }
    }
    (data.len() >= CDC_MAX).then_some(CDC_MAX)
}

/// The SQLite page size from a database's header, if `head` starts one.
fn sqlite_page_size(head: &[u8]) -> Option<usize> {
    if head.len() < 18 || &head[..16] != SQLITE_MAGIC {
        return None;
    }
    match u16::from_be_bytes([head[16], head[17]]) {
        1 => Some(65536),
        n if n >= 512 && n.is_power_of_two() => Some(n as usize),
        _ => None,
    }
}

const READ_STEP: usize = 256 * 1024;

fn fill(reader: &mut impl Read, buf: &mut Vec<u8>, want: usize) -> io::Result<bool> {
    while buf.len() < want {
        let start = buf.len();
        // A step at a time: zeroing the whole 4 MiB window for each of
        // 100,000 small files cost more than reading them.
        buf.resize(start + (want - start).min(READ_STEP), 0);
        let n = loop {
            match reader.read(&mut buf[start..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    buf.truncate(start);
                    return Err(e);
                }
            }
        };
        buf.truncate(start + n);
        if n == 0 {
            return Ok(false);
        }
    }
    Ok(true)
}

/// A chunk callback's error, or the reader's (which the caller names).
pub enum ChunkError {
    Read(io::Error),
    Other(cairn_engine::Error),
}

impl From<io::Error> for ChunkError {
    fn from(e: io::Error) -> Self {
        ChunkError::Read(e)
    }
}

impl From<cairn_engine::Error> for ChunkError {
    fn from(e: cairn_engine::Error) -> Self {
        ChunkError::Other(e)
    }
}

impl ChunkError {
    pub fn into_error(
        self,
        read: impl FnOnce(io::Error) -> cairn_engine::Error,
    ) -> cairn_engine::Error {
        match self {
            ChunkError::Read(e) => read(e),
            ChunkError::Other(e) => e,
        }
    }
}

/// Reads `reader` to its end and hands each chunk to `each`, in order.
/// Holds at most `2 × CDC_MAX` bytes.
pub fn for_each_chunk<E: From<io::Error>>(
    mut reader: impl Read,
    mut each: impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<(), E> {
    let mut buf: Vec<u8> = Vec::new();
    fill(&mut reader, &mut buf, 100)?;
    if let Some(page) = sqlite_page_size(&buf) {
        let size = page.max(SQLITE_CHUNK_BYTES);
        loop {
            let more = fill(&mut reader, &mut buf, size)?;
            let n = buf.len().min(size);
            if n > 0 {
                each(&buf[..n])?;
                buf.drain(..n);
            }
            if !more && buf.is_empty() {
                return Ok(());
            }
        }
    }
    loop {
        let more = fill(&mut reader, &mut buf, CDC_MAX)?;
        if buf.is_empty() {
            return Ok(());
        }
        let cut = match cdc_cut(&buf) {
            Some(cut) => cut,
            None if !more => buf.len(),
            // Fewer than CDC_MAX bytes and more to come cannot happen
            // (fill reads up to CDC_MAX or the end); take what is there.
            None => buf.len(),
        };
        each(&buf[..cut])?;
        buf.drain(..cut);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cuts(data: &[u8]) -> Vec<usize> {
        let mut out = Vec::new();
        for_each_chunk::<io::Error>(data, |c| {
            out.push(c.len());
            Ok(())
        })
        .expect("in memory");
        out
    }

    fn noise(n: usize, seed: u64) -> Vec<u8> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                s as u8
            })
            .collect()
    }

    #[test]
    fn chunks_cover_the_file_within_bounds() {
        let data = noise(20 << 20, 7);
        let sizes = cuts(&data);
        assert_eq!(sizes.iter().sum::<usize>(), data.len());
        assert!(sizes.len() > 5, "{sizes:?}");
        for s in &sizes[..sizes.len() - 1] {
            assert!((CDC_MIN..=CDC_MAX).contains(s), "{s}");
        }
        assert_eq!(cuts(b"small"), vec![5]);
        assert!(cuts(b"").is_empty());
    }

    #[test]
    fn an_insert_keeps_later_cuts() {
        let data = noise(12 << 20, 9);
        let mut edited = data.clone();
        edited.splice(1000..1000, b"inserted bytes".iter().copied());
        let hashes = |d: &[u8]| {
            let mut out = std::collections::HashSet::new();
            for_each_chunk::<io::Error>(d, |c| {
                out.insert(cairn_engine::checksum::Checksum::of(c));
                Ok(())
            })
            .expect("in memory");
            out
        };
        let (a, b) = (hashes(&data), hashes(&edited));
        // All but the chunk holding the insert are shared.
        assert!(
            a.intersection(&b).count() + 2 >= a.len(),
            "{} of {}",
            a.intersection(&b).count(),
            a.len()
        );
    }

    #[test]
    fn sqlite_files_cut_at_page_multiples() {
        let mut db = noise(1 << 20, 3);
        db[..16].copy_from_slice(SQLITE_MAGIC);
        db[16..18].copy_from_slice(&4096u16.to_be_bytes());
        let sizes = cuts(&db);
        assert!(sizes.iter().all(|&s| s == SQLITE_CHUNK_BYTES));
        assert_eq!(sizes.len(), 32);
    }
}
