//! `cargo xtask man`: writes `target/man/cairn.1` from the CLI's own clap
//! definition, with an EXIT STATUS section from `cairn_cli::EXIT_CODES`.

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
    let path = dir.join("cairn.1");
    let page = render()?;
    std::fs::write(&path, page).with_context(|| format!("failed to write {}", path.display()))?;
    println!("wrote {}", path.display());
    println!("view it with: man {}", path.display());
    println!(
        "install it with: install -Dm644 {} ~/.local/share/man/man1/cairn.1",
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// The whole page: clap_mangen's sections, with the exit codes as their
/// own EXIT STATUS section instead of the --help footer's plain text.
pub fn render() -> Result<Vec<u8>> {
    // The footer is the exit-code list; it gets a proper section below.
    let cmd = cairn_cli::Cli::command().after_help("").after_long_help("");
    let man = clap_mangen::Man::new(cmd.clone());
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    man.render_options_section(&mut out)?;
    if cmd.get_subcommands().next().is_some() {
        man.render_subcommands_section(&mut out)?;
        subcommand_details(&cmd, &mut out)?;
    }
    exit_status(&mut out)?;
    man.render_version_section(&mut out)?;
    Ok(out)
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
