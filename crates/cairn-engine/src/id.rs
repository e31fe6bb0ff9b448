//! Snapshot ids: a UTC stamp `YYYYMMDDTHHMMSSZ`, with `-N` when that second
//! is already taken. Parsing is strict so that an id can be joined to a path
//! safely: nothing that parses can contain `/`, `..` or a NUL.

use std::cmp::Ordering;
use std::fmt;

use chrono::{DateTime, NaiveDateTime, SecondsFormat, TimeDelta, Utc};

use crate::error::{Error, Result};

const STAMP_FORMAT: &str = "%Y%m%dT%H%M%SZ";
const STAMP_LEN: usize = 16;

/// How far ahead of this machine's clock a time may be and still count as
/// now: clocks that agree through NTP differ by seconds, while a clock that
/// ran ahead or a typo in a requested time is off by hours or days.
pub const FUTURE_TOLERANCE: TimeDelta = TimeDelta::minutes(5);

/// How far `at` is ahead of `now`, when that is more than
/// [`FUTURE_TOLERANCE`], i.e. when `at` is in the future.
pub fn ahead_of(at: DateTime<Utc>, now: DateTime<Utc>) -> Option<TimeDelta> {
    let ahead = at.signed_duration_since(now);
    (ahead > FUTURE_TOLERANCE).then_some(ahead)
}

/// Refuses a requested snapshot time in the future unless `allow`: such a
/// snapshot is never the latest and takes no retention slot until the
/// clock catches up with it, so it is far more often a typo than meant.
pub fn check_at(at: Option<DateTime<Utc>>, now: DateTime<Utc>, allow: bool) -> Result<()> {
    match at.and_then(|at| Some((at, ahead_of(at, now)?))) {
        Some((at, ahead)) if !allow => Err(Error::FutureTime {
            at: at.to_rfc3339_opts(SecondsFormat::AutoSi, true),
            ahead: human_span(ahead),
            now: now.to_rfc3339_opts(SecondsFormat::Secs, true),
        }),
        _ => Ok(()),
    }
}

/// A duration for people: `45s`, `12m`, `5h`, `3d` (never below 2 of the
/// unit shown, so `90m` rather than `1h`); negative counts as 0.
pub fn human_span(d: TimeDelta) -> String {
    match d.num_seconds().max(0) {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SnapshotId {
    text: String,
    stamp: DateTime<Utc>,
    /// 0 for the first snapshot of a second, N for the `-N` suffix.
    seq: u32,
}

impl SnapshotId {
    pub fn parse(value: &str) -> Result<Self> {
        let bad = || Error::BadId {
            value: value.to_owned(),
        };
        if value.len() < STAMP_LEN || !value.is_ascii() {
            return Err(bad());
        }
        let (stamp_text, rest) = value.split_at(STAMP_LEN);
        let naive = NaiveDateTime::parse_from_str(stamp_text, STAMP_FORMAT).map_err(|_| bad())?;
        let seq = if rest.is_empty() {
            0
        } else {
            let digits = rest.strip_prefix('-').ok_or_else(bad)?;
            // One spelling per id: no leading zeros, no "-0".
            if digits.is_empty()
                || digits.starts_with('0')
                || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                return Err(bad());
            }
            digits.parse::<u32>().map_err(|_| bad())?
        };
        let id = SnapshotId {
            text: value.to_owned(),
            stamp: naive.and_utc(),
            seq,
        };
        // Reject stamps chrono accepts loosely (e.g. single-digit fields).
        if id.stamp.format(STAMP_FORMAT).to_string() != stamp_text {
            return Err(bad());
        }
        Ok(id)
    }

    /// The id for `at` (whole seconds), with sequence number `seq`.
    pub fn new(at: DateTime<Utc>, seq: u32) -> Self {
        let stamp_text = at.format(STAMP_FORMAT).to_string();
        let text = if seq == 0 {
            stamp_text
        } else {
            format!("{stamp_text}-{seq}")
        };
        // Round-trip through the parser so `stamp` is truncated to seconds.
        match SnapshotId::parse(&text) {
            Ok(id) => id,
            // Unreachable: we just formatted a valid stamp.
            Err(_) => SnapshotId {
                text,
                stamp: at,
                seq,
            },
        }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The second the id names (UTC).
    pub fn stamp(&self) -> DateTime<Utc> {
        self.stamp
    }

    pub fn seq(&self) -> u32 {
        self.seq
    }

    /// Dated in the future as seen from `now` (see [`ahead_of`]).
    pub fn is_future(&self, now: DateTime<Utc>) -> bool {
        ahead_of(self.stamp, now).is_some()
    }
}

impl fmt::Display for SnapshotId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Ord for SnapshotId {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.stamp, self.seq).cmp(&(other.stamp, other.seq))
    }
}

impl PartialOrd for SnapshotId {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_stamps_and_suffixes() {
        let id = SnapshotId::parse("20260406T180000Z").unwrap();
        assert_eq!(id.seq(), 0);
        assert_eq!(id.stamp().to_rfc3339(), "2026-04-06T18:00:00+00:00");
        let id2 = SnapshotId::parse("20260406T180000Z-2").unwrap();
        assert_eq!(id2.seq(), 2);
        assert!(id < id2);
        assert_eq!(
            SnapshotId::new(id.stamp(), 3).as_str(),
            "20260406T180000Z-3"
        );
    }

    #[test]
    fn the_future_starts_past_the_tolerance() {
        let now = SnapshotId::parse("20260406T180000Z").unwrap().stamp();
        assert_eq!(ahead_of(now + FUTURE_TOLERANCE, now), None);
        assert_eq!(ahead_of(now - TimeDelta::days(400), now), None);
        let later = now + FUTURE_TOLERANCE + TimeDelta::seconds(1);
        assert_eq!(ahead_of(later, now), Some(later - now));
        assert!(SnapshotId::new(later, 0).is_future(now));
        assert!(!SnapshotId::new(now, 0).is_future(now));

        assert!(check_at(None, now, false).is_ok());
        assert!(check_at(Some(now + FUTURE_TOLERANCE), now, false).is_ok());
        assert!(check_at(Some(later), now, true).is_ok());
        let refused = check_at(Some(now + TimeDelta::days(365)), now, false).unwrap_err();
        assert!(
            matches!(&refused, Error::FutureTime { at, ahead, .. }
                if at == "2027-04-06T18:00:00Z" && ahead == "365d"),
            "{refused:?}"
        );
    }

    #[test]
    fn refuses_anything_path_like() {
        for bad in [
            "",
            "..",
            "../20260406T180000Z",
            "20260406T180000Z/..",
            "/tmp",
            "20260406T180000Z-",
            "20260406T180000Z-0",
            "20260406T180000Z-01",
            "20260406T180000Z-x",
            "20260406T180000Z-1/x",
            "20261306T180000Z",
            "20260406T186000Z",
            "20260406t180000z",
            "not-a-timestamp",
            "20260406T180000Z-99999999999",
        ] {
            assert!(SnapshotId::parse(bad).is_err(), "{bad:?} parsed");
        }
    }
}
