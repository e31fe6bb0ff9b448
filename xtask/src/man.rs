//! `cargo xtask man`: writes `target/man/cairn.1` and one
//! `cairn-<command>.1` per command from the CLI's own clap definition
//! (clap_mangen), each with FILES, ENVIRONMENT, an EXIT STATUS section from
//! `cairn_cli::EXIT_CODES`, and SEE ALSO naming only pages written here.

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::CommandFactory;
use clap_mangen::roff::{roman, Roff};

use crate::util::{self, Args};

pub fn main(args: &[String]) -> Result<ExitCode> {
    if let Err(e) = Args::new(args).finish() {
        return Ok(util::usage_error(e));
    }
    let dir = util::target_dir().join("man");
    std::fs::create_dir_all(&dir).with_context(|| format!("failed to create {}", dir.display()))?;
    let pages = pages()?;
    for (name, page) in &pages {
        let path = dir.join(name);
        std::fs::write(&path, page)
            .with_context(|| format!("failed to write {}", path.display()))?;
    }
    println!("wrote {} pages to {}", pages.len(), dir.display());
    println!("view one with: man {}", dir.join("cairn.1").display());
    println!(
        "install them with: install -Dm644 -t ~/.local/share/man/man1 {}/*.1",
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// The command as the pages describe it: globals propagated to each
/// subcommand (so each page lists --config, --json, …), no `help`
/// subcommand (it has no page), and no exit-code footer (it gets a proper
/// EXIT STATUS section).
fn command() -> clap::Command {
    let mut cmd = cairn_cli::Cli::command()
        .disable_help_subcommand(true)
        .after_help("")
        .after_long_help("");
    cmd.build();
    cmd
}

/// Every page, by file name: `cairn.1`, then `cairn-<command>.1` for each
/// command. The main page's SEE ALSO names exactly these.
pub fn pages() -> Result<Vec<(String, Vec<u8>)>> {
    let cmd = command();
    let subs: Vec<clap::Command> = cmd.get_subcommands().cloned().collect();
    let mut out = vec![("cairn.1".to_owned(), render_with(&cmd, &subs)?)];
    for sub in &subs {
        let name = format!("cairn-{}", sub.get_name());
        let page = sub
            .clone()
            .display_name(name.clone())
            .bin_name(format!("cairn {}", sub.get_name()))
            .version(cairn_cli::VERSION);
        let man = clap_mangen::Man::new(page).title(name.to_uppercase());
        out.push((format!("{name}.1"), render_sub(man)?));
    }
    Ok(out)
}

fn render_with(cmd: &clap::Command, subs: &[clap::Command]) -> Result<Vec<u8>> {
    let man = clap_mangen::Man::new(cmd.clone());
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    man.render_options_section(&mut out)?;
    if cmd.get_subcommands().next().is_some() {
        man.render_subcommands_section(&mut out)?;
        subcommand_details(cmd, &mut out)?;
    }
    files_and_environment(&mut out)?;
    exit_status(&mut out)?;
    see_also(
        &mut out,
        subs.iter().map(|s| format!("cairn-{}", s.get_name())),
    )?;
    man.render_version_section(&mut out)?;
    Ok(out)
}

fn render_sub(man: clap_mangen::Man) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    man.render_options_section(&mut out)?;
    files_and_environment(&mut out)?;
    exit_status(&mut out)?;
    see_also(&mut out, std::iter::once("cairn".to_owned()))?;
    man.render_version_section(&mut out)?;
    Ok(out)
}

/// FILES and ENVIRONMENT: where the config and the repository are, and
/// the variables cairn reads.
fn files_and_environment(out: &mut Vec<u8>) -> Result<()> {
    let mut roff = Roff::new();
    roff.control("SH", ["FILES"]);
    for (path, text) in [
        ("./cairn.toml", "The config read when neither --config nor CAIRN_CONFIG names one (never as root). `cairn init` writes a starter, mode 0600."),
        ("REPOSITORY/snapshots/ID/", "One snapshot: manifest.json (checksummed), stores/STORE/… (the copies, plain files), pinned, validated.json."),
        ("REPOSITORY/lock", "Taken by every run that writes; records the holder's pid, command and start time, named when another run finds it busy."),
        ("REPOSITORY/tmp/", "Snapshots being built and deletions in progress; a crash leaves them here, never in snapshots/."),
    ] {
        roff.control("TP", []);
        roff.text([roman(path)]);
        roff.text([roman(text)]);
    }
    roff.control("SH", ["ENVIRONMENT"]);
    for (var, text) in [
        (
            "CAIRN_CONFIG",
            "The config file when --config is not given.",
        ),
        (
            "MALLOC_ARENA_MAX",
            "Overrides the one malloc arena cairn sets for itself (glibc).",
        ),
    ] {
        roff.control("TP", []);
        roff.text([roman(var)]);
        roff.text([roman(text)]);
    }
    roff.to_writer(out)?;
    Ok(())
}

fn see_also(out: &mut Vec<u8>, pages: impl Iterator<Item = String>) -> Result<()> {
    let mut roff = Roff::new();
    roff.control("SH", ["SEE ALSO"]);
    let refs: Vec<String> = pages.map(|p| format!("{p}(1)")).collect();
    roff.text([roman(refs.join(", "))]);
    roff.to_writer(out)?;
    Ok(())
}

/// One subsection per command with its usage and options, so the page
/// holds everything `cairn <command> --help` says.
fn subcommand_details(cmd: &clap::Command, out: &mut Vec<u8>) -> Result<()> {
    let mut roff = Roff::new();
    roff.control("SH", ["COMMAND DETAILS"]);
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        let mut sub = sub.clone().bin_name(format!("cairn {}", sub.get_name()));
        let usage = sub.render_usage().to_string();
        roff.control("SS", [sub.get_name()]);
        roff.text([roman(usage.trim_start_matches("Usage: "))]);
        if let Some(about) = sub.get_long_about().or(sub.get_about()) {
            roff.control("PP", []);
            roff.text([roman(about.to_string())]);
        }
        for arg in sub
            .get_arguments()
            .filter(|a| !a.is_global_set() && !a.is_hide_set())
        {
            let name = match (arg.get_short(), arg.get_long()) {
                (Some(s), Some(l)) => format!("-{s}, --{l}"),
                (None, Some(l)) => format!("--{l}"),
                (Some(s), None) => format!("-{s}"),
                (None, None) => match arg.get_value_names() {
                    Some(names) => names
                        .iter()
                        .map(|n| format!("<{n}>"))
                        .collect::<Vec<_>>()
                        .join(" "),
                    None => format!("<{}>", arg.get_id().as_str().to_uppercase()),
                },
            };
            if matches!(name.as_str(), "-h, --help" | "-V, --version") {
                continue;
            }
            let value = arg
                .get_value_names()
                .filter(|_| {
                    arg.get_long().is_some() && arg.get_num_args().is_some_and(|n| n.takes_values())
                })
                .map(|v| format!(" <{}>", v.join(" ")))
                .unwrap_or_default();
            roff.control("TP", []);
            roff.text([roman(format!("{name}{value}"))]);
            if let Some(help) = arg.get_long_help().or(arg.get_help()) {
                roff.text([roman(help.to_string())]);
            }
        }
    }
    roff.to_writer(out)?;
    Ok(())
}

/// EXIT STATUS from the same text `cairn --help` prints.
fn exit_status(out: &mut Vec<u8>) -> Result<()> {
    let mut roff = Roff::new();
    roff.control("SH", ["EXIT STATUS"]);
    let mut current: Option<(String, String)> = None;
    let mut items = Vec::new();
    for line in cairn_cli::EXIT_CODES.lines().skip(1) {
        let trimmed = line.trim();
        let mut parts = trimmed.splitn(2, char::is_whitespace);
        match (parts.next(), parts.next()) {
            (Some(code), Some(text)) if code.parse::<u8>().is_ok() => {
                items.extend(current.take());
                current = Some((code.to_string(), text.trim().to_string()));
            }
            _ => {
                if let Some((_, text)) = current.as_mut() {
                    text.push(' ');
                    text.push_str(trimmed);
                }
            }
        }
    }
    items.extend(current);
    anyhow::ensure!(
        !items.is_empty(),
        "cairn_cli::EXIT_CODES lists no exit codes"
    );
    for (code, text) in items {
        roff.control("TP", []);
        roff.text([roman(code)]);
        roff.text([roman(text)]);
    }
    roff.to_writer(out)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(page: &[u8]) -> String {
        String::from_utf8_lossy(page).into_owned()
    }

    #[test]
    fn every_page_see_also_names_only_pages_that_are_generated() {
        let pages = pages().unwrap();
        let names: Vec<&str> = pages.iter().map(|(n, _)| n.as_str()).collect();
        assert!(names.contains(&"cairn.1"));
        for sub in [
            "snapshot",
            "restore",
            "ls",
            "cat",
            "diff",
            "stats",
            "completions",
        ] {
            assert!(
                names.contains(&format!("cairn-{sub}.1").as_str()),
                "{names:?}"
            );
        }
        assert!(!names.contains(&"cairn-help.1"));
        for (name, page) in &pages {
            let page = text(page);
            for section in ["FILES", "ENVIRONMENT", "EXIT STATUS", "SEE ALSO"] {
                assert!(
                    page.contains(&format!(".SH \"{section}\""))
                        || page.contains(&format!(".SH {section}")),
                    "{name} lacks {section}"
                );
            }
            // Every `cairn…(1)` reference anywhere in the page is a page we wrote.
            for (i, _) in page.match_indices("(1)") {
                let before = &page[..i];
                let start = before
                    .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '\\'))
                    .map(|s| s + 1)
                    .unwrap_or(0);
                let referenced = before[start..].replace("\\-", "-");
                if referenced.starts_with("cairn") {
                    assert!(
                        names.contains(&format!("{referenced}.1").as_str()),
                        "{name} references {referenced}(1), which is not generated"
                    );
                }
            }
        }
        let main = text(&pages[0].1);
        assert!(
            main.contains("cairn\\-ls(1)") || main.contains("cairn-ls(1)"),
            "{main}"
        );
        let restore = text(
            &pages
                .iter()
                .find(|(n, _)| n == "cairn-restore.1")
                .unwrap()
                .1,
        );
        assert!(restore.contains("confirm\\-service\\-stopped"), "{restore}");
        assert!(restore.contains("CAIRN_CONFIG"));
    }
}
