//! End to end on the project's fixture extensions, under the TSan interpreter: introspection,
//! generated scenarios (no hints, no targets), TSan logs. Every planted race of
//! `ftfixture_racy` must show up; `ftfixture_clean` must give no report whose racing access is
//! in its own code or the C-API call it makes (frame #0 or #1); interpreter-internal races deeper
//! below, such as `PyList_GetItemRef`'s try-incref against an allocation reusing the memory,
//! are the interpreter's. `ftfixture_quirky` must be introspected whole despite its shapes
//! and a trial that crashes, and its single-threaded contract bug must show in the control run.

mod support;

use std::time::Duration;

use ftreview_stress::{
    generate, same_anomaly_in_control, AnomalyKind, ApiModel, CrashOutcome, GenConfig,
    IntrospectionRequest, OutcomeStatus, Scenario, ScenarioKind,
};
use support::{reports_in, Expected, QuirkyExpected, Report, Venv};

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
    let mut missing = expected
        .races
        .iter()
        .filter(|r| !r.needs_test_calls)
        .collect::<Vec<_>>();
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

#[test]
fn quirky_fixture_is_introspected_whole_and_its_single_threaded_bugs_are_told_apart() {
    let Some(python) = support::tsan_python("stress e2e (quirky)") else {
        return;
    };
    let expected = QuirkyExpected::load().unwrap();
    let venv = Venv::with_fixtures(&python, &["quirky_ext"]).expect("building the quirky fixture");
    let model = venv
        .introspect_request(&IntrospectionRequest {
            modules: expected.modules.clone(),
            define_types: expected.define_types.clone(),
            ..IntrospectionRequest::default()
        })
        .expect("introspection of the quirky fixture completes");
    assert!(!model.python.gil_enabled);
    assert!(model.skipped.is_empty(), "{:?}", model.skipped);
    assert!(
        model.unmatched_define_types.is_empty(),
        "{:?}",
        model.unmatched_define_types
    );
    check_crashed_trial(&venv, &model, &expected);
    check_types(&model, &expected);
    check_quirky_scenarios(&venv, &model, &expected);
}

/// The crash is recorded with a one-line call that crashes the same way when run alone.
fn check_crashed_trial(venv: &Venv, model: &ApiModel, expected: &QuirkyExpected) {
    let quirk = expected.quirk("uninitialised-state");
    let holds_pieces = |call: &str| {
        let mut rest = call;
        quirk
            .call
            .iter()
            .all(|piece| match rest.find(piece.as_str()) {
                Some(at) => {
                    rest = &rest[at + piece.len()..];
                    true
                }
                None => false,
            })
    };
    let trial = model
        .crashed_trials
        .iter()
        .find(|t| t.call.as_deref().is_some_and(holds_pieces))
        .unwrap_or_else(|| {
            panic!(
                "no crashed trial like {:?}: {:#?}",
                quirk.call, model.crashed_trials
            )
        });
    assert_eq!(model.crashed_trials.len(), 1, "{:#?}", model.crashed_trials);
    assert_eq!(trial.outcome, CrashOutcome::Crash);
    assert_eq!(trial.signal, quirk.signal);
    let function = quirk.function.as_deref().unwrap();
    assert!(
        trial
            .detail
            .as_deref()
            .is_some_and(|d| d.contains(function)),
        "{trial:?}"
    );
    let call = trial.call.as_deref().unwrap();
    assert!(!call.contains('\n'));
    let alone = venv.run_line(call).unwrap();
    let stderr = String::from_utf8_lossy(&alone.stderr);
    assert!(!alone.status.success(), "{call} did not crash alone");
    assert!(
        stderr.contains("SEGV") && stderr.contains(function),
        "{call} alone: {stderr}"
    );
}

fn check_types(model: &ApiModel, expected: &QuirkyExpected) {
    let short = expected.quirk("short-tp-name");
    let key = short.r#type.as_deref().unwrap();
    let module = model
        .modules
        .iter()
        .find(|m| Some(&m.name) == short.module.as_ref())
        .unwrap();
    let thing = module
        .types
        .iter()
        .find(|t| t.qualname == key)
        .unwrap_or_else(|| panic!("{key} not listed in {}", module.name));
    assert_eq!(thing.tp_name.as_deref(), Some(key));
    assert!(thing.extension && !thing.constructors.is_empty());
    let subclass = model.find_type(short.subclass.as_deref().unwrap()).unwrap();
    for ty in [thing, subclass] {
        for name in &short.properties {
            let prop = ty.properties.iter().find(|p| &p.name == name).unwrap();
            assert!(
                prop.readable && prop.writable && prop.reaches_c,
                "{}: {prop:?}",
                ty.qualname
            );
        }
    }
    let tagged = expected.quirk("member-module");
    assert!(model.find_type(tagged.r#type.as_deref().unwrap()).is_some());
    let guarded = expected.quirk("raising-attribute");
    let guarded_type = model.find_type(guarded.r#type.as_deref().unwrap()).unwrap();
    let secret = guarded_type
        .properties
        .iter()
        .find(|p| Some(&p.name) == guarded.attribute.as_ref())
        .unwrap();
    assert!(!secret.readable);
}

/// Scenarios run and find nothing in the extension's code; the contract bug is an anomaly
/// the single-thread control run shows too.
fn check_quirky_scenarios(venv: &Venv, model: &ApiModel, expected: &QuirkyExpected) {
    let contract = expected.quirk("result-with-exception");
    let scenarios = generate(model, &config());
    let short = expected.quirk("short-tp-name");
    let setter = format!("property-setter.{}", short.r#type.as_deref().unwrap());
    let label = format!(
        "{}.{}",
        short.r#type.as_deref().unwrap(),
        short.properties[0]
    );
    assert!(
        scenarios
            .iter()
            .any(|s| s.name == setter && s.c_callables.contains(&label)),
        "no {setter} scenario assigning {label}"
    );
    let file = expected.source.rsplit('/').next().unwrap();
    let mut contract_anomaly = None;
    for scenario in &scenarios {
        let dir = venv.dir.path().join("quirky").join(&scenario.name);
        let run = venv.run_scenario(scenario, &dir, SCENARIO_TIMEOUT).unwrap();
        let outcome = run
            .outcome
            .unwrap_or_else(|| panic!("{}: no outcome written", scenario.name));
        assert_eq!(outcome.status, OutcomeStatus::Finished, "{}", scenario.name);
        assert_eq!(outcome.error, None, "{}", scenario.name);
        let own = reports_in(&run.reports, file);
        assert!(
            own.is_empty(),
            "{}: TSan reports in {file}: {own:#?}",
            scenario.name
        );
        for anomaly in &outcome.anomalies {
            assert_eq!(
                Some(&anomaly.op),
                contract.op.as_ref(),
                "{}: an anomaly besides the contract bug: {anomaly:?}",
                scenario.name
            );
            assert_eq!(anomaly.kind, AnomalyKind::InternalError);
            assert!(anomaly.detail.contains(contract.detail.as_deref().unwrap()));
            contract_anomaly = Some((scenario.clone(), anomaly.clone()));
        }
    }
    let (scenario, anomaly) = contract_anomaly.expect("the contract bug shows in a scenario");
    assert_eq!(scenario.kind, ScenarioKind::FunctionHammer);
    let dir = venv.dir.path().join("quirky-control").join(&scenario.name);
    let control = venv
        .run_scenario_as(&scenario, &dir, SCENARIO_TIMEOUT, true)
        .unwrap()
        .outcome
        .expect("the control run writes its outcome");
    assert!(control.single_thread);
    assert!(
        same_anomaly_in_control(&anomaly, &control),
        "the control run did not reproduce {anomaly:?}: {:?}",
        control.anomalies
    );
    let alone = venv.run_line(&anomaly.call).unwrap();
    assert!(
        String::from_utf8_lossy(&alone.stderr).contains("SystemError"),
        "{} alone did not raise SystemError",
        anomaly.call
    );
}
