//! `ftreview doctor`: not written yet (see the issue that owns it).

use clap::Args;

use crate::exit::Outcome;

#[derive(Debug, Args)]
pub struct DoctorArgs {}

pub fn run(_args: DoctorArgs) -> anyhow::Result<Outcome> {
    anyhow::bail!("`ftreview doctor` is not implemented yet")
}
