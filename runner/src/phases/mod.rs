//! The instrumented phases of a run: the GIL check, the test suite (as is, then under
//! pytest-run-parallel, on the tests that reach the extension) and the stress scenarios. Each
//! runs with `PYTHON_GIL=0` and TSan writing to its own log directory; what a process left
//! behind is parsed, attributed to its test or scenario and sent to the review as soon as the
//! process ends, so a crash or a hang becomes a record instead of ending the run.

mod attribution;
mod gil_check;
mod layout;
mod pytest;
mod reading;
mod repro;
mod stress;
mod suite;
mod termination;

use std::path::{Path, PathBuf};

use ftreview_reports::model::{
    CrashRecord, HangRecord, PhaseRecord, ScenarioRecord, SingleThreadedBug, TestLayout,
};
use ftreview_toolchain::Interpreter;
use tokio::sync::mpsc;
use tsan_parse::{FileSummary, Report};

use crate::env::{run_env, tsan_log_prefix, Venv};
use crate::process::{Runner, Step};
use crate::registry::PackageOverrides;
use crate::rundir::RunDir;

pub(crate) use attribution::read_reports;
pub(crate) use gil_check::gil_check;
#[cfg(test)]
pub(crate) use gil_check::GilProbe;
pub(crate) use layout::{choose_layout, LayoutRequest};
pub(crate) use pytest::Selection;
pub(crate) use reading::ReportReader;
pub(crate) use repro::{
    api_model, hints, reproduce, Proven, RecordedProblems, ReproContext, ReproOptions, ReproTarget,
};
pub(crate) use stress::{run_stress, StressInputs, StressOptions};
pub(crate) use suite::{run_suite, SuiteOptions};
pub(crate) use termination::killed_while_hung;

/// What every instrumented phase needs.
pub(crate) struct Ctx {
    pub runner: Runner,
    pub run_dir: RunDir,
    pub interpreter: Interpreter,
    pub venv: Venv,
    /// The kept source tree the extension was built from.
    pub source_root: PathBuf,
    pub suppressions: Option<PathBuf>,
    pub overrides: PackageOverrides,
    /// Top-level packages of the target: the plugin reports where they were imported from.
    pub watch_modules: Vec<String>,
    /// The compiled extension modules (`pkg._ext`): the plugin counts calls into them.
    pub extension_modules: Vec<String>,
}

impl Ctx {
    /// `step` under TSan: its environment, its reports in `log_dir`, and its end soon after
    /// TSan reports it crashed (a crash handler can deadlock).
    pub fn under_tsan(&self, step: Step, log_dir: &Path) -> Step {
        step.envs(&self.tsan_env(log_dir))
            .dies_after_tsan_fatal_error_in(&tsan_log_prefix(log_dir))
    }

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

/// What the phases hand the review while they run (one stream, read by the review alone).
#[derive(Debug)]
pub(crate) enum Collected {
    /// What one process left behind, as soon as it ended.
    Evidence(Evidence),
    Scenario(ScenarioRecord),
    /// Python callables a concurrent phase called from several threads, and which of them
    /// run the extension's C code directly.
    Exercised {
        callables: Vec<String>,
        c_callables: Vec<String>,
    },
    /// A phase ended.
    Phase(PhaseRecord),
    /// Where the suite runs, and what its collection found.
    Layout(TestLayout),
    /// Bugs one thread is enough for.
    SingleThreaded(Vec<SingleThreadedBug>),
    /// Tests of the parallel phase that called into the extension.
    ParallelTestsReachingExtension(u64),
    /// Asks for the count of distinct problems and crashes the stress phase has shown so far;
    /// answered in turn, so it counts everything the phase sent before.
    StressProblemCount(tokio::sync::oneshot::Sender<usize>),
}

/// TSan reports (origins set), crashes and hangs of one process.
#[derive(Debug, Default)]
pub(crate) struct Evidence {
    pub reports: Vec<Report>,
    /// What reading each log found (kept in the run record's triage stats).
    pub logs: Vec<FileSummary>,
    pub crashes: Vec<CrashRecord>,
    pub hangs: Vec<HangRecord>,
}

/// Where a phase sends what it collected.
pub(crate) type Sink = mpsc::UnboundedSender<Collected>;

/// Sends, ignoring a review that already stopped listening (Ctrl-C).
pub(crate) fn send(sink: &Sink, collected: Collected) {
    let _ = sink.send(collected);
}
