//! Bad input and bad suites: each gets a clear message, the run directory is kept, and the
//! run goes on where it can.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;

use ftreview_reports::model::{HangKind, Phase, PhaseStatus};

use crate::support::*;

/// A PEP 691 index on 127.0.0.1 serving one project that only has a wheel.
fn local_index() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            let _ = reader.read_line(&mut request);
            let path = request.split_whitespace().nth(1).unwrap_or("/").to_string();
            let body = match path.as_str() {
                "/simple/wheel-only/" => Some(
                    r#"{"meta": {"api-version": "1.1"}, "name": "wheel-only", "files": [{"filename": "wheel_only-1.0-py3-none-any.whl", "url": "/files/wheel_only-1.0-py3-none-any.whl", "hashes": {"sha256": "00"}}]}"#,
                ),
                _ => None,
            };
            let mut stream = stream;
            let response = match body {
                Some(b) => format!("HTTP/1.1 200 OK\r\nContent-Type: application/vnd.pypi.simple.v1+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{b}", b.len()),
                None => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string(),
            };
            let _ = stream.write_all(response.as_bytes());
        }
    });
    format!("http://127.0.0.1:{port}/simple/")
}

fn assert_harness_error_with_kept_dir(run: &Run, message: &str) {
    assert_eq!(run.code, 2, "bad input is a harness error\n{}", run.stderr);
    assert!(
        run.stderr.contains(message),
        "expected {message:?} in:\n{}",
        run.stderr
    );
    assert!(
        run.dir.join("run.json").is_file() && run.dir.join("commands.jsonl").exists(),
        "run directory not kept"
    );
    let results = run.results();
    assert!(
        results.run_status.stopped_by.is_some(),
        "results.json says the run stopped"
    );
}

fn run_against_local_index(python: &Path, spec: &str) -> (Run, tempfile::TempDir) {
    let index = local_index();
    let tmp = tempfile::tempdir().unwrap();
    let run = ftreview_run(
        python,
        &tmp.path().join("run"),
        &[spec],
        &[("PIP_INDEX_URL", &index)],
    );
    (run, tmp)
}

#[test]
fn an_unknown_package_ends_with_a_clear_message() {
    let Some(python) = interpreter() else { return };
    let (run, _tmp) = run_against_local_index(&python, "no-such-package-xyz");
    assert_harness_error_with_kept_dir(&run, "unknown package `no-such-package-xyz`");
    let record = run.record();
    assert_eq!(record.phases[0].phase, Phase::Fetch);
    assert_eq!(record.phases[0].status, PhaseStatus::Error);
}

#[test]
fn a_version_without_sdist_ends_with_a_clear_message() {
    let Some(python) = interpreter() else { return };
    let (run, _tmp) = run_against_local_index(&python, "wheel-only==1.0");
    assert_harness_error_with_kept_dir(&run, "wheel-only==1.0 has no source distribution");
}

#[test]
fn an_extension_that_fails_to_build_ends_with_its_compiler_error() {
    let Some(python) = interpreter() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("broken_ext");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("setup.py"), "from setuptools import setup, Extension\nsetup(name='broken-ext', version='0.1', ext_modules=[Extension('broken_ext', ['broken.c'])])\n").unwrap();
    fs::write(
        src.join("broken.c"),
        "#include <Python.h>\nthis is not C;\n",
    )
    .unwrap();
    let run = ftreview_run(
        &python,
        &tmp.path().join("run"),
        &[src.to_str().unwrap()],
        &[],
    );
    assert_harness_error_with_kept_dir(&run, "failed to build");
    assert!(fs::read_to_string(run.dir.join("build/build.log"))
        .unwrap()
        .contains("broken.c"));
}

/// The racy fixture (its build cached by the planted-race run) with pytest pointed at one
/// test file of ours, the suite alone; `deps` are extra test requirements.
fn racy_with_tests(
    python: &Path,
    name: &str,
    test_file: &str,
    deps: &[&str],
    extra: &[&str],
) -> (tempfile::TempDir, Run) {
    let tmp = tempfile::tempdir().unwrap();
    let tests = tmp.path().join(name);
    fs::create_dir_all(&tests).unwrap();
    fs::write(tests.join(format!("test_{name}.py")), test_file).unwrap();
    let registry = tmp.path().join("registry.yaml");
    fs::write(
        &registry,
        format!(
            "packages:\n  ftfixture-racy:\n    pytest_args: [{}]\n    deps: [{}]\n",
            tests.display(),
            deps.join(", ")
        ),
    )
    .unwrap();
    let racy = fixtures().join("racy_ext");
    let mut args = vec![
        racy.to_str().unwrap(),
        "--registry",
        registry.to_str().unwrap(),
        "--phases",
        "tests",
        "--repro-runs",
        "0",
    ];
    args.extend(extra);
    let run = ftreview_run(python, &tmp.path().join("run"), &args, &[]);
    (tmp, run)
}

#[test]
fn a_test_that_hangs_is_stopped_as_slow_and_the_suite_goes_on() {
    let Some(python) = interpreter() else { return };
    let test = "import threading\nimport ftfixture_racy\n\ndef test_waits_forever():\n    lock = threading.Lock()\n    lock.acquire()\n    lock.acquire()\n\ndef test_after_it():\n    assert ftfixture_racy.bump() > 0\n";
    let (_tmp, run) = racy_with_tests(&python, "slow", test, &[], &["--test-timeout", "15"]);
    let record = run.record();
    let phase = record
        .phases
        .iter()
        .find(|p| p.phase == Phase::Tests)
        .unwrap();
    let coverage = phase.coverage.as_ref().unwrap();
    assert_eq!(coverage.ran, 2, "the next test still ran: {coverage:?}");
    assert!(
        coverage
            .left_out
            .iter()
            .any(|l| l.contains("slow tests stopped") && l.contains("test_waits_forever")),
        "{coverage:?}"
    );
    assert!(
        record.hangs.is_empty(),
        "a stopped test is not a hang: {:?}",
        record.hangs
    );
}

#[test]
fn threads_blocked_on_each_others_locks_are_a_possible_deadlock_with_stacks() {
    let Some(python) = interpreter() else { return };
    // SIGALRM blocked: the per-test timeout cannot stop it; the phase's time share does.
    let test = "import signal, threading, time\nimport ftfixture_racy\n\ndef test_deadlocks():\n    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})\n    a, b = threading.Lock(), threading.Lock()\n    def one():\n        with a:\n            time.sleep(0.5)\n            with b:\n                pass\n    def two():\n        with b:\n            time.sleep(0.5)\n            with a:\n                pass\n    threads = [threading.Thread(target=one), threading.Thread(target=two)]\n    for t in threads:\n        t.start()\n    for t in threads:\n        t.join()\n";
    let (_tmp, run) = racy_with_tests(&python, "deadlock", test, &[], &["--timeout", "40"]);
    let record = run.record();
    let hang = record
        .hangs
        .first()
        .unwrap_or_else(|| panic!("no hang recorded\n{}", run.stderr));
    assert_eq!(
        hang.kind,
        HangKind::PossibleDeadlock,
        "{:?}",
        hang.native_stacks
    );
    assert!(
        hang.origin
            .item
            .as_deref()
            .is_some_and(|i| i.ends_with("test_deadlock.py::test_deadlocks")),
        "{:?}",
        hang.origin
    );
    assert!(
        hang.python_stacks
            .as_deref()
            .unwrap_or_default()
            .contains("test_deadlocks"),
        "{:?}",
        hang.python_stacks
    );
    assert_eq!(run.code, 1);
}

#[test]
fn a_segfaulting_suite_is_classified_as_a_crash_with_its_test() {
    let Some(python) = interpreter() else { return };
    let test = "import ctypes\nimport ftfixture_racy\n\ndef test_ok():\n    assert ftfixture_racy.bump() > 0\n\ndef test_segfaults():\n    ctypes.string_at(0)\n";
    let (_tmp, run) = racy_with_tests(&python, "segv", test, &[], &[]);
    let record = run.record();
    let crash = record
        .crashes
        .first()
        .unwrap_or_else(|| panic!("no crash recorded\n{}", run.stderr));
    assert!(
        crash
            .origin
            .item
            .as_deref()
            .is_some_and(|i| i.ends_with("test_segv.py::test_segfaults")),
        "{:?}",
        crash.origin
    );
    assert!(crash.kind.contains("SEGV"), "{}", crash.kind);
    assert_eq!(
        record
            .phases
            .iter()
            .find(|p| p.phase == Phase::Tests)
            .unwrap()
            .status,
        PhaseStatus::Crashed
    );
    assert_eq!(run.code, 1);
}

#[test]
fn a_suite_without_tests_says_so_and_is_not_called_clean() {
    let Some(python) = interpreter() else { return };
    let (_tmp, run) = racy_with_tests(&python, "empty", "# no tests here\n", &[], &[]);
    // The static pass's findings still fail it (1); nothing can make it clean (0).
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(
        run.results().verdict.level,
        ftreview_reports::results::VerdictLevel::Unverified
    );
    let record = run.record();
    assert!(
        record
            .clean_unproven
            .as_deref()
            .is_some_and(|why| why.contains("no test or scenario ran")),
        "{:?}",
        record.clean_unproven
    );
    let phase = record
        .phases
        .iter()
        .find(|p| p.phase == Phase::Tests)
        .unwrap();
    assert!(
        phase
            .message
            .as_deref()
            .unwrap_or_default()
            .contains("no tests"),
        "{:?}",
        phase.message
    );
}

#[test]
fn a_budget_of_a_minute_gives_a_partial_but_valid_plan_that_says_what_was_skipped() {
    let Some(python) = interpreter() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let racy = fixtures().join("racy_ext");
    let run = ftreview_run(
        &python,
        &tmp.path().join("run"),
        &[racy.to_str().unwrap(), "--budget", "60s"],
        &[],
    );
    let results = run.results();
    let plan = run.plan();
    assert!(plan.contains("**Coverage.**"), "{plan}");
    let record = run.record();
    let said = record
        .phases
        .iter()
        .filter(|p| p.phase.is_instrumented())
        .all(|p| {
            p.message.is_some()
                || p.coverage
                    .as_ref()
                    .is_some_and(|c| !c.left_out.is_empty() || c.selected == Some(c.ran))
        });
    assert!(
        said,
        "every phase says what it covered: {:?}",
        record.phases
    );
    assert_ne!(
        results.verdict.level,
        ftreview_reports::results::VerdictLevel::Ready
    );
}

/// One run for two requirement rules: one that cannot install is skipped with a note, and
/// pytest-cov, when the suite brings it, is switched off (coverage tracing under TSan
/// multiplies a suite's time) while the suite still runs.
#[test]
fn a_requirement_that_cannot_install_is_skipped_and_pytest_cov_is_switched_off() {
    let Some(python) = interpreter() else { return };
    let test = "import ftfixture_racy\n\ndef test_bump():\n    assert ftfixture_racy.bump() > 0\n";
    let missing = "ftreview-no-such-requirement-0";
    let (_tmp, run) = racy_with_tests(&python, "deps", test, &[missing, "pytest-cov"], &[]);
    let note = test_deps_note_after_one_test_ran(&run);
    assert!(
        note.contains("skipped test requirements that would not install") && note.contains(missing),
        "{note}"
    );
    let commands = fs::read_to_string(run.dir.join("commands.jsonl")).unwrap();
    let suite = commands
        .lines()
        .find(|l| l.contains("\"label\":\"tests\""))
        .expect("the plain suite's command");
    assert!(suite.contains("\"--no-cov\""), "{suite}");
}

#[test]
fn without_uv_pip_installs_the_test_venv_and_the_note_says_so() {
    let Some(python) = interpreter() else { return };
    let test = "import ftfixture_racy\n\ndef test_bump():\n    assert ftfixture_racy.bump() > 0\n";
    // --rebuild: a cached venv of the same wheel and requirements would be reused as it is.
    let extra = ["--installer", "pip", "--rebuild"];
    let (_tmp, run) = racy_with_tests(&python, "pip", test, &[], &extra);
    let note = test_deps_note_after_one_test_ran(&run);
    assert!(
        note.contains("installed with pip under the TSan interpreter") && !note.contains("uv "),
        "{note}"
    );
}

/// The note of a test-deps phase that passed, in a run whose plain suite ran its one test.
fn test_deps_note_after_one_test_ran(run: &Run) -> String {
    let record = run.record();
    let phase = |wanted: Phase| record.phases.iter().find(|p| p.phase == wanted).unwrap();
    let deps = phase(Phase::TestDeps);
    let note = deps.message.clone().unwrap_or_default();
    assert_eq!(deps.status, PhaseStatus::Passed, "{note}\n{}", run.stderr);
    let ran = phase(Phase::Tests).coverage.as_ref().map(|c| c.ran);
    assert_eq!(ran, Some(1), "{}", run.stderr);
    note
}
