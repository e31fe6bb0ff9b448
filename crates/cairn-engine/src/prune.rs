//! Retention: plan which snapshots to keep and why, then (when confirmed)
//! execute the plan. The dry run and the real run share [`plan`]; only
//! [`execute`] differs.
//!
//! The rule, in UTC from each snapshot's time (its id's stamp, which is its
//! `created_at` to the second):
//! - daily: the newest snapshot of each of the `keep_daily` newest days
//!   that have one;
//! - weekly: the newest snapshot of each of the `keep_weekly` newest Sundays
//!   that have a snapshot and none kept yet;
//! - monthly: likewise for the `keep_monthly` newest 1sts of a month;
//! - with fallbacks so that a missed Sunday or 1st leaves no hole, and
//!   `keep_last`, `keep_within`, `keep_tag` as restic has them (see
//!   [`decide`] for the exact rule);
//! - pinned: always kept.
//!
//! Everything else with a parseable id is deleted. A name under
//! `snapshots/` that is not an id is never touched.
//!
//! A snapshot whose manifest cannot be read (missing, edited, unreadable)
//! takes no slot — otherwise a run of damaged recent snapshots would push
//! good older ones out — and is kept with reason `damaged`, for the
//! operator to look at (`cairn validate`) and remove by hand.
//!
//! A pre-restore snapshot (its manifest's `restore_of` is set) takes no
//! slot either: it is newer than what it was taken before restoring, so as
//! a candidate it would take that day's daily slot and the next prune would
//! delete the snapshot just restored. Instead both are kept, with reasons
//! `pre_restore` and `restored`, while the pre-restore snapshot is younger
//! than `keep_pre_restore_days`; after that it goes, and the restored
//! snapshot is an ordinary candidate again.
//!
//! A snapshot dated in the future (more than
//! [`FUTURE_TOLERANCE`](crate::id::FUTURE_TOLERANCE) ahead of the clock: a
//! clock that ran ahead, a typo in a requested time) takes no slot: the
//! newest days would be its, and every real nightly would be deleted by
//! the prune that follows it. It is kept with reason `future`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::PathBuf;

use chrono::{DateTime, Datelike, NaiveDate, TimeDelta, Utc, Weekday};

use crate::config::{Config, Retention};
use crate::error::{io_at, Error, Result};
use crate::fsutil;
use crate::id::SnapshotId;
use crate::lock::FileLock;
use crate::manifest::Manifest;
use crate::repo::Repository;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reason {
    Daily,
    Weekly,
    Monthly,
    Pinned,
    Damaged,
    /// A pre-restore snapshot inside `keep_pre_restore_days`.
    PreRestore,
    /// Named by the `restore_of` of a pre-restore snapshot kept as such.
    Restored,
    /// Dated in the future (see [`crate::id::FUTURE_TOLERANCE`]).
    Future,
    /// Among the `keep_last` newest.
    Last,
    /// Within `keep_within` of the newest snapshot.
    Within,
    /// Carries a tag in `keep_tag`.
    Tag,
}

impl Reason {
    /// The stable name the operator sees (human output and JSON).
    pub fn name(self) -> &'static str {
        match self {
            Reason::Daily => "daily",
            Reason::Weekly => "weekly",
            Reason::Monthly => "monthly",
            Reason::Pinned => "pinned",
            Reason::Damaged => "damaged",
            Reason::PreRestore => "pre_restore",
            Reason::Restored => "restored",
            Reason::Future => "future",
            Reason::Last => "last",
            Reason::Within => "within",
            Reason::Tag => "tag",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    pub id: String,
    pub reasons: Vec<Reason>,
}

#[derive(Debug, Clone)]
pub struct PrunePlan {
    pub dry_run: bool,
    /// Oldest first, each with why it stays.
    pub keep: Vec<Kept>,
    /// Oldest first.
    pub delete: Vec<String>,
    /// What was actually deleted (empty on a dry run).
    pub deleted: Vec<String>,
    pub unparseable: Vec<String>,
    /// Builds of interrupted snapshots (and half-done deletions) in `tmp/`.
    pub leftovers: Vec<String>,
    /// Leftovers actually removed.
    pub leftovers_removed: Vec<String>,
    /// Bytes on disk the deletions free (a dry run: would free): blocks of
    /// the inodes whose last link goes with them, not apparent sizes (see
    /// `space`). Leftovers in `tmp/` are not counted.
    pub bytes_freed: u64,
}

/// The pure rule: which of `ids` to keep, with reasons. `ids` may come in
/// any order; the result does not depend on it.
///
/// Each day is represented by its newest snapshot. Daily takes the
/// `keep_daily` newest days. Weekly and monthly then take, newest first,
/// the `keep_weekly` / `keep_monthly` newest candidates whose day no tier
/// has kept yet:
/// - a Sunday, or a 1st of a month, as in the reference system;
/// - and, so that one missed Sunday or 1st leaves no hole, within the
///   `keep_weekly` newest calendar weeks (ISO, Monday to Sunday) counted
///   back from the newest snapshot's week: the newest day of a week that
///   has no Sunday; within the `keep_monthly` newest calendar months: the
///   oldest day of a month that has no 1st and none of whose snapshots
///   daily or weekly kept.
///
/// The window keeps the reference's meaning for old, sparse history (an
/// isolated Thursday two months back is no weekly), and the "none kept
/// yet" keeps a month that daily already holds from keeping its oldest
/// day as well. `keep_last` keeps the newest N, `keep_within` everything
/// within that span before the newest; pinned are always kept.
pub fn decide(
    ids: &[SnapshotId],
    pinned: &BTreeSet<SnapshotId>,
    policy: &Retention,
) -> BTreeMap<SnapshotId, Vec<Reason>> {
    // Newest snapshot of each day, days oldest first.
    let mut newest_of_day: BTreeMap<NaiveDate, &SnapshotId> = BTreeMap::new();
    for id in ids {
        let day = id.stamp().date_naive();
        let slot = newest_of_day.entry(day).or_insert(id);
        if id > *slot {
            *slot = id;
        }
    }
    let days: Vec<NaiveDate> = newest_of_day.keys().copied().collect();

    let mut kept: BTreeMap<SnapshotId, Vec<Reason>> = BTreeMap::new();
    let mut covered_days: BTreeSet<NaiveDate> = BTreeSet::new();

    for day in days.iter().rev().take(policy.keep_daily as usize) {
        kept.entry(newest_of_day[day].clone())
            .or_default()
            .push(Reason::Daily);
        covered_days.insert(*day);
    }

    if let Some(&newest) = days.last() {
        // Weekly.
        let newest_week = week_start(newest);
        let week_window = weeks_back(newest_week, policy.keep_weekly);
        let weekly: Vec<NaiveDate> = days
            .iter()
            .enumerate()
            .filter(|&(i, d)| {
                let newest_of_week = days
                    .get(i + 1)
                    .is_none_or(|next| week_start(*next) != week_start(*d));
                d.weekday() == Weekday::Sun
                    || (newest_of_week && week_window.is_some_and(|w| week_start(*d) >= w))
            })
            .map(|(_, d)| *d)
            .collect();
        for day in pick(&weekly, &covered_days, policy.keep_weekly) {
            kept.entry(newest_of_day[&day].clone())
                .or_default()
                .push(Reason::Weekly);
            covered_days.insert(day);
        }

        // Monthly.
        let month_window = months_back(month_start(newest), policy.keep_monthly);
        let monthly: Vec<NaiveDate> = days
            .iter()
            .enumerate()
            .filter(|&(i, d)| {
                if d.day() == 1 {
                    return true;
                }
                let month = month_start(*d);
                let oldest_of_month = i == 0 || month_start(days[i - 1]) != month;
                let month_held = covered_days.iter().any(|c| month_start(*c) == month);
                oldest_of_month && !month_held && month_window.is_some_and(|w| month >= w)
            })
            .map(|(_, d)| *d)
            .collect();
        for day in pick(&monthly, &covered_days, policy.keep_monthly) {
            kept.entry(newest_of_day[&day].clone())
                .or_default()
                .push(Reason::Monthly);
            covered_days.insert(day);
        }
    }

    let mut newest_first: Vec<&SnapshotId> = ids.iter().collect();
    newest_first.sort_unstable_by(|a, b| b.cmp(a));
    newest_first.dedup();
    for id in newest_first.iter().take(policy.keep_last as usize) {
        kept.entry((*id).clone()).or_default().push(Reason::Last);
    }
    if let (Some(span), Some(newest)) = (&policy.keep_within, newest_first.first()) {
        let since = span.before(newest.stamp());
        for id in &newest_first {
            if since.is_none_or(|since| id.stamp() >= since) {
                kept.entry((*id).clone()).or_default().push(Reason::Within);
            }
        }
    }
    for id in ids.iter().filter(|id| pinned.contains(id)) {
        let reasons = kept.entry(id.clone()).or_default();
        if !reasons.contains(&Reason::Pinned) {
            reasons.push(Reason::Pinned);
        }
    }
    kept
}

/// The newest `count` of `candidates` (days, oldest first) not already covered.
fn pick(candidates: &[NaiveDate], covered: &BTreeSet<NaiveDate>, count: u32) -> Vec<NaiveDate> {
    candidates
        .iter()
        .rev()
        .filter(|d| !covered.contains(d))
        .take(count as usize)
        .copied()
        .collect()
}

/// The Monday of `day`'s ISO week.
fn week_start(day: NaiveDate) -> NaiveDate {
    day - chrono::Days::new(u64::from(day.weekday().num_days_from_monday()))
}

/// The Monday `count - 1` weeks before `newest` (the oldest week of a
/// window of `count`); `None` for an empty window.
fn weeks_back(newest: NaiveDate, count: u32) -> Option<NaiveDate> {
    let back = u64::from(count.checked_sub(1)?) * 7;
    Some(
        newest
            .checked_sub_days(chrono::Days::new(back))
            .unwrap_or(NaiveDate::MIN),
    )
}

fn month_start(day: NaiveDate) -> NaiveDate {
    day.with_day(1).unwrap_or(day)
}

/// The 1st of the month `count - 1` months before `newest`.
fn months_back(newest: NaiveDate, count: u32) -> Option<NaiveDate> {
    let back = count.checked_sub(1)?;
    Some(
        newest
            .checked_sub_months(chrono::Months::new(back))
            .unwrap_or(NaiveDate::MIN),
    )
}

/// The whole rule for readable snapshots: [`decide`] over the calendar
/// candidates, plus what takes no calendar slot (pre-restore snapshots,
/// and snapshots in the future of `now`). `restore_of` holds each
/// pre-restore snapshot with the snapshot it was taken before restoring
/// (`None` when its manifest names something that is not an id).
pub fn decide_at(
    ids: &[SnapshotId],
    restore_of: &BTreeMap<SnapshotId, Option<SnapshotId>>,
    pinned: &BTreeSet<SnapshotId>,
    policy: &Retention,
    now: DateTime<Utc>,
) -> BTreeMap<SnapshotId, Vec<Reason>> {
    let (outside, calendar): (Vec<SnapshotId>, Vec<SnapshotId>) = ids
        .iter()
        .cloned()
        .partition(|id| restore_of.contains_key(id) || id.is_future(now));
    let mut kept = decide(&calendar, pinned, policy);
    let mut add = |id: &SnapshotId, reason: Reason| {
        let reasons = kept.entry(id.clone()).or_default();
        if !reasons.contains(&reason) {
            reasons.push(reason);
        }
    };
    let window =
        TimeDelta::try_days(i64::from(policy.keep_pre_restore_days)).unwrap_or(TimeDelta::MAX);
    for id in &outside {
        if id.is_future(now) {
            add(id, Reason::Future);
        }
        if restore_of.contains_key(id) && now.signed_duration_since(id.stamp()) < window {
            add(id, Reason::PreRestore);
            // Only a snapshot that is still there: keep never names an id
            // that is not in the repository.
            let of = restore_of.get(id).and_then(Option::as_ref);
            if let Some(of) = of.filter(|of| ids.contains(of)) {
                add(of, Reason::Restored);
            }
        }
        if pinned.contains(id) {
            add(id, Reason::Pinned);
        }
    }
    kept
}

/// Reads the repository and computes the plan (no changes made).
pub fn plan(repo: &Repository, policy: &Retention, allow_empty_policy: bool) -> Result<PrunePlan> {
    let listing = repo.list()?;
    let pinned: BTreeSet<SnapshotId> = listing
        .ids
        .iter()
        .filter(|id| repo.is_pinned(id))
        .cloned()
        .collect();
    let mut sound = Vec::new();
    let mut damaged = Vec::new();
    let mut restore_of = BTreeMap::new();
    let mut tagged = Vec::new();
    for id in &listing.ids {
        match Manifest::read_from(&repo.snapshot_dir(id), id.as_str()) {
            Ok(manifest) => {
                if let Some(of) = &manifest.restore_of {
                    restore_of.insert(id.clone(), SnapshotId::parse(of).ok());
                }
                if manifest.tags.iter().any(|t| policy.keep_tag.contains(t)) {
                    tagged.push(id.clone());
                }
                sound.push(id.clone());
            }
            Err(_) => damaged.push(id.clone()),
        }
    }
    // `keep_tag` alone keeps something only when a snapshot has the tag.
    if policy.keep_daily == 0
        && policy.keep_weekly == 0
        && policy.keep_monthly == 0
        && policy.keep_last == 0
        && policy.keep_within.is_none()
        && tagged.is_empty()
        && pinned.is_empty()
        && !allow_empty_policy
    {
        return Err(Error::EmptyPolicy);
    }
    let mut kept = decide_at(&sound, &restore_of, &pinned, policy, Utc::now());
    // A tag is the operator's word: kept whatever else is true of it.
    for id in tagged {
        kept.entry(id).or_default().push(Reason::Tag);
    }
    for id in damaged {
        let reasons = kept.entry(id.clone()).or_default();
        reasons.push(Reason::Damaged);
        if pinned.contains(&id) {
            reasons.push(Reason::Pinned);
        }
    }
    let keep = kept
        .iter()
        .map(|(id, reasons)| {
            let mut reasons = reasons.clone();
            reasons.sort();
            Kept {
                id: id.to_string(),
                reasons,
            }
        })
        .collect();
    let delete = listing
        .ids
        .iter()
        .filter(|id| !kept.contains_key(id))
        .map(|id| id.to_string())
        .collect();
    let leftovers = repo
        .leftovers()?
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    Ok(PrunePlan {
        dry_run: true,
        keep,
        delete,
        deleted: Vec::new(),
        unparseable: listing.unparseable,
        leftovers,
        leftovers_removed: Vec::new(),
        bytes_freed: 0,
    })
}

/// Prune: the plan, executed only with `confirm`.
pub fn run(cfg: &Config, confirm: bool, allow_empty_policy: bool) -> Result<PrunePlan> {
    let repo = Repository::new(&cfg.repository);
    if !confirm {
        let mut plan = plan(&repo, &cfg.retention, allow_empty_policy)?;
        let ids: Vec<SnapshotId> = plan
            .delete
            .iter()
            .filter_map(|t| SnapshotId::parse(t).ok())
            .collect();
        plan.bytes_freed = crate::space::freed_by(&repo, &ids)?;
        return Ok(plan);
    }
    let lock = repo.lock(cfg.lock_wait)?;
    // Planned under the lock, so no snapshot can appear or vanish between
    // the plan and its execution.
    let mut plan = plan(&repo, &cfg.retention, allow_empty_policy)?;
    execute(&repo, &lock, &mut plan)?;
    Ok(plan)
}

/// Deletes what the plan says. Each snapshot is first renamed out of
/// `snapshots/` (atomic), then removed: an interrupted prune leaves a
/// leftover in `tmp/`, never a half-deleted snapshot that looks whole.
/// Leftovers are safe to remove because we hold the lock: no snapshot is
/// being built.
pub fn execute(repo: &Repository, _lock: &FileLock, plan: &mut PrunePlan) -> Result<()> {
    plan.dry_run = false;
    for text in &plan.delete {
        // Between deletions, never inside one.
        crate::cancel::check()?;
        let id = SnapshotId::parse(text)?;
        let from = repo.snapshot_dir(&id);
        let to = repo.tmp_dir().join(format!("delete-{id}"));
        fs::rename(&from, &to).map_err(io_at("move out of snapshots/", &from))?;
        fsutil::sync_dir(&repo.snapshots_dir())?;
        // Measured just before the removal, the snapshots deleted before
        // it already gone: what this one's removal frees.
        let freed = crate::space::freed_by_dirs(std::slice::from_ref(&to)).unwrap_or(0);
        fsutil::remove_any(&to)?;
        plan.bytes_freed = plan.bytes_freed.saturating_add(freed);
        plan.deleted.push(text.clone());
    }
    for path in &plan.leftovers {
        fsutil::remove_any(&PathBuf::from(path))?;
        plan.leftovers_removed.push(path.clone());
    }
    fsutil::sync_dir(&repo.tmp_dir())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn id(s: &str) -> SnapshotId {
        SnapshotId::parse(s).unwrap()
    }

    fn daily(days: &[&str]) -> Vec<SnapshotId> {
        days.iter().map(|d| id(&format!("{d}T120000Z"))).collect()
    }

    fn keep_count(ids: &[SnapshotId]) -> (usize, usize) {
        let kept = decide(ids, &BTreeSet::new(), &Retention::default());
        (kept.len(), ids.len() - kept.len())
    }

    // The reference suite's expectations, case by case.
    #[test]
    fn reference_cases() {
        assert_eq!(keep_count(&[]), (0, 0));
        let ten: Vec<String> = (2..=11).map(|d| format!("202604{d:02}")).collect();
        let ten: Vec<&str> = ten.iter().map(String::as_str).collect();
        assert_eq!(keep_count(&daily(&ten)), (7, 3));
        assert_eq!(keep_count(&daily(&ten[3..])), (7, 0));

        let mut weekly = daily(&ten[3..]);
        weekly.extend(daily(&["20260329", "20260322", "20260325"]));
        let kept = decide(&weekly, &BTreeSet::new(), &Retention::default());
        assert_eq!(kept.len(), 9);
        assert!(!kept.contains_key(&id("20260325T120000Z")));
        assert_eq!(kept[&id("20260322T120000Z")], vec![Reason::Weekly]);

        let mut monthly = daily(&ten[3..]);
        monthly.extend(daily(&["20260101", "20251201", "20260115"]));
        let kept = decide(&monthly, &BTreeSet::new(), &Retention::default());
        assert_eq!(kept.len(), 9);
        assert!(!kept.contains_key(&id("20260115T120000Z")));
        assert_eq!(kept[&id("20251201T120000Z")], vec![Reason::Monthly]);
    }

    fn kept_days(kept: &BTreeMap<SnapshotId, Vec<Reason>>, reason: Reason) -> Vec<String> {
        kept.iter()
            .filter(|(_, r)| r.contains(&reason))
            .map(|(id, _)| id.as_str()[..8].to_owned())
            .collect()
    }

    fn nightly(from: &str, to: &str, missing: &[&str]) -> Vec<SnapshotId> {
        let mut day = NaiveDate::parse_from_str(from, "%Y%m%d").unwrap();
        let end = NaiveDate::parse_from_str(to, "%Y%m%d").unwrap();
        let mut ids = Vec::new();
        while day <= end {
            let text = day.format("%Y%m%d").to_string();
            if !missing.contains(&text.as_str()) {
                ids.push(id(&format!("{text}T030000Z")));
            }
            day = day.succ_opt().unwrap();
        }
        ids
    }

    #[test]
    fn a_missed_sunday_is_replaced_by_the_newest_of_its_week() {
        // Nightly from Mar 1 to Apr 11 2026; Sunday Mar 22 failed.
        let ids = nightly("20260301", "20260411", &["20260322"]);
        let policy = Retention {
            keep_daily: 7,
            keep_weekly: 4,
            keep_monthly: 0,
            ..Retention::default()
        };
        let kept = decide(&ids, &BTreeSet::new(), &policy);
        // Apr 5 is daily; then Mar 29, Saturday Mar 21 for the missed
        // Sunday, Mar 15 and Mar 8.
        assert_eq!(
            kept_days(&kept, Reason::Weekly),
            vec!["20260308", "20260315", "20260321", "20260329"]
        );
        // The reference rule would have kept Mar 15 and Mar 8 and left the
        // week of Mar 16-22 empty; re-pruning the survivors keeps them all.
        let survivors: Vec<SnapshotId> = kept.keys().cloned().collect();
        assert_eq!(decide(&survivors, &BTreeSet::new(), &policy), kept);
    }

    #[test]
    fn a_missed_first_is_replaced_by_the_oldest_of_its_month() {
        // Nightly from Jan 1 to May 20 2026; Mar 1 and Apr 1-2 failed.
        let ids = nightly(
            "20260101",
            "20260520",
            &["20260301", "20260401", "20260402"],
        );
        let policy = Retention {
            keep_daily: 7,
            keep_weekly: 0,
            keep_monthly: 6,
            ..Retention::default()
        };
        let kept = decide(&ids, &BTreeSet::new(), &policy);
        assert_eq!(
            kept_days(&kept, Reason::Monthly),
            vec!["20260101", "20260201", "20260302", "20260403", "20260501"]
        );
    }

    #[test]
    fn keep_last_and_keep_within_count_from_the_newest_snapshot() {
        let ids = nightly("20260101", "20260131", &[]);
        let policy = Retention {
            keep_daily: 0,
            keep_weekly: 0,
            keep_monthly: 0,
            keep_last: 3,
            keep_within: Some(crate::retention_span::Span::parse("1w").unwrap()),
            ..Retention::default()
        };
        let kept = decide(&ids, &BTreeSet::new(), &policy);
        assert_eq!(
            kept_days(&kept, Reason::Last),
            vec!["20260129", "20260130", "20260131"]
        );
        // Jan 24 03:00 is exactly one week before Jan 31 03:00: within.
        assert_eq!(kept_days(&kept, Reason::Within).len(), 8);
        assert_eq!(
            kept[&id("20260131T030000Z")],
            vec![Reason::Last, Reason::Within]
        );
        assert!(!kept.contains_key(&id("20260123T030000Z")));
    }

    #[test]
    fn newest_of_a_day_wins_and_sunday_already_kept_is_not_kept_twice() {
        let ids = vec![
            id("20260405T010000Z"),
            id("20260405T230000Z"),
            id("20260405T230000Z-1"),
        ];
        let kept = decide(&ids, &BTreeSet::new(), &Retention::default());
        assert_eq!(
            kept.keys().cloned().collect::<Vec<_>>(),
            vec![id("20260405T230000Z-1")]
        );
    }

    fn arb_ids() -> impl Strategy<Value = Vec<SnapshotId>> {
        // ~2 years of seconds, with collisions in the same second possible.
        prop::collection::vec((0i64..730 * 86400, 0u32..3), 0..60).prop_map(|v| {
            let base = chrono::DateTime::parse_from_rfc3339("2025-01-01T00:00:00Z")
                .unwrap()
                .to_utc();
            let mut ids: Vec<SnapshotId> = v
                .into_iter()
                .map(|(s, seq)| SnapshotId::new(base + chrono::Duration::seconds(s), seq))
                .collect();
            ids.sort();
            ids.dedup();
            ids
        })
    }

    proptest! {
        #[test]
        fn plan_invariants(
            ids in arb_ids(),
            d in 0u32..10, w in 0u32..6, m in 0u32..8, last in 0u32..4,
            within in prop::option::of(0u32..40),
            pin_mask in prop::collection::vec(any::<bool>(), 60),
            shuffle_seed in any::<u64>(),
        ) {
            let keep_within = within.map(|days| crate::retention_span::Span { days, ..Default::default() });
            let policy = Retention { keep_daily: d, keep_weekly: w, keep_monthly: m, keep_last: last, keep_within, ..Retention::default() };
            let pinned: BTreeSet<SnapshotId> = ids.iter().zip(&pin_mask).filter(|(_, p)| **p).map(|(i, _)| i.clone()).collect();
            let kept = decide(&ids, &pinned, &policy);

            // keep ∪ delete = all, disjoint (delete is the complement by construction,
            // so check keep ⊆ all)
            for k in kept.keys() { prop_assert!(ids.contains(k)); }
            // pinned never deleted
            for p in &pinned { prop_assert!(kept.contains_key(p)); }
            // newest always kept when keep_daily >= 1
            if d >= 1 { if let Some(newest) = ids.iter().max() { prop_assert!(kept.contains_key(newest)); } }
            // order independence
            let mut shuffled = ids.clone();
            let mut s = shuffle_seed;
            for i in (1..shuffled.len()).rev() {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                shuffled.swap(i, (s >> 33) as usize % (i + 1));
            }
            prop_assert_eq!(&decide(&shuffled, &pinned, &policy), &kept);
            // idempotent: pruning the survivors deletes nothing more
            let survivors: Vec<SnapshotId> = kept.keys().cloned().collect();
            let again = decide(&survivors, &pinned, &policy);
            prop_assert_eq!(again.len(), survivors.len());
        }

        #[test]
        fn pre_restore_and_future_snapshots_take_no_slot(
            ids in arb_ids(),
            d in 0u32..10, days in 0u32..30,
            pre_mask in prop::collection::vec(any::<bool>(), 60),
            of_pick in prop::collection::vec(any::<prop::sample::Index>(), 60),
            now_offset in 0i64..800 * 86400,
        ) {
            let policy = Retention { keep_daily: d, keep_pre_restore_days: days, ..Retention::default() };
            let restore_of: BTreeMap<SnapshotId, Option<SnapshotId>> = ids
                .iter()
                .zip(&pre_mask)
                .zip(&of_pick)
                .filter(|((_, pre), _)| **pre)
                .map(|((pre, _), of)| (pre.clone(), Some(ids[of.index(ids.len())].clone())))
                .collect();
            let now = ids.first().map_or_else(Utc::now, |first| first.stamp() + TimeDelta::seconds(now_offset));
            let kept = decide_at(&ids, &restore_of, &BTreeSet::new(), &policy, now);
            let outside = |id: &SnapshotId| restore_of.contains_key(id) || id.is_future(now);
            let calendar: Vec<SnapshotId> = ids.iter().filter(|id| !outside(id)).cloned().collect();
            let calendar_kept = decide(&calendar, &BTreeSet::new(), &policy);
            for (id, reasons) in &kept {
                prop_assert!(ids.contains(id));
                let pre = restore_of.contains_key(id);
                let young = now.signed_duration_since(id.stamp()) < TimeDelta::days(i64::from(days));
                prop_assert_eq!(reasons.contains(&Reason::PreRestore), pre && young);
                prop_assert_eq!(reasons.contains(&Reason::Future), id.is_future(now));
                let calendar_reason = |r: &Reason| matches!(r, Reason::Daily | Reason::Weekly | Reason::Monthly);
                prop_assert!(!outside(id) || !reasons.iter().any(calendar_reason));
                // Restored only on behalf of a pre-restore snapshot still kept as such.
                if reasons.contains(&Reason::Restored) {
                    let kept_as_pre = |p: &SnapshotId| kept.get(p).is_some_and(|r| r.contains(&Reason::PreRestore));
                    prop_assert!(restore_of.iter().any(|(p, of)| of.as_ref() == Some(id) && kept_as_pre(p)));
                }
            }
            // The calendar is decided as if those were not there.
            for (id, reasons) in &calendar_kept {
                for r in reasons {
                    prop_assert!(kept[id].contains(r));
                }
            }
        }
    }

    #[test]
    fn a_pre_restore_snapshot_takes_no_slot_and_keeps_what_it_restored() {
        let older = id("20260409T030000Z");
        let good = id("20260410T030000Z");
        let pre = id("20260410T100000Z");
        let ids = vec![older.clone(), good.clone(), pre.clone()];
        let restore_of = BTreeMap::from([(pre.clone(), Some(good.clone()))]);
        let policy = Retention {
            keep_daily: 1,
            keep_weekly: 0,
            keep_monthly: 0,
            ..Retention::default()
        };
        let none = BTreeSet::new();
        let next_night = pre.stamp() + TimeDelta::hours(17);
        let kept = decide_at(&ids, &restore_of, &none, &policy, next_night);
        assert_eq!(kept[&good], vec![Reason::Daily, Reason::Restored]);
        assert_eq!(kept[&pre], vec![Reason::PreRestore]);
        assert!(!kept.contains_key(&older));

        // Seven days on, the pre-restore snapshot is just not a candidate.
        let week_on = pre.stamp() + TimeDelta::days(7);
        let kept = decide_at(&ids, &restore_of, &none, &policy, week_on);
        assert_eq!(kept, BTreeMap::from([(good, vec![Reason::Daily])]));
    }
}
