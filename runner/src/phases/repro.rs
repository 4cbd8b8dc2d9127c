//! Proving each problem: its small reproducer (one shared object, threads behind a barrier)
//! is generated from the API model and rerun K times in fresh processes under TSan; a run
//! counts when its reports show the same problem again. A reproducer that never reproduces
//! is not shown as one (the problem keeps the scenario or test that found it).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use ftreview_reports::model::{Phase, RunRecord};
use ftreview_reports::results::{Finding, Owner, Receiver, ReproducerKind, ReproducerRef};
use ftreview_stress::{ApiModel, Hints, ReproducerRequest, SmallReproducer};
use tokio::sync::Semaphore;
use tsan_parse::ClusterOptions;

use super::attribution::read_reports;
use super::termination::killed_while_hung;
use super::{Ctx, ReportReader};
use crate::process::Step;
use crate::registry::{PackageOverrides, Registry};

/// One problem to prove.
#[derive(Clone)]
pub(crate) struct ReproTarget {
    pub problem_id: String,
    pub owner: Owner,
    pub request: ReproducerRequest,
}

impl ReproTarget {
    /// The small reproducer a problem calls for: its racing operations on one shared object
    /// (two when the race is on a method's argument), four threads, two seconds.
    pub fn of(problem: &Finding) -> Option<ReproTarget> {
        let owner = problem.owner.clone()?;
        Some(ReproTarget {
            request: ReproducerRequest {
                title: format!("{} (ftreview {})", problem.title, problem.id),
                operations: problem.operations.clone(),
                on_argument: matches!(
                    owner,
                    Owner::Object {
                        receiver: Receiver::Argument,
                        ..
                    }
                ),
                threads: 4,
                seconds: 2.0,
            },
            problem_id: problem.id.clone(),
            owner,
        })
    }
}

/// A recorded run's problems with what their small reproducers are made from.
pub(crate) struct RecordedProblems {
    pub model: ApiModel,
    pub hints: Hints,
    pub targets: Vec<ReproTarget>,
    /// The run's findings the targets were made from.
    pub findings: Vec<ftreview_reports::results::Finding>,
}

impl RecordedProblems {
    /// From the run in `run_dir`; an error when its stress phase left no API model.
    pub fn load(run_dir: &Path, record: &RunRecord, registry: &Registry) -> anyhow::Result<Self> {
        let model = api_model(run_dir).with_context(|| {
            format!(
                "{} has no API model (logs/stress/api-model.json), so no reproducer can be made: rerun `ftreview run` with the stress phase (--phases stress)",
                run_dir.display()
            )
        })?;
        let problems = ftreview_reports::analyze(record, None).results.findings;
        Ok(RecordedProblems {
            model,
            hints: hints(&registry.get(&record.target.name)),
            targets: problems.iter().filter_map(ReproTarget::of).collect(),
            findings: problems,
        })
    }

    /// The small reproducer of one problem, when the model can build it.
    pub fn reproducer(&self, target: &ReproTarget) -> Option<SmallReproducer> {
        SmallReproducer::new(&self.model, &self.hints, &target.request)
    }
}

/// The API model the stress phase of the run in `run_dir` introspected, if it did.
pub(crate) fn api_model(run_dir: &Path) -> Option<ApiModel> {
    let text = std::fs::read_to_string(run_dir.join("logs/stress/api-model.json")).ok()?;
    ftreview_stress::parse_api_model(&text).ok()
}

/// The registry's stress hints for a package (how to build its objects).
pub(crate) fn hints(overrides: &PackageOverrides) -> Hints {
    overrides
        .stress
        .clone()
        .and_then(|v| serde_yaml_ng::from_value(v).ok())
        .unwrap_or_default()
}

/// How hard to try.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReproOptions {
    pub runs: u32,
    /// No run starts after this.
    pub deadline: Instant,
    /// Whether a problem's reruns stop once `HUNG_RERUNS` of them were killed as hung and none
    /// reproduced it: such a reproducer will not count, and each hung rerun costs its timeout.
    pub stop_when_hung: bool,
}

/// Hung reruns (with no reproduction) after which a problem's reruns stop, when asked.
const HUNG_RERUNS: u32 = 2;

impl ReproOptions {
    /// Whether a problem whose reruns so far hung `hung` times and reproduced it `reproduced`
    /// times gets another.
    fn keeps_rerunning(&self, hung: u32, reproduced: u32) -> bool {
        !(self.stop_when_hung && hung >= HUNG_RERUNS && reproduced == 0)
    }
}

/// The reruns of one problem's reproducer.
pub(crate) struct Rerun {
    pub reproducer: ReproducerRef,
    /// The owners of every race the reruns showed (the problem's own among them when it
    /// reproduced).
    pub shown: Vec<Owner>,
}

/// What the reruns showed, by problem id.
pub(crate) struct Proven {
    pub reruns: BTreeMap<String, Rerun>,
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
        let Some(reproducer) =
            SmallReproducer::new(&context.model, &context.hints, &target.request)
        else {
            continue;
        };
        let script = reproducer.script();
        tried += 1;
        let (context, permits) = (context.clone(), permits.clone());
        set.spawn(async move {
            let result = prove(&context, &target, &script, options, &permits).await;
            (target.problem_id, result)
        });
    }
    let mut proven = Proven {
        reruns: BTreeMap::new(),
        tried,
        runs: 0,
    };
    while let Some(joined) = set.join_next().await {
        let Ok((id, Ok(rerun))) = joined else {
            continue;
        };
        proven.runs += rerun.reproducer.runs;
        proven.reruns.insert(id, rerun);
    }
    proven
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
) -> anyhow::Result<Rerun> {
    let (ctx, reader) = (&context.ctx, &context.reader);
    let relative = format!("repro/{}.py", target.problem_id);
    let path = ctx.run_dir.root.join(&relative);
    std::fs::create_dir_all(path.parent().expect("inside repro/"))?;
    std::fs::write(&path, script)?;
    let mut runs = 0;
    let mut reproduced = 0;
    let mut hung = 0;
    let mut shown = Vec::new();
    for run in 0..options.runs {
        if !options.keeps_rerunning(hung, reproduced) {
            break;
        }
        let _slot = permits.acquire().await?;
        let left = options.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || ctx.runner.cancelled() {
            break;
        }
        let logs = ctx
            .run_dir
            .logs(&format!("repro/{}/run-{run}", target.problem_id))?;
        // A reproducer stops on its own a second or two after its threads; one that hangs
        // (a thread spinning in a heap the race corrupted) is killed.
        let timeout = (Duration::from_secs_f64(target.request.seconds * 3.0)
            + Duration::from_secs(15))
        .min(left + Duration::from_secs(10));
        let step = Step::new(
            format!("repro {} {run}", target.problem_id),
            &ctx.venv.python,
            &logs,
            &logs.join("output.log"),
        );
        let step = ctx
            .under_tsan(step, &logs)
            .in_phase(Phase::Repro)
            .arg(&path)
            .timeout(timeout);
        let result = ctx.runner.run(&step).await?;
        let mut reports = read_reports(&logs);
        reports.iter_mut().for_each(|r| reader.prepare(r));
        let hung_now = killed_while_hung(&result, &reports);
        let triage = tsan_parse::cluster(reports, &reader.classifier, ClusterOptions::default());
        runs += 1;
        let owners = ftreview_reports::shown_owners(&context.record, &triage);
        let showed_it = owners
            .iter()
            .any(|o| ftreview_reports::same_problem(&target.owner, o));
        // A rerun killed while hung proves a hang, not the race.
        reproduced += u32::from(showed_it && !hung_now);
        hung += u32::from(hung_now);
        shown.extend(owners);
    }
    shown.sort();
    shown.dedup();
    Ok(Rerun {
        reproducer: ReproducerRef {
            kind: ReproducerKind::Small,
            command: format!("PYTHON_GIL=0 test-venv/bin/python {relative}"),
            script: Some(relative),
            runs,
            reproduced,
        },
        shown,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reruns_stop_after_two_hangs_only_when_asked_and_nothing_reproduced() {
        let options = |stop_when_hung| ReproOptions {
            runs: 5,
            deadline: Instant::now(),
            stop_when_hung,
        };
        assert!(options(true).keeps_rerunning(1, 0));
        assert!(
            !options(true).keeps_rerunning(2, 0),
            "two hangs, no reproduction"
        );
        assert!(
            options(true).keeps_rerunning(2, 1),
            "it reproduced once: the count goes on"
        );
        assert!(
            options(false).keeps_rerunning(4, 0),
            "verify compares full counts"
        );
    }
}
