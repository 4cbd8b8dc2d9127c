//! End-to-end: from finding to fixed. A stress run of the racy fixture, then `ftreview verify`
//! with a fixed copy of it (the clean twin's code renamed into the racy package) and with the
//! racy tree itself, and the regression tests `ftreview report --tests` writes, run with pytest
//! against both builds; then the run's own suggested patches, applied, built and verified in
//! a scratch copy. Real TSan interpreter, real builds, real pytest, real git.

#[path = "e2e/support.rs"]
#[allow(dead_code)]
mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use ftreview_reports::results::FixKind;
use ftreview_reports::{
    verification_dirs, RunRecord, SuggestedPatches, Verification, VerifyStatus, VERIFICATION_FILE,
};
use support::{fixtures, ftreview, interpreter, racy_run, Run};

/// The racy fixture's shared review, and the problems whose small reproducer reproduced in it
/// (the ones a verification can prove fixed).
fn reproduced_problems(python: &Path) -> (Run, Vec<String>) {
    let run = racy_run(python);
    let ids: Vec<String> = run
        .results()
        .findings
        .iter()
        .filter(|f| f.reproducer.as_ref().is_some_and(|r| r.reproduced > 0))
        .map(|f| f.id.clone())
        .collect();
    assert!(
        ids.len() >= 2,
        "too few problems reproduced to verify:\n{}",
        run.stderr
    );
    (run, ids)
}

/// A copy of the racy fixture whose C code is the clean twin's, renamed into the racy module.
fn fixed_copy(dir: &Path) -> PathBuf {
    let tree = dir.join("fixed");
    copy_tree(&fixtures().join("racy_ext"), &tree);
    let clean = fs::read_to_string(fixtures().join("clean_ext/src/ftfixture_clean.c")).unwrap();
    fs::write(
        tree.join("src/ftfixture_racy.c"),
        clean.replace("ftfixture_clean", "ftfixture_racy"),
    )
    .unwrap();
    tree
}

fn copy_tree(from: &Path, to: &Path) {
    for entry in walkdir::WalkDir::new(from) {
        let entry = entry.unwrap();
        let dest = to.join(entry.path().strip_prefix(from).unwrap());
        if entry.file_type().is_dir() {
            fs::create_dir_all(&dest).unwrap();
        } else {
            fs::copy(entry.path(), &dest).unwrap();
        }
    }
}

/// `ftreview verify RUN --source TREE --runs 3 --problem ID...`, and the verification it wrote.
fn verify(run: &Run, tree: &Path, problems: &[String]) -> (i32, Verification, PathBuf, String) {
    let before: Vec<PathBuf> = verification_dirs(&run.dir);
    let mut args = vec![
        "verify",
        run.dir.to_str().unwrap(),
        "--source",
        tree.to_str().unwrap(),
        "--runs",
        "3",
        "--quiet",
    ];
    for id in problems {
        args.extend(["--problem", id.as_str()]);
    }
    let (code, _, stderr) = ftreview(&args);
    let dir = verification_dirs(&run.dir)
        .into_iter()
        .find(|d| !before.contains(d))
        .unwrap_or_else(|| panic!("no new verify directory (exit {code}):\n{stderr}"));
    let text = fs::read_to_string(dir.join(VERIFICATION_FILE))
        .unwrap_or_else(|e| panic!("{e} (exit {code}):\n{stderr}"));
    (code, serde_json::from_str(&text).unwrap(), dir, stderr)
}

/// Runs one generated test file with pytest in `venv`'s python under TSan; whether it passed.
/// With `exitcode=0` a process TSan ends (a SEGV) exits 0 too: passing is pytest saying so.
fn pytest_passes(venv: &Path, test: &Path, run: &Run, logs: &Path) -> (bool, String) {
    fs::create_dir_all(logs).unwrap();
    let options = format!(
        "log_path={} halt_on_error=0 exitcode=0 suppressions={}",
        logs.join("tsan").display(),
        run.dir.join("suppressions.txt").display()
    );
    let out = Command::new(venv.join("bin/python"))
        .args([
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:randomly",
        ])
        .arg(test)
        .current_dir(test.parent().unwrap())
        .env("PYTHON_GIL", "0")
        .env("TSAN_OPTIONS", options)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    (out.status.success() && text.contains("1 passed"), text)
}

#[test]
fn a_fixed_copy_verifies_fixed_and_the_regression_tests_tell_the_builds_apart() {
    let Some(python) = interpreter() else { return };
    let (run, problems) = reproduced_problems(&python);
    let scratch = tempfile::tempdir().unwrap();
    let tree = fixed_copy(scratch.path());
    let (fixed_hash, racy_hash) = (
        ftreview_testkit::content_hash(&[&tree]),
        ftreview_testkit::content_hash(&[&fixtures().join("racy_ext")]),
    );
    let (code, verification, dir, stderr) = verify(&run, &tree, &problems);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(verification.problems.len(), problems.len());
    for problem in &verification.problems {
        assert_eq!(problem.status, VerifyStatus::Fixed, "{problem:?}\n{stderr}");
        assert!(
            problem.before.reproduced > 0 && problem.after.runs == 3,
            "{problem:?}"
        );
    }
    assert!(verification.new_problems.is_empty(), "{verification:?}");
    let table = fs::read_to_string(dir.join("verification.md")).unwrap();
    assert!(table.contains("| 0/3 | fixed |"), "{table}");
    assert_eq!(
        ftreview_testkit::content_hash(&[&tree]),
        fixed_hash,
        "the patched tree changed"
    );
    assert_eq!(
        ftreview_testkit::content_hash(&[&fixtures().join("racy_ext")]),
        racy_hash,
        "the racy fixture changed"
    );

    // Written elsewhere: the shared run's own plan stays as the other tests read it.
    let reports = scratch.path().join("reports");
    let (code, _, stderr) = ftreview(&[
        "report",
        run.dir.to_str().unwrap(),
        "--out",
        reports.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{stderr}");
    let plan = fs::read_to_string(reports.join("migration-plan.md")).unwrap();
    // The newest verification of the shared run: the racy-tree test may verify beside this one.
    let linked = verification_dirs(&run.dir).into_iter().any(|d| {
        let name = d.file_name().unwrap().to_string_lossy().into_owned();
        plan.contains(&format!("({name}/verification.md)"))
    });
    assert!(linked, "the plan links a verification:\n{plan}");

    let tests = scratch.path().join("regression");
    let (code, stdout, stderr) = ftreview(&[
        "report",
        run.dir.to_str().unwrap(),
        "--tests",
        tests.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{stderr}");
    let written: Vec<PathBuf> = stdout.lines().map(PathBuf::from).collect();
    // The tests of the problems that reproduced: the others may not race in a test's seconds.
    let files: Vec<PathBuf> = problems
        .iter()
        .map(|id| tests.join(format!("test_{}.py", id.replace('-', "_"))))
        .collect();
    for file in &files {
        assert!(
            written.contains(file),
            "no {}:\n{stdout}\n{stderr}",
            file.display()
        );
    }
    let racy_venv = run.dir.join("test-venv");
    let fixed_venv = dir.join("after/test-venv");
    for (n, test) in files.iter().enumerate() {
        let logs = scratch.path().join(format!("logs-{n}"));
        let (passed, output) = pytest_passes(&racy_venv, test, &run, &logs.join("racy"));
        assert!(
            !passed,
            "{} passed against the racy build:\n{output}",
            test.display()
        );
        let (passed, output) = pytest_passes(&fixed_venv, test, &run, &logs.join("fixed"));
        assert!(
            passed,
            "{} failed against the clean twin:\n{output}",
            test.display()
        );
    }
}

#[test]
fn the_racy_tree_itself_still_reproduces() {
    let Some(python) = interpreter() else { return };
    let (run, problems) = reproduced_problems(&python);
    let racy = fixtures().join("racy_ext");
    let hash = ftreview_testkit::content_hash(&[&racy]);
    let (code, verification, _, stderr) = verify(&run, &racy, &problems[..1]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        verification
            .problems
            .iter()
            .any(|p| p.status == VerifyStatus::StillReproduces),
        "{verification:?}"
    );
    assert_eq!(
        ftreview_testkit::content_hash(&[&racy]),
        hash,
        "the racy fixture changed"
    );
}

/// The reproduced problems whose fix is a mechanical edit: the ones a suggested patch can be
/// proven on.
fn mechanical_problems(run: &Run) -> Vec<(String, FixKind)> {
    (run.results().findings.iter())
        .filter(|f| f.reproducer.as_ref().is_some_and(|r| r.reproduced > 0))
        .filter(|f| matches!(f.fix.kind, FixKind::CriticalSection | FixKind::Atomic))
        .map(|f| (f.id.clone(), f.fix.kind))
        .collect()
}

#[test]
fn suggested_patches_apply_build_and_fix_their_problems_in_a_scratch_copy() {
    let Some(python) = interpreter() else { return };
    let shared = racy_run(&python);
    let problems = mechanical_problems(&shared);
    for kind in [FixKind::CriticalSection, FixKind::Atomic] {
        assert!(
            problems.iter().any(|(_, k)| *k == kind),
            "no reproduced {kind:?} problem to patch: {problems:?}\n{}",
            shared.stderr
        );
    }
    // A copy of the run: the shared run's own plan stays as the other tests read it.
    let scratch = tempfile::tempdir().unwrap();
    let run_dir = scratch.path().join("run");
    let copied = Command::new("cp")
        .arg("-a")
        .arg(&shared.dir)
        .arg(&run_dir)
        .status()
        .unwrap();
    assert!(copied.success());
    let source = RunRecord::load(&run_dir).unwrap().target.source_dir;
    let hashes = || ftreview_testkit::content_hash(&[&source, &fixtures().join("racy_ext")]);
    let before = hashes();

    let mut args = vec![
        "verify",
        run_dir.to_str().unwrap(),
        "--suggested",
        "--runs",
        "3",
        "--quiet",
    ];
    for (id, _) in &problems {
        args.extend(["--problem", id.as_str()]);
    }
    let (code, stdout, stderr) = ftreview(&args);
    let patches = SuggestedPatches::load(&run_dir)
        .unwrap_or_else(|| panic!("no patches.json (exit {code}):\n{stdout}\n{stderr}"));
    for (id, _) in &problems {
        let unsuggested = patches.unsuggested.iter().find(|u| &u.problem_id == id);
        assert!(
            patches.of(id).is_some() || unsuggested.is_some_and(|u| !u.reason.is_empty()),
            "{id}: neither a patch nor a reason:\n{patches:#?}"
        );
    }
    for patch in &patches.patches {
        assert!(patch.fixes(), "{patch:#?}\n{stderr}");
    }
    for kind in [FixKind::CriticalSection, FixKind::Atomic] {
        assert!(
            patches.patches.iter().any(|p| p.fix == kind),
            "no {kind:?} patch:\n{patches:#?}"
        );
    }
    assert_eq!(code, 0, "{stderr}");
    let plan = fs::read_to_string(run_dir.join("migration-plan.md")).unwrap();
    for patch in &patches.patches {
        let id = &patch.problem_id;
        assert!(
            plan.contains(&format!("**Verified patch** ([patches/{id}.diff]")),
            "{id} has no verified patch in the plan:\n{plan}"
        );
    }
    assert!(plan.contains("```diff\n"), "{plan}");
    assert_eq!(hashes(), before, "the run's tree or the fixture changed");
}
