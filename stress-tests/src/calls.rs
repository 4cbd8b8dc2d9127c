//! Calls the package's test suite made into the extension (`api-calls.json`, written by the
//! runner's pytest plugin), and their merge into an [`ApiModel`] as argument sets and
//! constructors of source [`ArgSource::Tests`].
//!
//! Tests know what a function is for: the modes it takes, the option a constructor needs, the
//! argument type its fast path is for. Introspection's catalogue (`1`, `'a'`, …) finds none of
//! that, so scenarios built from the catalogue alone miss races behind such arguments.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::model::{ApiModel, ArgSet, ArgSource, Callable, Constructor, Keyword, TrialOutcome};

/// Version of `api-calls.json`.
pub const API_CALLS_FORMAT: u32 = 1;
/// The plugin records calls when this variable names the file to write.
pub const RECORD_CALLS_ENV: &str = "FTREVIEW_RECORD_CALLS";
/// Name of the file in the plain test phase's log directory.
pub const API_CALLS_FILE: &str = "api-calls.json";
/// Stand-ins for values recorded by type and size are at most this long.
const MAX_STAND_IN_LEN: u64 = 1 << 20;

/// What the test suite called, a bounded sample per callable.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ApiCalls {
    pub format: u32,
    /// Calls into the extension the suite made from the main thread, recorded or not.
    pub calls_seen: u64,
    /// Recording stopped at its budget; later calls were only counted.
    #[serde(default)]
    pub budget_reached: bool,
    #[serde(default)]
    pub callables: Vec<RecordedCallable>,
}

/// One callable of the extension and the distinct argument shapes the suite passed it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedCallable {
    /// `module.function`, `module.Type.method` or `module.Type` (a constructor), with the
    /// type named `__module__.__qualname__` as introspection keys it.
    pub qualname: String,
    pub kind: RecordedKind,
    /// Calls seen.
    pub calls: u64,
    /// Calls whose arguments could not be read without running code (`f(g())`).
    #[serde(default)]
    pub unresolved: u64,
    /// One sample per distinct shape, first seen first.
    #[serde(default)]
    pub arg_sets: Vec<RecordedArgs>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RecordedKind {
    Function,
    /// Called on an instance; the receiver is not part of `args`.
    Method,
    /// The type itself was called.
    Constructor,
}

/// The arguments of one recorded call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedArgs {
    pub args: Vec<RecordedValue>,
    #[serde(default)]
    pub keywords: Vec<RecordedKeyword>,
    /// The test that made the call first.
    #[serde(default)]
    pub test: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedKeyword {
    pub name: String,
    pub value: RecordedValue,
}

/// One argument value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum RecordedValue {
    /// A value with a literal form (ints, strings, bytes, small containers of them): `source`
    /// is a Python expression that rebuilds it.
    Literal { type_name: String, source: String },
    /// An object of one of the extension's types (`type_name` as introspection keys it);
    /// `pickle` holds a bytes literal of a pickled sample when no constructor call of the
    /// type was seen and the object pickles.
    Instance {
        type_name: String,
        #[serde(default)]
        pickle: Option<String>,
    },
    /// Known by type only: too large, no literal form, or an object that must not be touched
    /// (a generator, a callback). `len` for sized builtins.
    TypeOnly {
        type_name: String,
        #[serde(default)]
        len: Option<u64>,
    },
}

/// Parses `api-calls.json`.
pub fn parse_api_calls(json: &str) -> Result<ApiCalls> {
    let calls: ApiCalls = serde_json::from_str(json.trim())
        .context("the recorded test calls are not valid api-calls.json")?;
    if calls.format != API_CALLS_FORMAT {
        bail!(
            "api-calls.json has format {}, this ftreview reads format {API_CALLS_FORMAT}",
            calls.format
        );
    }
    Ok(calls)
}

/// What a merge added.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MergeSummary {
    /// Argument sets of functions and methods.
    pub arg_sets: usize,
    pub constructors: usize,
    /// Recorded callables the model has no place for.
    pub unmatched: Vec<String>,
    /// Recorded sets left out: a value with no stand-in, or the same as one the model has.
    pub left_out: usize,
}

impl MergeSummary {
    pub fn added(&self) -> usize {
        self.arg_sets + self.constructors
    }
}

impl ApiModel {
    /// Adds the suite's recorded calls as argument sets and constructors of source `tests`
    /// (after introspection's own, which stay first). Constructors go first, so arguments that
    /// are instances of a type only the tests could build become `@KEY`.
    pub fn merge_test_calls(&mut self, calls: &ApiCalls) -> MergeSummary {
        let mut summary = MergeSummary::default();
        let (constructors, others): (Vec<_>, Vec<_>) = calls
            .callables
            .iter()
            .partition(|c| c.kind == RecordedKind::Constructor);
        for recorded in constructors {
            self.merge_constructors(recorded, &mut summary);
        }
        for recorded in others {
            self.merge_arg_sets(recorded, &mut summary);
        }
        summary
    }

    fn merge_constructors(&mut self, recorded: &RecordedCallable, summary: &mut MergeSummary) {
        let rendered: Vec<_> = recorded
            .arg_sets
            .iter()
            .map(|set| self.render(set))
            .collect();
        let Some(ty) = self
            .modules
            .iter_mut()
            .flat_map(|m| m.types.iter_mut())
            .find(|t| names_type(&t.qualname, t.tp_name.as_deref(), &recorded.qualname))
        else {
            summary.unmatched.push(recorded.qualname.clone());
            return;
        };
        for set in rendered {
            match set {
                Some((args, keywords))
                    if !ty
                        .constructors
                        .iter()
                        .any(|c| c.args == args && c.keywords == keywords) =>
                {
                    ty.constructors.push(Constructor {
                        args,
                        keywords,
                        source: ArgSource::Tests,
                    });
                    summary.constructors += 1;
                }
                _ => summary.left_out += 1,
            }
        }
    }

    fn merge_arg_sets(&mut self, recorded: &RecordedCallable, summary: &mut MergeSummary) {
        let rendered: Vec<_> = recorded
            .arg_sets
            .iter()
            .map(|set| self.render(set))
            .collect();
        let Some(callable) = self.recorded_callable_mut(recorded) else {
            summary.unmatched.push(recorded.qualname.clone());
            return;
        };
        for set in rendered {
            match set {
                Some((args, keywords))
                    if !callable
                        .arg_sets
                        .iter()
                        .any(|s| s.args == args && s.keywords == keywords) =>
                {
                    callable.arg_sets.push(ArgSet {
                        args,
                        keywords,
                        outcome: TrialOutcome::Recorded,
                        error: None,
                        source: ArgSource::Tests,
                    });
                    summary.arg_sets += 1;
                }
                _ => summary.left_out += 1,
            }
        }
    }

    /// The model's callable for a recorded function or method: by qualname, or (a function
    /// re-exported by the public package) the only C function of that name in the package.
    fn recorded_callable_mut(&mut self, recorded: &RecordedCallable) -> Option<&mut Callable> {
        let (owner, name) = recorded.qualname.rsplit_once('.')?;
        if recorded.kind == RecordedKind::Method {
            return self
                .modules
                .iter_mut()
                .flat_map(|m| m.types.iter_mut())
                .find(|t| names_type(&t.qualname, t.tp_name.as_deref(), owner))?
                .methods
                .iter_mut()
                .find(|m| m.call.name == name)
                .map(|m| &mut m.call);
        }
        let package = top_package(&recorded.qualname);
        let functions = || self.modules.iter().flat_map(|m| &m.functions);
        let exact = functions().any(|f| f.qualname == recorded.qualname);
        let same_name = functions()
            .filter(|f| f.reaches_c && f.name == name && top_package(&f.qualname) == package)
            .count();
        if !exact && same_name != 1 {
            return None;
        }
        self.modules
            .iter_mut()
            .flat_map(|m| m.functions.iter_mut())
            .find(|f| {
                f.qualname == recorded.qualname
                    || (!exact
                        && f.reaches_c
                        && f.name == name
                        && top_package(&f.qualname) == package)
            })
    }

    /// Argument expressions of a recorded set; `None` when a value has no stand-in.
    fn render(&self, set: &RecordedArgs) -> Option<(Vec<String>, Vec<Keyword>)> {
        let args = set
            .args
            .iter()
            .map(|v| self.expression(v))
            .collect::<Option<Vec<_>>>()?;
        let keywords = set
            .keywords
            .iter()
            .map(|k| {
                Some(Keyword {
                    name: k.name.clone(),
                    value: self.expression(&k.value)?,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        Some((args, keywords))
    }

    /// A literal as recorded, an instance as `@KEY` (a type the model can build) or its
    /// unpickled sample, a value known by type as a stand-in of that type and size.
    fn expression(&self, value: &RecordedValue) -> Option<String> {
        match value {
            RecordedValue::Literal { source, .. } => Some(source.clone()),
            RecordedValue::Instance { type_name, pickle } => {
                let buildable = self
                    .types()
                    .any(|t| t.qualname == *type_name && !t.constructors.is_empty());
                if buildable {
                    Some(format!("@{type_name}"))
                } else {
                    pickle.as_ref().map(|p| format!("pickle.loads({p})"))
                }
            }
            RecordedValue::TypeOnly { type_name, len } => stand_in(type_name, *len),
        }
    }
}

/// A value of a builtin type known by type and size only.
fn stand_in(type_name: &str, len: Option<u64>) -> Option<String> {
    let n = len.unwrap_or(1).min(MAX_STAND_IN_LEN);
    Some(match type_name {
        "builtins.int" => "1".into(),
        "builtins.float" => "1.5".into(),
        "builtins.bool" => "True".into(),
        "builtins.str" => format!("'a' * {n}"),
        "builtins.bytes" => format!("b'a' * {n}"),
        "builtins.bytearray" => format!("bytearray(b'a' * {n})"),
        "builtins.memoryview" => format!("memoryview(b'a' * {n})"),
        "builtins.list" => format!("list(range({n}))"),
        "builtins.tuple" => format!("tuple(range({n}))"),
        "builtins.set" => format!("set(range({n}))"),
        "builtins.frozenset" => format!("frozenset(range({n}))"),
        "builtins.dict" => format!("dict.fromkeys(range({n}), 0)"),
        _ => return None,
    })
}

/// `key` names the type keyed `qualname` (or whose C `tp_name` it is).
fn names_type(qualname: &str, tp_name: Option<&str>, key: &str) -> bool {
    qualname == key || tp_name == Some(key)
}

fn top_package(qualname: &str) -> &str {
    qualname.split('.').next().unwrap_or(qualname)
}
