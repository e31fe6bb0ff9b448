//! `[monitoring]` around every command: a healthchecks-style ping when a
//! command starts and when it ends, the Prometheus textfile, and the
//! `on_success`/`on_failure` hooks. Keyed by the subcommand's name as clap
//! knows it, so a command added later is monitored without a line here.
//!
//! Nothing here can fail or hold up the command it watches: each ping is
//! bounded by `ping_timeout_seconds` (the start ping runs on its own
//! thread while the command works), each hook by `hook_timeout_seconds`,
//! and every failure is one `warning:` line on stderr.

use std::thread::JoinHandle;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use cairn_engine::monitoring::{self, redact_url, Sample};
use cairn_engine::{Config, Error, Result};
use serde_json::Value;

use crate::{contract, render, Output};

/// The failure body sent to `<ping_url>/fail` is cut to this many bytes.
const FAIL_BODY_MAX: usize = 1000;

pub struct Monitor {
    command: String,
    quiet: bool,
    started: Instant,
    start_ping: Option<JoinHandle<Option<String>>>,
}

impl Monitor {
    /// Sends `<ping_url>/start` in the background when this command pings.
    pub fn start(cfg: &Config, command: &str, quiet: bool) -> Monitor {
        let start_ping = match &cfg.monitoring.ping_url {
            Some(url) if cfg.monitoring.pings(command) => {
                let url = format!("{}/start", url.trim_end_matches('/'));
                let timeout = cfg.monitoring.ping_timeout;
                Some(std::thread::spawn(move || ping(&url, "", timeout).err()))
            }
            _ => None,
        };
        Monitor {
            command: command.to_owned(),
            quiet,
            started: Instant::now(),
            start_ping,
        }
    }

    /// The end of the command: the success or failure ping, the textfile,
    /// the hook. Returns nothing: what fails here is printed as a warning.
    pub fn finish(self, cfg: &Config, result: &Result<Output>) {
        let mon = &cfg.monitoring;
        let exit_code = match result {
            Ok(o) if o.sound => contract::OK,
            Ok(_) => contract::UNSOUND,
            Err(e) => contract::exit_code(e),
        };
        let message = match result {
            Ok(o) if o.sound => String::new(),
            Ok(o) => unsound_summary(&self.command, &o.json),
            Err(e) => contract::message(e),
        };
        let mut warnings = Vec::new();
        if let Some(handle) = self.start_ping {
            if let Ok(Some(w)) = handle.join() {
                warnings.push(w);
            }
        }
        if let Some(url) = mon.ping_url.as_ref().filter(|_| mon.pings(&self.command)) {
            let base = url.trim_end_matches('/');
            let (url, body) = if exit_code == contract::OK {
                (base.to_owned(), String::new())
            } else {
                let body = truncate(
                    &format!("cairn {}: exit {exit_code}: {message}", self.command),
                    FAIL_BODY_MAX,
                );
                (format!("{base}/fail"), body)
            };
            if let Err(w) = ping(&url, &body, mon.ping_timeout) {
                warnings.push(w);
            }
        }
        if let Some(path) = &mon.textfile {
            let samples = samples(&self.command, cfg, result, exit_code);
            if !samples.is_empty() {
                if let Err(e) = monitoring::update_textfile(path, &samples) {
                    warnings.push(format!("[monitoring] textfile not written: {e}"));
                }
            }
        }
        let (hook, argv) = if exit_code == contract::OK {
            ("on_success", &mon.on_success)
        } else {
            ("on_failure", &mon.on_failure)
        };
        if let Some(argv) = argv {
            let env = hook_env(
                &self.command,
                cfg,
                result,
                exit_code,
                &message,
                self.started.elapsed().as_secs_f64(),
            );
            if let Err(e) = monitoring::run_hook(hook, argv, &env, mon.hook_timeout) {
                warnings.push(format!("[monitoring] {e}"));
            }
        }
        if !self.quiet {
            for w in warnings {
                eprintln!("warning: {}", render::clean(&w));
            }
        }
    }
}

/// One POST, bounded by `timeout` from connect to the last byte of the
/// answer. The error names the URL only redacted: the token in its path
/// is the whole credential, and library errors may quote the URL.
fn ping(url: &str, body: &str, timeout: std::time::Duration) -> std::result::Result<(), String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .user_agent(concat!("cairn/", env!("CARGO_PKG_VERSION")))
        .build()
        .into();
    let shown = redact_url(url);
    let scrub = |text: String| {
        let path = url.split_once("://").map_or(url, |(_, rest)| rest);
        text.replace(url, &shown).replace(path, "…")
    };
    match agent.post(url).send(body) {
        Ok(response) if response.status().is_success() => Ok(()),
        Ok(response) => Err(format!(
            "[monitoring] ping {shown} answered HTTP {}",
            response.status().as_u16()
        )),
        Err(e) => Err(format!(
            "[monitoring] ping {shown} failed: {}",
            scrub(e.to_string())
        )),
    }
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// Why a command that ran was not sound, from its JSON document.
fn unsound_summary(command: &str, doc: &Value) -> String {
    let failed_checks: Vec<String> = doc["checks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["ok"] == false)
        .map(|c| {
            format!(
                "{} {}: {}",
                c["store"].as_str().unwrap_or(""),
                c["check"].as_str().unwrap_or(""),
                c["detail"].as_str().unwrap_or("")
            )
        })
        .collect();
    if !failed_checks.is_empty() {
        return failed_checks.join("; ");
    }
    let unsound: Vec<String> = doc["results"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["valid"] == false)
        .map(|r| {
            let codes: Vec<&str> = r["errors"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p["code"].as_str())
                .collect();
            format!("{}: {}", r["id"].as_str().unwrap_or("?"), codes.join(", "))
        })
        .collect();
    if !unsound.is_empty() {
        return unsound.join("; ");
    }
    format!("{command} ran but found something not sound")
}

fn now_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64().floor())
}

/// The stores a command's document says it covered: a snapshot's
/// `stores`, a drill's checks' stores. Empty for a command about the
/// repository as a whole (prune, validate).
fn stores_covered(doc: &Value) -> Vec<String> {
    let mut named: Vec<String> = doc["stores"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["name"].as_str())
        .chain(
            doc["checks"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c["store"].as_str()),
        )
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    named.sort();
    named.dedup();
    named
}

/// The metrics a finished command sets. Only monitored commands (those
/// that ping) record their last success, so `cairn list` does not count
/// as a backup that ran.
fn samples(command: &str, cfg: &Config, result: &Result<Output>, exit_code: u8) -> Vec<Sample> {
    let mut out = Vec::new();
    let doc = result.as_ref().map(|o| &o.json).ok();
    if exit_code == contract::OK && cfg.monitoring.ping_commands.iter().any(|c| c == command) {
        let now = now_seconds();
        let stores = doc.map(stores_covered).unwrap_or_default();
        let stores = if stores.is_empty() {
            vec![String::new()]
        } else {
            stores
        };
        for store in stores {
            out.push(Sample {
                name: "cairn_last_success_timestamp_seconds",
                labels: vec![("command", command.to_owned()), ("store", store)],
                value: now,
            });
        }
    }
    match (command, doc) {
        ("snapshot", Some(doc)) => {
            for s in doc["stores"].as_array().into_iter().flatten() {
                if let (Some(name), Some(bytes)) = (s["name"].as_str(), s["bytes"].as_u64()) {
                    out.push(Sample {
                        name: "cairn_snapshot_bytes",
                        labels: vec![("store", name.to_owned())],
                        value: bytes as f64,
                    });
                }
            }
            out.push(Sample {
                name: "cairn_snapshot_age_seconds",
                labels: Vec::new(),
                value: 0.0,
            });
        }
        ("drill", Some(doc)) => {
            out.push(Sample {
                name: "cairn_drill_ok",
                labels: Vec::new(),
                value: if doc["ok"] == true { 1.0 } else { 0.0 },
            });
            if let Some(secs) = doc["restore_seconds"].as_f64() {
                out.push(Sample {
                    name: "cairn_drill_restore_seconds",
                    labels: Vec::new(),
                    value: secs,
                });
            }
            if let Some(age) = doc["snapshot_age_seconds"].as_i64() {
                out.push(Sample {
                    name: "cairn_snapshot_age_seconds",
                    labels: Vec::new(),
                    value: age as f64,
                });
            }
        }
        // A drill that could not even start failed all the same.
        ("drill", None) => out.push(Sample {
            name: "cairn_drill_ok",
            labels: Vec::new(),
            value: 0.0,
        }),
        ("validate", Some(doc)) => {
            let problems: usize = doc["results"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| r["errors"].as_array().map_or(0, Vec::len))
                .sum();
            out.push(Sample {
                name: "cairn_validate_problems",
                labels: Vec::new(),
                value: problems as f64,
            });
        }
        _ => {}
    }
    out
}

/// What a hook learns about the run, as `CAIRN_*` variables.
fn hook_env(
    command: &str,
    cfg: &Config,
    result: &Result<Output>,
    exit_code: u8,
    message: &str,
    seconds: f64,
) -> Vec<(String, String)> {
    let mut env = vec![
        ("CAIRN_COMMAND".to_owned(), command.to_owned()),
        (
            "CAIRN_RESULT".to_owned(),
            if exit_code == contract::OK {
                "success"
            } else {
                "failure"
            }
            .to_owned(),
        ),
        ("CAIRN_EXIT_CODE".to_owned(), exit_code.to_string()),
        ("CAIRN_MESSAGE".to_owned(), truncate(message, 4000)),
        ("CAIRN_CONFIG".to_owned(), cfg.file.display().to_string()),
        (
            "CAIRN_REPOSITORY".to_owned(),
            cfg.repository.display().to_string(),
        ),
        ("CAIRN_DURATION_SECONDS".to_owned(), format!("{seconds:.3}")),
    ];
    if let Ok(o) = result {
        if let Some(id) = o.json["id"].as_str() {
            env.push(("CAIRN_SNAPSHOT_ID".to_owned(), id.to_owned()));
        }
    }
    if let Err(e) = result {
        if matches!(e.cause(), Error::Interrupted { .. }) {
            env.push(("CAIRN_INTERRUPTED".to_owned(), "1".to_owned()));
        }
    }
    env
}
