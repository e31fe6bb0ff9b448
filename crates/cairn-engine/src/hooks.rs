//! `[hooks]`: argv commands run around a snapshot, without a shell (no
//! quoting surprises, no injection through config values).

use std::process::{Command, Stdio};

use crate::error::{Error, Result};

/// Runs `argv` and waits. Its stdout goes to our stderr so JSON output
/// stays one document; a non-zero exit or a failure to start is an error.
pub fn run(hook: &'static str, argv: &[String]) -> Result<()> {
    let shown = argv.join(" ");
    let Some((program, args)) = argv.split_first() else {
        return Err(Error::Hook {
            hook,
            argv: shown,
            message: "empty command".into(),
        });
    };
    let status = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(std::io::stderr()))
        .status()
        .map_err(|e| Error::Hook {
            hook,
            argv: shown.clone(),
            message: format!("could not start: {e}"),
        })?;
    if !status.success() {
        return Err(Error::Hook {
            hook,
            argv: shown,
            message: exit_description(status),
        });
    }
    Ok(())
}

/// How a command ended, in words that read after "hook …: ": `exited with
/// code 1`, `was killed by SIGTERM (signal 15)`. (`ExitStatus`'s own text,
/// "exit status: 1", doubled the wording after "exited with".)
pub(crate) fn exit_description(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with code {code}"),
        (None, Some(signal)) => match crate::cancel::signal_name(signal) {
            name if name.starts_with("SIG") => format!("was killed by {name} (signal {signal})"),
            _ => format!("was killed by signal {signal}"),
        },
        (None, None) => format!("ended abnormally ({status})"),
    }
}
