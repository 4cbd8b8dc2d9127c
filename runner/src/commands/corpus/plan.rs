//! `ftreview corpus plan`: which shard reviews which targets, balanced by expected cost with
//! greedy longest-processing-time: the costliest target first, each onto the least-loaded
//! shard. Ties keep list order and go to the lowest shard, so the same inputs always give the
//! same shards, and `corpus run` recomputes its part instead of reading it from somewhere.
//!
//! A target's expected cost is its wall time in a previous corpus.json (`--costs`), matched on
//! the exact target and else on its key (the same project at another version); without one,
//! its time budget: the stress phase runs until the budget is spent, so a review that gets
//! through setup takes about its budget whatever the size of its sources.

use std::collections::HashMap;

use clap::Args;
use serde::{Deserialize, Serialize};

use super::list::{target_key, CorpusList};
use super::report::CorpusReport;
use super::PlanInputs;
use crate::events::format_secs;
use crate::exit::Outcome;

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Number of shards (matrix jobs, pods, machines).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    shards: u16,
    #[command(flatten)]
    inputs: PlanInputs,
}

/// Prints the matrix on one line of stdout (for `$GITHUB_OUTPUT`), the summary on stderr.
pub fn run(args: PlanArgs) -> anyhow::Result<Outcome> {
    let planned = args.inputs.plan(usize::from(args.shards))?;
    eprintln!("{}", describe(&planned.matrix, &planned.costs));
    println!("{}", serde_json::to_string(&planned.matrix)?);
    Ok(Outcome::Clean)
}

/// The plan as a GitHub Actions matrix (`strategy.matrix: ${{ fromJSON(…) }}`): only
/// `include`, since any other top-level key would become a matrix dimension.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Matrix {
    pub include: Vec<ShardPlan>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardPlan {
    /// 1-based, as `--shard K/N` takes it.
    pub shard: usize,
    pub of: usize,
    /// As written in the list, in list order.
    pub targets: Vec<String>,
    pub expected_secs: u64,
}

/// Where a target's expected cost came from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cost {
    /// Wall time in the cost file.
    Measured(f64),
    /// No measurement: the time budget.
    Budget(f64),
}

impl Cost {
    fn secs(self) -> f64 {
        match self {
            Cost::Measured(secs) | Cost::Budget(secs) => secs,
        }
    }
}

/// Each entry's expected cost, in list order.
pub fn expected_costs(list: &CorpusList, history: Option<&CorpusReport>) -> Vec<Cost> {
    let mut by_target = HashMap::new();
    let mut by_key = HashMap::new();
    for target in history.map_or(&[][..], |h| &h.targets) {
        if let Some(secs) = target.wall_secs {
            by_target.entry(target.target.as_str()).or_insert(secs);
            by_key.entry(target.key.as_str()).or_insert(secs);
        }
    }
    list.entries
        .iter()
        .map(|entry| {
            by_target
                .get(entry.target.as_str())
                .or_else(|| by_key.get(target_key(&entry.spec).as_str()))
                .map_or(Cost::Budget(entry.budget.as_secs_f64()), |secs| {
                    Cost::Measured(*secs)
                })
        })
        .collect()
}

/// Greedy LPT: the indices of `costs` each of `shards` shards gets, each in ascending order.
pub fn assign(costs: &[f64], shards: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..costs.len()).collect();
    order.sort_by(|a, b| costs[*b].total_cmp(&costs[*a]));
    let mut loads = vec![0.0_f64; shards];
    let mut members = vec![Vec::new(); shards];
    for index in order {
        let lightest = (0..shards)
            .min_by(|a, b| loads[*a].total_cmp(&loads[*b]))
            .expect("at least one shard");
        loads[lightest] += costs[index];
        members[lightest].push(index);
    }
    for shard in &mut members {
        shard.sort_unstable();
    }
    members
}

/// The shards of `list`.
pub fn plan(list: &CorpusList, costs: &[Cost], shards: usize) -> Matrix {
    let secs: Vec<f64> = costs.iter().map(|c| c.secs()).collect();
    let include = assign(&secs, shards)
        .into_iter()
        .enumerate()
        .map(|(i, members)| ShardPlan {
            shard: i + 1,
            of: shards,
            expected_secs: members.iter().map(|m| secs[*m]).sum::<f64>().round() as u64,
            targets: members
                .iter()
                .map(|m| list.entries[*m].target.clone())
                .collect(),
        })
        .collect();
    Matrix { include }
}

/// For people: each shard's expected time and where the costs came from.
pub fn describe(matrix: &Matrix, costs: &[Cost]) -> String {
    let measured = costs
        .iter()
        .filter(|c| matches!(c, Cost::Measured(_)))
        .count();
    let mut lines = vec![format!(
        "{} target(s) in {} shard(s); expected costs: {measured} measured in the cost file, {} from their time budget",
        costs.len(),
        matrix.include.len(),
        costs.len() - measured
    )];
    for shard in &matrix.include {
        lines.push(format!(
            "  shard {}/{}: {} target(s), about {}",
            shard.shard,
            shard.of,
            shard.targets.len(),
            format_secs(shard.expected_secs as f64)
        ));
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::corpus::options::OptionSet;
    use crate::commands::corpus::report::{CorpusTarget, TargetStatus, CORPUS_SCHEMA_VERSION};

    #[test]
    fn lpt_puts_the_costliest_first_onto_the_lightest_shard() {
        let shards = assign(&[3.0, 5.0, 2.0, 4.0, 6.0, 1.0], 2);
        // 6 → s1, 5 → s2, 4 → s2 (5 < 6), 3 → s1, 2 → s1 (9 = 9: the lower shard), 1 → s2.
        assert_eq!(shards, vec![vec![0, 2, 4], vec![1, 3, 5]]);
        let loads: Vec<f64> = shards
            .iter()
            .map(|s| s.iter().map(|i| [3.0, 5.0, 2.0, 4.0, 6.0, 1.0][*i]).sum())
            .collect();
        assert_eq!(loads, [11.0, 10.0]);
    }

    #[test]
    fn equal_costs_deal_out_in_list_order_and_extra_shards_stay_empty() {
        assert_eq!(assign(&[1.0; 5], 2), vec![vec![0, 2, 4], vec![1, 3]]);
        assert_eq!(assign(&[1.0], 3), vec![vec![0], vec![], vec![]]);
    }

    #[test]
    fn the_same_costs_always_give_the_same_shards() {
        let costs: Vec<f64> = (0..40).map(|i| ((i * 37) % 11) as f64 * 60.0).collect();
        let first = assign(&costs, 7);
        for _ in 0..5 {
            assert_eq!(assign(&costs, 7), first);
        }
        let mut all: Vec<usize> = first.concat();
        all.sort_unstable();
        assert_eq!(
            all,
            (0..40).collect::<Vec<_>>(),
            "every target exactly once"
        );
    }

    fn corpus_list(text: &str) -> CorpusList {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("list.txt");
        std::fs::write(&path, text).unwrap();
        CorpusList::load(&path, &OptionSet::default()).unwrap()
    }

    fn measured(target: &str, key: &str, wall_secs: Option<f64>) -> CorpusTarget {
        CorpusTarget {
            target: target.into(),
            options: vec![],
            line: 1,
            key: key.into(),
            shard: Some(1),
            name: key.into(),
            version: None,
            status: TargetStatus::Reviewed,
            verdict: None,
            outcome: None,
            gil: None,
            counts: None,
            wall_secs,
            exit_code: Some(0),
            error: None,
            clean_unproven: None,
            run_dir: None,
            plan: None,
        }
    }

    #[test]
    fn costs_come_from_the_cost_file_by_target_then_by_key_else_from_the_budget() {
        let list = corpus_list("a==2.0\nb==1.0 --budget 5m\nc\nd\n");
        let history = CorpusReport {
            schema_version: CORPUS_SCHEMA_VERSION,
            tool_version: "0".into(),
            targets: vec![
                measured("a==1.0", "a", Some(100.0)),
                measured("b==1.0", "b", Some(250.0)),
                measured("c", "c", None),
            ],
            changes: None,
        };
        let costs = expected_costs(&list, Some(&history));
        assert_eq!(
            costs,
            [
                Cost::Measured(100.0),
                Cost::Measured(250.0),
                Cost::Budget(900.0),
                Cost::Budget(900.0)
            ]
        );
        let matrix = plan(&list, &costs, 2);
        // c (900) → s1, d (900) → s2, b (250) → s1 (tie), a (100) → s2; list order within.
        assert_eq!(matrix.include[0].targets, ["b==1.0", "c"]);
        assert_eq!(matrix.include[1].targets, ["a==2.0", "d"]);
        assert_eq!(matrix.include[0].expected_secs, 1150);
        let json = serde_json::to_value(&matrix).unwrap();
        assert_eq!(
            json.as_object().unwrap().keys().collect::<Vec<_>>(),
            ["include"]
        );
    }
}
