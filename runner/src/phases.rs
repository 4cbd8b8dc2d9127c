//! The instrumented phases of a run: the GIL check, the test suite (as is, then under
//! pytest-run-parallel). Each phase runs in its own log directory with `PYTHON_GIL=0` and TSan
//! writing to `logs/<phase>/tsan.<pid>`; its reports are parsed and attributed to tests, and a
//! crash or a hang becomes a record with stacks instead of ending the run.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ftreview_reports::model::{
    CrashRecord, GilCheck, HangRecord, Origin, Phase, PhaseRecord, PhaseStatus, Reproducer,
};
use ftreview_toolchain::Interpreter;
use serde::Deserialize;
use tsan_parse::Report;

use crate::attribution::{self, faulthandler_dump, TestEvent};
use crate::process::{Runner, Step, StepResult, Termination};
use crate::registry::PackageOverrides;
use crate::rundir::RunDir;
use crate::tsan_env::run_env;
use crate::venv::Venv;

/// What every instrumented phase needs.
pub struct Ctx {
    pub runner: Runner,
    pub run_dir: RunDir,
    pub interpreter: Interpreter,
    pub venv: Venv,
    /// The kept source tree; tests run from here.
    pub source_root: PathBuf,
    pub suppressions: Option<PathBuf>,
    pub overrides: PackageOverrides,
    /// Top-level packages of the target: the plugin reports where they were imported from.
    pub watch_modules: Vec<String>,
}

impl Ctx {
    /// Environment of an instrumented process logging into `log_dir`.
    pub fn tsan_env(&self, log_dir: &Path) -> Vec<(String, String)> {
        let mut env = run_env(
            log_dir,
            self.suppressions.as_deref(),
            self.interpreter.symbolizer.as_deref(),
        );
        if let Some(extra) = &self.overrides.env {
            env.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        env
    }
}

/// Everything one phase produced.
#[derive(Debug)]
pub struct PhaseOutcome {
    pub record: PhaseRecord,
    pub reports: Vec<Report>,
    pub crashes: Vec<CrashRecord>,
    pub hangs: Vec<HangRecord>,
}

impl PhaseOutcome {
    pub fn failed(
        phase: Phase,
        status: PhaseStatus,
        seconds: f64,
        message: String,
    ) -> PhaseOutcome {
        PhaseOutcome {
            record: PhaseRecord {
                phase,
                status,
                duration_secs: seconds,
                items_run: None,
                reports: 0,
                message: Some(message),
            },
            reports: Vec::new(),
            crashes: Vec::new(),
            hangs: Vec::new(),
        }
    }
}

#[derive(Debug, Deserialize)]
struct GilProbe {
    module: String,
    gil_after: bool,
    warnings: Vec<String>,
    error: Option<String>,
}

/// Imports each extension module in a fresh process without `PYTHON_GIL` and reports whether
/// the GIL came back on (a module without a `Py_mod_gil` declaration does that).
pub async fn gil_check(ctx: &Ctx, modules: &[String]) -> anyhow::Result<GilCheck> {
    let logs = ctx.run_dir.logs("gil-check")?;
    let mut reenabled = false;
    let mut messages = Vec::new();
    for module in modules {
        let log = logs.join(format!("{module}.log"));
        let step = Step::new(format!("gil-check {module}"), &ctx.venv.python, &logs, &log)
            .in_phase(Phase::GilCheck)
            .arg(ctx.run_dir.helper())
            .args(["gil-check", module])
            .env("TSAN_OPTIONS", "report_bugs=0")
            .env_remove("PYTHON_GIL")
            .timeout(Duration::from_secs(300));
        let result = ctx.runner.run(&step).await?;
        let text = std::fs::read_to_string(&result.log).unwrap_or_default();
        let probe = text
            .lines()
            .rev()
            .find(|l| l.starts_with('{'))
            .and_then(|l| serde_json::from_str::<GilProbe>(l).ok());
        match probe {
            Some(p) => {
                reenabled |= p.gil_after;
                if let Some(error) = p.error {
                    messages.push(format!("{}: import failed: {error}", p.module));
                }
                messages.extend(p.warnings.into_iter().map(|w| format!("{}: {w}", p.module)));
            }
            None => messages.push(format!(
                "{module}: the check did not run ({}); see {}",
                result.termination.describe(),
                log.display()
            )),
        }
    }
    Ok(GilCheck {
        reenabled_on_import: Some(reenabled),
        modules: modules.to_vec(),
        message: (!messages.is_empty()).then(|| messages.join("\n")),
    })
}

/// How to run the suite in one phase.
pub struct SuiteOptions {
    /// `Tests` or `ParallelTests`.
    pub phase: Phase,
    /// pytest-run-parallel threads; `None` runs the suite as is.
    pub parallel_threads: Option<usize>,
    pub timeout: Duration,
    /// Test paths or the registry's pytest arguments.
    pub targets: Vec<String>,
}

/// pytest exit codes that mean "the configuration did not load" (usage error, internal
/// error): typical of suites whose addopts need plugins a fresh venv lacks.
fn config_broke(termination: Termination) -> bool {
    matches!(termination, Termination::Exited { code: 3 | 4 })
}

/// Runs the test suite once; on a configuration error, once more with `-o addopts=`.
pub async fn run_suite(ctx: &Ctx, options: &SuiteOptions) -> anyhow::Result<PhaseOutcome> {
    let logs = ctx.run_dir.logs(options.phase.name())?;
    let mut result = run_pytest(ctx, options, &logs, false).await?;
    let mut note = None;
    if config_broke(result.termination) {
        let first = logs.join("output.without-addopts-fallback.log");
        let _ = std::fs::rename(&result.log, &first);
        clear_phase_logs(&logs);
        note = Some(format!("the suite's pytest configuration failed to load in a fresh venv (see {}); reran with -o addopts=", first.display()));
        result = run_pytest(ctx, options, &logs, true).await?;
    }
    let mut outcome = collect(ctx, options, &logs, &result);
    if let Some(note) = note {
        let message = outcome
            .record
            .message
            .take()
            .map(|m| format!("{m}; {note}"))
            .unwrap_or(note);
        outcome.record.message = Some(message);
    }
    Ok(outcome)
}

fn clear_phase_logs(dir: &Path) {
    for log in attribution::tsan_logs(dir) {
        let _ = std::fs::remove_file(log);
    }
    let _ = std::fs::remove_file(dir.join("tests.jsonl"));
}

async fn run_pytest(
    ctx: &Ctx,
    options: &SuiteOptions,
    logs: &Path,
    no_addopts: bool,
) -> anyhow::Result<StepResult> {
    let mut step = Step::new(
        options.phase.name(),
        &ctx.venv.python,
        &ctx.source_root,
        &logs.join("output.log"),
    )
    .in_phase(options.phase)
    // -P: the source tree must not shadow the installed, instrumented package.
    .args([
        "-P",
        "-m",
        "pytest",
        "-p",
        "ftreview_pytest_plugin",
        "-p",
        "no:xdist",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:randomly",
    ])
    .args([
        "--continue-on-collection-errors",
        "-rfE",
        "--color=no",
        "-o",
        "faulthandler_timeout=0",
    ])
    .envs(&ctx.tsan_env(logs))
    .env("PYTHONPATH", ctx.run_dir.harness().display().to_string())
    .env("FTREVIEW_TSAN_LOG", logs.join("tsan").display().to_string())
    .env(
        "FTREVIEW_TEST_EVENTS",
        logs.join("tests.jsonl").display().to_string(),
    )
    .env("FTREVIEW_WATCH_MODULES", ctx.watch_modules.join(","))
    .timeout(options.timeout);
    if no_addopts {
        step = step.args(["-o", "addopts="]);
    }
    if let Some(threads) = options.parallel_threads {
        step = step
            .arg(format!("--parallel-threads={threads}"))
            .arg("--skip-thread-unsafe=true");
    }
    for ignored in ctx.overrides.ignore.iter().flatten() {
        let flag = if ignored.contains("::") {
            "--deselect"
        } else {
            "--ignore"
        };
        step = step.arg(format!("{flag}={ignored}"));
    }
    step = step.args(options.targets.iter());
    ctx.runner.run(&step).await
}

/// Turns a finished pytest process into the phase's record, reports, crashes and hangs.
fn collect(ctx: &Ctx, options: &SuiteOptions, logs: &Path, result: &StepResult) -> PhaseOutcome {
    let events = attribution::read_events(&logs.join("tests.jsonl"));
    let mut reports = attribution::read_reports(logs);
    attribution::attribute_to_tests(&mut reports, &events, options.phase);
    let tests_run = events
        .iter()
        .filter(|e| matches!(e, TestEvent::Test { .. }))
        .count() as u64;
    let running = attribution::unfinished_test(&events);
    let output = std::fs::read_to_string(&result.log).unwrap_or_default();
    let origin = Origin {
        phase: options.phase,
        item: running.clone(),
    };
    let reproducer = Reproducer {
        command: result.command.clone(),
        cwd: ctx.source_root.clone(),
        script: None,
    };
    let mut crashes: Vec<CrashRecord> = deadly_reports(&reports, options.phase, &reproducer);
    let mut hangs = Vec::new();
    let (status, message) = match result.termination {
        Termination::TimedOut if still_progressing(logs, result, options.timeout) => (
            PhaseStatus::TimedOut,
            Some(format!(
                "timed out after {} s while still finishing tests ({tests_run} ran): the suite is slow under TSan, not stuck; raise --timeout or the registry's `timeout`",
                options.timeout.as_secs()
            )),
        ),
        Termination::TimedOut => {
            hangs.push(HangRecord {
                origin,
                timeout_secs: options.timeout.as_secs_f64(),
                python_stacks: faulthandler_dump(&output),
                native_stacks: result.hang_stacks.as_ref().and_then(|p| std::fs::read_to_string(p).ok()),
                reproducer: Some(reproducer),
            });
            (
                PhaseStatus::TimedOut,
                Some(format!("timed out after {} s{}: possible deadlock; stacks kept", options.timeout.as_secs(), running_note(&running))),
            )
        }
        Termination::Signaled { signal } => {
            if crashes.is_empty() {
                crashes.push(CrashRecord {
                    origin,
                    kind: crate::process::signal_name(signal).to_string(),
                    signal: Some(signal),
                    python_stack: faulthandler_dump(&output),
                    native_stack: None,
                    reproducer: Some(reproducer),
                });
            }
            (
                PhaseStatus::Crashed,
                Some(format!(
                    "pytest {}{}",
                    result.termination.describe(),
                    running_note(&running)
                )),
            )
        }
        Termination::Interrupted => (PhaseStatus::Error, Some("interrupted (Ctrl-C)".to_string())),
        Termination::Exited { code } => exit_status(code, tests_run, &crashes, &running, &output),
    };
    for crash in &mut crashes {
        if crash.python_stack.is_none() {
            crash.python_stack = faulthandler_dump(&output);
        }
    }
    PhaseOutcome {
        record: PhaseRecord {
            phase: options.phase,
            status,
            duration_secs: result.seconds,
            items_run: Some(tests_run),
            reports: reports.len() as u64,
            message,
        },
        reports,
        crashes,
        hangs,
    }
}

/// No test started or finished for this long before the timeout: the suite is stuck, not slow
/// (half the timeout for short ones).
const STALL: Duration = Duration::from_secs(120);

/// Whether a test started or finished shortly before the timeout (the events file was written).
fn still_progressing(logs: &Path, result: &StepResult, timeout: Duration) -> bool {
    let modified = std::fs::metadata(logs.join("tests.jsonl")).and_then(|m| m.modified());
    let Ok(modified) = modified else { return false };
    // Time spent collecting stacks after the timeout does not count.
    let evidence = Duration::from_secs_f64(result.seconds).saturating_sub(timeout);
    modified
        .elapsed()
        .is_ok_and(|age| age < STALL.min(timeout / 2) + evidence)
}

fn running_note(running: &Option<String>) -> String {
    running
        .as_ref()
        .map(|t| format!(" while running {t}"))
        .unwrap_or_default()
}

/// pytest's exit code in words. TSan runs with `exitcode=0`, so a deadly signal TSan caught
/// can end with code 0: the reports decide.
fn exit_status(
    code: i32,
    tests_run: u64,
    crashes: &[CrashRecord],
    running: &Option<String>,
    output: &str,
) -> (PhaseStatus, Option<String>) {
    if !crashes.is_empty() {
        return (
            PhaseStatus::Crashed,
            Some(format!(
                "the process died on a deadly signal{}",
                running_note(running)
            )),
        );
    }
    let summary = output
        .lines()
        .rev()
        .find(|l| {
            l.starts_with('=')
                && (l.contains(" passed") || l.contains(" failed") || l.contains(" error"))
        })
        .map(|l| l.trim_matches(|c| c == '=' || c == ' ').to_string());
    match code {
        0 => (PhaseStatus::Passed, summary),
        1 => (PhaseStatus::Failed, summary.or(Some("some tests failed".into()))),
        5 => (PhaseStatus::Error, Some("pytest collected no tests: set `pytest_args` for this package in the registry (--registry FILE)".into())),
        2 if tests_run > 0 => (PhaseStatus::Failed, summary.or(Some("pytest was interrupted (collection errors)".into()))),
        _ => (PhaseStatus::Error, Some(format!("pytest ended with exit code {code}: {}", last_error_line(output)))),
    }
}

fn last_error_line(output: &str) -> String {
    output
        .lines()
        .rev()
        .find(|l| l.contains("rror"))
        .unwrap_or("see the phase's output.log")
        .trim()
        .to_string()
}

/// Crash records for reports of deadly signals TSan caught (`ThreadSanitizer:DEADLYSIGNAL`).
pub fn deadly_reports(
    reports: &[Report],
    phase: Phase,
    reproducer: &Reproducer,
) -> Vec<CrashRecord> {
    reports
        .iter()
        .filter_map(|r| {
            let crash = r.crash.as_ref()?;
            let origin = r.origin.clone().unwrap_or(Origin::outside(phase));
            let native = r.stacks.first().map(|s| {
                s.frames
                    .iter()
                    .map(|f| f.describe())
                    .collect::<Vec<_>>()
                    .join("\n")
            });
            Some(CrashRecord {
                origin,
                kind: crash
                    .description
                    .split_whitespace()
                    .next()
                    .unwrap_or("SEGV")
                    .to_string(),
                signal: None,
                python_stack: None,
                native_stack: native,
                reproducer: Some(reproducer.clone()),
            })
        })
        .collect()
}
