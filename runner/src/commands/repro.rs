//! `ftreview repro`: reruns a kept reproducer K times under the run's interpreter and
//! environment and says how many runs reproduced the race.
//!
//! The argument is either a scenario script kept in a run directory
//! (`RUN/logs/stress/<name>/script.py`) or a finding id (`tsan-…`) of a run (`--run-dir`, default
//! the current directory): a finding is replayed through the scenario or test that produced it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use ftreview_reports::model::{PytestInvocation, RunRecord};
use ftreview_reports::results::Owner;
use ftreview_toolchain::Interpreter;
use tokio::sync::watch;
use tsan_parse::{Classifier, ClusterOptions};

use crate::env::run_env;
use crate::exit::Outcome;
use crate::phases::{killed_while_hung, read_reports};
use crate::process::{Runner, Step};
use crate::rundir::RunDir;

#[derive(Debug, Args)]
pub struct ReproArgs {
    /// A kept script (RUN/repro/PROBLEM.py, RUN/logs/stress/NAME/script.py), a problem id
    /// (problem-…: its small reproducer) or a site pair's id (tsan-…).
    #[arg(value_name = "SCRIPT_OR_FINDING")]
    pub what: String,
    /// How many times to run it.
    #[arg(long, short = 'k', default_value_t = 10)]
    pub runs: usize,
    /// The run directory the finding belongs to (for a finding id).
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub run_dir: PathBuf,
    /// Timeout of one run, in seconds.
    #[arg(long, default_value_t = 120, value_name = "SECS")]
    pub timeout: u64,
    /// Print the result as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// What a rerun must show to count.
enum Wanted {
    /// Any race in the extension (a script given by path).
    AnyRace,
    /// The same root cause (`tsan-…`).
    RootCause(String),
    /// The same problem (`problem-…`): a root cause on the same shared state.
    Problem { id: String, owner: Owner },
}

impl Wanted {
    fn name(&self) -> &str {
        match self {
            Wanted::AnyRace => "a race in the extension",
            Wanted::RootCause(id) | Wanted::Problem { id, .. } => id,
        }
    }

    fn shown_by(&self, record: &RunRecord, triage: &tsan_parse::Triage) -> bool {
        match self {
            Wanted::AnyRace => !triage.root_causes.is_empty(),
            Wanted::RootCause(id) => triage.root_causes.iter().any(|c| &c.id == id),
            Wanted::Problem { owner, .. } => ftreview_reports::reproduces(record, triage, owner),
        }
    }
}

/// What gets rerun.
enum Subject {
    Script(PathBuf),
    /// A pytest node id, rerun with the command its phase ran (pytest-run-parallel's options
    /// included).
    Test {
        nodeid: String,
        invocation: PytestInvocation,
    },
}

pub fn run(args: ReproArgs) -> anyhow::Result<Outcome> {
    let (run_dir, subject, wanted) = resolve(&args)?;
    let record = RunRecord::load(&run_dir)?;
    let interpreter = Interpreter::from_python(&record.interpreter.python).with_context(|| {
        format!(
            "the run's interpreter {} is no longer usable",
            record.interpreter.python.display()
        )
    })?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let reproduced = runtime.block_on(rerun(
        &args,
        &run_dir,
        &record,
        &interpreter,
        &subject,
        &wanted,
    ))?;
    let what = wanted.name();
    if args.json {
        println!(
            "{}",
            serde_json::json!({ "subject": args.what, "finding": what, "runs": args.runs, "reproduced": reproduced })
        );
    }
    eprintln!("{what}: reproduced in {reproduced} of {} runs", args.runs);
    Ok(if reproduced > 0 {
        Outcome::Findings
    } else {
        Outcome::Clean
    })
}

fn resolve(args: &ReproArgs) -> anyhow::Result<(PathBuf, Subject, Wanted)> {
    let path = Path::new(&args.what);
    if path.is_file() {
        let script = std::fs::canonicalize(path)?;
        let run_dir = script
            .ancestors()
            .find(|dir| dir.join(ftreview_reports::model::RUN_FILE).is_file())
            .with_context(|| {
                format!(
                    "{} is not inside a run directory (no run.json above it)",
                    script.display()
                )
            })?
            .to_path_buf();
        return Ok((run_dir, Subject::Script(script), Wanted::AnyRace));
    }
    if !args.what.starts_with("tsan-") && !args.what.starts_with("problem-") {
        bail!(
            "{}: neither a file nor a finding id (problem-… or tsan-…)",
            args.what
        );
    }
    let run_dir = std::fs::canonicalize(&args.run_dir)?;
    let record = RunRecord::load(&run_dir)?;
    if args.what.starts_with("problem-") {
        let (subject, owner) = subject_of_problem(&record, &run_dir, &args.what)?;
        let wanted = Wanted::Problem {
            id: args.what.clone(),
            owner,
        };
        return Ok((run_dir, subject, wanted));
    }
    let subject = subject_of_finding(&record, &run_dir, &args.what)?;
    Ok((run_dir, subject, Wanted::RootCause(args.what.clone())))
}

/// A problem's small reproducer when one reproduced, else the scenario or test that found it.
fn subject_of_problem(
    record: &RunRecord,
    run_dir: &Path,
    id: &str,
) -> anyhow::Result<(Subject, Owner)> {
    let results = ftreview_reports::analyze(record, None).results;
    let problem = results
        .findings
        .iter()
        .find(|f| f.id == id)
        .with_context(|| format!("{id} is not a problem of the run in {}", run_dir.display()))?;
    let owner = problem.owner.clone().context("a problem has an owner")?;
    if let Some(script) = record
        .reproductions
        .get(id)
        .and_then(|r| r.script.as_ref())
        .map(|s| run_dir.join(s))
        .filter(|s| s.is_file())
    {
        return Ok((Subject::Script(script), owner));
    }
    let site = problem
        .sites
        .first()
        .with_context(|| format!("{id} lists no site pair"))?;
    Ok((subject_of_finding(record, run_dir, &site.id)?, owner))
}

/// The scenario (preferred: standalone and fast) or test that produced a finding.
fn subject_of_finding(record: &RunRecord, run_dir: &Path, id: &str) -> anyhow::Result<Subject> {
    let cause = record
        .triage
        .root_causes
        .iter()
        .find(|c| c.id == id)
        .with_context(|| format!("{id} is not a finding of the run in {}", run_dir.display()))?;
    let scenario = cause.origins.iter().find_map(|o| o.origin.scenario());
    if let Some(name) = scenario {
        let script = run_dir.join("logs/stress").join(name).join("script.py");
        if script.is_file() {
            return Ok(Subject::Script(script));
        }
    }
    let test = cause.origins.iter().find_map(|o| {
        let nodeid = o.origin.test()?;
        let phase = record.phases.iter().find(|p| p.phase == o.origin.phase)?;
        Some((nodeid, phase.pytest.clone()?))
    });
    match test {
        Some((nodeid, invocation)) => Ok(Subject::Test {
            nodeid: nodeid.to_string(),
            invocation,
        }),
        None => bail!("{id} has no scenario or test to replay (it happened outside any test)"),
    }
}

async fn rerun(
    args: &ReproArgs,
    run_dir: &Path,
    record: &RunRecord,
    interpreter: &Interpreter,
    subject: &Subject,
    wanted: &Wanted,
) -> anyhow::Result<usize> {
    let dir = RunDir {
        root: run_dir.to_path_buf(),
    };
    let base = dir.logs(&format!("repro/{}", std::process::id()))?;
    let (_tx, cancel) = watch::channel(false);
    let runner = Runner::new(
        &base.join("commands.jsonl"),
        cancel,
        interpreter.command_prefix(),
    )?;
    let suppressions = Some(dir.suppressions()).filter(|p| p.is_file());
    let classifier = Classifier::new(
        record
            .instrumentation
            .iter()
            .filter_map(|m| m.path.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect(),
        vec![record.target.source_dir.clone()],
    );
    // The test venv (cached, linked from the run directory) has the instrumented install.
    let python = ["test-venv", "venv"]
        .iter()
        .map(|v| run_dir.join(v).join("bin/python"))
        .find(|p| p.exists())
        .unwrap_or_else(|| run_dir.join("venv/bin/python"));
    let mut reproduced = 0;
    for i in 0..args.runs {
        let logs = base.join(format!("run-{i}"));
        std::fs::create_dir_all(&logs)?;
        let env = run_env(
            &logs,
            suppressions.as_deref(),
            interpreter.symbolizer.as_deref(),
        );
        let step = match subject {
            Subject::Script(script) => Step::new(
                format!("repro {i}"),
                &python,
                &logs,
                &logs.join("output.log"),
            )
            .arg(script),
            Subject::Test { nodeid, invocation } => {
                let (program, options) = invocation
                    .argv
                    .split_first()
                    .context("the run recorded an empty pytest command")?;
                Step::new(
                    format!("repro {i}"),
                    program,
                    &invocation.cwd,
                    &logs.join("output.log"),
                )
                .args(options)
                .arg(nodeid)
                .envs(&invocation.env.clone().into_iter().collect::<Vec<_>>())
            }
        }
        .envs(&env)
        .env(
            "FTREVIEW_OUTCOME",
            logs.join("outcome.json").display().to_string(),
        )
        .timeout(Duration::from_secs(args.timeout));
        let result = runner.run(&step).await?;
        let reports = read_reports(&logs);
        let hung = killed_while_hung(&result, &reports);
        let triage = tsan_parse::cluster(reports, &classifier, ClusterOptions::default());
        // A rerun killed while hung proves a hang, not the race.
        let hit = wanted.shown_by(record, &triage) && !hung;
        let verdict = match (hit, hung) {
            (true, _) => "reproduced".to_string(),
            (false, true) => format!("not reproduced (hung: killed after {} s)", args.timeout),
            (false, false) => "not reproduced".to_string(),
        };
        eprintln!("run {}/{}: {verdict}", i + 1, args.runs);
        reproduced += usize::from(hit);
    }
    Ok(reproduced)
}

#[cfg(test)]
mod tests {
    use tsan_parse::Phase;

    use super::*;

    #[test]
    fn rejects_what_is_neither_file_nor_finding() {
        let args = ReproArgs {
            what: "nonsense".into(),
            runs: 1,
            run_dir: ".".into(),
            timeout: 1,
            json: false,
        };
        let err = resolve(&args).err().unwrap().to_string();
        assert!(err.contains("neither a file nor a finding id"), "{err}");
    }

    /// A real run record of the racy fixture (tests and parallel-tests phases).
    fn racy_record() -> RunRecord {
        serde_json::from_str(include_str!("../../tests/data/racy-run.json")).unwrap()
    }

    #[test]
    fn replays_a_finding_through_the_test_that_produced_it() {
        let record = racy_record();
        let cause = record
            .triage
            .root_causes
            .iter()
            .find(|c| {
                c.origins
                    .iter()
                    .all(|o| o.origin.phase == Phase::ParallelTests)
            })
            .unwrap();
        match subject_of_finding(&record, Path::new("/nonexistent"), &cause.id).unwrap() {
            Subject::Test { nodeid, invocation } => {
                assert!(nodeid.starts_with("tests/test_api.py::"), "{nodeid}");
                assert!(invocation.argv.iter().any(|a| a == "--parallel-threads=4"));
            }
            Subject::Script(_) => panic!("expected a test"),
        }
        assert!(subject_of_finding(&record, Path::new("/nonexistent"), "tsan-0000").is_err());
    }

    #[test]
    fn prefers_a_kept_scenario_script() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("logs/stress/shared_mutation_0/script.py");
        std::fs::create_dir_all(script.parent().unwrap()).unwrap();
        std::fs::write(&script, "pass").unwrap();
        let mut record = racy_record();
        let cause = &mut record.triage.root_causes[0];
        cause.origins[0].origin = tsan_parse::Origin::new(Phase::Stress, "shared_mutation_0");
        let id = cause.id.clone();
        assert!(
            matches!(subject_of_finding(&record, dir.path(), &id).unwrap(), Subject::Script(p) if p == script)
        );
    }
}
