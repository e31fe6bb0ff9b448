//! Progress reporting, decoupled from any terminal: the engine reports
//! bytes as they pass; a front end (the CLI's progress bar) may install a
//! sink once. Without a sink every call is one atomic load.
//!
//! A process-wide sink rather than a parameter threaded through every
//! stage: progress is advisory, never changes behaviour, and the byte loops
//! that report it sit many calls below the commands that start a phase.

use std::sync::OnceLock;

pub trait ProgressSink: Send + Sync {
    /// A new phase starts (`snapshot`, `validate`, `restore`); `total` in
    /// bytes when known up front.
    fn begin(&self, phase: &str, total: Option<u64>);
    /// `bytes` more were read, copied or hashed.
    fn advance(&self, bytes: u64);
    /// The phase ended.
    fn finish(&self);
}

static SINK: OnceLock<Box<dyn ProgressSink>> = OnceLock::new();

/// Installs the sink; only the first call in a process takes effect.
pub fn install(sink: Box<dyn ProgressSink>) {
    let _ = SINK.set(sink);
}

pub fn begin(phase: &str, total: Option<u64>) {
    if let Some(s) = SINK.get() {
        s.begin(phase, total);
    }
}

pub fn advance(bytes: u64) {
    if let Some(s) = SINK.get() {
        s.advance(bytes);
    }
}

pub fn finish() {
    if let Some(s) = SINK.get() {
        s.finish();
    }
}
