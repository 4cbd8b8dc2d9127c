//! Per-package hints from the registry, for what generic introspection cannot find.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Loaded by the runner from the `stress:` entry of its YAML package registry.
///
/// ```yaml
/// stress:
///   constructors: {"pkg.Type": ["pkg.Type.from_file('x')"]}
///   arguments: {"pkg.Type.method": [["1", "'a'"]]}
///   values: ["b'raw'"]
///   scenarios:
///     - name: update-while-reading
///       setup: |
///         import pkg
///         shared = pkg.Type()
///       worker: |
///         shared.update(i) if tid % 2 else list(shared)
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Hints {
    /// Type qualname → Python expressions that each build an instance.
    pub constructors: BTreeMap<String, Vec<String>>,
    /// Callable qualname (`pkg.func`, `pkg.Type.method`) → argument lists (Python expressions).
    pub arguments: BTreeMap<String, Vec<Vec<String>>>,
    /// Extra argument values (Python expressions) tried for every parameter.
    pub values: Vec<String>,
    /// Hand-written scenarios.
    pub scenarios: Vec<HandScenario>,
}

/// A hand-written scenario: `setup` runs once at module level; `worker` is the body of one
/// iteration, run by every thread with `tid` (thread index), `i` (iteration) and `rng`
/// (a seeded `random.Random`) in scope and the setup's names as globals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HandScenario {
    pub name: String,
    #[serde(default)]
    pub setup: String,
    pub worker: String,
}

impl Hints {
    /// The part of the hints the introspection script uses, as its `--hints-json` argument.
    pub fn introspection_json(&self) -> String {
        serde_json::json!({
            "constructors": self.constructors,
            "arguments": self.arguments,
            "values": self.values,
        })
        .to_string()
    }

    pub fn is_empty(&self) -> bool {
        *self == Hints::default()
    }
}
