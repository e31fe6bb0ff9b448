//! Stopping at a safe point on SIGINT, SIGTERM or SIGHUP.
//!
//! A front end calls [`install`] before a command that writes (snapshot,
//! restore, prune, drill). From then on the two signals no longer kill the
//! process: a handler (signal-hook's `flag::register_usize`, which does
//! nothing but store the signal's number in an atomic) records the first
//! one, and the work stops at the next safe point, where [`check`] returns
//! [`Error::Interrupted`]:
//!
//! - the byte loop (`fsutil::sparse_pump`, every copy and hash), once per buffer (and per 64 KiB of a hole hashed);
//! - an SQLite online copy (`cairn-sqlite-support`'s `pages`), once per
//!   1 MiB of pages, which a plug-in maps back to `Interrupted`; SQLite's
//!   checks of a copy (its progress handler), which then fail, and the
//!   next safe point (before publishing, after staging) stops the run;
//! - between stages (after the repository lock, after `before_snapshot`,
//!   before a snapshot is published, before a restore's swaps, between the
//!   snapshots prune deletes, after a drill's restore and checks).
//!
//! The error then unwinds like any other: a snapshot's build directory and
//! a restore's staging are removed, the repository lock is dropped, and
//! `after_snapshot` runs. What must not stop half-way runs [`shielded`]:
//! a restore's swaps and their rollback finish (or roll back) whatever
//! arrives meanwhile, because live data is never left half-swapped.
//!
//! Process-wide, like the signals themselves: one flag for every thread.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use crate::error::{Error, Result};

/// The number of the first signal received; 0 while none has been.
fn received() -> &'static Arc<AtomicUsize> {
    static RECEIVED: OnceLock<Arc<AtomicUsize>> = OnceLock::new();
    RECEIVED.get_or_init(|| Arc::new(AtomicUsize::new(0)))
}

/// How many shielded sections are running; [`check`] passes while any is.
static SHIELDS: AtomicUsize = AtomicUsize::new(0);

/// Turns SIGINT, SIGTERM and SIGHUP (an operator's SSH session that
/// drops mid-restore) into a request to stop at the next safe point.
/// Idempotent in effect: a second call registers handlers that store the
/// same number in the same flag.
pub fn install() -> Result<()> {
    for signal in [
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ] {
        // The handler only stores `signal` (a c_int, always positive).
        let value = usize::try_from(signal).unwrap_or(0);
        signal_hook::flag::register_usize(signal, Arc::clone(received()), value).map_err(|e| {
            Error::io(
                "install the handler of signal",
                format!("signal {signal}"),
                e,
            )
        })?;
    }
    Ok(())
}

/// The signal that asked the run to stop, if one has.
pub fn requested() -> Option<i32> {
    match received().load(Ordering::SeqCst) {
        0 => None,
        n => i32::try_from(n).ok(),
    }
}

/// A safe point: `Err(Interrupted)` once a signal asked to stop, unless a
/// shielded section is running.
pub fn check() -> Result<()> {
    if SHIELDS.load(Ordering::SeqCst) > 0 {
        return Ok(());
    }
    match requested() {
        Some(signal) => Err(Error::Interrupted { signal }),
        None => Ok(()),
    }
}

/// Runs `f` with every safe point passing: what it does completes (or
/// rolls back) even when a signal arrives meanwhile. The signal is kept;
/// the next [`check`] outside reports it.
pub(crate) fn shielded<R>(f: impl FnOnce() -> R) -> R {
    struct Shield;
    impl Drop for Shield {
        fn drop(&mut self) {
            SHIELDS.fetch_sub(1, Ordering::SeqCst);
        }
    }
    SHIELDS.fetch_add(1, Ordering::SeqCst);
    let _shield = Shield;
    f()
}

/// The conventional name of the signals Cairn stops on.
pub fn signal_name(signal: i32) -> String {
    match signal {
        signal_hook::consts::SIGINT => "SIGINT".into(),
        signal_hook::consts::SIGTERM => "SIGTERM".into(),
        signal_hook::consts::SIGHUP => "SIGHUP".into(),
        n => format!("signal {n}"),
    }
}
