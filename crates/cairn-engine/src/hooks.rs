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
            message: format!("exited with {status}"),
        });
    }
    Ok(())
}
