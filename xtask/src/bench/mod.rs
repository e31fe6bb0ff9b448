//! `cargo xtask bench`: placeholder while the benchmark is written.

use std::process::ExitCode;

use anyhow::Result;

pub fn main(_args: &[String]) -> Result<ExitCode> {
    anyhow::bail!("bench is not written yet")
}
