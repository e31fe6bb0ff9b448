//! `cargo xtask fuzz [--seconds N]`: runs the `manifest` fuzz target with
//! cargo-fuzz in `fuzz/`.

use std::process::{Command, ExitCode, Stdio};

use anyhow::{Context, Result};

use crate::util::{self, Args};

pub fn main(args: &[String]) -> Result<ExitCode> {
    let mut args = Args::new(args);
    let seconds = match args.value("--seconds") {
        Ok(None) => 60,
        Ok(Some(s)) => match s.parse::<u64>() {
            Ok(n) if n > 0 => n,
            _ => {
                return Ok(util::usage_error(format!(
                    "--seconds wants a positive whole number, not {s:?}"
                )))
            }
        },
        Err(e) => return Ok(util::usage_error(e)),
    };
    if let Err(e) = args.finish() {
        return Ok(util::usage_error(e));
    }
    let fuzz_dir = util::workspace_root().join("fuzz");
    if !fuzz_dir.join("Cargo.toml").is_file() {
        eprintln!(
            "error: {} has no Cargo.toml (the fuzz crate is missing)",
            fuzz_dir.display()
        );
        return Ok(ExitCode::from(2));
    }
    let installed = util::cargo()
        .args(["fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !installed {
        eprintln!(
            "error: cargo-fuzz is not installed.\n\
             install it with:  cargo install cargo-fuzz\n\
             it needs a nightly toolchain:  rustup toolchain install nightly\n\
             then rerun:  cargo xtask fuzz --seconds {seconds}"
        );
        return Ok(ExitCode::from(2));
    }
    // libFuzzer's sanitizer flags need a nightly compiler: use the nightly
    // toolchain through rustup when there is one.
    let nightly = Command::new("rustup")
        .args(["run", "nightly", "rustc", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !nightly {
        eprintln!(
            "error: cargo fuzz needs a nightly toolchain and rustup has none.\n\
             install it with:  rustup toolchain install nightly\n\
             then rerun:  cargo xtask fuzz --seconds {seconds}"
        );
        return Ok(ExitCode::from(2));
    }
    let status = Command::new("rustup")
        .current_dir(&fuzz_dir)
        .args(["run", "nightly", "cargo", "fuzz", "run", "manifest", "--"])
        .arg(format!("-max_total_time={seconds}"))
        .status()
        .context("failed to run cargo fuzz")?;
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
