//! Human output: short reports that end with one line saying the outcome.

use std::fmt::Write;

use cairn_engine::config::Retention;
use cairn_engine::drill::DrillReport;
use cairn_engine::fsutil::human_bytes;
use cairn_engine::id::{ahead_of, human_span, FUTURE_TOLERANCE};
use cairn_engine::prune::{PrunePlan, Reason};
use cairn_engine::restore::{RestoreOutcome, RestorePlan};
use cairn_engine::snapshot::SnapshotOutcome;
use cairn_engine::validate::ValidationReport;
use cairn_engine::{Depth, Manifest, Registry, StoreStatus};
use chrono::{DateTime, Utc};

use crate::commands::ListRow;

pub fn stores(registry: &Registry) -> String {
    let mut s = String::new();
    for d in registry.descriptors() {
        let _ = writeln!(s, "{}\n    {}", d.kind, d.summary);
        for o in d.options {
            let _ = writeln!(
                s,
                "    option {} = {}\n        {}",
                o.name, o.example, o.doc
            );
        }
    }
    s
}

pub fn snapshot(outcome: &SnapshotOutcome) -> String {
    let m = &outcome.snapshot;
    let mut s = format!("snapshot {}\n", m.id);
    for store in &m.stores {
        match store.status {
            StoreStatus::Captured => {
                let _ = writeln!(
                    s,
                    "  {:<16} {:<14} {:>7} {:<5} {:>10}",
                    store.name,
                    store.kind,
                    store.files,
                    if store.files == 1 { "file" } else { "files" },
                    human_bytes(store.bytes)
                );
            }
            StoreStatus::Absent => {
                let _ = writeln!(
                    s,
                    "  {:<16} {:<14} absent (optional)",
                    store.name, store.kind
                );
            }
        }
        for w in &store.warnings {
            let _ = writeln!(s, "    warning: {w}");
        }
    }
    for p in &outcome.validation.errors {
        let _ = writeln!(s, "  problem: {p}");
    }
    if let Some(e) = &outcome.after_hook_error {
        let _ = writeln!(s, "  after_snapshot hook failed: {e}");
    }
    let _ = writeln!(
        s,
        "{}",
        if outcome.validation.valid {
            format!(
                "ok: snapshot {} taken and validated ({})",
                m.id,
                human_bytes(m.total_bytes())
            )
        } else {
            format!(
                "NOT SOUND: snapshot {} was kept but failed validation (validated: false)",
                m.id
            )
        }
    );
    s
}

pub fn list(rows: &[ListRow], unparseable: &[String], now: DateTime<Utc>) -> String {
    if rows.is_empty() && unparseable.is_empty() {
        return "no snapshots\n".into();
    }
    let table: Vec<[String; 7]> = rows
        .iter()
        .map(|r| {
            [
                r.id.clone(),
                r.created_at
                    .map(|t| format!("{} ({})", t.format("%Y-%m-%d %H:%M"), relative(t, now)))
                    .unwrap_or_else(|| "-".into()),
                if r.tags.is_empty() {
                    "-".into()
                } else {
                    r.tags.join(",")
                },
                if r.pinned { "yes".into() } else { "".into() },
                if r.stores.is_empty() {
                    "-".into()
                } else {
                    r.stores.join(",")
                },
                r.bytes.map(human_bytes).unwrap_or_else(|| "-".into()),
                r.problem.unwrap_or("").to_owned(),
            ]
        })
        .collect();
    let header = [
        "ID", "CREATED", "TAGS", "PINNED", "STORES", "SIZE", "PROBLEM",
    ];
    let mut widths = header.map(str::len);
    for row in &table {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut s = String::new();
    let line = |s: &mut String, cells: [&str; 7]| {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i == 5 {
                let _ = write!(text, "{cell:>w$}  ", w = widths[i]);
            } else {
                let _ = write!(text, "{cell:<w$}  ", w = widths[i]);
            }
        }
        let _ = writeln!(s, "{}", text.trim_end());
    };
    line(&mut s, header);
    for row in &table {
        line(&mut s, row.each_ref().map(String::as_str));
    }
    for name in unparseable {
        let _ = writeln!(s, "(not a snapshot id, left alone: snapshots/{name})");
    }
    let damaged = rows.iter().filter(|r| r.problem.is_some()).count();
    let _ = writeln!(
        s,
        "{} snapshot{}{}",
        rows.len(),
        if rows.len() == 1 { "" } else { "s" },
        if damaged > 0 {
            format!(", {damaged} damaged (run `cairn validate --all`)")
        } else {
            String::new()
        }
    );
    s
}

/// `3h ago`, or `in the future by 3d`: a clock that ran ahead must not
/// read as "just now".
fn relative(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    match ahead_of(t, now) {
        Some(ahead) => format!("in the future by {}", human_span(ahead)),
        None => format!("{} ago", human_span(now - t)),
    }
}

pub fn show(m: &Manifest, pinned: bool) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "snapshot   {}", m.id);
    let _ = writeln!(s, "created    {}", m.created_at.to_rfc3339());
    let _ = writeln!(s, "host       {} (cairn {})", m.host, m.tool_version);
    if !m.tags.is_empty() {
        let _ = writeln!(s, "tags       {}", m.tags.join(", "));
    }
    if let Some(of) = &m.restore_of {
        let _ = writeln!(s, "taken before restoring {of}");
    }
    let _ = writeln!(s, "pinned     {}", if pinned { "yes" } else { "no" });
    let _ = writeln!(s, "stores:");
    for store in &m.stores {
        let _ = writeln!(s, "  {} ({}) from {}", store.name, store.kind, store.source);
        match store.status {
            StoreStatus::Absent => {
                let _ = writeln!(s, "    absent when captured");
            }
            StoreStatus::Captured => {
                let _ = writeln!(
                    s,
                    "    {} entries, {} files, {}",
                    store.entries.len(),
                    store.files(),
                    human_bytes(store.bytes())
                );
                for (k, v) in &store.metadata {
                    let _ = writeln!(s, "    {k}: {v}");
                }
            }
        }
        for w in &store.warnings {
            let _ = writeln!(s, "    warning: {w}");
        }
    }
    let _ = writeln!(
        s,
        "total {} in {} stores",
        human_bytes(m.total_bytes()),
        m.stores.len()
    );
    s
}

pub fn validate(results: &[ValidationReport], depth: Depth) -> String {
    let mut s = String::new();
    for r in results {
        if r.valid {
            let _ = writeln!(s, "{}  ok", r.id);
        } else {
            let _ = writeln!(s, "{}  INVALID", r.id);
            for p in &r.errors {
                let _ = writeln!(s, "    {p}");
            }
        }
    }
    let bad = results.iter().filter(|r| !r.valid).count();
    let how = if depth == Depth::Quick {
        "quick: sizes and quick_check"
    } else {
        "every byte hashed"
    };
    let _ = writeln!(
        s,
        "{}",
        if results.is_empty() {
            "no snapshots to validate".to_owned()
        } else if bad == 0 {
            format!("ok: {} snapshot(s) valid ({how})", results.len())
        } else {
            format!("NOT SOUND: {bad} of {} snapshot(s) invalid", results.len())
        }
    );
    s
}

pub fn restore(o: &RestoreOutcome) -> String {
    let mut s = format!(
        "restore {} into {}\n",
        o.id,
        crate::json::target(o.to.as_deref())
    );
    if let Some(pre) = &o.pre_restore_snapshot {
        let _ = writeln!(s, "  pre-restore snapshot: {pre} (your way back: `cairn restore {pre} --confirm-service-stopped`)");
        for p in &o.pre_restore_problems {
            let _ = writeln!(
                s,
                "    warning: it holds the live bytes exactly, and they fail their kind's check: {p}"
            );
        }
    }
    for st in &o.stores {
        let state = if let Some(why) = &st.skipped {
            format!("skipped: {why}")
        } else if st.rolled_back {
            "rolled back".into()
        } else if st.restored {
            match st.integrity_ok {
                Some(true) => "restored, integrity ok".into(),
                Some(false) => "restored, INTEGRITY CHECK FAILED".into(),
                None => "restored".into(),
            }
        } else {
            "NOT restored".into()
        };
        let line = format!("  {:<16} {state}  {}", st.name, st.path);
        let _ = writeln!(s, "{}", line.trim_end());
        if let Some(d) = &st.detail {
            let _ = writeln!(s, "      {d}");
        }
        for w in &st.not_kept {
            let _ = writeln!(s, "      not kept: {w}");
        }
    }
    for p in &o.problems {
        let _ = writeln!(s, "  problem: {p}");
    }
    if let Some(f) = &o.failure {
        let _ = writeln!(s, "  failed: {f}");
    }
    if let Some(f) = &o.rollback_failure {
        let _ = writeln!(s, "  ROLLBACK FAILED: {}", crate::json::rollback_failure(f));
    }
    let last = if o.is_sound() {
        format!("ok: snapshot {} restored", o.id)
    } else if o.rolled_back {
        "FAILED: restore rolled back; live stores are as they were before".into()
    } else if o.failure.is_none() && o.rollback_failure.is_none() && !o.problems.is_empty() {
        format!(
            "NOT SOUND: snapshot {} restored as captured, but its content fails its kind's check (problems above)",
            o.id
        )
    } else {
        "FAILED: see above".into()
    };
    let _ = writeln!(s, "{last}");
    s
}

pub fn restore_plan(plan: &RestorePlan<'_>) -> String {
    let mut s = format!(
        "restore {} into {} (dry run: nothing touched)\n",
        plan.id(),
        crate::json::target(plan.to())
    );
    if plan.takes_pre_restore_snapshot() {
        let _ = writeln!(s, "  a pre-restore snapshot would be taken first");
    }
    for st in plan.stores() {
        match &st.target {
            Some(path) => {
                let _ = writeln!(
                    s,
                    "  {:<16} {:>7} {:<5} {:>10}  -> {}",
                    st.name,
                    st.files,
                    if st.files == 1 { "file" } else { "files" },
                    human_bytes(st.bytes),
                    path.display()
                );
            }
            None => {
                let _ = writeln!(s, "  {:<16} skipped: absent in the snapshot", st.name);
            }
        }
    }
    let _ = writeln!(
        s,
        "dry run: every gate passed; rerun without --dry-run to restore"
    );
    s
}

pub fn prune(plan: &PrunePlan, policy: &Retention) -> String {
    let mut s = format!(
        "retention: keep_daily={} keep_weekly={} keep_monthly={} (UTC days), plus pinned, plus keep_pre_restore_days={}\n",
        policy.keep_daily, policy.keep_weekly, policy.keep_monthly, policy.keep_pre_restore_days
    );
    for k in &plan.keep {
        let reasons: Vec<String> = k.reasons.iter().map(|r| r.name().to_owned()).collect();
        let _ = writeln!(s, "  keep    {}  {}", k.id, reasons.join(", "));
    }
    let verb = if plan.dry_run {
        "would delete"
    } else {
        "deleted"
    };
    for d in &plan.delete {
        let _ = writeln!(s, "  {verb:<7} {d}");
    }
    for u in &plan.unparseable {
        let _ = writeln!(s, "  left alone (unparseable name): snapshots/{u}");
    }
    for l in &plan.leftovers {
        let _ = writeln!(
            s,
            "  {} leftover of an interrupted run: {l}",
            if plan.dry_run {
                "would remove"
            } else {
                "removed"
            }
        );
    }
    let future = plan
        .keep
        .iter()
        .filter(|k| k.reasons.contains(&Reason::Future))
        .count();
    if future > 0 {
        let _ = writeln!(
            s,
            "  note: {future} snapshot{} dated in the future of this machine's clock: kept (future), in no daily, weekly or monthly slot; check the clock, or the --at that made {}",
            if future == 1 { "" } else { "s" },
            if future == 1 { "it" } else { "them" }
        );
    }
    let _ = writeln!(
        s,
        "{}: keep {}, {} {}{}",
        if plan.dry_run { "dry run" } else { "pruned" },
        plan.keep.len(),
        verb,
        if plan.dry_run {
            plan.delete.len()
        } else {
            plan.deleted.len()
        },
        if plan.dry_run && !plan.delete.is_empty() {
            " (run with --confirm to delete)"
        } else {
            ""
        }
    );
    s
}

pub fn drill(r: &DrillReport) -> String {
    let mut s = format!("drill of snapshot {}\n", r.id);
    for c in &r.checks {
        let store = if c.store.is_empty() {
            "-"
        } else {
            c.store.as_str()
        };
        let _ = writeln!(
            s,
            "  {} {:<12} {:<22} {}",
            if c.ok { "pass" } else { "FAIL" },
            store,
            c.check,
            c.detail
        );
    }
    let age = chrono::Duration::seconds(r.snapshot_age_seconds);
    let rpo = if -age > FUTURE_TOLERANCE {
        format!(
            "snapshot dated in the future by {} (no RPO: check the clock)",
            human_span(-age)
        )
    } else {
        format!("snapshot age {} (RPO if restored now)", human_span(age))
    };
    let _ = writeln!(
        s,
        "  restore took {:.2}s (RTO estimate); {rpo}",
        r.restore_seconds
    );
    if let Some(dir) = &r.scratch {
        let _ = writeln!(s, "  scratch kept at {dir}");
    }
    let _ = writeln!(
        s,
        "{}",
        if r.ok {
            format!("ok: drill of {} passed every check", r.id)
        } else {
            format!(
                "FAILED: drill of {} failed {} check(s)",
                r.id,
                r.checks.iter().filter(|c| !c.ok).count()
            )
        }
    );
    s
}
