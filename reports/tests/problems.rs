//! Problems from real TSan logs of the same programs built with gcc and with clang: the same
//! problems, with the same ids, whichever runtime printed the reports.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;

use ftreview_reports::analyze;
use ftreview_reports::results::{Category, Owner};
use tsan_parse::{triage_paths, Classifier, TriageOptions};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tsan-parse/tests/fixtures")
}

const PROGRAMS: [&str; 4] = ["race_global", "race_heap", "lock_order", "use_after_free"];

/// The problems of the logs of `PROGRAMS` as one compiler's runtime printed them.
fn problems(compiler: &str) -> BTreeSet<(String, Owner)> {
    let logs: Vec<PathBuf> = PROGRAMS
        .iter()
        .map(|p| fixtures().join(format!("logs/{compiler}/{p}.log")))
        .collect();
    let options = TriageOptions {
        classifier: Classifier::new(Vec::new(), Vec::new()),
        ..TriageOptions::default()
    };
    let mut run = common::fixture_record("clean");
    run.triage = triage_paths(&logs, &options, &|_| None).unwrap();
    run.target.source_dir = fixtures();
    run.static_scan = Some(
        ftreview_static::scan_paths(&[fixtures().join("programs")], &Default::default()).unwrap(),
    );
    analyze(&run, None)
        .results
        .findings
        .into_iter()
        .filter(|f| f.category == Category::Race)
        .map(|f| (f.id, f.owner.unwrap()))
        .collect()
}

#[test]
fn gcc_and_clang_reports_make_the_same_problems_with_the_same_ids() {
    let gcc = problems("gcc");
    let clang = problems("clang");
    assert_eq!(gcc, clang);
    let owners: Vec<&Owner> = gcc.iter().map(|(_, owner)| owner).collect();
    assert!(
        owners
            .iter()
            .any(|o| matches!(o, Owner::Global { name, .. } if name == "hits")),
        "{owners:?}"
    );
    assert!(
        owners.iter().any(
            |o| matches!(o, Owner::HeapBlock { allocated_in, .. } if allocated_in == "table_new")
        ),
        "{owners:?}"
    );
    assert!(
        owners.iter().any(|o| matches!(o, Owner::LockOrder { .. })),
        "{owners:?}"
    );
}

/// The one decision behind every rerun's count (`--repro-runs`, `ftreview repro`): a rerun
/// whose triage holds the problem's reports reproduces it; one without them does not.
#[test]
fn a_rerun_reproduces_the_problems_its_reports_show_and_no_other() {
    let run = common::fixture_record("racy");
    let results = ftreview_reports::analyze(&run, None).results;
    let owners: Vec<&Owner> = (results.findings.iter())
        .filter(|f| f.category == Category::Race)
        .filter_map(|f| f.owner.as_ref())
        .collect();
    assert!(!owners.is_empty());
    for owner in &owners {
        assert!(
            ftreview_reports::reproduces(&run, &run.triage, owner),
            "the run's own reports reproduce {owner:?}"
        );
        let empty = tsan_parse::Triage::default();
        assert!(!ftreview_reports::reproduces(&run, &empty, owner));
    }
}

/// Two threads in the first `lookup` calls: one checks the static `table` while another sets
/// it (the check-then-set), and one reads the table through the static while its builder is
/// still filling it (the memory is the dict, not the static). Both are the static's problem.
/// The log is real: the racy fixture's `targeted.ftfixture_racy.lookup` scenario.
#[test]
fn an_object_read_through_a_lazy_static_while_it_is_built_is_the_statics_problem() {
    let mut run = common::fixture_record("racy");
    let log = fixtures().join("logs/pyext_publication/lazy_table.log");
    let options = TriageOptions {
        classifier: Classifier::new(vec!["ftfixture_racy".into()], Vec::new()),
        ..TriageOptions::default()
    };
    run.triage = triage_paths(&[log], &options, &|_| None).unwrap();
    assert_eq!(
        run.triage.root_causes.len(),
        2,
        "{:#?}",
        run.triage.root_causes
    );
    let races: Vec<_> = analyze(&run, None)
        .results
        .findings
        .into_iter()
        .filter(|f| f.category == Category::Race)
        .collect();
    assert_eq!(races.len(), 1, "{races:#?}");
    assert_eq!(
        races[0].owner,
        Some(Owner::Global {
            name: "table".into(),
            function: Some("fixture_lookup".into()),
        })
    );
    assert_eq!(races[0].sites.len(), 2);
}
