//! The racy fixture, judged by what the user reads: every planted bug is exactly one problem
//! in results.json and the plan, with its fix, a reproducer that reproduced, and the test
//! that found it; `run` and `report` take one exit decision.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use ftreview_reports::model::Phase;
use ftreview_reports::results::{Category, Finding, ReproducerKind, SourceLocation};

use crate::support::*;

fn racy_run(python: &Path) -> Run {
    shared_run("racy_ext", python, PINNED_SHARES)
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
fn problems_of_planted(
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

#[test]
fn every_planted_race_is_exactly_one_problem_in_results_json_and_the_plan() {
    let Some(python) = interpreter() else { return };
    let run = racy_run(&python);
    assert_eq!(run.code, 1, "findings exit with 1\n{}", run.stderr);
    let results = run.results();
    let problems: Vec<&Finding> = results
        .findings
        .iter()
        .filter(|f| f.category == Category::Race)
        .collect();
    let planted = problems_of_planted(&problems, &expected("racy_ext"));

    let expected = expected("racy_ext");
    for (race, ids) in &planted {
        assert_eq!(
            ids.len(),
            1,
            "planted race {race} is in {} problems: {ids:?}",
            ids.len()
        );
        let kind = &expected
            .races
            .iter()
            .find(|r| &r.id == race)
            .unwrap()
            .tsan_kind;
        let problem = problems.iter().find(|p| p.id == ids[0]).unwrap();
        assert!(
            problem.sites.iter().any(|s| &s.kind == kind),
            "{race}: no {kind} site in {:?}",
            problem.sites
        );
    }
    let distinct: BTreeSet<&String> = planted.values().flatten().collect();
    assert_eq!(
        distinct.len(),
        planted.len(),
        "two planted races share a problem: {planted:?}"
    );
    let unplanned: Vec<(&str, &str)> = problems
        .iter()
        .filter(|p| !distinct.contains(&p.id))
        .map(|p| (p.id.as_str(), p.title.as_str()))
        .collect();
    assert!(
        unplanned.is_empty(),
        "problems no planted race explains: {unplanned:?}"
    );
    let plan = run.plan();
    for id in &distinct {
        assert!(
            plan.contains(&format!("(`{id}`, ")),
            "{id} has no section in the plan"
        );
    }
    assert_eq!(results.counts.problems, planted.len());
}

#[test]
fn the_reliable_counter_race_is_reproduced_by_its_small_reproducer_and_by_repro() {
    let Some(python) = interpreter() else { return };
    let run = racy_run(&python);
    let results = run.results();
    let counter = results
        .findings
        .iter()
        .find(|f| f.category == Category::Race && f.variable.as_deref() == Some("call_count"))
        .expect("the counter problem");
    let reproducer = counter.reproducer.as_ref().expect("a reproducer");
    assert_eq!(reproducer.kind, ReproducerKind::Small, "{reproducer:?}");
    assert!(
        reproducer.runs >= 2 && reproducer.reproduced >= 1,
        "{reproducer:?}"
    );
    let script =
        std::fs::read_to_string(run.dir.join(reproducer.script.as_ref().unwrap())).unwrap();
    assert!(
        script.contains("threading.Barrier") && !script.contains("ftreview_"),
        "{script}"
    );
    assert!(script.lines().count() <= 40, "{script}");
    assert!(
        !script.contains(run.dir.to_str().unwrap()),
        "no absolute path: {script}"
    );

    let dir = run.dir.to_str().unwrap();
    let (code, stdout, stderr) = ftreview(&[
        "repro",
        &counter.id,
        "--runs",
        "2",
        "--json",
        "--run-dir",
        dir,
    ]);
    let summary: serde_json::Value =
        serde_json::from_str(&stdout).unwrap_or_else(|_| panic!("{stderr}"));
    assert!(summary["reproduced"].as_u64().unwrap() >= 1, "{stderr}");
    assert_eq!(code, 1, "a reproduced problem exits 1\n{stderr}");
}

#[test]
fn races_found_by_the_suite_are_attributed_to_the_test_that_ran() {
    let Some(python) = interpreter() else { return };
    let results = racy_run(&python).results();
    let counter = results
        .findings
        .iter()
        .find(|f| f.variable.as_deref() == Some("call_count"))
        .expect("the counter problem");
    let tests: Vec<&str> = counter
        .origins
        .iter()
        .filter(|o| o.phase == Phase::ParallelTests)
        .filter_map(|o| o.item.as_deref())
        .collect();
    assert!(
        !tests.is_empty(),
        "no parallel test among {:?}",
        counter.origins
    );
    assert!(
        tests
            .iter()
            .all(|t| t.ends_with("::test_bump_counts_calls")),
        "{tests:?}"
    );
}

#[test]
fn the_racy_run_directory_is_complete_and_its_paths_open() {
    let Some(python) = interpreter() else { return };
    let run = racy_run(&python);
    let record = run.record();
    for file in [
        "run.json",
        "results.json",
        "results.sarif",
        "migration-plan.md",
        "commands.jsonl",
        "suppressions.txt",
        "logs/tests/output.log",
        "logs/tests/tests.jsonl",
        "logs/parallel-tests/output.log",
        "logs/stress/api-model.json",
        "findings/reports.jsonl",
        "harness/ftreview_pytest_plugin.py",
    ] {
        assert!(run.dir.join(file).is_file(), "missing {file}");
    }
    assert!(
        record.target.source_dir.starts_with(&run.dir),
        "sources outside the run directory"
    );
    assert!(
        record.instrumentation.iter().all(|m| m.instrumented) && !record.instrumentation.is_empty()
    );
    let phases: Vec<Phase> = record.phases.iter().map(|p| p.phase).collect();
    for phase in [
        Phase::Fetch,
        Phase::Build,
        Phase::Install,
        Phase::GilCheck,
        Phase::Stress,
        Phase::Tests,
        Phase::ParallelTests,
        Phase::Repro,
    ] {
        assert!(
            phases.contains(&phase),
            "phase {phase} missing from {phases:?}"
        );
    }
    let schedule = record.schedule.as_ref().expect("the schedule");
    assert_eq!(schedule.budget_secs, 900.0, "the default budget");
    let stress = schedule.shares.iter().find(|s| s.phase == Phase::Stress);
    assert_eq!(stress.map(|s| s.secs), Some(240.0), "{schedule:?}");
    assert_eq!(record.gil.reenabled_on_import, Some(false));
    let summary: serde_json::Value =
        serde_json::from_str(&run.stdout).expect("--json summary on stdout");
    assert_eq!(summary["outcome"], "findings");
    let results = run.results();
    for location in results
        .findings
        .iter()
        .flat_map(|f| f.sites.iter().flat_map(|s| &s.locations))
        .filter(|l| !l.in_interpreter)
    {
        assert!(
            record.target.source_dir.join(&location.file).is_file(),
            "{} does not open",
            location.file
        );
    }
}

#[test]
fn run_and_report_take_one_exit_decision_with_and_without_a_baseline() {
    let Some(python) = interpreter() else { return };
    let run = racy_run(&python);
    let dir = run.dir.to_str().unwrap();
    let out = tempfile::tempdir().unwrap();
    let (code, _, stderr) = ftreview(&["report", dir, "--out", out.path().to_str().unwrap()]);
    assert_eq!(code, run.code, "report and run disagree\n{stderr}");
    let baseline = out.path().join("results.json");
    let (code, _, stderr) = ftreview(&[
        "report",
        dir,
        "--out",
        out.path().join("again").to_str().unwrap(),
        "--baseline",
        baseline.to_str().unwrap(),
    ]);
    assert_eq!(
        code, 0,
        "nothing is new against the run's own results\n{stderr}"
    );
}
