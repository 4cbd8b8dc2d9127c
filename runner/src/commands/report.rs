//! `ftreview report RUN_DIR`: rebuilds the migration plan, `results.json` and SARIF from the
//! run model `RUN_DIR/run.json`, optionally against a baseline.

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};

use anyhow::Context;
use ftreview_reports::{analyze, issue_body, load_baseline, write_all, Format, RunRecord};

use crate::exit::Outcome;
use crate::registry::Registry;
use crate::regression_tests;

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A run directory written by `ftreview run` (it holds `run.json`).
    pub run_dir: PathBuf,
    /// A previous `results.json`: report only findings it does not have, and exit 1 only on those.
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,
    /// Which outputs to write.
    #[arg(long, value_enum, default_value_t = FormatArg::All)]
    pub format: FormatArg,
    /// Where to write them (default: the run directory).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Also write one pytest file per problem into DIR (a regression test made from its small
    /// reproducer; the run needs its stress phase's API model).
    #[arg(long, value_name = "DIR")]
    pub tests: Option<PathBuf>,
    /// Print a ready-to-file issue body for one problem (`problem-…`) on stdout instead.
    #[arg(long, value_name = "PROBLEM_ID", conflicts_with_all = ["baseline", "out"])]
    pub issue: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    Md,
    Json,
    Sarif,
    All,
}

impl From<FormatArg> for Format {
    fn from(format: FormatArg) -> Format {
        match format {
            FormatArg::Md => Format::Markdown,
            FormatArg::Json => Format::Json,
            FormatArg::Sarif => Format::Sarif,
            FormatArg::All => Format::All,
        }
    }
}

pub fn run(args: ReportArgs) -> anyhow::Result<Outcome> {
    let run = RunRecord::load(&args.run_dir)?;
    if let Some(id) = &args.issue {
        let analysis = analyze(&run, None);
        let body = issue_body(&analysis, id).with_context(|| {
            let ids: Vec<&str> = analysis
                .results
                .findings
                .iter()
                .filter(|f| f.id.starts_with("problem-"))
                .map(|f| f.id.as_str())
                .collect();
            format!(
                "{id} is not a problem of the run in {} (its problems: {})",
                args.run_dir.display(),
                if ids.is_empty() {
                    "none".to_string()
                } else {
                    ids.join(", ")
                }
            )
        })?;
        print!("{body}");
        return Ok(analysis.results.outcome());
    }
    if let Some(dir) = &args.tests {
        write_tests(&args.run_dir, &run, dir)?;
    }
    let baseline = args.baseline.as_deref().map(load_baseline).transpose()?;
    let out_dir = args.out.as_deref().unwrap_or(&args.run_dir);
    let written = write_all(&run, out_dir, baseline.as_ref(), args.format.into())?;
    for file in &written.files {
        println!("{}", file.display());
    }
    let results = &written.results;
    eprintln!(
        "{} {}: {} ({} problem(s) from {} racing site pair(s), {} crash(es), {} hang(s), {} static finding(s) confirmed)",
        run.target.name,
        run.target.version.as_deref().unwrap_or(""),
        results.verdict.level.label(),
        results.counts.problems,
        results.counts.races,
        results.counts.crashes,
        results.counts.hangs,
        results.counts.static_confirmed
    );
    if let Some(summary) = &results.baseline {
        eprintln!(
            "against {}: {} new finding(s), {} of them fail CI; {} fixed",
            summary.path,
            summary.new_findings,
            summary.new_actionable,
            summary.fixed.len()
        );
    }
    Ok(written.outcome)
}

/// The regression tests, each file on stdout; problems left without one are said on stderr.
fn write_tests(run_dir: &Path, run: &RunRecord, dir: &Path) -> anyhow::Result<()> {
    let registry = Registry::load(None)?;
    let written = regression_tests::write_tests(run_dir, run, &registry, dir)?;
    for file in &written.files {
        println!("{}", file.display());
    }
    for (id, why) in &written.skipped {
        eprintln!("{id}: no regression test ({why})");
    }
    Ok(())
}
