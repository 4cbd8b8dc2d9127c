//! The suite runs against the installed, instrumented build, never the source tree's copy of
//! the package; collection errors are named; a reused build keeps the run self-contained.

use ftreview_reports::model::{CollectionErrorKind, LayoutStrategy, Phase};
use ftreview_reports::results::Category;

use crate::support::*;

#[test]
fn a_package_at_the_top_of_the_tree_is_tested_installed_and_its_race_found() {
    let Some(python) = interpreter() else { return };
    let run = shared_run(
        "toplevel_ext",
        &python,
        &["--phases", "tests,parallel", "--timeout", "180"],
    );
    let record = run.record();
    let layout = record
        .test_layout
        .as_ref()
        .expect("the layout the suite ran in");
    assert_eq!(layout.strategy, LayoutStrategy::Scratch, "{layout:?}");
    assert!(
        layout.root.starts_with(&run.dir),
        "{}",
        layout.root.display()
    );
    let expected = expected("toplevel_ext");
    let missing = expected.missing_test_dependency.as_deref().unwrap();
    let named = layout.collection_errors.iter().any(|e| {
        e.kind
            == CollectionErrorKind::MissingTestDependency {
                module: missing.to_string(),
            }
    });
    assert!(named, "{:?}", layout.collection_errors);
    assert!(run
        .plan()
        .contains(&format!("missing test dependency `{missing}`")));
    let results = run.results();
    let race = &expected.races[0];
    let found = results
        .findings
        .iter()
        .filter(|f| f.category == Category::Race)
        .any(|p| {
            p.origins.iter().any(|o| o.phase == Phase::ParallelTests)
                && p.sites.iter().flat_map(|s| &s.locations).any(|l| {
                    l.function.as_deref() == Some(race.function.as_str())
                        && l.line.is_some_and(|n| race.lines.contains(&n))
                })
        });
    assert!(
        found,
        "the parallel suite did not find {}\n{}",
        race.id, run.stderr
    );
}

#[test]
fn a_reused_build_keeps_the_second_run_self_contained() {
    let Some(python) = interpreter() else { return };
    let first = shared_run(
        "toplevel_ext",
        &python,
        &["--phases", "tests,parallel", "--timeout", "180"],
    );
    let tmp = tempfile::tempdir().unwrap();
    // A copy of the first run directory stands in for it, so deleting it harms no other test.
    let copy = tmp.path().join("first");
    copy_dir(&first.dir, &copy);
    let target = fixtures().join("toplevel_ext");
    let second = ftreview_run(
        &python,
        &tmp.path().join("second"),
        &[
            target.to_str().unwrap(),
            "--phases",
            "tests,parallel",
            "--timeout",
            "120",
            "--repro-runs",
            "0",
        ],
        &[],
    );
    assert!(
        second.stderr.contains("reused the cached wheel")
            || second
                .record()
                .phases
                .iter()
                .any(|p| p.phase == Phase::Build),
        "{}",
        second.stderr
    );
    std::fs::remove_dir_all(&copy).unwrap();
    let record = second.record();
    assert!(record.target.source_dir.starts_with(&second.dir));
    for report in second.reports() {
        for frame in report.all_stacks().flat_map(|(_, s)| &s.frames) {
            if let Some(file) = frame.file.as_deref().filter(|f| f.ends_with("src/ext.c")) {
                assert!(std::path::Path::new(file).is_file(), "{file} does not open");
                assert!(
                    file.starts_with(second.dir.to_str().unwrap()),
                    "{file} points outside the run"
                );
            }
        }
    }
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success());
}
