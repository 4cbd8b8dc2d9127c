//! The summary table of several runs in one invocation.

use tabled::settings::Style;
use tabled::{Table, Tabled};

use crate::analyze::analyze;
use crate::model::RunRecord;

#[derive(Tabled)]
struct Row {
    #[tabled(rename = "Target")]
    target: String,
    #[tabled(rename = "Verdict")]
    verdict: String,
    #[tabled(rename = "Py_mod_gil")]
    gil: String,
    #[tabled(rename = "Races")]
    races: usize,
    #[tabled(rename = "Crashes")]
    crashes: usize,
    #[tabled(rename = "Hangs")]
    hangs: usize,
    #[tabled(rename = "Static (confirmed / total)")]
    statics: String,
    #[tabled(rename = "Interpreter-internal")]
    noise: usize,
}

/// A Markdown table with one row per run.
pub fn summary_table(runs: &[RunRecord]) -> String {
    let rows = runs.iter().map(|run| {
        let results = analyze(run, None).results;
        let c = &results.counts;
        Row {
            target: match &run.target.version {
                Some(version) => format!("{} {version}", run.target.name),
                None => run.target.name.clone(),
            },
            verdict: results.verdict.level.label().to_string(),
            gil: results.gil.declared.label().to_string(),
            races: c.races,
            crashes: c.crashes,
            hangs: c.hangs,
            statics: format!(
                "{} / {}",
                c.static_confirmed,
                c.static_confirmed + c.static_not_reproduced + c.static_not_exercised
            ),
            noise: c.interpreter_noise,
        }
    });
    Table::new(rows).with(Style::markdown()).to_string()
}
