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

/// Runs `argv` like [`run`], with `env` added to the environment, and
/// kills it when it outlives `timeout` (a hung notifier must not hold a
/// nightly run forever). Used by `[monitoring]`'s `on_success` and
/// `on_failure`, and by a store's `drill_command`.
pub fn run_bounded(
    hook: &'static str,
    argv: &[String],
    env: &[(String, String)],
    timeout: std::time::Duration,
) -> Result<()> {
    let shown = argv.join(" ");
    let fail = |message: String| Error::Hook {
        hook,
        argv: shown.clone(),
        message,
    };
    let Some((program, args)) = argv.split_first() else {
        return Err(fail("empty command".into()));
    };
    let mut child = Command::new(program)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::from(std::io::stderr()))
        .spawn()
        .map_err(|e| fail(format!("could not start: {e}")))?;
    let deadline = std::time::Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => return Err(fail(exit_description(status))),
            Ok(None) if std::time::Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(fail(format!(
                    "still running after {}s; killed",
                    timeout.as_secs()
                )));
            }
            Ok(None) => std::thread::sleep(std::time::Duration::from_millis(20)),
            Err(e) => return Err(fail(format!("could not wait for it: {e}"))),
        }
    }
}
