//! Injected failures, so tests can drive the error paths that real disks
//! reach only on bad days (a full disk, an unwritable restore target) even
//! where the test cannot mount a tiny filesystem or is root (for whom
//! permissions never fail).
//!
//! Set `CAIRN_FAILPOINT` to a comma-separated list of:
//! - `write:SUBSTRING` — writing a file whose path contains SUBSTRING fails
//!   with ENOSPC ("No space left on device");
//! - `swap:STORE` — swapping STORE in during a restore fails with EIO.
//!
//! Unset (the normal case) every check is a load of a cached `None`.

use std::path::Path;
use std::sync::OnceLock;

use crate::error::{Error, Result};

pub const ENV: &str = "CAIRN_FAILPOINT";

fn points() -> &'static [(String, String)] {
    static POINTS: OnceLock<Vec<(String, String)>> = OnceLock::new();
    POINTS.get_or_init(|| {
        std::env::var(ENV)
            .unwrap_or_default()
            .split(',')
            .filter_map(|p| p.split_once(':'))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .filter(|(_, v)| !v.is_empty())
            .collect()
    })
}

fn armed(kind: &str, matches: impl Fn(&str) -> bool) -> bool {
    points().iter().any(|(k, v)| k == kind && matches(v))
}

pub fn check_write(path: &Path) -> Result<()> {
    if armed("write", |v| path.to_string_lossy().contains(v)) {
        return Err(Error::io(
            "write",
            path,
            std::io::Error::from_raw_os_error(libc::ENOSPC),
        ));
    }
    Ok(())
}

pub fn check_swap(store: &str, path: &Path) -> Result<()> {
    if armed("swap", |v| v == store) {
        return Err(Error::io(
            "swap in",
            path,
            std::io::Error::from_raw_os_error(libc::EIO),
        ));
    }
    Ok(())
}
