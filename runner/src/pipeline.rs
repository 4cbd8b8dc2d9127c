//! One target from spec to run record: fetch, venv, build, install, instrumentation check,
//! test requirements, static scan, GIL check, the instrumented phases, triage. Every step is a
//! phase with its time in the record; `run.json` is rewritten after each one, so a failure or
//! Ctrl-C leaves everything collected so far.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use ftreview_reports::model::{
    self as model, CommandRecord, Environment, Exercised, GilCheck, ModuleInstrumentation, Phase,
    PhaseRecord, PhaseStatus, RunRecord, TargetKind, RUN_SCHEMA_VERSION,
};
use ftreview_static::ScanReport;
use ftreview_toolchain::Interpreter;
use tokio::sync::{watch, Semaphore};
use tsan_parse::{Classifier, ClusterOptions, Report, Symbolizer, Triage};

use crate::extension::{self, Backend, BuiltWheel, Installed, ProjectInfo};
use crate::index::Index;
use crate::phases::{self, Ctx, PhaseOutcome, SuiteOptions};
use crate::process::Runner;
use crate::progress::Progress;
use crate::registry::{PackageOverrides, Registry};
use crate::rundir::RunDir;
use crate::stress::{self, StressOptions};
use crate::target::{self, Source, TargetSpec};
use crate::tsan_env;
use crate::venv::{expect_success, Venv};

/// Which instrumented phases to run.
#[derive(Debug, Clone, Copy)]
pub struct PhaseSet {
    pub tests: bool,
    pub parallel: bool,
    pub stress: bool,
}

/// Settings shared by every target of an invocation.
pub struct RunOptions {
    pub jobs: usize,
    pub parallel_threads: usize,
    /// Per test phase; the registry's `timeout` wins.
    pub timeout: Duration,
    pub stress: StressOptions,
    pub phases: PhaseSet,
    pub registry: Registry,
    pub user_suppressions: Vec<PathBuf>,
    /// Ignore the build cache.
    pub rebuild: bool,
}

/// The result of one target. What stopped it early and whether a clean result would mean
/// anything are in `record` (`stopped_by`, `clean_unproven`).
pub struct TargetRun {
    pub spec: TargetSpec,
    pub run_dir: PathBuf,
    pub record: RunRecord,
    /// The plan, results.json and SARIF, once written.
    pub reports: Vec<PathBuf>,
    /// The exit decision of the reports; `None` until they are written (or when writing
    /// them failed, see `report_error`).
    pub outcome: Option<ftreview_reports::Outcome>,
    /// Why the reports could not be written.
    pub report_error: Option<String>,
    /// Wall-clock time of the whole review (phases may overlap).
    pub wall_secs: f64,
}

/// Accumulates the record as phases finish.
struct Review<'a> {
    run_dir: RunDir,
    record: RunRecord,
    reports: Vec<Report>,
    classifier: Classifier,
    symbolizer: Option<Symbolizer>,
    runner: Runner,
    progress: &'a Progress,
}

impl Review<'_> {
    fn phase(&mut self, record: PhaseRecord) {
        self.record.phases.push(record);
        self.save();
    }

    fn absorb(&mut self, outcome: PhaseOutcome) {
        self.record.crashes.extend(outcome.crashes);
        self.record.hangs.extend(outcome.hangs);
        self.reports.extend(outcome.reports);
        self.phase(outcome.record);
    }

    /// Clusters what was collected and writes run.json and the findings file.
    fn save(&mut self) {
        self.record.triage = self.triage();
        self.record.environment.commands = command_records(&self.runner);
        if let Err(err) = self.record.save(&self.run_dir.root) {
            self.progress.note(&format!("warning: {err:#}"));
        }
    }

    fn triage(&self) -> Triage {
        tsan_parse::cluster(
            self.reports.iter().cloned(),
            &self.classifier,
            ClusterOptions::default(),
        )
    }

    /// A phase that ends the run: record it, and skip the rest.
    fn fail(&mut self, phase: Phase, started: Instant, err: &anyhow::Error) -> String {
        let message = format!("{err:#}");
        self.phase(PhaseRecord {
            phase,
            status: PhaseStatus::Error,
            duration_secs: started.elapsed().as_secs_f64(),
            items_run: None,
            reports: 0,
            message: Some(first_line(&message)),
        });
        format!("{phase}: {message}")
    }
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().to_string()
}

fn command_records(runner: &Runner) -> Vec<CommandRecord> {
    runner
        .history()
        .into_iter()
        .map(|step| CommandRecord {
            phase: step.phase,
            label: step.label,
            argv: step.argv,
            cwd: step.cwd,
            env: step.env.into_iter().collect::<BTreeMap<_, _>>(),
        })
        .collect()
}

fn empty_record(spec: &TargetSpec, interpreter: &Interpreter) -> RunRecord {
    let kind = match spec {
        TargetSpec::Pypi { .. } => TargetKind::Pypi,
        TargetSpec::Git { .. } => TargetKind::Git,
        TargetSpec::Dir { .. } | TargetSpec::Archive { .. } => TargetKind::Local,
    };
    let (name, version) = match spec {
        TargetSpec::Pypi { name, version } => (name.clone(), version.clone()),
        other => (other.slug(), None),
    };
    RunRecord {
        schema_version: RUN_SCHEMA_VERSION,
        target: model::Target {
            name,
            version,
            kind,
            spec: spec.to_string(),
            source_dir: PathBuf::new(),
            sdist_sha256: None,
            git_rev: None,
        },
        interpreter: model::Interpreter {
            version: interpreter.version.clone(),
            compiler: format!("{:?}", interpreter.compiler).to_lowercase(),
            cc: interpreter.cc.clone(),
            python: interpreter.python.clone(),
            source: format!(
                "{} ({})",
                interpreter.source.location, interpreter.source.checksum_note
            ),
        },
        environment: Environment {
            ftreview_version: env!("CARGO_PKG_VERSION").to_string(),
            tsan_options: String::new(),
            host: host_description(),
            commands: Vec::new(),
        },
        gil: GilCheck {
            reenabled_on_import: None,
            modules: Vec::new(),
            message: Some("not run".into()),
        },
        instrumentation: Vec::new(),
        phases: Vec::new(),
        triage: Triage::default(),
        static_scan: None,
        crashes: Vec::new(),
        hangs: Vec::new(),
        scenarios: Vec::new(),
        exercised: Exercised::default(),
        stopped_by: None,
        clean_unproven: None,
    }
}

fn host_description() -> String {
    let uname = std::process::Command::new("uname").arg("-srm").output();
    uname
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|_| std::env::consts::OS.to_string())
}

/// Reviews one target into `run_dir`. Never fails: problems end up in the record and `error`.
pub async fn review(
    spec: TargetSpec,
    run_dir: RunDir,
    interpreter: &Interpreter,
    options: &RunOptions,
    cancel: watch::Receiver<bool>,
    progress: &Progress,
) -> TargetRun {
    let runner = match Runner::new(&run_dir.journal(), cancel, interpreter.command_prefix()) {
        Ok(runner) => runner,
        Err(err) => {
            let mut record = empty_record(&spec, interpreter);
            record.stopped_by = Some(format!("{err:#}"));
            return TargetRun {
                spec,
                run_dir: run_dir.root,
                record,
                reports: Vec::new(),
                outcome: None,
                report_error: None,
                wall_secs: 0.0,
            };
        }
    };
    let mut review = Review {
        record: empty_record(&spec, interpreter),
        run_dir: run_dir.clone(),
        reports: Vec::new(),
        classifier: Classifier::default(),
        symbolizer: None,
        runner,
        progress,
    };
    let mut untrustworthy = None;
    let started = Instant::now();
    review.record.stopped_by = drive(&spec, interpreter, options, &mut review, &mut untrustworthy)
        .await
        .err();
    review.record.clean_unproven = untrustworthy;
    review.save();
    TargetRun {
        spec,
        run_dir: run_dir.root,
        record: review.record,
        reports: Vec::new(),
        outcome: None,
        report_error: None,
        wall_secs: started.elapsed().as_secs_f64(),
    }
}

/// Runs a setup phase: progress line, timing, failure recorded as the run's end.
macro_rules! setup_phase {
    ($review:expr, $phase:expr, $body:expr) => {{
        let task = $review.progress.start($phase.name());
        let started = Instant::now();
        match $body {
            Ok(value) => {
                let secs = task.finish("done");
                $review.phase(PhaseRecord {
                    phase: $phase,
                    status: PhaseStatus::Passed,
                    duration_secs: secs,
                    items_run: None,
                    reports: 0,
                    message: None,
                });
                value
            }
            Err(err) => {
                task.finish("failed");
                return Err($review.fail($phase, started, &err));
            }
        }
    }};
}

async fn drive(
    spec: &TargetSpec,
    interpreter: &Interpreter,
    options: &RunOptions,
    review: &mut Review<'_>,
    untrustworthy: &mut Option<String>,
) -> Result<(), String> {
    let run_dir = review.run_dir.clone();
    let runner = review.runner.clone();
    let cancelled = || {
        runner
            .cancelled()
            .then(|| "interrupted (Ctrl-C): partial results kept".to_string())
    };

    let source = setup_phase!(review, Phase::Fetch, fetch(spec, &run_dir).await);
    review.record.target.source_dir = source.root.clone();
    review.record.target.sdist_sha256 =
        matches!(spec, TargetSpec::Pypi { .. } | TargetSpec::Archive { .. })
            .then(|| source.sha256.clone());
    review.record.target.git_rev = source
        .origin
        .rsplit_once('@')
        .filter(|_| matches!(spec, TargetSpec::Git { .. }))
        .map(|(_, rev)| rev.to_string());
    if let Some(version) = &source.version {
        review.record.target.version = Some(version.clone());
    }
    let logs = run_dir.logs("setup").map_err(|e| e.to_string())?;
    if let Some(msg) = cancelled() {
        return Err(msg);
    }
    let venv = setup_phase!(
        review,
        Phase::Venv,
        Venv::create(interpreter, &run_dir.venv(), &logs, &runner).await
    );
    let info: ProjectInfo = setup_phase!(
        review,
        Phase::ProjectInfo,
        venv.helper(
            &run_dir.helper(),
            &[
                "project-info",
                &source.root.to_string_lossy(),
                source.name.as_deref().unwrap_or("")
            ],
            &logs.join("project-info.log"),
            &runner
        )
        .await
    );
    let mut overrides = options
        .registry
        .get(source.name.as_deref().unwrap_or(&review.record.target.name));
    let built = setup_phase!(
        review,
        Phase::Build,
        build(
            &venv,
            interpreter,
            &source,
            &info,
            &overrides,
            &run_dir,
            options.rebuild,
            &runner
        )
        .await
    );
    if built.cached {
        review.progress.note(&format!(
            "build: reused the cached wheel {} (same sources and interpreter)",
            built.wheel.display()
        ));
    }
    review.record.target.source_dir = built.source_root.clone();
    if overrides == PackageOverrides::default() {
        overrides = options
            .registry
            .get(&extension::wheel_dist_name(&built.wheel));
    }
    let requirements = test_requirements(&info, &overrides);
    let key = test_venv_key(interpreter, &built.wheel, &requirements).map_err(|e| e.to_string())?;
    let cached = if options.rebuild {
        None
    } else {
        cached_test_venv(&venv, &key)
    };
    let test_venv = match cached {
        Some(cached) => {
            let message = format!(
                "reused the cached test venv {} (same wheel, requirements and interpreter)",
                cached.root.display()
            );
            review.progress.note(&message);
            for phase in [Phase::Install, Phase::TestDeps] {
                review.phase(PhaseRecord {
                    phase,
                    status: PhaseStatus::Passed,
                    duration_secs: 0.0,
                    items_run: None,
                    reports: 0,
                    message: Some(message.clone()),
                });
            }
            cached
        }
        None => {
            let staging =
                venv_cache_dir(&key).with_extension(format!("staging-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&staging);
            let staged = setup_phase!(
                review,
                Phase::Install,
                install(interpreter, &staging, &built, &logs, &runner).await
            );
            let deps_note = setup_phase!(
                review,
                Phase::TestDeps,
                install_test_deps(&staged, &requirements, &logs, &runner).await
            );
            if let Some(note) = deps_note {
                review.progress.note(&format!("test-deps: {note}"));
                if let Some(last) = review.record.phases.last_mut() {
                    last.message = Some(note);
                }
            }
            publish_test_venv(staged, &venv_cache_dir(&key))
        }
    };
    let _ = std::os::unix::fs::symlink(&test_venv.root, run_dir.root.join("test-venv"));
    let dist = extension::wheel_dist_name(&built.wheel);
    let installed: Installed = match test_venv
        .helper(
            &run_dir.helper(),
            &["installed", &dist],
            &logs.join("installed.log"),
            &runner,
        )
        .await
    {
        Ok(installed) => installed,
        Err(err) => return Err(review.fail(Phase::Install, Instant::now(), &err)),
    };
    review.record.target.name = installed.name.clone();
    review.record.target.version = Some(installed.version.clone());
    review.classifier = classifier_for(&installed, &built.source_root);
    review.symbolizer = Some(Symbolizer::new(
        installed
            .extensions
            .iter()
            .filter_map(|e| e.path.parent().map(Path::to_path_buf))
            .collect(),
    ));
    review.record.instrumentation = instrumentation(&installed);
    let checked: Vec<(PathBuf, bool)> = review
        .record
        .instrumentation
        .iter()
        .map(|m| (m.path.clone(), m.instrumented))
        .collect();
    *untrustworthy = extension::instrumentation_problem(&installed, &checked);
    if let Some(problem) = untrustworthy.as_ref() {
        review.progress.note(&format!("warning: {problem}"));
    }
    if let Some(msg) = cancelled() {
        return Err(msg);
    }
    let venv = test_venv;

    // The static pass needs no interpreter: run it while the GIL check runs.
    let scan_root = built.source_root.clone();
    let scan = tokio::task::spawn_blocking(move || {
        ftreview_static::scan_paths(&[scan_root], &Default::default())
    });
    let suppressions = merged_suppressions(interpreter, options, &run_dir, review)?;
    let modules: Vec<String> = installed
        .extensions
        .iter()
        .map(|e| e.module.clone())
        .collect();
    let ctx = Arc::new(Ctx {
        runner: runner.clone(),
        run_dir: run_dir.clone(),
        interpreter: interpreter.clone(),
        venv,
        source_root: built.source_root.clone(),
        suppressions,
        overrides: overrides.clone(),
        watch_modules: installed.top_level.clone(),
    });
    review.record.environment.tsan_options = tsan_env::tsan_options(
        &run_dir.root.join("logs/<phase>"),
        ctx.suppressions.as_deref(),
        interpreter.symbolizer.as_deref(),
    );

    let task = review.progress.start("gil-check");
    let started = Instant::now();
    match phases::gil_check(&ctx, &modules).await {
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
                phase: Phase::GilCheck,
                status: PhaseStatus::Passed,
                duration_secs: secs,
                items_run: Some(modules.len() as u64),
                reports: 0,
                message: Some(verdict.into()),
            });
        }
        Err(err) => {
            task.finish("failed");
            review.fail(Phase::GilCheck, started, &err);
        }
    }
    let scan: Option<ScanReport> = match scan.await {
        Ok(Ok(report)) => Some(report),
        Ok(Err(err)) => {
            review
                .progress
                .note(&format!("warning: the static scan failed: {err:#}"));
            None
        }
        Err(err) => {
            review
                .progress
                .note(&format!("warning: the static scan panicked: {err}"));
            None
        }
    };
    review.record.static_scan = scan;
    review.save();
    if let Some(msg) = cancelled() {
        return Err(msg);
    }

    run_instrumented_phases(ctx, &info, &overrides, options, review, &installed).await;
    if untrustworthy.is_none() && !exercised_anything(&review.record) {
        *untrustworthy = Some("no test or scenario ran under TSan (see the phases' messages), so there is nothing to call clean".into());
    }
    cancelled().map_or(Ok(()), Err)
}

async fn fetch(spec: &TargetSpec, run_dir: &RunDir) -> anyhow::Result<Source> {
    let spec = spec.clone();
    let dest = run_dir.fetch();
    tokio::task::spawn_blocking(move || {
        let index = Index::from_pip_config();
        target::fetch(&spec, &index, &dest)
    })
    .await
    .context("the fetch task panicked")?
}

#[allow(clippy::too_many_arguments)]
async fn build(
    venv: &Venv,
    interpreter: &Interpreter,
    source: &Source,
    info: &ProjectInfo,
    overrides: &PackageOverrides,
    run_dir: &RunDir,
    rebuild: bool,
    runner: &Runner,
) -> anyhow::Result<BuiltWheel> {
    let backend = Backend::of(&info.build_backend);
    let backend_dir = run_dir.build().join("backend");
    let mut settings = extension::config_settings(backend, &backend_dir);
    settings.extend(overrides.config_settings.iter().flatten().cloned());
    // The build directory is part of the settings but not of what gets built.
    let key_settings: Vec<String> = settings
        .iter()
        .filter(|s| !s.starts_with("build-dir="))
        .cloned()
        .collect();
    if !rebuild {
        if let Some(cached) = extension::cached_build(source, interpreter, &key_settings) {
            return Ok(cached);
        }
    }
    extension::build_wheel(
        venv,
        interpreter,
        source,
        &settings,
        &key_settings,
        &run_dir.build(),
        runner,
    )
    .await
}

/// A fresh venv at `dir` with the built wheel (and its runtime dependencies) installed.
async fn install(
    interpreter: &Interpreter,
    dir: &Path,
    built: &BuiltWheel,
    logs: &Path,
    runner: &Runner,
) -> anyhow::Result<Venv> {
    let venv = Venv::create(interpreter, dir, logs, runner).await?;
    let step = venv
        .pip("install wheel", &logs.join("install.log"))
        .args(["install", "--force-reinstall"])
        .arg(&built.wheel);
    expect_success(
        runner.run(&step).await?,
        "cannot install the built wheel (or its runtime dependencies)",
    )?;
    Ok(venv)
}

/// The suite's requirements (unless the registry lists its own), the registry's extras, and
/// pytest with pytest-run-parallel.
fn test_requirements(info: &ProjectInfo, overrides: &PackageOverrides) -> Vec<String> {
    let mut requirements: Vec<String> = if overrides.only_listed_deps {
        Vec::new()
    } else {
        info.test_requirements.clone()
    };
    requirements.extend(overrides.deps.iter().flatten().cloned());
    requirements.extend(["pytest".to_string(), "pytest-run-parallel".to_string()]);
    requirements
}

/// Test venvs are cached by interpreter, wheel bytes and requirements: pip under TSan is slow
/// (minutes), and a rerun of the same version needs exactly the same environment.
fn test_venv_key(
    interpreter: &Interpreter,
    wheel: &Path,
    requirements: &[String],
) -> anyhow::Result<String> {
    let parts = [
        interpreter.python.display().to_string(),
        interpreter.version.clone(),
        target::sha256_file(wheel)?,
        requirements.join("\n"),
    ];
    Ok(target::sha256_str(&parts.join("\0"))[..24].to_string())
}

fn venv_cache_dir(key: &str) -> PathBuf {
    crate::venv::cache_root().join("venvs").join(key)
}

fn cached_test_venv(build_venv: &Venv, key: &str) -> Option<Venv> {
    let dir = venv_cache_dir(key);
    dir.join("bin/python")
        .exists()
        .then(|| build_venv.relocated(&dir))
}

/// Moves a staged venv to its cache place (our steps run `python -m …`, so no script's
/// shebang needs the old path). If another run published the same key first, use that one.
fn publish_test_venv(staged: Venv, dest: &Path) -> Venv {
    if let Some(parent) = dest.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    if std::fs::rename(&staged.root, dest).is_err() {
        if dest.join("bin/python").exists() {
            let _ = std::fs::remove_dir_all(&staged.root);
        } else {
            return staged;
        }
    }
    staged.relocated(dest)
}

fn instrumentation(installed: &Installed) -> Vec<ModuleInstrumentation> {
    installed
        .extensions
        .iter()
        .map(|e| ModuleInstrumentation {
            path: e.path.clone(),
            instrumented: extension::is_instrumented(&e.path).unwrap_or(false),
        })
        .collect()
}

/// Extension frames are those in the built modules or under the kept source tree.
fn classifier_for(installed: &Installed, source_root: &Path) -> Classifier {
    let patterns = installed
        .extensions
        .iter()
        .filter_map(|e| e.path.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    Classifier::new(patterns, vec![source_root.to_path_buf()])
}

/// Installs the suite's requirements with pytest and pytest-run-parallel. A requirement that
/// cannot be installed (no wheel for this interpreter, fails to build) is skipped with a note
/// rather than ending the run: most suites still run without a plugin or two.
async fn install_test_deps(
    venv: &Venv,
    requirements: &[String],
    logs: &Path,
    runner: &Runner,
) -> anyhow::Result<Option<String>> {
    let mut remaining = requirements.to_vec();
    let mut skipped = Vec::new();
    // pip names what broke (a build failure, no version for this interpreter): drop it, retry.
    for attempt in 0..4 {
        let log = logs.join(format!("test-deps-{attempt}.log"));
        let step = venv
            .pip("install test requirements", &log)
            .arg("install")
            .args(remaining.iter());
        if runner.run(&step).await?.termination.success() {
            return Ok((!skipped.is_empty()).then(|| {
                format!(
                    "skipped test requirements that would not install: {}",
                    skipped.join(", ")
                )
            }));
        }
        let failing = failing_requirements(&std::fs::read_to_string(&log).unwrap_or_default());
        let (dropped, kept): (Vec<String>, Vec<String>) = remaining
            .into_iter()
            .partition(|r| failing.contains(&requirement_name(r)));
        if dropped.is_empty()
            || dropped.iter().any(|r| {
                matches!(
                    requirement_name(r).as_str(),
                    "pytest" | "pytest-run-parallel"
                )
            })
        {
            anyhow::bail!(
                "cannot install the test requirements for the TSan interpreter (see {})",
                log.display()
            );
        }
        skipped.extend(dropped);
        remaining = kept;
    }
    anyhow::bail!(
        "cannot install the test requirements for the TSan interpreter (see {})",
        logs.display()
    )
}

/// Normalized project name of a requirement string (`pytest-cov==6.1.0; …` → `pytest-cov`).
fn requirement_name(requirement: &str) -> String {
    let end = requirement
        .find(|c: char| !(c.is_ascii_alphanumeric() || "-_.".contains(c)))
        .unwrap_or(requirement.len());
    crate::index::normalize(&requirement[..end])
}

/// Projects pip says it could not build or find.
fn failing_requirements(pip_log: &str) -> Vec<String> {
    let patterns = [
        r"Failed to build ([A-Za-z0-9._-]+)",
        r"Failed building wheel for ([A-Za-z0-9._-]+)",
        r"No matching distribution found for ([A-Za-z0-9._-]+)",
        r"Could not find a version that satisfies the requirement ([A-Za-z0-9._-]+)",
        r"Could not build wheels for ([A-Za-z0-9._-]+)",
    ];
    let mut names = Vec::new();
    for pattern in patterns {
        let re = regex::Regex::new(pattern).expect("static regex");
        names.extend(
            re.captures_iter(pip_log)
                .map(|c| crate::index::normalize(&c[1])),
        );
    }
    names.sort();
    names.dedup();
    names
}

fn merged_suppressions(
    interpreter: &Interpreter,
    options: &RunOptions,
    run_dir: &RunDir,
    review: &mut Review<'_>,
) -> Result<Option<PathBuf>, String> {
    let sources: Vec<PathBuf> = interpreter
        .suppressions
        .iter()
        .chain(options.user_suppressions.iter())
        .cloned()
        .collect();
    if interpreter.suppressions.is_empty() {
        review.progress.note("warning: no CPython suppressions are known for this interpreter (Tools/tsan/suppressions_free_threading.txt of its sources): interpreter-internal races may show up; pass --suppressions FILE or use an interpreter built by `ftreview build-python`");
    }
    // Written even when empty: the run directory shows exactly what TSan was given.
    match tsan_env::write_suppressions(&run_dir.suppressions(), &sources) {
        Ok((path, dropped)) => {
            if !dropped.is_empty() {
                review.progress.note(&format!("suppressions: dropped {} race:/other entries that would hide extension races (kept race_top: and thread:; see {})", dropped.len(), path.display()));
            }
            Ok(Some(path))
        }
        Err(err) => Err(format!("suppressions: {err:#}")),
    }
}

/// The suite as is, the suite under pytest-run-parallel and the stress scenarios, at most
/// `jobs` processes at a time.
async fn run_instrumented_phases(
    ctx: Arc<Ctx>,
    info: &ProjectInfo,
    overrides: &PackageOverrides,
    options: &RunOptions,
    review: &mut Review<'_>,
    installed: &Installed,
) {
    let permits = Arc::new(Semaphore::new(options.jobs.max(1)));
    let timeout = overrides
        .timeout
        .map(Duration::from_secs)
        .unwrap_or(options.timeout);
    let targets = overrides
        .pytest_args
        .clone()
        .unwrap_or_else(|| info.testpaths.clone());
    let mut suites = Vec::new();
    if options.phases.tests {
        suites.push(SuiteOptions {
            phase: Phase::Tests,
            parallel_threads: None,
            timeout,
            targets: targets.clone(),
        });
    }
    if options.phases.parallel {
        let threads = overrides
            .parallel_threads
            .unwrap_or(options.parallel_threads);
        suites.push(SuiteOptions {
            phase: Phase::ParallelTests,
            parallel_threads: Some(threads),
            timeout,
            targets,
        });
    }
    let mut handles = Vec::new();
    for suite in suites {
        let (ctx, permits, progress) = (ctx.clone(), permits.clone(), review.progress.clone());
        handles.push(tokio::spawn(async move {
            let _permit = permits.acquire_owned().await;
            let task = progress.start(suite.phase.name());
            let outcome = phases::run_suite(&ctx, &suite).await;
            let outcome = outcome.unwrap_or_else(|err| {
                PhaseOutcome::failed(suite.phase, PhaseStatus::Error, 0.0, format!("{err:#}"))
            });
            task.finish(&phase_summary(&outcome.record));
            outcome
        }));
    }
    let stress_handle = options.phases.stress.then(|| {
        let (ctx, permits, progress, installed) = (
            ctx.clone(),
            permits.clone(),
            review.progress.clone(),
            installed.clone(),
        );
        let (stress_options, hints, scan) = (
            options.stress.clone(),
            overrides.stress.clone(),
            review.record.static_scan.clone(),
        );
        tokio::spawn(async move {
            stress::run_stress(
                ctx,
                &installed,
                &stress_options,
                hints,
                scan.as_ref(),
                permits,
                &progress,
            )
            .await
        })
    });
    for handle in handles {
        match handle.await {
            Ok(outcome) => review.absorb(outcome),
            Err(err) => review
                .progress
                .note(&format!("warning: a test phase panicked: {err}")),
        }
    }
    if let Some(handle) = stress_handle {
        match handle.await {
            Ok(stress) => {
                review.record.scenarios = stress.scenarios;
                review
                    .record
                    .exercised
                    .python_callables
                    .extend(stress.exercised);
                review.absorb(stress.outcome);
            }
            Err(err) => review
                .progress
                .note(&format!("warning: the stress phase panicked: {err}")),
        }
    }
    review.record.exercised.concurrent_phase_ran = review
        .record
        .phases
        .iter()
        .any(|p| p.phase.is_concurrent() && p.items_run.unwrap_or(0) > 0);
    for report in &mut review.reports {
        if let Some(symbolizer) = &review.symbolizer {
            symbolizer.symbolize_report(report);
        }
    }
    write_findings(&review.run_dir, &review.reports);
}

/// Whether any test or scenario ran to completion under TSan.
fn exercised_anything(record: &RunRecord) -> bool {
    record
        .phases
        .iter()
        .any(|p| p.phase.is_instrumented() && p.items_run.unwrap_or(0) > 0)
}

fn phase_summary(record: &PhaseRecord) -> String {
    let items = record
        .items_run
        .map(|n| format!("{n} items, "))
        .unwrap_or_default();
    let message = record
        .message
        .as_deref()
        .map(|m| format!(" ({m})"))
        .unwrap_or_default();
    format!(
        "{:?}: {items}{} TSan reports{message}",
        record.status, record.reports
    )
    .to_lowercase()
}

/// `findings/reports.jsonl`: every parsed report with its origin, one per line.
fn write_findings(run_dir: &RunDir, reports: &[Report]) {
    let Ok(dir) = run_dir.findings() else { return };
    let lines: Vec<String> = reports
        .iter()
        .filter_map(|r| serde_json::to_string(r).ok())
        .collect();
    let _ = std::fs::write(dir.join("reports.jsonl"), lines.join("\n") + "\n");
}

/// Counts for the summary line.
pub fn finding_counts(record: &RunRecord) -> (usize, usize, usize) {
    // Deadly signals are clustered too; they count as crashes, not races.
    let races = record
        .triage
        .root_causes
        .iter()
        .filter(|c| c.representative.crash.is_none())
        .count();
    (races, record.crashes.len(), record.hangs.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_requirements_pip_could_not_install() {
        let log = "  error: subprocess-exited-with-error\nERROR: Failed building wheel for cffi\nFailed to build cffi\nERROR: No matching distribution found for Pytest_Codspeed==4.2.0\n";
        assert_eq!(failing_requirements(log), ["cffi", "pytest-codspeed"]);
        assert_eq!(
            requirement_name("cffi<2.0.0;python_version<\"3.14\""),
            "cffi"
        );
        assert_eq!(requirement_name("Pytest_Cov==6.1.0"), "pytest-cov");
    }
}
