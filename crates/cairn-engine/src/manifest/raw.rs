//! Names as the filesystem holds them: byte strings.
//!
//! A Linux file name is any bytes but `/` and NUL; a manifest is JSON,
//! whose strings are Unicode. [`RawPath`] holds the exact bytes; the
//! manifest writes each byte string as a readable string plus, only when
//! the bytes are not UTF-8, their exact form in base64 (`path` and
//! `path_b64`, see docs/manifest.md). The readable form of bytes that are
//! not UTF-8 keeps every valid run and writes each other byte as `\xHH`;
//! it is for people and tools, and must agree with the base64 form.

use std::borrow::Cow;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// A path (or a link target, or an attribute name) as exact bytes.
///
/// A boxed slice, not a `Vec`: a manifest of a million files holds three
/// per entry, and a name never grows once read, so the capacity word and
/// any spare capacity would be memory for nothing.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RawPath(Box<[u8]>);

impl RawPath {
    pub fn from_bytes(bytes: impl Into<Vec<u8>>) -> RawPath {
        RawPath(bytes.into().into_boxed_slice())
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn as_os_str(&self) -> &OsStr {
        OsStr::from_bytes(&self.0)
    }

    pub fn as_path(&self) -> &Path {
        Path::new(self.as_os_str())
    }

    /// The bytes as text, when they are UTF-8.
    pub fn to_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The readable form: the text itself when the bytes are UTF-8, else
    /// every valid run as is and each other byte as `\xHH`.
    pub fn shown(&self) -> Cow<'_, str> {
        shown(&self.0)
    }

    /// The exact bytes in base64 when they are not UTF-8 (what the
    /// manifest writes as `*_b64` beside the readable form), else `None`.
    pub fn b64(&self) -> Option<String> {
        to_fields(&self.0).1
    }

    /// `self/name`; `name` alone when `self` is empty (the store's root).
    pub fn join(&self, name: &OsStr) -> RawPath {
        if self.0.is_empty() {
            return RawPath::from_bytes(name.as_bytes());
        }
        let mut bytes = Vec::with_capacity(self.0.len() + 1 + name.len());
        bytes.extend_from_slice(&self.0);
        bytes.push(b'/');
        bytes.extend_from_slice(name.as_bytes());
        RawPath::from_bytes(bytes)
    }

    /// The directory part (`None` at the top level) and the last name.
    pub fn split_last(&self) -> (Option<&[u8]>, &OsStr) {
        match self.0.iter().rposition(|b| *b == b'/') {
            Some(i) => (Some(&self.0[..i]), OsStr::from_bytes(&self.0[i + 1..])),
            None => (None, self.as_os_str()),
        }
    }
}

impl std::fmt::Display for RawPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown())
    }
}

impl std::fmt::Debug for RawPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&*self.shown(), f)
    }
}

impl AsRef<Path> for RawPath {
    fn as_ref(&self) -> &Path {
        self.as_path()
    }
}

impl AsRef<OsStr> for RawPath {
    fn as_ref(&self) -> &OsStr {
        self.as_os_str()
    }
}

impl AsRef<[u8]> for RawPath {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl From<&str> for RawPath {
    fn from(s: &str) -> Self {
        RawPath::from_bytes(s.as_bytes())
    }
}

impl From<String> for RawPath {
    fn from(s: String) -> Self {
        RawPath::from_bytes(s)
    }
}

impl From<&Path> for RawPath {
    fn from(p: &Path) -> Self {
        RawPath::from_bytes(p.as_os_str().as_bytes())
    }
}

impl From<&OsStr> for RawPath {
    fn from(s: &OsStr) -> Self {
        RawPath::from_bytes(s.as_bytes())
    }
}

/// The readable form (messages, problem paths).
impl From<&RawPath> for String {
    fn from(p: &RawPath) -> Self {
        p.shown().into_owned()
    }
}

impl From<RawPath> for String {
    fn from(p: RawPath) -> Self {
        match String::from_utf8(p.0.into_vec()) {
            Ok(s) => s,
            Err(e) => shown(e.as_bytes()).into_owned(),
        }
    }
}

impl PartialEq<str> for RawPath {
    fn eq(&self, other: &str) -> bool {
        *self.0 == *other.as_bytes()
    }
}

impl PartialEq<&str> for RawPath {
    fn eq(&self, other: &&str) -> bool {
        *self.0 == *other.as_bytes()
    }
}

impl PartialEq<String> for RawPath {
    fn eq(&self, other: &String) -> bool {
        *self.0 == *other.as_bytes()
    }
}

pub(crate) fn shown(bytes: &[u8]) -> Cow<'_, str> {
    if let Ok(s) = std::str::from_utf8(bytes) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(bytes.len() + 8);
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    Cow::Owned(out)
}

/// How a byte string is written: the readable form, and the exact bytes
/// in base64 when they are not UTF-8.
pub(crate) fn to_fields(bytes: &[u8]) -> (Cow<'_, str>, Option<String>) {
    match std::str::from_utf8(bytes) {
        Ok(s) => (Cow::Borrowed(s), None),
        Err(_) => (shown(bytes), Some(b64::encode(bytes))),
    }
}

/// The bytes a readable form and an optional base64 form stand for. The
/// base64 form is there exactly when the bytes are not UTF-8, and the
/// readable form must then be theirs: one way to write each name, and no
/// readable form that says something else than what is restored.
pub(crate) fn from_fields(
    field: &str,
    readable: String,
    b64: Option<String>,
) -> Result<Vec<u8>, String> {
    let Some(encoded) = b64 else {
        return Ok(readable.into_bytes());
    };
    let bytes = b64::decode(&encoded).ok_or_else(|| format!("{field}_b64 is not base64"))?;
    if std::str::from_utf8(&bytes).is_ok() {
        return Err(format!(
            "{field}_b64 holds UTF-8 ({field} alone records such a name)"
        ));
    }
    if shown(&bytes) != readable {
        return Err(format!(
            "{field} {readable:?} is not the readable form of {field}_b64 ({:?})",
            shown(&bytes)
        ));
    }
    Ok(bytes)
}

/// Standard base64 (RFC 4648, `+/`, padded); decoding accepts only what
/// encoding produces.
pub(crate) mod b64 {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    pub(crate) fn encode(bytes: &[u8]) -> String {
        let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
        for chunk in bytes.chunks(3) {
            let b = [
                chunk[0],
                chunk.get(1).copied().unwrap_or(0),
                chunk.get(2).copied().unwrap_or(0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    fn value(c: u8) -> Option<u32> {
        ALPHABET.iter().position(|a| *a == c).map(|v| v as u32)
    }

    pub(crate) fn decode(text: &str) -> Option<Vec<u8>> {
        let text = text.as_bytes();
        if !text.len().is_multiple_of(4) {
            return None;
        }
        let mut out = Vec::with_capacity(text.len() / 4 * 3);
        let quads = text.len() / 4;
        for (q, quad) in text.chunks(4).enumerate() {
            let pad = quad.iter().rev().take_while(|c| **c == b'=').count();
            if pad > 2 || (pad > 0 && q + 1 != quads) {
                return None;
            }
            let mut n = 0u32;
            for (i, c) in quad.iter().enumerate() {
                let v = if i >= 4 - pad { 0 } else { value(*c)? };
                n |= v << (18 - 6 * i);
            }
            let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
            let keep = 3 - pad;
            // Bits past the last byte must be zero: one encoding per string.
            if bytes[keep..].iter().any(|b| *b != 0) {
                return None;
            }
            out.extend_from_slice(&bytes[..keep]);
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_and_refuses_anything_else() {
        for len in 0..40usize {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let text = b64::encode(&bytes);
            assert_eq!(b64::decode(&text).as_deref(), Some(&bytes[..]), "{text}");
        }
        assert_eq!(b64::encode(b"\xff\xfe"), "//4=");
        assert_eq!(b64::encode(b"Man"), "TWFu");
        for bad in [
            "A", "AB=C", "A===", "//5=", "TWFu=", "TW u", "====", "AB==AB==",
        ] {
            assert_eq!(b64::decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn names_that_are_not_utf8_have_one_readable_and_one_exact_form() {
        let bytes = b"caf\xe9/\xff\\n";
        let (readable, exact) = to_fields(bytes);
        assert_eq!(readable, "caf\\xe9/\\xff\\n");
        let exact = exact.unwrap();
        assert_eq!(
            from_fields("path", readable.into_owned(), Some(exact.clone())).unwrap(),
            bytes
        );
        // UTF-8 (a backslash and a newline included) is written as is.
        assert_eq!(to_fields(b"a\\b\nc"), (Cow::Borrowed("a\\b\nc"), None));
        // A readable form that disagrees, or base64 of UTF-8, is refused.
        assert!(from_fields("path", "seg/data.bin".into(), Some(exact)).is_err());
        assert!(from_fields("path", "ok".into(), Some(b64::encode(b"ok"))).is_err());
    }

    #[test]
    fn join_and_split() {
        let top = RawPath::default().join(OsStr::from_bytes(b"a\xff"));
        assert_eq!(top.split_last(), (None, OsStr::from_bytes(b"a\xff")));
        let deep = top.join(OsStr::new("b"));
        assert_eq!(deep.as_bytes(), b"a\xff/b");
        assert_eq!(deep.split_last(), (Some(&b"a\xff"[..]), OsStr::new("b")));
    }
}
