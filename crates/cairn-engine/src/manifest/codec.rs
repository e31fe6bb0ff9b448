//! `manifest.json` on disk: writing it, reading it, and the digest.
//!
//! Cairn writes `{"digest":"<hex>",` followed by the rest of the canonical
//! form and a newline. Both directions stream: the digest is computed by
//! serializing into the hasher, the file by serializing again into a
//! buffered writer, and a file in that layout is read by deserializing
//! straight from disk while hashing what passes. Memory is the manifest's
//! typed entries, never its text too (at 100,000 files the text alone is
//! ~25 MiB, and a whole-file buffer plus a copy of it was most of the peak).
//!
//! Any other valid layout (reformatted with `jq`, keys reordered) is still
//! accepted: it is read whole, parsed into a JSON tree and canonicalized
//! before hashing. That path costs memory, but only for hand-edited files.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::Path;

use serde::de::DeserializeOwned;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{Manifest, FILE_NAME, FORMAT_VERSION, OLDEST_FORMAT_VERSION};
use crate::checksum::Checksum;
use crate::fsutil;
use crate::problem::{codes, Problem};

/// Far above any real manifest (a million entries is ~250 MB); a guard
/// against reading an arbitrarily large hostile file into memory.
const MAX_MANIFEST_BYTES: u64 = 512 * 1024 * 1024;
/// Any other layout goes through a JSON tree: a 16 MiB file (~60,000
/// entries) costs a few hundred MiB at most.
const MAX_ANY_LAYOUT_BYTES: u64 = 16 * 1024 * 1024;
/// How a manifest written by Cairn starts; the digest follows.
const DIGEST_PREFIX: &[u8] = b"{\"digest\":\"";
/// `{"digest":"<64 hex>",`: everything before the canonical form's body.
const HEADER_LEN: usize = DIGEST_PREFIX.len() + 64 + 2;
const IO_BUFFER: usize = 256 * 1024;

impl Manifest {
    /// SHA-256 of the canonical form. Serializing the typed struct gives
    /// the canonical form directly (fields declared in key order, maps
    /// sorted; a test checks it against [`digest_of`]), so it is hashed as
    /// it is produced, without a buffer.
    pub fn digest(&self) -> Checksum {
        let mut hasher = HashingWriter(Sha256::new());
        // Serializing plain values into a writer that cannot fail cannot fail.
        let _ = serde_json::to_writer(&mut hasher, self);
        Checksum::from_hasher(hasher.0)
    }

    /// Writes the manifest in Cairn's layout: `{"digest":"<hex>",`, the
    /// canonical form without its opening brace, a newline. Returns the
    /// digest written.
    pub fn write_into(&self, out: &mut impl Write) -> io::Result<Checksum> {
        let digest = self.digest();
        out.write_all(DIGEST_PREFIX)?;
        out.write_all(digest.to_hex().as_bytes())?;
        out.write_all(b"\",")?;
        let mut body = SkipFirstByte {
            inner: &mut *out,
            skipped: false,
        };
        serde_json::to_writer(&mut body, self).map_err(io::Error::other)?;
        out.write_all(b"\n")?;
        Ok(digest)
    }

    /// The manifest as [`Manifest::write_to`] writes it (tests, tools).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        // Writing into a Vec cannot fail.
        let _ = self.write_into(&mut out);
        out
    }

    /// Writes `manifest.json` into `dir` and syncs it; returns its digest.
    pub fn write_to(&self, dir: &Path) -> crate::Result<Checksum> {
        let path = dir.join(FILE_NAME);
        let file = File::create(&path).map_err(crate::error::io_at("create", &path))?;
        let mut out = BufWriter::with_capacity(IO_BUFFER, file);
        let digest = self
            .write_into(&mut out)
            .map_err(crate::error::io_at("write", &path))?;
        let file = out
            .into_inner()
            .map_err(|e| crate::Error::io("write", &path, e.into_error()))?;
        file.sync_all()
            .map_err(crate::error::io_at("sync", &path))?;
        drop(file);
        fsutil::make_read_only(&path)?;
        Ok(digest)
    }

    /// Reads and checks `dir/manifest.json` for the snapshot `expected_id`.
    pub fn read_from(dir: &Path, expected_id: &str) -> Result<Manifest, Problem> {
        let path = dir.join(FILE_NAME);
        let read_failed = |e: io::Error| {
            Problem::new(codes::READ_FAILED, format!("cannot read: {e}")).at(FILE_NAME)
        };
        let (file, meta) = open_checked(&path)?;
        if let Some(manifest) =
            read_as_written(BufReader::with_capacity(IO_BUFFER, file), expected_id)
        {
            return Ok(manifest);
        }
        // Not in Cairn's layout, or damaged: the full path says which. It
        // parses a JSON tree (about 20 times the text in memory), so a
        // hand-edited or hostile file over a modest size is refused
        // instead of taking gigabytes.
        if meta.len() > MAX_ANY_LAYOUT_BYTES {
            // A large manifest that starts as Cairn writes one is one of
            // its own that no longer matches its digest (a flipped bit on
            // the backup disk), not a file in another layout.
            let problem = if Manifest::starts_as_written(dir) {
                Problem::new(
                    codes::MANIFEST_DIGEST_MISMATCH,
                    format!(
                        "manifest.json ({} bytes) is in Cairn's layout but does not match its digest: damaged or edited",
                        meta.len()
                    ),
                )
            } else {
                Problem::new(
                    codes::MANIFEST_INVALID,
                    format!(
                        "manifest.json is not in Cairn's own layout and is {} bytes, over the {MAX_ANY_LAYOUT_BYTES}-byte limit for other layouts",
                        meta.len()
                    ),
                )
            };
            return Err(problem.at(FILE_NAME));
        }
        let mut bytes = Vec::new();
        fsutil::open_nofollow(&path)
            .and_then(|f| f.take(MAX_MANIFEST_BYTES).read_to_end(&mut bytes))
            .map_err(read_failed)?;
        parse_any_layout(&bytes, expected_id).map_err(|p| p.at(FILE_NAME))
    }

    /// `dir/manifest.json` deserialized as `T` while every byte is hashed,
    /// when it is exactly as Cairn writes it and matches its digest; a
    /// reader that keeps less than a whole [`Manifest`] (the next
    /// snapshot's parent index). `None` for anything else:
    /// [`Manifest::read_from`] then says what is wrong.
    pub(crate) fn read_streamed<T: DeserializeOwned>(dir: &Path) -> Option<T> {
        let (file, _) = open_checked(&dir.join(FILE_NAME)).ok()?;
        stream_as_written(BufReader::with_capacity(IO_BUFFER, file))
    }

    /// Whether `dir/manifest.json` starts as Cairn writes one: when it
    /// still fails to read, it is one of Cairn's own that no longer
    /// matches its digest (or names another snapshot or version), never a
    /// file in another layout that the whole-file path could take.
    pub(crate) fn starts_as_written(dir: &Path) -> bool {
        let mut head = [0u8; DIGEST_PREFIX.len()];
        fsutil::open_nofollow(&dir.join(FILE_NAME))
            .and_then(|mut f| f.read_exact(&mut head))
            .is_ok_and(|()| head == *DIGEST_PREFIX)
    }

    /// The digest of `dir/manifest.json` if its bytes are exactly what
    /// [`Manifest::write_into`] writes for that digest: the header's digest
    /// is the SHA-256 of the canonical form that follows it. How a new
    /// snapshot checks its own manifest once published without parsing
    /// every entry again: bytes that hash to the digest of what was
    /// serialized are what was serialized.
    pub fn digest_as_written(dir: &Path) -> Result<Checksum, Problem> {
        let path = dir.join(FILE_NAME);
        let file = fsutil::open_nofollow(&path).map_err(|e| {
            Problem::new(codes::READ_FAILED, format!("cannot read: {e}")).at(FILE_NAME)
        })?;
        let mut input = BufReader::with_capacity(IO_BUFFER, file);
        let mut header = [0u8; HEADER_LEN];
        let recorded = input
            .read_exact(&mut header)
            .ok()
            .and_then(|()| header.strip_prefix(DIGEST_PREFIX)?.strip_suffix(b"\","))
            .and_then(|hex| std::str::from_utf8(hex).ok()?.parse::<Checksum>().ok());
        let mut digest = FileDigest::default();
        let mut hashing = HashingReader::new(io::Cursor::new(b"{").chain(input), &mut digest);
        let hashed = io::copy(&mut hashing, &mut io::sink()).map(|_| digest.finish());
        match (recorded, hashed) {
            (Some(recorded), Ok(hashed)) if recorded == hashed => Ok(recorded),
            (_, Err(e)) => {
                Err(Problem::new(codes::READ_FAILED, format!("cannot read: {e}")).at(FILE_NAME))
            }
            _ => Err(Problem::new(
                codes::MANIFEST_DIGEST_MISMATCH,
                "manifest.json is not in Cairn's layout or does not match its digest",
            )
            .at(FILE_NAME)),
        }
    }

    /// Parses manifest bytes; every failure is a coded [`Problem`].
    pub fn parse(bytes: &[u8], expected_id: &str) -> Result<Manifest, Problem> {
        if let Some(manifest) = read_as_written(bytes, expected_id) {
            return Ok(manifest);
        }
        parse_any_layout(bytes, expected_id)
    }
}

/// `path` opened for reading, when it is a regular file (never through
/// a symlink) within the size limit.
fn open_checked(path: &Path) -> Result<(File, std::fs::Metadata), Problem> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(
                Problem::new(codes::MANIFEST_MISSING, "manifest.json is missing").at(FILE_NAME),
            )
        }
        Err(e) => {
            return Err(Problem::new(codes::READ_FAILED, format!("cannot stat: {e}")).at(FILE_NAME))
        }
    };
    if !meta.is_file() {
        return Err(Problem::new(
            codes::MANIFEST_INVALID,
            "manifest.json is not a regular file",
        )
        .at(FILE_NAME));
    }
    if meta.len() > MAX_MANIFEST_BYTES {
        return Err(Problem::new(
            codes::MANIFEST_INVALID,
            format!(
                "manifest.json is {} bytes, over the {MAX_MANIFEST_BYTES}-byte limit",
                meta.len()
            ),
        )
        .at(FILE_NAME));
    }
    let file = fsutil::open_nofollow(path)
        .map_err(|e| Problem::new(codes::READ_FAILED, format!("cannot read: {e}")).at(FILE_NAME))?;
    Ok((file, meta))
}

/// The fast path for a manifest exactly as [`Manifest::write_into`] writes
/// it: deserialized straight from `input` while the bytes are hashed, the
/// digest compared at the end, then its version and shape checked. `None`
/// for anything else (reformatted, damaged, another version):
/// [`parse_any_layout`] then decides, and names the problem.
fn read_as_written(input: impl Read, expected_id: &str) -> Option<Manifest> {
    let manifest: Manifest = stream_as_written(input)?;
    if !(OLDEST_FORMAT_VERSION..=FORMAT_VERSION).contains(&manifest.format_version) {
        return None;
    }
    manifest.check_shape(expected_id).ok()?;
    Some(manifest)
}

/// `input` deserialized as `T` if it is in Cairn's layout and its bytes
/// hash to the digest its header records.
fn stream_as_written<T: DeserializeOwned>(mut input: impl Read) -> Option<T> {
    let mut header = [0u8; HEADER_LEN];
    input.read_exact(&mut header).ok()?;
    let hex = header.strip_prefix(DIGEST_PREFIX)?.strip_suffix(b"\",")?;
    let recorded: Checksum = std::str::from_utf8(hex).ok()?.parse().ok()?;
    // What follows the header is the canonical form minus its `{`: put the
    // brace back, and serde sees exactly the bytes the digest covers.
    let body = io::Cursor::new(b"{").chain(input);
    let mut digest = FileDigest::default();
    // The buffered reader is serde's own, not borrowed: std reads a byte
    // of a `BufReader` from its buffer, where through a `&mut` each byte
    // was a call to `read` (an eighth of a large manifest's parse).
    let hashing = BufReader::with_capacity(IO_BUFFER, HashingReader::new(body, &mut digest));
    // Succeeds only having read to the end (trailing data is an error),
    // so the digest covers the whole file.
    let read: T = serde_json::from_reader(hashing).ok()?;
    if digest.finish() != recorded {
        return None;
    }
    Some(read)
}

/// Any valid JSON layout: canonicalized through a JSON tree.
pub(super) fn parse_any_layout(bytes: &[u8], expected_id: &str) -> Result<Manifest, Problem> {
    let invalid = |detail: String| Problem::new(codes::MANIFEST_INVALID, detail);
    let mut value: Value =
        serde_json::from_slice(bytes).map_err(|e| invalid(format!("not JSON: {e}")))?;
    let map = value
        .as_object_mut()
        .ok_or_else(|| invalid("not a JSON object".into()))?;

    match map.get("format_version").map(Value::as_u64) {
        Some(Some(v)) if (OLDEST_FORMAT_VERSION..=FORMAT_VERSION).contains(&v) => {}
        Some(Some(v)) if v > FORMAT_VERSION => {
            return Err(Problem::new(
                codes::MANIFEST_UNSUPPORTED_VERSION,
                format!(
                    "format_version {v} is newer than this cairn reads ({FORMAT_VERSION}); upgrade cairn"
                ),
            ))
        }
        _ => return Err(invalid("format_version missing or not a supported version".into())),
    }

    let recorded = match map.remove("digest") {
        Some(Value::String(s)) => s,
        _ => return Err(invalid("digest missing or not a string".into())),
    };
    let actual = digest_of(&value);
    if recorded != actual {
        return Err(Problem::new(
            codes::MANIFEST_DIGEST_MISMATCH,
            format!("recorded digest {recorded} but content hashes to {actual}: the manifest was edited or damaged"),
        ));
    }

    let manifest: Manifest =
        serde_json::from_value(value).map_err(|e| invalid(format!("bad field: {e}")))?;
    manifest.check_shape(expected_id).map_err(invalid)?;
    Ok(manifest)
}

/// SHA-256 (lowercase hex) of the canonical form of `value`.
pub fn digest_of(value: &Value) -> String {
    let mut canonical = Vec::with_capacity(4096);
    write_canonical(value, &mut canonical);
    fsutil::hex(&Sha256::digest(&canonical))
}

/// Keys sorted, no whitespace; scalars exactly as serde_json writes them.
fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            out.push(b'{');
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_scalar(&Value::String(key.clone()), out);
                out.push(b':');
                write_canonical(&map[key], out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        scalar => write_scalar(scalar, out),
    }
}

fn write_scalar(value: &Value, out: &mut Vec<u8>) {
    // Writing a scalar Value into a Vec cannot fail.
    let _ = serde_json::to_writer(out, value);
}

struct HashingWriter(Sha256);

impl Write for HashingWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Drops the first byte written (the canonical form's `{`, already
/// written as part of the digest header).
struct SkipFirstByte<W> {
    inner: W,
    skipped: bool,
}

impl<W: Write> Write for SkipFirstByte<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match buf.split_first() {
            Some((_, rest)) if !self.skipped => {
                self.skipped = true;
                self.inner.write_all(rest)?;
                Ok(buf.len())
            }
            _ => self.inner.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The SHA-256 of a file's bytes except a final newline (the file ends
/// with one; the canonical form does not). The last byte seen is held back
/// until more bytes show it was not the last.
#[derive(Default)]
struct FileDigest {
    hasher: Sha256,
    held: Option<u8>,
}

impl FileDigest {
    fn update(&mut self, bytes: &[u8]) {
        if let Some((last, body)) = bytes.split_last() {
            if let Some(held) = self.held.replace(*last) {
                self.hasher.update([held]);
            }
            self.hasher.update(body);
        }
    }

    fn finish(mut self) -> Checksum {
        if let Some(last) = self.held.take().filter(|b| *b != b'\n') {
            self.hasher.update([last]);
        }
        Checksum::from_hasher(self.hasher)
    }
}

/// Feeds what is read through it to a [`FileDigest`] the caller keeps.
struct HashingReader<'d, R> {
    inner: R,
    digest: &'d mut FileDigest,
}

impl<'d, R: Read> HashingReader<'d, R> {
    fn new(inner: R, digest: &'d mut FileDigest) -> Self {
        HashingReader { inner, digest }
    }
}

impl<R: Read> Read for HashingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.digest.update(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::sample;
    use super::super::SourceStat;
    use super::*;

    #[test]
    fn the_struct_serializes_to_the_canonical_form() {
        let mut m = sample();
        // Metadata inserted out of order, nested objects too.
        let meta = &mut m.stores[0].metadata;
        meta.insert(
            "zeta".into(),
            serde_json::json!({"b": 1, "a": [2, {"d": 3, "c": 4}]}),
        );
        meta.insert("alpha".into(), "x\"y\u{e9}".into());
        m.stores[0].entries[1].source_stat = Some(SourceStat {
            ctime_ns: 5,
            dev: 6,
            ino: 7,
        });
        m.restore_of = Some("20260405T180000Z".into());
        let direct = serde_json::to_vec(&m).unwrap();
        let mut via_tree = Vec::new();
        write_canonical(&serde_json::to_value(&m).unwrap(), &mut via_tree);
        assert_eq!(
            String::from_utf8(direct).unwrap(),
            String::from_utf8(via_tree).unwrap()
        );
        assert_eq!(
            m.digest().to_hex(),
            digest_of(&serde_json::to_value(&m).unwrap())
        );
        // And the written file verifies through both read paths.
        let bytes = m.to_bytes();
        assert_eq!(read_as_written(&bytes[..], &m.id).unwrap(), m);
        assert_eq!(parse_any_layout(&bytes, &m.id).unwrap(), m);
        let pretty =
            serde_json::to_vec_pretty(&serde_json::from_slice::<Value>(&bytes).unwrap()).unwrap();
        assert!(read_as_written(&pretty[..], &m.id).is_none());
        assert_eq!(Manifest::parse(&pretty, &m.id).unwrap(), m);
    }

    #[test]
    fn version_3_fields_serialize_in_canonical_order() {
        let m = super::super::tests::every_case();
        let direct = serde_json::to_vec(&m).unwrap();
        let mut via_tree = Vec::new();
        write_canonical(&serde_json::to_value(&m).unwrap(), &mut via_tree);
        assert_eq!(
            String::from_utf8(direct).unwrap(),
            String::from_utf8(via_tree).unwrap()
        );
        assert_eq!(read_as_written(&m.to_bytes()[..], &m.id).unwrap(), m);
    }

    #[test]
    fn the_streamed_reader_hashes_every_byte_but_the_final_newline() {
        let m = sample();
        let bytes = m.to_bytes();
        assert_eq!(bytes.last(), Some(&b'\n'));
        // Without the newline the file still verifies; with anything else
        // after it, or one byte changed anywhere, the fast path declines.
        assert_eq!(
            read_as_written(&bytes[..bytes.len() - 1], &m.id).unwrap(),
            m
        );
        let mut extra = bytes.clone();
        extra.extend_from_slice(b" ");
        assert!(read_as_written(&extra[..], &m.id).is_none());
        for i in (HEADER_LEN..bytes.len() - 1).step_by(7) {
            let mut edited = bytes.clone();
            edited[i] ^= 0x01;
            assert!(read_as_written(&edited[..], &m.id).is_none(), "byte {i}");
        }
        // One byte at a time through the reader changes nothing.
        struct Trickle<'a>(&'a [u8]);
        impl Read for Trickle<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let Some((first, rest)) = self.0.split_first() else {
                    return Ok(0);
                };
                if buf.is_empty() {
                    return Ok(0);
                }
                buf[0] = *first;
                self.0 = rest;
                Ok(1)
            }
        }
        assert_eq!(read_as_written(Trickle(&bytes), &m.id).unwrap(), m);
    }

    #[test]
    fn write_to_and_read_from_round_trip_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let m = sample();
        m.write_to(dir.path()).unwrap();
        let on_disk = std::fs::read(dir.path().join(FILE_NAME)).unwrap();
        assert_eq!(on_disk, m.to_bytes());
        assert_eq!(Manifest::read_from(dir.path(), &m.id).unwrap(), m);
    }

    /// The publish-time check of a new snapshot's own manifest: the digest
    /// `write_to` returned comes back from the bytes on disk, and any
    /// change to them (a flipped byte anywhere, a cut, another layout of
    /// the same JSON) is a digest mismatch, never that digest.
    #[test]
    fn the_digest_as_written_is_the_one_written_and_nothing_else_gives_it() {
        let dir = tempfile::tempdir().unwrap();
        let m = super::super::tests::every_case();
        let digest = m.write_to(dir.path()).unwrap();
        assert_eq!(digest, m.digest());
        assert_eq!(Manifest::digest_as_written(dir.path()).unwrap(), digest);

        let path = dir.path().join(FILE_NAME);
        let bytes = std::fs::read(&path).unwrap();
        let pretty =
            serde_json::to_vec_pretty(&serde_json::from_slice::<Value>(&bytes).unwrap()).unwrap();
        let mut variants = vec![bytes[..bytes.len() / 2].to_vec(), pretty, Vec::new()];
        for i in (0..bytes.len() - 1).step_by(5) {
            let mut edited = bytes.clone();
            edited[i] ^= 0x01;
            variants.push(edited);
        }
        for (i, variant) in variants.iter().enumerate() {
            std::fs::remove_file(&path).unwrap();
            std::fs::write(&path, variant).unwrap();
            let problem = Manifest::digest_as_written(dir.path()).unwrap_err();
            assert_eq!(problem.code, codes::MANIFEST_DIGEST_MISMATCH, "variant {i}");
        }
    }
}
