//! End to end on the project's fixture extensions, under the TSan interpreter: introspection,
//! generated scenarios (no hints, no targets), TSan logs. Every planted race of
//! `ftfixture_racy` must show up; `ftfixture_clean` must give no report in its own code.

mod support;

use std::time::Duration;

use ftreview_stress::{generate, GenConfig, OutcomeStatus, ScenarioKind};
use support::{reports_in, Expected, Report, Venv};

/// The planted races are found within this many passes over the scenarios: lazy
/// initialisation races only happen on the first calls in a process, so a pass can miss one.
const MAX_PASSES: usize = 3;

fn config() -> GenConfig {
    GenConfig {
        seed: 1,
        threads: 4,
        iterations: 1_000_000,
        time_budget_per_scenario: Duration::from_secs(6),
        ..GenConfig::default()
    }
}

/// Racy scenarios can spin forever on a corrupted heap; the budget is 6 s.
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(30);

#[test]
fn generated_scenarios_find_every_planted_race_and_none_in_the_clean_twin() {
    let Some(python) = support::tsan_python("stress e2e") else {
        return;
    };
    let venv = Venv::with_fixtures(&python, &["racy_ext", "clean_ext"])
        .expect("building the fixtures into a venv");
    check_racy(&venv);
    check_clean(&venv);
}

fn check_racy(venv: &Venv) {
    let expected = Expected::load("racy_ext").unwrap();
    let model = venv.introspect(&[&expected.module]).unwrap();
    assert!(
        !model.python.gil_enabled,
        "the racy fixture declares Py_MOD_GIL_NOT_USED; the GIL must stay off"
    );
    let scenarios = generate(&model, &config());
    let kinds: Vec<ScenarioKind> = scenarios.iter().map(|s| s.kind).collect();
    for kind in [
        ScenarioKind::SharedMutation,
        ScenarioKind::ReadWrite,
        ScenarioKind::FunctionHammer,
        ScenarioKind::Churn,
        ScenarioKind::TwoObject,
    ] {
        assert!(
            kinds.contains(&kind),
            "no {kind:?} scenario for the racy fixture: {kinds:?}"
        );
    }
    let mut reports: Vec<Report> = Vec::new();
    for pass in 1..=MAX_PASSES {
        for scenario in &scenarios {
            let dir = venv
                .dir
                .path()
                .join(format!("racy-{pass}"))
                .join(&scenario.name);
            let run = venv.run_scenario(scenario, &dir, SCENARIO_TIMEOUT).unwrap();
            let status = run.outcome.as_ref().map(|o| o.status);
            eprintln!(
                "pass {pass} {:<45} {:>5.1}s {:>3} reports, status {status:?}, timed out {}",
                scenario.name,
                run.elapsed.as_secs_f64(),
                run.reports.len(),
                run.timed_out
            );
            reports.extend(run.reports);
        }
        let missing: Vec<&str> = expected
            .races
            .iter()
            .filter(|r| !r.found_in(&expected, &reports))
            .map(|r| r.id.as_str())
            .collect();
        eprintln!(
            "after pass {pass}: {} reports, missing {missing:?}",
            reports.len()
        );
        if missing.is_empty() {
            return;
        }
        assert!(
            pass < MAX_PASSES,
            "planted races not found after {MAX_PASSES} passes: {missing:?}"
        );
    }
}

fn check_clean(venv: &Venv) {
    let model = venv.introspect(&["ftfixture_clean"]).unwrap();
    let scenarios = generate(&model, &config());
    assert!(
        scenarios.len() >= 5,
        "too few scenarios for the clean twin: {}",
        scenarios.len()
    );
    for scenario in &scenarios {
        let dir = venv.dir.path().join("clean").join(&scenario.name);
        let run = venv.run_scenario(scenario, &dir, SCENARIO_TIMEOUT).unwrap();
        let outcome = run
            .outcome
            .unwrap_or_else(|| panic!("{}: no outcome written", scenario.name));
        assert_eq!(
            outcome.status,
            OutcomeStatus::Finished,
            "{}: the clean twin's scenario did not finish",
            scenario.name
        );
        assert!(
            outcome.error.is_none(),
            "{}: {:?}",
            scenario.name,
            outcome.error
        );
        assert!(
            outcome.anomalies.is_empty(),
            "{}: anomalies in the clean twin: {:?}",
            scenario.name,
            outcome.anomalies
        );
        assert!(
            outcome.iterations_done > 0,
            "{}: no iteration ran",
            scenario.name
        );
        let own = reports_in(&run.reports, "ftfixture_clean.c");
        assert!(
            own.is_empty(),
            "{}: TSan reports in the clean twin's code: {own:#?}",
            scenario.name
        );
    }
}
