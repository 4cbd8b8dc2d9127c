//! The instrumented stage: the GIL check and the static pass side by side, then the phases on
//! the schedule's lanes. Phases send what they collect through one channel; the review takes
//! it in as it comes (and announces each new race), until every lane is done.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use ftreview_reports::model::{Phase, PhaseRecord, PhaseStatus};
use ftreview_static::ScanReport;
use ftreview_toolchain::Interpreter;
use tokio::sync::{mpsc, Semaphore};
use tsan_parse::{Classifier, Suppressions, Symbolizer};

use super::record::Review;
use super::schedule::{Budget, FixedShares, Plan};
use super::setup::{Prepared, Project};
use super::RunOptions;
use crate::build::BuiltWheel;
use crate::env::{self, Installed};
use crate::events::Events;
use crate::phases::{
    self, choose_layout, run_stress, run_suite, send, Collected, Ctx, LayoutRequest, ReportReader,
    ReproContext, ReproOptions, ReproTarget, Selection, Sink, StressInputs, SuiteOptions,
};
use crate::registry::PackageOverrides;
use crate::target::Source;

/// Everything setup produced.
pub(crate) struct Target {
    pub source: Source,
    pub project: Project,
    pub built: BuiltWheel,
    pub overrides: PackageOverrides,
    pub prepared: Prepared,
}

pub(super) async fn run(
    review: &mut Review,
    interpreter: &Interpreter,
    options: &RunOptions,
    budget: &Budget,
    target: Target,
) {
    let ctx = match context(review, interpreter, options, &target) {
        Ok(ctx) => ctx,
        Err(why) => {
            skip_instrumented_phases(review, options, &why);
            return;
        }
    };
    let installed = target.prepared.installed.clone();
    let scan = scan(review, &ctx, &target).await;
    if review.runner.cancelled() {
        return;
    }
    let suite_targets = target
        .overrides
        .pytest_args
        .clone()
        .unwrap_or_else(|| target.project.info.testpaths.clone());
    let phases = schedulable(review, options, &suite_targets);
    let plan = Plan::new(budget, &phases, options.jobs, options.fixed);
    review.record.schedule = Some(plan.record(budget, review.elapsed_secs()));
    // Beside the suites, stress gets every slot but the suites' one, and that one too when
    // the suites are done.
    let stress_slots = match plan.concurrent {
        true => options.jobs - 1,
        false => options.jobs,
    };
    let lanes = Lanes {
        ctx,
        plan,
        fixed: options.fixed,
        permits: Arc::new(Semaphore::new(stress_slots.max(1))),
        events: review.events.clone(),
        suite: SuiteSettings {
            targets: suite_targets,
            parallel_threads: target
                .overrides
                .parallel_threads
                .unwrap_or(options.parallel_threads),
            test_timeout: options.test_timeout,
            skip_benchmarks: !options.benchmarks,
            record_calls: options.stress.test_calls,
        },
        stress: StressInputs {
            installed,
            hints: target.overrides.stress.clone(),
            scan,
            deadline: Instant::now(),
            until_nothing_new: options.fixed.stress.is_none(),
        },
        stress_options: options.stress.clone(),
    };
    let (sink, mut collected) = mpsc::unbounded_channel();
    let ctx = lanes.ctx.clone();
    let plan = lanes.plan.clone();
    let permits = Arc::new(Semaphore::new(options.jobs.max(1)));
    let running = tokio::spawn(lanes.run(sink));
    while let Some(item) = collected.recv().await {
        review.absorb(item);
    }
    if let Err(err) = running.await {
        review.events.warn(&format!("a phase panicked: {err}"));
    }
    if plan.includes(Phase::Repro) && !review.runner.cancelled() {
        let deadline = plan.deadline(Phase::Repro, options.fixed);
        prove_problems(
            review,
            ctx,
            &target.overrides,
            options.repro_runs,
            deadline,
            permits,
        )
        .await;
    }
    conclude(review);
}

/// What the instrumented phases share: the test venv, the merged suppressions, how reports
/// are read. An error when no built module is instrumented (nothing for TSan to see).
pub(super) fn context(
    review: &mut Review,
    interpreter: &Interpreter,
    options: &RunOptions,
    target: &Target,
) -> Result<Arc<Ctx>, String> {
    let installed = &target.prepared.installed;
    read_reports_of(review, installed, target);
    if !review.record.instrumentation.iter().any(|m| m.instrumented) {
        return Err(review
            .record
            .clean_unproven
            .clone()
            .unwrap_or_else(|| "no instrumented extension module".into()));
    }
    let suppressions = suppressions(review, interpreter, options);
    let ctx = Arc::new(Ctx {
        runner: review.runner.clone(),
        run_dir: review.run_dir.clone(),
        interpreter: interpreter.clone(),
        venv: target.prepared.test_env.venv.clone(),
        source_root: target.source.root.clone(),
        suppressions,
        overrides: target.overrides.clone(),
        watch_modules: installed.top_level.clone(),
        extension_modules: installed
            .extensions
            .iter()
            .map(|e| e.module.clone())
            .collect(),
    });
    review.record.environment.tsan_options = env::tsan_options(
        &review.run_dir.root.join("logs/<phase>"),
        ctx.suppressions.as_deref(),
        interpreter.symbolizer.as_deref(),
    );
    Ok(ctx)
}

/// The GIL check and the static pass, kept in the record.
pub(super) async fn scan(review: &mut Review, ctx: &Ctx, target: &Target) -> Option<ScanReport> {
    let scan =
        gil_check_and_scan(review, ctx, &target.prepared.installed, &target.source.root).await;
    review.record.static_scan = scan.clone();
    review.save();
    scan
}

/// Reruns each problem's small reproducer; the ones that reproduced become the problems'
/// reproducers in the record.
async fn prove_problems(
    review: &mut Review,
    ctx: Arc<Ctx>,
    overrides: &PackageOverrides,
    runs: u32,
    deadline: Instant,
    permits: Arc<Semaphore>,
) {
    let (Some(model), Some(reader)) = (phases::api_model(&review.run_dir.root), review.reader())
    else {
        return;
    };
    let hints = phases::hints(overrides);
    let problems = ftreview_reports::analyze(&review.record, None)
        .results
        .findings;
    let targets: Vec<ReproTarget> = problems.iter().filter_map(ReproTarget::of).collect();
    if targets.is_empty() {
        return;
    }
    let task = review.events.start(Phase::Repro.name());
    let started = Instant::now();
    let total = targets.len();
    let context = Arc::new(ReproContext {
        ctx,
        record: review.record.clone(),
        reader,
        model,
        hints,
    });
    let proven = phases::reproduce(
        context,
        targets,
        ReproOptions {
            runs,
            deadline,
            stop_when_hung: true,
        },
        permits,
    )
    .await;
    let reproducers: std::collections::BTreeMap<_, _> = (proven.reruns.into_iter())
        .map(|(id, rerun)| (id, rerun.reproducer))
        .filter(|(_, reproducer)| reproducer.reproduced > 0)
        .collect();
    let summary = format!(
        "{} of {total} problems reproduced by a small reproducer ({} generated, {} runs)",
        reproducers.len(),
        proven.tried,
        proven.runs
    );
    task.finish(&summary);
    review.record.reproductions = reproducers;
    review.phase(PhaseRecord {
        phase: Phase::Repro,
        status: PhaseStatus::Passed,
        duration_secs: started.elapsed().as_secs_f64(),
        items_run: Some(proven.runs.into()),
        reports: 0,
        message: Some(summary),
        coverage: None,
        pytest: None,
    });
}

/// Which frames are the extension's, where its debug info is, and (for a reused build) which
/// compile-time tree this run's sources stand for.
fn read_reports_of(review: &mut Review, installed: &Installed, target: &Target) {
    let modules = installed
        .extensions
        .iter()
        .filter_map(|e| e.path.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    let classifier = Classifier::new(modules, vec![target.source.root.clone()]);
    let symbolizer = Symbolizer::new(
        installed
            .extensions
            .iter()
            .filter_map(|e| e.path.parent().map(Path::to_path_buf))
            .collect(),
    );
    let remap = (target.built.compiled_in != target.source.root)
        .then(|| (target.built.compiled_in.clone(), target.source.root.clone()));
    review.read_reports_with(ReportReader::new(classifier, symbolizer, remap));
}

/// With no instrumented module there is nothing for TSan to see: no time goes to the phases.
fn skip_instrumented_phases(review: &mut Review, options: &RunOptions, why: &str) {
    for phase in options.phases.in_order() {
        review.phase(skipped(phase, format!("not run: {why}")));
    }
}

fn skipped(phase: Phase, message: String) -> PhaseRecord {
    PhaseRecord {
        phase,
        status: PhaseStatus::Skipped,
        duration_secs: 0.0,
        items_run: None,
        reports: 0,
        message: Some(message),
        coverage: None,
        pytest: None,
    }
}

/// The chosen phases that can run: the suites need test paths.
fn schedulable(review: &mut Review, options: &RunOptions, suite_targets: &[String]) -> Vec<Phase> {
    let mut phases = options.phases.in_order();
    if suite_targets.is_empty() {
        for phase in phases.iter().filter(|p| p.is_test_suite()) {
            review.phase(skipped(*phase, "no test suite found (no tests/ or test/ directory, no pytest testpaths): set `pytest_args` for this package in the registry (--registry FILE)".into()));
        }
        phases.retain(|p| !p.is_test_suite());
    }
    phases
}

/// CPython's suppressions merged with the user's, safe entries only.
fn suppressions(
    review: &mut Review,
    interpreter: &Interpreter,
    options: &RunOptions,
) -> Option<PathBuf> {
    if interpreter.suppressions.is_empty() {
        review.events.warn("no CPython suppressions are known for this interpreter (Tools/tsan/suppressions_free_threading.txt of its sources): interpreter-internal races may show up; pass --suppressions FILE or use an interpreter built by `ftreview build-python`");
    }
    let sources: Vec<PathBuf> = interpreter
        .suppressions
        .iter()
        .chain(&options.user_suppressions)
        .cloned()
        .collect();
    // Written even when empty: the run directory shows exactly what TSan was given.
    match env::write_suppressions(&review.run_dir.suppressions(), &sources) {
        Ok((path, dropped)) => {
            if !dropped.is_empty() {
                review.events.note(&format!("suppressions: dropped {} race:/other entries that would hide extension races (kept race_top: and thread:; see {})", dropped.len(), path.display()));
            }
            match Suppressions::read(&path) {
                Ok(entries) => review.suppress_at_triage(entries),
                Err(err) => review.events.warn(&format!("suppressions: {err:#}")),
            }
            Some(path)
        }
        Err(err) => {
            review.events.warn(&format!("suppressions: {err:#}"));
            None
        }
    }
}

/// The GIL check, with the static pass (which needs no interpreter) beside it.
async fn gil_check_and_scan(
    review: &mut Review,
    ctx: &Ctx,
    installed: &Installed,
    source_root: &Path,
) -> Option<ScanReport> {
    let root = source_root.to_path_buf();
    let scan = tokio::task::spawn_blocking(move || {
        ftreview_static::scan_paths(&[root], &Default::default())
    });
    let modules: Vec<String> = installed
        .extensions
        .iter()
        .map(|e| e.module.clone())
        .collect();
    let task = review.events.start(Phase::GilCheck.name());
    let started = Instant::now();
    match phases::gil_check(ctx, &modules).await {
        Ok(gil) => {
            let verdict = match gil.reenabled_on_import {
                Some(true) => {
                    "importing the extension re-enables the GIL (no Py_mod_gil declaration)"
                }
                _ => "the GIL stays disabled on import",
            };
            let secs = task.finish(verdict);
            review.record.gil = gil;
            review.phase(PhaseRecord {
                items_run: Some(modules.len() as u64),
                ..skipped(Phase::GilCheck, verdict.into())
            });
            if let Some(last) = review.record.phases.last_mut() {
                last.status = PhaseStatus::Passed;
                last.duration_secs = secs;
            }
        }
        Err(err) => {
            task.finish("failed");
            review.fail(Phase::GilCheck, started, &err);
        }
    }
    match scan.await {
        Ok(Ok(report)) => Some(report),
        Ok(Err(err)) => {
            review
                .events
                .warn(&format!("the static scan failed: {err:#}"));
            None
        }
        Err(err) => {
            review
                .events
                .warn(&format!("the static scan panicked: {err}"));
            None
        }
    }
}

/// What the review concludes once every phase is done.
fn conclude(review: &mut Review) {
    let ran = |phase: &PhaseRecord| phase.items_run.unwrap_or(0) > 0;
    review.record.exercised.concurrent_phase_ran = review
        .record
        .phases
        .iter()
        .any(|p| p.phase.is_concurrent() && ran(p));
    let exercised = review
        .record
        .phases
        .iter()
        .any(|p| p.phase.is_instrumented() && ran(p));
    let reached_c = !review.record.exercised.c_callables.is_empty()
        || review.record.exercised.parallel_tests_reaching_extension > 0;
    if review.record.clean_unproven.is_none() && !exercised {
        review.record.clean_unproven = Some("no test or scenario ran under TSan (see the phases' messages), so there is nothing to call clean".into());
    } else if review.record.clean_unproven.is_none() && !reached_c {
        review.record.clean_unproven = Some("no callable that runs the extension's C code was called from several threads (the scenarios and parallel tests reached only Python code), so a clean result says nothing about the C code".into());
    }
}

/// How the suites run.
struct SuiteSettings {
    targets: Vec<String>,
    parallel_threads: usize,
    test_timeout: std::time::Duration,
    skip_benchmarks: bool,
    /// The plain suite records its calls into the extension for the stress phase.
    record_calls: bool,
}

/// The phases on their lanes.
struct Lanes {
    ctx: Arc<Ctx>,
    plan: Plan,
    fixed: FixedShares,
    permits: Arc<Semaphore>,
    events: Events,
    suite: SuiteSettings,
    stress: StressInputs,
    stress_options: phases::StressOptions,
}

impl Lanes {
    async fn run(self, sink: Sink) {
        let Lanes {
            ctx,
            plan,
            fixed,
            permits,
            events,
            suite,
            mut stress,
            stress_options,
        } = self;
        let stress_lane = plan.includes(Phase::Stress).then(|| {
            stress.deadline = plan.deadline(Phase::Stress, fixed);
            run_stress(
                ctx.clone(),
                stress,
                stress_options,
                permits.clone(),
                sink.clone(),
                events.clone(),
            )
        });
        let suites = SuiteLane {
            ctx: &ctx,
            plan: &plan,
            fixed,
            permits: &permits,
            events: &events,
            settings: &suite,
            sink: &sink,
        };
        match (stress_lane, plan.concurrent) {
            (Some(stress), true) => {
                tokio::join!(stress, suites.run());
            }
            (Some(stress), false) => {
                stress.await;
                suites.run().await;
            }
            (None, _) => suites.run().await,
        }
    }
}

/// The plain suite (which also tells which tests reach the extension), then the suite
/// under pytest-run-parallel on those tests, most extension calls first.
struct SuiteLane<'a> {
    ctx: &'a Arc<Ctx>,
    plan: &'a Plan,
    fixed: FixedShares,
    permits: &'a Arc<Semaphore>,
    events: &'a Events,
    settings: &'a SuiteSettings,
    sink: &'a Sink,
}

impl SuiteLane<'_> {
    async fn run(self) {
        self.run_suites().await;
        if self.plan.concurrent {
            self.permits.add_permits(1);
        }
    }

    async fn run_suites(&self) {
        let wanted = [Phase::Tests, Phase::ParallelTests];
        if !wanted.iter().any(|p| self.plan.includes(*p)) {
            return;
        }
        let layout = choose_layout(
            self.ctx,
            &LayoutRequest {
                targets: &self.settings.targets,
                no_addopts: false,
                deadline: self.plan.suites_end(self.fixed),
            },
        )
        .await;
        send(self.sink, Collected::Layout(layout.clone()));
        let mut selection = None;
        for phase in wanted.into_iter().filter(|p| self.plan.includes(*p)) {
            if self.ctx.runner.cancelled() {
                return;
            }
            let options = SuiteOptions {
                phase,
                parallel_threads: (phase == Phase::ParallelTests)
                    .then_some(self.settings.parallel_threads),
                targets: self.settings.targets.clone(),
                deadline: self.plan.deadline(phase, self.fixed),
                test_timeout: self.settings.test_timeout,
                skip_benchmarks: self.settings.skip_benchmarks,
                record_calls: phase == Phase::Tests && self.settings.record_calls,
                selection: selection.take(),
            };
            if options.deadline <= Instant::now() {
                send(self.sink, Collected::Phase(skipped(phase, "not run: the time budget ran out before this phase's turn (setup and the suite's collection probe took it; raise --budget)".into())));
                continue;
            }
            let task = self.events.start(phase.name());
            match run_suite(self.ctx, &options, &layout, self.sink).await {
                Ok(result) => {
                    task.finish("done");
                    selection = reaching_tests(&result.reach);
                }
                Err(err) => {
                    task.finish("failed");
                    send(
                        self.sink,
                        Collected::Phase(PhaseRecord {
                            status: PhaseStatus::Error,
                            ..skipped(phase, format!("{err:#}"))
                        }),
                    );
                }
            }
        }
    }
}

/// The tests that called into the extension, most calls first; the ones that never did are
/// left out. `None` when no test was seen calling (no counts: run them all).
fn reaching_tests(reach: &[(String, u64)]) -> Option<Selection> {
    if !reach.iter().any(|(_, calls)| *calls > 0) {
        return None;
    }
    let mut reaching: Vec<&(String, u64)> = reach.iter().filter(|(_, c)| *c > 0).collect();
    reaching.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Some(Selection {
        order: reaching.iter().map(|(id, _)| id.clone()).collect(),
        exclude: reach
            .iter()
            .filter(|(_, c)| *c == 0)
            .map(|(id, _)| id.clone())
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parallel_suite_runs_the_tests_that_reach_the_extension_most_calls_first() {
        let reach = [
            ("t.py::pure".to_string(), 0),
            ("t.py::few".to_string(), 3),
            ("t.py::many".to_string(), 300),
        ];
        let selection = reaching_tests(&reach).unwrap();
        assert_eq!(selection.order, ["t.py::many", "t.py::few"]);
        assert_eq!(selection.exclude, ["t.py::pure"]);
        assert!(reaching_tests(&[("t.py::a".into(), 0)]).is_none());
    }
}
