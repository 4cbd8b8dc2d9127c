//! `ftreview corpus`: many extensions reviewed in shards (CI matrix jobs, Kubernetes Indexed
//! Job pods, separate machines), then merged into one table. `plan` prints which shard gets
//! which targets, `run` reviews one shard's targets one after the other (resumable), `merge`
//! joins the shards' directories. Every format is described in `docs/corpus.md`.

mod list;
mod merge;
mod options;
mod plan;
mod report;
mod run;
mod shard;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::exit::Outcome;
use list::CorpusList;
use options::{OptionSet, NOT_PER_SHARD};
use plan::{expected_costs, Cost, Matrix};
use report::CorpusReport;

#[derive(Debug, Args)]
pub struct CorpusArgs {
    #[command(subcommand)]
    command: CorpusCommand,
}

#[derive(Debug, Subcommand)]
enum CorpusCommand {
    /// Print which shard reviews which targets: JSON usable as a GitHub Actions matrix.
    Plan(plan::PlanArgs),
    /// Review one shard's targets one after the other, each in its own run directory;
    /// rerunning skips the targets already reviewed.
    Run(run::ShardArgs),
    /// Merge shard directories into one table (corpus.md) and corpus.json.
    Merge(merge::MergeArgs),
}

pub fn run(args: CorpusArgs) -> anyhow::Result<Outcome> {
    match args.command {
        CorpusCommand::Plan(args) => plan::run(args),
        CorpusCommand::Run(args) => run::run(args),
        CorpusCommand::Merge(args) => merge::run(args),
    }
}

/// What a plan is computed from; `plan` and every shard's `run` must get the same.
#[derive(Debug, Args)]
struct PlanInputs {
    /// The corpus list: one target per line (`name==version`, `git+URL@rev`, a path relative to
    /// the working directory), optionally followed by that target's `ftreview run` options;
    /// `#` starts a comment.
    #[arg(value_name = "LIST")]
    list: PathBuf,
    /// A corpus.json of an earlier corpus: its wall times predict each target's cost
    /// (default: each target's time budget).
    #[arg(long, value_name = "CORPUS_JSON")]
    costs: Option<PathBuf>,
    /// `ftreview run` options for every target (after the corpus options); a list line's own
    /// options replace the same ones.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "RUN_OPTIONS"
    )]
    run_options: Vec<String>,
}

/// A checked list and its plan.
struct Planned {
    list: CorpusList,
    shard_options: OptionSet,
    costs: Vec<Cost>,
    matrix: Matrix,
}

impl PlanInputs {
    fn plan(&self, shards: usize) -> anyhow::Result<Planned> {
        let shard_options = OptionSet::parse(&self.run_options, NOT_PER_SHARD)
            .map_err(|e| anyhow::anyhow!("{e}"))
            .context("bad `ftreview run` options for the shard")?;
        let list = CorpusList::load(&self.list, &shard_options)?;
        let history = self.costs.as_deref().map(CorpusReport::load).transpose()?;
        let costs = expected_costs(&list, history.as_ref());
        let matrix = plan::plan(&list, &costs, shards);
        Ok(Planned {
            list,
            shard_options,
            costs,
            matrix,
        })
    }
}
