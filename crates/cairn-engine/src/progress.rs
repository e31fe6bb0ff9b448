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
    /// The phase's total grew by `bytes` (a snapshot's total is learnt as
    /// its walk queues files, ahead of their copies).
    fn grow(&self, _bytes: u64) {}
    /// `bytes` more were hashed to verify what was already counted (a
    /// snapshot validating its own copies); by default, progress like any.
    fn verified(&self, bytes: u64) {
        self.advance(bytes);
    }
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
        if VERIFYING.get() {
            s.verified(bytes);
        } else {
            s.advance(bytes);
        }
    }
}

/// The phase's total grew: call before advancing by those bytes (a
/// plug-in writing a copy itself, which learns its size as it starts).
pub fn grow(bytes: u64) {
    if let Some(s) = SINK.get() {
        s.grow(bytes);
    }
}

thread_local! {
    /// Set while this thread hashes to verify (see [`verifying`]).
    static VERIFYING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with the bytes it reports counted as verification, not as new
/// progress: a snapshot's own validation re-reads what its copy counted.
pub(crate) fn verifying<T>(f: impl FnOnce() -> T) -> T {
    let before = VERIFYING.replace(true);
    let out = f();
    VERIFYING.set(before);
    out
}

pub fn finish() {
    if let Some(s) = SINK.get() {
        s.finish();
    }
}

type Notice = Box<dyn Fn(&str) + Send + Sync>;

static NOTICE: OnceLock<Notice> = OnceLock::new();

/// Installs what prints a notice (a run waiting for a lock); only the
/// first call in a process takes effect. Without one, notices are dropped.
pub fn install_notice(notice: Notice) {
    let _ = NOTICE.set(notice);
}

/// Something the operator should know while it lasts (a wait), not a
/// result: a front end prints it as it comes.
pub(crate) fn notice(message: &str) {
    if let Some(n) = NOTICE.get() {
        n(message);
    }
}
