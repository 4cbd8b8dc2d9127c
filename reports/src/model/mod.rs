//! The run model: everything one `ftreview run` produced about one target.
//!
//! The runner writes it as `RUN_DIR/run.json`; `ftreview report RUN_DIR` reads it back and
//! rebuilds every output from it, so it must hold all the evidence the reports show. Paths are
//! absolute as the runner saw them; the reports make them relative to `target.source_dir`.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// Version of the `run.json` layout. Bump on any incompatible change.
pub const RUN_SCHEMA_VERSION: u32 = 2;

/// File name of the run model inside a run directory.
pub const RUN_FILE: &str = "run.json";

mod build;

pub use build::{BuildCause, BuildCauseKind, BuildFix, BuildRecord, BuildRetry, SuppliedTool};
pub use ftreview_static::ScanReport;
pub use tsan_parse::{Origin, Phase, Triage};

/// Everything a run produced about one target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// Always [`RUN_SCHEMA_VERSION`] when written by this version of ftreview.
    pub schema_version: u32,
    /// The run directory (set again from where the record was loaded, so a moved run
    /// directory still resolves its relative paths).
    #[serde(default)]
    pub run_dir: PathBuf,
    pub target: Target,
    pub interpreter: Interpreter,
    pub environment: Environment,
    pub gil: GilCheck,
    /// One entry per extension module the build produced.
    pub instrumentation: Vec<ModuleInstrumentation>,
    /// In execution order, including phases that were skipped or failed.
    pub phases: Vec<PhaseRecord>,
    /// The clustered TSan reports of every phase of the run.
    pub triage: Triage,
    /// The static pass over `target.source_dir`; `None` when it could not run.
    pub static_scan: Option<ScanReport>,
    pub crashes: Vec<CrashRecord>,
    pub hangs: Vec<HangRecord>,
    pub scenarios: Vec<ScenarioRecord>,
    pub exercised: Exercised,
    /// What stopped the run early (bad input, a failed build, Ctrl-C); `None` when it ran to
    /// the end.
    pub stopped_by: Option<String>,
    /// Why "no findings" would not prove the extension clean (a pure-Python or uninstrumented
    /// build, nothing exercised under TSan).
    pub clean_unproven: Option<String>,
    /// How the time budget was shared out.
    #[serde(default)]
    pub schedule: Option<Schedule>,
    /// Where and how the test suite ran (against the installed build, never the source tree).
    #[serde(default)]
    pub test_layout: Option<TestLayout>,
    /// Bugs that need no threads: introspection trials that crashed or hung the interpreter,
    /// anomalies their single-threaded control reproduced.
    #[serde(default)]
    pub single_threaded: Vec<SingleThreadedBug>,
    /// Each problem's reproducer and how often it reproduced when rerun, by problem id.
    #[serde(default)]
    pub reproductions: BTreeMap<String, crate::results::ReproducerRef>,
    /// What the build stage found out beyond pass or fail; `None` before it ran.
    #[serde(default)]
    pub build: Option<BuildRecord>,
}

/// The run's time budget and each instrumented phase's share of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    pub budget_secs: f64,
    /// Spent before the instrumented phases (fetch, build, environment, GIL check).
    pub setup_secs: f64,
    /// Phases that ran side by side (several job slots) or one after the other.
    pub concurrent: bool,
    pub shares: Vec<PhaseShare>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseShare {
    pub phase: Phase,
    pub secs: f64,
}

/// Where the suite ran and why; what its collection found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestLayout {
    pub strategy: LayoutStrategy,
    /// The directory pytest ran in.
    pub root: PathBuf,
    /// Why this strategy (and what a rejected one showed).
    pub reason: String,
    /// Tests collected by the probe, before selection.
    pub collected: u64,
    pub collection_errors: Vec<CollectionError>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LayoutStrategy {
    /// In the kept source tree (its own package is not importable from there).
    SourceTree,
    /// In a copy of the test directories and pytest configuration, away from the package.
    Scratch,
}

/// A test module that failed to import at collection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollectionError {
    pub nodeid: String,
    pub kind: CollectionErrorKind,
    /// The first error line pytest printed.
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CollectionErrorKind {
    /// The package under test was imported from the source tree, without its compiled part.
    ImportShadowing,
    /// The tests import a module nothing installed.
    MissingTestDependency {
        module: String,
    },
    Syntax,
    Other,
}

/// What was reviewed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// Distribution name (`multidict`) or, for a local tree, its directory name.
    pub name: String,
    pub version: Option<String>,
    pub kind: TargetKind,
    /// What the user typed: `multidict==6.7.1`, `./src/ext`, `https://…@rev`.
    pub spec: String,
    /// The kept, unpacked source tree the extension was built from. Source lines shown in
    /// the plan are read from here.
    pub source_dir: PathBuf,
    /// SHA-256 of the downloaded sdist (PyPI targets).
    pub sdist_sha256: Option<String>,
    /// Resolved commit (git targets).
    pub git_rev: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    Pypi,
    Local,
    Git,
}

/// The TSan free-threaded interpreter the run used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interpreter {
    /// `sys.version` first word, e.g. `3.13.5`.
    pub version: String,
    /// Compiler identification, e.g. `clang 19.1.7`.
    pub compiler: String,
    /// sysconfig `CC`, the command extensions were built with.
    pub cc: String,
    /// Path of the `python3.Xt` executable.
    pub python: PathBuf,
    /// Where its sources came from (tarball name and SHA-256, or a checkout path).
    pub source: String,
}

/// What anyone needs to rerun the same thing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Environment {
    pub ftreview_version: String,
    /// The `TSAN_OPTIONS` of the test phases (the run directory part may differ on rerun).
    pub tsan_options: String,
    /// OS, kernel and architecture, e.g. `Linux 6.1.0 x86_64`.
    pub host: String,
    /// Every command the run executed, in order.
    pub commands: Vec<CommandRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandRecord {
    /// The phase that ran it; `None` for steps outside any phase.
    pub phase: Option<Phase>,
    /// What the step did, e.g. `build wheel`, `stress read-write.pkg.T`.
    pub label: String,
    pub argv: Vec<String>,
    pub cwd: PathBuf,
    /// Only the variables ftreview set or that change behaviour: `PYTHON_GIL`, `TSAN_OPTIONS`,
    /// `CC`, `CFLAGS`, `LDFLAGS`, `PATH` additions, `PIP_*`.
    pub env: BTreeMap<String, String>,
}

/// Whether importing the extension turns the GIL back on (`PYTHON_GIL` unset).
/// The static side (is `Py_mod_gil` declared?) comes from [`RunRecord::static_scan`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GilCheck {
    /// `Some(true)` when `sys._is_gil_enabled()` became true after the imports; `None` when
    /// the check could not run (see `message`).
    pub reenabled_on_import: Option<bool>,
    /// The modules imported for the check.
    pub modules: Vec<String>,
    /// The import's warning or the reason the check could not run.
    pub message: Option<String>,
}

/// Whether one built extension module carries TSan instrumentation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleInstrumentation {
    /// The installed `.so`.
    pub path: PathBuf,
    /// True when the module references `__tsan_*` symbols.
    pub instrumented: bool,
}

/// One phase of the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseRecord {
    pub phase: Phase,
    pub status: PhaseStatus,
    pub duration_secs: f64,
    /// Tests (test phases) or scenarios (stress phase) that ran; `None` when not applicable.
    pub items_run: Option<u64>,
    /// TSan reports (before clustering) the phase produced.
    pub reports: u64,
    /// Why it failed or was skipped; the key line of the error.
    pub message: Option<String>,
    /// What the phase covered and what it left out (test and stress phases).
    #[serde(default)]
    pub coverage: Option<Coverage>,
    /// The pytest command of a test phase, without its test selection: a test's reproducer
    /// is this command with the test's node id appended.
    #[serde(default)]
    pub pytest: Option<PytestInvocation>,
}

/// How much of its work a phase got through.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Coverage {
    /// Tests or scenarios that ran.
    pub ran: u64,
    /// Of those available, how many the phase set out to run (after selection).
    pub selected: Option<u64>,
    /// All there were (tests collected, scenarios generated).
    pub total: Option<u64>,
    /// The phase's share of the run's time budget, in seconds.
    pub share_secs: Option<f64>,
    /// What was left out and why, one sentence each (benchmarks, tests that never reach the
    /// extension, the budget running out, tests stopped as slow).
    pub left_out: Vec<String>,
}

/// A pytest command line as a phase ran it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PytestInvocation {
    pub cwd: PathBuf,
    pub argv: Vec<String>,
    /// The variables that matter for a rerun (`PYTHON_GIL`, `TSAN_OPTIONS`, ...).
    pub env: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PhaseStatus {
    Passed,
    /// The phase ran and its tests failed (not a harness problem).
    Failed,
    TimedOut,
    /// The phase used its share of the time budget and stopped cleanly; its coverage says
    /// what it did not get to.
    StoppedAtShare,
    Crashed,
    Skipped,
    /// ftreview could not run the phase.
    Error,
}

/// How to make it happen again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reproducer {
    /// A shell command line, runnable from `cwd`.
    pub command: String,
    pub cwd: PathBuf,
    /// The kept standalone script, when there is one.
    pub script: Option<PathBuf>,
}

/// A process that died (signal, abort, TSan `DEADLYSIGNAL`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrashRecord {
    pub origin: Origin,
    /// `SEGV`, `SIGABRT`, `SIGBUS`, … as reported.
    pub kind: String,
    pub signal: Option<i32>,
    /// faulthandler output of the crashing process.
    pub python_stack: Option<String>,
    /// The native stack as TSan or the runtime printed it.
    pub native_stack: Option<String>,
    pub reproducer: Option<Reproducer>,
}

/// A process killed after its timeout that was not making progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HangRecord {
    pub origin: Origin,
    pub timeout_secs: f64,
    /// What its native stacks showed.
    pub kind: HangKind,
    /// faulthandler dump of every thread, taken before the kill.
    pub python_stacks: Option<String>,
    /// Native stacks of every thread (gdb/eu-stack), when available.
    pub native_stacks: Option<String>,
    pub reproducer: Option<Reproducer>,
}

/// What a stuck process was doing, from its native stacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HangKind {
    /// Threads waiting on locks (mutexes, critical sections, futexes).
    PossibleDeadlock,
    /// Neither waiting on locks nor crashed: a loop that never ends, or a very slow step.
    NoProgress,
}

/// A bug one thread and one call are enough for: worth fixing, not a free-threading problem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SingleThreadedBug {
    pub kind: SingleThreadedKind,
    /// One-line Python reproducer.
    pub call: Option<String>,
    /// The signal, TSan's summary line, or the exception.
    pub detail: Option<String>,
    /// What found it: the introspection trial, or the scenario whose control reproduced it.
    pub origin: Origin,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SingleThreadedKind {
    Crash,
    Hang,
    /// A C-API contract broken in one call (a result returned with an exception set, …).
    InternalError,
    /// An object's invariants broke without any other thread.
    Invariant,
}

/// One generated (or hand-written) stress scenario that ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioRecord {
    pub name: String,
    /// `shared-mutation`, `read-write`, `module-functions`, `churn`, `two-object`, `targeted`, …
    pub kind: String,
    pub script: PathBuf,
    pub reproducer: Reproducer,
    pub outcome: ScenarioOutcome,
    /// TSan reports (before clustering) the scenario produced.
    pub reports: u64,
    /// Python exceptions raised inside worker threads (expected, not failures).
    pub worker_exceptions: u64,
    /// What the scenario saw break itself (`len` disagreeing with iteration, a `SystemError`).
    pub anomalies: Vec<AnomalyRecord>,
    /// The scenario's C callables (what a clean result means anything about).
    #[serde(default)]
    pub c_callables: Vec<String>,
}

/// An anomaly of a scenario and what its single-threaded control showed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnomalyRecord {
    /// `internal error in Registry.latest(): SystemError: … (×4)`.
    pub description: String,
    /// One-line Python reproducer: the shared object's constructor and the operation.
    pub call: Option<String>,
    /// `Some(true)`: the same operations in one thread, in a fresh process, failed the same
    /// way (a single-threaded bug, not concurrency corruption); `None`: no control ran.
    pub single_threaded: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScenarioOutcome {
    Completed,
    Crashed,
    TimedOut,
    /// The script itself failed before its threads ran (import error, bad constructor).
    Error,
}

/// What ran concurrently: separates "not exercised" from "not reproduced" for static findings.
///
/// A static finding counts as exercised when its C function ran concurrently: it is in
/// `c_functions`, bound to one of `python_callables`, or seen in any TSan stack (the reports add
/// those themselves). The runner supplies what TSan cannot show: code that ran without racing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exercised {
    /// True when at least one multi-threaded phase (parallel tests or stress) ran to the end
    /// of at least one item. Without it nothing counts as exercised.
    pub concurrent_phase_ran: bool,
    /// Callables that run the extension's C code directly, called from several threads at
    /// once (builtins, methods of extension types): without one, nothing the extension's C
    /// code does was exercised concurrently.
    #[serde(default)]
    pub c_callables: BTreeSet<String>,
    /// Tests of the suite under pytest-run-parallel that called into the extension's compiled
    /// modules (the plugin counts the calls).
    #[serde(default)]
    pub parallel_tests_reaching_extension: u64,
    /// Python-level callables of the extension called from several threads at once (stress
    /// scenarios; parallel tests when the harness records them, e.g. with a profile hook's
    /// `c_call` events), as `Type.method` (`MultiDict.add`) or `module.function`
    /// (`ftfixture_racy.bump`); any longer qualification also matches, compared by the last two
    /// dotted parts. The reports map them to C functions through the static pass's method
    /// tables and findings' `entry_points`.
    pub python_callables: BTreeSet<String>,
    /// Extension C functions known by other means to have run concurrently (may be empty).
    pub c_functions: BTreeSet<String>,
}

impl RunRecord {
    /// Reads `RUN_DIR/run.json`, checking its schema version.
    pub fn load(run_dir: &Path) -> anyhow::Result<RunRecord> {
        let path = run_dir.join(RUN_FILE);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "cannot read {}: is {} a run directory written by `ftreview run`?",
                path.display(),
                run_dir.display()
            )
        })?;
        let probe: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not valid JSON", path.display()))?;
        let version = probe.get("schema_version").and_then(|v| v.as_u64());
        match version {
            Some(v) if v == u64::from(RUN_SCHEMA_VERSION) => {}
            Some(v) if v < u64::from(RUN_SCHEMA_VERSION) => anyhow::bail!(
                "{} was written by an older ftreview (run.json schema {v}; this ftreview reads \
                 schema {RUN_SCHEMA_VERSION}): rerun `ftreview run` on the same target, or use \
                 the ftreview version that wrote it",
                path.display()
            ),
            Some(v) => anyhow::bail!(
                "{} was written by a newer ftreview (run.json schema {v}; this ftreview reads \
                 schema {RUN_SCHEMA_VERSION}): upgrade ftreview",
                path.display()
            ),
            None => anyhow::bail!(
                "{} has no schema_version: it is not a run record written by `ftreview run`",
                path.display()
            ),
        }
        let mut record: RunRecord = serde_json::from_value(probe)
            .with_context(|| format!("{} does not match the run model", path.display()))?;
        record.run_dir = run_dir.to_path_buf();
        Ok(record)
    }

    /// Writes `RUN_DIR/run.json` (pretty, stable field order).
    pub fn save(&self, run_dir: &Path) -> anyhow::Result<PathBuf> {
        let path = run_dir.join(RUN_FILE);
        let text = serde_json::to_string_pretty(self)?;
        std::fs::write(&path, text + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(path)
    }
}
