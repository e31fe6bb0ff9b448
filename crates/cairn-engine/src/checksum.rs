//! A SHA-256 as the manifest records it.
//!
//! Held as its 32 bytes rather than as 64 hex characters: a manifest of a
//! large tree keeps one per file in memory, and the hex form costs three
//! times the space plus a heap allocation each. On disk and in messages it
//! is always 64 lowercase hex digits.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Checksum([u8; 32]);

impl Checksum {
    pub fn of(bytes: &[u8]) -> Self {
        Checksum(Sha256::digest(bytes).into())
    }

    pub fn from_hasher(hasher: Sha256) -> Self {
        Checksum(hasher.finalize().into())
    }

    pub fn to_hex(&self) -> String {
        crate::fsutil::hex(&self.0)
    }

    /// The 32 bytes of the digest, for fixed-size records.
    pub fn to_bytes(self) -> [u8; 32] {
        self.0
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Checksum(bytes)
    }
}

impl fmt::Display for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Checksum({self})")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a sha256 must be 64 lowercase hex digits, not {0:?}")]
pub struct BadChecksum(String);

impl FromStr for Checksum {
    type Err = BadChecksum;

    /// Only the canonical spelling: uppercase digits would hash the
    /// manifest differently while naming the same content.
    fn from_str(s: &str) -> Result<Self, BadChecksum> {
        let bad = || BadChecksum(s.chars().take(80).collect());
        if s.len() != 64 {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        for (byte, pair) in out.iter_mut().zip(s.as_bytes().chunks_exact(2)) {
            let digit = |c: u8| match c {
                b'0'..=b'9' => Some(c - b'0'),
                b'a'..=b'f' => Some(c - b'a' + 10),
                _ => None,
            };
            match (digit(pair[0]), digit(pair[1])) {
                (Some(hi), Some(lo)) => *byte = hi << 4 | lo,
                _ => return Err(bad()),
            }
        }
        Ok(Checksum(out))
    }
}

impl Serialize for Checksum {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Checksum {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct HexVisitor;
        impl serde::de::Visitor<'_> for HexVisitor {
            type Value = Checksum;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("64 lowercase hex digits")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Checksum, E> {
                s.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_str(HexVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_hex_and_json() {
        let c = Checksum::of(b"abc");
        let hex = c.to_string();
        assert_eq!(
            hex,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(hex.parse::<Checksum>().unwrap(), c);
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(json, format!("\"{hex}\""));
        assert_eq!(serde_json::from_str::<Checksum>(&json).unwrap(), c);
    }

    #[test]
    fn refuses_anything_but_64_lowercase_hex_digits() {
        let upper = "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD";
        for bad in ["", "ab", upper, &"g".repeat(64), &"a".repeat(65), "é"] {
            assert!(bad.parse::<Checksum>().is_err(), "{bad:?}");
            assert!(serde_json::from_value::<Checksum>(bad.into()).is_err());
        }
        assert!(serde_json::from_str::<Checksum>("12").is_err());
    }
}
