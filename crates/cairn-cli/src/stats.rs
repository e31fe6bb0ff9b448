//! `cairn stats`: what the repository costs on disk.

use cairn_engine::{space, Config, Repository, Result};

use crate::{json, render, Output};

pub fn run(cfg: &Config) -> Result<Output> {
    let repo = Repository::new(&cfg.repository);
    let space = space::measure(&repo)?;
    Ok(Output {
        human: render::stats(&space),
        json: json::stats(&space),
        sound: true,
        stream: None,
    })
}
