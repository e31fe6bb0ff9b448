//! The `cairn` command, as a library: [`run`] parses arguments, calls the
//! engine, prints, and returns the exit code. `main.rs` only links the
//! plug-ins; tests call [`run`] with extra plug-ins linked in.

mod address;
mod browse;
mod cli;
mod clock;
mod commands;
mod contract;
mod diff;
mod import;
mod json;
mod monitor;
mod pretty;
mod progress;
mod remote;
mod remote_json;
mod remote_render;
mod render;
mod starter;
mod stats;

use std::ffi::OsString;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use cairn_engine::Error;

pub use cli::{Cli, EXIT_CODES, VERSION};

/// What a command hands back: the JSON document, the human text, and
/// whether everything it checked was sound.
pub struct Output {
    pub json: serde_json::Value,
    pub human: String,
    pub sound: bool,
    /// A report too large to hold whole (every entry of a snapshot of a
    /// million files): written to stdout as it is made, in the format
    /// asked for, instead of `human` and `json`; `json` then holds only
    /// what `[monitoring]` reads of it (the snapshot id).
    pub stream: Option<Stream>,
}

/// Writes a streamed report; `Format::Json` writes one JSON document,
/// laid out as `serde_json::to_string_pretty` lays it out, without the
/// final newline.
pub type Stream = Box<dyn FnOnce(&mut dyn Write, Format) -> std::io::Result<()>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Human,
    Json,
}

pub fn main() -> ExitCode {
    tune_malloc();
    commands::stop_on_signals();
    // Unlocked handles: the progress bar writes to stderr from other
    // threads, which a lock held here for the whole run would deadlock.
    let code = run(
        std::env::args_os(),
        &mut std::io::stdout(),
        &mut std::io::stderr(),
    );
    ExitCode::from(code)
}

/// Two glibc malloc tunables, each measured (the environment's
/// `MALLOC_ARENA_MAX` / `MALLOC_MMAP_THRESHOLD_` still override them):
///
/// - One arena for the whole process. glibc gives threads arenas of their
///   own, and memory freed in one is not reused by another: a second
///   snapshot of a 100,000-file tree (entries built on a capture thread,
///   the parent's index on the main thread, checks on worker threads) had
///   a 42 MiB heap peak but 63-67 MiB RSS; with one arena, 46-54 MiB, at
///   the same speed (Cairn's threads copy and hash; they rarely allocate).
/// - A fixed mmap threshold of 4 MiB. By default glibc raises it to the
///   size of the largest block freed so far, so after push frees its first
///   16 MiB pack every later pack comes from the heap and stays resident
///   when freed: push of the default fixture peaked at 49 MiB RSS for a
///   30 MiB heap; with the threshold fixed, 37 MiB. Blocks that large are
///   few (packs, chunk windows), so mapping each costs nothing measurable.
fn tune_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        #[allow(unsafe_code)]
        // SAFETY: mallopt only sets allocator tunables; called before any
        // thread is started.
        unsafe {
            if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
                libc::mallopt(libc::M_ARENA_MAX, 1);
            }
            if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
                libc::mallopt(libc::M_MMAP_THRESHOLD, 4 * 1024 * 1024);
            }
        }
    }
}

/// Runs one `cairn` invocation; returns the contract's exit code.
pub fn run(
    args: impl IntoIterator<Item = OsString>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8 {
    // Parsed through ArgMatches to learn the subcommand's name as clap
    // has it: `[monitoring]` is keyed by it, for every command there is.
    let parsed = {
        use clap::{CommandFactory, FromArgMatches};
        Cli::command().try_get_matches_from(args).and_then(|m| {
            let name = m.subcommand_name().unwrap_or_default().to_owned();
            Cli::from_arg_matches(&m).map(|cli| (cli, name))
        })
    };
    let (cli, command_name) = match parsed {
        Ok(parsed) => parsed,
        Err(e) => {
            use clap::error::ErrorKind;
            let to_stdout = matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion);
            let colour = if to_stdout {
                std::io::stdout().is_terminal()
            } else {
                std::io::stderr().is_terminal()
            };
            let text = if colour {
                e.render().ansi().to_string()
            } else {
                e.render().to_string()
            };
            return match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                    let _ = write!(out, "{text}");
                    0
                }
                _ => {
                    let _ = write!(err, "{text}");
                    contract::USAGE
                }
            };
        }
    };

    progress::install(cli.quiet, cli.json);
    if !cli.quiet {
        // Notices (a wait for the lock) go to stderr as they come, so
        // stdout stays one JSON document with --json.
        cairn_engine::progress::install_notice(Box::new(|message| {
            eprintln!("{}", render::clean(message));
        }));
    }
    if cli.verbose {
        // Logs go to stderr, so stdout stays one JSON document with --json.
        let _ = tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_target(false)
            .with_ansi(std::io::stderr().is_terminal())
            .with_max_level(tracing::Level::INFO)
            .try_init();
    }
    let result = commands::dispatch(&cli, &command_name, out);
    match result {
        Ok(mut output) => {
            let written = if let Some(stream) = output.stream.take() {
                // Buffered: stdout is line-buffered, and a listing of
                // 100,000 entries was 1.5 million write calls.
                let mut buffered = std::io::BufWriter::with_capacity(64 * 1024, &mut *out);
                if cli.json {
                    stream(&mut buffered, Format::Json).and_then(|()| writeln!(buffered))
                } else if !cli.quiet {
                    stream(&mut buffered, Format::Human)
                } else {
                    Ok(())
                }
                .and_then(|()| buffered.flush())
            } else if cli.json {
                writeln!(
                    out,
                    "{}",
                    serde_json::to_string_pretty(&output.json).unwrap_or_default()
                )
            } else if !cli.quiet {
                write!(out, "{}", output.human)
            } else {
                Ok(())
            }
            .and_then(|()| out.flush());
            match written {
                // A reader that stopped reading (`| head`) took what it
                // wanted; the command's result stands.
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                    // A report lost on the way (a full disk under
                    // `--json > status.json`) must not look delivered.
                    let _ = writeln!(
                        err,
                        "error: the command ran, but its report could not be written to standard output: {e}"
                    );
                    contract::IO
                }
                _ if output.sound => contract::OK,
                _ => contract::UNSOUND,
            }
        }
        Err(e) => {
            report_error(&cli, &e, out, err);
            contract::exit_code(&e)
        }
    }
}

fn report_error(cli: &Cli, e: &Error, out: &mut dyn Write, err: &mut dyn Write) {
    // One line each, whatever the paths in them hold (see render::clean).
    let _ = writeln!(err, "error: {}", render::clean(&contract::message(e)));
    let hint = contract::hint_for(e, commands::snapshot_named(&cli.command).as_deref());
    if let Some(h) = &hint {
        let _ = writeln!(err, "hint: {}", render::clean(h));
    }
    if cli.json {
        // Scripts always get one document, failures included.
        let doc = json::error(e, hint);
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&doc).unwrap_or_default()
        );
    }
}
