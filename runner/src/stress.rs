//! The stress phase: generated multithreaded scenarios, each a standalone script run in its own
//! process and log directory (a crash ends one scenario, not the phase), at most `jobs` at once,
//! within a time budget. Scenario scripts write their outcome JSON to `$FTREVIEW_OUTCOME`.

use std::fs;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ftreview_reports::model::{
    CrashRecord, HangRecord, Origin, PhaseRecord, PhaseStatus, Reproducer, ScenarioOutcome,
    ScenarioRecord,
};
use ftreview_static::ScanReport;
use serde::Deserialize;
use tokio::sync::Semaphore;

use crate::attribution::{self, faulthandler_dump};
use crate::extension::Installed;
use crate::phases::{deadly_reports, Ctx, PhaseOutcome};
use crate::process::{signal_name, Step, Termination};
use crate::progress::Progress;

/// Settings of the stress phase.
#[derive(Debug, Clone)]
pub struct StressOptions {
    /// Wall-clock budget of the whole phase.
    pub budget: Duration,
    /// Timeout of one scenario process.
    pub scenario_timeout: Duration,
    pub seed: u64,
    pub threads: usize,
}

/// One scenario to run.
#[derive(Debug, Clone)]
pub struct ScenarioSpec {
    pub name: String,
    pub kind: String,
    pub script: String,
    /// Python callables it calls from several threads (`Type.method`, `function`).
    pub callables: Vec<String>,
}

/// What the phase produced.
pub struct StressResult {
    pub outcome: PhaseOutcome,
    pub scenarios: Vec<ScenarioRecord>,
    pub exercised: Vec<String>,
}

/// What a scenario script reports about itself.
#[derive(Debug, Default, Deserialize)]
struct ScriptOutcome {
    #[serde(default)]
    worker_exceptions: u64,
    #[serde(default)]
    anomalies: Vec<String>,
    #[serde(default)]
    error: Option<String>,
}

/// Generates the scenarios and runs them.
pub async fn run_stress(
    ctx: Arc<Ctx>,
    installed: &Installed,
    options: &StressOptions,
    hints: Option<serde_yaml_ng::Value>,
    scan: Option<&ScanReport>,
    permits: Arc<Semaphore>,
    progress: &Progress,
) -> StressResult {
    let task = progress.start("stress");
    let started = Instant::now();
    let scenarios = match generate(&ctx, installed, options, hints, scan).await {
        Ok(scenarios) => scenarios,
        Err(err) => {
            let message = format!("{err:#}");
            task.finish(&format!("skipped: {message}"));
            let outcome = PhaseOutcome::failed(
                "stress",
                PhaseStatus::Skipped,
                started.elapsed().as_secs_f64(),
                message,
            );
            return StressResult {
                outcome,
                scenarios: Vec::new(),
                exercised: Vec::new(),
            };
        }
    };
    let deadline = started + options.budget;
    let mut set = tokio::task::JoinSet::new();
    for scenario in scenarios {
        let (ctx, permits, options) = (ctx.clone(), permits.clone(), options.clone());
        set.spawn(async move {
            let _permit = permits.acquire_owned().await;
            if Instant::now() >= deadline || ctx.runner.cancelled() {
                return None;
            }
            Some(run_scenario(&ctx, &scenario, &options).await)
        });
    }
    let mut results = Vec::new();
    while let Some(joined) = set.join_next().await {
        results.push(
            joined.unwrap_or_else(|err| {
                Some(Err(anyhow::anyhow!("the scenario task panicked: {err}")))
            }),
        );
    }
    let mut outcome = PhaseOutcome::failed("stress", PhaseStatus::Passed, 0.0, String::new());
    let mut records = Vec::new();
    let mut exercised = Vec::new();
    let mut skipped = 0;
    for result in results {
        match result {
            Some(Ok(run)) => {
                exercised.extend(run.callables);
                outcome.reports.extend(run.reports);
                outcome.crashes.extend(run.crashes);
                outcome.hangs.extend(run.hangs);
                records.push(run.record);
            }
            Some(Err(err)) => progress.note(&format!("warning: a scenario could not run: {err:#}")),
            None => skipped += 1,
        }
    }
    let ran = records.len() as u64;
    outcome.record = PhaseRecord {
        name: "stress".into(),
        status: if outcome.crashes.is_empty() && outcome.hangs.is_empty() {
            PhaseStatus::Passed
        } else {
            PhaseStatus::Crashed
        },
        duration_secs: started.elapsed().as_secs_f64(),
        items_run: Some(ran),
        reports: outcome.reports.len() as u64,
        message: (skipped > 0).then(|| {
            format!(
                "{skipped} scenarios not run: the {} s budget ran out",
                options.budget.as_secs()
            )
        }),
    };
    task.finish(&format!(
        "{ran} scenarios, {} TSan reports, {} crashes",
        outcome.reports.len(),
        outcome.crashes.len()
    ));
    exercised.sort();
    exercised.dedup();
    StressResult {
        outcome,
        scenarios: records,
        exercised,
    }
}

struct ScenarioRun {
    record: ScenarioRecord,
    reports: Vec<tsan_parse::Report>,
    crashes: Vec<CrashRecord>,
    hangs: Vec<HangRecord>,
    callables: Vec<String>,
}

async fn run_scenario(
    ctx: &Ctx,
    scenario: &ScenarioSpec,
    options: &StressOptions,
) -> anyhow::Result<ScenarioRun> {
    let dir = ctx.run_dir.logs(&format!("stress/{}", scenario.name))?;
    let script = dir.join("script.py");
    fs::write(&script, &scenario.script)?;
    let outcome_path = dir.join("outcome.json");
    let step = Step::new(
        format!("stress {}", scenario.name),
        &ctx.venv.python,
        &dir,
        &dir.join("output.log"),
    )
    .arg(&script)
    .envs(&ctx.tsan_env(&dir))
    .env("FTREVIEW_OUTCOME", outcome_path.display().to_string())
    .timeout(options.scenario_timeout);
    let result = ctx.runner.run(&step).await?;
    let mut reports = attribution::read_reports(&dir);
    attribution::attribute_all(&mut reports, "stress", &scenario.name);
    let reproducer = Reproducer {
        command: result.command.clone(),
        cwd: dir.clone(),
        script: Some(script.clone()),
    };
    let output = fs::read_to_string(&result.log).unwrap_or_default();
    let origin = Origin {
        phase: "stress".into(),
        item: Some(scenario.name.clone()),
    };
    let mut crashes = deadly_reports(&reports, "stress", &reproducer);
    let mut hangs = Vec::new();
    let script_outcome: ScriptOutcome = fs::read_to_string(&outcome_path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    let outcome = match result.termination {
        Termination::TimedOut => {
            hangs.push(HangRecord {
                origin,
                timeout_secs: options.scenario_timeout.as_secs_f64(),
                python_stacks: faulthandler_dump(&output),
                native_stacks: result
                    .hang_stacks
                    .as_ref()
                    .and_then(|p| fs::read_to_string(p).ok()),
                reproducer: Some(reproducer.clone()),
            });
            ScenarioOutcome::TimedOut
        }
        Termination::Signaled { signal } => {
            if crashes.is_empty() {
                crashes.push(CrashRecord {
                    origin,
                    kind: signal_name(signal).into(),
                    signal: Some(signal),
                    python_stack: None,
                    native_stack: None,
                    reproducer: Some(reproducer.clone()),
                });
            }
            ScenarioOutcome::Crashed
        }
        _ if !crashes.is_empty() => ScenarioOutcome::Crashed,
        Termination::Exited { code: 0 } if script_outcome.error.is_none() => {
            ScenarioOutcome::Completed
        }
        _ => ScenarioOutcome::Error,
    };
    for crash in &mut crashes {
        crash.python_stack = crash
            .python_stack
            .take()
            .or_else(|| faulthandler_dump(&output));
    }
    let record = ScenarioRecord {
        name: scenario.name.clone(),
        kind: scenario.kind.clone(),
        script,
        reproducer,
        outcome,
        reports: reports.len() as u64,
        worker_exceptions: script_outcome.worker_exceptions,
        anomalies: script_outcome.anomalies,
    };
    let callables = if outcome == ScenarioOutcome::Error {
        Vec::new()
    } else {
        scenario.callables.clone()
    };
    Ok(ScenarioRun {
        record,
        reports,
        crashes,
        hangs,
        callables,
    })
}

/// The scenarios for this extension (the stress-tests crate generates them).
async fn generate(
    _ctx: &Ctx,
    _installed: &Installed,
    _options: &StressOptions,
    _hints: Option<serde_yaml_ng::Value>,
    _scan: Option<&ScanReport>,
) -> anyhow::Result<Vec<ScenarioSpec>> {
    anyhow::bail!("the stress scenario generator (ftreview-stress) is not available in this build")
}
