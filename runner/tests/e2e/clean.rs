//! Code that is right must come out clean: the clean twin (judged by an oracle of its own,
//! not by the classifier), the quirky fixture (single-threaded bugs apart, verdict ready),
//! and the GIL check.

use std::path::Path;

use ftreview_reports::results::{Category, VerdictLevel};

use crate::support::*;

/// The allocation-vs-speculative-incref pair of free-threaded CPython, recognized by its own
/// frames: one side clears a fresh object's memory, the other try-increfs a stale list item.
fn is_allocator_reuse(report: &tsan_parse::Report) -> bool {
    let functions: Vec<&str> = report
        .all_stacks()
        .flat_map(|(_, s)| &s.frames)
        .filter_map(|f| f.function.as_deref())
        .collect();
    let incref = functions
        .iter()
        .any(|f| f.contains("TryIncref") || f.contains("TryXGetRef"));
    let alloc = functions
        .iter()
        .any(|f| f.contains("PyType_GenericAlloc") || f.contains("_PyType_AllocNoTrack"));
    incref && alloc
}

#[test]
fn the_clean_twin_has_no_extension_finding_by_an_oracle_of_its_own() {
    let Some(python) = interpreter() else { return };
    let run = shared_run("clean_ext", &python, PINNED_SHARES);
    let results = run.results();
    let findings: Vec<(&str, &str)> = results
        .findings
        .iter()
        .filter(|f| !matches!(f.category, Category::Static))
        .map(|f| (f.id.as_str(), f.title.as_str()))
        .collect();
    assert!(findings.is_empty(), "{findings:?}\n{}", run.stderr);
    // Every report with a frame in the twin's source must be the interpreter's own
    // allocator-reuse pair, whatever the classifier called it.
    let own_code: Vec<String> = run
        .reports()
        .into_iter()
        .filter(|r| {
            r.all_stacks().flat_map(|(_, s)| &s.frames).any(|f| {
                f.file
                    .as_deref()
                    .is_some_and(|file| file.ends_with("src/ftfixture_clean.c"))
            })
        })
        .filter(|r| !is_allocator_reuse(r))
        .map(|r| {
            format!(
                "{} at {}:{}",
                r.kind,
                r.source.file.display(),
                r.source.line
            )
        })
        .collect();
    assert!(
        own_code.is_empty(),
        "reports in the clean twin's code: {own_code:?}"
    );
    assert_eq!(
        results.verdict.level,
        VerdictLevel::Ready,
        "{:?}",
        results.verdict
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
}

#[test]
fn single_threaded_bugs_are_reported_apart_and_the_verdict_stays_ready() {
    let Some(python) = interpreter() else { return };
    let run = shared_run("quirky_ext", &python, PINNED_SHARES);
    let results = run.results();
    let single: Vec<_> = results
        .findings
        .iter()
        .filter(|f| f.category == Category::SingleThreaded)
        .collect();
    assert!(!single.is_empty(), "no single-threaded bug\n{}", run.stderr);
    for bug in &single {
        let command = &bug
            .reproducer
            .as_ref()
            .expect("a one-line reproducer")
            .command;
        assert!(command.starts_with("PYTHON_GIL=0 python -c "), "{command}");
    }
    let crash = single
        .iter()
        .find(|f| f.kind == "crash")
        .expect("the crashing trial");
    assert!(
        crash.title.contains("+= "),
        "the in-place operator on an uninitialised object: {}",
        crash.title
    );
    let contract = single.iter().find(|f| f.kind == "C-API contract");
    assert!(
        contract.is_some(),
        "the result returned with an exception set: {single:?}"
    );
    assert!(run.plan().contains("## Single-threaded bugs"));
    let others: Vec<_> = results
        .findings
        .iter()
        .filter(|f| {
            matches!(
                f.category,
                Category::Race | Category::Crash | Category::Hang | Category::Anomaly
            )
        })
        .map(|f| &f.title)
        .collect();
    assert!(others.is_empty(), "{others:?}");
    assert_eq!(
        results.verdict.level,
        VerdictLevel::Ready,
        "{:?}",
        results.verdict
    );
    assert_eq!(
        run.code, 0,
        "single-threaded bugs do not fail the free-threading review"
    );
}

/// A run of the GIL fixture (its suites only: the parallel one calls the C code from several
/// threads, so a clean result is proven), optionally against a baseline.
fn gil_run(python: &Path, dir: &Path, baseline: Option<&Path>) -> Run {
    let target = fixtures().join("gil_ext");
    let mut args = vec![
        target.to_str().unwrap(),
        "--phases",
        "tests,parallel",
        "--repro-runs",
        "0",
    ];
    if let Some(baseline) = baseline {
        args.extend(["--baseline", baseline.to_str().unwrap()]);
    }
    ftreview_run(python, dir, &args, &[])
}

#[test]
fn a_module_without_py_mod_gil_is_reported_and_a_baseline_quiets_it_in_run_and_report() {
    let Some(python) = interpreter() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let first = gil_run(&python, &tmp.path().join("first"), None);
    assert_eq!(first.record().gil.reenabled_on_import, Some(true));
    assert_eq!(first.code, 1, "{}", first.stderr);
    let baseline = first.dir.join("results.json");
    let second = gil_run(&python, &tmp.path().join("second"), Some(&baseline));
    assert_eq!(
        second.code, 0,
        "nothing new against the baseline\n{}",
        second.stderr
    );
    let (code, _, stderr) = ftreview(&[
        "report",
        second.dir.to_str().unwrap(),
        "--out",
        tmp.path().join("report").to_str().unwrap(),
        "--baseline",
        baseline.to_str().unwrap(),
    ]);
    assert_eq!(code, second.code, "report and run disagree\n{stderr}");
}
