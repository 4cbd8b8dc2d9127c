//! End-to-end: the build stage on extensions whose C part is optional, with the real TSan
//! interpreter (`FTREVIEW_PYTHON` or a cached build), real pip, uv, CMake from PyPI and real
//! compilers. Each run is short: a few seconds of stress, or none when nothing is instrumented.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use assert_cmd::cargo::CommandCargoExt;
use ftreview_reports::model::{BuildCauseKind, Phase, PhaseStatus, RunRecord};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../test-fixtures")
        .join(name)
}

/// The TSan interpreter, or None (the test is skipped, loudly) when there is none.
fn interpreter() -> Option<PathBuf> {
    let found = std::env::var_os("FTREVIEW_PYTHON")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            ftreview_toolchain::find_cached(&ftreview_toolchain::default_cache_dir(), "", None)
                .map(|i| i.python)
        });
    if found.is_none() {
        let why = "no TSan interpreter: set FTREVIEW_PYTHON or run `ftreview build-python`";
        assert!(
            std::env::var("FTREVIEW_REQUIRE_E2E").as_deref() != Ok("1"),
            "FTREVIEW_REQUIRE_E2E=1 but {why}"
        );
        eprintln!("SKIPPED: {why}");
    }
    found
}

struct Run {
    dir: PathBuf,
    code: i32,
    stderr: String,
    /// Kept until the assertions are done.
    _tmp: tempfile::TempDir,
}

impl Run {
    fn record(&self) -> RunRecord {
        RunRecord::load(&self.dir).unwrap_or_else(|e| panic!("{e:#}\nstderr:\n{}", self.stderr))
    }

    fn file(&self, relative: &Path) -> String {
        fs::read_to_string(self.dir.join(relative))
            .unwrap_or_else(|e| panic!("{}: {e}", relative.display()))
    }
}

/// `ftreview run TARGET ARGS` into a fresh directory, with extra environment variables.
fn run(python: &Path, target: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let started = Instant::now();
    let out = std::process::Command::cargo_bin("ftreview")
        .unwrap()
        .arg("run")
        .arg(target)
        .args(args)
        .arg("-o")
        .arg(&dir)
        .args(["--json", "--quiet"])
        .env("FTREVIEW_PYTHON", python)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    eprintln!(
        "ftreview run {} took {:.0} s",
        target.display(),
        started.elapsed().as_secs_f64()
    );
    Run {
        dir,
        code: out.status.code().unwrap_or(-1),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        _tmp: tmp,
    }
}

/// A short stress phase: introspection plus a few scenarios, enough for a planted counter
/// race even on a loaded machine (10 s left none after introspection there).
const SHORT_STRESS: &[&str] = &["--phases", "stress", "--stress-budget", "60"];

/// `PATH` without any directory that holds a `cmake`.
fn path_without_cmake() -> String {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let kept: Vec<PathBuf> = std::env::split_paths(&path)
        .filter(|dir| !dir.join("cmake").exists())
        .collect();
    std::env::join_paths(kept)
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// Whether a root cause of the run has a side in `function`.
fn races_in(record: &RunRecord, function: &str) -> bool {
    record.triage.root_causes.iter().any(|cause| {
        cause.sides.iter().any(|side| {
            (side.frame.as_ref()).is_some_and(|f| f.function.as_deref() == Some(function))
        })
    })
}

fn assert_instrumented(record: &RunRecord, module: &str, stderr: &str) {
    let build = record.build.as_ref().expect("a build record");
    assert!(
        build.built_modules.iter().any(|m| m == module),
        "{module} not built: {build:?}\n{stderr}"
    );
    assert!(
        !record.instrumentation.is_empty() && record.instrumentation.iter().all(|m| m.instrumented),
        "{:?}",
        record.instrumentation
    );
}

#[test]
fn cmake_missing_from_path_is_supplied_and_the_library_it_builds_is_instrumented() {
    let Some(python) = interpreter() else { return };
    let path = path_without_cmake();
    let mut args = SHORT_STRESS.to_vec();
    args.push("--rebuild");
    let run = run(
        &python,
        &fixture("build_cmake_ext"),
        &args,
        &[("PATH", &path)],
    );
    let record = run.record();
    let build = record.build.as_ref().expect("a build record");
    let supplied: Vec<&str> = build
        .supplied_tools
        .iter()
        .map(|t| t.tool.as_str())
        .collect();
    assert_eq!(supplied, ["cmake"], "{}", run.stderr);
    assert!(build.supplied_tools[0].used_at.starts_with("setup.py:"));
    assert_instrumented(&record, "_tally", &run.stderr);
    let tools_bin = run.dir.join("build/tools-bin");
    let build_step = (record.environment.commands.iter())
        .find(|c| c.label == "build wheel")
        .expect("the build command");
    assert!(
        build_step.env["PATH"].starts_with(&tools_bin.display().to_string()),
        "{:?}",
        build_step.env.get("PATH")
    );
    // The planted race lives in the CMake-built static library: TSan sees it only because
    // the sub-build compiled with the interpreter's flags.
    assert!(
        races_in(&record, "tally_add"),
        "no race in tally_add\n{}",
        run.stderr
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run
        .file(Path::new("migration-plan.md"))
        .contains("ftreview supplied `cmake"));
}

#[test]
fn an_optional_extension_that_fails_to_compile_is_explained_and_costs_no_tsan_phase() {
    let Some(python) = interpreter() else { return };
    let run = run(&python, &fixture("build_broken_ext"), SHORT_STRESS, &[]);
    assert_eq!(run.code, 2, "nothing to check is not clean\n{}", run.stderr);
    let record = run.record();
    let build = record.build.as_ref().expect("a build record");
    assert_eq!(build.missing_modules(), ["_speedups"]);
    let error = &build.causes[0];
    assert_eq!(
        error.kind,
        BuildCauseKind::CompilerError {
            location: "src/speedups.c:10:36".into()
        }
    );
    let log = run.file(&error.log);
    let line = log.lines().nth(error.line as usize - 1).unwrap();
    assert!(
        line.contains("error: no member named 'ob_refcnt'"),
        "{}:{} is {line:?}",
        error.log.display(),
        error.line
    );
    let plan = run.file(Path::new("migration-plan.md"));
    let quoted = format!(
        "build/build.log:{}: src/speedups.c:10:36: error:",
        error.line
    );
    assert!(plan.contains(&quoted), "{quoted} not in the plan:\n{plan}");
    assert!(plan.contains("Py_REFCNT"), "no fix in the plan:\n{plan}");
    assert!(record
        .clean_unproven
        .as_deref()
        .is_some_and(|why| why.contains("build/build.log:")));
    let ran: Vec<&Phase> = (record.phases.iter())
        .filter(|p| p.phase.is_instrumented() || p.phase == Phase::GilCheck)
        .filter(|p| p.status != PhaseStatus::Skipped)
        .map(|p| &p.phase)
        .collect();
    assert!(ran.is_empty(), "TSan phases ran on pure Python: {ran:?}");
}

#[test]
fn a_c_build_held_back_by_the_setup_code_is_retried_with_its_switch() {
    let Some(python) = interpreter() else { return };
    let mut args = SHORT_STRESS.to_vec();
    args.push("--rebuild");
    let run = run(&python, &fixture("build_forced_ext"), &args, &[]);
    let record = run.record();
    let build = record.build.as_ref().expect("a build record");
    let retry = build.retry.as_ref().expect("a retry");
    assert_eq!(retry.variable, "FTFIXTURE_FORCED_REQUIRE_EXTENSION");
    assert_eq!(retry.value, "yes");
    assert_eq!(retry.error, None);
    assert_eq!(retry.built_modules, ["_accel"]);
    assert!(run.dir.join(&retry.log).is_file());
    assert_instrumented(&record, "_accel", &run.stderr);
    let retried = (record.environment.commands.iter())
        .find(|c| {
            c.env
                .get("FTFIXTURE_FORCED_REQUIRE_EXTENSION")
                .map(String::as_str)
                == Some("yes")
        })
        .expect("the retry's command with the switch set");
    assert!(
        retried.label.starts_with("build wheel"),
        "{}",
        retried.label
    );
    assert!(
        races_in(&record, "accel_hit"),
        "no race in accel_hit\n{}",
        run.stderr
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
}

/// Zips `tree` as `NAME-VERSION/…` the way sdists are laid out, leaving out build products.
fn zip_sdist(tree: &Path, top: &str, dest: &Path) {
    let mut zip = zip::ZipWriter::new(fs::File::create(dest).unwrap());
    let options = zip::write::SimpleFileOptions::default();
    let walker = walkdir::WalkDir::new(tree).sort_by_file_name();
    let source = walker.into_iter().filter_entry(|e| {
        let name = e.file_name().to_string_lossy();
        !(name == "build" || name == "__pycache__" || name.ends_with(".egg-info"))
    });
    for entry in source
        .map(Result::unwrap)
        .filter(|e| e.file_type().is_file())
    {
        let relative = entry.path().strip_prefix(tree).unwrap();
        zip.start_file(format!("{top}/{}", relative.display()), options)
            .unwrap();
        zip.write_all(&fs::read(entry.path()).unwrap()).unwrap();
    }
    zip.finish().unwrap();
}

#[test]
fn a_zip_sdist_builds_like_a_tarball() {
    let Some(python) = interpreter() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let sdist = tmp.path().join("ftfixture_clean-0.1.0.zip");
    zip_sdist(&fixture("clean_ext"), "ftfixture_clean-0.1.0", &sdist);
    let run = run(&python, &sdist, SHORT_STRESS, &[]);
    let record = run.record();
    assert!(record.stopped_by.is_none(), "{:?}", record.stopped_by);
    assert!(
        record.target.source_dir.ends_with("ftfixture_clean-0.1.0"),
        "{}",
        record.target.source_dir.display()
    );
    assert_eq!(
        record.target.sdist_sha256.as_deref().map(str::len),
        Some(64)
    );
    assert_instrumented(&record, "ftfixture_clean", &run.stderr);
    let stress = (record.phases.iter())
        .find(|p| p.phase == Phase::Stress)
        .unwrap();
    assert!(stress.items_run.unwrap_or(0) > 0, "{stress:?}");
}
