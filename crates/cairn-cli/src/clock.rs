//! The clock check. A newest snapshot dated ahead of this machine's clock
//! means the clock is wrong now, or was when that snapshot was taken, or
//! an `--at` had a typo: the operator should hear of it from whatever
//! command runs next, not only if they happen to read `list`.

use std::io::Write;

use cairn_engine::id::{ahead_of, human_span};
use cairn_engine::{Config, Repository};
use chrono::{DateTime, SecondsFormat, Utc};

/// The warning line when the newest snapshot is in the future of `now`.
pub fn warning(cfg: &Config, now: DateTime<Utc>) -> Option<String> {
    // A repository that cannot be listed is for the command itself to
    // report, with the path; this check only adds to a working one.
    let ids = Repository::new(&cfg.repository).list().ok()?.ids;
    let newest = ids.last()?;
    let ahead = ahead_of(newest.stamp(), now)?;
    let others = ids.iter().filter(|id| id.is_future(now)).count() - 1;
    let others = match others {
        0 => String::new(),
        1 => ", as is 1 other snapshot".to_owned(),
        n => format!(", as are {n} other snapshots"),
    };
    Some(format!(
        "warning: snapshot {newest} is dated {} in the future of this machine's clock ({}){others}; check the clock: --latest skips future-dated snapshots and prune keeps them (reason future) without a retention slot",
        human_span(ahead),
        now.to_rfc3339_opts(SecondsFormat::Secs, true),
    ))
}

/// Prints [`warning`] on stderr, so stdout stays one JSON document with
/// `--json`; not with `--quiet`, which prints nothing but errors.
pub fn warn(cfg: &Config, quiet: bool) {
    if quiet {
        return;
    }
    if let Some(line) = warning(cfg, Utc::now()) {
        let _ = writeln!(std::io::stderr(), "{line}");
    }
}
