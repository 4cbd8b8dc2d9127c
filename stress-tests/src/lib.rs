//! Deterministic multithreaded stress scenarios for Python C extensions.
//!
//! 1. Run [`introspection_script`] with the TSan interpreter (reports off) and the
//!    arguments from [`introspection_args`]; it prints the [`ApiModel`] JSON on stdout
//!    ([`parse_api_model`]).
//! 2. [`generate`] turns the model into [`Scenario`]s: standalone Python scripts.
//! 3. Run each script in its own process (`PYTHON_GIL=0`, [`OUTCOME_ENV`] set to a path) and
//!    read what it wrote with [`parse_outcome`].
//!
//! This crate spawns no process; the runner does.

mod generate;
mod hints;
mod model;
mod ops;
mod outcome;

use anyhow::{bail, Context, Result};

pub use generate::{generate, GenConfig, Scenario, ScenarioKind};
pub use hints::{HandScenario, Hints};
pub use model::{
    ApiModel, ArgSet, Callable, Constructor, Method, ModuleApi, Mutation, Property, Protocols,
    PythonInfo, TrialOutcome, TypeApi, API_MODEL_FORMAT,
};
pub use outcome::{
    Anomaly, AnomalyKind, ExceptionRecord, OutcomeStatus, ScenarioOutcome, OUTCOME_ENV,
};

const INTROSPECTION_SCRIPT: &str = include_str!("introspect.py");

/// The introspection script (Python source). Write it to a file and run
/// `python FILE ARGS...` with [`introspection_args`]; it prints an [`ApiModel`] as JSON.
pub fn introspection_script() -> &'static str {
    INTROSPECTION_SCRIPT
}

/// Arguments after the script path: the hints' constructors, arguments and values (when any),
/// then the modules to import (extension modules or their packages).
pub fn introspection_args(modules: &[String], hints: &Hints) -> Vec<String> {
    let mut args = Vec::new();
    if !hints.is_empty() {
        args.push("--hints-json".to_string());
        args.push(hints.introspection_json());
    }
    args.extend(modules.iter().cloned());
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
