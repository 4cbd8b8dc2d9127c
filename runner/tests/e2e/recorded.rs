//! The calls the test suite makes, recorded and fed to the stress phase: the racy fixture's
//! bugs behind a mode, a constructor option or an argument type are found by the stress phase
//! with the recorded calls and missed with `--no-test-calls`; odd arguments (generators,
//! unpicklable, huge, raising callbacks) are recorded by type or skipped, and the suite passes.

use std::path::Path;

use ftreview_reports::model::{Phase, PhaseRecord, PhaseStatus};
use ftreview_stress::{ApiCalls, RecordedCallable, RecordedValue};

use crate::support::*;

/// The plain suite (which records) and the stress phase only: no pytest-run-parallel, so
/// every race found is the stress phase's.
fn stress_run(python: &Path, test_calls: bool) -> Run {
    let mut args = vec!["--phases", "tests,stress"];
    args.extend(PINNED_SHARES);
    if !test_calls {
        args.push("--no-test-calls");
    }
    shared_run("racy_ext", python, &args)
}

/// The planted races that need the suite's arguments, and whether the run found each.
fn found_needing_test_calls(run: &Run) -> Vec<(String, bool)> {
    let results = run.results();
    let expected = expected("racy_ext");
    let needing: Vec<&str> = expected
        .races
        .iter()
        .filter(|r| r.needs_test_calls)
        .map(|r| r.id.as_str())
        .collect();
    assert_eq!(
        needing.len(),
        3,
        "the three argument-dependent planted bugs"
    );
    problems_of_planted(&races(&results), &expected)
        .into_iter()
        .filter(|(id, _)| needing.contains(&id.as_str()))
        .map(|(id, problems)| (id, !problems.is_empty()))
        .collect()
}

fn stress_phase(run: &Run) -> PhaseRecord {
    run.record()
        .phases
        .into_iter()
        .find(|p| p.phase == Phase::Stress)
        .unwrap_or_else(|| panic!("no stress phase\n{}", run.stderr))
}

#[test]
fn recorded_arguments_find_the_races_the_catalogue_misses() {
    let Some(python) = interpreter() else { return };
    let recorded = stress_run(&python, true);
    let catalogue = stress_run(&python, false);

    let with = found_needing_test_calls(&recorded);
    assert!(
        with.iter().all(|(_, found)| *found),
        "with recording: {with:?}"
    );
    let without = found_needing_test_calls(&catalogue);
    assert!(
        without.iter().all(|(_, found)| !found),
        "with --no-test-calls: {without:?}"
    );

    let note = stress_phase(&recorded).message.unwrap_or_default();
    assert!(note.contains("from the test suite's calls"), "{note}");
    let note = stress_phase(&catalogue).message.unwrap_or_default();
    assert!(note.contains("--no-test-calls"), "{note}");
    assert!(
        catalogue.plan().contains("test calls off: --no-test-calls"),
        "the plan says where the arguments came from"
    );
}

fn recorded_calls(run: &Run) -> ApiCalls {
    let path = run
        .dir
        .join("logs/tests")
        .join(ftreview_stress::API_CALLS_FILE);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}\n{}", path.display(), run.stderr));
    ftreview_stress::parse_api_calls(&text).unwrap()
}

fn callable<'a>(calls: &'a ApiCalls, qualname: &str) -> &'a RecordedCallable {
    calls
        .callables
        .iter()
        .find(|c| c.qualname == qualname)
        .unwrap_or_else(|| panic!("{qualname} was not recorded: {calls:#?}"))
}

/// The first argument of each recorded call of `callable`, as recorded.
fn first_arguments(callable: &RecordedCallable) -> Vec<&RecordedValue> {
    callable
        .arg_sets
        .iter()
        .filter_map(|s| s.args.first())
        .collect()
}

fn type_only(values: &[&RecordedValue], type_name: &str) -> bool {
    values.iter().any(
        |v| matches!(v, RecordedValue::TypeOnly { type_name: t, .. } if t.as_str() == type_name),
    )
}

#[test]
fn recorded_calls_hold_modes_options_and_odd_arguments_by_type() {
    let Some(python) = interpreter() else { return };
    let run = stress_run(&python, true);
    let tests = run
        .record()
        .phases
        .into_iter()
        .find(|p| p.phase == Phase::Tests)
        .expect("the plain test phase");
    assert_eq!(tests.status, PhaseStatus::Passed, "{:?}", tests.message);
    let calls = recorded_calls(&run);

    let format = callable(&calls, "ftfixture_racy.format_value");
    let modes: Vec<String> = format
        .arg_sets
        .iter()
        .flat_map(|s| {
            s.args
                .iter()
                .skip(1)
                .chain(s.keywords.iter().map(|k| &k.value))
        })
        .filter_map(|v| match v {
            RecordedValue::Literal { source, .. } => Some(source.clone()),
            _ => None,
        })
        .collect();
    for mode in ["'hex'", "'HEX'", "'oct'", "'bin'"] {
        assert!(modes.iter().any(|m| m == mode), "{mode} in {modes:?}");
    }
    // A hot call site is only counted once it repeats itself, and still read now and then: the
    // outer loop's second mode, 300 calls in, is recorded, and every call is counted.
    let looped = "test_format_value_over_a_range_in_each_mode";
    assert!(
        format.arg_sets.iter().any(|s| {
            s.test.as_deref().is_some_and(|t| t.ends_with(looped))
                && matches!(s.args.get(1), Some(RecordedValue::Literal { source, .. }) if source == "'oct'")
        }),
        "'oct' from {looped}: {format:#?}"
    );
    assert!(format.calls >= 600, "{format:#?}");
    let vector = callable(&calls, "ftfixture_racy.Vector");
    assert!(
        vector
            .arg_sets
            .iter()
            .flat_map(|s| &s.keywords)
            .any(|k| k.name == "shared"
                && matches!(&k.value, RecordedValue::Literal { source, .. } if source == "True")),
        "Vector(..., shared=True): {vector:#?}"
    );

    // A generator and an iterable whose iterator raises: by type.
    let built_from = first_arguments(vector);
    assert!(
        type_only(&built_from, "builtins.generator"),
        "{built_from:?}"
    );
    assert!(
        type_only(&built_from, "test_odd_arguments.Exploding"),
        "{built_from:?}"
    );
    // Unpicklable objects by type, 1 MiB of noise by type and size, an 8 MiB string too large
    // to evaluate from its expression skipped.
    let add = callable(&calls, "ftfixture_racy.Registry.add");
    let added = first_arguments(add);
    assert!(
        type_only(&added, "test_odd_arguments.Unpicklable"),
        "{added:?}"
    );
    assert!(type_only(&added, "_thread.lock"), "{added:?}");
    assert!(
        added.iter().any(|v| matches!(v,
            RecordedValue::TypeOnly { type_name, len: Some(n) }
                if type_name == "builtins.bytes" && *n == 1 << 20)),
        "{added:?}"
    );
    assert!(add.unresolved > 0, "{add:#?}");
}
