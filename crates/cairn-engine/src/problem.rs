//! Problems found in a snapshot. Unlike [`crate::Error`], a problem does not
//! stop the run: validation collects every one, each with a stable `code`
//! that scripts can match on.

use crate::checksum::Checksum;

/// Codes the engine itself reports. Plug-ins add their own
/// (`sqlite_integrity_failed`, `json_invalid`, …); every code is snake_case
/// and never changes meaning once released.
pub mod codes {
    pub const SNAPSHOT_MISSING: &str = "snapshot_missing";
    pub const MANIFEST_MISSING: &str = "manifest_missing";
    pub const MANIFEST_INVALID: &str = "manifest_invalid";
    pub const MANIFEST_DIGEST_MISMATCH: &str = "manifest_digest_mismatch";
    pub const MANIFEST_UNSUPPORTED_VERSION: &str = "manifest_unsupported_version";
    pub const FILE_MISSING: &str = "file_missing";
    pub const FILE_SIZE_MISMATCH: &str = "file_size_mismatch";
    pub const FILE_CHECKSUM_MISMATCH: &str = "file_checksum_mismatch";
    pub const FILE_UNEXPECTED: &str = "file_unexpected";
    pub const FILE_TYPE_MISMATCH: &str = "file_type_mismatch";
    pub const SYMLINK_TARGET_MISMATCH: &str = "symlink_target_mismatch";
    /// An entry recorded as a hard link (`link_of`) that is not the same
    /// inode as the entry it links.
    pub const HARD_LINK_MISMATCH: &str = "hard_link_mismatch";
    pub const READ_FAILED: &str = "read_failed";
    /// A restored entry (a drill's copy) whose mode, owner or extended
    /// attributes are not what the manifest records.
    pub const METADATA_MISMATCH: &str = "metadata_mismatch";
    pub const STORE_KIND_UNKNOWN: &str = "store_kind_unknown";

    /// The codes that say a snapshot's files or manifest are not what was
    /// written: the bytes themselves cannot be trusted. Every other code
    /// (a kind's own check, a kind that could not run its check) is about
    /// what the bytes hold, which were captured faithfully.
    pub const ABOUT_FILES: &[&str] = &[
        SNAPSHOT_MISSING,
        MANIFEST_MISSING,
        MANIFEST_INVALID,
        MANIFEST_DIGEST_MISMATCH,
        MANIFEST_UNSUPPORTED_VERSION,
        FILE_MISSING,
        FILE_SIZE_MISMATCH,
        FILE_CHECKSUM_MISMATCH,
        FILE_UNEXPECTED,
        FILE_TYPE_MISMATCH,
        SYMLINK_TARGET_MISMATCH,
        HARD_LINK_MISMATCH,
        READ_FAILED,
    ];
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub code: &'static str,
    pub store: Option<String>,
    pub path: Option<String>,
    pub detail: String,
}

impl Problem {
    pub fn new(code: &'static str, detail: impl Into<String>) -> Self {
        Problem {
            code,
            store: None,
            path: None,
            detail: detail.into(),
        }
    }

    /// A file whose bytes hash to `actual` instead of what the manifest says.
    pub fn checksum_mismatch(
        store: &str,
        path: impl Into<String>,
        recorded: Option<&Checksum>,
        actual: &Checksum,
    ) -> Self {
        Problem::new(
            codes::FILE_CHECKSUM_MISMATCH,
            format!(
                "manifest says sha256 {}, content hashes to {actual}",
                recorded.map(Checksum::to_hex).unwrap_or_default()
            ),
        )
        .in_store(store)
        .at(path)
    }

    /// True when the snapshot's files or manifest are not what was written
    /// ([`codes::ABOUT_FILES`]); false for a kind's own finding about bytes
    /// that match their manifest (`sqlite_integrity_failed`, `json_invalid`).
    pub fn is_about_files(&self) -> bool {
        codes::ABOUT_FILES.contains(&self.code)
    }

    pub fn in_store(mut self, store: &str) -> Self {
        self.store = Some(store.to_owned());
        self
    }

    pub fn at(mut self, path: impl Into<String>) -> Self {
        self.path = Some(path.into());
        self
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.code)?;
        if let Some(store) = &self.store {
            write!(f, " [{store}]")?;
        }
        if let Some(path) = &self.path {
            write!(f, " {path}")?;
        }
        write!(f, ": {}", self.detail)
    }
}
