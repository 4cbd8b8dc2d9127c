//! Generation on a fixed API model (the introspection output for the racy fixture):
//! deterministic, snapshot-tested, with targets and hints.

use std::time::Duration;

use ftreview_stress::{
    generate, parse_api_model, parse_outcome, ApiModel, GenConfig, Hints, Mutation, OutcomeStatus,
    ScenarioKind,
};

const HARNESS_MARKER: &str = "# ---- helpers the operations call";

fn model() -> ApiModel {
    parse_api_model(include_str!("data/racy_model.json")).unwrap()
}

fn config(seed: u64) -> GenConfig {
    GenConfig {
        seed,
        threads: 4,
        iterations: 500,
        time_budget_per_scenario: Duration::from_secs(10),
        ..GenConfig::default()
    }
}

/// The generated part of every script (the harness is the same in all of them).
fn digest(cfg: &GenConfig) -> String {
    generate(&model(), cfg)
        .iter()
        .map(|s| {
            let head = s.script.split(HARNESS_MARKER).next().unwrap_or_default();
            format!(
                "===== {} ({:?}) calls {:?}\n{head}",
                s.name, s.kind, s.callables
            )
        })
        .collect()
}

#[test]
fn generation_snapshot() {
    insta::assert_snapshot!(digest(&config(42)));
}

#[test]
fn same_seed_same_scripts_other_seed_other_sequences() {
    let a = generate(&model(), &config(42));
    assert_eq!(a, generate(&model(), &config(42)));
    let b = generate(&model(), &config(43));
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.name, y.name);
        assert_ne!(
            x.script, y.script,
            "{}: the seed must reach the script",
            x.name
        );
        let strip = |s: &str| {
            s.lines()
                .filter(|l| !l.starts_with("SCENARIO = "))
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert_eq!(
            strip(&x.script),
            strip(&y.script),
            "{}: only the seed line may differ",
            x.name
        );
    }
}

#[test]
fn every_kind_and_every_callable_is_covered_without_hints() {
    let scenarios = generate(&model(), &config(1));
    let kinds: Vec<ScenarioKind> = scenarios.iter().map(|s| s.kind).collect();
    for kind in [
        ScenarioKind::SharedMutation,
        ScenarioKind::ReadWrite,
        ScenarioKind::FunctionHammer,
        ScenarioKind::Churn,
        ScenarioKind::TwoObject,
    ] {
        assert!(kinds.contains(&kind), "{kind:?} missing: {kinds:?}");
    }
    let called: Vec<&String> = scenarios.iter().flat_map(|s| &s.callables).collect();
    let model = model();
    let functions = model
        .modules
        .iter()
        .flat_map(|m| &m.functions)
        .map(|f| &f.qualname);
    let methods = model
        .types()
        .flat_map(|t| &t.methods)
        .map(|m| &m.call.qualname);
    for qualname in functions.chain(methods) {
        assert!(called.contains(&qualname), "{qualname} is never called");
    }
    for scenario in &scenarios {
        assert!(
            scenario
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-_".contains(c)),
            "{}",
            scenario.name
        );
        assert!(
            scenario.script.contains("threading.Barrier")
                && scenario.script.contains("FTREVIEW_OUTCOME")
        );
    }
}

#[test]
fn mutation_observed_by_trial_splits_writers_from_readers() {
    let model = model();
    let vector = model.find_type("ftfixture_racy.Vector").unwrap();
    let mutation = |name: &str| {
        vector
            .methods
            .iter()
            .find(|m| m.call.name == name)
            .unwrap()
            .mutation
    };
    assert_eq!(mutation("append"), Mutation::Observed);
    assert_eq!(mutation("sum"), Mutation::None);
    let read_write = generate(&model, &config(1))
        .into_iter()
        .find(|s| s.name == "read-write.ftfixture_racy.Vector")
        .unwrap();
    let roles = read_write.script.split("ROLES = {").nth(1).unwrap();
    let (writers, readers) = roles.split_once("\"reader\"").unwrap();
    assert!(writers.contains("Vector.append(1)") && !writers.contains("Vector.sum()"));
    assert!(readers.contains("Vector.sum()") && !readers.contains("Vector.append"));
}

#[test]
fn targets_get_their_own_scenarios_and_unknown_targets_none() {
    let mut cfg = config(1);
    cfg.targets = vec![
        "lookup".into(),
        "Vector.extend".into(),
        "no_such_function".into(),
    ];
    let targeted: Vec<String> = generate(&model(), &cfg)
        .into_iter()
        .filter(|s| s.kind == ScenarioKind::Targeted)
        .map(|s| s.name)
        .collect();
    assert_eq!(
        targeted,
        [
            "targeted.ftfixture_racy.lookup",
            "targeted.ftfixture_racy.Vector.extend"
        ]
    );
}

#[test]
fn hints_load_from_registry_yaml_with_defaults_and_add_hand_written_scenarios() {
    let yaml = "scenarios:\n  - name: swap halves\n    setup: |\n      import ftfixture_racy\n      v = ftfixture_racy.Vector()\n    worker: |\n      v.append(i) if tid % 2 else v.sum()\n";
    let hints: Hints = serde_yaml_ng::from_str(yaml).unwrap();
    assert!(hints.constructors.is_empty() && hints.values.is_empty());
    let mut cfg = config(1);
    cfg.hints = hints;
    let hand = generate(&model(), &cfg)
        .into_iter()
        .find(|s| s.kind == ScenarioKind::HandWritten)
        .unwrap();
    assert_eq!(hand.name, "hand-written.swap_halves");
    assert!(hand
        .script
        .contains("    v.append(i) if tid % 2 else v.sum()"));
    let error = serde_yaml_ng::from_str::<Hints>("constructor: {}")
        .unwrap_err()
        .to_string();
    assert!(error.contains("unknown field `constructor`"), "{error}");
}

#[test]
fn hint_constructors_build_types_introspection_could_not() {
    let mut model = model();
    for ty in model.modules.iter_mut().flat_map(|m| &mut m.types) {
        ty.constructors.clear();
    }
    assert!(generate(&model, &config(1))
        .iter()
        .all(|s| s.kind == ScenarioKind::FunctionHammer));
    let mut cfg = config(1);
    cfg.hints.constructors.insert(
        "ftfixture_racy.Vector".into(),
        vec!["ftfixture_racy.Vector(range(9))".into()],
    );
    let scenarios = generate(&model, &cfg);
    let churn = scenarios
        .iter()
        .find(|s| s.name == "churn.ftfixture_racy.Vector")
        .expect("a Vector churn scenario");
    assert!(churn
        .script
        .contains("return ftfixture_racy.Vector(range(9))"));
}

#[test]
fn bad_model_and_outcome_input_say_what_is_wrong() {
    let error = format!(
        "{:#}",
        parse_api_model("Traceback (most recent call last):").unwrap_err()
    );
    assert!(error.contains("not an API model"), "{error}");
    let error = format!(
        "{:#}",
        parse_api_model(&include_str!("data/racy_model.json").replacen(
            "\"format\": 2",
            "\"format\": 9",
            1
        ))
        .unwrap_err()
    );
    assert!(error.contains("format 9"), "{error}");
    assert!(parse_outcome("{\"status\": \"finished\"}").is_err());
}

#[test]
fn outcome_of_a_real_run_parses() {
    let outcome = parse_outcome(include_str!("data/outcome_read_write_registry.json")).unwrap();
    assert_eq!(outcome.status, OutcomeStatus::Finished);
    assert!(outcome.worker_exceptions > 0 && !outcome.exceptions.is_empty());
}

#[test]
fn c_callables_are_the_ops_that_run_the_extensions_c_code() {
    let scenarios = generate(&model(), &config(1));
    let read_write = scenarios
        .iter()
        .find(|s| s.name == "read-write.ftfixture_racy.Registry")
        .unwrap();
    assert!(read_write.reaches_c());
    // Registry implements __len__ in C, not __repr__ (object's).
    assert!(read_write
        .c_callables
        .contains(&"ftfixture_racy.Registry.__len__".to_string()));
    assert!(read_write
        .callables
        .contains(&"ftfixture_racy.Registry.__repr__".to_string()));
    assert!(!read_write
        .c_callables
        .contains(&"ftfixture_racy.Registry.__repr__".to_string()));
    let mut python_only = model();
    for function in python_only
        .modules
        .iter_mut()
        .flat_map(|m| &mut m.functions)
    {
        function.reaches_c = false;
    }
    let hammer = generate(&python_only, &config(1))
        .into_iter()
        .find(|s| s.kind == ScenarioKind::FunctionHammer)
        .unwrap();
    assert!(!hammer.reaches_c(), "{:?}", hammer.c_callables);
}

#[test]
fn writable_properties_get_a_setter_scenario_against_readers() {
    let mut model = model();
    let vector = model
        .modules
        .iter_mut()
        .flat_map(|m| &mut m.types)
        .find(|t| t.name == "Vector")
        .unwrap();
    let capacity = &mut vector.properties[0];
    capacity.writable = true;
    capacity.set_values = vec!["None".into()];
    let setter = generate(&model, &config(1))
        .into_iter()
        .find(|s| s.name == "property-setter.ftfixture_racy.Vector")
        .expect("a property-setter scenario");
    assert_eq!(setter.kind, ScenarioKind::PropertySetter);
    let roles = setter.script.split("ROLES = {").nth(1).unwrap();
    let (setters, readers) = roles.split_once("\"reader\"").unwrap();
    assert!(setters.contains("S.capacity = S.capacity") && setters.contains("S.capacity = None"));
    assert!(readers.contains("Vector.capacity\", op_") && readers.contains("Vector.sum()"));
    assert!(setter
        .c_callables
        .contains(&"ftfixture_racy.Vector.capacity".to_string()));
}

#[test]
fn every_op_carries_a_one_line_reproducer() {
    for scenario in generate(&model(), &config(1)) {
        let tables = scenario.script.split("\nROLES = {").nth(1).unwrap();
        let tables = tables.split("\nINVARIANTS").next().unwrap();
        for entry in tables.lines().filter(|l| l.trim_start().starts_with("(\"")) {
            let call = entry.rsplit_once(", \"").map(|(_, c)| c).unwrap();
            assert!(
                call.starts_with("import ftfixture_racy"),
                "{}: {entry}",
                scenario.name
            );
        }
    }
    let two_object = generate(&model(), &config(1))
        .into_iter()
        .find(|s| s.name == "two-object.ftfixture_racy.Vector")
        .unwrap();
    assert!(two_object.script.contains(
        "\"import ftfixture_racy; S = ftfixture_racy.Vector([1, 2, 3]); O = ftfixture_racy.Vector([1, 2, 3]); S.extend(O)\""
    ));
}

#[test]
fn only_the_function_hammer_repeats_first_calls_in_fresh_processes() {
    let mut cfg = config(1);
    cfg.targets = vec!["lookup".into()];
    let scenarios = generate(&model(), &cfg);
    let rounds = |kind: ScenarioKind| {
        let scenario = scenarios.iter().find(|s| s.kind == kind).unwrap();
        let marker = "\"first_call_rounds\": ";
        let at = scenario.script.find(marker).unwrap() + marker.len();
        let digits: String = scenario.script[at..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        (digits.parse::<u32>().unwrap(), scenario.script.clone())
    };
    let (hammer, _) = rounds(ScenarioKind::FunctionHammer);
    let (targeted, script) = rounds(ScenarioKind::Targeted);
    assert_eq!(hammer, cfg.first_call_rounds);
    assert_eq!(
        targeted, 0,
        "the hammer's processes make lookup's first call"
    );
    assert!(
        script.contains("FIRST_CALLS = ["),
        "the targeted scenario still makes its first calls at once"
    );
}
