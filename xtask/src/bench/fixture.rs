//! The benchmark's deterministic fixture: a service state with the three
//! store kinds, generated once per size under `target/bench-fixture/<size>`
//! and reused (a `.complete` file marks a finished one).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use rusqlite::{params, Connection};

use crate::drill::pseudo_bytes;

/// Bumped whenever the generator changes, so stale fixtures are rebuilt.
const VERSION: &str = "cairn-bench-fixture v3";
const MIB: u64 = 1024 * 1024;

/// What one size holds.
#[derive(Clone, Copy, Debug)]
pub struct Spec {
    pub name: &'static str,
    pub db_bytes: u64,
    pub segments: usize,
    pub segment_bytes: u64,
    pub small_files: usize,
    /// Small files are 1 KiB to this many bytes (`huge` keeps them small:
    /// a million files of up to 16 KiB would not fit a shared disk).
    pub small_file_max: usize,
    pub chroma_db_rows: u64,
}

impl Spec {
    pub fn by_name(name: &str) -> Option<Spec> {
        Some(match name {
            "small" => Spec {
                name: "small",
                db_bytes: 24 * MIB,
                segments: 4,
                segment_bytes: 4 * MIB,
                small_files: 500,
                small_file_max: 16 * 1024,
                chroma_db_rows: 2_000,
            },
            "default" => Spec {
                name: "default",
                db_bytes: 512 * MIB,
                segments: 4,
                segment_bytes: 128 * MIB,
                small_files: 5_000,
                small_file_max: 16 * 1024,
                chroma_db_rows: 20_000,
            },
            "large" => Spec {
                name: "large",
                db_bytes: 512 * MIB,
                segments: 4,
                segment_bytes: 128 * MIB,
                small_files: 100_000,
                small_file_max: 16 * 1024,
                chroma_db_rows: 20_000,
            },
            // A million files: what memory and per-file costs do at scale.
            "huge" => Spec {
                name: "huge",
                db_bytes: 512 * MIB,
                segments: 4,
                segment_bytes: 128 * MIB,
                small_files: 1_000_000,
                small_file_max: 2 * 1024,
                chroma_db_rows: 20_000,
            },
            _ => return None,
        })
    }
}

/// Paths inside a fixture.
pub struct Fixture {
    pub root: PathBuf,
}

impl Fixture {
    pub fn db(&self) -> PathBuf {
        self.root.join("data/atocore.db")
    }
    pub fn chroma(&self) -> PathBuf {
        self.root.join("data/chroma")
    }
    pub fn lock(&self) -> PathBuf {
        self.root.join("data/.ingest.lock")
    }
    pub fn registry(&self) -> PathBuf {
        self.root.join("config/project-registry.json")
    }
    /// What `cp -a` copies: everything the three stores hold.
    pub fn top_dirs(&self) -> [PathBuf; 2] {
        [self.root.join("data"), self.root.join("config")]
    }
}

/// The cached fixture for `spec`, generated if missing or stale.
pub fn ensure(dir: &Path, spec: Spec) -> Result<Fixture> {
    let root = dir.join(spec.name);
    let marker = root.join(".complete");
    let want = format!("{VERSION} {spec:?}\n");
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(want.as_str()) {
        println!("fixture: reusing {}", root.display());
        return Ok(Fixture { root });
    }
    let partial = dir.join(format!("{}.partial", spec.name));
    for d in [&root, &partial] {
        if d.exists() {
            std::fs::remove_dir_all(d)
                .with_context(|| format!("failed to remove {}", d.display()))?;
        }
    }
    println!(
        "fixture: generating {} (once; cached afterwards)",
        root.display()
    );
    let t = Instant::now();
    let fx = Fixture {
        root: partial.clone(),
    };
    generate(&fx, spec)?;
    std::fs::write(partial.join(".complete"), want)
        .context("failed to mark the fixture complete")?;
    std::fs::rename(&partial, &root).with_context(|| {
        format!(
            "failed to rename {} to {}",
            partial.display(),
            root.display()
        )
    })?;
    println!("fixture: generated in {:.1}s", t.elapsed().as_secs_f64());
    // A file written less than the racy margin before a snapshot is
    // copied again by the next one (never reused on a timestamp that a
    // write in the same tick could share): without this wait, a fixture
    // generated in under a second would make the first run's
    // nothing-changed snapshot a full copy.
    let margin = u64::try_from(cairn_engine::capture::RACY_MARGIN_NS).unwrap_or(0);
    std::thread::sleep(std::time::Duration::from_nanos(margin) + std::time::Duration::from_secs(1));
    Ok(Fixture { root })
}

fn generate(fx: &Fixture, spec: Spec) -> Result<()> {
    for d in [fx.root.join("data"), fx.root.join("config"), fx.chroma()] {
        std::fs::create_dir_all(&d).with_context(|| format!("failed to create {}", d.display()))?;
    }
    std::fs::write(fx.lock(), b"").context("failed to write the lock file")?;
    let projects: Vec<serde_json::Value> = (0..40)
        .map(|i| serde_json::json!({"name": format!("project-{i:02}"), "root": format!("/srv/projects/{i:02}"), "ingest": i % 3 != 0}))
        .collect();
    let registry =
        serde_json::to_vec_pretty(&serde_json::json!({"version": 1, "projects": projects}))?;
    std::fs::write(fx.registry(), registry).context("failed to write the registry")?;
    service_db(&fx.db(), spec.db_bytes)?;
    chroma(fx, spec)?;
    Ok(())
}

/// documents/chunks/memories in WAL mode, grown to `target` bytes.
fn service_db(path: &Path, target: u64) -> Result<()> {
    let db =
        Connection::open(path).with_context(|| format!("failed to open {}", path.display()))?;
    db.execute_batch(
        "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;
         CREATE TABLE documents (id INTEGER PRIMARY KEY, path TEXT NOT NULL, title TEXT, body TEXT NOT NULL);
         CREATE TABLE chunks (id INTEGER PRIMARY KEY, document_id INTEGER NOT NULL REFERENCES documents(id), seq INTEGER NOT NULL, text TEXT NOT NULL, embedding BLOB NOT NULL);
         CREATE INDEX chunks_by_document ON chunks(document_id, seq);
         CREATE TABLE memories (id INTEGER PRIMARY KEY, kind TEXT NOT NULL, content TEXT NOT NULL, created_at INTEGER NOT NULL);",
    )?;
    let mut doc: u64 = 0;
    loop {
        let tx = db.unchecked_transaction()?;
        {
            let mut ins_doc = tx
                .prepare("INSERT INTO documents (id, path, title, body) VALUES (?1, ?2, ?3, ?4)")?;
            let mut ins_chunk = tx.prepare(
                "INSERT INTO chunks (document_id, seq, text, embedding) VALUES (?1, ?2, ?3, ?4)",
            )?;
            let mut ins_mem =
                tx.prepare("INSERT INTO memories (kind, content, created_at) VALUES (?1, ?2, ?3)")?;
            for _ in 0..250 {
                doc += 1;
                ins_doc.execute(params![
                    doc,
                    format!("docs/{}/{doc}.md", doc % 97),
                    words(doc, 8),
                    words(doc * 7 + 1, 600)
                ])?;
                for seq in 0..8u64 {
                    let key = doc * 8 + seq;
                    ins_chunk.execute(params![
                        doc,
                        seq,
                        words(key * 13 + 5, 80),
                        pseudo_bytes(key, 1536)
                    ])?;
                }
                if doc.is_multiple_of(10) {
                    ins_mem.execute(params![
                        "note",
                        words(doc * 31, 40),
                        1_700_000_000 + doc as i64
                    ])?;
                }
            }
        }
        tx.commit()?;
        let pages: u64 = db.query_row("PRAGMA page_count", [], |r| r.get(0))?;
        let page_size: u64 = db.query_row("PRAGMA page_size", [], |r| r.get(0))?;
        if pages * page_size >= target {
            break;
        }
    }
    let mode: String = db.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    if mode != "wal" {
        bail!(
            "{} did not switch to WAL (journal_mode {mode})",
            path.display()
        );
    }
    db.close()
        .map_err(|(_, e)| e)
        .context("failed to close the fixture db")?;
    Ok(())
}

fn chroma(fx: &Fixture, spec: Spec) -> Result<()> {
    let root = fx.chroma();
    let mut segs = Vec::new();
    for i in 0..spec.segments {
        let seg = root.join(format!(
            "{:08x}-6b1c-4c2e-9f1a-{:012x}",
            0x5e9a_0000 + i,
            i * 7919
        ));
        std::fs::create_dir(&seg).with_context(|| format!("failed to create {}", seg.display()))?;
        write(&seg.join("header.bin"), &pseudo_bytes(10 + i as u64, 100))?;
        write(&seg.join("length.bin"), &pseudo_bytes(20 + i as u64, 4096))?;
        write(
            &seg.join("link_lists.bin"),
            &pseudo_bytes(30 + i as u64, 8192),
        )?;
        big_file(
            &seg.join("data_level0.bin"),
            40 + i as u64,
            spec.segment_bytes,
        )?;
        segs.push(seg);
    }
    // Small files, 100 to a directory, 1 KiB to small_file_max each.
    let spread = spec.small_file_max.saturating_sub(1024) + 1;
    for i in 0..spec.small_files {
        let dir = root.join("blobs").join(format!("{:04}", i / 100));
        if i.is_multiple_of(100) {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("failed to create {}", dir.display()))?;
        }
        let len = 1024 + (i * 2_654_435_761) % spread;
        write(
            &dir.join(format!("{i:06}.bin")),
            &pseudo_bytes(1_000_000 + i as u64, len),
        )?;
    }
    let path = root.join("chroma.sqlite3");
    let db =
        Connection::open(&path).with_context(|| format!("failed to open {}", path.display()))?;
    db.execute_batch(
        "PRAGMA synchronous=OFF;
         CREATE TABLE embeddings (id INTEGER PRIMARY KEY, segment_id TEXT NOT NULL, seq_id INTEGER NOT NULL, embedding_id TEXT NOT NULL);
         CREATE TABLE embedding_metadata (id INTEGER NOT NULL, key TEXT NOT NULL, string_value TEXT);",
    )?;
    let tx = db.unchecked_transaction()?;
    {
        let mut e = tx.prepare(
            "INSERT INTO embeddings (segment_id, seq_id, embedding_id) VALUES (?1, ?2, ?3)",
        )?;
        let mut m = tx.prepare("INSERT INTO embedding_metadata (id, key, string_value) VALUES (?1, 'chroma:document', ?2)")?;
        for i in 0..spec.chroma_db_rows {
            let seg = segs[i as usize % segs.len()]
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            e.execute(params![seg, i, format!("chunk-{i}")])?;
            m.execute(params![i, words(i * 17 + 3, 60)])?;
        }
    }
    tx.commit()?;
    db.close()
        .map_err(|(_, e)| e)
        .context("failed to close chroma.sqlite3")?;
    Ok(())
}

/// One small commit, as a service makes between two snapshots: one new
/// memory row.
pub fn commit_one(path: &Path, round: u64) -> Result<()> {
    let db =
        Connection::open(path).with_context(|| format!("failed to open {}", path.display()))?;
    db.execute(
        "INSERT INTO memories (kind, content, created_at) VALUES ('note', ?1, ?2)",
        params![words(round * 7919 + 11, 40), 1_800_000_000 + round as i64],
    )?;
    db.close()
        .map_err(|(_, e)| e)
        .context("failed to close the fixture db")?;
    Ok(())
}

fn big_file(path: &Path, seed: u64, len: u64) -> Result<()> {
    use std::io::Write;
    let mut f = std::io::BufWriter::with_capacity(
        1 << 20,
        std::fs::File::create(path)
            .with_context(|| format!("failed to create {}", path.display()))?,
    );
    let mut written = 0u64;
    let mut i = 0u64;
    while written < len {
        let n = (len - written).min(1 << 20) as usize;
        // A different MiB each time, so nothing dedups.
        let block = pseudo_bytes(seed.wrapping_mul(1_000_003).wrapping_add(i), n);
        f.write_all(&block)
            .with_context(|| format!("failed to write {}", path.display()))?;
        written += n as u64;
        i += 1;
    }
    f.flush()
        .with_context(|| format!("failed to write {}", path.display()))?;
    Ok(())
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("failed to write {}", path.display()))
}

/// Deterministic pseudo-text of `n` words.
fn words(seed: u64, n: usize) -> String {
    const VOCAB: [&str; 32] = [
        "backup",
        "restore",
        "snapshot",
        "vector",
        "memory",
        "project",
        "chunk",
        "index",
        "query",
        "store",
        "service",
        "drill",
        "manifest",
        "checksum",
        "segment",
        "embedding",
        "registry",
        "retention",
        "daily",
        "weekly",
        "monthly",
        "operator",
        "volume",
        "mount",
        "database",
        "journal",
        "page",
        "write",
        "ahead",
        "log",
        "lock",
        "verify",
    ];
    let bytes = pseudo_bytes(seed, n);
    let mut s = String::with_capacity(n * 8);
    for b in bytes {
        if !s.is_empty() {
            s.push(' ');
        }
        s.push_str(VOCAB[(b % 32) as usize]);
    }
    s
}
