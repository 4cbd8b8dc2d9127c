//! `ftreview python`: not written yet (see the issue that owns it).

use clap::Args;

use crate::exit::Outcome;

#[derive(Debug, Args)]
pub struct PythonArgs {}

pub fn run(_args: PythonArgs) -> anyhow::Result<Outcome> {
    anyhow::bail!("`ftreview python` is not implemented yet")
}
