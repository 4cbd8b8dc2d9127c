//! The stress phase: generated multithreaded scenarios, each a standalone script run in its
//! own process and log directory (a crash ends one scenario, not the phase), as many at once as
//! there are free job slots, until the phase's deadline. Scenario scripts write their outcome
//! JSON to `$FTREVIEW_OUTCOME`; what each process left behind goes to the review as soon as it
//! ends, so the first race is on screen while the phase still runs.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use ftreview_reports::model::{
    AnomalyRecord, Coverage, Origin, Phase, PhaseRecord, PhaseStatus, Reproducer, ScenarioOutcome,
    ScenarioRecord, SingleThreadedBug, SingleThreadedKind,
};
use ftreview_static::{ScanReport, Severity};
use ftreview_stress::{
    ApiModel, BindingKind as StressBindingKind, BindingSpec, CrashOutcome, GenConfig, Hints,
    IntrospectionRequest, MergeSummary, OutcomeStatus, ScenarioKind,
};
use tokio::sync::Semaphore;

use super::attribution;
use super::pytest::recorded_calls;
use super::termination::{classify, EndKind, ProcessEvidence};
use super::{send, Collected, Ctx, Evidence, Sink};
use crate::env::Installed;
use crate::events::Events;
use crate::process::Step;

/// Settings of the stress phase.
#[derive(Debug, Clone)]
pub(crate) struct StressOptions {
    /// Timeout of one scenario process.
    pub scenario_timeout: Duration,
    pub seed: u64,
    pub threads: usize,
    /// Feed the calls the plain test suite recorded into generation (`--no-test-calls` turns
    /// it off).
    pub test_calls: bool,
}

/// What the phase works from.
pub(crate) struct StressInputs {
    pub installed: Installed,
    pub hints: Option<serde_yaml_ng::Value>,
    pub scan: Option<ScanReport>,
    /// No scenario starts after this.
    pub deadline: Instant,
    /// Whether the phase may stop before its deadline once a reseeded round adds no problem:
    /// the budget's share is a ceiling, a fixed `--stress-budget` is spent whole.
    pub until_nothing_new: bool,
}

/// One scenario to run.
#[derive(Debug, Clone)]
struct ScenarioSpec {
    name: String,
    kind: String,
    script: String,
    /// Python callables it calls from several threads (`Type.method`, `function`).
    callables: Vec<String>,
    /// Those of them that run the extension's C code directly.
    c_callables: Vec<String>,
}

/// Generates the scenarios and runs them in rounds until the deadline: a round that finished
/// early leaves time for reseeded reruns, which is how rare interleavings and
/// once-per-process races get caught.
pub(crate) async fn run_stress(
    ctx: Arc<Ctx>,
    inputs: StressInputs,
    options: StressOptions,
    permits: Arc<Semaphore>,
    sink: Sink,
    events: Events,
) {
    let started = Instant::now();
    if inputs.deadline <= started {
        send(&sink, Collected::Phase(skipped(started, "not run: the time budget ran out before this phase's turn (setup took it; raise --budget)".into())));
        return;
    }
    let task = events.start("stress");
    let share = inputs.deadline.saturating_duration_since(started);
    let Prepared {
        model: introspected,
        config,
        mut notes,
    } = match prepare(&ctx, &inputs, &options, &sink).await {
        Ok(prepared) => prepared,
        Err(err) => {
            let message = format!("{err:#}");
            task.finish(&format!("skipped: {message}"));
            send(&sink, Collected::Phase(skipped(started, message)));
            return;
        }
    };
    let mut tally = Tally::default();
    let mut model = introspected.clone();
    let mut test_calls = TestCalls::new(options.test_calls.then(|| recorded_calls(&ctx.run_dir)));
    let mut converged = None;
    for round in 0.. {
        let round_started = Instant::now();
        let found_before = problems_so_far(&sink).await;
        let mut queue = VecDeque::new();
        // This round's scenarios that started, script to name: a model that changed
        // mid-round replaces the queue with its scenarios, less those (see `requeue`).
        let mut started = HashMap::new();
        let mut set = tokio::task::JoinSet::new();
        loop {
            let refreshed = test_calls.refresh(&introspected, &mut model, round);
            if refreshed {
                save_model(&ctx, &model, &events);
            }
            if refreshed || (queue.is_empty() && started.is_empty()) {
                queue = requeue(scenarios_of(&model, &config, round), &started);
            }
            let Some(scenario) = queue.pop_front() else {
                break;
            };
            let Ok(permit) = permits.clone().acquire_owned().await else {
                break;
            };
            if Instant::now() >= inputs.deadline || ctx.runner.cancelled() {
                tally.not_run += 1 + queue.len() as u64;
                break;
            }
            started.insert(scenario.script.clone(), scenario.name.clone());
            let (ctx, options, deadline) = (ctx.clone(), options.clone(), inputs.deadline);
            set.spawn(async move {
                let _permit = permit;
                run_scenario(&ctx, &scenario, &options, deadline).await
            });
            while let Some(joined) = set.try_join_next() {
                tally.absorb(joined, &sink, &events);
            }
        }
        while let Some(joined) = set.join_next().await {
            tally.absorb(joined, &sink, &events);
        }
        tally.generated += started.len() as u64;
        let left = inputs.deadline.saturating_duration_since(Instant::now());
        if left < round_started.elapsed() || ctx.runner.cancelled() {
            break;
        }
        let found_new = problems_so_far(&sink).await > found_before;
        if inputs.until_nothing_new && round_adds_nothing(round, found_new) {
            converged = Some(round);
            break;
        }
    }
    if let Some(round) = converged {
        notes.push(format!(
            "stopped before its share ran out: reseeded round {round} found no new problem or crash"
        ));
    }
    let Tally {
        ran,
        generated,
        not_run,
        crashed,
        reports,
    } = tally;
    let generated = generated + not_run;
    notes.push(test_calls.note());
    let mut left_out = Vec::new();
    if not_run > 0 {
        left_out.push(format!(
            "{not_run} scenarios not run: the phase's {} s share of the budget ran out",
            share.as_secs()
        ));
    }
    let record = PhaseRecord {
        phase: Phase::Stress,
        status: if crashed {
            PhaseStatus::Crashed
        } else {
            PhaseStatus::Passed
        },
        duration_secs: started.elapsed().as_secs_f64(),
        items_run: Some(ran),
        reports,
        message: Some(notes.join("; ")),
        coverage: Some(Coverage {
            ran,
            selected: Some(generated),
            total: Some(generated),
            share_secs: Some(share.as_secs_f64()),
            left_out,
        }),
        pytest: None,
    };
    task.finish(&format!("{ran} scenarios run of {generated} generated"));
    send(&sink, Collected::Phase(record));
}

/// The distinct problems and crashes this phase has shown, with everything it sent so far in.
async fn problems_so_far(sink: &Sink) -> usize {
    let (reply, answer) = tokio::sync::oneshot::channel();
    send(sink, Collected::StressProblemCount(reply));
    answer.await.unwrap_or(0)
}

/// Whether the phase has stopped paying: a reseeded round (round 1 on; round 0 is the first
/// pass) that showed no problem or crash earlier rounds had not.
fn round_adds_nothing(round: u64, found_new: bool) -> bool {
    round >= 1 && !found_new
}

/// The scenarios of a round still to run once its model changed, none that started (scripts
/// name their scenario, so a script is its key), in budget order: first those that have not
/// run in any form (new subjects such as mixed arguments, queued ones, altered or not), then
/// altered ones whose NAME already ran (renamed `NAME.with-test-calls`, `-2`, … so their logs
/// stay apart). A scenario keeps its place however often the model changes before it starts.
fn requeue(fresh: Vec<ScenarioSpec>, started: &HashMap<String, String>) -> VecDeque<ScenarioSpec> {
    let ran: HashSet<&str> = started.values().map(String::as_str).collect();
    let (mut reruns, mut order): (Vec<ScenarioSpec>, Vec<ScenarioSpec>) = fresh
        .into_iter()
        .filter(|s| !started.contains_key(&s.script))
        .partition(|s| ran.contains(s.name.as_str()));
    for s in &mut reruns {
        let renamed = format!("{}.with-test-calls", s.name);
        let earlier = ran.iter().filter(|n| n.starts_with(&renamed)).count();
        s.name = match earlier {
            0 => renamed,
            n => format!("{renamed}-{}", n + 1),
        };
    }
    order.append(&mut reruns);
    order.into()
}

/// What the phase's scenarios came to.
#[derive(Debug, Default)]
struct Tally {
    ran: u64,
    generated: u64,
    not_run: u64,
    crashed: bool,
    reports: u64,
}

impl Tally {
    /// Takes in a finished scenario and sends on what it left behind.
    fn absorb(
        &mut self,
        joined: Result<anyhow::Result<ScenarioRun>, tokio::task::JoinError>,
        sink: &Sink,
        events: &Events,
    ) {
        let run = match joined {
            Ok(Ok(run)) => run,
            Ok(Err(err)) => return events.warn(&format!("a scenario could not run: {err:#}")),
            Err(err) => return events.warn(&format!("a scenario task panicked: {err}")),
        };
        self.ran += 1;
        self.crashed |= run.ended != EndKind::Finished;
        self.reports += run.evidence.reports.len() as u64;
        send(sink, Collected::Evidence(run.evidence));
        send(
            sink,
            Collected::SingleThreaded(single_threaded_anomalies(&run.record, &run.kinds)),
        );
        send(
            sink,
            Collected::Exercised {
                callables: run.callables,
                c_callables: run.c_callables,
            },
        );
        send(sink, Collected::Scenario(run.record));
    }
}

/// The calls the plain suite recorded (`api-calls.json`), merged into the introspected model
/// before a scenario starts once the file exists or whenever it changed: the suite usually
/// runs beside the first round, whose scenarios that have not started yet are then
/// generated again from the merged model.
struct TestCalls {
    /// `None` with `--no-test-calls`.
    path: Option<PathBuf>,
    /// The file's text as last merged.
    merged: Option<String>,
    first_round: Option<u64>,
    summary: MergeSummary,
    unreadable: Option<String>,
}

impl TestCalls {
    fn new(path: Option<PathBuf>) -> Self {
        TestCalls {
            path,
            merged: None,
            first_round: None,
            summary: MergeSummary::default(),
            unreadable: None,
        }
    }

    /// Rebuilds `model` from `introspected` and the file when the file is new or changed.
    fn refresh(&mut self, introspected: &ApiModel, model: &mut ApiModel, round: u64) -> bool {
        let Some(text) = self.path.as_ref().and_then(|p| fs::read_to_string(p).ok()) else {
            return false;
        };
        if self.merged.as_ref() == Some(&text) {
            return false;
        }
        let calls = match ftreview_stress::parse_api_calls(&text) {
            Ok(calls) => calls,
            Err(err) => {
                self.unreadable = Some(format!("{err:#}"));
                return false;
            }
        };
        let mut merged = introspected.clone();
        self.summary = merged.merge_test_calls(&calls);
        self.merged = Some(text);
        self.unreadable = None;
        if self.summary.added() > 0 {
            self.first_round.get_or_insert(round);
        }
        *model = merged;
        true
    }

    /// Where the scenarios' arguments came from, for the phase record.
    fn note(&self) -> String {
        let catalogue = "arguments from introspection's catalogue";
        let Some(path) = &self.path else {
            return format!("{catalogue} only (test calls off: --no-test-calls)");
        };
        if let Some(err) = &self.unreadable {
            return format!(
                "{catalogue} only: {} could not be read ({err})",
                path.display()
            );
        }
        let summary = &self.summary;
        match self.first_round {
            Some(round) => {
                let unmatched = match summary.unmatched.len() {
                    0 => String::new(),
                    n => format!(", {n} recorded callables not in the model"),
                };
                format!(
                    "{catalogue} and from the test suite's calls (from round {round} on): {} argument sets, {} constructors{unmatched}",
                    summary.arg_sets, summary.constructors
                )
            }
            None if self.merged.is_some() => format!(
                "{catalogue} only: the test suite's recorded calls added nothing new"
            ),
            None => format!(
                "{catalogue} only: the test suite recorded no calls in time (it did not run or finish its first tests before the last round, or the interpreter lacks sys.monitoring)"
            ),
        }
    }
}

/// The model scenarios are generated from, for the reproducers that follow.
fn save_model(ctx: &Ctx, model: &ApiModel, events: &Events) {
    let saved = ctx.run_dir.logs(Phase::Stress.name()).and_then(|dir| {
        Ok(fs::write(
            dir.join("api-model.json"),
            serde_json::to_string_pretty(model)?,
        )?)
    });
    if let Err(err) = saved {
        events.warn(&format!("could not save the merged API model: {err:#}"));
    }
}

fn skipped(started: Instant, message: String) -> PhaseRecord {
    PhaseRecord {
        phase: Phase::Stress,
        status: PhaseStatus::Skipped,
        duration_secs: started.elapsed().as_secs_f64(),
        items_run: None,
        reports: 0,
        message: Some(message),
        coverage: None,
        pytest: None,
    }
}

struct ScenarioRun {
    record: ScenarioRecord,
    evidence: Evidence,
    ended: EndKind,
    callables: Vec<String>,
    c_callables: Vec<String>,
    /// The kind of each of the record's anomalies.
    kinds: Vec<ftreview_stress::AnomalyKind>,
}

/// The anomalies of a scenario that its single-threaded control reproduced.
fn single_threaded_anomalies(
    record: &ScenarioRecord,
    kinds: &[ftreview_stress::AnomalyKind],
) -> Vec<SingleThreadedBug> {
    record
        .anomalies
        .iter()
        .zip(kinds)
        .filter(|(a, _)| a.single_threaded == Some(true))
        .map(|(a, kind)| SingleThreadedBug {
            kind: match kind {
                ftreview_stress::AnomalyKind::InternalError => SingleThreadedKind::InternalError,
                ftreview_stress::AnomalyKind::Invariant => SingleThreadedKind::Invariant,
            },
            call: a.call.clone(),
            detail: Some(a.description.clone()),
            origin: Origin::new(Phase::Stress, &record.name),
        })
        .collect()
}

/// Reruns a scenario whose invariants broke with its operations in one thread, in a fresh
/// process: an anomaly that happens there too needs no threads (a single-threaded bug).
async fn control(
    ctx: &Ctx,
    script: &std::path::Path,
    dir: &std::path::Path,
    outcome: &ftreview_stress::ScenarioOutcome,
) -> anyhow::Result<Vec<AnomalyRecord>> {
    let logs = dir.join("control");
    fs::create_dir_all(&logs)?;
    let control_outcome = logs.join("outcome.json");
    let step = Step::new("control", &ctx.venv.python, &logs, &logs.join("output.log"));
    let step = ctx
        .under_tsan(step, &logs)
        .in_phase(Phase::Control)
        .arg(script)
        .env(ftreview_stress::SINGLE_THREAD_ENV, "1")
        .env(
            ftreview_stress::OUTCOME_ENV,
            control_outcome.display().to_string(),
        )
        .timeout(Duration::from_secs(120));
    ctx.runner.run(&step).await?;
    let control = fs::read_to_string(&control_outcome)
        .ok()
        .and_then(|t| ftreview_stress::parse_outcome(&t).ok());
    Ok(outcome
        .anomalies
        .iter()
        .map(|anomaly| AnomalyRecord {
            description: anomaly.to_string(),
            call: (!anomaly.call.is_empty()).then(|| anomaly.call.clone()),
            single_threaded: control
                .as_ref()
                .map(|c| ftreview_stress::same_anomaly_in_control(anomaly, c)),
        })
        .collect())
}

async fn run_scenario(
    ctx: &Ctx,
    scenario: &ScenarioSpec,
    options: &StressOptions,
    deadline: Instant,
) -> anyhow::Result<ScenarioRun> {
    let dir = ctx.run_dir.logs(&format!("stress/{}", scenario.name))?;
    let script = dir.join("script.py");
    fs::write(&script, &scenario.script)?;
    let outcome_path = dir.join("outcome.json");
    let stuck_file = dir.join("stuck");
    // A scenario stops its workers at its own budget; the timeout is for one that cannot
    // and does not tell it is stuck.
    let timeout = options
        .scenario_timeout
        .min(deadline.saturating_duration_since(Instant::now()) + Duration::from_secs(30));
    let step = Step::new(
        format!("stress {}", scenario.name),
        &ctx.venv.python,
        &dir,
        &dir.join("output.log"),
    );
    let step = ctx
        .under_tsan(step, &dir)
        .in_phase(Phase::Stress)
        .arg(&script)
        .env(
            ftreview_stress::OUTCOME_ENV,
            outcome_path.display().to_string(),
        )
        .env(
            ftreview_stress::STUCK_FILE_ENV,
            stuck_file.display().to_string(),
        )
        .timeout(timeout)
        .stuck_after_time_in(&stuck_file);
    let result = ctx.runner.run(&step).await?;
    let origin = Origin::new(Phase::Stress, &scenario.name);
    let (mut reports, logs) = attribution::read_logs(&dir);
    attribution::attribute_all(&mut reports, &origin);
    let reproducer = Reproducer {
        command: result.command.clone(),
        cwd: dir.clone(),
        script: Some(script.clone()),
    };
    let output = fs::read_to_string(&result.log).unwrap_or_default();
    let script_outcome = fs::read_to_string(&outcome_path)
        .ok()
        .and_then(|t| ftreview_stress::parse_outcome(&t).ok());
    let ending = classify(ProcessEvidence {
        result: &result,
        output: &output,
        reports: &reports,
        origin,
        reproducer: reproducer.clone(),
        // The script rewrites its outcome when it finishes: "started" means the process died.
        died_mid_run: script_outcome
            .as_ref()
            .is_some_and(|o| o.status == OutcomeStatus::Started),
        progressing: false,
    });
    let outcome = match ending.kind {
        EndKind::Crashed => ScenarioOutcome::Crashed,
        EndKind::Hung | EndKind::OutOfTime => ScenarioOutcome::TimedOut,
        EndKind::Finished
            if result.termination.success()
                && script_outcome.as_ref().is_some_and(|o| o.error.is_none()) =>
        {
            ScenarioOutcome::Completed
        }
        EndKind::Finished | EndKind::Interrupted => ScenarioOutcome::Error,
    };
    let worker_exceptions = script_outcome.as_ref().map_or(0, |o| o.worker_exceptions);
    let kinds: Vec<_> = script_outcome
        .iter()
        .flat_map(|o| o.anomalies.iter().map(|a| a.kind))
        .collect();
    let anomalies = match script_outcome {
        Some(o) if !o.anomalies.is_empty() => control(ctx, &script, &dir, &o).await?,
        _ => Vec::new(),
    };
    let record = ScenarioRecord {
        name: scenario.name.clone(),
        kind: scenario.kind.clone(),
        script,
        reproducer,
        outcome,
        reports: reports.len() as u64,
        worker_exceptions,
        anomalies,
        c_callables: scenario.c_callables.clone(),
    };
    let ran = outcome != ScenarioOutcome::Error;
    let (callables, c_callables) = if ran {
        (scenario.callables.clone(), scenario.c_callables.clone())
    } else {
        (Vec::new(), Vec::new())
    };
    Ok(ScenarioRun {
        record,
        kinds,
        c_callables,
        evidence: Evidence {
            reports,
            logs,
            crashes: ending.crashes,
            hangs: ending.hangs,
        },
        ended: ending.kind,
        callables,
    })
}

/// What generation works from, and what introspection said on the way.
struct Prepared {
    model: ApiModel,
    config: GenConfig,
    notes: Vec<String>,
}

/// Introspects the extension's API in the venv (or, when that fails, takes the static pass's
/// bindings) and sets up generation. Trial calls that crashed the interpreter are
/// single-threaded bugs, sent on at once.
async fn prepare(
    ctx: &Ctx,
    inputs: &StressInputs,
    options: &StressOptions,
    sink: &Sink,
) -> anyhow::Result<Prepared> {
    let hints: Hints = match inputs.hints.clone() {
        Some(value) => serde_yaml_ng::from_value(value)
            .context("the registry's `stress` hints are not valid")?,
        None => Hints::default(),
    };
    let mut notes = Vec::new();
    let introspected = introspect(ctx, inputs, &hints).await.and_then(|model| {
        let empty = model
            .modules
            .iter()
            .all(|m| m.types.is_empty() && m.functions.is_empty());
        if empty {
            bail!(
                "introspection found nothing to call{}",
                if model.time_limit_reached {
                    " before its time limit"
                } else {
                    ""
                }
            )
        }
        Ok(model)
    });
    let model = match introspected {
        Ok(model) => model,
        Err(err) => {
            let bindings = inputs
                .scan
                .as_ref()
                .map(|scan| binding_specs(scan, &inputs.installed))
                .unwrap_or_default();
            if bindings.is_empty() {
                return Err(err);
            }
            notes.push(format!("{err:#}; the scenarios call the functions and methods the static pass found bound in the sources instead, with untried arguments"));
            ApiModel::from_bindings(&bindings)
        }
    };
    notes.extend(introspection_notes(&model));
    send(
        sink,
        Collected::SingleThreaded(single_threaded_trials(&model)),
    );
    let config = GenConfig {
        seed: options.seed,
        threads: options.threads,
        time_budget_per_scenario: workers_budget(options.scenario_timeout),
        targets: inputs.scan.as_ref().map(static_targets).unwrap_or_default(),
        hints,
        ..GenConfig::default()
    };
    if ftreview_stress::generate(&model, &config).is_empty() {
        bail!("introspection found nothing to call concurrently (no constructible type, no module function); add stress hints to the registry");
    }
    Ok(Prepared {
        model,
        config,
        notes,
    })
}

async fn introspect(ctx: &Ctx, inputs: &StressInputs, hints: &Hints) -> anyhow::Result<ApiModel> {
    let logs = ctx.run_dir.logs(Phase::Stress.name())?;
    let script = ctx.run_dir.harness().join("ftreview_introspect.py");
    fs::write(&script, ftreview_stress::introspection_script())?;
    let model_path = logs.join("api-model.json");
    // A third of the phase at most: introspection finds what to call, scenarios find races.
    let share = inputs.deadline.saturating_duration_since(Instant::now());
    let request = IntrospectionRequest {
        modules: modules_to_introspect(&inputs.installed),
        hints: hints.clone(),
        define_types: inputs.scan.as_ref().map(defined_types).unwrap_or_default(),
        time_limit: Some((share / 3).clamp(Duration::from_secs(30), Duration::from_secs(480))),
    };
    let step = Step::new(
        "stress introspection",
        &ctx.venv.python,
        &logs,
        &logs.join("introspection.log"),
    )
    .in_phase(Phase::Stress)
    .arg(&script)
    .args(ftreview_stress::introspection_args(&request))
    .envs(
        &ctx.overrides
            .env
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect::<Vec<_>>(),
    )
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
    ftreview_stress::parse_api_model(&fs::read_to_string(&model_path)?)
}

/// The extension's types as its sources name them (`tp_name`s), for introspection to find
/// however they are exported.
fn defined_types(scan: &ScanReport) -> Vec<String> {
    let mut names: Vec<String> = scan
        .types
        .iter()
        .filter_map(|t| t.name.clone())
        .chain(scan.methods.iter().filter_map(|m| m.owner_type.clone()))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The static pass's bindings, each placed in the extension module whose name its owner
/// starts with (or the only one).
fn binding_specs(scan: &ScanReport, installed: &Installed) -> Vec<BindingSpec> {
    let modules: Vec<&str> = installed
        .extensions
        .iter()
        .map(|e| e.module.as_str())
        .collect();
    let module_of = |owner: Option<&str>| {
        let owner = owner.unwrap_or_default();
        modules
            .iter()
            .find(|m| {
                let short = m.rsplit('.').next().unwrap_or(m);
                [*m, short]
                    .iter()
                    .any(|name| owner == *name || owner.starts_with(&format!("{name}.")))
            })
            .or(modules.first())
            .map(|m| m.to_string())
    };
    scan.methods
        .iter()
        .filter_map(|m| {
            let is_function = m.kind == ftreview_static::BindingKind::Function;
            Some(BindingSpec {
                module: module_of(m.owner_type.as_deref())?,
                owner_type: (!is_function).then(|| m.owner_type.clone()).flatten(),
                python_name: m.python_name.clone(),
                kind: match m.kind {
                    ftreview_static::BindingKind::Method => StressBindingKind::Method,
                    ftreview_static::BindingKind::Function => StressBindingKind::Function,
                    ftreview_static::BindingKind::Getter => StressBindingKind::Getter,
                    ftreview_static::BindingKind::Setter => StressBindingKind::Setter,
                    ftreview_static::BindingKind::Slot => StressBindingKind::Slot,
                },
            })
        })
        .collect()
}

/// What the plan should know about how the model was made.
fn introspection_notes(model: &ApiModel) -> Vec<String> {
    let mut notes = Vec::new();
    if !model.skipped.is_empty() {
        notes.push(format!(
            "introspection skipped {} object(s) it could not read (see logs/stress/introspection.log)",
            model.skipped.len()
        ));
    }
    if model.restarts > 0 {
        notes.push(format!(
            "introspection restarted {} time(s) past calls that crashed or hung the interpreter",
            model.restarts
        ));
    }
    if model.time_limit_reached || model.restarts_exhausted {
        notes.push(
            "introspection stopped early (time or restart limit): the API model is partial".into(),
        );
    }
    notes
}

/// Trial calls that killed or hung the interpreter, or broke the C-API contract, in one
/// thread.
fn single_threaded_trials(model: &ApiModel) -> Vec<SingleThreadedBug> {
    let introspection = || Origin::new(Phase::Stress, "introspection");
    let contract_breaks = model
        .contract_breaks()
        .into_iter()
        .map(|b| SingleThreadedBug {
            kind: SingleThreadedKind::InternalError,
            call: Some(b.call),
            detail: b.error,
            origin: introspection(),
        });
    model
        .crashed_trials
        .iter()
        .map(|trial| SingleThreadedBug {
            kind: match trial.outcome {
                CrashOutcome::Crash => SingleThreadedKind::Crash,
                CrashOutcome::Hang => SingleThreadedKind::Hang,
            },
            call: trial.call.clone(),
            detail: trial
                .detail
                .clone()
                .or_else(|| trial.signal.clone())
                .or_else(|| trial.exit_code.map(|c| format!("exit code {c}"))),
            origin: introspection(),
        })
        .chain(contract_breaks)
        .collect()
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
            c_callables: s.c_callables,
        })
        .collect()
}

/// The order scenarios start in, so a budget that runs out still covered every subject:
/// mixed-arguments scenarios first (only they reach the code behind the test suite's
/// arguments: modes, constructor options, argument types; they exist only when the suite's
/// calls were recorded), then targeted ones (aimed at statically flagged code), then those
/// that reach C code before pure-Python ones, one per subject (type or module) in turn.
fn budget_order(scenarios: Vec<ftreview_stress::Scenario>) -> Vec<ftreview_stress::Scenario> {
    let subject = |s: &ftreview_stress::Scenario| {
        s.name
            .split_once('.')
            .map_or(s.name.clone(), |(_, rest)| rest.to_string())
    };
    let mut rank: HashMap<String, usize> = HashMap::new();
    let mut ranked: Vec<((u8, bool, usize), usize, ftreview_stress::Scenario)> = scenarios
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            let key = match s.kind {
                ScenarioKind::MixedArguments => (0, !s.reaches_c(), 0),
                ScenarioKind::Targeted => (1, false, 0),
                _ => {
                    let turn = rank.entry(subject(&s)).or_insert(0);
                    *turn += 1;
                    (2, !s.reaches_c(), *turn)
                }
            };
            (key, i, s)
        })
        .collect();
    ranked.sort_by_key(|(key, i, _)| (*key, *i));
    ranked.into_iter().map(|(_, _, s)| s).collect()
}

/// How long a scenario's workers run: half its process's timeout, 20 s at most. Twice the
/// workers' time covers first-call processes, startup and exit under load (26 s wall at most
/// measured for a 20 s budget, loaded), and a hung process holds a slot only until then.
fn workers_budget(scenario_timeout: Duration) -> Duration {
    (scenario_timeout / 2).min(Duration::from_secs(20))
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

    #[test]
    fn reseeding_stops_after_a_reseeded_round_that_found_nothing_new() {
        assert!(
            !round_adds_nothing(0, false),
            "the first pass is never a reseed"
        );
        assert!(!round_adds_nothing(1, true));
        assert!(round_adds_nothing(1, false));
        assert!(round_adds_nothing(4, false));
    }

    #[test]
    fn a_scenario_process_gets_twice_its_workers_time() {
        let secs = |t: u64| workers_budget(Duration::from_secs(t)).as_secs();
        assert_eq!(secs(40), 20, "the default timeout");
        assert_eq!(secs(20), 10);
        assert_eq!(
            secs(300),
            20,
            "a longer timeout only waits longer for a stuck one"
        );
    }

    fn spec(name: &str, script: &str) -> ScenarioSpec {
        ScenarioSpec {
            name: name.into(),
            kind: String::new(),
            script: script.into(),
            callables: Vec::new(),
            c_callables: Vec::new(),
        }
    }

    #[test]
    fn a_changed_model_requeues_in_budget_order_what_has_not_run_then_reruns_of_what_has() {
        let started = HashMap::from([("a".to_string(), "t.a".to_string())]);
        let fresh = vec![
            spec("mixed.f", "mixed f"),
            spec("t.a", "a"),
            spec("t.a", "a with recorded args"),
            spec("t.f", "f with recorded args"),
            spec("t.g", "g"),
        ];
        let names: Vec<String> = requeue(fresh.clone(), &started)
            .into_iter()
            .map(|s| s.name)
            .collect();
        assert_eq!(names, ["mixed.f", "t.f", "t.g", "t.a.with-test-calls"]);
        // The model changing again before they start moves none of them.
        let again: Vec<String> = requeue(fresh, &started)
            .into_iter()
            .map(|s| s.name)
            .collect();
        assert_eq!(again, names);
    }

    fn scenario(kind: ScenarioKind, subject: &str) -> ftreview_stress::Scenario {
        ftreview_stress::Scenario {
            name: format!("{}.{subject}", kind.as_str()),
            kind,
            script: String::new(),
            callables: Vec::new(),
            c_callables: Vec::new(),
            model_source: ftreview_stress::ModelSource::Introspection,
        }
    }

    #[test]
    fn mixed_arguments_then_targeted_then_every_subject_a_turn_before_any_gets_a_second() {
        let ordered = budget_order(vec![
            scenario(ScenarioKind::SharedMutation, "m.A"),
            scenario(ScenarioKind::ReadWrite, "m.A"),
            scenario(ScenarioKind::Churn, "m.A"),
            scenario(ScenarioKind::SharedMutation, "m.B"),
            scenario(ScenarioKind::FunctionHammer, "m"),
            scenario(ScenarioKind::Targeted, "m.f"),
            scenario(ScenarioKind::MixedArguments, "m.A"),
            scenario(ScenarioKind::MixedArguments, "m.A.push"),
        ]);
        let names: Vec<&str> = ordered.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "mixed-arguments.m.A",
                "mixed-arguments.m.A.push",
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
