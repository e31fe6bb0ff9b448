//! The off-site part of `cargo xtask bench`: `cairn push` and `cairn pull`
//! of the full snapshot against an S3 server on 127.0.0.1, next to one
//! multipart PUT of as many bytes as the push sent, through the same
//! client (cairn-remote's `Backend`: the same OpenDAL transport, timeout
//! and retry layers). All three are whole processes, leveled like every
//! other measure: the PUT is this binary again (`bench --offsite-put`).
//! The server (`cairn_testservers::S3Server`) runs in a child of this
//! binary too (`bench --offsite-server`), answering "count" on its stdin
//! with its request and byte counters. Why not in this process: a child's
//! `ru_maxrss` starts at its parent's peak RSS (Linux carries it across
//! fork and exec), so a bench process that once held the server's or the
//! PUT's buffers would inflate the peak RSS of every command after it.
//!
//! Each run pushes into a fresh prefix (`bench-runN`), so every push is a
//! full one and the bytes and requests the server counted are what a first
//! push of this fixture costs.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitCode, Stdio};

use anyhow::{anyhow, bail, Context, Result};

use super::report::human_bytes;
use super::runner::{Runner, Sample};
use super::trash::Trash;
use super::{cairn, remove, write_config, Results};

pub const PUSH: &str = "cairn push (full snapshot, loopback S3)";
pub const PULL: &str = "cairn pull (full snapshot, loopback S3)";
pub const PUT: &str = "one multipart PUT of the pushed bytes (same client)";

/// Part size of the baseline PUT: push's pack size, so both send requests
/// of the same size, one at a time.
const PART_BYTES: usize = cairn_remote::format::TARGET_PACK_BYTES;

/// What the server counted for one push.
#[derive(Debug, Clone, Copy)]
pub struct PushCount {
    pub bytes: u64,
    pub requests: u64,
}

pub struct Offsite {
    server: ServerChild,
    work: PathBuf,
    credentials: PathBuf,
    trash: Trash,
}

/// The S3 server child and what it said about itself.
struct ServerChild {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    endpoint: String,
    bucket: String,
    region: String,
    credentials: Option<(String, String)>,
}

impl ServerChild {
    fn start() -> Result<ServerChild> {
        let exe = std::env::current_exe().context("cannot find the xtask binary")?;
        let mut child = Command::new(exe)
            .args(["bench", "--offsite-server"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("failed to start the bench's S3 server")?;
        let (stdin, stdout) = match (child.stdin.take(), child.stdout.take()) {
            (Some(i), Some(o)) => (i, BufReader::new(o)),
            _ => bail!("the bench's S3 server has no pipes"),
        };
        let mut server = ServerChild {
            child,
            stdin: Some(stdin),
            stdout,
            endpoint: String::new(),
            bucket: String::new(),
            region: String::new(),
            credentials: None,
        };
        let info: serde_json::Value = serde_json::from_str(&server.line()?)
            .context("the bench's S3 server did not describe itself")?;
        let field = |k: &str| {
            info[k]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| anyhow!("the bench's S3 server gave no {k}"))
        };
        server.endpoint = field("endpoint")?;
        server.bucket = field("bucket")?;
        server.region = field("region")?;
        server.credentials = Some((field("access_key_id")?, field("secret_access_key")?));
        Ok(server)
    }

    fn line(&mut self) -> Result<String> {
        let mut line = String::new();
        let n = self
            .stdout
            .read_line(&mut line)
            .context("failed to read from the bench's S3 server")?;
        if n == 0 {
            bail!("the bench's S3 server exited");
        }
        Ok(line)
    }

    /// (requests, request body bytes) the server has received so far.
    fn count(&mut self) -> Result<(u64, u64)> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| anyhow!("the bench's S3 server is closed"))?;
        stdin
            .write_all(b"count\n")
            .and_then(|()| stdin.flush())
            .context("failed to ask the bench's S3 server")?;
        let line = self.line()?;
        let mut it = line.split_whitespace().map(str::parse::<u64>);
        match (it.next(), it.next()) {
            (Some(Ok(r)), Some(Ok(b))) => Ok((r, b)),
            _ => bail!("the bench's S3 server answered {line:?}"),
        }
    }
}

impl Drop for ServerChild {
    /// Closing stdin stops the server (its data directory goes with it).
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

impl Offsite {
    pub fn start(work: &Path, trash: Trash) -> Result<Offsite> {
        let mut server = ServerChild::start()?;
        // A private credentials file, so the children need no keys in
        // their environment.
        let credentials = work.join("offsite-credentials");
        let (id, secret) = server
            .credentials
            .take()
            .ok_or_else(|| anyhow!("the bench's S3 server gave no keys"))?;
        let text = format!("AWS_ACCESS_KEY_ID={id}\nAWS_SECRET_ACCESS_KEY={secret}\n");
        write_private(&credentials, text.as_bytes())?;
        println!("bench: off-site against S3 at {}", server.endpoint);
        Ok(Offsite {
            server,
            work: work.to_path_buf(),
            credentials,
            trash,
        })
    }

    /// One run: push `id` (from the repository `config` names) into a fresh
    /// prefix, PUT as many bytes, pull `id` into an empty repository.
    pub fn run(
        &mut self,
        res: &mut Results,
        runner: &Runner,
        bin: &Path,
        fx: &super::fixture::Fixture,
        id: &str,
        run: usize,
    ) -> Result<(Sample, Sample, Sample)> {
        let remote = self.remote_section(&format!("bench-run{run}"))?;
        let push_config = self.work.join("offsite-push.toml");
        write_config(&push_config, fx, &self.work.join("repo"))?;
        append(&push_config, &remote)?;
        let pull_repo = self.work.join("offsite-pull-repo");
        self.trash.discard(&pull_repo)?;
        let pull_config = self.work.join("offsite-pull.toml");
        write_config(&pull_config, fx, &pull_repo)?;
        append(&pull_config, &remote)?;

        let out = self.work.join("offsite-out.json");
        let (requests0, bytes0) = self.server.count()?;
        let push = runner.measure(
            "cairn push",
            cairn(
                bin,
                &push_config,
                &["push", id, "--remote", "bench", "--json"],
            ),
            Some(&out),
        )?;
        let (requests1, bytes1) = self.server.count()?;
        let count = PushCount {
            bytes: bytes1 - bytes0,
            requests: requests1 - requests0,
        };
        res.push(PUSH, push);
        res.offsite.push(count);

        let source = self.work.join("offsite-put.bin");
        write_noise(&source, count.bytes)?;
        let exe = std::env::current_exe().context("cannot find the xtask binary")?;
        let mut cmd = Command::new(exe);
        cmd.args(["bench", "--offsite-put"])
            .arg(&push_config)
            .arg(format!("bench-put-run{run}/object"))
            .arg(&source);
        let put = runner.measure("multipart PUT", cmd, None)?;
        res.push(PUT, put);
        self.trash.discard(&source)?;

        let pull = runner.measure(
            "cairn pull",
            cairn(
                bin,
                &pull_config,
                &["pull", id, "--remote", "bench", "--json"],
            ),
            Some(&out),
        )?;
        res.push(PULL, pull);
        self.trash.discard(&pull_repo)?;
        Ok((push, put, pull))
    }

    fn remote_section(&self, prefix: &str) -> Result<String> {
        let q = |s: &str| serde_json::to_string(s).unwrap_or_default();
        let creds = crate::util::path_str(&self.credentials)?;
        Ok(format!(
            "\n[[remote]]\nname = \"bench\"\nurl = {}\nendpoint = {}\nregion = {}\ncredentials_file = {}\n",
            q(&format!("s3://{}/{prefix}", self.server.bucket)),
            q(&self.server.endpoint),
            q(&self.server.region),
            q(creds),
        ))
    }
}

/// `bench --offsite-server` and `bench --offsite-put CONFIG KEY FILE`,
/// the children above; `None` for any other bench arguments.
pub fn child(args: &[String]) -> Option<Result<ExitCode>> {
    match args {
        [flag] if flag == "--offsite-server" => Some(serve()),
        [flag, config, key, file] if flag == "--offsite-put" => {
            Some(put(Path::new(config), key, Path::new(file)))
        }
        _ => None,
    }
}

/// Serves S3 until stdin closes; one line of JSON about itself first,
/// then "REQUESTS BYTES" for each "count" line read.
fn serve() -> Result<ExitCode> {
    let server = cairn_testservers::S3Server::start().map_err(|e| anyhow!("{e}"))?;
    let info = serde_json::json!({
        "endpoint": server.endpoint(),
        "bucket": server.bucket(),
        "region": server.region(),
        "access_key_id": server.access_key_id(),
        "secret_access_key": server.secret_access_key(),
    });
    let mut out = std::io::stdout().lock();
    writeln!(out, "{info}").and_then(|()| out.flush())?;
    for line in std::io::stdin().lock().lines() {
        if line?.trim() == "count" {
            writeln!(
                out,
                "{} {}",
                server.request_count(),
                server.bytes_received()
            )
            .and_then(|()| out.flush())?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One multipart PUT of FILE to KEY on the remote `bench` of CONFIG.
fn put(config: &Path, key: &str, file: &Path) -> Result<ExitCode> {
    let cfg = cairn_engine::config::Config::load(config)
        .map_err(|e| anyhow!("{e}"))
        .with_context(|| format!("failed to load {}", config.display()))?;
    let remote = cfg
        .remote("bench")
        .ok_or_else(|| anyhow!("no [[remote]] bench in {}", config.display()))?;
    let backend = cairn_remote::backend::Backend::open(remote).map_err(|e| anyhow!("{e}"))?;
    let len = std::fs::metadata(file)
        .with_context(|| format!("failed to stat {}", file.display()))?
        .len();
    let mut f =
        std::fs::File::open(file).with_context(|| format!("failed to open {}", file.display()))?;
    let sent = backend
        .put_streamed(key, &mut f, PART_BYTES)
        .map_err(|e| anyhow!("{e}"))?;
    if sent != len {
        bail!("the PUT sent {sent} bytes of {len}");
    }
    Ok(ExitCode::SUCCESS)
}

/// The report's off-site lines: rates, the push/PUT target, and what the
/// server counted per push.
pub fn render(res: &Results, t: &mut String) -> Result<()> {
    let (push, put, pull) = match (res.get(PUSH), res.get(PUT), res.get(PULL)) {
        (Some(a), Some(b), Some(c)) => (a, b, c),
        _ => return Ok(()),
    };
    let rates = |samples: &[Sample]| -> Vec<f64> {
        samples
            .iter()
            .zip(&res.offsite)
            .map(|(s, c)| c.bytes as f64 / s.secs)
            .collect()
    };
    let (push_r, put_r, pull_r) = (rates(push), rates(put), rates(pull));
    let ratios: Vec<f64> = push_r.iter().zip(&put_r).map(|(a, b)| a / b).collect();
    let ratio = super::report::median(&ratios);
    let per_s = |v: &[f64]| format!("{}/s", human_bytes(super::report::median(v) as u64));
    let bytes: Vec<f64> = res.offsite.iter().map(|c| c.bytes as f64).collect();
    let reqs: Vec<f64> = res.offsite.iter().map(|c| c.requests as f64).collect();
    writeln!(t)?;
    writeln!(
        t,
        "Off-site (issue 16), S3 server on 127.0.0.1 in a child of the bench (s3s-fs, signatures checked), a fresh prefix per run; the PUT sends as many bytes as the push did, in {} parts one at a time, through cairn-remote's client:",
        human_bytes(PART_BYTES as u64)
    )?;
    writeln!(t)?;
    writeln!(t, "| measure | median | target | met |")?;
    writeln!(t, "| --- | ---: | ---: | :---: |")?;
    writeln!(t, "| push rate | {} | – | n/a |", per_s(&push_r))?;
    writeln!(t, "| multipart PUT rate | {} | – | n/a |", per_s(&put_r))?;
    writeln!(
        t,
        "| push rate / PUT rate | {ratio:.2} | ≥ 0.50 | {} |",
        if ratio >= 0.5 { "yes" } else { "**no**" }
    )?;
    writeln!(t, "| pull rate | {} | – | n/a |", per_s(&pull_r))?;
    writeln!(
        t,
        "| bytes per push (server-counted bodies) | {} | – | n/a |",
        human_bytes(super::report::median(&bytes) as u64)
    )?;
    writeln!(
        t,
        "| requests per push (server-counted) | {:.0} | – | n/a |",
        super::report::median(&reqs)
    )?;
    Ok(())
}

fn append(path: &Path, text: &str) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .with_context(|| format!("failed to open {}", path.display()))?;
    f.write_all(text.as_bytes())
        .with_context(|| format!("failed to write {}", path.display()))
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    remove(path)?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("failed to create {}", path.display()))?;
    f.write_all(bytes)
        .with_context(|| format!("failed to write {}", path.display()))
}

/// `len` incompressible bytes (S3 does not compress, but be safe), written
/// in 8 MiB blocks.
fn write_noise(path: &Path, len: u64) -> Result<()> {
    let mut f = std::fs::File::create(path)
        .with_context(|| format!("failed to create {}", path.display()))?;
    let mut left = len;
    let mut seed = 1u64;
    while left > 0 {
        let n = left.min(8 << 20) as usize;
        f.write_all(&crate::drill::pseudo_bytes(seed, n))
            .with_context(|| format!("failed to write {}", path.display()))?;
        left -= n as u64;
        seed += 1;
    }
    f.sync_all()
        .with_context(|| format!("failed to sync {}", path.display()))
}
