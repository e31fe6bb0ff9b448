//! The reference algorithm as a peer: what the Python system Cairn
//! replaces does for one backup (see `../shared/reference`), written here
//! afresh as a short Python script so it runs with the same libraries it
//! used: an SQLite online backup (`Connection.backup`, every page in one
//! go), the registry read and written as text, the Chroma directory
//! copied with `shutil.copytree`, the copy walked to count files and
//! bytes, and a metadata JSON file. Then `sync`: Cairn makes its snapshot
//! durable before it calls it done, and an unsynced copy is not a backup.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};

use super::fixture::Fixture;

const SCRIPT: &str = r#"
import json, os, shutil, sqlite3, sys
from datetime import datetime, timezone
from pathlib import Path

db, registry, chroma, root = (Path(a) for a in sys.argv[1:5])
now = datetime.now(timezone.utc)
snapshot = root / "snapshots" / now.strftime("%Y%m%dT%H%M%SZ")
(snapshot / "db").mkdir(parents=True)
(snapshot / "config").mkdir(parents=True)

db_copy = snapshot / "db" / db.name
source, dest = sqlite3.connect(str(db)), sqlite3.connect(str(db_copy))
try:
    source.backup(dest)
finally:
    dest.close()
    source.close()

registry_copy = snapshot / "config" / registry.name
registry_copy.write_text(registry.read_text(encoding="utf-8"), encoding="utf-8")

chroma_copy = snapshot / "chroma"
shutil.copytree(chroma, chroma_copy)
files = size = 0
for p in chroma_copy.rglob("*"):
    if p.is_file():
        files += 1
        size += p.stat().st_size

meta = {
    "created_at": now.isoformat(),
    "db_snapshot_path": str(db_copy),
    "db_size_bytes": db_copy.stat().st_size,
    "registry_snapshot_path": str(registry_copy),
    "chroma_snapshot_path": str(chroma_copy),
    "chroma_snapshot_files": files,
    "chroma_snapshot_bytes": size,
}
(snapshot / "backup-metadata.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
"#;

/// The reference backup of `fx` into `dest` followed by `sync`, as one
/// command; `None` when there is no `python3` to run it with.
pub fn command(work: &Path, fx: &Fixture, dest: &Path) -> Result<Option<Command>> {
    let Some(python) = crate::util::on_path("python3") else {
        return Ok(None);
    };
    let script = work.join("reference-backup.py");
    std::fs::write(&script, SCRIPT)
        .with_context(|| format!("failed to write {}", script.display()))?;
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("\"$@\" && sync")
        .arg("reference-sync")
        .arg(python)
        .arg(&script)
        .arg(fx.db())
        .arg(fx.registry())
        .arg(fx.chroma())
        .arg(dest);
    Ok(Some(cmd))
}
