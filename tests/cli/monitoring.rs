//! `[monitoring]` (issue 17, point 3) through the real binary: the ping
//! server is a thread on 127.0.0.1, the textfile is parsed strictly, the
//! hooks see the run in `CAIRN_*` variables.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;

use crate::support::{self, Env, CONFIG};

/// A healthchecks stand-in: every request's method, path and body, in the
/// order they came.
struct PingServer {
    url: String,
    requests: mpsc::Receiver<(String, String, String)>,
}

impl PingServer {
    fn start() -> PingServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!(
            "http://127.0.0.1:{}/ping/0b7e1d7c-secret-token",
            listener.local_addr().unwrap().port()
        );
        let (tx, requests) = mpsc::channel();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                serve(stream, &tx);
            }
        });
        PingServer { url, requests }
    }

    fn seen(&self) -> Vec<(String, String, String)> {
        self.requests.try_iter().collect()
    }
}

/// Records the request before answering it, so that when `cairn` has
/// its answer (and exits), the test sees the request.
fn serve(stream: TcpStream, tx: &mpsc::Sender<(String, String, String)>) -> Option<()> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next()?.to_owned(), parts.next()?.to_owned());
    let mut length = 0usize;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((k, v)) = header.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().ok()?;
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    tx.send((method, path, String::from_utf8_lossy(&body).into_owned()))
        .ok()?;
    let mut stream = stream;
    stream
        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nOK")
        .ok()
}

fn env_with(monitoring: &str) -> Env {
    let env = Env::new();
    env.write_config(&format!("{CONFIG}\n[monitoring]\n{monitoring}\n"));
    env
}

#[test]
fn pings_start_then_success_and_start_then_fail_with_a_short_body() {
    let server = PingServer::start();
    let env = env_with(&format!("ping_url = \"{}\"\n", server.url));
    let id = env.snapshot(&[]);
    let failed = env.cairn(&["validate", "20990101T000000Z"]);
    assert_ne!(failed.code, 0);
    // Not a monitored command: no ping.
    assert_eq!(env.cairn(&["list"]).code, 0);
    let seen = server.seen();
    let paths: Vec<(&str, &str)> = seen
        .iter()
        .map(|(m, p, _)| (m.as_str(), p.as_str()))
        .collect();
    assert_eq!(
        paths,
        vec![
            ("POST", "/ping/0b7e1d7c-secret-token/start"),
            ("POST", "/ping/0b7e1d7c-secret-token"),
            ("POST", "/ping/0b7e1d7c-secret-token/start"),
            ("POST", "/ping/0b7e1d7c-secret-token/fail"),
        ],
        "after snapshot {id}"
    );
    let body = &seen[3].2;
    assert!(
        body.starts_with("cairn validate: exit ") && body.contains("20990101T000000Z"),
        "{body}"
    );
    assert!(body.len() <= 1010, "{}", body.len());
}

#[test]
fn a_ping_server_that_hangs_neither_fails_nor_blocks_the_snapshot() {
    // Accepts connections and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            held.push(stream);
        }
    });
    let env = env_with(&format!(
        "ping_url = \"http://127.0.0.1:{port}/1f2e3d4c-token\"\nping_timeout_seconds = 1\n"
    ));
    let run = env.cairn(&["snapshot"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains(&format!(
            "warning: [monitoring] ping http://127.0.0.1:{port}/… failed"
        )),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("1f2e3d4c-token"),
        "the token leaked: {}",
        run.stderr
    );
    assert_eq!(env.listed_ids().len(), 1);
    // Nothing listening at all: the same.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    env.write_config(&format!(
        "{CONFIG}\n[monitoring]\nping_url = \"http://127.0.0.1:{port}/tok\"\nping_timeout_seconds = 1\n"
    ));
    let run = env.cairn(&["--json", "snapshot"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    run.json();
}

/// Samples by metric name and labels.
type Metrics = BTreeMap<(String, Vec<(String, String)>), f64>;

/// A strict reader of the Prometheus text format as Cairn writes it: each
/// metric's `# HELP` then `# TYPE … gauge` before its samples, names and
/// label names as the format allows, label values with only `\\`, `\"`
/// and `\n` escapes, a float value, nothing else. Strict on purpose (a
/// lenient parser crate would accept what node_exporter rejects), and no
/// new dependency for one test.
fn parse_prometheus(text: &str) -> Metrics {
    fn name_ok(n: &str) -> bool {
        !n.is_empty()
            && !n.starts_with(|c: char| c.is_ascii_digit())
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    }
    let mut samples = BTreeMap::new();
    let mut helped = Vec::new();
    let mut typed = Vec::new();
    assert!(text.ends_with('\n'), "no final newline: {text:?}");
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("HELP text");
            assert!(name_ok(name) && !help.is_empty(), "{line}");
            assert!(!helped.contains(&name.to_owned()), "HELP twice: {line}");
            helped.push(name.to_owned());
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE kind");
            assert_eq!(kind, "gauge", "{line}");
            assert_eq!(
                helped.last().map(String::as_str),
                Some(name),
                "TYPE before HELP: {line}"
            );
            typed.push(name.to_owned());
            continue;
        }
        assert!(!line.starts_with('#'), "unexpected comment {line}");
        let name_end = line.find(['{', ' ']).expect("sample");
        let name = &line[..name_end];
        assert!(name_ok(name), "{line}");
        assert_eq!(
            typed.last().map(String::as_str),
            Some(name),
            "sample before its TYPE: {line}"
        );
        let mut rest = &line[name_end..];
        let mut labels = Vec::new();
        if let Some(inner) = rest.strip_prefix('{') {
            let mut chars = inner.char_indices().peekable();
            loop {
                let mut label = String::new();
                while let Some(&(_, c)) = chars.peek() {
                    if c == '=' {
                        break;
                    }
                    label.push(c);
                    chars.next();
                }
                assert!(name_ok(&label), "label name {label:?} in {line}");
                assert_eq!(chars.next().map(|x| x.1), Some('='), "{line}");
                assert_eq!(chars.next().map(|x| x.1), Some('"'), "{line}");
                let mut value = String::new();
                loop {
                    match chars.next().expect("unterminated label value").1 {
                        '"' => break,
                        '\\' => match chars.next().expect("escape").1 {
                            'n' => value.push('\n'),
                            '\\' => value.push('\\'),
                            '"' => value.push('"'),
                            other => panic!("bad escape \\{other} in {line}"),
                        },
                        '\n' => panic!("raw newline in {line}"),
                        c => value.push(c),
                    }
                }
                labels.push((label, value));
                match chars.next().expect("label list end") {
                    (_, ',') => continue,
                    (i, '}') => {
                        rest = &inner[i + 1..];
                        break;
                    }
                    (_, c) => panic!("unexpected {c:?} in {line}"),
                }
            }
        }
        let value = rest.strip_prefix(' ').expect("space before the value");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("value {value:?} in {line}"));
        assert!(
            samples.insert((name.to_owned(), labels), value).is_none(),
            "duplicate {line}"
        );
    }
    samples
}

fn get(metrics: &Metrics, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let labels: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    metrics.get(&(name.to_owned(), labels)).copied()
}

#[test]
fn the_textfile_parses_and_carries_the_last_drills_result() {
    let env = env_with("textfile = \"metrics/cairn.prom\"\n");
    std::fs::create_dir(env.path("metrics")).unwrap();
    let prom = env.path("metrics/cairn.prom");
    // A garbled file left by something else: replaced, not a failure.
    std::fs::write(&prom, "cairn_drill_ok{{{ nonsense\n\0\u{1}").unwrap();
    let id = env.snapshot(&[]);
    let scratch = tempfile::tempdir().unwrap();
    let drill = env.cairn(&["drill", "--scratch", scratch.path().to_str().unwrap()]);
    assert_eq!(drill.code, 0, "{}", drill.stderr);
    assert_eq!(env.cairn(&["validate", "--latest"]).code, 0);

    let metrics = parse_prometheus(&std::fs::read_to_string(&prom).unwrap());
    assert_eq!(get(&metrics, "cairn_drill_ok", &[]), Some(1.0));
    assert!(get(&metrics, "cairn_drill_restore_seconds", &[]).is_some_and(|s| s >= 0.0));
    let db_bytes = get(&metrics, "cairn_snapshot_bytes", &[("store", "db")]).expect("db bytes");
    let live = std::fs::metadata(env.snapshot_dir(&id).join("stores/db/atocore.db")).unwrap();
    assert_eq!(db_bytes, live.len() as f64);
    let snap_ok = get(
        &metrics,
        "cairn_last_success_timestamp_seconds",
        &[("command", "snapshot"), ("store", "db")],
    )
    .expect("snapshot's last success");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        snap_ok > now - 3600.0 && snap_ok <= now,
        "{snap_ok} vs {now}"
    );
    assert!(get(
        &metrics,
        "cairn_last_success_timestamp_seconds",
        &[("command", "drill"), ("store", "chroma")],
    )
    .is_some());
    assert_eq!(get(&metrics, "cairn_validate_problems", &[]), Some(0.0));
    assert!(get(
        &metrics,
        "cairn_last_success_timestamp_seconds",
        &[("command", "validate"), ("store", "")],
    )
    .is_some());
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&prom).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o644, "node_exporter must be able to read it");

    // A drill that fails: drill_ok drops to 0, the snapshot's success stays,
    // and no temp file is left beside the textfile.
    env.unlock_snapshot(&id);
    support::flip_byte(
        &env.snapshot_dir(&id)
            .join("stores/chroma/seg-0001/data_level0.bin"),
        4242,
        0x80,
    );
    let drill = env.cairn(&["drill", "--scratch", scratch.path().to_str().unwrap()]);
    assert_eq!(drill.code, 1, "{}", drill.stderr);
    let validate = env.cairn(&["validate", "--latest"]);
    assert_eq!(validate.code, 1);
    let metrics = parse_prometheus(&std::fs::read_to_string(&prom).unwrap());
    assert_eq!(get(&metrics, "cairn_drill_ok", &[]), Some(0.0));
    assert_eq!(get(&metrics, "cairn_validate_problems", &[]), Some(1.0));
    assert_eq!(
        get(
            &metrics,
            "cairn_last_success_timestamp_seconds",
            &[("command", "snapshot"), ("store", "db")],
        ),
        Some(snap_ok)
    );
    assert_eq!(support::dir_names(&env.path("metrics")), vec!["cairn.prom"]);
}

#[test]
fn the_textfile_is_readable_by_node_exporter_whatever_the_umask() {
    let env = env_with("textfile = \"metrics/cairn.prom\"\n");
    std::fs::create_dir_all(env.path("metrics")).unwrap();
    let run = support::run_with_umask(&env, 0o077, &["snapshot"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let prom = env.path("metrics/cairn.prom");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&prom).unwrap().permissions());
    assert_eq!(
        mode & 0o777,
        0o644,
        "umask 077 must not hide it from node_exporter"
    );
    let text = std::fs::read_to_string(&prom).unwrap();
    assert!(get(
        &parse_prometheus(&text),
        "cairn_snapshot_bytes",
        &[("store", "db")]
    )
    .is_some());
}

#[test]
fn hooks_get_the_run_in_cairn_variables_and_a_hung_hook_is_killed() {
    let env = env_with("on_success = [\"env\"]\non_failure = [\"env\"]\n");
    let ok = env.cairn(&["--json", "snapshot"]);
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    let id = ok.json()["id"].as_str().unwrap().to_owned();
    // The hook's stdout goes to stderr: stdout stays one JSON document.
    for line in [
        "CAIRN_COMMAND=snapshot",
        "CAIRN_RESULT=success",
        "CAIRN_EXIT_CODE=0",
        &format!("CAIRN_SNAPSHOT_ID={id}"),
    ] {
        assert!(
            ok.stderr.lines().any(|l| l == line),
            "{line} not in {}",
            ok.stderr
        );
    }
    let failed = env.cairn(&["show", "20990101T000000Z"]);
    assert_ne!(failed.code, 0);
    assert!(
        failed.stderr.lines().any(|l| l == "CAIRN_COMMAND=show"),
        "{}",
        failed.stderr
    );
    assert!(
        failed.stderr.lines().any(|l| l == "CAIRN_RESULT=failure"),
        "{}",
        failed.stderr
    );
    assert!(
        failed
            .stderr
            .lines()
            .any(|l| l == format!("CAIRN_EXIT_CODE={}", failed.code)),
        "{}",
        failed.stderr
    );
    assert!(
        failed
            .stderr
            .lines()
            .any(|l| l.starts_with("CAIRN_MESSAGE=") && l.contains("20990101T000000Z")),
        "{}",
        failed.stderr
    );

    env.write_config(&format!(
        "{CONFIG}\n[monitoring]\non_success = [\"sleep\", \"600\"]\nhook_timeout_seconds = 1\n"
    ));
    let run = env.cairn(&["list"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains(
            "warning: [monitoring] hook on_success (sleep 600): still running after 1s; killed"
        ),
        "{}",
        run.stderr
    );
}

#[test]
fn bad_monitoring_keys_are_config_errors_naming_them() {
    for (text, named) in [
        ("ping_url = \"ftp://x/y\"", "ping_url"),
        ("ping_timeout_seconds = 0", "ping_timeout_seconds"),
        ("on_failure = []", "on_failure"),
        ("textfile = \"\"", "textfile"),
        ("pingurl = \"http://x\"", "pingurl"),
    ] {
        let env = env_with(text);
        let run = env.cairn(&["list"]);
        assert_eq!(run.code, 2, "{text}: {}", run.stderr);
        assert!(run.stderr.contains(named), "{text}: {}", run.stderr);
    }
    // The token of a refused URL is not printed either.
    let env = env_with("ping_url = \"http://host/secret token\"");
    let run = env.cairn(&["list"]);
    assert_eq!(run.code, 2);
    assert!(!run.stderr.contains("secret"), "{}", run.stderr);
}

#[test]
#[ignore = "needs root"]
fn as_root_monitoring_hooks_and_drill_commands_another_user_owns_are_refused() {
    use std::os::unix::fs::{chown, PermissionsExt};
    support::require_root();
    const NOBODY: u32 = 65534;
    let env = Env::new();
    let marker = env.path("hook-ran");
    let hook = env.path("hook.sh");
    std::fs::write(&hook, "#!/bin/sh\ntouch \"$1\"\n").unwrap();
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    chown(&hook, Some(NOBODY), None).unwrap();
    let argv = format!(
        "[{:?}, {:?}]",
        hook.to_str().unwrap(),
        marker.to_str().unwrap()
    );
    for (config, key) in [
        (
            format!("{CONFIG}\n[monitoring]\non_success = {argv}\n"),
            "on_success",
        ),
        (
            format!("{CONFIG}\n[monitoring]\non_failure = {argv}\n"),
            "on_failure",
        ),
        (
            CONFIG.replacen(
                "path = \"data/atocore.db\"",
                &format!("path = \"data/atocore.db\"\ndrill_command = {argv}"),
                1,
            ),
            "drill_command",
        ),
    ] {
        env.write_config(&config);
        let run = env.cairn(&["list"]);
        assert_eq!(run.code, 2, "{key}: {}", run.stderr);
        assert!(
            run.stderr.contains(key) && run.stderr.contains(&format!("owner uid {NOBODY}")),
            "{key}: {}",
            run.stderr
        );
        assert!(!marker.exists(), "{key}: the hook ran");
    }
    // Root's own hook runs.
    chown(&hook, Some(0), None).unwrap();
    env.write_config(&format!("{CONFIG}\n[monitoring]\non_success = {argv}\n"));
    assert_eq!(env.cairn(&["list"]).code, 0);
    assert!(marker.exists(), "the trusted hook did not run");
}
