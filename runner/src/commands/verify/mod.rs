//! `ftreview verify RUN_DIR --source PATCHED_TREE` (or `--target name==version`): builds the
//! patched extension with the run's interpreter, the way `ftreview run` builds, and reruns each
//! problem's small reproducer K times on the run's build (before) and on the patched one
//! (after). Writes `RUN_DIR/verify-<time>/verification.{md,json}`; exits 0 only when every
//! problem is fixed and the reruns showed nothing new. The trees given are copied, never changed.
//! `--suggested` verifies the run's own mechanical patches instead (`suggested.rs`).

mod suggested;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use clap::Args;
use ftreview_reports::results::Owner;
use ftreview_reports::{RunRecord, Tally, Verification, VerifiedProblem, VerifyStatus};
use ftreview_toolchain::Interpreter;
use serde::Deserialize;
use tokio::sync::{watch, Semaphore};

use crate::env::Installer;
use crate::events::{Display, Events};
use crate::exit::Outcome;
use crate::phases::{
    self, Ctx, Proven, RecordedProblems, ReproContext, ReproOptions, ReproTarget, StressOptions,
};
use crate::process::Step;
use crate::registry::Registry;
use crate::review::{self, FixedShares, PhaseSet, RunOptions};
use crate::rundir::RunDir;
use crate::target::TargetSpec;

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The run directory of the review whose problems the patch should fix.
    pub run_dir: PathBuf,
    /// The patched source tree (copied into the verification directory, never changed).
    #[arg(
        long,
        value_name = "DIR",
        required_unless_present_any = ["target", "suggested"],
        conflicts_with_all = ["target", "suggested"]
    )]
    pub source: Option<PathBuf>,
    /// A release to verify instead of a tree: `name==version` (a later release of the package).
    #[arg(long, value_name = "NAME==VERSION", conflicts_with = "suggested")]
    pub target: Option<String>,
    /// Verify ftreview's own suggested patches: each mechanical fix (a critical section over a
    /// type's methods, an atomic counter) as a diff in `RUN_DIR/patches/`, applied to a scratch
    /// copy, built and rerun; the plan then shows the ones that fix their problem.
    #[arg(long)]
    pub suggested: bool,
    /// Verify only this problem (its ID in the plan); repeat for several. Default: all.
    #[arg(long = "problem", value_name = "ID")]
    pub problems: Vec<String>,
    /// Reruns of each problem's reproducer, on each build.
    #[arg(long, short = 'k', default_value_t = 5, value_name = "K")]
    pub runs: u32,
    /// No progress output.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

pub fn run(args: VerifyArgs) -> anyhow::Result<Outcome> {
    let run_dir = std::fs::canonicalize(&args.run_dir)
        .with_context(|| format!("{} is not a directory", args.run_dir.display()))?;
    let record = RunRecord::load(&run_dir)?;
    let registry = Registry::load(None)?;
    let mut problems = RecordedProblems::load(&run_dir, &record, &registry)?;
    select_problems(&mut problems, &args.problems)?;
    if problems.targets.is_empty() {
        bail!(
            "the run in {} has no problem to verify (no race with an owner)",
            run_dir.display()
        );
    }
    let patch = (!args.suggested).then(|| patched_spec(&args)).transpose()?;
    if !record.target.source_dir.is_dir() {
        bail!(
            "the run's source tree {} is gone: verify needs it to rerun the reproducers on the run's build",
            record.target.source_dir.display()
        );
    }
    let interpreter = Interpreter::from_python(&record.interpreter.python).with_context(|| {
        format!(
            "the run's interpreter {} is no longer usable",
            record.interpreter.python.display()
        )
    })?;
    let verifier = Verifier {
        interpreter,
        options: run_options(registry),
        events: Display::stderr(args.quiet),
        problems,
        runs: args.runs.max(1),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let Some((patched, after)) = patch else {
        return runtime.block_on(suggested::verify(&verifier, &record, &run_dir));
    };
    let dir = RunDir::create(&run_dir, "verify", false)?;
    let targets = &verifier.problems.targets;
    let (before, after) = runtime.block_on(async {
        let before = verifier
            .side(&dir, "before", &run_build(&record), targets)
            .await?;
        let after = verifier.side(&dir, "after", &after, targets).await?;
        anyhow::Ok((before, after))
    })?;
    let verification = verifier.compare(patched, &before, &after);
    for file in verification.write(&dir.root)? {
        println!("{}", file.display());
    }
    eprint!("{}", verification.markdown());
    Ok(verification.outcome())
}

/// The tree the run built: reruns on it are the "before" side.
fn run_build(record: &RunRecord) -> TargetSpec {
    TargetSpec::Dir {
        path: record.target.source_dir.clone(),
    }
}

/// Keeps the problems `--problem` asked for; an ID the run does not have is an error that lists
/// the ones it has.
fn select_problems(problems: &mut RecordedProblems, wanted: &[String]) -> anyhow::Result<()> {
    if wanted.is_empty() {
        return Ok(());
    }
    let known: Vec<&str> = problems
        .targets
        .iter()
        .map(|t| t.problem_id.as_str())
        .collect();
    if let Some(unknown) = wanted.iter().find(|id| !known.contains(&id.as_str())) {
        bail!(
            "--problem {unknown}: the run has no such problem with a reproducer; its problems are: {}",
            known.join(", ")
        );
    }
    problems.targets.retain(|t| wanted.contains(&t.problem_id));
    Ok(())
}

/// What `--source` or `--target` names, and how to fetch it.
fn patched_spec(args: &VerifyArgs) -> anyhow::Result<(String, TargetSpec)> {
    match (&args.source, &args.target) {
        (Some(tree), _) => {
            if !tree.is_dir() {
                bail!(
                    "--source {}: not a directory (give the patched source tree)",
                    tree.display()
                );
            }
            let spec = TargetSpec::parse(&tree.to_string_lossy())?;
            Ok((spec.to_string(), spec))
        }
        (None, Some(release)) => {
            let spec = TargetSpec::parse(release)?;
            if !matches!(spec, TargetSpec::Pypi { .. }) {
                bail!(
                    "--target {release}: give a release as name==version (a tree goes in --source)"
                );
            }
            Ok((release.clone(), spec))
        }
        (None, None) => {
            bail!("give the patch as --source DIR, --target name==version or --suggested")
        }
    }
}

/// The settings the setup stages read (the instrumented phases do not run).
fn run_options(registry: Registry) -> RunOptions {
    RunOptions {
        jobs: 1,
        parallel_threads: 1,
        budget: Duration::from_secs(3600),
        fixed: FixedShares::default(),
        test_timeout: Duration::from_secs(60),
        benchmarks: false,
        stress: StressOptions {
            scenario_timeout: Duration::from_secs(60),
            seed: 0,
            threads: 4,
            test_calls: false,
        },
        repro_runs: 0,
        phases: PhaseSet {
            tests: false,
            parallel: false,
            stress: false,
            repro: true,
        },
        registry,
        user_suppressions: Vec::new(),
        rebuild: false,
        installer: Installer::Uv,
    }
}

struct Verifier {
    interpreter: Interpreter,
    options: RunOptions,
    events: Events,
    problems: RecordedProblems,
    runs: u32,
}

/// The reruns on one build.
struct Side {
    proven: Proven,
    /// Whether each problem's operations still run, by problem id.
    probes: BTreeMap<String, Probe>,
}

/// What one call of each operation did (the probe script's output).
#[derive(Debug, Deserialize)]
struct Probe {
    /// The error making the shared objects, if that failed.
    setup: Option<String>,
    /// Per operation: the exception type it raised, if any.
    operations: Vec<Option<String>>,
}

/// Exceptions saying an operation does not exist (any more) or takes other arguments.
const API_ERRORS: [&str; 3] = ["AttributeError", "TypeError", "NameError"];

impl Probe {
    /// What the patched build cannot run any more that the run's build could.
    fn lost_against(&self, before: &Probe) -> Option<String> {
        if let (Some(error), None) = (&self.setup, &before.setup) {
            return Some(format!("making the shared object fails: {error}"));
        }
        let lost: Vec<String> = (self.operations.iter().zip(&before.operations))
            .enumerate()
            .filter_map(|(i, (after, before))| match (after, before) {
                (Some(error), None) if API_ERRORS.contains(&error.as_str()) => {
                    Some(format!("operation {} raises {error}", i + 1))
                }
                _ => None,
            })
            .collect();
        (!lost.is_empty()).then(|| lost.join(", "))
    }
}

impl Verifier {
    /// Builds and installs `spec` in `dir/label` and reruns the targets' reproducers there.
    async fn side(
        &self,
        dir: &RunDir,
        label: &str,
        spec: &TargetSpec,
        targets: &[ReproTarget],
    ) -> anyhow::Result<Side> {
        self.events.note(&format!("{label}: building {spec}"));
        let run_dir = RunDir::create(&dir.root, label, true)?;
        let (_cancel, cancelled) = watch::channel(false);
        let installation = review::install(
            spec,
            run_dir,
            &self.interpreter,
            &self.options,
            cancelled,
            &self.events,
        )
        .await
        .map_err(|err| anyhow!("{label}: {spec} could not be built and installed: {err}"))?;
        let reader = (installation.review.reader())
            .with_context(|| format!("{label}: no report reader for the build"))?;
        let ctx = installation.ctx.clone();
        let mut probes = BTreeMap::new();
        for target in targets {
            if let Some(probe) = self.probe(&ctx, target).await? {
                probes.insert(target.problem_id.clone(), probe);
            }
        }
        let context = Arc::new(ReproContext {
            ctx,
            record: installation.review.record.clone(),
            reader,
            model: self.problems.model.clone(),
            hints: self.problems.hints.clone(),
        });
        let task = self.events.start(&format!("{label}: reruns"));
        let options = ReproOptions {
            runs: self.runs,
            deadline: Instant::now() + Duration::from_secs(24 * 3600),
            // Before and after each get all K reruns, so their counts compare.
            stop_when_hung: false,
        };
        let proven = phases::reproduce(
            context,
            targets.to_vec(),
            options,
            Arc::new(Semaphore::new(1)),
        )
        .await;
        task.finish(&format!("{} runs", proven.runs));
        Ok(Side { proven, probes })
    }

    /// Calls each of a problem's operations once on this build (`None`: no reproducer).
    async fn probe(&self, ctx: &Ctx, target: &ReproTarget) -> anyhow::Result<Option<Probe>> {
        let Some(reproducer) = self.problems.reproducer(target) else {
            return Ok(None);
        };
        let logs = ctx.run_dir.logs(&format!("probe/{}", target.problem_id))?;
        let script = logs.join("probe.py");
        std::fs::write(&script, reproducer.probe())?;
        let step = Step::new(
            format!("probe {}", target.problem_id),
            &ctx.venv.python,
            &logs,
            &logs.join("output.log"),
        )
        .arg(&script)
        .envs(&ctx.tsan_env(&logs))
        .env("PYTHON_GIL", "0")
        .timeout(Duration::from_secs(300));
        let probe = crate::env::helper_output(step, &ctx.runner)
            .await
            .with_context(|| format!("probing the operations of {}", target.problem_id))?;
        Ok(Some(probe))
    }

    fn compare(&self, patched: String, before: &Side, after: &Side) -> Verification {
        let problems = (self.problems.targets.iter())
            .map(|target| {
                let id = &target.problem_id;
                self.verdict(target, before.tally(id), before.probes.get(id), after)
            })
            .collect();
        Verification {
            patched,
            runs: self.runs,
            problems,
            new_problems: self.new_problems(after),
        }
    }

    /// Races the reruns on `side` showed that are none of the run's problems (their ids).
    fn new_problems(&self, side: &Side) -> Vec<String> {
        let known: Vec<&Owner> = self.problems.targets.iter().map(|t| &t.owner).collect();
        let mut new_problems: Vec<String> = (side.proven.reruns.values())
            .flat_map(|rerun| &rerun.shown)
            .filter(|owner| {
                !known
                    .iter()
                    .any(|k| ftreview_reports::same_problem(k, owner))
            })
            .map(ftreview_reports::problem_id)
            .collect();
        new_problems.sort();
        new_problems.dedup();
        new_problems
    }

    /// `was`: how often the problem reproduced on the run's build; `before`: what its
    /// operations did there, when they were probed.
    fn verdict(
        &self,
        target: &ReproTarget,
        was: Tally,
        before: Option<&Probe>,
        after: &Side,
    ) -> VerifiedProblem {
        let id = &target.problem_id;
        let now = after.tally(id);
        let lost = match (after.probes.get(id), before) {
            (Some(after), Some(before)) => after.lost_against(before),
            _ => None,
        };
        let (status, note) = match (was.reproduced, now.reproduced, lost) {
            (_, 1.., _) => (VerifyStatus::StillReproduces, None),
            (_, 0, Some(lost)) => (VerifyStatus::NotExercised, Some(lost)),
            (0, 0, None) => (VerifyStatus::NotReproducedBefore, None),
            (1.., 0, None) => (VerifyStatus::Fixed, None),
        };
        VerifiedProblem {
            id: id.clone(),
            title: (target.request.title)
                .trim_end_matches(&format!(" (ftreview {id})"))
                .to_string(),
            before: was,
            after: now,
            status,
            note,
        }
    }
}

impl Side {
    /// How often the reruns on this build showed problem `id`.
    fn tally(&self, id: &str) -> Tally {
        self.proven
            .reruns
            .get(id)
            .map_or(Tally::default(), |r| Tally {
                reproduced: r.reproducer.reproduced,
                runs: r.reproducer.runs,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(setup: Option<&str>, operations: &[Option<&str>]) -> Probe {
        Probe {
            setup: setup.map(String::from),
            operations: operations.iter().map(|o| o.map(String::from)).collect(),
        }
    }

    #[test]
    fn an_operation_that_no_longer_exists_is_not_exercised_any_more() {
        let before = probe(None, &[None, Some("IndexError")]);
        let renamed = probe(None, &[Some("AttributeError"), Some("IndexError")]);
        assert_eq!(
            renamed.lost_against(&before).as_deref(),
            Some("operation 1 raises AttributeError")
        );
        let same = probe(None, &[None, Some("IndexError")]);
        assert_eq!(same.lost_against(&before), None);
        let gone = probe(
            Some("AttributeError: module has no attribute 'Vector'"),
            &[],
        );
        assert!(gone
            .lost_against(&before)
            .unwrap()
            .contains("shared object"));
    }

    #[test]
    fn problem_keeps_the_problems_asked_for_and_an_unknown_id_lists_the_runs() {
        let (dir, record) = crate::testdata::recorded_run();
        let load = || RecordedProblems::load(dir.path(), &record, &Registry::default()).unwrap();
        let ids: Vec<String> = (load().targets.iter())
            .map(|t| t.problem_id.clone())
            .collect();
        assert!(ids.len() > 1, "{ids:?}");

        let mut all = load();
        select_problems(&mut all, &[]).unwrap();
        assert_eq!(all.targets.len(), ids.len(), "no --problem: every problem");

        let mut one = load();
        select_problems(&mut one, &ids[1..2]).unwrap();
        let kept: Vec<&str> = one.targets.iter().map(|t| t.problem_id.as_str()).collect();
        assert_eq!(kept, [ids[1].as_str()]);

        let mut problems = load();
        let asked = [ids[0].clone(), "problem-nosuchid".to_string()];
        let err = select_problems(&mut problems, &asked)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("--problem problem-nosuchid: "), "{err}");
        assert!(
            err.contains(&ids.join(", ")),
            "it lists the run's problems: {err}"
        );
    }

    #[test]
    fn a_patch_is_a_tree_or_a_release() {
        let args = |source: Option<&str>, target: Option<&str>| VerifyArgs {
            run_dir: ".".into(),
            source: source.map(PathBuf::from),
            target: target.map(String::from),
            suggested: false,
            problems: Vec::new(),
            runs: 1,
            quiet: true,
        };
        let err = patched_spec(&args(Some("/nonexistent/tree"), None))
            .err()
            .unwrap();
        assert!(err.to_string().contains("not a directory"), "{err}");
        let (patched, spec) = patched_spec(&args(None, Some("multidict==6.7.1"))).unwrap();
        assert_eq!(patched, "multidict==6.7.1");
        assert!(matches!(spec, TargetSpec::Pypi { .. }));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_string_lossy().into_owned();
        assert!(patched_spec(&args(None, Some(&path))).is_err());
        assert!(matches!(
            patched_spec(&args(Some(&path), None)).unwrap().1,
            TargetSpec::Dir { .. }
        ));
    }
}
