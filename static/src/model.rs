//! The public result types of the static pass. Other crates (reports, runner) code against
//! these, so they change only additively.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// How much a finding matters. Ordered: `Info < Low < Medium < High`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Protection was recognized; reported so a reader knows the site was looked at.
    Info,
    Low,
    Medium,
    High,
}

/// How sure the pass is that the finding is real (the analysis is syntactic).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Confidence {
    Low,
    Medium,
    High,
}

/// The rules of the pass. Each has a kebab-case name and a stable code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rule {
    /// FT101: the module does not declare whether it needs the GIL.
    GilNotDeclared,
    /// FT201: a file- or function-scope non-const `static` that is written after init.
    GlobalMutableState,
    /// FT202: `if (!cache) cache = ...` on a global without a lock or once-guard.
    LazyInitRace,
    /// FT203: a module-state field mutated without an atomic or a lock.
    ModuleStateMutation,
    /// FT301: an API returning a borrowed reference from a container that may be shared.
    BorrowedReference,
    /// FT302: `PyDict_Next` on a dict that is not held in a critical section.
    DictNextUnlocked,
    /// FT401: a method writes object fields (or reallocates a buffer) without a lock.
    UnlockedFieldWrite,
    /// FT402: a method reads fields that other methods write without a lock.
    UnlockedFieldRead,
    /// FT403: an object field used between `Py_BEGIN_ALLOW_THREADS` and its END.
    FieldInAllowThreads,
    /// FT501: `return`/`goto`/`break` leaves a critical section without its END.
    CriticalSectionEscape,
    /// FT502: a call that may run arbitrary code or allocate inside a critical section
    /// while the section's writes are half done.
    CriticalSectionSuspend,
    /// FT601: a libc function that is not thread-safe.
    ThreadUnsafeLibc,
}

impl Rule {
    pub const ALL: [Rule; 12] = [
        Rule::GilNotDeclared,
        Rule::GlobalMutableState,
        Rule::LazyInitRace,
        Rule::ModuleStateMutation,
        Rule::BorrowedReference,
        Rule::DictNextUnlocked,
        Rule::UnlockedFieldWrite,
        Rule::UnlockedFieldRead,
        Rule::FieldInAllowThreads,
        Rule::CriticalSectionEscape,
        Rule::CriticalSectionSuspend,
        Rule::ThreadUnsafeLibc,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Rule::GilNotDeclared => "FT101",
            Rule::GlobalMutableState => "FT201",
            Rule::LazyInitRace => "FT202",
            Rule::ModuleStateMutation => "FT203",
            Rule::BorrowedReference => "FT301",
            Rule::DictNextUnlocked => "FT302",
            Rule::UnlockedFieldWrite => "FT401",
            Rule::UnlockedFieldRead => "FT402",
            Rule::FieldInAllowThreads => "FT403",
            Rule::CriticalSectionEscape => "FT501",
            Rule::CriticalSectionSuspend => "FT502",
            Rule::ThreadUnsafeLibc => "FT601",
        }
    }

    /// The serde name (`unlocked-field-write`), also hashed into finding ids.
    pub fn name(self) -> &'static str {
        match self {
            Rule::GilNotDeclared => "gil-not-declared",
            Rule::GlobalMutableState => "global-mutable-state",
            Rule::LazyInitRace => "lazy-init-race",
            Rule::ModuleStateMutation => "module-state-mutation",
            Rule::BorrowedReference => "borrowed-reference",
            Rule::DictNextUnlocked => "dict-next-unlocked",
            Rule::UnlockedFieldWrite => "unlocked-field-write",
            Rule::UnlockedFieldRead => "unlocked-field-read",
            Rule::FieldInAllowThreads => "field-in-allow-threads",
            Rule::CriticalSectionEscape => "critical-section-escape",
            Rule::CriticalSectionSuspend => "critical-section-suspend",
            Rule::ThreadUnsafeLibc => "thread-unsafe-libc",
        }
    }
}

/// A source range; lines and columns are 1-based, columns count bytes.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Span {
    pub line: usize,
    pub column: usize,
    pub end_line: usize,
    pub end_column: usize,
}

/// What kind of thing a finding is about; the reports crate joins TSan clusters on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SymbolKind {
    /// A file-scope variable (TSan: `Location is global 'name'`).
    Global,
    /// A `static` local of a function; `container` is the function.
    StaticLocal,
    /// A struct field; `container` is the struct type when known (e.g. `MultiDictObject`).
    Field,
    /// A called API (libc or C-API); `name` is the function called.
    Call,
    /// The module as a whole (GIL declaration).
    Module,
}

impl SymbolKind {
    pub const ALL: [SymbolKind; 5] = [
        SymbolKind::Global,
        SymbolKind::StaticLocal,
        SymbolKind::Field,
        SymbolKind::Call,
        SymbolKind::Module,
    ];

    /// The serde name (`static-local`): what finding ids hash, so renaming a variant keeps them.
    pub fn name(self) -> &'static str {
        match self {
            SymbolKind::Global => "global",
            SymbolKind::StaticLocal => "static-local",
            SymbolKind::Field => "field",
            SymbolKind::Call => "call",
            SymbolKind::Module => "module",
        }
    }
}

/// The variable, field or API a finding is about, normalized for joining: `name` is a bare
/// identifier (no `self->`), `container` the struct type or owning function.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Symbol {
    pub kind: SymbolKind,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
}

/// The remedy a finding's `fix` prescribes, for tools that act on it without reading the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FixKind {
    /// An atomic operation or `_Atomic` declaration.
    Atomic,
    /// `Py_BEGIN_CRITICAL_SECTION(obj)` (Argument Clinic: `@critical_section`).
    CriticalSection,
    /// `Py_BEGIN_CRITICAL_SECTION2(a, b)`: the code touches two objects' state.
    TwoObjectCriticalSection,
    /// A `PyMutex` (for state a critical section cannot cover, e.g. across
    /// `Py_BEGIN_ALLOW_THREADS`).
    PyMutex,
    /// Move process-wide state into module state.
    ModuleState,
    /// Give each thread its own copy (`_Thread_local`, a per-thread `locale_t`).
    ThreadLocal,
    /// A C-API that returns a strong reference (`PyList_GetItemRef`).
    StrongReferenceApi,
    /// Declare `Py_mod_gil` (or call `PyUnstable_Module_SetGIL`).
    DeclareGil,
    /// Initialize once (module exec function, before threads start) instead of lazily.
    OnceInit,
    /// Restructure the code around a critical section (no early exit; no suspending call
    /// between writes).
    Restructure,
    /// A thread-safe replacement of a libc function (`strtok_r`, `getaddrinfo`).
    ThreadSafeApi,
    /// Copy the value into a local before releasing the GIL.
    LocalCopy,
}

/// One hazard (or, at `Info`, one recognized protection).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// Stable across edits: a hash of rule, file, function and symbol (no line numbers).
    pub id: String,
    pub rule: Rule,
    /// The rule's code, e.g. `FT401`.
    pub code: String,
    pub severity: Severity,
    pub confidence: Confidence,
    /// As given to (or found under) the scanned paths.
    pub file: PathBuf,
    pub span: Span,
    /// The enclosing C function, if any.
    pub function: Option<String>,
    pub symbol: Option<Symbol>,
    /// One line: what is wrong.
    pub message: String,
    /// One or two lines: what to do.
    pub fix: String,
    /// The remedy `fix` prescribes.
    pub fix_kind: FixKind,
    /// The protection recognized at the site (e.g. `Py_BEGIN_CRITICAL_SECTION(self)`,
    /// `PyMutex state->lock`, `_Thread_local`); set on `Info` findings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protected_by: Option<String>,
    /// Other sites of the same hazard in the same function (same symbol).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub related: Vec<Span>,
    /// Python-visible callables whose C function reaches `function` through the static call
    /// graph (e.g. `MultiDict.add`), for aiming stress scenarios.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entry_points: Vec<String>,
}

/// Per-file parse statistics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileReport {
    pub path: PathBuf,
    pub lines: usize,
    /// Function definitions found.
    pub functions: usize,
    /// Of those, how many contain a tree-sitter ERROR or MISSING node after normalization.
    pub functions_with_errors: usize,
}

impl FileReport {
    /// Share of functions that parsed cleanly, in `0.0..=1.0` (1.0 for a file without functions).
    pub fn parse_quality(&self) -> f64 {
        if self.functions == 0 {
            1.0
        } else {
            1.0 - self.functions_with_errors as f64 / self.functions as f64
        }
    }
}

/// A file under the scanned paths that was not analysed, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SkippedFile {
    pub path: PathBuf,
    pub reason: String,
}

/// Single-phase (`PyModule_Create` in `PyInit_*`) or multi-phase (`PyModuleDef_Init`) init.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InitPhase {
    SinglePhase,
    MultiPhase,
    Unknown,
}

/// What a module says about the GIL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GilState {
    /// `Py_MOD_GIL_NOT_USED` via the slot or `PyUnstable_Module_SetGIL`.
    NotUsed,
    /// Explicitly `Py_MOD_GIL_USED`.
    Used,
    /// No declaration: a free-threaded interpreter re-enables the GIL at import.
    Missing,
    /// No `PyInit_*` function in the scanned sources.
    NoModule,
}

/// One extension module found (a `PyInit_<name>` function).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModuleInit {
    /// The module name from `PyInit_<name>`.
    pub name: String,
    pub file: PathBuf,
    pub line: usize,
    pub phase: InitPhase,
    pub gil: GilState,
    /// Where the declaration is (slot or call), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub declared_at: Option<(PathBuf, usize)>,
}

/// A statically allocated `PyTypeObject` (shared by all interpreters; immortal).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StaticType {
    pub c_name: String,
    pub file: PathBuf,
    pub line: usize,
}

/// How a Python type is defined in C.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TypeDefinitionKind {
    /// A statically allocated `PyTypeObject`.
    StaticType,
    /// A `PyType_Spec` (heap type, `PyType_FromSpec*`).
    Spec,
}

/// A Python type the sources define, for aiming stress tests at its instances and grouping
/// findings by the type whose methods they are in.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TypeDefinition {
    /// The C variable (`ProxyType`, `multidict_spec`).
    pub c_name: String,
    pub kind: TypeDefinitionKind,
    /// `tp_name` / `.name` (`"_ext.Proxy"`, `"multidict._multidict.MultiDict"`), when the
    /// sources spell it (string literals and string macros).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The object struct, from `tp_basicsize` / `.basicsize = sizeof(T)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_struct: Option<String>,
    pub file: PathBuf,
    pub line: usize,
}

/// The GIL story of the scanned sources.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GilDeclaration {
    /// `NotUsed` only when every module found declares it; `Missing` when any module lacks it;
    /// `NoModule` when no module init function was found.
    pub state: GilState,
    pub modules: Vec<ModuleInit>,
    pub static_types: Vec<StaticType>,
}

/// How a C function is reachable from Python.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BindingKind {
    /// A `PyMethodDef` entry of a type (`tp_methods`).
    Method,
    /// A `PyMethodDef` entry of a module (`m_methods`) or of an unknown owner.
    Function,
    /// A `PyGetSetDef` getter.
    Getter,
    /// A `PyGetSetDef` setter.
    Setter,
    /// A type slot (`Py_tp_iter`, `.mp_subscript`, ...); `python_name` is the dunder.
    Slot,
}

/// A Python-visible name bound to a C function.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MethodBinding {
    /// The attribute name (`add`, `__getitem__`).
    pub python_name: String,
    pub c_function: String,
    pub kind: BindingKind,
    /// The C table (`multidict_methods`) or slot array the entry is in.
    pub table: String,
    /// The Python type that owns the table, when known (`multidict._multidict.MultiDict`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_type: Option<String>,
    pub file: PathBuf,
    pub line: usize,
}

/// Options for [`crate::scan_paths`].
#[derive(Debug, Clone, Default)]
pub struct ScanOptions {
    /// Worker threads; `None` uses all cores.
    pub jobs: Option<usize>,
    /// Also scan generated files (Cython output) instead of skipping them.
    pub include_generated: bool,
}

/// Everything the pass found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScanReport {
    pub files: Vec<FileReport>,
    pub skipped: Vec<SkippedFile>,
    /// Sorted by file, line, column, code.
    pub findings: Vec<Finding>,
    pub gil: GilDeclaration,
    pub methods: Vec<MethodBinding>,
    /// Static `PyTypeObject`s and `PyType_Spec`s, by file and line.
    #[serde(default)]
    pub types: Vec<TypeDefinition>,
}

impl ScanReport {
    /// Findings at or above `min`.
    pub fn findings_at_least(&self, min: Severity) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(move |f| f.severity >= min)
    }

    /// C functions with a finding at or above `min`.
    pub fn flagged_functions(&self, min: Severity) -> BTreeSet<&str> {
        self.findings_at_least(min)
            .filter_map(|f| f.function.as_deref())
            .collect()
    }

    /// The bindings that expose `c_function` to Python.
    pub fn bindings_of<'a>(
        &'a self,
        c_function: &'a str,
    ) -> impl Iterator<Item = &'a MethodBinding> {
        self.methods
            .iter()
            .filter(move |m| m.c_function == c_function)
    }

    /// The types whose instances are `object_struct` structs (`MultiDictObject`: `MultiDict`
    /// and `CIMultiDict`), in source order.
    pub fn types_with_struct<'a>(
        &'a self,
        object_struct: &'a str,
    ) -> impl Iterator<Item = &'a TypeDefinition> {
        self.types
            .iter()
            .filter(move |t| t.object_struct.as_deref() == Some(object_struct))
    }

    /// Overall parse quality: share of all functions that parsed without errors.
    pub fn parse_quality(&self) -> f64 {
        let total: usize = self.files.iter().map(|f| f.functions).sum();
        let bad: usize = self.files.iter().map(|f| f.functions_with_errors).sum();
        if total == 0 {
            1.0
        } else {
            1.0 - bad as f64 / total as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ids hash `name()`; it must stay the name results.json spells.
    #[test]
    fn names_are_the_serde_names() {
        for rule in Rule::ALL {
            assert_eq!(serde_json::to_value(rule).unwrap(), rule.name());
        }
        for kind in SymbolKind::ALL {
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.name());
        }
    }
}
