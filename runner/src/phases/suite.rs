//! One run of the test suite: as is (which also tells which tests reach the extension), or
//! under pytest-run-parallel on the tests that do. The run stops cleanly at its share of the
//! budget, slow tests are stopped one by one, and the record says what was covered.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use ftreview_reports::model::{
    Coverage, Origin, Phase, PhaseRecord, PhaseStatus, Reproducer, TestLayout,
};

use super::attribution::{self, read_events, TestEvent};
use super::pytest::{events_file, PytestCommand, Selection};
use super::termination::{classify, EndKind, ProcessEvidence};
use super::{send, Collected, Ctx, Evidence, Sink};
use crate::process::{StepResult, Termination};

/// How to run the suite in one phase.
pub(crate) struct SuiteOptions {
    pub phase: Phase,
    /// pytest-run-parallel threads; `None` runs the suite as is.
    pub parallel_threads: Option<usize>,
    /// Test paths or the registry's pytest arguments.
    pub targets: Vec<String>,
    /// No test starts after this.
    pub deadline: Instant,
    pub test_timeout: Duration,
    pub skip_benchmarks: bool,
    /// The plugin writes the calls the tests make into the extension to `api-calls.json`.
    pub record_calls: bool,
    pub selection: Option<Selection>,
}

/// What the phase learned beyond its evidence.
#[derive(Debug, Default)]
pub(crate) struct SuiteResult {
    /// Tests that ran, with their calls into the extension.
    pub reach: Vec<(String, u64)>,
}

/// No test started or finished for this long: the suite is stuck, not slow.
const STALL: Duration = Duration::from_secs(120);
/// Past its deadline a phase finishes the running test; then it is killed.
const GRACE: Duration = Duration::from_secs(60);

/// Runs the suite once in `layout`; on a configuration error, once more with `-o addopts=`.
pub(crate) async fn run_suite(
    ctx: &Ctx,
    options: &SuiteOptions,
    layout: &TestLayout,
    sink: &Sink,
) -> anyhow::Result<SuiteResult> {
    let logs = ctx.run_dir.logs(options.phase.name())?;
    let started = Instant::now();
    let share = options.deadline.saturating_duration_since(started);
    let mut command = PytestCommand {
        phase: options.phase,
        cwd: &layout.root,
        targets: &options.targets,
        parallel_threads: options.parallel_threads,
        no_addopts: false,
        collect_only: false,
        deadline: Some(SystemTime::now() + share),
        test_timeout: Some(options.test_timeout),
        skip_benchmarks: options.skip_benchmarks,
        record_calls: options.record_calls,
        selection: options.selection.as_ref(),
    };
    let mut result = run_once(ctx, &command, &logs, share).await?;
    let mut notes = Vec::new();
    if matches!(result.termination, Termination::Exited { code: 3 | 4 }) {
        let first = logs.join("output.without-addopts-fallback.log");
        let _ = std::fs::rename(&result.log, &first);
        clear_phase_logs(&logs);
        notes.push(format!("the suite's pytest configuration failed to load in a fresh venv (see {}); reran with -o addopts=", first.display()));
        command.no_addopts = true;
        let left = options.deadline.saturating_duration_since(Instant::now());
        result = run_once(ctx, &command, &logs, left).await?;
    }
    let events = read_events(&events_file(&logs));
    let (mut reports, log_files) = attribution::read_logs(&logs);
    attribution::attribute_to_tests(&mut reports, &events, options.phase);
    let output = std::fs::read_to_string(&result.log).unwrap_or_default();
    let running = attribution::unfinished_test(&events);
    let ending = classify(ProcessEvidence {
        result: &result,
        output: &output,
        reports: &reports,
        origin: Origin {
            phase: options.phase,
            item: running.clone(),
        },
        reproducer: Reproducer {
            command: result.command.clone(),
            cwd: layout.root.clone(),
            script: None,
        },
        died_mid_run: false,
        progressing: still_progressing(&logs, &events),
    });
    let coverage = coverage(&events, share);
    let (status, message) = status_of(&ending.kind, &events, &result, &coverage, &output, &running);
    notes.extend(message);
    let record = PhaseRecord {
        phase: options.phase,
        status,
        duration_secs: started.elapsed().as_secs_f64(),
        items_run: Some(coverage.ran),
        reports: reports.len() as u64,
        message: (!notes.is_empty()).then(|| notes.join("; ")),
        coverage: Some(coverage),
        pytest: Some(command.invocation(ctx, &logs)),
    };
    send(
        sink,
        Collected::Evidence(Evidence {
            reports,
            logs: log_files,
            crashes: ending.crashes,
            hangs: ending.hangs,
        }),
    );
    if options.phase == Phase::ParallelTests {
        let reaching = reach(&events)
            .iter()
            .filter(|(_, calls)| *calls > 0)
            .count();
        send(
            sink,
            Collected::ParallelTestsReachingExtension(reaching as u64),
        );
    }
    send(sink, Collected::Phase(record));
    Ok(SuiteResult {
        reach: reach(&events),
    })
}

async fn run_once(
    ctx: &Ctx,
    command: &PytestCommand<'_>,
    logs: &Path,
    share: Duration,
) -> anyhow::Result<StepResult> {
    let step = command.step(ctx, logs)?.timeout(share + GRACE);
    ctx.runner.run(&step).await
}

fn clear_phase_logs(dir: &Path) {
    for log in attribution::tsan_logs(dir) {
        let _ = std::fs::remove_file(log);
    }
    let _ = std::fs::remove_file(events_file(dir));
}

/// Whether a test started or finished shortly before the process was killed, or pytest was
/// still starting (no test begun: collection under TSan is slow, not stuck).
fn still_progressing(logs: &Path, events: &[TestEvent]) -> bool {
    let started = events.iter().any(|e| matches!(e, TestEvent::Start { .. }));
    let modified = std::fs::metadata(events_file(logs)).and_then(|m| m.modified());
    !started || modified.is_ok_and(|m| m.elapsed().is_ok_and(|age| age < STALL))
}

/// Tests run, selected and collected, and what was left out.
fn coverage(events: &[TestEvent], share: Duration) -> Coverage {
    let mut coverage = Coverage {
        share_secs: Some(share.as_secs_f64()),
        ..Coverage::default()
    };
    let mut deselected = 0;
    let mut slow = Vec::new();
    for event in events {
        match event {
            TestEvent::Test { .. } => coverage.ran += 1,
            TestEvent::Collected { count, .. } => {
                *coverage.total.get_or_insert(0) += count;
            }
            TestEvent::Deselected { reason, count } => {
                deselected += count;
                coverage.left_out.push(format!("{count} {reason}"));
            }
            TestEvent::Slow { nodeid, seconds } => slow.push(format!("{nodeid} ({seconds:.0} s)")),
            TestEvent::Stopped { reason, remaining } => coverage
                .left_out
                .push(format!("{remaining} selected tests not run: {reason}")),
            _ => {}
        }
    }
    coverage.selected = coverage.total.map(|t| t.saturating_sub(deselected));
    if !slow.is_empty() {
        coverage.left_out.push(format!(
            "{} slow tests stopped at the per-test timeout: {}",
            slow.len(),
            slow.join(", ")
        ));
    }
    coverage
}

/// Each test that ran and how often it called into the extension.
fn reach(events: &[TestEvent]) -> Vec<(String, u64)> {
    events
        .iter()
        .filter_map(|e| match e {
            TestEvent::Test {
                nodeid, ext_calls, ..
            } => Some((nodeid.clone(), *ext_calls)),
            _ => None,
        })
        .collect()
}

/// The phase's status and the sentence that explains it.
fn status_of(
    kind: &EndKind,
    events: &[TestEvent],
    result: &StepResult,
    coverage: &Coverage,
    output: &str,
    running: &Option<String>,
) -> (PhaseStatus, Option<String>) {
    let while_running = running
        .as_ref()
        .map(|t| format!(" while running {t}"))
        .unwrap_or_default();
    match kind {
        EndKind::Interrupted => (PhaseStatus::Error, Some("interrupted (Ctrl-C)".into())),
        EndKind::Crashed => (
            PhaseStatus::Crashed,
            Some(format!("the process died{while_running}")),
        ),
        EndKind::Hung => (
            PhaseStatus::TimedOut,
            Some(format!("no progress{while_running}; stacks kept")),
        ),
        EndKind::OutOfTime => (
            PhaseStatus::StoppedAtShare,
            Some(format!(
                "stopped at its time share after {} tests: the suite is slow under TSan, not stuck",
                coverage.ran
            )),
        ),
        EndKind::Finished => match result.termination {
            Termination::Exited { code } if stopped_at_share(events) => (
                PhaseStatus::StoppedAtShare,
                Some(format!(
                    "stopped at its time share after {} tests (exit code {code})",
                    coverage.ran
                )),
            ),
            Termination::Exited { code } => exit_status(code, coverage, output),
            _ => (PhaseStatus::Error, None),
        },
    }
}

fn stopped_at_share(events: &[TestEvent]) -> bool {
    events
        .iter()
        .any(|e| matches!(e, TestEvent::Stopped { .. }))
}

/// pytest's exit code in words (TSan runs with `exitcode=0`, so crashes were decided above).
fn exit_status(code: i32, coverage: &Coverage, output: &str) -> (PhaseStatus, Option<String>) {
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
        2 if coverage.ran > 0 => (
            PhaseStatus::Failed,
            summary.or(Some("pytest was interrupted (collection errors)".into())),
        ),
        5 => (PhaseStatus::Error, Some("pytest collected no tests: set `pytest_args` for this package in the registry (--registry FILE)".into())),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coverage_counts_what_ran_and_says_what_was_left_out() {
        let lines = [
            r#"{"event": "collected", "count": 10, "pid": 1}"#,
            r#"{"event": "deselected", "reason": "benchmark tests (the benchmark fixture or marker)", "count": 2, "pid": 1}"#,
            r#"{"event": "start", "nodeid": "t.py::a", "pid": 1, "offset": 0}"#,
            r#"{"event": "test", "nodeid": "t.py::a", "pid": 1, "start": 0, "end": 0, "outcome": "passed", "ext_calls": 7}"#,
            r#"{"event": "slow", "nodeid": "t.py::b", "seconds": 60, "pid": 1}"#,
            r#"{"event": "test", "nodeid": "t.py::b", "pid": 1, "start": 0, "end": 0, "outcome": "failed"}"#,
            r#"{"event": "stopped", "reason": "the phase's share of the time budget ran out", "remaining": 6, "pid": 1}"#,
        ];
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tests.jsonl"), lines.join("\n")).unwrap();
        let events = read_events(&events_file(dir.path()));
        let coverage = coverage(&events, Duration::from_secs(240));
        assert_eq!(
            (coverage.ran, coverage.selected, coverage.total),
            (2, Some(8), Some(10))
        );
        assert_eq!(
            coverage.left_out,
            [
                "2 benchmark tests (the benchmark fixture or marker)",
                "6 selected tests not run: the phase's share of the time budget ran out",
                "1 slow tests stopped at the per-test timeout: t.py::b (60 s)",
            ]
        );
        assert_eq!(
            reach(&events),
            [("t.py::a".to_string(), 7), ("t.py::b".to_string(), 0)]
        );
    }
}
