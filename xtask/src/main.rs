//! `cargo xtask <task>`: the project's automation, in Rust so it runs
//! anywhere the toolchain does.

mod bench;
mod drill;
mod fuzz;
mod man;
mod util;

use std::process::ExitCode;

const HELP: &str = "\
usage: cargo xtask <task> [options]

tasks:
  drill [--keep]                  build cairn and run the canonical restore drill end to end
                                  (snapshot, mutate, stop, restore, verify, drill, prune);
                                  --keep keeps the scratch directory and prints its path
  man                             write the man pages to target/man/ (cairn.1, cairn-<command>.1)
  bench [--size small|default|large|huge] [--runs N] [--cairn PATH]
                                  time cairn against cp -a, cp -a + sync, the reference
                                  algorithm + sync (python3), and sqlite3/restic/borg when
                                  installed, on a cached fixture (huge: 1,000,000 files);
                                  the floors under each target (hash-floor, copy-floor,
                                  cp -al + sync);
                                  full, nothing-changed and one-commit snapshots, ls and
                                  show of every entry; push and
                                  pull against an S3 server on 127.0.0.1 next to one multipart
                                  PUT of the same bytes (bytes and requests per push); writes
                                  docs/performance.md (--cairn PATH: measure that binary
                                  instead, print only)
  fuzz [--seconds N]              run the `manifest` fuzz target (needs cargo-fuzz)
  hash-floor PATH...              SHA-256 every regular file under the PATHs on every core,
                                  largest first, and print the time (the bench's hashing floor)
  hash-floor --files-from LIST    the same for the NUL-separated paths in LIST
  copy-floor SRC... DEST          copy every regular file under the SRCs into DEST with
                                  read/write on every core, and print the time (the copy floor)
  help                            print this message
";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let task = args.next();
    let rest: Vec<String> = args.collect();
    let result = match task.as_deref() {
        None | Some("help" | "-h" | "--help") => {
            print!("{HELP}");
            Ok(ExitCode::SUCCESS)
        }
        Some("drill") => drill::main(&rest),
        Some("man") => man::main(&rest),
        Some("bench") => bench::main(&rest),
        Some("fuzz") => fuzz::main(&rest),
        Some("hash-floor") => bench::floor::main(&rest),
        Some("copy-floor") => bench::floor::copy_main(&rest),
        Some(other) => {
            eprintln!("error: unknown task `{other}`\n\n{HELP}");
            Ok(ExitCode::from(2))
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
