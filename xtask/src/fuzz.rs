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
             then rerun:  cargo xtask fuzz --seconds {seconds}"
        );
        return Ok(ExitCode::from(2));
    }
    // libFuzzer's sanitizer flags are nightly-only. With a nightly
    // toolchain, use it; without one (only the stable toolchain can be
    // had on some machines), let the stable compiler accept them.
    let nightly = Command::new("rustup")
        .args(["run", "nightly", "rustc", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    let mut cmd = if nightly {
        let mut c = Command::new("rustup");
        c.args(["run", "nightly", "cargo"]);
        c
    } else {
        eprintln!(
            "note: no nightly toolchain; running cargo fuzz on stable with RUSTC_BOOTSTRAP=1"
        );
        let mut c = util::cargo();
        c.env("RUSTC_BOOTSTRAP", "1");
        c
    };
    // New inputs go to fuzz/corpus/manifest (ignored by git); the checked-in
    // seeds in tests/fuzz-corpus/manifest are read as a second corpus.
    let corpus = fuzz_dir.join("corpus/manifest");
    std::fs::create_dir_all(&corpus)
        .with_context(|| format!("failed to create {}", corpus.display()))?;
    let seeds = util::workspace_root().join("tests/fuzz-corpus/manifest");
    let status = cmd
        .current_dir(&fuzz_dir)
        .args(["fuzz", "run", "manifest"])
        .arg(&corpus)
        .arg(&seeds)
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .status()
        .context("failed to run cargo fuzz")?;
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
