//! End to end on the project's fixture extensions, under the TSan interpreter: introspection,
//! generated scenarios (no hints, no targets), TSan logs. Every planted race of
//! `ftfixture_racy` must show up; `ftfixture_clean` must give no report whose racing access is
//! in its own code or the C-API call it makes (frame #0 or #1); interpreter-internal races deeper
//! below, such as `PyList_GetItemRef`'s try-incref against an allocation reusing the memory,
//! are the interpreter's.

mod support;

use std::time::Duration;

use ftreview_stress::{generate, GenConfig, OutcomeStatus, Scenario, ScenarioKind};
use support::{reports_in, Expected, Report, Venv};

/// Passes over all scenarios; then only the scenarios calling a still-missing race's entry
/// points run again, up to `MAX_RERUNS` times: a lazy initialisation race happens only on
/// the first calls in a process and TSan sees it in a minority of processes.
const MAX_PASSES: usize = 2;
const MAX_RERUNS: usize = 8;

fn config() -> GenConfig {
    GenConfig {
        seed: 1,
        threads: 4,
        iterations: 1_000_000,
        time_budget_per_scenario: Duration::from_secs(8),
        ..GenConfig::default()
    }
}

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
    let mut missing = expected.races.iter().collect::<Vec<_>>();
    for round in 1..=MAX_PASSES + MAX_RERUNS {
        let wanted: Vec<&String> = missing.iter().flat_map(|r| &r.python).collect();
        let rerun =
            |s: &&Scenario| round <= MAX_PASSES || s.callables.iter().any(|c| wanted.contains(&c));
        for scenario in scenarios.iter().filter(rerun) {
            let dir = venv
                .dir
                .path()
                .join(format!("racy-{round}"))
                .join(&scenario.name);
            let run = venv.run_scenario(scenario, &dir, SCENARIO_TIMEOUT).unwrap();
            let status = run.outcome.as_ref().map(|o| o.status);
            eprintln!(
                "round {round} {:<45} {:>5.1}s {:>3} reports, status {status:?}, timed out {}",
                scenario.name,
                run.elapsed.as_secs_f64(),
                run.reports.len(),
                run.timed_out
            );
            reports.extend(run.reports);
        }
        missing.retain(|r| !r.found_in(&expected, &reports));
        eprintln!(
            "after round {round}: {} reports, missing {:?}",
            reports.len(),
            missing.iter().map(|r| &r.id).collect::<Vec<_>>()
        );
        if missing.is_empty() {
            return;
        }
    }
    panic!(
        "planted races not found: {:?}",
        missing.iter().map(|r| &r.id).collect::<Vec<_>>()
    );
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
