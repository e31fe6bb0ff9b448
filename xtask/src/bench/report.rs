//! The bench report: a markdown table printed and written to
//! `docs/performance.md` (one section per fixture size, replaced on rerun).

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};

use super::runner::Sample;
use super::{
    Results, COPY_FLOOR, CP, CP_SYNC, DRILL, HASH_ALL, HASH_DB, HASH_SHARE_SECOND,
    HASH_SHARE_UNCHANGED, INTEGRITY, LINKS_SYNC, LIST, REFERENCE_SYNC, RESTORE, SNAP_FULL,
    SNAP_SECOND, SNAP_UNCHANGED, SQLITE3, VALIDATE,
};

const HEADER: &str = "# Performance

Measured by `cargo xtask bench` (method: issue 7; targets: issue 15). Each section
below is written by the bench for one fixture size and replaced when that
size is run again; text outside the `<!-- bench:… -->` markers is kept.

How to read the numbers: whole-process wall times of each command, warm
page cache (the fixture was written or read just before; caches are not
dropped), runs interleaved (each run times every command once, in order),
on a shared 2-core VM where other builds may run at the same time. Single
numbers are noisy: read the medians and the ratios to `cp -a` measured in
the same run. Peak RSS is the process's `ru_maxrss` from wait4(2).

Every timed command starts the same way: a scratch file as large as the
fixture plus a quarter is written and deleted next to the outputs, then
`sync`. On this VM, writing into guest memory never used before costs
several times writing into memory used and freed (`cp` of a 520 MiB file:
1.4–1.7 s into fresh memory, 0.15–0.18 s right after a file that size was
deleted), so without it the cost of a command depended on what the
command before it had freed.
";

/// `default_section`: the `default` fixture's section of the doc, when
/// this size's targets are the default's measured ratios with 20% slack
/// (issue 15: "`large`: within 1.2× of the default's").
pub fn render(res: &Results, default_section: Option<&str>) -> Result<String> {
    let mut t = String::new();
    let spec = res.spec;
    writeln!(t, "## `{}` fixture, {}", spec.name, now())?;
    writeln!(t)?;
    writeln!(
        t,
        "Machine: `{}`, {} cores, {} RAM, target dir on {}.",
        sh(&["uname", "-srm"]),
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        mem_total(),
        fs_type(),
    )?;
    writeln!(
        t,
        "Fixture: {} in {} files (SQLite db {} in WAL mode; {} segment files of {}; {} small files; registry JSON). Warm cache.",
        human_bytes(res.fixture_bytes),
        res.fixture_files,
        human_bytes(res.db_bytes),
        spec.segments,
        human_bytes(spec.segment_bytes),
        spec.small_files,
    )?;
    writeln!(
        t,
        "Command: `cargo xtask bench --size {} --runs {}` ({} interleaved runs).",
        spec.name, res.runs, res.runs
    )?;
    writeln!(t)?;
    writeln!(
        t,
        "| measure | median | min–max | × `cp -a` (median of per-run ratios) | × `cp -a + sync` | peak RSS (max) |"
    )?;
    writeln!(t, "| --- | ---: | ---: | ---: | ---: | ---: |")?;
    let cp = res.get(CP).unwrap_or(&[]);
    let cp_sync = res.get(CP_SYNC).unwrap_or(&[]);
    for (label, samples) in &res.measures {
        let secs: Vec<f64> = samples.iter().map(|s| s.secs).collect();
        let ratio = ratio_to(samples, cp);
        let rss = samples.iter().map(|s| s.rss_kib).max().unwrap_or(0);
        let durable_ratio = if cp_sync.is_empty() {
            "–".to_owned()
        } else {
            format!("{:.2}", ratio_to(samples, cp_sync))
        };
        writeln!(
            t,
            "| {label} | {:.2} s | {:.2}–{:.2} s | {} | {durable_ratio} | {} |",
            median(&secs),
            min(&secs),
            max(&secs),
            if *label == CP {
                "1.00".into()
            } else {
                format!("{ratio:.2}")
            },
            human_bytes(rss * 1024),
        )?;
    }
    let added: Vec<f64> = res.bytes_added.iter().map(|&b| b as f64).collect();
    writeln!(t)?;
    writeln!(
        t,
        "Bytes added to the repository by the second snapshot (new inodes, hard links once): median {} (min {}, max {}); the database is {}.",
        human_bytes(median(&added) as u64),
        human_bytes(min(&added) as u64),
        human_bytes(max(&added) as u64),
        human_bytes(res.db_bytes),
    )?;
    super::offsite::render(res, &mut t)?;
    if !res.skipped.is_empty() {
        writeln!(t)?;
        writeln!(t, "Not measured: {}.", res.skipped.join("; "))?;
    }

    writeln!(t)?;
    match default_section.and_then(section_date) {
        Some(date) => writeln!(
            t,
            "Targets from issue 15 (ratios from this run). At `large` a ratio must be within 1.2× of the `default` section's ({date}) and within the default's own target; a row with no default ratio keeps the default's target:"
        )?,
        None => writeln!(
            t,
            "Targets from issue 15 (ratios from this run; they apply to the default fixture, `large` must be within 1.2× of the default's, other sizes shown for trend):"
        )?,
    }
    writeln!(t)?;
    writeln!(
        t,
        "| measure | measured | floor (this run) | target | met | target above its floor |"
    )?;
    writeln!(t, "| --- | ---: | ---: | ---: | :---: | :---: |")?;
    let mut target = |name: &str, measured: Option<f64>, floor: Option<f64>, limit: f64| {
        let default_ratio = default_section.and_then(|d| measured_in(d, name));
        let (limit, why) = match default_ratio {
            Some(d) if 1.2 * d < limit => (1.2 * d, format!(" (1.2 × {d:.2})")),
            _ => (limit, String::new()),
        };
        let shown = |v: Option<f64>| match v {
            Some(v) if v.is_finite() => format!("{v:.2}"),
            _ => "–".to_owned(),
        };
        let within = |v: Option<f64>| match v {
            Some(v) if v.is_finite() && v <= limit => "yes",
            Some(v) if v.is_finite() => "**no**",
            _ => "n/a",
        };
        let (met, reachable) = (within(measured), within(floor));
        writeln!(
            t,
            "| {name} | {} | {} | ≤ {limit:.2}{why} | {met} | {reachable} |",
            shown(measured),
            shown(floor)
        )
    };
    let full = res.get(SNAP_FULL).unwrap_or(&[]);
    let reference = res.get(REFERENCE_SYNC).unwrap_or(&[]);
    let of = |label: &str, base: &[Sample]| {
        let a = res.get(label).unwrap_or(&[]);
        (!a.is_empty() && !base.is_empty()).then(|| ratio_to(a, base))
    };
    // Per run: the wall-clock parts added up, or the CPU parts added up
    // and spread over every core, whichever is more; then over the same
    // run's base.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    // A CPU part not measured (no sqlite3 on PATH) counts nothing: the
    // floor is then lower, still a floor.
    let floor_of = |floor: Floor<'_>, base: &[Sample]| {
        let runs = floor
            .wall
            .iter()
            .map(|(label, _)| res.get(label).map_or(0, <[Sample]>::len))
            .min()
            .unwrap_or(0);
        let sum = |parts: &[(&str, f64)], i: usize, of: fn(&Sample) -> f64| -> f64 {
            parts
                .iter()
                .map(|(label, times)| res.get(label).and_then(|v| v.get(i)).map_or(0.0, of) * times)
                .sum()
        };
        let longest = |parts: &[(&str, f64)], i: usize| -> f64 {
            parts
                .iter()
                .map(|(label, times)| {
                    res.get(label)
                        .and_then(|v| v.get(i))
                        .map_or(0.0, |s| s.secs)
                        * times
                })
                .fold(0.0, f64::max)
        };
        let floors: Vec<Sample> = (0..runs)
            .map(|i| Sample {
                secs: (sum(floor.wall, i, |s| s.secs) + longest(floor.side_by_side, i))
                    .max(sum(floor.cpu, i, |s| s.cpu_secs) / cores)
                    + sum(floor.then, i, |s| s.secs),
                rss_kib: 0,
                cpu_secs: 0.0,
            })
            .collect();
        (!floors.is_empty() && !base.is_empty()).then(|| ratio_to(&floors, base))
    };
    let wall = |wall| Floor {
        wall,
        side_by_side: &[],
        cpu: &[],
        then: &[],
    };
    // The copy hashed as it passes, the re-read's pass and the
    // database's check cost at least what their peers spend: on this
    // many cores, no less than that CPU time shared out. The copy is the
    // copy floor's read + hash + write, not `cp -a`'s: `cp -a` takes
    // other kernel paths, whose CPU time swings with the file system's
    // state, up to more than a whole restore here, when many inodes were
    // just freed.
    let copied_hashed_twice_and_checked = Floor {
        wall: &[(COPY_FLOOR, 1.0)],
        side_by_side: &[],
        cpu: &[(COPY_FLOOR, 1.0), (HASH_ALL, 1.0), (INTEGRITY, 1.0)],
        then: &[],
    };
    // A restore verifies each file by the hash taken as it is copied (no
    // re-read), checks the staged database before anything live is
    // touched, and, once every store is swapped in, checks the database
    // where it now lives (the contract's check after the swap).
    let staged_checked_swapped_checked = Floor {
        wall: &[(COPY_FLOOR, 1.0)],
        side_by_side: &[],
        cpu: &[(COPY_FLOOR, 1.0), (INTEGRITY, 1.0)],
        then: &[(INTEGRITY, 1.0)],
    };
    let hashed_and_checked = Floor {
        wall: &[(HASH_ALL, 1.0)],
        side_by_side: &[],
        cpu: &[(HASH_ALL, 1.0), (INTEGRITY, 1.0)],
        then: &[],
    };
    // The copy and its hash on two cores at once, then the re-read; the
    // unchanged files linked, and the rotation's share of them re-read.
    let copied_while_hashed_then_reread = Floor {
        wall: &[(HASH_DB, 1.0), (LINKS_SYNC, 1.0), (HASH_SHARE_SECOND, 1.0)],
        side_by_side: &[(SQLITE3, 1.0), (HASH_DB, 1.0)],
        cpu: &[],
        then: &[],
    };
    target(
        "second snapshot, nothing changed / full",
        of(SNAP_UNCHANGED, full),
        floor_of(
            wall(&[(LINKS_SYNC, 1.0), (HASH_SHARE_UNCHANGED, 1.0)]),
            full,
        ),
        0.25,
    )?;
    target(
        "second snapshot after one small commit to the db / full",
        of(SNAP_SECOND, full),
        floor_of(copied_while_hashed_then_reread, full),
        0.40,
    )?;
    target(
        "full snapshot / (`cp -a` + `sync`)",
        of(SNAP_FULL, cp_sync),
        floor_of(copied_hashed_twice_and_checked, cp_sync),
        1.0,
    )?;
    target(
        "`restore --to` / (`cp -a` + `sync`)",
        of(RESTORE, cp_sync),
        floor_of(staged_checked_swapped_checked, cp_sync),
        1.0,
    )?;
    target(
        "deep validate / `cp -a`",
        of(VALIDATE, cp),
        floor_of(hashed_and_checked, cp),
        0.30,
    )?;
    target(
        "full snapshot / (reference algorithm + `sync`)",
        of(SNAP_FULL, reference),
        floor_of(copied_hashed_twice_and_checked, reference),
        0.7,
    )?;
    let rss = res
        .measures
        .iter()
        .filter(|(l, _)| l.starts_with("cairn"))
        .flat_map(|(l, v)| v.iter().map(move |s| (s.rss_kib, *l)))
        .max();
    let rss_limit_mib: u64 = if spec.name == "huge" { 256 } else { 64 };
    if let Some((kib, label)) = rss {
        writeln!(
            t,
            "| peak RSS of any cairn command | {} ({label}) | – | ≤ {rss_limit_mib} MiB | {} | n/a |",
            human_bytes(kib * 1024),
            if kib <= rss_limit_mib * 1024 {
                "yes"
            } else {
                "**no**"
            }
        )?;
    }
    let r = ratio_to(res.get(DRILL).unwrap_or(&[]), cp);
    writeln!(
        t,
        "| `drill` / `cp -a` (for reference) | {r:.2} | – | – | n/a | n/a |"
    )?;
    let limit = res.db_bytes as f64 * 1.01;
    let m = median(&added);
    writeln!(
        t,
        "| bytes added by the one-commit snapshot (issue 7: ≤ db size + 1%) | {} | – | {} | {} | n/a |",
        human_bytes(m as u64),
        human_bytes(limit as u64),
        if m <= limit { "yes" } else { "**no**" }
    )?;
    let list: Vec<f64> = res
        .get(LIST)
        .unwrap_or(&[])
        .iter()
        .map(|s| s.secs)
        .collect();
    let m = median(&list);
    writeln!(
        t,
        "| `list` with 1,000 snapshots (issue 7) | {m:.2} s | – | 1 s | {} | n/a |",
        if m <= 1.0 { "yes" } else { "**no**" }
    )?;
    writeln!(t)?;
    writeln!(t, "{FLOORS}")?;
    Ok(t)
}

/// A floor: peers' wall times added up (plus the longest of those that
/// can run side by side), or their CPU times added up and shared out over
/// the cores, whichever is more; then the wall times of what can only
/// start once all that is done (each `(label, times)`).
#[derive(Clone, Copy)]
struct Floor<'a> {
    wall: &'a [(&'a str, f64)],
    side_by_side: &'a [(&'a str, f64)],
    cpu: &'a [(&'a str, f64)],
    then: &'a [(&'a str, f64)],
}

/// How the floor column is made (`floor.rs`), printed under every table.
const FLOORS: &str = "Floors: the least each measure can cost while Cairn keeps \
its guarantees, from peers timed in this run, over the same base. Nothing \
changed: `cp -al` + `sync` (a snapshot is a plain tree, so an unchanged \
file still costs a durable hard link), then one SHA-256 pass on all cores \
over the files of the rotation's share that snapshot re-read \
(`verify_rotation`: every snapshot re-reads a share of the copies it \
reuses). One commit: `sqlite3 .backup \
--async` (the online copy, unsynced) and one SHA-256 pass over the \
database on one core side by side, whichever is longer (the copy hashed \
as it is written, on the other core), then one more pass (the copy \
re-read before publishing; one file is one hash), then `cp -al` + `sync` \
and the pass over that snapshot's rotation share, as above. Full \
snapshot: the copy floor (every byte read, hashed and written once, on \
all cores); or, when more, the CPU time of the copy floor, of one more \
SHA-256 pass (the re-read) and of one `PRAGMA integrity_check` of the \
database's copy shared out over the cores; no sync counted. `restore \
--to`: the copy floor, or the CPU of the copy floor and one integrity \
check (the staged copy's) shared out, then one more integrity check (the \
database's, after the swap, as the contract says); no sync counted. Deep validate: one pass, or \
the CPU of one pass and one integrity check shared out. Each peer is a whole process, so on the `small` fixture start-up \
is much of a floor. A target above its floor that Cairn misses is Cairn's \
own cost; a floor above its target means the target cannot be met on this \
machine without dropping the guarantee it rests on.";

/// The text of `size`'s section in the doc, between its markers.
pub fn section<'a>(doc: &'a str, size: &str) -> Option<&'a str> {
    let start = format!("<!-- bench:{size} -->");
    let end = format!("<!-- /bench:{size} -->");
    let a = doc.find(&start)? + start.len();
    let b = a + doc[a..].find(&end)?;
    Some(&doc[a..b])
}

/// The date in a section's heading (`## \`default\` fixture, DATE`).
fn section_date(section: &str) -> Option<&str> {
    section
        .lines()
        .find_map(|l| l.strip_prefix("## "))
        .and_then(|h| h.split_once(", "))
        .map(|(_, date)| date.trim())
}

/// The measured ratio of the target row `name` in a section's targets
/// table (`| name | measured | …`).
fn measured_in(section: &str, name: &str) -> Option<f64> {
    let row = format!("| {name} | ");
    section
        .lines()
        .find_map(|l| l.strip_prefix(&row))
        .and_then(|rest| rest.split(" |").next())
        .and_then(|cell| cell.trim().parse().ok())
}

/// Replaces (or appends) this size's section in the doc.
pub fn write_doc(path: &Path, size: &str, section: &str) -> Result<()> {
    let existing = match std::fs::read_to_string(path) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => HEADER.to_string(),
        Err(e) => return Err(e).with_context(|| format!("failed to read {}", path.display())),
    };
    let start = format!("<!-- bench:{size} -->");
    let end = format!("<!-- /bench:{size} -->");
    let block = format!("{start}\n{section}{end}\n");
    let text = match (existing.find(&start), existing.find(&end)) {
        (Some(a), Some(b)) if b > a => {
            let after = existing[b + end.len()..].trim_start_matches('\n');
            format!(
                "{}{block}{}{after}",
                &existing[..a],
                if after.is_empty() { "" } else { "\n" }
            )
        }
        _ => format!("{}\n{block}", existing.trim_end()),
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("failed to create {}", dir.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("failed to write {}", path.display()))
}

/// Median of the per-run ratios `a[i] / b[i]`.
fn ratio_to(a: &[Sample], b: &[Sample]) -> f64 {
    let r: Vec<f64> = a.iter().zip(b).map(|(x, y)| x.secs / y.secs).collect();
    median(&r)
}

pub fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

fn min(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}

fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::NEG_INFINITY, f64::max)
}

pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn sh(argv: &[&str]) -> String {
    Command::new(argv[0])
        .args(&argv[1..])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

fn now() -> String {
    sh(&["date", "-u", "+%Y-%m-%d %H:%M UTC"])
}

fn mem_total() -> String {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map(|kib| human_bytes(kib * 1024))
        .unwrap_or_else(|| "unknown".into())
}

/// The target dir's filesystem type (findmnt names ext4; `stat -f` says
/// ext2/ext3 for all three).
fn fs_type() -> String {
    let dir = crate::util::target_dir().to_string_lossy().into_owned();
    match sh(&["findmnt", "-n", "-o", "FSTYPE", "-T", &dir]) {
        s if s != "unknown" && !s.is_empty() => s,
        _ => sh(&["stat", "-f", "-c", "%T", &dir]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "# Performance\n\n<!-- bench:default -->\n\
## `default` fixture, 2026-12-06 22:54 UTC\n\n\
| measure | measured | floor (this run) | target | met | target above its floor |\n\
| --- | ---: | ---: | ---: | :---: | :---: |\n\
| second snapshot, nothing changed / full | 0.08 | 0.02 | ≤ 0.25 | yes | yes |\n\
| deep validate / `cp -a` | – | 0.43 | ≤ 0.30 | n/a | **no** |\n\
<!-- /bench:default -->\n\n<!-- bench:large -->\n\
| second snapshot, nothing changed / full | 0.24 | 0.08 | ≤ 0.25 | yes | yes |\n\
<!-- /bench:large -->\n";

    #[test]
    fn the_default_sections_ratios_and_date_are_read_back_and_no_other_sections() {
        let default = section(DOC, "default").unwrap();
        assert_eq!(section_date(default), Some("2026-12-06 22:54 UTC"));
        assert_eq!(
            measured_in(default, "second snapshot, nothing changed / full"),
            Some(0.08)
        );
        // Not measured, or not in the table: no ratio to hold `large` to.
        assert_eq!(measured_in(default, "deep validate / `cp -a`"), None);
        assert_eq!(
            measured_in(default, "full snapshot / (`cp -a` + `sync`)"),
            None
        );
        assert_eq!(section(DOC, "huge"), None);
    }
}
