//! `ftreview run`: not written yet (see the issue that owns it).

use clap::Args;

use crate::exit::Outcome;

#[derive(Debug, Args)]
pub struct RunArgs {}

pub fn run(_args: RunArgs) -> anyhow::Result<Outcome> {
    anyhow::bail!("`ftreview run` is not implemented yet")
}
