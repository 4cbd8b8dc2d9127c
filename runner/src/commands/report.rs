//! `ftreview report`: not written yet (see the issue that owns it).

use clap::Args;

use crate::exit::Outcome;

#[derive(Debug, Args)]
pub struct ReportArgs {}

pub fn run(_args: ReportArgs) -> anyhow::Result<Outcome> {
    anyhow::bail!("`ftreview report` is not implemented yet")
}
