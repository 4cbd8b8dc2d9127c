//! The API model: what the introspection script found in an extension.
//!
//! Argument values are Python expressions (source text). `"@pkg.mod.Type"` stands for a fresh
//! instance of that type, built by its first constructor.

use serde::{Deserialize, Serialize};

/// Version of the JSON the introspection script prints.
pub const API_MODEL_FORMAT: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiModel {
    pub format: u32,
    pub python: PythonInfo,
    pub modules: Vec<ModuleApi>,
    /// The catalogue of argument values the trials used (hint values first).
    #[serde(default)]
    pub values: Vec<String>,
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
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArgSet {
    pub args: Vec<String>,
    pub outcome: TrialOutcome,
    #[serde(default)]
    pub error: Option<String>,
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
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TypeApi {
    pub name: String,
    pub qualname: String,
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
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Constructor {
    pub args: Vec<String>,
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
    /// Binary operators that work between two instances (`+`, `|`, ...).
    #[serde(default)]
    pub number: Vec<String>,
    /// In-place operators that work (`|=`, ...): writers.
    #[serde(default)]
    pub inplace: Vec<String>,
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
    /// Arguments the callable accepted (it returned or raised something other than TypeError).
    pub fn accepted(&self) -> bool {
        matches!(self.outcome, TrialOutcome::Ok | TrialOutcome::Raised)
    }
}
