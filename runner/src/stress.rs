//! The stress phase: generated multithreaded scenarios, each a standalone script run in its own
//! process and log directory (a crash ends one scenario, not the phase), at most `jobs` at once,
//! within a time budget. Scenario scripts write their outcome JSON to `$FTREVIEW_OUTCOME`.

use std::fs;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use ftreview_reports::model::{
    CrashRecord, HangRecord, Origin, Phase, PhaseRecord, PhaseStatus, Reproducer, ScenarioOutcome,
    ScenarioRecord,
};
use ftreview_static::{ScanReport, Severity};
use ftreview_stress::{ApiModel, GenConfig, Hints, OutcomeStatus, ScenarioKind};
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
    let (model, config) = match prepare(&ctx, installed, options, hints, scan).await {
        Ok(prepared) => prepared,
        Err(err) => {
            let message = format!("{err:#}");
            task.finish(&format!("skipped: {message}"));
            let outcome = PhaseOutcome::failed(
                Phase::Stress,
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
    let mut results = Vec::new();
    // Rounds until the budget is spent: a round that finished early leaves time for reseeded
    // reruns, which is how rare interleavings and once-per-process races get caught.
    for round in 0.. {
        let round_started = Instant::now();
        let mut set = tokio::task::JoinSet::new();
        for scenario in scenarios_of(&model, &config, round) {
            let (ctx, permits, options) = (ctx.clone(), permits.clone(), options.clone());
            set.spawn(async move {
                let _permit = permits.acquire_owned().await;
                if Instant::now() >= deadline || ctx.runner.cancelled() {
                    return None;
                }
                Some(run_scenario(&ctx, &scenario, &options).await)
            });
        }
        while let Some(joined) = set.join_next().await {
            results.push(joined.unwrap_or_else(|err| {
                Some(Err(anyhow::anyhow!("the scenario task panicked: {err}")))
            }));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left < round_started.elapsed() || ctx.runner.cancelled() {
            break;
        }
    }
    let (mut reports, mut crashes, mut hangs, mut records, mut exercised) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut skipped = 0;
    for result in results {
        match result {
            Some(Ok(run)) => {
                exercised.extend(run.callables);
                reports.extend(run.reports);
                crashes.extend(run.crashes);
                hangs.extend(run.hangs);
                records.push(run.record);
            }
            Some(Err(err)) => progress.note(&format!("warning: a scenario could not run: {err:#}")),
            None => skipped += 1,
        }
    }
    // Scenarios finish in any order; the record lists them by name.
    records.sort_by(|a: &ScenarioRecord, b| a.name.cmp(&b.name));
    let ran = records.len() as u64;
    let record = PhaseRecord {
        phase: Phase::Stress,
        status: if crashes.is_empty() && hangs.is_empty() {
            PhaseStatus::Passed
        } else {
            PhaseStatus::Crashed
        },
        duration_secs: started.elapsed().as_secs_f64(),
        items_run: Some(ran),
        reports: reports.len() as u64,
        message: (skipped > 0).then(|| {
            format!(
                "{skipped} scenarios not run: the {} s budget ran out",
                options.budget.as_secs()
            )
        }),
    };
    let outcome = PhaseOutcome {
        record,
        reports,
        crashes,
        hangs,
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
    .in_phase(Phase::Stress)
    .arg(&script)
    .envs(&ctx.tsan_env(&dir))
    .env("FTREVIEW_OUTCOME", outcome_path.display().to_string())
    .timeout(options.scenario_timeout);
    let result = ctx.runner.run(&step).await?;
    let mut reports = attribution::read_reports(&dir);
    let origin = Origin::new(Phase::Stress, &scenario.name);
    attribution::attribute_all(&mut reports, &origin);
    let reproducer = Reproducer {
        command: result.command.clone(),
        cwd: dir.clone(),
        script: Some(script.clone()),
    };
    let output = fs::read_to_string(&result.log).unwrap_or_default();
    let mut crashes = deadly_reports(&reports, Phase::Stress, &reproducer);
    let mut hangs = Vec::new();
    let script_outcome = fs::read_to_string(&outcome_path)
        .ok()
        .and_then(|t| ftreview_stress::parse_outcome(&t).ok());
    // The script rewrites its outcome when it finishes: "started" means the process died.
    let died_mid_run = script_outcome
        .as_ref()
        .is_some_and(|o| o.status == OutcomeStatus::Started);
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
        Termination::Exited { code } if died_mid_run => {
            crashes.push(CrashRecord {
                origin,
                kind: format!("died (exit code {code})"),
                signal: None,
                python_stack: None,
                native_stack: None,
                reproducer: Some(reproducer.clone()),
            });
            ScenarioOutcome::Crashed
        }
        Termination::Exited { code: 0 }
            if script_outcome.as_ref().is_some_and(|o| o.error.is_none()) =>
        {
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
    let (worker_exceptions, anomalies) = script_outcome.map_or((0, Vec::new()), |o| {
        (
            o.worker_exceptions,
            o.anomalies.iter().map(|a| a.to_string()).collect(),
        )
    });
    let record = ScenarioRecord {
        name: scenario.name.clone(),
        kind: scenario.kind.clone(),
        script,
        reproducer,
        outcome,
        reports: reports.len() as u64,
        worker_exceptions,
        anomalies,
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

/// Introspects the extension's API in the venv and sets up generation.
async fn prepare(
    ctx: &Ctx,
    installed: &Installed,
    options: &StressOptions,
    hints: Option<serde_yaml_ng::Value>,
    scan: Option<&ScanReport>,
) -> anyhow::Result<(ApiModel, GenConfig)> {
    let hints: Hints = match hints {
        Some(value) => serde_yaml_ng::from_value(value)
            .context("the registry's `stress` hints are not valid")?,
        None => Hints::default(),
    };
    let logs = ctx.run_dir.logs("stress")?;
    let script = ctx.run_dir.harness().join("ftreview_introspect.py");
    fs::write(&script, ftreview_stress::introspection_script())?;
    let model_path = logs.join("api-model.json");
    let step = Step::new(
        "stress introspection",
        &ctx.venv.python,
        &logs,
        &logs.join("introspection.log"),
    )
    .in_phase(Phase::Stress)
    .arg(&script)
    .args(ftreview_stress::introspection_args(
        &modules_to_introspect(installed),
        &hints,
    ))
    .env("TSAN_OPTIONS", "report_bugs=0")
    .env("PYTHON_GIL", "0")
    .stdout_to(&model_path)
    .timeout(Duration::from_secs(600));
    let result = ctx.runner.run(&step).await?;
    if !result.termination.success() {
        bail!(
            "introspecting the extension's API failed ({}): {}",
            result.termination.describe(),
            result.log_tail(5)
        );
    }
    let model = ftreview_stress::parse_api_model(&fs::read_to_string(&model_path)?)?;
    let config = GenConfig {
        seed: options.seed,
        threads: options.threads,
        time_budget_per_scenario: (options.scenario_timeout / 3).min(Duration::from_secs(20)),
        targets: scan.map(static_targets).unwrap_or_default(),
        hints,
        ..GenConfig::default()
    };
    if ftreview_stress::generate(&model, &config).is_empty() {
        bail!("introspection found nothing to call concurrently (no constructible type, no module function); add stress hints to the registry");
    }
    Ok((model, config))
}

/// The scenarios of one round. Later rounds reseed (new interleavings, fresh processes for
/// once-per-process races such as lazy initialization) and carry the round in their names.
fn scenarios_of(model: &ApiModel, config: &GenConfig, round: u64) -> Vec<ScenarioSpec> {
    let config = GenConfig {
        seed: config.seed + round,
        ..config.clone()
    };
    budget_order(ftreview_stress::generate(model, &config))
        .into_iter()
        .map(|s| ScenarioSpec {
            name: if round == 0 {
                s.name
            } else {
                format!("{}.round{round}", s.name)
            },
            kind: s.kind.as_str().to_string(),
            script: s.script,
            callables: s.callables,
        })
        .collect()
}

/// The order scenarios start in, so a budget that runs out still covered every subject:
/// targeted scenarios (aimed at statically flagged code) first, then one scenario per subject
/// (type or module) in turn.
fn budget_order(scenarios: Vec<ftreview_stress::Scenario>) -> Vec<ftreview_stress::Scenario> {
    let subject = |s: &ftreview_stress::Scenario| {
        s.name
            .split_once('.')
            .map_or(s.name.clone(), |(_, rest)| rest.to_string())
    };
    let (targeted, others): (Vec<_>, Vec<_>) = scenarios
        .into_iter()
        .partition(|s| s.kind == ScenarioKind::Targeted);
    let mut rank: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut ranked: Vec<(usize, usize, ftreview_stress::Scenario)> = others
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            let turn = rank.entry(subject(&s)).or_insert(0);
            *turn += 1;
            (*turn, i, s)
        })
        .collect();
    ranked.sort_by_key(|(turn, i, _)| (*turn, *i));
    targeted
        .into_iter()
        .chain(ranked.into_iter().map(|(_, _, s)| s))
        .collect()
}

/// Public packages first (their API re-exports the extension's), then the extension modules.
fn modules_to_introspect(installed: &Installed) -> Vec<String> {
    let mut modules: Vec<String> = installed
        .top_level
        .iter()
        .filter(|m| !m.starts_with('_'))
        .cloned()
        .collect();
    for ext in &installed.extensions {
        if !modules.contains(&ext.module) {
            modules.push(ext.module.clone());
        }
    }
    modules
}

/// Python names of the functions the static pass flagged (medium or worse): targeted scenarios.
fn static_targets(scan: &ScanReport) -> Vec<String> {
    let mut targets: Vec<String> = scan
        .findings_at_least(Severity::Medium)
        .flat_map(|f| f.entry_points.iter().cloned())
        .collect();
    for function in scan.flagged_functions(Severity::Medium) {
        for binding in scan.bindings_of(function) {
            targets.push(match &binding.owner_type {
                Some(owner) => format!("{owner}.{}", binding.python_name),
                None => binding.python_name.clone(),
            });
        }
    }
    targets.sort();
    targets.dedup();
    targets
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(kind: ScenarioKind, subject: &str) -> ftreview_stress::Scenario {
        ftreview_stress::Scenario {
            name: format!("{}.{subject}", kind.as_str()),
            kind,
            script: String::new(),
            callables: Vec::new(),
        }
    }

    #[test]
    fn every_subject_gets_a_turn_before_any_gets_a_second() {
        let ordered = budget_order(vec![
            scenario(ScenarioKind::SharedMutation, "m.A"),
            scenario(ScenarioKind::ReadWrite, "m.A"),
            scenario(ScenarioKind::Churn, "m.A"),
            scenario(ScenarioKind::SharedMutation, "m.B"),
            scenario(ScenarioKind::FunctionHammer, "m"),
            scenario(ScenarioKind::Targeted, "m.f"),
        ]);
        let names: Vec<&str> = ordered.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "targeted.m.f",
                "shared-mutation.m.A",
                "shared-mutation.m.B",
                "function-hammer.m",
                "read-write.m.A",
                "churn.m.A"
            ]
        );
    }
}
