//! `cargo xtask bench [--size small|default|large|huge] [--runs N]`: times
//! cairn against the copy floor (`cp -a`, and `cp -a` + `sync`), the
//! reference algorithm (+ `sync`) and its peers on a cached,
//! deterministic fixture, interleaved run by run, as whole processes.

mod fixture;
pub mod floor;
mod offsite;
mod reference;
mod report;
mod rotation;
mod runner;
mod trash;

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{anyhow, Context, Result};

use crate::util::{self, Args};
use runner::{Runner, Sample};

/// Everything one bench invocation measured.
pub struct Results {
    pub spec: fixture::Spec,
    pub runs: usize,
    pub fixture_bytes: u64,
    pub fixture_files: u64,
    pub db_bytes: u64,
    /// (label, one sample per run), in the order measured.
    pub measures: Vec<(&'static str, Vec<Sample>)>,
    pub bytes_added: Vec<u64>,
    /// What the S3 server counted for each run's push.
    pub offsite: Vec<offsite::PushCount>,
    pub skipped: Vec<String>,
}

impl Results {
    fn push(&mut self, label: &'static str, s: Sample) {
        match self.measures.iter_mut().find(|(l, _)| *l == label) {
            Some((_, v)) => v.push(s),
            None => self.measures.push((label, vec![s])),
        }
    }

    pub fn get(&self, label: &str) -> Option<&[Sample]> {
        self.measures
            .iter()
            .find(|(l, _)| *l == label)
            .map(|(_, v)| v.as_slice())
    }
}

pub const CP: &str = "cp -a (the floor)";
pub const CP_SYNC: &str = "cp -a + sync (durable floor)";
pub const SQLITE3: &str = "sqlite3 .backup --async (db only)";
pub const INTEGRITY: &str = "sqlite3 PRAGMA integrity_check (the db's copy)";
pub const HASH_ALL: &str = "SHA-256 of every byte, all cores (hashing floor)";
pub const HASH_DB: &str = "SHA-256 of the db, one core";
pub const COPY_FLOOR: &str = "read + SHA-256 + write of every byte, all cores (copy floor)";
pub const LINKS_SYNC: &str = "cp -al + sync (links floor)";
pub const HASH_SHARE_UNCHANGED: &str =
    "SHA-256 of the rotation's share, all cores (nothing changed)";
pub const HASH_SHARE_SECOND: &str = "SHA-256 of the rotation's share, all cores (one commit)";
pub const SNAP_FULL: &str = "cairn snapshot (full)";
pub const REFERENCE_SYNC: &str = "reference algorithm + sync";
pub const SNAP_UNCHANGED: &str = "cairn snapshot (second, nothing changed)";
pub const SNAP_SECOND: &str = "cairn snapshot (second, one small db commit)";
pub const VALIDATE: &str = "cairn validate (deep)";
pub const RESTORE: &str = "cairn restore --to";
pub const LS: &str = "cairn --json ls (every entry)";
pub const SHOW: &str = "cairn --json show";
pub const DRILL: &str = "cairn drill";
pub const LIST: &str = "cairn list (1,000 snapshots)";
pub const RESTIC: &str = "restic backup";
pub const BORG: &str = "borg create";

pub fn main(args: &[String]) -> Result<ExitCode> {
    if let Some(done) = offsite::child(args) {
        return done;
    }
    let mut args = Args::new(args);
    let (size, runs) = match (args.value("--size"), args.value("--runs")) {
        (Ok(size), Ok(runs)) => (size.unwrap_or_else(|| "default".into()), runs),
        (Err(e), _) | (_, Err(e)) => return Ok(util::usage_error(e)),
    };
    // Another build of cairn (an older commit's, say) measured on the same
    // fixture: its numbers are printed, docs/performance.md is left alone.
    let other_bin = match args.value("--cairn") {
        Ok(bin) => bin.map(PathBuf::from),
        Err(e) => return Ok(util::usage_error(e)),
    };
    let Some(spec) = fixture::Spec::by_name(&size) else {
        return Ok(util::usage_error(format!(
            "--size wants small, default, large or huge, not {size:?}"
        )));
    };
    let runs = match runs.as_deref().map(str::parse::<usize>) {
        None => 3,
        Some(Ok(n)) if n > 0 => n,
        _ => return Ok(util::usage_error("--runs wants a positive whole number")),
    };
    if let Err(e) = args.finish() {
        return Ok(util::usage_error(e));
    }

    let bin = match &other_bin {
        Some(bin) => bin.clone(),
        None => util::build_cairn(true)?,
    };
    let target = util::target_dir();
    let fx = fixture::ensure(&target.join("bench-fixture"), spec)?;
    let list_config = list_repo(&bin, &target.join("bench-fixture/list-1000"))?;
    let trash = trash::Trash::open(&target.join("bench-work"))?;
    let work = target.join("bench-work").join(spec.name);
    trash.fresh_dir(&work)?;
    let config = work.join("cairn.toml");
    write_config(&config, &fx, &work.join("repo"))?;

    let (fixture_bytes, fixture_files) = fx.top_dirs().iter().try_fold((0, 0), |(b, f), d| {
        tree_size(d).map(|(b2, f2)| (b + b2, f + f2))
    })?;
    let db_bytes = std::fs::metadata(fx.db())
        .with_context(|| format!("failed to stat {}", fx.db().display()))?
        .len();
    let mut res = Results {
        spec,
        runs,
        fixture_bytes,
        fixture_files,
        db_bytes,
        measures: Vec::new(),
        bytes_added: Vec::new(),
        offsite: Vec::new(),
        skipped: Vec::new(),
    };
    // Covers the most any measured command writes (a full copy of the
    // fixture), with room to spare.
    let runner = Runner::leveled(&work, fixture_bytes + fixture_bytes / 4);
    let sqlite3 = util::on_path("sqlite3");
    let restic = util::on_path("restic");
    let borg = util::on_path("borg");
    let python3 = util::on_path("python3");
    for (name, found) in [
        ("sqlite3", &sqlite3),
        ("python3 (the reference algorithm)", &python3),
        ("restic", &restic),
        ("borg", &borg),
    ] {
        if found.is_none() {
            res.skipped
                .push(format!("{name}: not on PATH, not measured"));
        }
    }
    println!(
        "bench: size {}, {} runs, {} in {} files (db {}), warm cache",
        spec.name,
        runs,
        report::human_bytes(fixture_bytes),
        fixture_files,
        report::human_bytes(db_bytes)
    );

    let mut offsite = offsite::Offsite::start(&work, trash.clone())?;

    // Nothing deleted in the window before the first timed command.
    trash::settle(&trash)?;
    let mut last_full = None;
    for run in 1..=runs {
        let mut line = format!("run {run}/{runs}:");
        let mut note = |label: &str, s: &Sample| {
            line.push_str(&format!(" {label} {:.2}s;", s.secs));
        };

        let cp_dest = work.join("cp-dest");
        trash.fresh_dir(&cp_dest)?;
        let mut cmd = Command::new("cp");
        cmd.arg("-a").args(fx.top_dirs()).arg(&cp_dest);
        let s = runner.measure("cp -a", cmd, None)?;
        note("cp", &s);
        res.push(CP, s);
        trash.discard(&cp_dest)?;

        let copy_dest = work.join("copy-floor-dest");
        trash.fresh_dir(&copy_dest)?;
        let s = runner.measure(
            "copy-floor",
            floor::copy_command(&fx.top_dirs(), &copy_dest)?,
            None,
        )?;
        note("copy", &s);
        res.push(COPY_FLOOR, s);
        trash.discard(&copy_dest)?;

        // Cairn syncs what it writes before it calls a snapshot done; cp -a
        // leaves it in the page cache. This is the floor with the same
        // durability.
        trash.fresh_dir(&cp_dest)?;
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg("cp -a \"$@\" && sync")
            .arg("cp-sync")
            .args(fx.top_dirs())
            .arg(&cp_dest);
        let s = runner.measure("cp -a + sync", cmd, None)?;
        note("cp+sync", &s);
        res.push(CP_SYNC, s);

        // Links to the copy just made, not to the fixture: a link moves
        // its target's ctime, and the snapshots below must find the
        // fixture's files as the full snapshot recorded them.
        let links_dest = work.join("links-dest");
        trash.fresh_dir(&links_dest)?;
        let copies: Vec<PathBuf> = fx
            .top_dirs()
            .iter()
            .filter_map(|d| d.file_name().map(|n| cp_dest.join(n)))
            .collect();
        let s = runner.measure(
            LINKS_SYNC,
            floor::link_farm_command(&copies, &links_dest),
            None,
        )?;
        note("cp-al+sync", &s);
        res.push(LINKS_SYNC, s);
        trash.discard(&links_dest)?;
        trash.discard(&cp_dest)?;

        if let Some(sqlite3) = &sqlite3 {
            let dest = work.join("sqlite3-backup.db");
            trash.discard(&dest)?;
            let mut cmd = Command::new(sqlite3);
            cmd.arg(fx.db())
                // --async: no journal and no fsync on the copy, as Cairn's
                // own copy (which is synced once, with the whole snapshot).
                .arg(format!(".backup --async '{}'", dest.display()));
            let s = runner.measure("sqlite3 .backup", cmd, None)?;
            note("sqlite3", &s);
            res.push(SQLITE3, s);
            // The check the contract runs on every copy, on that copy,
            // opened as Cairn opens it (immutable: nothing written).
            let mut cmd = Command::new(sqlite3);
            cmd.arg(format!("file:{}?immutable=1", dest.display()))
                .arg("PRAGMA integrity_check");
            let s = runner.measure("sqlite3 integrity_check", cmd, None)?;
            note("integrity", &s);
            res.push(INTEGRITY, s);
            trash.discard(&dest)?;
        }

        // The floors (see floor.rs): the guarantees' own cost, nothing else.
        let s = runner.measure(HASH_ALL, floor::hash_command(&fx.top_dirs())?, None)?;
        note("hash", &s);
        res.push(HASH_ALL, s);
        let s = runner.measure(HASH_DB, floor::hash_command(&[fx.db()])?, None)?;
        note("hash-db", &s);
        res.push(HASH_DB, s);

        // What the system Cairn replaces does, made as durable.
        let ref_dest = work.join("reference-dest");
        trash.fresh_dir(&ref_dest)?;
        if let Some(cmd) = reference::command(&work, &fx, &ref_dest)? {
            let s = runner.measure("reference + sync", cmd, None)?;
            note("reference+sync", &s);
            res.push(REFERENCE_SYNC, s);
        }
        trash.discard(&ref_dest)?;

        let repo = work.join("repo");
        trash.discard(&repo)?;
        let out = work.join("out.json");
        let s = runner.measure(
            "cairn snapshot",
            cairn(&bin, &config, &["snapshot", "--json"]),
            Some(&out),
        )?;
        let first = json_id(&out)?;
        note("snapshot", &s);
        res.push(SNAP_FULL, s);

        // Nothing written since: the nightly snapshot of a quiet service.
        let s = runner.measure(
            "cairn snapshot (unchanged)",
            cairn(&bin, &config, &["snapshot", "--json"]),
            Some(&out),
        )?;
        let unchanged = json_id(&out)?;
        note("unchanged", &s);
        res.push(SNAP_UNCHANGED, s);
        let s = measure_share(&runner, &work, &repo, &unchanged, &first)?;
        note("share-unchanged", &s);
        res.push(HASH_SHARE_UNCHANGED, s);

        fixture::commit_one(&fx.db(), run as u64)?;
        let s = runner.measure(
            "cairn snapshot (second)",
            cairn(&bin, &config, &["snapshot", "--json"]),
            Some(&out),
        )?;
        let second = json_id(&out)?;
        note("second", &s);
        res.push(SNAP_SECOND, s);
        let s = measure_share(&runner, &work, &repo, &second, &unchanged)?;
        note("share-second", &s);
        res.push(HASH_SHARE_SECOND, s);
        res.bytes_added
            .push(bytes_added(&repo.join("snapshots"), &second)?);

        let s = runner.measure(
            "cairn validate",
            cairn(&bin, &config, &["validate", &first, "--json"]),
            Some(&out),
        )?;
        note("validate", &s);
        res.push(VALIDATE, s);

        // The reports that list every entry: their memory, at any size.
        let s = runner.measure(
            LS,
            cairn(&bin, &config, &["--json", "ls", &first]),
            Some(&out),
        )?;
        note("ls", &s);
        res.push(LS, s);
        let s = runner.measure(
            SHOW,
            cairn(&bin, &config, &["--json", "show", &first]),
            Some(&out),
        )?;
        note("show", &s);
        res.push(SHOW, s);

        let dest = work.join("restore-dest");
        trash.discard(&dest)?;
        let to = util::path_str(&dest)?;
        let s = runner.measure(
            "cairn restore --to",
            cairn(&bin, &config, &["restore", &first, "--to", to, "--json"]),
            Some(&out),
        )?;
        note("restore", &s);
        res.push(RESTORE, s);
        trash.discard(&dest)?;

        let (push, put, pull) = offsite.run(&mut res, &runner, &bin, &fx, &first, run)?;
        note("push", &push);
        note("put", &put);
        note("pull", &pull);

        let s = runner.measure(
            "cairn list",
            cairn(&bin, &list_config, &["list"]),
            Some(&out),
        )?;
        note("list", &s);
        res.push(LIST, s);

        if let Some(restic) = &restic {
            let rrepo = work.join("restic-repo");
            trash.discard(&rrepo)?;
            let mut init = Command::new(restic);
            init.args(["init", "--repo"])
                .arg(&rrepo)
                .env("RESTIC_PASSWORD", "bench");
            Runner::plain().measure("restic init", init, None)?;
            let mut cmd = Command::new(restic);
            cmd.args(["backup", "--quiet", "--repo"])
                .arg(&rrepo)
                .args(fx.top_dirs())
                .env("RESTIC_PASSWORD", "bench");
            let s = runner.measure("restic backup", cmd, None)?;
            note("restic", &s);
            res.push(RESTIC, s);
            trash.discard(&rrepo)?;
        }
        if let Some(borg) = &borg {
            let brepo = work.join("borg-repo");
            trash.discard(&brepo)?;
            let mut init = Command::new(borg);
            init.args(["init", "--encryption=none"])
                .arg(&brepo)
                .env("BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK", "yes");
            Runner::plain().measure("borg init", init, None)?;
            let mut cmd = Command::new(borg);
            cmd.arg("create")
                .arg(format!("{}::bench", brepo.display()))
                .args(fx.top_dirs())
                .env("BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK", "yes");
            let s = runner.measure("borg create", cmd, None)?;
            note("borg", &s);
            res.push(BORG, s);
            trash.discard(&brepo)?;
        }
        println!("{line}");
        last_full = Some(first);
    }

    // The drills last, all of them: each ends by deleting the copy it
    // restored, which would slow every later run's file creation
    // (trash.rs).
    if let Some(first) = &last_full {
        let out = work.join("out.json");
        let scratch = work.join("drill-scratch");
        let mut line = String::from("drills:");
        for _ in 0..runs {
            trash.fresh_dir(&scratch)?;
            let sc = util::path_str(&scratch)?;
            let s = runner.measure(
                "cairn drill",
                cairn(&bin, &config, &["drill", first, "--scratch", sc, "--json"]),
                Some(&out),
            )?;
            line.push_str(&format!(" {:.2}s;", s.secs));
            res.push(DRILL, s);
        }
        println!("{line}");
    }
    trash.discard(&work.join("repo"))?;
    trash.empty()?;

    let doc = util::workspace_root().join("docs/performance.md");
    // `large` is held to the `default` section's ratios (issue 15).
    let default_section = match spec.name {
        "large" => std::fs::read_to_string(&doc)
            .ok()
            .and_then(|text| report::section(&text, "default").map(str::to_owned)),
        _ => None,
    };
    let text = report::render(&res, default_section.as_deref())?;
    println!("\n{text}");
    if other_bin.is_some() {
        println!("(--cairn given: docs/performance.md left as it was)");
        return Ok(ExitCode::SUCCESS);
    }
    report::write_doc(&doc, spec.name, &text)?;
    println!("wrote {}", doc.display());
    Ok(ExitCode::SUCCESS)
}

fn cairn(bin: &Path, config: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(bin);
    cmd.arg("--config").arg(config).arg("--quiet").args(args);
    cmd
}

fn write_config(path: &Path, fx: &fixture::Fixture, repo: &Path) -> Result<()> {
    let q = |p: &Path| serde_json::to_string(&p.to_string_lossy()).unwrap_or_default();
    let text = format!(
        "# written by `cargo xtask bench`\nrepository = {}\n\n\
         [[store]]\nname = \"db\"\nkind = \"sqlite\"\npath = {}\n\n\
         [[store]]\nname = \"registry\"\nkind = \"registry-json\"\npath = {}\n\n\
         [[store]]\nname = \"chroma\"\nkind = \"chroma-dir\"\npath = {}\nlock_file = {}\n",
        q(repo),
        q(&fx.db()),
        q(&fx.registry()),
        q(&fx.chroma()),
        q(&fx.lock()),
    );
    std::fs::write(path, text).with_context(|| format!("failed to write {}", path.display()))
}

/// A tiny repository with 1,000 snapshots (made with `snapshot --at`),
/// cached; returns its config.
fn list_repo(bin: &Path, dir: &Path) -> Result<PathBuf> {
    let config = dir.join("cairn.toml");
    let marker = dir.join(".complete");
    if marker.exists() {
        return Ok(config);
    }
    if dir.exists() {
        std::fs::remove_dir_all(dir)
            .with_context(|| format!("failed to remove {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir).with_context(|| format!("failed to create {}", dir.display()))?;
    std::fs::write(dir.join("registry.json"), br#"{"projects": []}"#)
        .context("failed to write the list fixture's registry")?;
    std::fs::write(
        &config,
        "repository = \"backups\"\n\n[[store]]\nname = \"registry\"\nkind = \"registry-json\"\npath = \"registry.json\"\n",
    )
    .with_context(|| format!("failed to write {}", config.display()))?;
    println!(
        "fixture: making 1,000 snapshots in {} (once)",
        dir.display()
    );
    for i in 0..1000u32 {
        // Every 6 hours from 2024-01-01.
        let (day, hour) = (i / 4, (i % 4) * 6);
        let at = date_at(day, hour);
        let mut cmd = cairn(bin, &config, &["snapshot", "--at", &at]);
        cmd.current_dir(dir);
        Runner::plain().measure("cairn snapshot --at", cmd, None)?;
    }
    std::fs::write(&marker, b"1000\n").context("failed to mark the list fixture complete")?;
    Ok(config)
}

/// `2024-01-01T00:00:00Z` plus `day` days and `hour` hours, as RFC 3339.
fn date_at(day: u32, hour: u32) -> String {
    const DAYS: [u32; 12] = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]; // 2024
    let (mut month, mut d) = (0usize, day);
    let mut year = 2024;
    loop {
        let len = if year == 2024 {
            DAYS[month]
        } else if month == 1 {
            28
        } else {
            DAYS[month]
        };
        if d < len {
            break;
        }
        d -= len;
        month += 1;
        if month == 12 {
            month = 0;
            year += 1;
        }
    }
    format!("{year}-{:02}-{:02}T{hour:02}:00:00Z", month + 1, d + 1)
}

fn json_id(path: &Path) -> Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("failed to read {}", path.display()))?;
    let doc: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    if doc["validated"] == serde_json::Value::Bool(false) {
        anyhow::bail!(
            "the snapshot did not validate: {}",
            doc["validation_errors"]
        );
    }
    doc["id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("no id in {}", path.display()))
}

/// Times the hashing of the copies snapshot `id` reused from `parent` and
/// re-read as its rotation's share: a floor's part (`rotation.rs`).
fn measure_share(
    runner: &Runner,
    work: &Path,
    repo: &Path,
    id: &str,
    parent: &str,
) -> Result<Sample> {
    let files = rotation::reused_share(&repo.join("snapshots"), id, parent)?;
    let list = work.join("rotation-share.list");
    floor::write_file_list(&list, &files)?;
    let s = runner.measure(
        "hash-floor (rotation share)",
        floor::hash_listed_command(&list)?,
        None,
    )?;
    remove(&list)?;
    Ok(s)
}

/// Bytes of files in `snapshots/<id>` whose inodes no other snapshot has
/// (hard links counted once): what the snapshot added to the repository.
fn bytes_added(snapshots: &Path, id: &str) -> Result<u64> {
    let mut older = HashSet::new();
    for entry in std::fs::read_dir(snapshots)
        .with_context(|| format!("failed to list {}", snapshots.display()))?
    {
        let entry = entry?;
        if entry.file_name() != id {
            walk(&entry.path(), &mut |m| {
                older.insert((m.dev(), m.ino()));
            })?;
        }
    }
    let mut seen = HashSet::new();
    let mut total = 0;
    walk(&snapshots.join(id), &mut |m| {
        if !older.contains(&(m.dev(), m.ino())) && seen.insert((m.dev(), m.ino())) {
            total += m.len();
        }
    })?;
    Ok(total)
}

/// Calls `f` with the metadata of every regular file under `dir`.
fn walk(dir: &Path, f: &mut dyn FnMut(&std::fs::Metadata)) -> Result<()> {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in
            std::fs::read_dir(&d).with_context(|| format!("failed to list {}", d.display()))?
        {
            let entry = entry.with_context(|| format!("failed to list {}", d.display()))?;
            let meta = std::fs::symlink_metadata(entry.path())
                .with_context(|| format!("failed to stat {}", entry.path().display()))?;
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.is_file() {
                f(&meta);
            }
        }
    }
    Ok(())
}

fn tree_size(dir: &Path) -> Result<(u64, u64)> {
    let (mut bytes, mut files) = (0, 0);
    walk(dir, &mut |m| {
        bytes += m.len();
        files += 1;
    })?;
    Ok((bytes, files))
}

/// Removes `path` (file or tree) if it exists. Snapshot files are
/// read-only, but removal needs only the directories' write bit.
fn remove(path: &Path) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("failed to stat {}", path.display())),
        Ok(m) if m.is_dir() => {
            make_writable(path)?;
            std::fs::remove_dir_all(path)
                .with_context(|| format!("failed to remove {}", path.display()))
        }
        Ok(_) => std::fs::remove_file(path)
            .with_context(|| format!("failed to remove {}", path.display())),
    }
}

/// Snapshot directories are private and may be read-only; give the owner
/// write permission on every directory so the tree can be removed.
fn make_writable(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let meta = std::fs::symlink_metadata(&d)
            .with_context(|| format!("failed to stat {}", d.display()))?;
        if !meta.is_dir() {
            continue;
        }
        let mode = meta.permissions().mode();
        if mode & 0o700 != 0o700 {
            std::fs::set_permissions(&d, std::fs::Permissions::from_mode(mode | 0o700))
                .with_context(|| format!("failed to chmod {}", d.display()))?;
        }
        for entry in
            std::fs::read_dir(&d).with_context(|| format!("failed to list {}", d.display()))?
        {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                stack.push(entry.path());
            }
        }
    }
    Ok(())
}
