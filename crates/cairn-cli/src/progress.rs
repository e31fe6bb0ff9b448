//! The progress bar on stderr (bytes, throughput, ETA), shown only when
//! stderr is a terminal and neither `--quiet` nor `--json` was given.
//! indicatif redraws at most 10 times a second, so the byte loops only pay
//! for an atomic add.

use std::io::IsTerminal;
use std::sync::Mutex;

use cairn_engine::progress::ProgressSink;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub fn install(quiet: bool, json: bool) {
    if quiet || json || !std::io::stderr().is_terminal() {
        return;
    }
    cairn_engine::progress::install(Box::new(Bar {
        bar: Mutex::new(None),
        counts_verification: std::sync::atomic::AtomicBool::new(true),
    }));
}

struct Bar {
    bar: Mutex<Option<ProgressBar>>,
    /// The phase counts its own verification hashing as progress (validate,
    /// repair); a snapshot does not: its bar counts the bytes of the
    /// snapshot, once each, against a total learnt from its walk.
    counts_verification: std::sync::atomic::AtomicBool,
}

impl ProgressSink for Bar {
    fn begin(&self, phase: &str, total: Option<u64>) {
        let target = ProgressDrawTarget::stderr_with_hz(10);
        let bar = match total {
            Some(total) => ProgressBar::with_draw_target(Some(total), target).with_style(
                ProgressStyle::with_template(
                    "{prefix:>9} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            ),
            None => ProgressBar::with_draw_target(None, target).with_style(
                ProgressStyle::with_template(
                    "{prefix:>9} {spinner} {bytes} {binary_bytes_per_sec} {elapsed}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            ),
        };
        bar.set_prefix(phase.to_owned());
        self.counts_verification
            .store(phase != "snapshot", std::sync::atomic::Ordering::Relaxed);
        if let Ok(mut slot) = self.bar.lock() {
            if let Some(old) = slot.replace(bar) {
                old.finish_and_clear();
            }
        }
    }

    fn advance(&self, bytes: u64) {
        if let Ok(slot) = self.bar.lock() {
            if let Some(bar) = slot.as_ref() {
                bar.inc(bytes);
                // A file that grew after the walk saw it: the total
                // follows, so the count never reads past it.
                if let Some(len) = bar.length() {
                    if bar.position() > len {
                        bar.set_length(bar.position());
                    }
                }
            }
        }
    }

    fn grow(&self, bytes: u64) {
        if let Ok(slot) = self.bar.lock() {
            if let Some(bar) = slot.as_ref() {
                bar.inc_length(bytes);
            }
        }
    }

    fn verified(&self, bytes: u64) {
        if self
            .counts_verification
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            self.advance(bytes);
        }
    }

    fn finish(&self) {
        if let Ok(mut slot) = self.bar.lock() {
            if let Some(bar) = slot.take() {
                bar.finish_and_clear();
            }
        }
    }
}
