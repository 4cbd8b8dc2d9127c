//! Deterministic multithreaded stress scenarios for Python C extensions.
//!
//! 1. Run [`introspection_script`] with the TSan interpreter (reports off) and the
//!    arguments from [`introspection_args`]; it prints the [`ApiModel`] JSON on stdout
//!    ([`parse_api_model`]) and its log on stderr. Trial calls that crash or hang the
//!    interpreter are survived and listed ([`ApiModel::crashed_trials`]).
//!    When it fails anyway, [`ApiModel::from_bindings`] builds a model from the static pass.
//! 2. Optionally, [`ApiModel::merge_test_calls`] adds the calls the package's test suite made
//!    ([`parse_api_calls`] reads the `api-calls.json` the runner's pytest plugin writes when
//!    [`RECORD_CALLS_ENV`] names it): modes, options and argument types the catalogue lacks.
//! 3. [`generate`] turns the model into [`Scenario`]s: standalone Python scripts.
//! 4. Run each script in its own process (`PYTHON_GIL=0`, [`OUTCOME_ENV`] set to a path) and
//!    read what it wrote with [`parse_outcome`]. Before an anomaly counts as concurrency
//!    corruption, rerun the script with [`SINGLE_THREAD_ENV`]`=1` in a fresh process and ask
//!    [`same_anomaly_in_control`].
//!
//! This crate spawns no process; the runner does.

mod bindings;
mod calls;
mod contract;
mod generate;
mod hints;
mod model;
mod ops;
mod outcome;
mod regression;
mod repro;
mod small;

use std::time::Duration;

use anyhow::{bail, Context, Result};

pub use bindings::{BindingKind, BindingSpec};
pub use calls::{
    parse_api_calls, ApiCalls, MergeSummary, RecordedArgs, RecordedCallable, RecordedKeyword,
    RecordedKind, RecordedValue, API_CALLS_FILE, API_CALLS_FORMAT, RECORD_CALLS_ENV,
};
pub use contract::ContractBreak;
pub use generate::{generate, GenConfig, Scenario, ScenarioKind};
pub use hints::{HandScenario, Hints};
pub use model::{
    ApiModel, ArgSet, ArgSource, Callable, Constructor, CrashOutcome, CrashedTrial, Keyword,
    Method, ModelSource, ModuleApi, Mutation, OperatorUse, Property, Protocols, PythonInfo,
    SkippedObject, TrialOutcome, TypeApi, API_MODEL_FORMAT,
};
pub use outcome::{
    same_anomaly_in_control, Anomaly, AnomalyKind, ExceptionRecord, OutcomeStatus, ScenarioOutcome,
    OUTCOME_ENV, SINGLE_THREAD_ENV, STUCK_FILE_ENV,
};
pub use small::{small_reproducer, ReproducerRequest, SmallReproducer};

const INTROSPECTION_SCRIPT: &str = include_str!("introspect.py");

/// Test hook: when this environment variable is set (to anything non-empty), the
/// introspection script fails at once (exit status 3, no model), so a test can check the
/// fallback to [`ApiModel::from_bindings`].
pub const INTROSPECTION_FAIL_ENV: &str = "FTREVIEW_TEST_FAIL_INTROSPECTION";

/// The introspection script (Python source). Write it to a file and run
/// `python FILE ARGS...` with [`introspection_args`]; it prints an [`ApiModel`] as JSON.
/// It must run as a file: it re-runs itself as its worker process.
pub fn introspection_script() -> &'static str {
    INTROSPECTION_SCRIPT
}

/// What to introspect.
#[derive(Debug, Clone, Default)]
pub struct IntrospectionRequest {
    /// Modules to import: the public packages, then the extension modules.
    pub modules: Vec<String>,
    pub hints: Hints,
    /// Types the static pass found, by `tp_name` (`_ext.Proxy`, `pkg._ext.Proxy`) or Python
    /// binding name: looked for among module attributes, the bases of the packages'
    /// classes, module-level objects and the results of trial calls.
    pub define_types: Vec<String>,
    /// The script stops trying (and prints what it has) after this long; the default
    /// (480 s) leaves room under a 10-minute step timeout.
    pub time_limit: Option<Duration>,
}

/// Arguments after the script path.
pub fn introspection_args(request: &IntrospectionRequest) -> Vec<String> {
    let mut args = Vec::new();
    if !request.hints.is_empty() {
        args.push("--hints-json".to_string());
        args.push(request.hints.introspection_json());
    }
    if !request.define_types.is_empty() {
        args.push("--define-types".to_string());
        args.push(serde_json::to_string(&request.define_types).unwrap_or_default());
    }
    if let Some(limit) = request.time_limit {
        args.push("--time-limit".to_string());
        args.push(format!("{:.1}", limit.as_secs_f64()));
    }
    args.extend(request.modules.iter().cloned());
    args
}

/// Parses the introspection script's stdout.
pub fn parse_api_model(json: &str) -> Result<ApiModel> {
    let model: ApiModel = serde_json::from_str(json.trim())
        .context("the introspection output is not an API model (JSON)")?;
    if model.format != API_MODEL_FORMAT {
        bail!(
            "the introspection output has format {}, this ftreview reads format {API_MODEL_FORMAT}",
            model.format
        );
    }
    Ok(model)
}

/// Parses the JSON a scenario wrote to [`OUTCOME_ENV`].
pub fn parse_outcome(json: &str) -> Result<ScenarioOutcome> {
    serde_json::from_str(json.trim())
        .context("the scenario outcome is not valid JSON of the expected shape")
}
