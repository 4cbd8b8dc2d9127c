//! Proving each problem: its small reproducer (one shared object, threads behind a barrier)
//! is generated from the API model and rerun K times in fresh processes under TSan; a run
//! counts when its reports show the same problem again. A reproducer that never reproduces
//! is not shown as one (the problem keeps the scenario or test that found it).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ftreview_reports::model::{Phase, RunRecord};
use ftreview_reports::results::{Owner, ReproducerKind, ReproducerRef};
use ftreview_stress::{small_reproducer, ApiModel, Hints, ReproducerRequest};
use tokio::sync::Semaphore;
use tsan_parse::ClusterOptions;

use super::attribution::read_reports;
use super::{Ctx, ReportReader};
use crate::process::{Step, StepResult, Termination};

/// One problem to prove.
pub(crate) struct ReproTarget {
    pub problem_id: String,
    pub owner: Owner,
    pub request: ReproducerRequest,
}

/// How hard to try.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReproOptions {
    pub runs: u32,
    /// No run starts after this.
    pub deadline: Instant,
}

/// What the reruns showed, by problem id (only reproducers that reproduced at least once).
pub(crate) struct Proven {
    pub reproducers: BTreeMap<String, ReproducerRef>,
    pub tried: usize,
    pub runs: u32,
}

/// What the reruns work from.
pub(crate) struct ReproContext {
    pub ctx: Arc<Ctx>,
    /// The run so far: its problems are what a rerun must show again.
    pub record: RunRecord,
    pub reader: ReportReader,
    pub model: ApiModel,
    pub hints: Hints,
}

pub(crate) async fn reproduce(
    context: Arc<ReproContext>,
    targets: Vec<ReproTarget>,
    options: ReproOptions,
    permits: Arc<Semaphore>,
) -> Proven {
    let mut set = tokio::task::JoinSet::new();
    let mut tried = 0;
    for target in targets {
        let Some(script) = small_reproducer(&context.model, &context.hints, &target.request) else {
            continue;
        };
        tried += 1;
        let (context, permits) = (context.clone(), permits.clone());
        set.spawn(async move {
            let result = prove(&context, &target, &script, options, &permits).await;
            (target.problem_id, result)
        });
    }
    let mut proven = Proven {
        reproducers: BTreeMap::new(),
        tried,
        runs: 0,
    };
    while let Some(joined) = set.join_next().await {
        let Ok((id, Ok(reproducer))) = joined else {
            continue;
        };
        proven.runs += reproducer.runs;
        if reproducer.reproduced > 0 {
            proven.reproducers.insert(id, reproducer);
        }
    }
    proven
}

/// Whether one rerun counts: its reports show the problem and it ended on its own. A rerun
/// killed as hung proves a hang, not the race, so it does not count.
pub(crate) fn rerun_reproduced(result: &StepResult, shown: bool) -> bool {
    shown && !matches!(result.termination, Termination::TimedOut)
}

/// Writes the script to `RUN/repro/<id>.py` and reruns it. Each rerun waits for a slot of its
/// own, and the slots go out first come first served, so the problems take turns: when time
/// runs out every problem has had its first reruns, not a few problems all of theirs.
async fn prove(
    context: &ReproContext,
    target: &ReproTarget,
    script: &str,
    options: ReproOptions,
    permits: &Semaphore,
) -> anyhow::Result<ReproducerRef> {
    let (ctx, reader) = (&context.ctx, &context.reader);
    let relative = format!("repro/{}.py", target.problem_id);
    let path = ctx.run_dir.root.join(&relative);
    std::fs::create_dir_all(path.parent().expect("inside repro/"))?;
    std::fs::write(&path, script)?;
    let mut runs = 0;
    let mut reproduced = 0;
    for run in 0..options.runs {
        let _slot = permits.acquire().await?;
        let left = options.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || ctx.runner.cancelled() {
            break;
        }
        let logs = ctx
            .run_dir
            .logs(&format!("repro/{}/run-{run}", target.problem_id))?;
        // A reproducer stops on its own after a few seconds; one that hangs is killed.
        let timeout = (Duration::from_secs_f64(target.request.seconds * 3.0)
            + Duration::from_secs(30))
        .min(left + Duration::from_secs(10));
        let step = Step::new(
            format!("repro {} {run}", target.problem_id),
            &ctx.venv.python,
            &logs,
            &logs.join("output.log"),
        )
        .in_phase(Phase::Repro)
        .arg(&path)
        .envs(&ctx.tsan_env(&logs))
        .timeout(timeout);
        let result = ctx.runner.run(&step).await?;
        let mut reports = read_reports(&logs);
        reports.iter_mut().for_each(|r| reader.prepare(r));
        let triage = tsan_parse::cluster(reports, &reader.classifier, ClusterOptions::default());
        runs += 1;
        let shown = ftreview_reports::reproduces(&context.record, &triage, &target.owner);
        reproduced += u32::from(rerun_reproduced(&result, shown));
    }
    Ok(ReproducerRef {
        kind: ReproducerKind::Small,
        command: format!("PYTHON_GIL=0 test-venv/bin/python {relative}"),
        script: Some(relative),
        runs,
        reproduced,
    })
}
