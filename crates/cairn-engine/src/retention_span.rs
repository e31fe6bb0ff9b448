//! `keep_within`: a span of time written the way restic users write it,
//! `14d`, `36h`, `1y6m`, `2w3d`: one or more `<number><unit>` with units
//! `h` (hours), `d` (days), `w` (weeks), `m` (calendar months) and `y`
//! (calendar years). Months and years are calendar ones, so `1m` before
//! March 31 is February 28 (or 29), as chrono counts them.

use chrono::{DateTime, Months, TimeDelta, Utc};
use serde::{Deserialize, Deserializer};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    pub hours: u32,
    pub days: u32,
    pub weeks: u32,
    pub months: u32,
    pub years: u32,
}

impl Span {
    /// Parses `text`; the error says what is wrong with it (the caller
    /// names the key).
    pub fn parse(text: &str) -> Result<Span, String> {
        let mut span = Span::default();
        let mut rest = text.trim();
        if rest.is_empty() {
            return Err("an empty span".into());
        }
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(format!("{rest:?} does not start with a number"));
            }
            let number: u32 = rest[..digits]
                .parse()
                .map_err(|_| format!("{:?} is too large", &rest[..digits]))?;
            let Some(unit) = rest[digits..].chars().next() else {
                return Err(format!("{number} has no unit (h, d, w, m or y)"));
            };
            let slot = match unit {
                'h' => &mut span.hours,
                'd' => &mut span.days,
                'w' => &mut span.weeks,
                'm' => &mut span.months,
                'y' => &mut span.years,
                other => return Err(format!("unknown unit {other:?} (use h, d, w, m or y)")),
            };
            *slot = slot
                .checked_add(number)
                .ok_or_else(|| "the span is too large".to_owned())?;
            rest = &rest[digits + unit.len_utf8()..];
        }
        // Far beyond any repository's history, and within chrono's range.
        if span.years > 1000 || span.months > 12_000 || span.weeks > 52_000 {
            return Err("the span is longer than 1000 years".into());
        }
        Ok(span)
    }

    /// `from` minus this span; `None` when that is before any time chrono
    /// represents (nothing is that old, so everything is within).
    pub fn before(&self, from: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let months = self.years.checked_mul(12)?.checked_add(self.months)?;
        let fixed = TimeDelta::try_hours(i64::from(self.hours))?
            .checked_add(&TimeDelta::try_days(i64::from(self.days))?)?
            .checked_add(&TimeDelta::try_weeks(i64::from(self.weeks))?)?;
        from.checked_sub_months(Months::new(months))?
            .checked_sub_signed(fixed)
    }
}

impl std::fmt::Display for Span {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts = [
            (self.years, 'y'),
            (self.months, 'm'),
            (self.weeks, 'w'),
            (self.days, 'd'),
            (self.hours, 'h'),
        ];
        let mut any = false;
        for (n, unit) in parts.into_iter().filter(|(n, _)| *n > 0) {
            write!(f, "{n}{unit}")?;
            any = true;
        }
        if !any {
            write!(f, "0h")?;
        }
        Ok(())
    }
}

/// `[retention] keep_within`: a span string, or absent.
pub(crate) fn deserialize_keep_within<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Span>, D::Error> {
    let text = String::deserialize(d)?;
    Span::parse(&text).map(Some).map_err(|why| {
        serde::de::Error::custom(format!(
            "keep_within = {text:?}: {why}; e.g. \"14d\", \"36h\", \"1y6m\""
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_parse_and_garbage_is_refused() {
        assert_eq!(
            Span::parse("14d").unwrap(),
            Span {
                days: 14,
                ..Span::default()
            }
        );
        assert_eq!(Span::parse("1y6m2w3d4h").unwrap().to_string(), "1y6m2w3d4h");
        for bad in [
            "",
            "d",
            "14",
            "14x",
            "-1d",
            "1.5d",
            "99999999999d",
            "2000y",
            "14 d",
        ] {
            assert!(Span::parse(bad).is_err(), "{bad:?}");
        }
        let now = DateTime::parse_from_rfc3339("2026-03-31T12:00:00Z")
            .unwrap()
            .to_utc();
        assert_eq!(
            Span::parse("1m").unwrap().before(now).unwrap().to_rfc3339(),
            "2026-02-28T12:00:00+00:00"
        );
        assert_eq!(
            Span::parse("1w1h")
                .unwrap()
                .before(now)
                .unwrap()
                .to_rfc3339(),
            "2026-03-24T11:00:00+00:00"
        );
    }
}
