//! Suggested patches from the racy fixture's real evidence: which problems get a mechanical
//! patch and which do not, that each diff applies to the real tree with git, and that the plan
//! shows a patch only when its verification says fixed.

mod common;

use std::path::Path;
use std::process::Command;

use ftreview_reports::results::{Finding, FixKind, Owner};
use ftreview_reports::{
    analyze, render_markdown, suggest_patch, PatchCheck, SuggestedPatch, SuggestedPatches, Tally,
    VerifiedProblem, VerifyStatus, PATCHES_DIR,
};

fn problems() -> (ftreview_reports::RunRecord, Vec<Finding>) {
    let run = common::fixture_record("racy");
    let findings = analyze(&run, None).results.findings;
    let problems = findings
        .into_iter()
        .filter(|f| f.id.starts_with("problem-"))
        .collect();
    (run, problems)
}

/// `git apply --check -p1 DIFF` at `tree`; git's message when it refuses.
fn applies(tree: &Path, diff: &str) -> Result<(), String> {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), diff).unwrap();
    let out = Command::new("git")
        .args(["apply", "--check", "-p1"])
        .arg(file.path())
        .current_dir(tree)
        .output()
        .unwrap();
    match out.status.success() {
        true => Ok(()),
        false => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
    }
}

/// The C function bound to `Type.method`.
fn c_function_of(run: &ftreview_reports::RunRecord, operation: &str) -> String {
    let (type_name, method) = operation.rsplit_once('.').unwrap();
    let scan = run.static_scan.as_ref().unwrap();
    (scan.methods.iter())
        .find(|m| {
            m.python_name == method
                && (m.owner_type.as_deref()).is_some_and(|t| t.ends_with(&format!(".{type_name}")))
        })
        .map(|m| m.c_function.clone())
        .unwrap_or_else(|| panic!("no binding of {operation}"))
}

#[test]
fn the_object_and_counter_problems_get_a_patch_that_applies_and_the_rest_say_why_not() {
    let (run, problems) = problems();
    let mut kinds = Vec::new();
    for problem in &problems {
        match suggest_patch(&run, problem) {
            Ok(patch) => {
                let diff = patch.unified_diff();
                applies(&run.target.source_dir, &diff)
                    .unwrap_or_else(|e| panic!("{}: {e}\n{diff}", problem.id));
                kinds.push(problem.fix.kind);
                match problem.fix.kind {
                    FixKind::CriticalSection => {
                        assert!(
                            diff.contains("+    Py_BEGIN_CRITICAL_SECTION(self);"),
                            "{diff}"
                        );
                        for operation in &problem.operations {
                            let c_function = c_function_of(&run, operation);
                            let call = format!("result = {c_function}_lock_held(self");
                            assert!(diff.contains(&call), "{operation}:\n{diff}");
                        }
                    }
                    FixKind::Atomic => {
                        assert!(diff.contains("+static _Atomic long call_count"), "{diff}")
                    }
                    other => panic!("{}: a patch for a {other:?} fix", problem.id),
                }
            }
            Err(refusal) => {
                assert!(
                    !matches!(
                        (problem.fix.kind, &problem.owner),
                        (FixKind::Atomic, Some(Owner::Global { .. }))
                    ),
                    "{}: {refusal}",
                    problem.id
                );
                assert!(!refusal.0.is_empty());
            }
        }
    }
    kinds.sort_by_key(|k| k.label());
    assert_eq!(
        kinds,
        [FixKind::Atomic, FixKind::CriticalSection],
        "{problems:#?}"
    );
}

#[test]
fn a_lock_order_problem_has_no_mechanical_patch() {
    let (run, problems) = problems();
    let lock_order = problems
        .iter()
        .find(|p| p.fix.kind == FixKind::LockOrder)
        .unwrap();
    let refusal = suggest_patch(&run, lock_order).unwrap_err();
    assert_eq!(
        refusal.0, "a lock order fix is not a local, certain edit",
        "{refusal}"
    );
}

fn verified(id: &str, after: u32) -> PatchCheck {
    PatchCheck::Verified {
        problem: VerifiedProblem {
            id: id.into(),
            title: String::new(),
            before: Tally {
                reproduced: 3,
                runs: 3,
            },
            after: Tally {
                reproduced: after,
                runs: 3,
            },
            status: match after {
                0 => VerifyStatus::Fixed,
                _ => VerifyStatus::StillReproduces,
            },
            note: None,
        },
        new_problems: Vec::new(),
    }
}

#[test]
fn the_plan_shows_a_patch_only_when_its_verification_says_fixed() {
    let (mut run, problems) = problems();
    let dir = tempfile::tempdir().unwrap();
    run.run_dir = dir.path().to_path_buf();
    std::fs::create_dir_all(dir.path().join(PATCHES_DIR)).unwrap();
    let checks = [
        verified(&problems[0].id, 0),
        verified(&problems[1].id, 2),
        PatchCheck::BuildFailed {
            error: "error: unknown type name".into(),
        },
    ];
    let patches: Vec<SuggestedPatch> = (problems.iter().zip(checks))
        .map(|(problem, check)| {
            let diff = format!("{}.diff", problem.id);
            let text = format!(
                "--- a/src/x.c\n+++ b/src/x.c\n@@ -1 +1 @@\n-{0}\n+{0} fixed\n",
                problem.id
            );
            std::fs::write(dir.path().join(PATCHES_DIR).join(&diff), text).unwrap();
            SuggestedPatch {
                problem_id: problem.id.clone(),
                fix: problem.fix.kind,
                summary: format!("the summary of {}", problem.id),
                diff,
                check,
            }
        })
        .collect();
    let all = SuggestedPatches {
        runs: 3,
        patches,
        unsuggested: Vec::new(),
    };
    all.write(dir.path()).unwrap();
    assert_eq!(SuggestedPatches::load(dir.path()).as_ref(), Some(&all));

    let plan = render_markdown(&analyze(&run, None));
    let (fixed, still, broken) = (&problems[0].id, &problems[1].id, &problems[2].id);
    assert!(
        plan.contains(&format!("**Verified patch** ([patches/{fixed}.diff](patches/{fixed}.diff)): the summary of {fixed}.")),
        "{plan}"
    );
    assert!(
        plan.contains(&format!("+{fixed} fixed")),
        "the diff is inline"
    );
    assert!(
        plan.contains("3/3 runs on the run's build and 0/3 on the patched one"),
        "{plan}"
    );
    for not_shown in [still, broken] {
        assert!(!plan.contains(&format!("+{not_shown} fixed")), "{plan}");
    }
    assert!(
        plan.contains("*Suggested patch not shown:* its verification says still reproduces (3/3 runs on the run's build, 2/3 patched)"),
        "{plan}"
    );
    assert!(
        plan.contains("*Suggested patch not shown:* the patched extension does not build"),
        "{plan}"
    );
}
