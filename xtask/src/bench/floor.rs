//! The floors under the issue-15 targets, measured in the same run as
//! Cairn: what the guarantees Cairn keeps cost on this machine with
//! nothing else done. A target a floor already exceeds cannot be met
//! without dropping that guarantee; a target above its floor that Cairn
//! misses is Cairn's own overhead.
//!
//! - `cargo xtask hash-floor PATH...`: SHA-256 of every regular file under
//!   the PATHs, largest first on every core, each file read once through
//!   a 1 MiB buffer, nothing written. The contract names SHA-256 per file
//!   and issue 15 keeps two passes over every byte a snapshot writes
//!   (hashed while copied, re-read before publishing), so a full snapshot
//!   costs at least two of these and a deep validate one. One file is one
//!   hash on one core, whatever the core count: the database's hash is
//!   sequential.
//! - `cargo xtask copy-floor SRC... DEST`: every byte read, hashed and
//!   written once (read(2), SHA-256, write(2)) on every core, no sync:
//!   the copy a full snapshot or a restore makes, with the hash it takes
//!   as the bytes pass, before the re-read.
//! - `cp -al` + `sync`: a tree of hard links to every file, made durable:
//!   what a nothing-changed snapshot must at least do while a snapshot is
//!   a plain tree (the contract's layout) with no copy of an unchanged file.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use anyhow::{anyhow, Context, Result};
use sha2::{Digest, Sha256};

/// The command that hashes `paths` as [`main`] does (this xtask binary).
pub fn hash_command(paths: &[PathBuf]) -> Result<Command> {
    let me = std::env::current_exe().context("failed to find the xtask binary")?;
    let mut cmd = Command::new(me);
    cmd.arg("hash-floor").args(paths);
    Ok(cmd)
}

/// The command that makes `dest` a durable tree of hard links to `dirs`.
pub fn link_farm_command(dirs: &[PathBuf], dest: &Path) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("cp -al \"$@\" && sync")
        .arg("cp-al-sync")
        .args(dirs)
        .arg(dest);
    cmd
}

/// The command that hashes the files listed in `list` (NUL-separated), as
/// [`main`] does: a rotation's share is thousands of paths, more than a
/// command line holds.
pub fn hash_listed_command(list: &Path) -> Result<Command> {
    let mut cmd = hash_command(&[])?;
    cmd.arg("--files-from").arg(list);
    Ok(cmd)
}

/// Writes `files` as [`hash_listed_command`] reads them.
pub fn write_file_list(list: &Path, files: &[PathBuf]) -> Result<()> {
    let mut bytes = Vec::new();
    for file in files {
        bytes.extend_from_slice(file.as_os_str().as_encoded_bytes());
        bytes.push(0);
    }
    std::fs::write(list, bytes).with_context(|| format!("failed to write {}", list.display()))
}

/// `cargo xtask hash-floor PATH...` or `hash-floor --files-from LIST`.
pub fn main(args: &[String]) -> Result<ExitCode> {
    let mut files = Vec::new();
    match args {
        [flag, list] if flag == "--files-from" => {
            let bytes = std::fs::read(list).with_context(|| format!("failed to read {list}"))?;
            for path in bytes.split(|b| *b == 0).filter(|p| !p.is_empty()) {
                let path = Path::new(std::ffi::OsStr::from_bytes(path));
                collect_files(path, &mut files)?;
            }
        }
        _ if args.is_empty() || args.iter().any(|a| a.starts_with('-')) => {
            return Ok(crate::util::usage_error(
                "hash-floor wants one or more paths (files or directories), \
                 or --files-from LIST (NUL-separated paths)",
            ));
        }
        _ => {
            for arg in args {
                collect_files(Path::new(arg), &mut files)?;
            }
        }
    }
    let cores = cores();
    let started = Instant::now();
    let bytes = on_every_core(largest_first(files, cores), hash_all)?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "hashed {bytes} bytes on {cores} threads in {secs:.3} s ({:.2} GB/s)",
        bytes as f64 / secs.max(1e-9) / 1e9
    );
    Ok(ExitCode::SUCCESS)
}

/// The command that copies `dirs` into `dest` as [`copy_main`] does.
pub fn copy_command(dirs: &[PathBuf], dest: &Path) -> Result<Command> {
    let me = std::env::current_exe().context("failed to find the xtask binary")?;
    let mut cmd = Command::new(me);
    cmd.arg("copy-floor").args(dirs).arg(dest);
    Ok(cmd)
}

/// `cargo xtask copy-floor SRC... DEST`: every regular file under each
/// SRC copied to `DEST/<SRC's name>/…` through a 1 MiB buffer with
/// read(2) and write(2), each buffer hashed between the two (SHA-256),
/// largest first on every core; nothing synced, no metadata. The least
/// a snapshot or a restore pays to write every byte, in the same
/// page-cache state as the run's other commands (`cp -a` takes other
/// paths through the kernel, whose cost swings with the file system's
/// state).
pub fn copy_main(args: &[String]) -> Result<ExitCode> {
    let (Some((dest, srcs)), false) = (args.split_last(), args.iter().any(|a| a.starts_with('-')))
    else {
        return Ok(crate::util::usage_error("copy-floor wants SRC... DEST"));
    };
    if srcs.is_empty() {
        return Ok(crate::util::usage_error("copy-floor wants SRC... DEST"));
    }
    let dest = Path::new(dest);
    let mut pairs = Vec::new();
    for src in srcs {
        let src = Path::new(src);
        let base = src.parent().unwrap_or(Path::new(""));
        let mut files = Vec::new();
        collect_files(src, &mut files)?;
        for (file, size) in files {
            let rel = file.strip_prefix(base).unwrap_or(&file).to_owned();
            let to = dest.join(rel);
            if let Some(dir) = to.parent() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("failed to create {}", dir.display()))?;
            }
            pairs.push(((file, to), size));
        }
    }
    let cores = cores();
    let started = Instant::now();
    let bytes = on_every_core(largest_first(pairs, cores), copy_all)?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "copied {bytes} bytes on {cores} threads in {secs:.3} s ({:.2} GB/s)",
        bytes as f64 / secs.max(1e-9) / 1e9
    );
    Ok(ExitCode::SUCCESS)
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Runs `work` on each share on a thread of its own; the bytes it did.
fn on_every_core<T: Sync>(shares: Vec<Vec<T>>, work: fn(&[T]) -> Result<u64>) -> Result<u64> {
    let done: Vec<Result<u64>> = std::thread::scope(|scope| {
        let workers: Vec<_> = shares
            .iter()
            .map(|share| scope.spawn(move || work(share)))
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err(anyhow!("a floor's thread panicked")))
            })
            .collect()
    });
    done.into_iter().sum()
}

/// Every regular file at or under `path`, with its size; symlinks are
/// not followed (Cairn copies a link, not what it points to).
fn collect_files(path: &Path, out: &mut Vec<(PathBuf, u64)>) -> Result<()> {
    let meta = std::fs::symlink_metadata(path)
        .with_context(|| format!("failed to stat {}", path.display()))?;
    if meta.is_file() {
        out.push((path.to_owned(), meta.len()));
    } else if meta.is_dir() {
        let entries = std::fs::read_dir(path)
            .with_context(|| format!("failed to list {}", path.display()))?;
        for entry in entries {
            let entry = entry.with_context(|| format!("failed to list {}", path.display()))?;
            collect_files(&entry.path(), out)?;
        }
    }
    Ok(())
}

/// Deals the files out to `n` workers, each next-largest file to the
/// worker with the fewest bytes so far: the best split there is when one
/// file (the database) is half the bytes.
fn largest_first<T>(mut files: Vec<(T, u64)>, n: usize) -> Vec<Vec<T>> {
    files.sort_by_key(|(_, size)| std::cmp::Reverse(*size));
    let mut shares: Vec<(u64, Vec<T>)> = (0..n.max(1)).map(|_| (0, Vec::new())).collect();
    for (path, size) in files {
        if let Some(lightest) = shares.iter_mut().min_by_key(|(bytes, _)| *bytes) {
            lightest.0 += size;
            lightest.1.push(path);
        }
    }
    shares.into_iter().map(|(_, paths)| paths).collect()
}

fn hash_all(paths: &[PathBuf]) -> Result<u64> {
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0;
    for path in paths {
        total += read_hashed(path, None, &mut buf)?;
    }
    Ok(total)
}

fn copy_all(pairs: &[(PathBuf, PathBuf)]) -> Result<u64> {
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0;
    for (from, to) in pairs {
        let mut dst = std::fs::File::options()
            .write(true)
            .create_new(true)
            .open(to)
            .with_context(|| format!("failed to create {}", to.display()))?;
        total += read_hashed(from, Some((&mut dst, to)), &mut buf)?;
    }
    Ok(total)
}

/// Reads `from` through `buf`, hashing every byte and, when `to` is
/// given, writing each buffer there after hashing it; the bytes read.
fn read_hashed(from: &Path, mut to: Option<(&mut File, &Path)>, buf: &mut [u8]) -> Result<u64> {
    let mut src = File::open(from).with_context(|| format!("failed to open {}", from.display()))?;
    let mut hasher = Sha256::new();
    let mut total = 0;
    loop {
        let n = src
            .read(buf)
            .with_context(|| format!("failed to read {}", from.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        if let Some((dst, name)) = to.as_mut() {
            dst.write_all(&buf[..n])
                .with_context(|| format!("failed to write {}", name.display()))?;
        }
        total += n as u64;
    }
    // The digest is computed, not kept: only its cost is wanted.
    std::hint::black_box(hasher.finalize());
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_largest_file_gets_a_worker_to_itself_when_it_is_half_the_bytes() {
        let files = vec![
            (PathBuf::from("small-1"), 100),
            (PathBuf::from("db"), 1000),
            (PathBuf::from("small-2"), 400),
            (PathBuf::from("small-3"), 500),
        ];
        let shares = largest_first(files, 2);
        assert_eq!(shares[0], vec![PathBuf::from("db")]);
        assert_eq!(
            shares[1],
            ["small-3", "small-2", "small-1"]
                .map(PathBuf::from)
                .to_vec()
        );
    }

    #[test]
    fn the_copy_floor_writes_every_byte_of_every_file_under_its_sources_name() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("data");
        std::fs::create_dir_all(src.join("sub")).unwrap();
        std::fs::write(src.join("a"), vec![7u8; (1 << 20) + 3]).unwrap();
        std::fs::write(src.join("sub/b"), b"hello").unwrap();
        let dest = dir.path().join("out");
        let args = [src.display().to_string(), dest.display().to_string()];
        assert_eq!(copy_main(&args).unwrap(), ExitCode::SUCCESS);
        assert_eq!(
            std::fs::read(dest.join("data/a")).unwrap(),
            vec![7u8; (1 << 20) + 3]
        );
        assert_eq!(std::fs::read(dest.join("data/sub/b")).unwrap(), b"hello");
    }

    #[test]
    fn every_byte_of_every_file_is_read_and_links_are_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("a"), vec![1u8; 3 << 20]).unwrap();
        std::fs::write(dir.path().join("sub/b"), b"hello").unwrap();
        std::os::unix::fs::symlink("a", dir.path().join("link")).unwrap();
        let mut files = Vec::new();
        collect_files(dir.path(), &mut files).unwrap();
        files.sort();
        assert_eq!(files.len(), 2, "{files:?}");
        let paths: Vec<PathBuf> = files.into_iter().map(|(p, _)| p).collect();
        assert_eq!(hash_all(&paths).unwrap(), (3 << 20) + 5);
    }
}
