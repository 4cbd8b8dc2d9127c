//! The introspection script's contract, with the system `python3` (no TSan interpreter
//! needed) on pure-Python stand-ins for what extensions do to it (`tests/py/contract_quirks`):
//! a descriptor as `__module__`, a raising property, a metaclass with a broken `__getattr__`,
//! a module attribute that cannot be read, trial calls that kill the process (a fatal
//! signal, `os._exit`) or never return, a type with a short `__module__` behind a public
//! subclass, a type met only as a result. Its output must deserialize into the Rust model,
//! generated scenarios must run, and the control run must reproduce a contract bug.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use ftreview_stress::{
    generate, introspection_args, introspection_script, parse_api_model, parse_outcome,
    same_anomaly_in_control, AnomalyKind, ApiModel, BindingKind, BindingSpec, CrashOutcome,
    GenConfig, IntrospectionRequest, ModelSource, OutcomeStatus, Scenario, ScenarioKind,
    ScenarioOutcome, TrialOutcome, TypeApi, INTROSPECTION_FAIL_ENV, OUTCOME_ENV, SINGLE_THREAD_ENV,
    STUCK_FILE_ENV,
};

const PACKAGE: &str = "contract_quirks";

fn python_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py")
}

fn python3(dir: &Path) -> Command {
    let mut command = Command::new("python3");
    command.env("PYTHONPATH", python_dir()).current_dir(dir);
    command
}

/// Runs the script with `python3` on `request` (plus `extra` arguments and environment).
fn introspect(
    request: &IntrospectionRequest,
    extra: &[&str],
    env: &[(&str, &str)],
) -> (Output, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("introspect.py");
    std::fs::write(&script, introspection_script()).unwrap();
    let output = python3(dir.path())
        .arg(&script)
        .args(extra)
        .args(introspection_args(request))
        .envs(env.iter().copied())
        .output()
        .expect("python3 must be on PATH for the introspection contract tests");
    (output, dir)
}

fn request() -> IntrospectionRequest {
    IntrospectionRequest {
        modules: vec![PACKAGE.to_string()],
        define_types: vec!["_short.Base".into(), "_short.Nowhere".into()],
        ..IntrospectionRequest::default()
    }
}

fn contract_model() -> ApiModel {
    // A short hang grace: the frozen trial is killed 1 s after its 2 s alarm failed.
    let (output, _dir) = introspect(&request(), &["--hang-grace", "1"], &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "introspection failed: {stderr}");
    assert!(
        stderr.contains("introspection: 1 modules"),
        "no summary on stderr: {stderr}"
    );
    parse_api_model(&String::from_utf8_lossy(&output.stdout)).unwrap()
}

fn find_type<'m>(model: &'m ApiModel, qualname: &str) -> &'m TypeApi {
    model.find_type(qualname).unwrap_or_else(|| {
        panic!(
            "{qualname} not in the model: {:?}",
            model.types().map(|t| &t.qualname).collect::<Vec<_>>()
        )
    })
}

#[test]
fn introspection_describes_quirky_objects_and_survives_deadly_trials() {
    let model = contract_model();
    assert_eq!(model.source, ModelSource::Introspection);
    let module = &model.modules[0];
    assert_eq!(module.import_error, None);

    // Attributes that are descriptors, raise, or come from a broken metaclass do not stop it.
    let described = find_type(&model, "contract_quirks.DescriptorModule");
    assert!(!described.constructors.is_empty() && described.protocols.as_ref().unwrap().len);
    let raising = find_type(&model, "contract_quirks.RaisingProperty");
    let prop = |name: &str| raising.properties.iter().find(|p| p.name == name).unwrap();
    assert!(!prop("broken").readable);
    assert!(prop("value").readable && prop("value").writable);
    assert!(prop("value").set_values.contains(&"None".to_string()));
    let meta = find_type(&model, "contract_quirks.WithBrokenMeta");
    assert!(meta.methods.iter().any(|m| m.call.name == "ping"));

    // An attribute whose read raises is skipped, listed with its error.
    let ghost = model
        .skipped
        .iter()
        .find(|s| s.object == "contract_quirks.Ghost")
        .expect("the unreadable attribute is listed as skipped");
    assert!(ghost.error.contains("RuntimeError"), "{ghost:?}");

    // A base with a short __module__ behind a public subclass, found by --define-types.
    let base = find_type(&model, "_short.Base");
    assert_eq!(
        base.access.as_deref(),
        Some("contract_quirks.Derived.__mro__[1]")
    );
    assert!(base.methods.iter().any(|m| m.call.name == "relabel"));
    assert_eq!(model.unmatched_define_types, ["_short.Nowhere"]);

    // A type met only as a function's result is built by that call.
    let hidden = find_type(&model, "contract_quirks._Hidden");
    assert_eq!(
        hidden.constructors[0].args,
        ["=contract_quirks.make_hidden()"]
    );

    // A C-API contract violation (SystemError) is an accepted argument set of its own.
    let echo = module.functions.iter().find(|f| f.name == "echo").unwrap();
    assert!(echo
        .arg_sets
        .iter()
        .any(|s| s.outcome == TrialOutcome::InternalError && s.args == ["'a'"]));
}

#[test]
fn deadly_trials_are_recorded_with_reproducers_that_reproduce() {
    let model = contract_model();
    let trial = |needle: &str| {
        model
            .crashed_trials
            .iter()
            .find(|t| t.call.as_deref().is_some_and(|c| c.contains(needle)))
            .unwrap_or_else(|| panic!("no crashed trial {needle}: {:#?}", model.crashed_trials))
    };
    let segv = trial("obj.detonate('a')");
    assert_eq!(segv.outcome, CrashOutcome::Crash);
    assert_eq!(segv.signal.as_deref(), Some("SIGSEGV"));
    let exit = trial("obj.leave(None)");
    assert_eq!(
        (exit.outcome, exit.exit_code),
        (CrashOutcome::Crash, Some(7))
    );
    let hang = trial("obj.freeze([1, 2, 3])");
    assert_eq!(hang.outcome, CrashOutcome::Hang);
    assert_eq!(model.restarts, 3);
    assert!(!model.restarts_exhausted && !model.time_limit_reached);

    // The object survives: its other trials went on after each restart.
    let bomb = find_type(&model, "contract_quirks.Bomb");
    assert_eq!(bomb.methods.len(), 3, "{:?}", bomb.methods);
    assert!(!model.skipped.iter().any(|s| s.object.contains("Bomb")));

    // Each call is one line of Python that does it again on its own.
    let dir = tempfile::tempdir().unwrap();
    for (trial, signal, code) in [(segv, Some(libc::SIGSEGV), None), (exit, None, Some(7))] {
        let call = trial.call.as_deref().unwrap();
        assert!(!call.contains('\n'), "{call}");
        let status = python3(dir.path()).args(["-c", call]).status().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!((status.signal(), status.code()), (signal, code), "{call}");
    }
}

#[test]
fn the_fail_hook_makes_introspection_fail_with_a_clear_error() {
    let (output, _dir) = introspect(&request(), &[], &[(INTROSPECTION_FAIL_ENV, "1")]);
    assert_eq!(output.status.code(), Some(3));
    assert!(output.stdout.is_empty());
    assert!(String::from_utf8_lossy(&output.stderr).contains(INTROSPECTION_FAIL_ENV));
}

#[test]
fn bad_arguments_say_what_is_wrong() {
    let (output, _dir) = introspect(&IntrospectionRequest::default(), &["--frobnicate"], &[]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("unknown option --frobnicate") && stderr.contains("usage:"),
        "{stderr}"
    );
}

fn config() -> GenConfig {
    GenConfig {
        seed: 3,
        threads: 4,
        iterations: 200,
        time_budget_per_scenario: Duration::from_secs(2),
        first_call_rounds: 2,
        ..GenConfig::default()
    }
}

/// Runs a scenario with `python3` (the harness is the same under any interpreter).
fn run(scenario: &Scenario, dir: &Path, control: bool) -> ScenarioOutcome {
    let script = dir.join(format!("{}.py", scenario.name));
    std::fs::write(&script, &scenario.script).unwrap();
    let outcome = dir.join(format!("{}.{control}.json", scenario.name));
    let mut command = python3(dir);
    if control {
        command.env(SINGLE_THREAD_ENV, "1");
    }
    let output = command
        .arg(&script)
        .env(OUTCOME_ENV, &outcome)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}: {}",
        scenario.name,
        String::from_utf8_lossy(&output.stderr)
    );
    parse_outcome(&std::fs::read_to_string(&outcome).unwrap()).unwrap()
}

#[test]
fn scenarios_run_and_the_control_run_reproduces_a_contract_bug() {
    let model = contract_model();
    let scenarios = generate(&model, &config());
    let dir = tempfile::tempdir().unwrap();
    assert!(scenarios
        .iter()
        .any(|s| s.kind == ScenarioKind::PropertySetter
            && s.name == "property-setter.contract_quirks.RaisingProperty"));
    for scenario in &scenarios {
        let outcome = run(scenario, dir.path(), false);
        assert_eq!(outcome.status, OutcomeStatus::Finished, "{}", scenario.name);
        assert_eq!(outcome.error, None, "{}", scenario.name);
        assert!(outcome.iterations_done > 0, "{}", scenario.name);
        if scenario.kind != ScenarioKind::FunctionHammer {
            assert!(
                outcome.anomalies.is_empty(),
                "{}: {:?}",
                scenario.name,
                outcome.anomalies
            );
        }
    }
    let hammer = scenarios
        .iter()
        .find(|s| s.kind == ScenarioKind::FunctionHammer)
        .unwrap();
    let outcome = run(hammer, dir.path(), false);
    let anomaly = outcome
        .anomalies
        .iter()
        .find(|a| a.kind == AnomalyKind::InternalError)
        .expect("echo('a') breaks the contract in every call");
    assert_eq!(anomaly.op, "echo('a')");
    assert_eq!(
        anomaly.call,
        "import contract_quirks; contract_quirks.echo('a')"
    );
    let control = run(hammer, dir.path(), true);
    assert!(control.single_thread && !outcome.single_thread);
    assert!(control.iterations_done > 0 && control.first_call_processes == 0);
    assert!(same_anomaly_in_control(anomaly, &control));
    assert!(
        !same_anomaly_in_control(anomaly, &outcome),
        "only a control run counts"
    );
    let replay = python3(dir.path())
        .args(["-c", &anomaly.call])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&replay.stderr).contains("SystemError"));
}

#[test]
fn a_model_from_static_bindings_runs_with_untried_arguments() {
    let binding = |owner: Option<&str>, name: &str, kind| BindingSpec {
        module: "bindings_target".into(),
        owner_type: owner.map(str::to_string),
        python_name: name.into(),
        kind,
    };
    let model = ApiModel::from_bindings(&[
        binding(None, "scale", BindingKind::Function),
        binding(Some("bindings_target.Box"), "put", BindingKind::Method),
        binding(Some("bindings_target.Box"), "label", BindingKind::Getter),
        binding(Some("bindings_target.Box"), "label", BindingKind::Setter),
        binding(Some("bindings_target.Box"), "__len__", BindingKind::Slot),
        binding(Some("bindings_target.Box"), "__iadd__", BindingKind::Slot),
        binding(None, "orphan_getter", BindingKind::Getter),
    ]);
    assert_eq!(model.source, ModelSource::StaticBindings);
    let scenarios = generate(&model, &config());
    let kinds: Vec<ScenarioKind> = scenarios.iter().map(|s| s.kind).collect();
    for kind in [
        ScenarioKind::FunctionHammer,
        ScenarioKind::ReadWrite,
        ScenarioKind::PropertySetter,
        ScenarioKind::Churn,
    ] {
        assert!(kinds.contains(&kind), "{kind:?} missing: {kinds:?}");
    }
    let dir = tempfile::tempdir().unwrap();
    for scenario in &scenarios {
        assert_eq!(scenario.model_source, ModelSource::StaticBindings);
        assert!(
            scenario.reaches_c(),
            "{}: bindings are C code",
            scenario.name
        );
        assert!(scenario.script.contains("untried catalogue values"));
        let outcome = run(scenario, dir.path(), false);
        assert_eq!(outcome.error, None, "{}", scenario.name);
        assert!(outcome.iterations_done > 0, "{}", scenario.name);
    }
    let setter = scenarios
        .iter()
        .find(|s| s.kind == ScenarioKind::PropertySetter)
        .unwrap();
    assert!(setter.script.contains("S.label = S.label"));
    assert!(setter
        .c_callables
        .contains(&"bindings_target.Box.label".to_string()));
}

/// Runs a scenario hammering `stuck_target.FUNCTION` until its stuck file says it is stuck:
/// how long that took, and its outcome. Panics if the process ended or said nothing within a
/// minute.
fn run_until_stuck(function: &str, config: GenConfig) -> (Duration, ScenarioOutcome) {
    let model = ApiModel::from_bindings(&[BindingSpec {
        module: "stuck_target".into(),
        owner_type: None,
        python_name: function.into(),
        kind: BindingKind::Function,
    }]);
    let scenario = generate(&model, &config)
        .into_iter()
        .find(|s| s.kind == ScenarioKind::FunctionHammer)
        .expect("a scenario hammering the function");
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("stuck.py");
    std::fs::write(&script, &scenario.script).unwrap();
    let (stuck, outcome) = (dir.path().join("stuck"), dir.path().join("outcome.json"));
    let started = std::time::Instant::now();
    let mut child = python3(dir.path())
        .arg(&script)
        .env(OUTCOME_ENV, &outcome)
        .env(STUCK_FILE_ENV, &stuck)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    while !stuck.exists() && started.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let waited = started.elapsed();
    let still_running = child.try_wait().unwrap().is_none();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        still_running,
        "the harness leaves the killing to the runner"
    );
    let said = std::fs::read_to_string(&stuck).expect("the stuck file");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let from: f64 = said.split_whitespace().next().unwrap().parse().unwrap();
    assert!(from <= now && said.contains("a worker stuck"), "{said}");
    let outcome = parse_outcome(&std::fs::read_to_string(&outcome).unwrap()).unwrap();
    (waited, outcome)
}

#[test]
fn a_worker_stuck_past_the_deadline_says_so_long_before_any_timeout() {
    let config = GenConfig {
        first_call_rounds: 0,
        ..config()
    };
    // The workers' 2 s budget, then 10 s inside one call.
    let (waited, outcome) = run_until_stuck("spin", config);
    assert!(
        waited >= Duration::from_secs(10),
        "stuck only after 10 s without progress: {waited:?}"
    );
    assert_eq!(outcome.status, OutcomeStatus::Started);
}

#[test]
fn a_thread_exit_that_does_not_end_is_stuck_five_seconds_after_the_last_call_not_at_the_deadline() {
    let config = GenConfig {
        first_call_rounds: 0,
        time_budget_per_scenario: Duration::from_secs(60),
        ..config()
    };
    // 200 quick iterations, then each worker's thread-local value takes an hour to free.
    let (waited, outcome) = run_until_stuck("linger", config);
    assert!(
        (Duration::from_secs(5)..Duration::from_secs(30)).contains(&waited),
        "stuck 5 s after the workers' last calls, long before their 60 s deadline: {waited:?}"
    );
    assert_eq!(outcome.status, OutcomeStatus::Started);
}

#[test]
fn a_scenario_that_ends_counts_as_stuck_only_if_it_still_runs_ten_seconds_on() {
    let model = ApiModel::from_bindings(&[BindingSpec {
        module: "bindings_target".into(),
        owner_type: None,
        python_name: "scale".into(),
        kind: BindingKind::Function,
    }]);
    let scenario = generate(&model, &config()).into_iter().next().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("ends.py");
    std::fs::write(&script, &scenario.script).unwrap();
    let stuck = dir.path().join("stuck");
    let status = python3(dir.path())
        .arg(&script)
        .env(STUCK_FILE_ENV, &stuck)
        .status()
        .unwrap();
    assert!(status.success());
    let ended = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let said = std::fs::read_to_string(&stuck).expect("the stuck file");
    let from: f64 = said.split_whitespace().next().unwrap().parse().unwrap();
    assert!(said.contains("still exiting"), "{said}");
    assert!(
        (ended + 8.0..ended + 10.5).contains(&from),
        "{from} vs {ended}"
    );
}
