//! `ftreview triage`: not written yet (see the issue that owns it).

use clap::Args;

use crate::exit::Outcome;

#[derive(Debug, Args)]
pub struct TriageArgs {}

pub fn run(_args: TriageArgs) -> anyhow::Result<Outcome> {
    anyhow::bail!("`ftreview triage` is not implemented yet")
}
