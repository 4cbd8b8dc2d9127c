//! `ftreview report RUN_DIR` on a real run directory's `run.json` (the runner's racy-fixture
//! run kept in tests/data), with and without a baseline.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use predicates::prelude::*;

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A run directory holding the kept `run.json`, its source tree pointed at the fixture sources.
fn run_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let text =
        std::fs::read_to_string(workspace().join("runner/tests/data/racy-run.json")).unwrap();
    let mut run: serde_json::Value = serde_json::from_str(&text).unwrap();
    run["target"]["source_dir"] = workspace()
        .join("test-fixtures/racy_ext")
        .canonicalize()
        .unwrap()
        .display()
        .to_string()
        .into();
    std::fs::write(dir.path().join("run.json"), run.to_string()).unwrap();
    dir
}

fn report(dir: &Path) -> Command {
    let mut command = Command::cargo_bin("ftreview").unwrap();
    command.arg("report").arg(dir);
    command
}

#[test]
fn report_rebuilds_every_output_and_exits_1_on_findings() {
    let dir = run_dir();
    report(dir.path())
        .assert()
        .code(1)
        .stdout(predicate::str::contains("migration-plan.md"))
        .stdout(predicate::str::contains("results.sarif"))
        .stderr(predicate::str::contains("ftfixture-racy 0.1.0: needs work"));
    let plan = std::fs::read_to_string(dir.path().join("migration-plan.md")).unwrap();
    assert!(
        plan.contains("The module-wide variable `call_count` is shared by every thread"),
        "{plan}"
    );
    assert!(
        plan.contains("> 19 |     call_count++;"),
        "the plan shows the racing line from the kept sources"
    );
    let sarif: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("results.sarif")).unwrap())
            .unwrap();
    assert_eq!(sarif["version"], "2.1.0");
}

#[test]
fn a_baseline_of_the_same_run_exits_0() {
    let dir = run_dir();
    report(dir.path()).assert().code(1);
    let baseline = dir.path().join("baseline.json");
    std::fs::rename(dir.path().join("results.json"), &baseline).unwrap();
    report(dir.path())
        .arg("--baseline")
        .arg(&baseline)
        .assert()
        .code(0)
        .stderr(predicate::str::contains(
            "0 new finding(s), 0 of them fail CI",
        ));
}

#[test]
fn format_and_out_select_what_is_written_where() {
    let dir = run_dir();
    let out = tempfile::tempdir().unwrap();
    report(dir.path())
        .args(["--format", "json", "--out"])
        .arg(out.path())
        .assert()
        .code(1);
    let written: Vec<String> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(written, ["results.json"]);
}

#[test]
fn a_directory_without_run_json_is_a_harness_error_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    report(dir.path())
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "a run directory written by `ftreview run`?",
        ));
}

#[test]
fn a_run_directory_of_an_older_schema_is_refused_with_what_to_do_and_left_as_it_was() {
    let dir = run_dir();
    let path = dir.path().join("run.json");
    let mut run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let current = run["schema_version"].as_u64().unwrap();
    run["schema_version"] = (current - 1).into();
    let older = run.to_string();
    std::fs::write(&path, &older).unwrap();
    report(dir.path())
        .assert()
        .code(2)
        .stderr(predicate::str::contains("written by an older ftreview"))
        .stderr(predicate::str::contains("rerun `ftreview run`"));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), older);
    assert!(!dir.path().join("migration-plan.md").exists());
}
