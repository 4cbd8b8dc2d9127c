//! How many planted races the generated scenarios find at 25 %, 50 % and 100 % of the
//! per-scenario budget, and races found per minute of budget. The races that need the test
//! suite's recorded calls (`needs_test_calls`) are counted apart: this bench runs no suite.
//!
//! `FTREVIEW_PYTHON=/path/to/python3.13t cargo bench -p ftreview-stress --bench planted_races`
//! Optional: `FTREVIEW_BENCH_BUDGET_SECS` (full per-scenario budget, default 12),
//! `FTREVIEW_BENCH_VENV_PYTHON` + `FTREVIEW_BENCH_MODULES` (comma-separated) to measure any
//! extension already installed in a TSan venv: distinct report sites instead of planted races.

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ftreview_stress::{generate, GenConfig};
use support::{Expected, Report, Venv};

const FRACTIONS: [f64; 3] = [0.25, 0.5, 1.0];

fn main() {
    let Some(python) = support::tsan_python("planted_races bench") else {
        return;
    };
    let full: u64 = std::env::var("FTREVIEW_BENCH_BUDGET_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(12);
    let (venv, modules) = match (
        std::env::var("FTREVIEW_BENCH_VENV_PYTHON"),
        std::env::var("FTREVIEW_BENCH_MODULES"),
    ) {
        (Ok(venv_python), Ok(modules)) => {
            let dir = tempfile::tempdir().expect("temp dir");
            (
                Venv {
                    python: PathBuf::from(venv_python),
                    dir,
                },
                modules.split(',').map(str::to_string).collect(),
            )
        }
        _ => (
            Venv::with_fixtures(&python, &["racy_ext"]).expect("building the racy fixture"),
            vec!["ftfixture_racy".to_string()],
        ),
    };
    let module_refs: Vec<&str> = modules.iter().map(String::as_str).collect();
    let started = Instant::now();
    let model = venv.introspect(&module_refs).expect("introspection");
    println!(
        "introspection: {:.1}s, {} types, {} functions, {} crashed or hung trials, {} restarts",
        started.elapsed().as_secs_f64(),
        model.types().count(),
        model
            .modules
            .iter()
            .map(|m| m.functions.len())
            .sum::<usize>(),
        model.crashed_trials.len(),
        model.restarts
    );
    let expected =
        (modules == ["ftfixture_racy"]).then(|| Expected::load("racy_ext").expect("expected.yaml"));
    println!("fraction  budget/scenario  scenarios  wall     found              per-minute-of-budget  crashed/timed-out");
    for fraction in FRACTIONS {
        let budget = Duration::from_secs_f64(full as f64 * fraction);
        let cfg = GenConfig {
            seed: 7,
            threads: 4,
            iterations: 10_000_000,
            time_budget_per_scenario: budget,
            ..GenConfig::default()
        };
        let scenarios = generate(&model, &cfg);
        let started = Instant::now();
        let mut reports: Vec<Report> = Vec::new();
        let mut troubled = 0;
        for scenario in &scenarios {
            let dir = venv
                .dir
                .path()
                .join(format!("bench-{fraction}"))
                .join(&scenario.name);
            let run = venv
                .run_scenario(scenario, &dir, budget * 3 + Duration::from_secs(60))
                .expect("scenario run");
            troubled += usize::from(run.timed_out || run.outcome.is_none_or(|o| o.died()));
            reports.extend(run.reports);
        }
        let budget_minutes = budget.as_secs_f64() * scenarios.len() as f64 / 60.0;
        let (found, of) = match &expected {
            // This bench introspects without the suite, so the races that need its recorded
            // calls are counted apart (scripts/bench-test-calls.sh measures those).
            Some(expected) => {
                let (needing, catalogue): (Vec<_>, Vec<_>) =
                    expected.races.iter().partition(|r| r.needs_test_calls);
                let missing: Vec<&str> = catalogue
                    .iter()
                    .filter(|r| !r.found_in(expected, &reports))
                    .map(|r| r.id.as_str())
                    .collect();
                let found_needing = needing
                    .iter()
                    .filter(|r| r.found_in(expected, &reports))
                    .count();
                (
                    catalogue.len() - missing.len(),
                    format!(
                        "/{} planted{}, {found_needing}/{} needing test calls",
                        catalogue.len(),
                        if missing.is_empty() {
                            String::new()
                        } else {
                            format!(" (missing {})", missing.join(", "))
                        },
                        needing.len()
                    ),
                )
            }
            None => (
                distinct_sites(&reports, &modules),
                " distinct sites".to_string(),
            ),
        };
        println!(
            "{:>7.0}%  {:>13.1}s  {:>9}  {:>6.0}s  {:>3}{of:<40}  {:>20.2}  {troubled}",
            fraction * 100.0,
            budget.as_secs_f64(),
            scenarios.len(),
            started.elapsed().as_secs_f64(),
            found,
            found as f64 / budget_minutes,
        );
    }
}

/// Distinct (kind, first frame in the extension) pairs: an extension frame's file lies in a
/// directory named like one of the modules' packages.
fn distinct_sites(reports: &[Report], modules: &[String]) -> usize {
    let packages: Vec<&str> = modules
        .iter()
        .map(|m| m.split('.').next().unwrap_or(m))
        .collect();
    let sites: BTreeSet<(String, String, u32)> = reports
        .iter()
        .filter_map(|r| {
            let frame = r.frames.iter().find(|f| {
                packages.iter().any(|p| {
                    f.file.contains(&format!("/{p}/")) || f.file.contains(&format!("{p}."))
                })
            })?;
            Some((
                r.kind.clone(),
                frame
                    .file
                    .rsplit('/')
                    .next()
                    .unwrap_or(&frame.file)
                    .to_string(),
                frame.line,
            ))
        })
        .collect();
    sites.len()
}
