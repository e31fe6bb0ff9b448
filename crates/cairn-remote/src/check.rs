//! `cairn validate --remote`: is every object a snapshot needs there?
//!
//! Without reading data: two listings (`packs/`, `index/`) for the whole
//! run, then each snapshot's packs checked against them — present, with
//! the size the snapshot records, with an index. With reading data (all
//! of it, or the packs of subset n of t): each pack downloaded once,
//! hashed against its name, each chunk against its index; and each
//! snapshot's manifest rebuilt and checked (the manifest codes).

use std::collections::{BTreeMap, HashMap};

use cairn_engine::manifest::Manifest;
use cairn_engine::{Error, Problem, Result};

use crate::format;
use crate::packread::stream_pack;
use crate::pull::{manifest_bytes, pack_problem, BLOB_MISSING};
use crate::remote::{chunks_of, ChunkMap, Remote};

/// Which packs `--subset n/t` reads: those whose name's first four hex
/// digits are `n - 1` modulo `t`, so t runs with n = 1..t read each pack once.
#[derive(Debug, Clone, Copy)]
pub struct Subset {
    pub n: u32,
    pub t: u32,
}

impl Subset {
    pub fn parse(text: &str) -> Option<Subset> {
        let (n, t) = text.split_once('/')?;
        let (n, t): (u32, u32) = (n.parse().ok()?, t.parse().ok()?);
        (t >= 1 && (1..=t).contains(&n)).then_some(Subset { n, t })
    }
    fn takes(&self, pack: &str) -> bool {
        let head = u32::from_str_radix(pack.get(..4).unwrap_or("0"), 16).unwrap_or(0);
        head % self.t == self.n - 1
    }
}

#[derive(Debug, Clone, Copy)]
pub enum ReadData {
    No,
    All,
    Subset(Subset),
}

#[derive(Debug)]
pub struct RemoteValidation {
    pub id: String,
    pub packs: usize,
    pub packs_read: usize,
    pub problems: Vec<Problem>,
}

impl RemoteValidation {
    pub fn valid(&self) -> bool {
        self.problems.is_empty()
    }
}

pub fn validate(remote: &Remote, ids: &[String], read: ReadData) -> Result<Vec<RemoteValidation>> {
    remote.root()?;
    let packs = remote.listing("packs/")?;
    let indexes = remote.listing("index/")?;
    // A pack read once serves every snapshot that needs it.
    let mut read_result: HashMap<String, Vec<Problem>> = HashMap::new();
    let mut out = Vec::new();
    for id in ids {
        let mut v = RemoteValidation {
            id: id.clone(),
            packs: 0,
            packs_read: 0,
            problems: Vec::new(),
        };
        let doc = match remote.doc(id) {
            Ok(doc) => doc,
            Err(Error::RemoteFormat { message, .. }) => {
                v.problems.push(Problem::new(
                    cairn_engine::problem::codes::MANIFEST_INVALID,
                    message,
                ));
                out.push(v);
                continue;
            }
            Err(e) => return Err(e),
        };
        v.packs = doc.packs.len();
        let mut complete: BTreeMap<&String, u64> = BTreeMap::new();
        for (pack, size) in &doc.packs {
            let key = format::pack_key(pack);
            match pack_problem(&key, packs.get(&key), *size) {
                Some(problem) => v.problems.push(problem),
                None => {
                    complete.insert(pack, *size);
                }
            }
            let index = format::index_key(pack);
            if !indexes.contains_key(&index) {
                v.problems
                    .push(Problem::new(BLOB_MISSING, "not on the remote").at(&index));
            }
        }
        let select = |pack: &str| match read {
            ReadData::No => false,
            ReadData::All => true,
            ReadData::Subset(s) => s.takes(pack),
        };
        if !matches!(read, ReadData::No) && v.problems.is_empty() {
            let mut map = ChunkMap::default();
            for pack in doc.packs.keys() {
                let Some(index) = remote.index(pack)? else {
                    continue;
                };
                if select(pack) {
                    v.packs_read += 1;
                    let found = match read_result.get(pack) {
                        Some(found) => found.clone(),
                        None => {
                            let found = read_pack(remote, pack, &index)?;
                            read_result.insert(pack.clone(), found.clone());
                            found
                        }
                    };
                    v.problems.extend(found);
                }
                map.add_pack(&index);
            }
            for hash in chunks_of(&doc) {
                if !map.chunks.contains_key(&hash) {
                    v.problems.push(Problem::new(
                        BLOB_MISSING,
                        format!("chunk {hash} is in no index of the snapshot's packs"),
                    ));
                }
            }
            if v.problems.is_empty() {
                match manifest_bytes(remote, &map, &doc, id) {
                    Ok(bytes) => {
                        if let Err(p) = Manifest::parse(&bytes, id) {
                            v.problems.push(p);
                        }
                    }
                    Err(Error::Unsound { problems, .. }) => v.problems.extend(problems),
                    Err(e) => return Err(e),
                }
            }
        }
        out.push(v);
    }
    Ok(out)
}

/// The pack streamed once: its name, its recorded size, and each chunk
/// its index lists against its hash.
fn read_pack(remote: &Remote, pack: &str, index: &format::PackIndex) -> Result<Vec<Problem>> {
    let problems = stream_pack(&remote.backend, pack, index.size, &index.chunks, |_, _| {
        Ok(())
    })?;
    cairn_engine::progress::advance(index.size);
    Ok(problems)
}
