//! Shares of a snapshot's files for re-reading stored bytes a little at a
//! time: `cairn validate --subset n/t` (restic's `--read-data-subset`) and
//! the rotating share each new snapshot re-reads of the copies it reuses
//! from its parent (`verify_rotation`).
//!
//! A file's share is a fixed function of its store's name and its path
//! (FNV-1a, finished with the splitmix64 mixer): the same on every run,
//! every machine and every version of Cairn, so `--subset 1/7` … `7/7`
//! together read every file exactly once, and a file keeps its share from
//! one snapshot to the next (a reused copy keeps its path; a renamed file
//! is a new copy, read as it is written). No randomness and no std hasher:
//! `DefaultHasher` may change between Rust releases.

use crate::manifest::RawPath;

/// Share `n` (1-based) of `t`: the files [`share_of`] puts there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subset {
    n: u32,
    t: u32,
}

/// The largest `t` accepted: more shares than that reads too little per
/// run to be a plan anyone keeps.
pub const MAX_SHARES: u32 = 10_000;

impl Subset {
    /// `Some` when `1 <= n <= t <= MAX_SHARES`.
    pub fn new(n: u32, t: u32) -> Option<Subset> {
        (n >= 1 && n <= t && t <= MAX_SHARES).then_some(Subset { n, t })
    }

    /// Parses `n/t` (as `--subset` takes it); the error says what is wrong.
    pub fn parse(text: &str) -> Result<Subset, String> {
        let (n, t) = text
            .split_once('/')
            .ok_or_else(|| format!("{text:?} is not n/t (e.g. 1/7)"))?;
        let number = |s: &str| {
            s.trim()
                .parse::<u32>()
                .map_err(|_| format!("{text:?} is not n/t with whole numbers (e.g. 1/7)"))
        };
        let (n, t) = (number(n)?, number(t)?);
        Subset::new(n, t).ok_or_else(|| {
            format!("{text:?}: need 1 <= n <= t <= {MAX_SHARES} (share n of t shares)")
        })
    }

    pub fn n(self) -> u32 {
        self.n
    }

    pub fn t(self) -> u32 {
        self.t
    }

    /// Every file, in one share.
    pub fn whole() -> Subset {
        Subset { n: 1, t: 1 }
    }

    /// Whether `path` of `store` is in this share.
    pub fn contains(self, store: &str, path: &RawPath) -> bool {
        share_of(store, path, self.t) == self.n
    }

    /// The share after this one, wrapping: R snapshots in a row, each
    /// reading the next share of R, read every share once.
    pub fn next(self) -> Subset {
        Subset {
            n: self.n % self.t + 1,
            t: self.t,
        }
    }
}

impl std::fmt::Display for Subset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.n, self.t)
    }
}

/// The share (1..=t) of `path` in `store` among `t` shares.
pub fn share_of(store: &str, path: &RawPath, t: u32) -> u32 {
    let t = t.max(1);
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    // The store's name, a separator no name contains, then the path bytes.
    for &b in store.as_bytes().iter().chain(b"\0").chain(path.as_bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // splitmix64's finalizer: FNV's low bits alone are uneven for `% t`.
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^= h >> 31;
    (h % u64::from(t)) as u32 + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subsets_parse_and_refuse_nonsense() {
        assert_eq!(Subset::parse("3/7"), Ok(Subset { n: 3, t: 7 }));
        assert_eq!(Subset::parse("1/1"), Ok(Subset::whole()));
        for bad in ["0/7", "8/7", "7", "a/b", "1/0", "-1/3", "1/10001", ""] {
            assert!(Subset::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_path_is_in_exactly_one_share_and_the_shares_are_even() {
        let t = 7;
        let mut counts = [0u32; 7];
        for i in 0..7000 {
            let path = RawPath::from(format!("seg-{}/part-{i}.bin", i % 13).as_str());
            let hits: Vec<u32> = (1..=t)
                .filter(|&n| Subset::new(n, t).unwrap().contains("chroma", &path))
                .collect();
            assert_eq!(hits.len(), 1, "{path}");
            counts[(hits[0] - 1) as usize] += 1;
        }
        // 1000 expected per share; a broken mix puts them all in a few.
        assert!(
            counts.iter().all(|&c| (800..1200).contains(&c)),
            "{counts:?}"
        );
    }

    const PINNED: u32 = 6;

    #[test]
    fn the_rotation_visits_every_share_once_per_round() {
        let mut share = Subset::new(5, 7).unwrap();
        let mut seen = Vec::new();
        for _ in 0..7 {
            seen.push(share.n());
            share = share.next();
        }
        seen.sort_unstable();
        assert_eq!(seen, (1..=7).collect::<Vec<_>>());
        // Pinned: a change to the function would move every file to
        // another share, and `--subset` plans written down would drift.
        assert_eq!(share_of("db", &RawPath::from("atocore.db"), 7), PINNED);
    }
}
