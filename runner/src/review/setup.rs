//! The setup stages: fetch the target, read its packaging, build it with TSan, and make the
//! test environment. Each is a phase of the record; a failure ends the review with its reason.

use std::future::Future;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use ftreview_reports::model::{
    self as model, Environment, Exercised, GilCheck, Phase, PhaseRecord, PhaseStatus, RunRecord,
    TargetKind, RUN_SCHEMA_VERSION,
};
use ftreview_toolchain::Interpreter;
use tsan_parse::Triage;

use super::record::Review;
use super::RunOptions;
use crate::build::{self, BuildFailed, BuildRequest, BuiltWheel, ProjectInfo};
use crate::env::{self, Installed, Installer, TestEnv, TestEnvRequest, Uv, Venv};
use crate::registry::PackageOverrides;
use crate::target::{self, Index, Source, TargetSpec};

/// Runs one setup stage as a phase: progress, timing, and a failure that ends the run.
async fn stage<T>(
    review: &mut Review,
    phase: Phase,
    work: impl Future<Output = anyhow::Result<T>>,
) -> Result<T, String> {
    let task = review.events.start(phase.name());
    let started = Instant::now();
    match work.await {
        Ok(value) => {
            let secs = task.finish("done");
            review.phase(passed(phase, secs, None));
            Ok(value)
        }
        Err(err) => {
            task.finish("failed");
            Err(review.fail(phase, started, &err))
        }
    }
}

fn passed(phase: Phase, secs: f64, message: Option<String>) -> PhaseRecord {
    PhaseRecord {
        phase,
        status: PhaseStatus::Passed,
        duration_secs: secs,
        items_run: None,
        reports: 0,
        message,
        coverage: None,
        pytest: None,
    }
}

pub(super) fn check_not_cancelled(review: &Review) -> Result<(), String> {
    if review.runner.cancelled() {
        Err("interrupted (Ctrl-C): partial results kept".into())
    } else {
        Ok(())
    }
}

/// The kept source tree, in the run directory.
pub(super) async fn fetch(review: &mut Review, spec: &TargetSpec) -> Result<Source, String> {
    let dest = review.run_dir.fetch();
    let owned = spec.clone();
    let fetching = async move {
        tokio::task::spawn_blocking(move || target::fetch(&owned, &Index::from_pip_config(), &dest))
            .await
            .context("the fetch task panicked")?
    };
    let source = stage(review, Phase::Fetch, fetching).await?;
    let target = &mut review.record.target;
    target.source_dir = source.root.clone();
    target.sdist_sha256 = matches!(spec, TargetSpec::Pypi { .. } | TargetSpec::Archive { .. })
        .then(|| source.sha256.clone());
    target.git_rev = source
        .origin
        .rsplit_once('@')
        .filter(|_| matches!(spec, TargetSpec::Git { .. }))
        .map(|(_, rev)| rev.to_string());
    if let Some(version) = &source.version {
        target.version = Some(version.clone());
    }
    check_not_cancelled(review)?;
    Ok(source)
}

/// The build venv and what the project's packaging files say.
pub(crate) struct Project {
    pub venv: Venv,
    pub info: ProjectInfo,
}

pub(super) async fn project(
    review: &mut Review,
    interpreter: &Interpreter,
    source: &Source,
) -> Result<Project, String> {
    let logs = review.run_dir.logs("setup").map_err(|e| e.to_string())?;
    let runner = review.runner.clone();
    let venv_dir = review.run_dir.venv();
    let venv = stage(
        review,
        Phase::Venv,
        Venv::create(interpreter, &venv_dir, &logs, &runner),
    )
    .await?;
    let helper = review.run_dir.helper();
    let root = source.root.to_string_lossy().into_owned();
    let name = source.name.clone().unwrap_or_default();
    let info = stage(
        review,
        Phase::ProjectInfo,
        venv.helper(
            &helper,
            &["project-info", &root, &name],
            &logs.join("project-info.log"),
            &runner,
        ),
    )
    .await?;
    Ok(Project { venv, info })
}

/// The registry's overrides for the target, by its distribution name.
pub(super) fn overrides(options: &RunOptions, name: &str) -> PackageOverrides {
    options.registry.get(name)
}

pub(super) async fn build(
    review: &mut Review,
    interpreter: &Interpreter,
    source: &Source,
    project: &Project,
    options: &RunOptions,
) -> Result<(BuiltWheel, PackageOverrides), String> {
    let by_source = overrides(
        options,
        source.name.as_deref().unwrap_or(&review.record.target.name),
    );
    let out_dir = review.run_dir.build();
    let runner = review.runner.clone();
    let request = BuildRequest {
        venv: &project.venv,
        interpreter,
        source,
        build_backend: &project.info.build_backend,
        build_requires: &project.info.build_requires,
        extra_settings: by_source.config_settings.as_deref().unwrap_or_default(),
        out_dir: &out_dir,
        rebuild: options.rebuild,
        runner: &runner,
    };
    let mut failed = None;
    let building = async {
        build::build_extension(&request).await.inspect_err(|err| {
            failed = err.downcast_ref::<BuildFailed>().map(|f| f.record.clone());
        })
    };
    let result = stage(review, Phase::Build, building).await;
    if let Some(record) = failed {
        review.record.build = Some(record);
        review.save();
    }
    let built = result?;
    report_build(review, &built);
    if built.cached {
        review.events.note(&format!(
            "build: reused the cached wheel {} (same sources and interpreter)",
            built.wheel.display()
        ));
    }
    // A local tree has no name until its wheel does.
    let overrides = if by_source == PackageOverrides::default() {
        self::overrides(options, &build::wheel_dist_name(&built.wheel))
    } else {
        by_source
    };
    Ok((built, overrides))
}

/// Records what the build found out and says it: the tools supplied, the retry with the
/// project's switch, and the modules the wheel lacks with the log lines telling why.
fn report_build(review: &mut Review, built: &BuiltWheel) {
    let record = &built.record;
    let mut notes: Vec<String> = (record.supplied_tools.iter())
        .map(|t| {
            format!(
                "supplied {} from PyPI ({} runs it; not on PATH)",
                t.package, t.used_at
            )
        })
        .collect();
    if let Some(retry) = &record.retry {
        let outcome = match (&retry.error, retry.built_modules.as_slice()) {
            (Some(error), _) => format!("failed: {error}"),
            (None, []) => "built no extension module".into(),
            (None, built) => format!("built {}", built.join(", ")),
        };
        notes.push(format!(
            "rebuilt with {}={} ({} reads it to require the C extension): {outcome}",
            retry.variable, retry.value, retry.read_at
        ));
    }
    for warning in &built.warnings {
        review.events.warn(&format!("build: {warning}"));
    }
    for note in &notes {
        review.events.note(&format!("build: {note}"));
    }
    let explained = build::explain(record);
    if let Some(why) = &explained {
        review.events.warn(&format!("build: {why}"));
    }
    let message = notes.into_iter().chain(explained).collect::<Vec<_>>();
    if let Some(phase) = (review.record.phases.iter_mut().rev()).find(|p| p.phase == Phase::Build) {
        phase.message = (!message.is_empty()).then(|| message.join("; "));
    }
    review.record.build = Some(record.clone());
    review.save();
}

/// The suite's requirements (unless the registry lists its own) and the registry's extras.
fn test_requirements(info: &ProjectInfo, overrides: &PackageOverrides) -> Vec<String> {
    let mut requirements: Vec<String> = if overrides.only_listed_deps {
        Vec::new()
    } else {
        info.test_requirements.clone()
    };
    requirements.extend(overrides.deps.iter().flatten().cloned());
    requirements
}

/// The test venv (cached or new) and what the wheel installed in it.
pub(crate) struct Prepared {
    pub test_env: TestEnv,
    pub installed: Installed,
}

pub(super) async fn environment(
    review: &mut Review,
    interpreter: &Interpreter,
    project: &Project,
    built: &BuiltWheel,
    overrides: &PackageOverrides,
    options: &RunOptions,
) -> Result<Prepared, String> {
    let logs = review.run_dir.logs("setup").map_err(|e| e.to_string())?;
    let index = Index::from_pip_config();
    let uv = match options.installer {
        Installer::Pip => None,
        Installer::Uv => Uv::locate(&index)
            .inspect_err(|err| {
                review.events.warn(&format!("uv is unavailable ({err:#}): pip under the TSan interpreter installs the test environment instead (slow)"));
            })
            .ok(),
    };
    let runner = review.runner.clone();
    let request = TestEnvRequest {
        interpreter,
        build_venv: &project.venv,
        wheel: &built.wheel,
        requirements: test_requirements(&project.info, overrides),
        logs: &logs,
        uv: uv.as_ref(),
        index: &index,
        runner: &runner,
    };
    let cached = if options.rebuild {
        None
    } else {
        env::cached_test_env(&request).map_err(|e| e.to_string())?
    };
    let test_env = match cached {
        Some(cached) => {
            // The reuse, then what the install that made the venv noted.
            let note = cached.notes.join("; ");
            for phase in [Phase::Install, Phase::TestDeps] {
                review.phase(passed(phase, 0.0, Some(note.clone())));
            }
            cached
        }
        None => {
            let mut staged = stage(review, Phase::Install, env::install_wheel(&request)).await?;
            stage(
                review,
                Phase::TestDeps,
                env::install_requirements(&mut staged, &request),
            )
            .await?;
            let note = staged.notes.join("; ");
            if let Some(last) = review.record.phases.last_mut() {
                last.message = (!note.is_empty()).then(|| note.clone());
            }
            review.events.note(&format!("test-deps: {note}"));
            env::publish(staged, &request).map_err(|e| e.to_string())?
        }
    };
    let _ = std::os::unix::fs::symlink(&test_env.venv.root, review.run_dir.root.join("test-venv"));
    let installed = installed(review, &test_env.venv, built).await?;
    Ok(Prepared {
        test_env,
        installed,
    })
}

async fn installed(
    review: &mut Review,
    venv: &Venv,
    built: &BuiltWheel,
) -> Result<Installed, String> {
    let logs = review.run_dir.logs("setup").map_err(|e| e.to_string())?;
    let dist = build::wheel_dist_name(&built.wheel);
    let found: anyhow::Result<Installed> = venv
        .helper(
            &review.run_dir.helper(),
            &["installed", &dist],
            &logs.join("installed.log"),
            &review.runner,
        )
        .await;
    let installed = found.map_err(|err| review.fail(Phase::Install, Instant::now(), &err))?;
    review.record.target.name = installed.name.clone();
    review.record.target.version = Some(installed.version.clone());
    review.record.instrumentation = env::instrumentation(&installed);
    let problem = env::instrumentation_problem(&installed, &review.record.instrumentation);
    let why = review.record.build.as_ref().and_then(build::explain);
    review.record.clean_unproven = problem.map(|problem| match why {
        Some(why) if installed.extensions.is_empty() => nothing_to_check(&installed.name, &why),
        _ => problem,
    });
    if let Some(problem) = &review.record.clean_unproven {
        review.events.warn(problem);
    }
    Ok(installed)
}

/// A wheel without extension modules, with the build's reason.
fn nothing_to_check(name: &str, why: &str) -> String {
    format!("{name} installed no extension module, so there is nothing for TSan to check: {why}")
}

pub(super) fn empty_record(spec: &TargetSpec, interpreter: &Interpreter) -> RunRecord {
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
        run_dir: PathBuf::new(),
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
        schedule: None,
        test_layout: None,
        reproductions: Default::default(),
        single_threaded: Vec::new(),
        build: None,
    }
}

fn host_description() -> String {
    let uname = std::process::Command::new("uname").arg("-srm").output();
    uname
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|_| std::env::consts::OS.to_string())
}
