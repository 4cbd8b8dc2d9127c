//! `ftreview scan`: not written yet (see the issue that owns it).

use clap::Args;

use crate::exit::Outcome;

#[derive(Debug, Args)]
pub struct ScanArgs {}

pub fn run(_args: ScanArgs) -> anyhow::Result<Outcome> {
    anyhow::bail!("`ftreview scan` is not implemented yet")
}
