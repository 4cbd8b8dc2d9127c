//! The API model: what the introspection script found in an extension.
//!
//! Argument values are Python expressions (source text). `"@KEY"` stands for a fresh instance
//! of the type whose `qualname` is KEY, built by its first constructor. Argument sets and
//! constructors come from introspection's catalogue or, merged in later, from the calls the
//! test suite made ([`ArgSource`]).

use serde::{Deserialize, Serialize};

/// Version of the JSON the introspection script prints.
pub const API_MODEL_FORMAT: u32 = 2;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiModel {
    pub format: u32,
    #[serde(default)]
    pub source: ModelSource,
    pub python: PythonInfo,
    pub modules: Vec<ModuleApi>,
    /// The catalogue of argument values the trials used (hint values first).
    #[serde(default)]
    pub values: Vec<String>,
    /// Objects introspection could not describe (an unexpected error); the rest is complete.
    #[serde(default)]
    pub skipped: Vec<SkippedObject>,
    /// Trial calls that killed or hung the interpreter: single-threaded bugs of the extension.
    /// Introspection restarted without them.
    #[serde(default)]
    pub crashed_trials: Vec<CrashedTrial>,
    /// Times the introspection worker was restarted after a crash or hang.
    #[serde(default)]
    pub restarts: u32,
    /// The restart bound was reached: the model holds what was finished before.
    #[serde(default)]
    pub restarts_exhausted: bool,
    /// The time limit was reached: the model holds what was finished before.
    #[serde(default)]
    pub time_limit_reached: bool,
    /// Types named by `IntrospectionRequest::define_types` that were not found.
    #[serde(default)]
    pub unmatched_define_types: Vec<String>,
}

/// Where a model came from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelSource {
    /// The introspection script: trial calls chose the arguments.
    #[default]
    Introspection,
    /// [`ApiModel::from_bindings`]: names from the static pass, untried catalogue arguments.
    StaticBindings,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedObject {
    /// A dotted name (`pkg.mod.Name`) or a piece of the model (`type MODULE KEY`).
    pub object: String,
    pub error: String,
}

/// A trial call during which the introspection worker died or stopped making progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrashedTrial {
    /// One-line Python reproducer, imports included (`import pkg; x = pkg.T.__new__(pkg.T); x += 1`);
    /// `None` when the worker died outside any call.
    pub call: Option<String>,
    pub outcome: CrashOutcome,
    /// The fatal signal (`SIGSEGV`), from the exit status or the sanitizer's report.
    #[serde(default)]
    pub signal: Option<String>,
    /// The exit status when the process exited instead (`os._exit`, a sanitizer's exit code).
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// The sanitizer's `SUMMARY` line, faulthandler's header, or how long it hung.
    #[serde(default)]
    pub detail: Option<String>,
    /// The piece of the model being built (`type MODULE KEY`, `function MODULE NAME`, ...).
    #[serde(default)]
    pub object: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CrashOutcome {
    /// The process died: a fatal signal or an exit in the middle of the call.
    Crash,
    /// No progress past the call's time limit (C code that never returns); killed.
    Hang,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PythonInfo {
    pub version: String,
    /// `sys._is_gil_enabled()` after importing the modules.
    pub gil_enabled: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModuleApi {
    pub name: String,
    #[serde(default)]
    pub file: Option<String>,
    /// Why the import failed; the module then has no functions or types.
    #[serde(default)]
    pub import_error: Option<String>,
    /// An extension module (a shared library), not Python source.
    #[serde(default)]
    pub extension: bool,
    #[serde(default)]
    pub functions: Vec<Callable>,
    #[serde(default)]
    pub types: Vec<TypeApi>,
}

/// A module-level function (or the callable part of a [`Method`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Callable {
    pub name: String,
    pub qualname: String,
    #[serde(default)]
    pub signature: Option<String>,
    #[serde(default)]
    pub doc: Option<String>,
    /// Argument sets tried, working ones first.
    #[serde(default)]
    pub arg_sets: Vec<ArgSet>,
    /// Calling it runs the extension's C code directly (a builtin function, a method
    /// descriptor of an extension type, inherited by a Python subclass or not).
    #[serde(default)]
    pub reaches_c: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArgSet {
    pub args: Vec<String>,
    /// Keyword arguments after the positional ones (recorded calls pass them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keywords: Vec<Keyword>,
    pub outcome: TrialOutcome,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "ArgSource::is_catalogue")]
    pub source: ArgSource,
}

/// `name=value` in a call; the value is an expression like a positional argument.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Keyword {
    pub name: String,
    pub value: String,
}

/// Where an argument set or constructor came from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ArgSource {
    /// Introspection's catalogue of values (tried, or untried for a model from bindings),
    /// or the package's hints.
    #[default]
    Catalogue,
    /// A call the package's test suite made (`api-calls.json`, merged with
    /// [`ApiModel::merge_test_calls`]).
    Tests,
}

impl ArgSource {
    pub fn is_catalogue(&self) -> bool {
        *self == ArgSource::Catalogue
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TrialOutcome {
    /// The call returned.
    Ok,
    /// The call raised something other than `TypeError`: the arguments were accepted.
    Raised,
    /// The call did not return within the trial time.
    Timeout,
    /// Every argument set was rejected with `TypeError`.
    TypeError,
    /// The call raised `SystemError`: the C function broke the C-API contract (a result with
    /// an exception set, or NULL without one). A single-threaded bug, kept so scenarios show it.
    InternalError,
    /// Never called: arguments from the catalogue for a model built from static bindings.
    Untried,
    /// Not tried by introspection: the test suite made this call (source `tests`).
    Recorded,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TypeApi {
    pub name: String,
    /// `__module__.__qualname__` when both are strings, else `access`: the key of `@KEY`.
    pub qualname: String,
    /// A Python expression for the type object (`pkg._ext.Proxy`, `pkg.Proxy.__mro__[1]`);
    /// `MODULE.name` when absent.
    #[serde(default)]
    pub access: Option<String>,
    /// The C `tp_name` (`_ext.Proxy`) of an extension type.
    #[serde(default)]
    pub tp_name: Option<String>,
    /// Defined by the extension's C code (not a Python class).
    #[serde(default)]
    pub extension: bool,
    #[serde(default)]
    pub signature: Option<String>,
    #[serde(default)]
    pub doc: Option<String>,
    /// Working constructor argument sets, the one building the largest object first. An
    /// argument starting with `=` is a whole Python expression (from hints).
    #[serde(default)]
    pub constructors: Vec<Constructor>,
    #[serde(default)]
    pub constructor_error: Option<String>,
    #[serde(default)]
    pub subclassable: bool,
    #[serde(default)]
    pub methods: Vec<Method>,
    #[serde(default)]
    pub properties: Vec<Property>,
    /// Present when an instance could be built.
    #[serde(default)]
    pub protocols: Option<Protocols>,
    /// Dunder methods (`__len__`, `__iadd__`, `__init__`, ...) implemented in C by the
    /// extension's classes in the MRO: the protocol operations that reach C.
    #[serde(default)]
    pub c_slots: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Constructor {
    pub args: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keywords: Vec<Keyword>,
    #[serde(default, skip_serializing_if = "ArgSource::is_catalogue")]
    pub source: ArgSource,
}

impl Constructor {
    /// Positional arguments only, from the catalogue or hints.
    pub fn positional(args: Vec<String>) -> Constructor {
        Constructor {
            args,
            keywords: Vec::new(),
            source: ArgSource::Catalogue,
        }
    }
}

/// A method: a callable whose trials ran on private instances.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Method {
    #[serde(flatten)]
    pub call: Callable,
    pub mutation: Mutation,
    /// Type (qualname) of the returned object when it is one of the extension's types.
    #[serde(default)]
    pub returns_type: Option<String>,
}

/// Whether a method changes its object, as observed on a private instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mutation {
    /// A trial call changed repr, len, items, `__dict__` or pickle state.
    Observed,
    /// Trial calls left the object unchanged.
    None,
    /// No trial ran, but the name says it mutates (`add`, `pop`, `update`, ...).
    Guessed,
    /// No trial ran.
    Unknown,
}

impl Mutation {
    /// Writers are scheduled against readers; an unknown method may be either.
    pub fn may_write(self) -> bool {
        !matches!(self, Mutation::None)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Property {
    pub name: String,
    pub readable: bool,
    pub writable: bool,
    /// Values (expressions) an assignment accepted on a fresh instance.
    #[serde(default)]
    pub set_values: Vec<String>,
    /// A getset or member descriptor of an extension type (C getter and setter).
    #[serde(default)]
    pub reaches_c: bool,
}

/// A binary or in-place operator with the right operand that worked: an expression, or
/// `@KEY` for another instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorUse {
    pub op: String,
    pub operand: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Protocols {
    pub len: bool,
    pub iter: bool,
    pub sequence: bool,
    pub mapping: bool,
    pub contains: bool,
    pub buffer: bool,
    pub hash: bool,
    pub richcompare: bool,
    pub copy: bool,
    pub pickle: bool,
    /// Binary operators that work (`+`, `|`, ...), with their right operand.
    #[serde(default)]
    pub number: Vec<OperatorUse>,
    /// In-place operators that work (`|=`, `+=`, ...): writers.
    #[serde(default)]
    pub inplace: Vec<OperatorUse>,
    /// A key (expression) that reads an item.
    #[serde(default)]
    pub item_key: Option<String>,
    /// A key and value (expressions) that `obj[key] = value` accepts.
    #[serde(default)]
    pub set_item: Option<(String, String)>,
    pub del_item: bool,
}

impl ApiModel {
    /// Every type of every module.
    pub fn types(&self) -> impl Iterator<Item = &TypeApi> {
        self.modules.iter().flat_map(|m| m.types.iter())
    }

    pub fn find_type(&self, qualname: &str) -> Option<&TypeApi> {
        self.types().find(|t| t.qualname == qualname)
    }

    /// Top-level packages to import in a scenario.
    pub fn packages(&self) -> Vec<String> {
        let mut packages: Vec<String> = self
            .modules
            .iter()
            .filter(|m| m.import_error.is_none())
            .map(|m| m.name.split('.').next().unwrap_or(&m.name).to_string())
            .collect();
        packages.sort();
        packages.dedup();
        packages
    }
}

impl ArgSet {
    /// Arguments worth calling in a scenario: accepted in a trial (it returned, or raised
    /// something other than `TypeError`), or untried (a model from static bindings).
    pub fn usable(&self) -> bool {
        matches!(
            self.outcome,
            TrialOutcome::Ok
                | TrialOutcome::Raised
                | TrialOutcome::InternalError
                | TrialOutcome::Untried
                | TrialOutcome::Recorded
        )
    }
}

impl TypeApi {
    /// The Python operation behind `dunder` runs the extension's C code.
    pub fn slot_reaches_c(&self, dunder: &str) -> bool {
        self.c_slots.iter().any(|s| s == dunder)
    }
}
