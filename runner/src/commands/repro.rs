//! `ftreview repro`: not written yet (see the issue that owns it).

use clap::Args;

use crate::exit::Outcome;

#[derive(Debug, Args)]
pub struct ReproArgs {}

pub fn run(_args: ReproArgs) -> anyhow::Result<Outcome> {
    anyhow::bail!("`ftreview repro` is not implemented yet")
}
