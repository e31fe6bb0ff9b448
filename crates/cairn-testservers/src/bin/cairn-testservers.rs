//! `cairn-testservers s3 [--port P] [--root DIR]`: the in-process test S3
//! server, out of process, for xtask and CI. Prints `KEY=value` lines
//! (endpoint, bucket, region, keys) on stdout, then serves until killed.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use cairn_testservers::{S3Server, S3ServerOptions};

const USAGE: &str = "usage: cairn-testservers s3 [--port PORT] [--root DIR]\n\
  Serves bucket cairn-test on 127.0.0.1 (SigV4 checked against a fresh key pair)\n\
  and prints CAIRN_TEST_S3_{ENDPOINT,BUCKET,REGION,KEY_ID,SECRET}=value lines.\n\
  --port PORT  listen on this port (default: a free one)\n\
  --root DIR   keep the data in DIR (default: a temporary directory, removed on exit)";

fn parse(args: &[String]) -> Result<S3ServerOptions, String> {
    let mut options = S3ServerOptions::default();
    let mut args = args.iter();
    match args.next().map(String::as_str) {
        Some("s3") => {}
        Some(other) => return Err(format!("unknown server kind {other:?}")),
        None => return Err("which server? (s3)".into()),
    }
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--port" => {
                let value = args.next().ok_or("--port needs a value")?;
                let port = value
                    .parse::<u16>()
                    .map_err(|_| format!("--port {value:?} is not a port number"))?;
                options.port = Some(port);
            }
            "--root" => {
                let value = args.next().ok_or("--root needs a directory")?;
                options.root = Some(PathBuf::from(value));
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(options)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let options = match parse(&args) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("cairn-testservers: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let server = match S3Server::start_with(options) {
        Ok(server) => server,
        Err(e) => {
            eprintln!("cairn-testservers: {e}");
            return ExitCode::from(4);
        }
    };
    let lines = format!(
        "CAIRN_TEST_S3_ENDPOINT={}\nCAIRN_TEST_S3_BUCKET={}\nCAIRN_TEST_S3_REGION={}\n\
         CAIRN_TEST_S3_KEY_ID={}\nCAIRN_TEST_S3_SECRET={}\n",
        server.endpoint(),
        server.bucket(),
        server.region(),
        server.access_key_id(),
        server.secret_access_key(),
    );
    let mut stdout = std::io::stdout().lock();
    if stdout
        .write_all(lines.as_bytes())
        .and_then(|()| stdout.flush())
        .is_err()
    {
        return ExitCode::from(4);
    }
    drop(stdout);
    // Serve until killed; the runtime's threads do the work.
    loop {
        std::thread::park();
    }
}
