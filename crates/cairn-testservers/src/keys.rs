//! Fresh credentials for each server, so no test can pass by accident with
//! a key some other test (or a default) used.

use std::io::Read;

/// `n` random bytes from the kernel.
fn random_bytes(n: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; n];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut buf)?;
    Ok(buf)
}

/// An access key id in AWS's shape (20 upper-case alphanumerics), with a
/// recognisable prefix so a leaked one in a log is easy to trace.
pub(crate) fn access_key_id() -> std::io::Result<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let tail: String = random_bytes(12)?
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(b % 32)]))
        .collect();
    Ok(format!("CAIRNTEST{}", &tail[..11]))
}

/// A secret access key in AWS's shape (40 characters).
pub(crate) fn secret_access_key() -> std::io::Result<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    Ok(random_bytes(40)?
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(b % 64)]))
        .collect())
}

#[cfg(test)]
mod tests {
    #[test]
    fn keys_have_aws_shapes_and_differ_each_time() {
        let a = super::access_key_id().unwrap();
        let b = super::access_key_id().unwrap();
        assert_eq!(a.len(), 20);
        assert!(a.starts_with("CAIRNTEST"));
        assert_ne!(a, b);
        let s = super::secret_access_key().unwrap();
        assert_eq!(s.len(), 40);
        assert_ne!(s, super::secret_access_key().unwrap());
    }
}
