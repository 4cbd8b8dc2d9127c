//! What the end-to-end tests share: running `ftreview run` for real, runs shared between
//! tests (and nextest's test processes) under a key of everything they depend on, and the
//! outputs a user reads, checked against their schema.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use assert_cmd::cargo::CommandCargoExt;
use fs2::FileExt;
use ftreview_reports::model::RunRecord;
use ftreview_reports::results::{Category, Finding, SourceLocation};
use ftreview_reports::Results;
use serde::{Deserialize, Serialize};

pub use ftreview_testkit::fixtures_dir as fixtures;

/// The TSan interpreter; `None` (a loud skip, or a failure under FTREVIEW_REQUIRE_E2E=1).
pub fn interpreter() -> Option<PathBuf> {
    ftreview_testkit::tsan_python()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Run {
    pub dir: PathBuf,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn record(&self) -> RunRecord {
        RunRecord::load(&self.dir).unwrap_or_else(|e| panic!("{e:#}\nstderr:\n{}", self.stderr))
    }

    /// `results.json`, after checking it against `reports/schema/results.schema.json`.
    pub fn results(&self) -> Results {
        let text = fs::read_to_string(self.dir.join("results.json"))
            .unwrap_or_else(|e| panic!("no results.json: {e}\n{}", self.stderr));
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        let schema: serde_json::Value = serde_json::from_str(
            &fs::read_to_string(fixtures().join("../reports/schema/results.schema.json")).unwrap(),
        )
        .unwrap();
        let validator = jsonschema::validator_for(&schema).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&value)
            .map(|e| format!("{e} at {}", e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "results.json breaks its schema:\n{}",
            errors.join("\n")
        );
        serde_json::from_value(value).unwrap()
    }

    pub fn plan(&self) -> String {
        fs::read_to_string(self.dir.join("migration-plan.md")).expect("migration-plan.md")
    }

    /// Every parsed report, as the run kept them (`findings/reports.jsonl`).
    pub fn reports(&self) -> Vec<tsan_parse::Report> {
        fs::read_to_string(self.dir.join("findings/reports.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

/// Runs `ftreview run ARGS -o DIR --json --quiet` with the interpreter.
pub fn ftreview_run(python: &Path, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut command = std::process::Command::cargo_bin("ftreview").unwrap();
    command
        .arg("run")
        .args(args)
        .arg("-o")
        .arg(dir)
        .arg("--json")
        .arg("--quiet")
        .env("FTREVIEW_PYTHON", python);
    for (k, v) in env {
        command.env(k, v);
    }
    let out = command.output().unwrap();
    Run {
        dir: dir.to_path_buf(),
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `ftreview ARGS` (any subcommand) and its exit code, stdout and stderr.
pub fn ftreview(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::cargo_bin("ftreview")
        .unwrap()
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Phase times fixed instead of shared out of the budget, so a slow build on a loaded machine
/// cannot leave the phases only the budget's floor.
pub const PINNED_SHARES: &[&str] = &["--stress-budget", "240", "--timeout", "150"];

/// A stress share long enough for every kind of scenario to take its turn after the
/// mixed-arguments and targeted ones (36 scenarios; 240 s ran 14 of them on a loaded machine).
pub const RACY_SHARES: &[&str] = &["--stress-budget", "420", "--timeout", "150"];

/// The racy fixture's full review at [`RACY_SHARES`], shared by the planted-bug and verify tests.
pub fn racy_run(python: &Path) -> Run {
    shared_run("racy_ext", python, RACY_SHARES)
}

/// A run of `fixture` shared by every test that asks for it (across test processes), redone
/// when anything it depends on changed: the fixture's sources, the interpreter, the binary.
pub fn shared_run(fixture: &str, python: &Path, args: &[&str]) -> Run {
    let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join("e2e");
    fs::create_dir_all(&base).unwrap();
    // Runs of one fixture with other arguments live beside each other.
    let name = match args {
        [] => fixture.to_string(),
        _ => format!(
            "{fixture}-{}",
            args.join(" ")
                .replace(|c: char| !c.is_ascii_alphanumeric(), "-")
        ),
    };
    let lock = fs::File::create(base.join(format!("{name}.lock"))).unwrap();
    lock.lock_exclusive().unwrap();
    let binary = assert_cmd::cargo::cargo_bin("ftreview");
    let key = format!(
        "{} {} {}",
        ftreview_testkit::content_hash(&[&fixtures().join(fixture), &binary]),
        ftreview_testkit::content_hash(&[python]),
        args.join(" ")
    );
    let result_file = base.join(format!("{name}.result.json"));
    if let Some((old_key, run)) = fs::read_to_string(&result_file)
        .ok()
        .and_then(|t| serde_json::from_str::<(String, Run)>(&t).ok())
    {
        if old_key == key && run.dir.join("run.json").is_file() {
            return run;
        }
    }
    let dir = base.join(&name);
    let _ = fs::remove_dir_all(&dir);
    let target = fixtures().join(fixture);
    let mut all = vec![target.to_str().unwrap()];
    all.extend(args);
    let run = ftreview_run(python, &dir, &all, &[]);
    fs::write(&result_file, serde_json::to_string(&(key, &run)).unwrap()).unwrap();
    run
}

/// A fixture's `expected.yaml`.
#[derive(Debug, Deserialize)]
pub struct Expected {
    pub races: Vec<PlantedRace>,
    #[serde(default)]
    pub missing_test_dependency: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct PlantedRace {
    pub id: String,
    /// Found by the stress phase only with the test suite's recorded calls.
    #[serde(default)]
    pub needs_test_calls: bool,
    pub tsan_kind: String,
    pub function: String,
    pub lines: Vec<u32>,
    pub peer: Option<Peer>,
}

#[derive(Debug, Deserialize)]
pub struct Peer {
    pub function: String,
    pub lines: Vec<u32>,
}

pub fn expected(fixture: &str) -> Expected {
    serde_yaml_ng::from_str(
        &fs::read_to_string(fixtures().join(fixture).join("expected.yaml")).unwrap(),
    )
    .unwrap()
}

/// The problems of a run that are races.
pub fn races(results: &Results) -> Vec<&Finding> {
    results
        .findings
        .iter()
        .filter(|f| f.category == Category::Race)
        .collect()
}

fn at(location: &SourceLocation, function: &str, lines: &[u32]) -> bool {
    location.function.as_deref() == Some(function)
        && location.line.is_some_and(|n| lines.contains(&n))
}

/// Whether one of a problem's racing site pairs is the planted race: one side in its function
/// at one of its lines and, when it names a peer, the other side at the peer.
fn holds(problem: &Finding, race: &PlantedRace) -> bool {
    problem.sites.iter().any(|site| {
        let sides = &site.locations;
        sides.iter().enumerate().any(|(i, side)| {
            at(side, &race.function, &race.lines)
                && race.peer.as_ref().is_none_or(|peer| {
                    sides
                        .iter()
                        .enumerate()
                        .any(|(j, other)| j != i && at(other, &peer.function, &peer.lines))
                })
        })
    })
}

/// For each planted race, the problems that hold it.
pub fn problems_of_planted(
    problems: &[&Finding],
    expected: &Expected,
) -> BTreeMap<String, Vec<String>> {
    expected
        .races
        .iter()
        .map(|race| {
            let ids = problems
                .iter()
                .filter(|p| holds(p, race))
                .map(|p| p.id.clone())
                .collect();
            (race.id.clone(), ids)
        })
        .collect()
}
