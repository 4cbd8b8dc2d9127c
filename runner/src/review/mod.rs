//! One target from spec to run record, as a short driver over stages with typed outputs:
//! fetch → build → environment → instrumented phases (collected as they run). Every stage is
//! a phase with its time in the record; `run.json` is rewritten after each one, so a failure or
//! Ctrl-C leaves everything collected so far.

mod instrumented;
mod record;
mod schedule;
mod setup;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ftreview_reports::model::{Phase, RunRecord};
use ftreview_toolchain::Interpreter;
use tokio::sync::watch;

use crate::env::Installer;
use crate::events::Events;
use crate::phases::{Ctx, StressOptions};
use crate::process::Runner;
use crate::registry::Registry;
use crate::rundir::RunDir;
use crate::target::TargetSpec;

pub(crate) use instrumented::Target;
pub(crate) use record::Review;
pub(crate) use schedule::FixedShares;

/// Which instrumented phases to run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PhaseSet {
    pub tests: bool,
    pub parallel: bool,
    pub stress: bool,
    /// Rerun each problem's small reproducer.
    pub repro: bool,
}

impl PhaseSet {
    /// The chosen phases in the order they start.
    fn in_order(self) -> Vec<Phase> {
        [
            (self.stress, Phase::Stress),
            (self.tests, Phase::Tests),
            (self.parallel, Phase::ParallelTests),
            (self.repro, Phase::Repro),
        ]
        .into_iter()
        .filter_map(|(on, phase)| on.then_some(phase))
        .collect()
    }
}

/// Settings shared by every target of an invocation.
pub(crate) struct RunOptions {
    pub jobs: usize,
    pub parallel_threads: usize,
    /// From fetch to the written plan (the interpreter already built).
    pub budget: Duration,
    pub fixed: FixedShares,
    /// A single test longer than this is stopped and reported as slow.
    pub test_timeout: Duration,
    /// Benchmark tests crawl under TSan: left out unless asked for.
    pub benchmarks: bool,
    pub stress: StressOptions,
    /// Reruns of each problem's small reproducer.
    pub repro_runs: u32,
    pub phases: PhaseSet,
    pub registry: Registry,
    pub user_suppressions: Vec<PathBuf>,
    /// Ignore the build cache.
    pub rebuild: bool,
    pub installer: Installer,
}

/// The result of one target. What stopped it early and whether a clean result would mean
/// anything are in `record` (`stopped_by`, `clean_unproven`).
pub(crate) struct TargetRun {
    pub spec: TargetSpec,
    pub run_dir: PathBuf,
    pub record: RunRecord,
    /// The plan, results.json and SARIF, once written.
    pub reports: Vec<PathBuf>,
    /// What the reports concluded; `None` until they are written (or when writing failed).
    pub results: Option<ftreview_reports::Results>,
    /// Why the reports could not be written.
    pub report_error: Option<String>,
    /// Wall-clock time of the whole review (phases may overlap).
    pub wall_secs: f64,
}

/// Reviews one target into `run_dir`. Never fails: problems end up in the record.
pub(crate) async fn review(
    spec: TargetSpec,
    run_dir: RunDir,
    interpreter: &Interpreter,
    options: &RunOptions,
    cancel: watch::Receiver<bool>,
    events: &Events,
) -> TargetRun {
    let started = Instant::now();
    let mut record = setup::empty_record(&spec, interpreter);
    record.run_dir = run_dir.root.clone();
    let runner = match Runner::new(&run_dir.journal(), cancel, interpreter.command_prefix()) {
        Ok(runner) => runner,
        Err(err) => {
            record.stopped_by = Some(format!("{err:#}"));
            return finished(spec, run_dir, record, started);
        }
    };
    let mut review = Review::new(run_dir.clone(), record, runner, events.clone());
    let result = drive(&spec, interpreter, options, &mut review).await;
    review.record.stopped_by = result.err();
    review.save();
    finished(spec, run_dir, review.record, started)
}

fn finished(spec: TargetSpec, run_dir: RunDir, record: RunRecord, started: Instant) -> TargetRun {
    TargetRun {
        spec,
        run_dir: run_dir.root,
        record,
        reports: Vec::new(),
        results: None,
        report_error: None,
        wall_secs: started.elapsed().as_secs_f64(),
    }
}

async fn drive(
    spec: &TargetSpec,
    interpreter: &Interpreter,
    options: &RunOptions,
    review: &mut Review,
) -> Result<(), String> {
    let budget = schedule::Budget::start(options.budget);
    let target = set_up(spec, interpreter, options, review).await?;
    instrumented::run(review, interpreter, options, &budget, target).await;
    setup::check_not_cancelled(review)
}

/// Fetch → build → environment: the target installed in its test venv.
async fn set_up(
    spec: &TargetSpec,
    interpreter: &Interpreter,
    options: &RunOptions,
    review: &mut Review,
) -> Result<Target, String> {
    let source = setup::fetch(review, spec).await?;
    let project = setup::project(review, interpreter, &source).await?;
    let (built, overrides) = setup::build(review, interpreter, &source, &project, options).await?;
    let prepared =
        setup::environment(review, interpreter, &project, &built, &overrides, options).await?;
    setup::check_not_cancelled(review)?;
    Ok(Target {
        source,
        project,
        built,
        overrides,
        prepared,
    })
}

/// A target built with TSan and installed, ready for reruns outside a review (verifying a
/// patch): the same stages as a review up to the GIL check and the static pass.
pub(crate) struct Installation {
    /// Its record (setup phases, GIL check, static scan of its sources) in its own run
    /// directory, and how reports are read from its build.
    pub review: Review,
    pub ctx: Arc<Ctx>,
}

/// Sets `spec` up in `run_dir`. A failure keeps the record written so far and says why.
pub(crate) async fn install(
    spec: &TargetSpec,
    run_dir: RunDir,
    interpreter: &Interpreter,
    options: &RunOptions,
    cancel: watch::Receiver<bool>,
    events: &Events,
) -> Result<Installation, String> {
    let mut record = setup::empty_record(spec, interpreter);
    record.run_dir = run_dir.root.clone();
    let runner = Runner::new(&run_dir.journal(), cancel, interpreter.command_prefix())
        .map_err(|e| format!("{e:#}"))?;
    let mut review = Review::new(run_dir, record, runner, events.clone());
    match installed(spec, interpreter, options, &mut review).await {
        Ok(ctx) => Ok(Installation { review, ctx }),
        Err(err) => {
            review.record.stopped_by = Some(err.clone());
            review.save();
            Err(err)
        }
    }
}

async fn installed(
    spec: &TargetSpec,
    interpreter: &Interpreter,
    options: &RunOptions,
    review: &mut Review,
) -> Result<Arc<Ctx>, String> {
    let target = set_up(spec, interpreter, options, review).await?;
    let ctx = instrumented::context(review, interpreter, options, &target)?;
    instrumented::scan(review, &ctx, &target).await;
    Ok(ctx)
}
