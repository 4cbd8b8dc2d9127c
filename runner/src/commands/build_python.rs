//! `ftreview build-python`: not written yet (see the issue that owns it).

use clap::Args;

use crate::exit::Outcome;

#[derive(Debug, Args)]
pub struct BuildPythonArgs {}

pub fn run(_args: BuildPythonArgs) -> anyhow::Result<Outcome> {
    anyhow::bail!("`ftreview build-python` is not implemented yet")
}
