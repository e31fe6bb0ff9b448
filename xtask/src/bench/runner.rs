//! Runs one command as a whole process and measures it: wall time, exit
//! status and peak RSS (wait4's `ru_maxrss`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};

/// One measured run of one command.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    pub secs: f64,
    pub rss_kib: u64,
    /// User plus system CPU time of the command and the children it
    /// waited for (wait4's rusage).
    pub cpu_secs: f64,
}

/// The conditions every measured command starts in.
pub struct Runner {
    /// Where to write and delete the leveling file, and how many bytes.
    level: Option<(PathBuf, u64)>,
}

impl Runner {
    /// Only a `sync` before each command (for setup runs that are not
    /// compared).
    pub fn plain() -> Self {
        Runner { level: None }
    }

    /// Before each command, also write and delete `bytes` of scratch data
    /// in `dir`. Why: on a VM whose host backs guest memory lazily, the
    /// first write into guest memory never used before costs several times
    /// a write into memory used and freed (here: `cp` of a 520 MiB file
    /// took 1.4–1.7 s into fresh memory, 0.15–0.18 s right after a file
    /// of that size was deleted). Without leveling, which command pays
    /// depends on what the one before it freed, not on the command.
    /// `bytes` should cover the most any command writes.
    pub fn leveled(dir: &Path, bytes: u64) -> Self {
        Runner {
            level: Some((dir.join("level.tmp"), bytes)),
        }
    }

    fn prepare(&self) -> Result<()> {
        if let Some((path, bytes)) = &self.level {
            let mut f = std::fs::File::create(path)
                .with_context(|| format!("failed to create {}", path.display()))?;
            let block = vec![0x5au8; 1 << 20];
            let mut left = *bytes;
            while left > 0 {
                let n = left.min(block.len() as u64) as usize;
                f.write_all(&block[..n])
                    .with_context(|| format!("failed to write {}", path.display()))?;
                left -= n as u64;
            }
            drop(f);
            // Deleted before it is written back: freeing it costs no I/O.
            std::fs::remove_file(path)
                .with_context(|| format!("failed to remove {}", path.display()))?;
        }
        // Every measure starts with no dirty pages left by the one before,
        // so nobody pays for another's writeback.
        let _ = Command::new("sync").status();
        Ok(())
    }

    /// Runs `cmd` with stdout to `stdout_file` (when given) and stderr kept
    /// for the error message; fails unless it exits 0.
    pub fn measure(&self, label: &str, cmd: Command, stdout_file: Option<&Path>) -> Result<Sample> {
        self.prepare()?;
        measure(label, cmd, stdout_file)
    }
}

fn measure(label: &str, mut cmd: Command, stdout_file: Option<&Path>) -> Result<Sample> {
    let stderr_path =
        std::env::temp_dir().join(format!("cairn-bench-stderr-{}", std::process::id()));
    let stderr = std::fs::File::create(&stderr_path)
        .with_context(|| format!("failed to create {}", stderr_path.display()))?;
    cmd.stdin(Stdio::null()).stderr(stderr);
    match stdout_file {
        Some(p) => {
            let f = std::fs::File::create(p)
                .with_context(|| format!("failed to create {}", p.display()))?;
            cmd.stdout(f);
        }
        None => {
            cmd.stdout(Stdio::null());
        }
    }
    let started = Instant::now();
    let child = cmd
        .spawn()
        .with_context(|| format!("failed to start {label}: {cmd:?}"))?;
    let (code, rss_kib, cpu_secs) = wait_rusage(child.id())?;
    let secs = started.elapsed().as_secs_f64();
    let err_text = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    let _ = std::fs::remove_file(&stderr_path);
    if code != 0 {
        bail!(
            "{label} exited with {code}: {cmd:?}\n--- stderr (last lines)\n{}",
            tail(&err_text, 20)
        );
    }
    Ok(Sample {
        secs,
        rss_kib,
        cpu_secs,
    })
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Reaps `pid` with wait4 and returns (exit code, peak RSS in KiB, user
/// plus system CPU seconds).
/// The `Child` handle is not waited on afterwards (it never reaps on drop).
#[allow(unsafe_code)]
fn wait_rusage(pid: u32) -> Result<(i32, u64, f64)> {
    let pid = libc::pid_t::try_from(pid).context("pid out of range")?;
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain old data; all-zero is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: both pointers are to live, writable locals of the right
        // types; pid is our own child, not yet reaped.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == pid {
            break;
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err).context("wait4 failed");
        }
    }
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    // Linux reports ru_maxrss in KiB.
    Ok((
        code,
        u64::try_from(usage.ru_maxrss).unwrap_or(0),
        secs(usage.ru_utime) + secs(usage.ru_stime),
    ))
}
