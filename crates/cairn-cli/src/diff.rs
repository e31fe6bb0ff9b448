//! `cairn diff A B`: what changed between two snapshots.

use cairn_engine::{diff, Config, Error, Repository, Result, Stores};

use crate::cli::DiffArgs;
use crate::commands::pick;
use crate::{json, render, Format, Output};

pub fn run(cfg: &Config, stores: &Stores, args: &DiffArgs) -> Result<Output> {
    let repo = Repository::new(&cfg.repository);
    let (a, b) = match (args.ids.as_slice(), args.latest) {
        ([a, b], false) => (pick(&repo, Some(a), false)?, pick(&repo, Some(b), false)?),
        ([a], true) => (pick(&repo, Some(a), false)?, pick(&repo, None, true)?),
        ([], true) => {
            // The snapshot before the latest, against the latest.
            let b = pick(&repo, None, true)?;
            let ids = repo.list()?.ids;
            let a = ids
                .iter()
                .rev()
                .find(|id| **id < b)
                .cloned()
                .ok_or_else(|| Error::Usage {
                    message: format!(
                        "diff --latest: {b} is the only snapshot; there is nothing before it to compare with"
                    ),
                })?;
            (a, b)
        }
        _ => {
            return Err(Error::Usage {
                message: "diff: give two snapshots (A B), or A --latest, or --latest alone".into(),
            })
        }
    };
    let d = diff::run(&repo, stores, &a, &b, &args.stores)?;
    // A copy whose rows could not be counted (damaged) leaves the diff
    // incomplete: reported, and the run is not sound.
    let sound = d.count_failures().next().is_none();
    Ok(Output {
        human: String::new(),
        json: json::diff_summary(&d),
        sound,
        stream: Some(Box::new(move |out, format| match format {
            Format::Human => render::diff(out, &d),
            Format::Json => json::write_diff(out, &d),
        })),
    })
}
