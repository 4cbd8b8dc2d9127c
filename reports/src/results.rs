//! `results.json`: the machine-readable result of one run, versioned and documented in
//! `reports/schema/results.schema.json` (and `reports/schema/README.md`).
//!
//! Finding ids are stable across runs: TSan root causes keep tsan-parse's ids, static
//! findings the static pass's, crashes and hangs hash where they happened. Baselines and
//! SARIF fingerprints rely on that.

use serde::{Deserialize, Serialize};

pub use tsan_parse::Origin;

/// Version of the `results.json` layout. Additive changes keep it; anything else bumps it.
pub const RESULTS_SCHEMA_VERSION: u32 = 2;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Results {
    pub schema_version: u32,
    pub tool: Tool,
    pub target: TargetSummary,
    pub verdict: Verdict,
    pub gil: GilSummary,
    pub counts: Counts,
    pub exercised: ExercisedSummary,
    /// Races, crashes, hangs and static findings, most severe first.
    pub findings: Vec<Finding>,
    /// TSan root causes entirely inside the interpreter: not the extension's to fix.
    pub interpreter_noise: Vec<NoiseEntry>,
    /// Set when the results were compared with a baseline.
    pub baseline: Option<BaselineSummary>,
    /// Whether the run finished and whether its absence of findings means anything.
    pub run_status: RunStatus,
}

/// What the run itself says about how far its results can be trusted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunStatus {
    /// What stopped the run early (bad input, a failed build, Ctrl-C).
    pub stopped_by: Option<String>,
    /// Why "no findings" would not prove the extension clean.
    pub clean_unproven: Option<String>,
}

/// How a review ended, for people and for CI's exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Nothing to report (exit 0).
    Clean,
    /// Findings were reported; with a baseline, new ones (exit 1).
    Findings,
    /// ftreview could not do its job, or cannot vouch for a clean result (exit 2). Partial
    /// results are still written.
    HarnessError,
}

impl Outcome {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            Outcome::Clean => 0,
            Outcome::Findings => 1,
            Outcome::HarnessError => 2,
        }
    }

    /// The most serious of several outcomes (several targets of one invocation).
    pub fn worst(outcomes: impl IntoIterator<Item = Outcome>) -> Outcome {
        let rank = |o: &Outcome| match o {
            Outcome::Clean => 0,
            Outcome::Findings => 1,
            Outcome::HarnessError => 2,
        };
        outcomes
            .into_iter()
            .max_by_key(rank)
            .unwrap_or(Outcome::Clean)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tool {
    pub name: String,
    pub version: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetSummary {
    pub name: String,
    pub version: Option<String>,
    pub spec: String,
    pub interpreter: String,
    pub compiler: String,
}

/// How far the extension is from running safely without the GIL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerdictLevel {
    /// Nothing was found, but the run cannot vouch for it (its C code never ran
    /// concurrently, or an uninstrumented build): not ready, not close, unknown.
    Unverified,
    Ready,
    Close,
    NeedsWork,
    Far,
}

impl VerdictLevel {
    pub fn label(self) -> &'static str {
        match self {
            VerdictLevel::Unverified => "unverified",
            VerdictLevel::Ready => "ready",
            VerdictLevel::Close => "close",
            VerdictLevel::NeedsWork => "needs work",
            VerdictLevel::Far => "far",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    pub level: VerdictLevel,
    /// The facts that decided it, one sentence each.
    pub reasons: Vec<String>,
}

/// What the module says about the GIL and what happened at import.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GilDeclared {
    /// `Py_MOD_GIL_NOT_USED` declared by every module found.
    NotUsed,
    /// `Py_MOD_GIL_USED` declared.
    Used,
    /// At least one module declares nothing.
    Missing,
    /// The static pass did not run.
    Unknown,
}

impl GilDeclared {
    pub fn label(self) -> &'static str {
        match self {
            GilDeclared::NotUsed => "not used",
            GilDeclared::Used => "used",
            GilDeclared::Missing => "missing",
            GilDeclared::Unknown => "unknown",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GilSummary {
    pub declared: GilDeclared,
    /// `file:line` of the declaration, when there is one.
    pub declared_at: Option<String>,
    pub reenabled_on_import: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Problems: shared state to fix, one fix each.
    pub problems: usize,
    /// Racing site pairs under those problems.
    pub races: usize,
    pub crashes: usize,
    pub hangs: usize,
    pub anomalies: usize,
    /// Bugs one thread is enough for (not counted in the free-threading verdict).
    pub single_threaded: usize,
    pub static_confirmed: usize,
    pub static_not_reproduced: usize,
    pub static_not_exercised: usize,
    /// Static `info` entries: protection the pass recognized.
    pub static_protected: usize,
    pub interpreter_noise: usize,
    pub critical: usize,
    pub high: usize,
    pub medium: usize,
    pub low: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExercisedSummary {
    pub concurrent_phase_ran: bool,
    /// `name: status` of every phase, in order.
    pub phases: Vec<String>,
    /// Tests of the suite that ran (the largest count of any test phase).
    pub tests_run: u64,
    pub scenarios_run: usize,
    /// Extension C functions known to have run concurrently.
    pub c_functions: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn label(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// A problem: one piece of shared state, its owner and one fix, with every racing site
    /// pair TSan saw on it.
    Race,
    Crash,
    Hang,
    /// Logical corruption a scenario detected itself (`len` disagreeing with iteration, …).
    Anomaly,
    Static,
    /// A bug one thread and one call are enough for: reported, not a free-threading problem.
    SingleThreaded,
}

/// What became of a static finding at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StaticStatus {
    /// A TSan report (or the GIL check) shows the hazard happening.
    Confirmed,
    /// Its code ran concurrently and no race appeared.
    NotReproduced,
    /// Its code never ran concurrently: no evidence either way.
    NotExercised,
    /// An `info` entry: the pass recognized protection at the site.
    Protected,
}

impl StaticStatus {
    pub fn label(self) -> &'static str {
        match self {
            StaticStatus::Confirmed => "confirmed",
            StaticStatus::NotReproduced => "not reproduced",
            StaticStatus::NotExercised => "not exercised",
            StaticStatus::Protected => "protected",
        }
    }
}

/// A place in the extension's sources, relative to the source tree when inside it; or, for an
/// access the interpreter makes on the extension's behalf (a member read in the eval loop), in
/// CPython's sources, relative to their root.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SourceLocation {
    pub file: String,
    pub line: Option<u32>,
    pub column: Option<u32>,
    pub function: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub in_interpreter: bool,
}

impl SourceLocation {
    /// `file:line[:col]`, with `CPython ` before an interpreter file.
    pub fn display(&self) -> String {
        let place = match (self.line, self.column) {
            (Some(line), Some(column)) => format!("{}:{line}:{column}", self.file),
            (Some(line), None) => format!("{}:{line}", self.file),
            _ => self.file.clone(),
        };
        if self.in_interpreter {
            format!("CPython {place}")
        } else {
            place
        }
    }
}

/// The remedy a finding calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FixKind {
    Atomic,
    CriticalSection,
    TwoObjectCriticalSection,
    PyMutex,
    ModuleState,
    ThreadLocal,
    StrongReferenceApi,
    /// Take the mutexes in one global order.
    LockOrder,
    /// Declare `Py_mod_gil`.
    DeclareGil,
    /// No remedy follows from the evidence alone (crashes, hangs, unknown kinds).
    Investigate,
}

impl FixKind {
    pub fn label(self) -> &'static str {
        match self {
            FixKind::Atomic => "atomic",
            FixKind::CriticalSection => "critical section",
            FixKind::TwoObjectCriticalSection => "two-object critical section",
            FixKind::PyMutex => "PyMutex",
            FixKind::ModuleState => "module state",
            FixKind::ThreadLocal => "thread-local",
            FixKind::StrongReferenceApi => "strong-reference API",
            FixKind::LockOrder => "lock order",
            FixKind::DeclareGil => "declare Py_mod_gil",
            FixKind::Investigate => "investigate",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fix {
    pub kind: FixKind,
    /// What to change, concretely.
    pub action: String,
    /// Why this remedy, from the evidence.
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// Stable id: `tsan-…` (root cause), the static pass's id, `crash-…`, `hang-…`.
    pub id: String,
    pub category: Category,
    /// `data race`, `lock-order-inversion (potential deadlock)`, `FT401 unlocked-field-write`,
    /// `SEGV`, `timeout`.
    pub kind: String,
    /// SARIF rule id: `TSAN-data-race`, `FT401`, `CRASH`, `HANG`.
    pub rule: String,
    pub severity: Severity,
    /// Static findings only.
    pub status: Option<StaticStatus>,
    /// One line for people.
    pub title: String,
    /// The racy variable or field, or the API a static finding is about.
    pub variable: Option<String>,
    /// The primary location first (for races: one per side).
    pub locations: Vec<SourceLocation>,
    /// Number of TSan reports (races), 1 otherwise.
    pub count: u64,
    /// Tests and scenarios it came from.
    pub origins: Vec<Origin>,
    pub reproducer: Option<ReproducerRef>,
    pub fix: Fix,
    /// Linked findings: for races the static findings they confirm, for static findings the
    /// root causes that confirm them.
    pub related: Vec<String>,
    /// Against a baseline: `true` when the baseline lacks this id. `None` without a baseline.
    pub new: Option<bool>,
    /// Problems: what is shared and who owns it.
    #[serde(default)]
    pub owner: Option<Owner>,
    /// Problems: the Python operations whose concurrent calls race (`Vector.append`).
    #[serde(default)]
    pub operations: Vec<String>,
    /// Problems: every racing site pair (TSan root cause) on the shared state.
    #[serde(default)]
    pub sites: Vec<SitePair>,
}

/// What a problem's racing accesses share, and whose it is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Owner {
    /// A file-scope global, or a function-scope static (`function` set).
    Global {
        name: String,
        function: Option<String>,
    },
    /// A field of the module's state.
    ModuleState { field: Option<String> },
    /// The fields of objects of one Python type, reached through `self` or through a second
    /// object of the method (an argument).
    Object {
        type_name: String,
        receiver: Receiver,
    },
    /// A heap block the extension allocated (a helper library's state), by allocation site.
    HeapBlock {
        allocated_in: String,
        type_name: Option<String>,
    },
    /// Mutexes taken in opposite orders by these functions.
    LockOrder { functions: Vec<String> },
    /// No owner the evidence names: the racing code itself.
    Code { functions: Vec<String> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Receiver {
    /// The method's own object.
    SelfObject,
    /// Another object of the same type the method was given.
    Argument,
}

/// One pair of racing source lines (a TSan root cause) under a problem.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SitePair {
    /// The root cause's stable id (`tsan-…`).
    pub id: String,
    pub kind: String,
    /// One per side.
    pub locations: Vec<SourceLocation>,
    /// The field or variable at the racing column, when the source shows it.
    pub variable: Option<String>,
    pub count: u64,
    pub severity: Severity,
}

/// How to make a finding happen again, and how often it did when rerun.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReproducerRef {
    pub kind: ReproducerKind,
    /// The script, relative to the run directory (small reproducers and scenarios).
    pub script: Option<String>,
    /// A command line that reruns it.
    pub command: String,
    /// Reruns in fresh processes under TSan, and how many showed the same problem.
    pub runs: u32,
    pub reproduced: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReproducerKind {
    /// A short standalone script: one shared object, threads behind a barrier.
    Small,
    /// The generated stress scenario that found it (its small reproducer never reproduced).
    Scenario,
    /// The test (and the pytest command) that found it.
    Test,
}

impl Finding {
    /// Whether this finding should fail CI: everything but low/info static findings and
    /// statically recognized protection.
    pub fn is_actionable(&self) -> bool {
        match self.category {
            Category::Static => {
                self.severity >= Severity::Medium && self.status != Some(StaticStatus::Protected)
            }
            Category::SingleThreaded => false,
            _ => true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoiseEntry {
    pub id: String,
    pub kind: String,
    pub count: u64,
    /// The innermost interpreter frame of each side.
    pub frames: Vec<String>,
    /// Why it is not the extension's, in words (from triage's typed reason).
    pub reason: String,
    pub origins: Vec<Origin>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaselineSummary {
    /// The baseline file as given.
    pub path: String,
    pub new_findings: usize,
    /// Actionable findings not in the baseline (what fails CI).
    pub new_actionable: usize,
    /// Baseline ids this run no longer shows.
    pub fixed: Vec<String>,
}

impl Results {
    /// Whether CI should fail: an actionable finding that is new against the baseline (or,
    /// without a baseline, any actionable finding).
    pub fn has_new_findings(&self) -> bool {
        self.findings
            .iter()
            .any(|f| f.is_actionable() && f.new != Some(false))
    }

    /// The one decision `run` and `report` both exit with: a run that stopped early is a
    /// harness error whatever it found; findings come next; a clean result counts only when
    /// the run could prove it.
    pub fn outcome(&self) -> Outcome {
        if self.run_status.stopped_by.is_some() {
            Outcome::HarnessError
        } else if self.has_new_findings() {
            Outcome::Findings
        } else if self.run_status.clean_unproven.is_some() {
            Outcome::HarnessError
        } else {
            Outcome::Clean
        }
    }
}
