//! End-to-end: the real `ftreview run` on the project's fixture extensions and on bad input,
//! with a real TSan interpreter (`FTREVIEW_PYTHON` or a cached build), real pip, pytest and
//! extension builds.
//!
//! Runs of one target are shared between tests (and test processes: nextest runs each test in
//! its own process) through a lock file and a result file under `CARGO_TARGET_TMPDIR`.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use assert_cmd::cargo::CommandCargoExt;
use fs2::FileExt;
use ftreview_reports::model::{Phase, PhaseStatus, RunRecord};
use serde::{Deserialize, Serialize};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../test-fixtures")
}

/// The TSan interpreter, or None (the test is skipped, loudly) when there is none.
fn interpreter() -> Option<PathBuf> {
    static FOUND: OnceLock<Option<PathBuf>> = OnceLock::new();
    FOUND
        .get_or_init(|| {
            if let Some(python) = std::env::var_os("FTREVIEW_PYTHON").filter(|p| !p.is_empty()) {
                return Some(PathBuf::from(python));
            }
            ftreview_toolchain::find_cached(&ftreview_toolchain::default_cache_dir(), "", None)
                .map(|i| i.python)
        })
        .clone()
        .or_else(|| {
            let why = "no TSan interpreter: set FTREVIEW_PYTHON or run `ftreview build-python`";
            assert!(
                std::env::var("FTREVIEW_REQUIRE_E2E").as_deref() != Ok("1"),
                "FTREVIEW_REQUIRE_E2E=1 but {why}"
            );
            eprintln!("SKIPPED: {why}");
            None
        })
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Run {
    dir: PathBuf,
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn record(&self) -> RunRecord {
        RunRecord::load(&self.dir).unwrap_or_else(|e| panic!("{e:#}\nstderr:\n{}", self.stderr))
    }
}

/// Runs `ftreview run ARGS -o DIR` with the interpreter.
fn ftreview_run(python: &Path, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
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

/// A run shared by every test that asks for `key` (across test processes), redone when the
/// ftreview binary changed.
fn shared_run(key: &str, python: &Path, args: &[&str]) -> Run {
    let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join("e2e");
    fs::create_dir_all(&base).unwrap();
    let lock = fs::File::create(base.join(format!("{key}.lock"))).unwrap();
    lock.lock_exclusive().unwrap();
    let stamp = binary_stamp();
    let result_file = base.join(format!("{key}.result.json"));
    if let Some((old_stamp, run)) = fs::read_to_string(&result_file)
        .ok()
        .and_then(|t| serde_json::from_str::<(String, Run)>(&t).ok())
    {
        if old_stamp == stamp && run.dir.join("run.json").is_file() {
            return run;
        }
    }
    let dir = base.join(key);
    let _ = fs::remove_dir_all(&dir);
    let run = ftreview_run(python, &dir, args, &[]);
    fs::write(&result_file, serde_json::to_string(&(stamp, &run)).unwrap()).unwrap();
    run
}

fn binary_stamp() -> String {
    let bin = assert_cmd::cargo::cargo_bin("ftreview");
    let meta = fs::metadata(bin).unwrap();
    format!("{}-{:?}", meta.len(), meta.modified().unwrap())
}

fn racy_run(python: &Path) -> Run {
    let racy = fixtures().join("racy_ext");
    shared_run(
        "racy",
        python,
        &[racy.to_str().unwrap(), "--stress-budget", "300"],
    )
}

#[derive(Debug, Deserialize)]
struct Expected {
    races: Vec<PlantedRace>,
}

#[derive(Debug, Deserialize)]
struct PlantedRace {
    id: String,
    tsan_kind: String,
    function: String,
    lines: Vec<u64>,
    peer: Option<Peer>,
}

#[derive(Debug, Deserialize)]
struct Peer {
    function: String,
    lines: Vec<u64>,
}

/// Whether any stack of the report has a frame in `function` at one of `lines`.
fn has_frame(report: &tsan_parse::Report, function: &str, lines: &[u64]) -> bool {
    report.all_stacks().any(|(_, stack)| {
        stack.frames.iter().any(|f| {
            f.function.as_deref() == Some(function)
                && f.line.is_some_and(|l| lines.contains(&u64::from(l)))
        })
    })
}

/// Every parsed report of the run (findings/reports.jsonl), with origins.
fn reports_of(run: &Run) -> Vec<tsan_parse::Report> {
    let file =
        fs::File::open(run.dir.join("findings/reports.jsonl")).expect("findings/reports.jsonl");
    BufReader::new(file)
        .lines()
        .map_while(Result::ok)
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str(&l).unwrap())
        .collect()
}

#[test]
fn every_planted_race_is_found_with_its_line_and_origin() {
    let Some(python) = interpreter() else { return };
    let run = racy_run(&python);
    assert_eq!(run.code, 1, "findings exit with 1\n{}", run.stderr);
    let expected: Expected = serde_yaml_ng::from_str(
        &fs::read_to_string(fixtures().join("racy_ext/expected.yaml")).unwrap(),
    )
    .unwrap();
    let reports = reports_of(&run);
    let mut missing = Vec::new();
    for race in &expected.races {
        let found: Vec<&tsan_parse::Report> = reports
            .iter()
            .filter(|r| r.kind.header_text() == race.tsan_kind)
            .filter(|r| has_frame(r, &race.function, &race.lines))
            .filter(|r| {
                race.peer
                    .as_ref()
                    .is_none_or(|p| has_frame(r, &p.function, &p.lines))
            })
            .collect();
        match found.first() {
            None => missing.push(race.id.clone()),
            Some(report) => {
                let origin = report.origin.as_ref();
                assert!(
                    origin.is_some_and(|o| o.item.is_some()),
                    "{}: unattributed report ({origin:?})",
                    race.id
                );
            }
        }
    }
    assert!(
        missing.is_empty(),
        "planted races not found: {missing:?}\n{}",
        run.stderr
    );
}

#[test]
fn races_found_by_the_suite_are_attributed_to_the_test_that_ran() {
    let Some(python) = interpreter() else { return };
    let run = racy_run(&python);
    let record = run.record();
    // The counter races in several pairs (bump/bump, bump/calls): each is its own root cause,
    // and which of them a test hits first is up to the scheduler.
    let test_origins: Vec<&str> = (record.triage.root_causes.iter())
        .filter(|c| {
            c.sides.iter().any(|s| {
                s.frame
                    .as_ref()
                    .is_some_and(|f| f.function.as_deref() == Some("fixture_bump"))
            })
        })
        .flat_map(|c| c.origins.iter().filter_map(|o| o.origin.test()))
        .filter(|test| test.starts_with("tests/test_api.py::"))
        .collect();
    assert!(
        !test_origins.is_empty(),
        "no test origin for the counter race in {} root causes",
        record.triage.root_causes.len()
    );
    assert!(
        test_origins
            .iter()
            .all(|o| o.ends_with("test_bump_counts_calls")),
        "{test_origins:?}"
    );
}

#[test]
fn the_racy_run_directory_is_complete() {
    let Some(python) = interpreter() else { return };
    let run = racy_run(&python);
    let record = run.record();
    for file in [
        "run.json",
        "commands.jsonl",
        "suppressions.txt",
        "logs/tests/output.log",
        "logs/tests/tests.jsonl",
        "logs/parallel-tests/output.log",
        "findings/reports.jsonl",
        "harness/ftreview_pytest_plugin.py",
    ] {
        assert!(run.dir.join(file).is_file(), "missing {file}");
    }
    assert!(
        record
            .target
            .source_dir
            .join("src/ftfixture_racy.c")
            .is_file(),
        "sources not kept at {}",
        record.target.source_dir.display()
    );
    assert!(
        record.instrumentation.iter().all(|m| m.instrumented) && !record.instrumentation.is_empty()
    );
    let names: Vec<&str> = record.phases.iter().map(|p| p.phase.name()).collect();
    for phase in [
        "fetch",
        "venv",
        "build",
        "install",
        "test-deps",
        "gil-check",
        "tests",
        "parallel-tests",
        "stress",
    ] {
        assert!(
            names.contains(&phase),
            "phase {phase} missing from {names:?}"
        );
    }
    assert!(record.phases.iter().all(|p| p.duration_secs >= 0.0));
    assert!(record.environment.commands.iter().any(|c| c
        .env
        .get("PYTHON_GIL")
        .map(String::as_str)
        == Some("0")));
    assert!(record.environment.tsan_options.contains("halt_on_error=0"));
    assert_eq!(record.gil.reenabled_on_import, Some(false));
    let summary: serde_json::Value =
        serde_json::from_str(&run.stdout).expect("--json summary on stdout");
    assert_eq!(summary["outcome"], "findings");
    // Every frame's file in the extension is readable in the kept tree.
    for cause in &record.triage.root_causes {
        for frame in cause.sides.iter().filter_map(|s| s.frame.as_ref()) {
            if let Some(file) = &frame.file {
                assert!(
                    Path::new(file.as_ref() as &str).is_file(),
                    "{file} is not readable"
                );
            }
        }
    }
}

/// The side's innermost frame outside the TSan runtime is the extension's own code (or libc
/// called straight from it), not a CPython function it called.
fn races_in_extension_code(side: &tsan_parse::Side) -> bool {
    side.frame.is_some()
        && side.top_frame.as_ref().is_none_or(|top| {
            matches!(
                top.origin,
                tsan_parse::FrameOrigin::Extension | tsan_parse::FrameOrigin::Libc
            )
        })
}

#[test]
fn the_clean_twin_yields_no_extension_findings() {
    let Some(python) = interpreter() else { return };
    let clean = fixtures().join("clean_ext");
    let run = shared_run(
        "clean",
        &python,
        &[clean.to_str().unwrap(), "--stress-budget", "180"],
    );
    let record = run.record();
    // Only races whose racing code is the extension's count. A race between two CPython
    // internals (seen: `PyList_GetItemRef`'s try-incref against an allocation reusing the
    // memory) is covered by CPython's own `race_top:list_get_item_ref`, which clang's inlined
    // `_Py_atomic_*` top frame keeps from matching; README "Limits" names it.
    let in_extension: Vec<&str> = (record.triage.root_causes.iter())
        .filter(|c| c.sides.iter().any(races_in_extension_code))
        .map(|c| c.id.as_str())
        .collect();
    assert!(
        in_extension.is_empty(),
        "clean twin has findings {in_extension:?}\n{}",
        run.stderr
    );
    assert!(
        record.crashes.is_empty() && record.hangs.is_empty(),
        "{:?} {:?}",
        record.crashes,
        record.hangs
    );
    let interpreter_only = record.triage.root_causes.len() - in_extension.len();
    let expected_code = if interpreter_only == 0 { 0 } else { 1 };
    assert_eq!(run.code, expected_code, "{}", run.stderr);
    assert!(record.exercised.concurrent_phase_ran);
}

#[test]
fn a_module_without_py_mod_gil_is_reported() {
    let Some(python) = interpreter() else { return };
    let gil = fixtures().join("gil_ext");
    let run = shared_run(
        "gil",
        &python,
        &[gil.to_str().unwrap(), "--phases", "tests"],
    );
    let record = run.record();
    assert_eq!(
        record.gil.reenabled_on_import,
        Some(true),
        "{:?}",
        record.gil
    );
    assert_eq!(run.code, 1);
}

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
}

/// `ftreview run SPEC` resolving packages through a PEP 691 index served on 127.0.0.1; the
/// temp dir holding the run comes back so it outlives the assertions.
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

/// Runs the racy fixture (cached build) with a registry pointing pytest at `test_file` only.
fn racy_with_tests(
    python: &Path,
    name: &str,
    test_file: &str,
    extra: &[&str],
) -> (tempfile::TempDir, Run) {
    racy_run(python); // the cached build this run reuses
    let tmp = tempfile::tempdir().unwrap();
    let tests = tmp.path().join(name);
    fs::create_dir_all(&tests).unwrap();
    fs::write(tests.join(format!("test_{name}.py")), test_file).unwrap();
    let registry = tmp.path().join("registry.yaml");
    fs::write(
        &registry,
        format!(
            "packages:\n  ftfixture-racy:\n    pytest_args: [{}]\n",
            tests.display()
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
    ];
    args.extend(extra);
    let run = ftreview_run(python, &tmp.path().join("run"), &args, &[]);
    (tmp, run)
}

#[test]
fn a_hanging_suite_is_reported_as_a_possible_deadlock_with_stacks() {
    let Some(python) = interpreter() else { return };
    let test = "import threading\nimport ftfixture_racy\n\ndef test_waits_forever():\n    lock = threading.Lock()\n    lock.acquire()\n    lock.acquire()\n";
    let (_tmp, run) = racy_with_tests(&python, "hang", test, &["--timeout", "60"]);
    let record = run.record();
    let hang = record
        .hangs
        .first()
        .unwrap_or_else(|| panic!("no hang recorded\n{}", run.stderr));
    assert_eq!(
        hang.origin
            .item
            .as_deref()
            .map(|i| i.ends_with("test_hang.py::test_waits_forever")),
        Some(true),
        "{:?}",
        hang.origin
    );
    assert!(
        hang.python_stacks
            .as_deref()
            .unwrap_or_default()
            .contains("test_waits_forever"),
        "{:?}",
        hang.python_stacks
    );
    assert!(
        hang.native_stacks
            .as_deref()
            .unwrap_or_default()
            .contains("#0"),
        "{:?}",
        hang.native_stacks
    );
    let phase = record
        .phases
        .iter()
        .find(|p| p.phase == Phase::Tests)
        .unwrap();
    assert_eq!(phase.status, PhaseStatus::TimedOut);
    assert_eq!(run.code, 1);
}

#[test]
fn a_segfaulting_suite_is_classified_as_a_crash_with_its_test() {
    let Some(python) = interpreter() else { return };
    let test = "import ctypes\nimport ftfixture_racy\n\ndef test_ok():\n    assert ftfixture_racy.bump() > 0\n\ndef test_segfaults():\n    ctypes.string_at(0)\n";
    let (_tmp, run) = racy_with_tests(&python, "segv", test, &[]);
    let record = run.record();
    let crash = record
        .crashes
        .first()
        .unwrap_or_else(|| panic!("no crash recorded\n{}", run.stderr));
    assert_eq!(
        crash
            .origin
            .item
            .as_deref()
            .map(|i| i.ends_with("test_segv.py::test_segfaults")),
        Some(true),
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
    let (_tmp, run) = racy_with_tests(&python, "empty", "# no tests here\n", &[]);
    assert_eq!(
        run.code, 2,
        "nothing ran under TSan: not clean\n{}",
        run.stderr
    );
    let record = run.record();
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
fn a_finding_is_replayed_by_repro_through_its_scenario() {
    let Some(python) = interpreter() else { return };
    let run = racy_run(&python);
    let record = run.record();
    let cause = record
        .triage
        .root_causes
        .iter()
        .find(|c| c.origins.iter().any(|o| o.origin.phase == Phase::Stress))
        .expect("a race found by a scenario");
    let out = std::process::Command::cargo_bin("ftreview")
        .unwrap()
        .args(["repro", &cause.id, "--runs", "2", "--json", "--run-dir"])
        .arg(&run.dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{}: reproduced in ", cause.id)),
        "{stderr}"
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["runs"], 2);
    let reproduced = summary["reproduced"].as_u64().unwrap();
    assert_eq!(out.status.code(), Some(if reproduced > 0 { 1 } else { 0 }));
}
