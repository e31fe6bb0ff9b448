//! `[monitoring]`: knowing that backups run. The config section, the
//! Prometheus textfile (read, update, written atomically) and the
//! `on_success`/`on_failure` hooks. The front end decides when each runs
//! (it wraps every command); pinging `ping_url` is the front end's too,
//! since it is the engine's only network traffic and has nothing to do
//! with stores.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::error::{Error, Result};

/// The commands `ping_url` is pinged for unless `ping_commands` says
/// otherwise: the ones a schedule runs.
pub const DEFAULT_PING_COMMANDS: &[&str] = &["snapshot", "push", "drill", "validate", "prune"];
pub const DEFAULT_PING_TIMEOUT_SECONDS: u64 = 5;
pub const DEFAULT_HOOK_TIMEOUT_SECONDS: u64 = 60;
/// An old textfile bigger than this is not read (it is not ours, or is
/// garbage): it is replaced.
const TEXTFILE_READ_CAP: u64 = 1 << 20;

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RawMonitoring {
    pub ping_url: Option<String>,
    pub ping_timeout_seconds: Option<u64>,
    pub ping_commands: Option<Vec<String>>,
    pub textfile: Option<String>,
    pub on_success: Option<Vec<String>>,
    pub on_failure: Option<Vec<String>>,
    pub hook_timeout_seconds: Option<u64>,
}

/// `[monitoring]`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Monitoring {
    /// A healthchecks.io-style URL: `<url>/start`, `<url>`, `<url>/fail`.
    /// It usually holds a secret token: show it only through [`redact_url`].
    pub ping_url: Option<String>,
    pub ping_timeout: Duration,
    pub ping_commands: Vec<String>,
    /// Absolute (resolved against the config file's directory).
    pub textfile: Option<PathBuf>,
    pub on_success: Option<Vec<String>>,
    pub on_failure: Option<Vec<String>>,
    pub hook_timeout: Duration,
}

impl Default for Monitoring {
    fn default() -> Self {
        Monitoring {
            ping_url: None,
            ping_timeout: Duration::from_secs(DEFAULT_PING_TIMEOUT_SECONDS),
            ping_commands: DEFAULT_PING_COMMANDS
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            textfile: None,
            on_success: None,
            on_failure: None,
            hook_timeout: Duration::from_secs(DEFAULT_HOOK_TIMEOUT_SECONDS),
        }
    }
}

impl Monitoring {
    pub(crate) fn from_raw(raw: RawMonitoring, file: &Path, base: &Path) -> Result<Monitoring> {
        let bad = |m: String| Error::config(file, format!("[monitoring] {m}"));
        if let Some(url) = &raw.ping_url {
            if !(url.starts_with("http://") || url.starts_with("https://"))
                || url.len() > 2048
                || url.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                return Err(bad(format!(
                    "ping_url {} must be an http:// or https:// URL without spaces",
                    redact_url(url)
                )));
            }
        }
        let seconds = |key: &str, value: Option<u64>, default: u64| match value {
            None => Ok(Duration::from_secs(default)),
            Some(n @ 1..=3600) => Ok(Duration::from_secs(n)),
            Some(n) => Err(bad(format!("{key} must be 1 to 3600 seconds, not {n}"))),
        };
        let ping_timeout = seconds(
            "ping_timeout_seconds",
            raw.ping_timeout_seconds,
            DEFAULT_PING_TIMEOUT_SECONDS,
        )?;
        let hook_timeout = seconds(
            "hook_timeout_seconds",
            raw.hook_timeout_seconds,
            DEFAULT_HOOK_TIMEOUT_SECONDS,
        )?;
        for (key, argv) in [
            ("on_success", &raw.on_success),
            ("on_failure", &raw.on_failure),
        ] {
            if argv.as_ref().is_some_and(Vec::is_empty) {
                return Err(bad(format!(
                    "{key} must be a non-empty argv array, e.g. [\"logger\", \"-t\", \"cairn\"]"
                )));
            }
        }
        let textfile = match raw.textfile {
            None => None,
            Some(t) if t.is_empty() || t.ends_with('/') => {
                return Err(bad(format!("textfile {t:?} must name a file")));
            }
            Some(t) => {
                let p = Path::new(&t);
                Some(if p.is_absolute() {
                    p.to_owned()
                } else {
                    base.join(p)
                })
            }
        };
        Ok(Monitoring {
            ping_url: raw.ping_url,
            ping_timeout,
            ping_commands: raw
                .ping_commands
                .unwrap_or_else(|| Monitoring::default().ping_commands),
            textfile,
            on_success: raw.on_success,
            on_failure: raw.on_failure,
            hook_timeout,
        })
    }

    pub fn pings(&self, command: &str) -> bool {
        self.ping_url.is_some() && self.ping_commands.iter().any(|c| c == command)
    }
}

/// `scheme://host/…`: enough to say where, never the token in the path
/// (a healthchecks UUID is the whole credential) or in a query.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    // user:password@host
    let host = host.rsplit('@').next().unwrap_or(host);
    let hidden = rest.len() > host.len();
    format!(
        "{scheme}{}{host}{}",
        if scheme.is_empty() { "" } else { "://" },
        if hidden { "/…" } else { "" }
    )
}

/// Runs `on_success` or `on_failure` with `env`, bounded by the timeout.
pub fn run_hook(
    hook: &'static str,
    argv: &[String],
    env: &[(String, String)],
    timeout: Duration,
) -> Result<()> {
    crate::hooks::run_bounded(hook, argv, env, timeout)
}

/// One sample of a metric Cairn writes.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: &'static str,
    pub labels: Vec<(&'static str, String)>,
    pub value: f64,
}

/// Every metric Cairn writes, with its HELP text; all are gauges.
pub const METRICS: &[(&str, &str)] = &[
    (
        "cairn_last_success_timestamp_seconds",
        "Unix time of the last run of a command that exited 0, per store it covered",
    ),
    (
        "cairn_snapshot_bytes",
        "Bytes each store holds in the newest snapshot cairn snapshot took",
    ),
    (
        "cairn_drill_ok",
        "1 if the last cairn drill passed every check, 0 if it did not",
    ),
    (
        "cairn_drill_restore_seconds",
        "Wall time of the last drill's restore: the restore time objective measured",
    ),
    (
        "cairn_snapshot_age_seconds",
        "Age of the snapshot the last snapshot or drill run was about, when it ran",
    ),
    (
        "cairn_validate_problems",
        "Problems the last cairn validate found, over every snapshot it checked",
    ),
];

type Key = (String, Vec<(String, String)>);

/// Reads `path` (ours from an earlier run, or absent, or garbage), puts
/// `samples` in place of those with the same name and labels, and writes
/// the whole file again atomically: a temp file in the same directory,
/// fsynced, renamed over it, the directory fsynced. node_exporter never
/// sees half a file, and other commands' last values stay.
pub fn update_textfile(path: &Path, samples: &[Sample]) -> Result<()> {
    let mut all: BTreeMap<Key, f64> = read_textfile(path);
    for s in samples {
        let labels = s
            .labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        all.insert((s.name.to_owned(), labels), s.value);
    }
    crate::fsutil::write_atomic_mode(path, render_textfile(&all).as_bytes(), 0o644)
}

/// The samples of known metrics in an earlier file; anything else
/// (other metrics, lines that do not parse, a file too big, not a
/// regular file) is dropped: this file is Cairn's alone.
fn read_textfile(path: &Path) -> BTreeMap<Key, f64> {
    let mut out = BTreeMap::new();
    let Ok(file) = crate::fsutil::open_nofollow(path) else {
        return out;
    };
    let mut text = String::new();
    if file
        .take(TEXTFILE_READ_CAP)
        .read_to_string(&mut text)
        .is_err()
    {
        return out;
    }
    for line in text.lines() {
        if let Some((key, value)) = parse_sample(line) {
            if METRICS.iter().any(|(name, _)| *name == key.0) {
                out.insert(key, value);
            }
        }
    }
    out
}

/// `name{a="x",b="y"} value` (the subset of the text format Cairn writes).
fn parse_sample(line: &str) -> Option<(Key, f64)> {
    if line.starts_with('#') {
        return None;
    }
    let name_end = line.find(['{', ' '])?;
    let name = &line[..name_end];
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(after) = rest.strip_prefix('{') {
        let mut chars = after.char_indices();
        let mut label = String::new();
        loop {
            let (i, c) = chars.next()?;
            match c {
                '}' if label.is_empty() => {
                    rest = &after[i + 1..];
                    break;
                }
                ',' if label.is_empty() => {}
                '=' => {
                    if chars.next()?.1 != '"' {
                        return None;
                    }
                    let mut value = String::new();
                    loop {
                        match chars.next()?.1 {
                            '"' => break,
                            '\\' => match chars.next()?.1 {
                                'n' => value.push('\n'),
                                '\\' => value.push('\\'),
                                '"' => value.push('"'),
                                _ => return None,
                            },
                            other => value.push(other),
                        }
                    }
                    labels.push((std::mem::take(&mut label), value));
                }
                c if c.is_ascii_alphanumeric() || c == '_' => label.push(c),
                _ => return None,
            }
        }
    }
    let value: f64 = rest.trim().split(' ').next()?.parse().ok()?;
    Some(((name.to_owned(), labels), value))
}

fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn render_textfile(all: &BTreeMap<Key, f64>) -> String {
    let mut s = String::new();
    for (name, help) in METRICS {
        let samples: Vec<_> = all.iter().filter(|((n, _), _)| n == name).collect();
        if samples.is_empty() {
            continue;
        }
        s.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n"));
        for ((_, labels), value) in samples {
            s.push_str(name);
            if !labels.is_empty() {
                let inner: Vec<String> = labels
                    .iter()
                    .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
                    .collect();
                s.push_str(&format!("{{{}}}", inner.join(",")));
            }
            s.push_str(&format!(" {value}\n"));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn urls_are_shown_without_their_token() {
        assert_eq!(
            redact_url("https://hc-ping.com/1f2e3d4c-aaaa-bbbb-cccc-123456789abc"),
            "https://hc-ping.com/…"
        );
        assert_eq!(
            redact_url("http://user:pw@127.0.0.1:8080/x?y"),
            "http://127.0.0.1:8080/…"
        );
        assert_eq!(redact_url("http://host"), "http://host");
    }

    #[test]
    fn samples_round_trip_with_escaped_labels_and_garbage_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cairn.prom");
        fs::write(
            &path,
            "garbage {{{\ncairn_drill_ok 1\nother_metric 3\ncairn_drill_ok{a=\"x\" 2\n",
        )
        .unwrap();
        update_textfile(
            &path,
            &[Sample {
                name: "cairn_last_success_timestamp_seconds",
                labels: vec![
                    ("command", "snapshot".into()),
                    ("store", "we\"ird\\\n".into()),
                ],
                value: 1.5e9,
            }],
        )
        .unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert!(
            !text.contains("garbage") && !text.contains("other_metric"),
            "{text}"
        );
        assert!(text.contains("cairn_drill_ok 1\n"), "{text}");
        assert!(
            text.contains("cairn_last_success_timestamp_seconds{command=\"snapshot\",store=\"we\\\"ird\\\\\\n\"} 1500000000\n"),
            "{text}"
        );
        let again = read_textfile(&path);
        assert_eq!(again.len(), 2);
        assert!(again.contains_key(&(
            "cairn_last_success_timestamp_seconds".to_owned(),
            vec![
                ("command".into(), "snapshot".into()),
                ("store".into(), "we\"ird\\\n".into())
            ]
        )));
    }
}
