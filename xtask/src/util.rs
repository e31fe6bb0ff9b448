//! Shared helpers: where the workspace and its target dir are, building
//! the `cairn` binary, running it, and small argument parsing.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{bail, Context, Result};

/// The workspace root (xtask lives one level below it).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// The target dir, honouring `CARGO_TARGET_DIR` (relative to the root).
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => workspace_root().join(dir),
        _ => workspace_root().join("target"),
    }
}

/// `cargo`, as the one that launched us when known.
pub fn cargo() -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace_root());
    cmd
}

/// Builds `cairn` (debug or release) and returns the binary's path.
pub fn build_cairn(release: bool) -> Result<PathBuf> {
    let mut cmd = cargo();
    cmd.args(["build", "-p", "cairn-cli", "--bin", "cairn"]);
    if release {
        cmd.arg("--release");
    }
    let status = cmd.status().context("failed to run cargo build")?;
    if !status.success() {
        bail!("cargo build of the cairn binary failed ({status})");
    }
    let bin = target_dir()
        .join(if release { "release" } else { "debug" })
        .join(format!("cairn{}", std::env::consts::EXE_SUFFIX));
    if !bin.is_file() {
        bail!("cargo build succeeded but {} is not there", bin.display());
    }
    Ok(bin)
}

/// Whether `name` is an executable on PATH.
pub fn on_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| {
            std::fs::metadata(p)
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

/// The outcome of one `cairn` run.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// stdout as one JSON document.
    pub fn json(&self) -> Result<serde_json::Value> {
        serde_json::from_str(&self.stdout).with_context(|| {
            format!(
                "stdout is not one JSON document:\n--- stdout\n{}\n--- stderr\n{}",
                self.stdout, self.stderr
            )
        })
    }

    /// A short description for failure messages.
    pub fn describe(&self) -> String {
        format!(
            "exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code,
            self.stdout.trim_end(),
            self.stderr.trim_end()
        )
    }
}

/// Runs `bin --config config args…`, capturing everything.
pub fn run_cairn<I, S>(bin: &Path, config: &Path, args: I) -> Result<Run>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new(bin);
    cmd.arg("--config").arg(config).args(args);
    let out = cmd
        .output()
        .with_context(|| format!("failed to run {}", bin.display()))?;
    Ok(Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// Minimal flag parsing: `--name value` or `--name=value`.
pub struct Args {
    items: Vec<String>,
}

impl Args {
    pub fn new(items: &[String]) -> Self {
        Self {
            items: items.to_vec(),
        }
    }

    /// Removes `--name` and reports whether it was there.
    pub fn flag(&mut self, name: &str) -> bool {
        let before = self.items.len();
        self.items.retain(|a| a != name);
        before != self.items.len()
    }

    /// Removes `--name value` (or `--name=value`) and returns the value.
    pub fn value(&mut self, name: &str) -> Result<Option<String>> {
        let prefix = format!("{name}=");
        if let Some(i) = self.items.iter().position(|a| a.starts_with(&prefix)) {
            let v = self.items.remove(i);
            return Ok(Some(v[prefix.len()..].to_string()));
        }
        if let Some(i) = self.items.iter().position(|a| a == name) {
            if i + 1 >= self.items.len() {
                bail!("{name} needs a value");
            }
            self.items.remove(i);
            return Ok(Some(self.items.remove(i)));
        }
        Ok(None)
    }

    /// Fails on anything left over.
    pub fn finish(self) -> Result<()> {
        if let Some(extra) = self.items.first() {
            bail!("unexpected argument `{extra}` (see `cargo xtask help`)");
        }
        Ok(())
    }
}

/// Exit code 2 for bad usage.
/// `p` as the `&str` a command line or a config file wants.
pub fn path_str(p: &Path) -> Result<&str> {
    p.to_str()
        .ok_or_else(|| anyhow::anyhow!("{} is not UTF-8", p.display()))
}

pub fn usage_error(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {msg}\n(see `cargo xtask help`)");
    ExitCode::from(2)
}
