//! Human output: short reports that end with one line saying the outcome.
//!
//! Every name, path and detail that comes from outside the program (the
//! config, a file name in a store, a manifest, a directory in the
//! repository, an error's text) goes through [`clean`] before it is
//! printed: a file named `"x\nok: all fine"` must not print a line of its
//! own. JSON needs none of this (serde_json escapes control characters).

use std::borrow::Cow;
use std::fmt::Write;

use cairn_engine::config::Retention;
use cairn_engine::drill::DrillReport;
use cairn_engine::fsutil::human_bytes;
use cairn_engine::id::{ahead_of, human_span, FUTURE_TOLERANCE};
use cairn_engine::prune::{PrunePlan, Reason};
use cairn_engine::repair::{is_repairable, RepairOutcome};
use cairn_engine::restore::{RestoreOutcome, RestorePlan};
use cairn_engine::snapshot::SnapshotOutcome;
use cairn_engine::validate::ValidationReport;
use cairn_engine::{Depth, Entry, EntryKind, Manifest, Problem, Registry, StoreStatus};
use chrono::{DateTime, Utc};

use crate::commands::ListRow;
use crate::contract;

/// `s` with every control character (and every Unicode line separator or
/// bidirectional override, which a terminal may also act on) written as
/// an escape — `\n`, `\r`, `\t`, else `\u{1b}` — and each backslash
/// doubled, so an escape in the output always means one in the name.
/// Borrowed, at no cost, when there is nothing to escape.
pub(crate) fn clean(s: &str) -> Cow<'_, str> {
    fn needs_escape(c: char) -> bool {
        c == '\\'
            || c.is_control()
            || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    }
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// A problem as `code [store] path: detail`, each part [`clean`]ed.
fn problem(p: &Problem) -> String {
    let mut s = p.code.to_owned();
    if let Some(store) = &p.store {
        let _ = write!(s, " [{}]", clean(store));
    }
    if let Some(path) = &p.path {
        let _ = write!(s, " {}", clean(path));
    }
    let _ = write!(s, ": {}", clean(&p.detail));
    s
}

fn cleaned(items: &[String]) -> Vec<String> {
    items.iter().map(|i| clean(i).into_owned()).collect()
}

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
    let mut s = format!("snapshot {}\n", clean(&m.id));
    for store in &m.stores {
        match store.status {
            StoreStatus::Captured => {
                let _ = writeln!(
                    s,
                    "  {:<16} {:<14} {:>7} {:<5} {:>10}",
                    clean(&store.name),
                    clean(&store.kind),
                    store.files,
                    if store.files == 1 { "file" } else { "files" },
                    human_bytes(store.bytes)
                );
            }
            StoreStatus::Absent => {
                let _ = writeln!(
                    s,
                    "  {:<16} {:<14} absent (optional)",
                    clean(&store.name),
                    clean(&store.kind)
                );
            }
        }
        for w in &store.warnings {
            let _ = writeln!(s, "    warning: {}", clean(w));
        }
    }
    for p in &outcome.validation.errors {
        let _ = writeln!(s, "  problem: {}", problem(p));
    }
    if let Some(hint) = contract::repair_hint(&m.id, &outcome.validation.errors) {
        let _ = writeln!(s, "  hint: {hint}");
    }
    if let Some(e) = &outcome.after_hook_error {
        let _ = writeln!(s, "  after_snapshot hook failed: {}", clean(&e.to_string()));
    }
    let _ = writeln!(
        s,
        "{}",
        if outcome.validation.valid {
            format!(
                "ok: snapshot {} taken and validated ({})",
                clean(&m.id),
                human_bytes(m.total_bytes())
            )
        } else {
            format!(
                "NOT SOUND: snapshot {} was kept but failed validation (validated: false)",
                clean(&m.id)
            )
        }
    );
    s
}

pub fn list(rows: &[ListRow], unparseable: &[String], now: DateTime<Utc>) -> String {
    if rows.is_empty() && unparseable.is_empty() {
        return "no snapshots\n".into();
    }
    let table: Vec<[String; 8]> = rows
        .iter()
        .map(|r| {
            [
                clean(&r.id).into_owned(),
                r.created_at
                    .map(|t| format!("{} ({})", t.format("%Y-%m-%d %H:%M"), relative(t, now)))
                    .unwrap_or_else(|| "-".into()),
                if r.tags.is_empty() {
                    "-".into()
                } else {
                    cleaned(&r.tags).join(",")
                },
                if r.pinned { "yes".into() } else { "".into() },
                if r.stores.is_empty() {
                    "-".into()
                } else {
                    cleaned(&r.stores).join(",")
                },
                r.bytes.map(human_bytes).unwrap_or_else(|| "-".into()),
                match &r.validation {
                    Some(v) => format!(
                        "{} ({})",
                        if v.valid() { "ok" } else { "FAILED" },
                        relative(v.validated_at, now)
                    ),
                    None => "-".into(),
                },
                r.problem.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let header = [
        "ID",
        "CREATED",
        "TAGS",
        "PINNED",
        "STORES",
        "SIZE",
        "VALIDATED",
        "PROBLEM",
    ];
    let mut widths = header.map(str::len);
    for row in &table {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut s = String::new();
    let line = |s: &mut String, cells: [&str; 8]| {
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
        let _ = writeln!(
            s,
            "(not a snapshot id, left alone: snapshots/{})",
            clean(name)
        );
    }
    let damaged = rows.iter().filter(|r| r.problem.is_some()).count();
    // Rows whose last validation found damaged copies: `cairn repair`.
    let copies: Vec<&str> = rows
        .iter()
        .filter(|r| {
            r.validation
                .as_ref()
                .is_some_and(|v| v.problems.iter().any(|p| is_repairable(&p.code)))
        })
        .map(|r| r.id.as_str())
        .collect();
    let total = rows
        .iter()
        .filter_map(|r| r.bytes)
        .fold(0u64, u64::saturating_add);
    let _ = writeln!(
        s,
        "{} snapshot{}, {} in total as restored (`cairn stats`: space on disk){}",
        rows.len(),
        if rows.len() == 1 { "" } else { "s" },
        human_bytes(total),
        if let [id] = copies.as_slice() {
            format!(", {damaged} damaged (`cairn repair {id}` rewrites its damaged copies; `cairn validate --all` re-checks)")
        } else if !copies.is_empty() {
            format!(", {damaged} damaged (`cairn repair --all` rewrites the damaged copies; `cairn validate --all` re-checks)")
        } else if damaged > 0 {
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
    let _ = writeln!(s, "snapshot   {}", clean(&m.id));
    let _ = writeln!(s, "created    {}", m.created_at.to_rfc3339());
    let _ = writeln!(
        s,
        "host       {} (cairn {})",
        clean(&m.host),
        clean(&m.tool_version)
    );
    if !m.tags.is_empty() {
        let _ = writeln!(s, "tags       {}", cleaned(&m.tags).join(", "));
    }
    if let Some(of) = &m.restore_of {
        let _ = writeln!(s, "taken before restoring {}", clean(of));
    }
    let _ = writeln!(s, "pinned     {}", if pinned { "yes" } else { "no" });
    let _ = writeln!(s, "stores:");
    for store in &m.stores {
        let _ = writeln!(
            s,
            "  {} ({}) from {}",
            clean(&store.name),
            clean(&store.kind),
            clean(&store.source)
        );
        match store.status {
            StoreStatus::Absent => {
                let _ = writeln!(s, "    absent when captured");
            }
            StoreStatus::Captured => {
                let _ = writeln!(
                    s,
                    "    {}, {}, {}",
                    count(store.entries.len(), "entry", "entries"),
                    count(store.files(), "file", "files"),
                    human_bytes(store.bytes())
                );
                for (k, v) in &store.metadata {
                    metadata_lines(&mut s, 4, k, v);
                }
            }
        }
        for w in &store.warnings {
            let _ = writeln!(s, "    warning: {}", clean(w));
        }
    }
    let _ = writeln!(
        s,
        "total {} in {}",
        human_bytes(m.total_bytes()),
        count(m.stores.len(), "store", "stores")
    );
    s
}

/// `1 entry`, `3 entries`.
fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// `key: value` for a plug-in's metadata entry; an object (the SQLite
/// kind's recorded live state) as its own `key:` line with its fields
/// indented below it, never as raw JSON.
fn metadata_lines(s: &mut String, indent: usize, key: &str, v: &serde_json::Value) {
    match v {
        serde_json::Value::Object(fields) => {
            let _ = writeln!(s, "{:indent$}{}:", "", clean(key));
            for (k, v) in fields {
                metadata_lines(s, indent + 2, k, v);
            }
        }
        v => {
            let _ = writeln!(s, "{:indent$}{}: {}", "", clean(key), human_value(v));
        }
    }
}

/// A metadata value as a person reads it: a string without its quotes,
/// numbers and booleans as they are, lists joined with commas; an object
/// inside a list as compact JSON. Always [`clean`]ed.
fn human_value(v: &serde_json::Value) -> String {
    use serde_json::Value;
    let text = match v {
        Value::String(t) => t.clone(),
        Value::Null => "-".into(),
        Value::Array(items) => items.iter().map(human_value).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    };
    clean(&text).into_owned()
}

pub fn validate(results: &[ValidationReport], depth: Depth) -> String {
    let mut s = String::new();
    for r in results {
        if r.valid {
            let _ = writeln!(s, "{}  ok", clean(&r.id));
        } else {
            let _ = writeln!(s, "{}  INVALID", clean(&r.id));
            for p in &r.errors {
                let _ = writeln!(s, "    {}", problem(p));
            }
            if let Some(hint) = contract::repair_hint(&r.id, &r.errors) {
                let _ = writeln!(s, "    hint: {hint}");
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
        clean(&o.id),
        clean(&crate::json::target(o.to.as_deref()))
    );
    if let Some(pre) = &o.pre_restore_snapshot {
        let pre = clean(pre);
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
            format!("skipped: {}", clean(why))
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
        let line = format!("  {:<16} {state}  {}", clean(&st.name), clean(&st.path));
        let _ = writeln!(s, "{}", line.trim_end());
        if let Some(d) = &st.detail {
            let _ = writeln!(s, "      {}", clean(d));
        }
        for w in &st.not_kept {
            let _ = writeln!(s, "      not kept: {w}");
        }
    }
    for p in &o.problems {
        let _ = writeln!(s, "  problem: {p}");
    }
    if let Some(f) = &o.failure {
        let _ = writeln!(s, "  failed: {}", clean(f));
    }
    if let Some(f) = &o.rollback_failure {
        let _ = writeln!(
            s,
            "  ROLLBACK FAILED: {}",
            clean(&crate::json::rollback_failure(f))
        );
    }
    let last = if o.is_sound() {
        format!("ok: snapshot {} restored", clean(&o.id))
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
        clean(&crate::json::target(plan.to()))
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
                    clean(&st.name),
                    st.files,
                    if st.files == 1 { "file" } else { "files" },
                    human_bytes(st.bytes),
                    clean(&path.display().to_string())
                );
            }
            None => {
                let _ = writeln!(
                    s,
                    "  {:<16} skipped: absent in the snapshot",
                    clean(&st.name)
                );
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
        "retention: keep_daily={} keep_weekly={} keep_monthly={} (UTC days), plus pinned, plus keep_pre_restore_days={}",
        policy.keep_daily, policy.keep_weekly, policy.keep_monthly, policy.keep_pre_restore_days
    );
    if policy.keep_last > 0 {
        let _ = write!(s, ", keep_last={}", policy.keep_last);
    }
    if let Some(span) = &policy.keep_within {
        let _ = write!(s, ", keep_within={span}");
    }
    if !policy.keep_tag.is_empty() {
        let tags: Vec<String> = policy
            .keep_tag
            .iter()
            .map(|t| clean(t).into_owned())
            .collect();
        let _ = write!(s, ", keep_tag={}", tags.join(","));
    }
    s.push('\n');
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
        let _ = writeln!(s, "  left alone (unparseable name): snapshots/{}", clean(u));
    }
    for l in &plan.leftovers {
        let _ = writeln!(
            s,
            "  {} leftover of an interrupted run: {}",
            if plan.dry_run {
                "would remove"
            } else {
                "removed"
            },
            clean(l)
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
        "{}: keep {}, {} {}, {} {} on disk{}",
        if plan.dry_run { "dry run" } else { "pruned" },
        plan.keep.len(),
        verb,
        if plan.dry_run {
            plan.delete.len()
        } else {
            plan.deleted.len()
        },
        if plan.dry_run { "would free" } else { "freed" },
        human_bytes(plan.bytes_freed),
        if plan.dry_run && !plan.delete.is_empty() {
            " (run with --confirm to delete)"
        } else {
            ""
        }
    );
    s
}

pub fn drill(r: &DrillReport) -> String {
    let mut s = format!("drill of snapshot {}\n", clean(&r.id));
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
            clean(store),
            clean(&c.check),
            clean(&c.detail)
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
        let _ = writeln!(s, "  scratch kept at {}", clean(dir));
    }
    let _ = writeln!(
        s,
        "{}",
        if r.ok {
            format!("ok: drill of {} passed every check", clean(&r.id))
        } else {
            format!(
                "FAILED: drill of {} failed {} check(s)",
                clean(&r.id),
                r.checks.iter().filter(|c| !c.ok).count()
            )
        }
    );
    s
}

pub fn repair(o: &RepairOutcome) -> String {
    let mut s = String::new();
    let verb = if o.dry_run {
        "would repair"
    } else {
        "repaired"
    };
    for r in &o.snapshots {
        let _ = writeln!(
            s,
            "repair {}{}",
            r.id,
            if r.found.is_empty() {
                ": valid, nothing to repair"
            } else {
                ""
            }
        );
        for f in &r.repaired {
            let _ = writeln!(
                s,
                "  {verb} {}/{} ({}) from {}",
                f.problem.store.as_deref().unwrap_or("-"),
                f.problem.path.as_deref().unwrap_or("-"),
                f.problem.code,
                f.from
            );
        }
        for u in &r.unrepaired {
            let _ = writeln!(s, "  NOT repaired: {}", u.problem);
            let _ = writeln!(s, "      why: {}", u.reason);
        }
    }
    for v in &o.revalidated {
        let _ = writeln!(
            s,
            "  {} shares a healed file; validated again: {}",
            v.id,
            if v.valid {
                "ok".to_owned()
            } else {
                format!(
                    "INVALID ({} problem{}; `cairn validate {}`)",
                    v.errors.len(),
                    if v.errors.len() == 1 { "" } else { "s" },
                    v.id
                )
            }
        );
    }
    let repaired: usize = o.snapshots.iter().map(|r| r.repaired.len()).sum();
    let left: usize = o.snapshots.iter().map(|r| r.unrepaired.len()).sum();
    let bad = o.snapshots.iter().filter(|r| !r.is_sound()).count();
    let files = |n: usize| format!("{n} file{}", if n == 1 { "" } else { "s" });
    let last = if o.snapshots.is_empty() {
        "no snapshots to repair".to_owned()
    } else if o.dry_run {
        format!(
            "dry run: would repair {}; {} left that repair cannot fix; nothing rewritten",
            files(repaired),
            left
        )
    } else if o.is_sound() {
        format!(
            "ok: {} repaired; {} snapshot(s) valid",
            files(repaired),
            o.snapshots.len()
        )
    } else {
        format!(
            "NOT SOUND: {} repaired, {} problem{} left in {bad} of {} snapshot(s) (listed above)",
            files(repaired),
            left,
            if left == 1 { "" } else { "s" },
            o.snapshots.len()
        )
    };
    let _ = writeln!(s, "{last}");
    s
}

/// An mtime in nanoseconds as a UTC time (`None` when out of range).
pub(crate) fn mtime(ns: i128) -> Option<DateTime<Utc>> {
    let secs = i64::try_from(ns.div_euclid(1_000_000_000)).ok()?;
    let nanos = u32::try_from(ns.rem_euclid(1_000_000_000)).unwrap_or(0);
    DateTime::from_timestamp(secs, nanos)
}

/// `-rw-r--r--`, `drwx------`, `lrwxrwxrwx`, with s/S and t/T as ls prints them.
fn mode_string(kind: EntryKind, mode: u32) -> String {
    let mut out = String::with_capacity(10);
    out.push(match kind {
        EntryKind::File => '-',
        EntryKind::Dir => 'd',
        EntryKind::Symlink => 'l',
    });
    let special = [(0o4000, 's'), (0o2000, 's'), (0o1000, 't')];
    for (i, (bit, letter)) in special.iter().enumerate() {
        let shift = 6 - 3 * i;
        let rwx = (mode >> shift) & 0o7;
        out.push(if rwx & 4 != 0 { 'r' } else { '-' });
        out.push(if rwx & 2 != 0 { 'w' } else { '-' });
        let x = rwx & 1 != 0;
        out.push(match (mode & bit != 0, x) {
            (true, true) => *letter,
            (true, false) => letter.to_ascii_uppercase(),
            (false, true) => 'x',
            (false, false) => '-',
        });
    }
    out
}

fn entry_type(kind: EntryKind) -> &'static str {
    match kind {
        EntryKind::File => "file",
        EntryKind::Dir => "dir",
        EntryKind::Symlink => "symlink",
    }
}

/// One `ls`/`diff` line for an entry: type, mode, size in bytes, mtime
/// (UTC), then `store/path` (escaped), a link's target, a hard link's
/// first name.
fn entry_line(store: &str, e: &Entry) -> String {
    let mut line = format!(
        "{:<7} {} {:>12} {} {}",
        entry_type(e.kind),
        mode_string(e.kind, e.mode),
        e.size.map(|n| n.to_string()).unwrap_or_else(|| "-".into()),
        mtime(e.mtime_ns)
            .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_else(|| "-".into()),
        clean(&crate::browse::joined(store, &e.path))
    );
    if let Some(t) = e.target() {
        let _ = write!(line, " -> {}", clean(&t.shown()));
    }
    if let Some(first) = e.link_of() {
        let _ = write!(
            line,
            " (hard link of {})",
            clean(&crate::browse::joined(store, first))
        );
    }
    line
}

/// One line an entry, then the count and the bytes, written as they
/// come (a listing of a million entries is never one string).
pub fn ls(
    out: &mut dyn std::io::Write,
    listed: &[crate::browse::Listed<'_>],
) -> std::io::Result<()> {
    for l in listed {
        writeln!(out, "{}", entry_line(l.store, l.entry))?;
    }
    let bytes = listed
        .iter()
        .filter(|l| l.entry.link_of().is_none())
        .filter_map(|l| l.entry.size)
        .fold(0u64, u64::saturating_add);
    writeln!(
        out,
        "{}, {}",
        count(listed.len(), "entry", "entries"),
        human_bytes(bytes)
    )
}

/// Written line by line: a diff of a million changed files is never one
/// string.
pub fn diff(out: &mut dyn std::io::Write, d: &cairn_engine::diff::Diff) -> std::io::Result<()> {
    use cairn_engine::diff::Presence;
    writeln!(out, "diff {} -> {}", clean(&d.a), clean(&d.b))?;
    let mut totals = (0usize, 0usize, 0usize);
    for st in &d.stores {
        if st.is_empty() && st.count_failures.is_empty() {
            continue;
        }
        writeln!(
            out,
            "store {} ({}){}",
            clean(&st.name),
            clean(&st.kind),
            match st.presence {
                Presence::Both => "",
                Presence::Added => ": only in B",
                Presence::Removed => ": only in A",
            }
        )?;
        for e in &st.added {
            writeln!(out, "  + {}", entry_line(&st.name, e))?;
        }
        for e in &st.removed {
            writeln!(out, "  - {}", entry_line(&st.name, e))?;
        }
        for c in &st.changed {
            writeln!(
                out,
                "  M {} ({})",
                entry_line(&st.name, &c.b),
                c.what.join(", ")
            )?;
        }
        for c in &st.counts {
            let shown = |n: Option<u64>| n.map(|n| n.to_string()).unwrap_or_else(|| "-".into());
            let change = c.b.unwrap_or(0) as i128 - c.a.unwrap_or(0) as i128;
            writeln!(
                out,
                "  rows {}: {} -> {} ({change:+})",
                clean(&c.name),
                shown(c.a),
                shown(c.b)
            )?;
        }
        for f in &st.count_failures {
            writeln!(
                out,
                "  problem: rows of store {} in snapshot {} not counted: {}",
                clean(&st.name),
                clean(&f.id),
                clean(&f.detail)
            )?;
        }
        totals.0 += st.added.len();
        totals.1 += st.removed.len();
        totals.2 += st.changed.len();
    }
    writeln!(
        out,
        "{}",
        if d.is_empty() {
            "identical: no entry or row count differs".to_owned()
        } else {
            format!(
                "{} added, {} removed, {} changed",
                totals.0, totals.1, totals.2
            )
        }
    )?;
    Ok(())
}

/// `cairn import-legacy`.
pub fn import_legacy(r: &cairn_engine::legacy::ImportReport) -> String {
    use cairn_engine::legacy::Outcome;
    let mut s = format!(
        "import-legacy {}{}\n",
        clean(&r.dir.display().to_string()),
        if r.dry_run {
            " (dry run: each snapshot built and validated, then removed)"
        } else {
            ""
        }
    );
    let mut counts = std::collections::BTreeMap::<&str, usize>::new();
    for snap in &r.snapshots {
        let label = match snap.outcome {
            Outcome::WouldImport => "would import",
            Outcome::WouldImportDamaged => "DAMAGED",
            Outcome::Imported => "imported",
            Outcome::ImportedDamaged => "imported (DAMAGED)",
            Outcome::Damaged => "DAMAGED",
            Outcome::Exists => "exists",
            Outcome::NotASnapshot => "left alone",
        };
        *counts.entry(label).or_default() += 1;
        let stores: Vec<String> = snap
            .parts
            .iter()
            .filter_map(|p| {
                p.store
                    .as_ref()
                    .map(|st| format!("{} <- {}", clean(st), clean(&p.path.to_string_lossy())))
            })
            .collect();
        let _ = write!(s, "  {label:<18} {}", clean(&snap.name.to_string_lossy()));
        if !stores.is_empty() && !matches!(snap.outcome, Outcome::Exists | Outcome::NotASnapshot) {
            let _ = write!(
                s,
                "  {}  {}",
                stores.join(", "),
                cairn_engine::fsutil::human_bytes(snap.bytes)
            );
        }
        s.push('\n');
        for p in &snap.problems {
            let _ = writeln!(s, "      {}", clean(p));
        }
        for p in &snap.validation {
            let _ = writeln!(s, "      {}", clean(&p.to_string()));
        }
    }
    let summary: Vec<String> = counts.iter().map(|(k, n)| format!("{n} {k}")).collect();
    let damaged = r
        .snapshots
        .iter()
        .any(|x| matches!(x.outcome, Outcome::Damaged | Outcome::WouldImportDamaged));
    let _ = writeln!(
        s,
        "{}: {}{}{}",
        if r.dry_run { "dry run" } else { "imported" },
        if summary.is_empty() {
            "no snapshots found".to_owned()
        } else {
            summary.join(", ")
        },
        if damaged && !r.include_damaged {
            "; damaged ones are imported only with --include-damaged (tagged import-damaged)"
        } else {
            ""
        },
        if r.dry_run {
            " (run with --confirm to import)"
        } else {
            ""
        }
    );
    s
}

pub fn stats(space: &cairn_engine::space::Space) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<20} {:>12} {:>12} {:>12}",
        "ID", "APPARENT", "ON DISK", "UNIQUE"
    );
    for snap in &space.snapshots {
        let _ = writeln!(
            s,
            "{:<20} {:>12} {:>12} {:>12}",
            clean(&snap.id),
            snap.apparent.map(human_bytes).unwrap_or_else(|| "-".into()),
            human_bytes(snap.on_disk),
            human_bytes(snap.unique)
        );
    }
    let _ = writeln!(
        s,
        "{:<20} {:>12} {:>12}",
        "total",
        human_bytes(space.apparent),
        human_bytes(space.on_disk)
    );
    let _ = writeln!(
        s,
        "{}: {} as restored, {} on disk (files shared by hard link counted once; UNIQUE: freed by deleting that snapshot alone)",
        count(space.snapshots.len(), "snapshot", "snapshots"),
        human_bytes(space.apparent),
        human_bytes(space.on_disk)
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_escapes_control_characters_and_backslashes_only() {
        assert!(matches!(clean("plain name/ünïcode.db"), Cow::Borrowed(_)));
        assert_eq!(clean("x\nok: all fine"), "x\\nok: all fine");
        assert_eq!(clean("a\\nb"), "a\\\\nb", "a backslash is doubled");
        assert_eq!(
            clean("t\tr\re\u{1b}[2Jd\u{7f}"),
            "t\\tr\\re\\u{1b}[2Jd\\u{7f}"
        );
        assert_eq!(
            clean("\u{202e}txt.exe\u{2028}"),
            "\\u{202e}txt.exe\\u{2028}"
        );
        for s in ["x\nok", "\r", "\u{85}", "a\u{2029}b"] {
            assert!(
                !clean(s).chars().any(|c| c.is_control() || c == '\u{2029}'),
                "{s:?}"
            );
        }
    }
}
