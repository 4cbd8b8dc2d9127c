//! `ftreview verify RUN_DIR --suggested`: the run's own mechanical patches. Each problem whose
//! fix is a local, certain edit gets a diff in `RUN_DIR/patches/`; the diff is applied with
//! `git apply` to a scratch copy of the run's tree, built like the run's build, and the
//! problem's reproducer is rerun there. "Before" is what the run's own reruns of that
//! reproducer showed on the run's build; a problem the run never reran is rerun there first. The record goes to `patches/patches.json`
//! and the plan is rewritten to show the patches that fix their problem. The run's tree is
//! never changed.

use std::path::Path;

use anyhow::Context;
use ftreview_reports::results::FixKind;
use ftreview_reports::{
    patches_dir, suggest_patch, write_all, Format, PatchCheck, RunRecord, SuggestedPatch,
    SuggestedPatches, Tally, Unsuggested,
};

use super::{run_build, Verifier};
use crate::exit::Outcome;
use crate::phases::ReproTarget;
use crate::rundir::RunDir;
use crate::target::{copy_tree, TargetSpec};

/// A problem's patch, written and waiting to be checked.
struct Pending {
    target: ReproTarget,
    /// The run's reruns of the problem's reproducer.
    before: Tally,
    fix: FixKind,
    summary: String,
    /// The diff's file name in `patches/`.
    diff: String,
}

pub(super) async fn verify(
    verifier: &Verifier,
    record: &RunRecord,
    run_dir: &Path,
) -> anyhow::Result<Outcome> {
    let (mut pending, unsuggested) = write_diffs(verifier, record, run_dir)?;
    for skipped in &unsuggested {
        (verifier.events).note(&format!(
            "{}: no patch ({})",
            skipped.problem_id, skipped.reason
        ));
    }
    let mut patches = Vec::new();
    if !pending.is_empty() {
        let dir = RunDir::create(run_dir, "verify", false)?;
        rerun_unproven(verifier, record, &dir, &mut pending).await?;
        for patch in pending {
            let check = check(verifier, record, run_dir, &dir, &patch).await?;
            patches.push(SuggestedPatch {
                problem_id: patch.target.problem_id,
                fix: patch.fix,
                summary: patch.summary,
                diff: patch.diff,
                check,
            });
        }
    }
    let all = SuggestedPatches {
        runs: verifier.runs,
        patches,
        unsuggested,
    };
    println!("{}", all.write(run_dir)?.display());
    for file in write_all(record, run_dir, None, Format::Markdown)?.files {
        println!("{}", file.display());
    }
    eprint!("{}", summary(&all));
    let every_patch_fixes = !all.patches.is_empty() && all.patches.iter().all(|p| p.fixes());
    Ok(if every_patch_fixes {
        Outcome::Clean
    } else {
        Outcome::Findings
    })
}

/// Reruns on the run's build the problems the run itself never reran, so a patch of theirs
/// has a "before" to compare with.
async fn rerun_unproven(
    verifier: &Verifier,
    record: &RunRecord,
    dir: &RunDir,
    pending: &mut [Pending],
) -> anyhow::Result<()> {
    let unproven: Vec<ReproTarget> = (pending.iter())
        .filter(|p| p.before.runs == 0)
        .map(|p| p.target.clone())
        .collect();
    if unproven.is_empty() {
        return Ok(());
    }
    let before = (verifier.side(dir, "before", &run_build(record), &unproven)).await?;
    for patch in pending.iter_mut().filter(|p| p.before.runs == 0) {
        patch.before = before.tally(&patch.target.problem_id);
    }
    Ok(())
}

/// One diff per problem that has a mechanical fix; the others with why not.
fn write_diffs(
    verifier: &Verifier,
    record: &RunRecord,
    run_dir: &Path,
) -> anyhow::Result<(Vec<Pending>, Vec<Unsuggested>)> {
    let dir = patches_dir(run_dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut pending = Vec::new();
    let mut unsuggested = Vec::new();
    for target in &verifier.problems.targets {
        let id = &target.problem_id;
        let Some(problem) = verifier.problems.findings.iter().find(|f| &f.id == id) else {
            continue;
        };
        match suggest_patch(record, problem) {
            Ok(patch) => {
                let diff = format!("{id}.diff");
                let path = dir.join(&diff);
                std::fs::write(&path, patch.unified_diff())
                    .with_context(|| format!("cannot write {}", path.display()))?;
                let before = problem
                    .reproducer
                    .as_ref()
                    .map_or(Tally::default(), |r| Tally {
                        reproduced: r.reproduced,
                        runs: r.runs,
                    });
                pending.push(Pending {
                    target: target.clone(),
                    before,
                    fix: problem.fix.kind,
                    summary: patch.summary,
                    diff,
                });
            }
            Err(refusal) => unsuggested.push(Unsuggested {
                problem_id: id.clone(),
                reason: refusal.0,
            }),
        }
    }
    Ok((pending, unsuggested))
}

/// Applies one patch to a scratch copy of the run's tree, builds it and reruns its problem.
async fn check(
    verifier: &Verifier,
    record: &RunRecord,
    run_dir: &Path,
    dir: &RunDir,
    patch: &Pending,
) -> anyhow::Result<PatchCheck> {
    let target = &patch.target;
    let label = format!("patch-{}", target.problem_id);
    let tree = dir.root.join(&label).join("tree");
    copy_tree(&record.target.source_dir, &tree)?;
    let diff = patches_dir(run_dir).join(&patch.diff);
    if let Err(error) = git_apply(&tree, &diff) {
        return Ok(PatchCheck::DoesNotApply { error });
    }
    let spec = TargetSpec::Dir { path: tree };
    let targets = std::slice::from_ref(target);
    let after = match verifier.side(dir, &label, &spec, targets).await {
        Ok(after) => after,
        Err(error) => {
            return Ok(PatchCheck::BuildFailed {
                error: format!("{error:#}"),
            })
        }
    };
    Ok(PatchCheck::Verified {
        problem: verifier.verdict(target, patch.before, None, &after),
        new_problems: verifier.new_problems(&after),
    })
}

/// `git apply -p1` in `tree`; the error is git's own message.
fn git_apply(tree: &Path, diff: &Path) -> Result<(), String> {
    let output = std::process::Command::new("git")
        .args(["apply", "-p1", "--whitespace=nowarn"])
        .arg(diff)
        .current_dir(tree)
        .output()
        .map_err(|err| format!("cannot run git apply: {err}"))?;
    if output.status.success() {
        return Ok(());
    }
    Err(String::from_utf8_lossy(&output.stderr).trim().to_string())
}

/// One line per patch and per problem left without one.
fn summary(all: &SuggestedPatches) -> String {
    let mut out = String::new();
    for patch in &all.patches {
        let verdict = if patch.fixes() {
            "verified: fixes it".to_string()
        } else {
            patch.failure()
        };
        out.push_str(&format!(
            "{}: {} — {verdict}\n",
            patch.problem_id, patch.summary
        ));
    }
    for skipped in &all.unsuggested {
        out.push_str(&format!(
            "{}: no patch ({})\n",
            skipped.problem_id, skipped.reason
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_diff_that_does_not_match_the_tree_is_refused_with_gits_reason() {
        let tree = tempfile::tempdir().unwrap();
        std::fs::write(tree.path().join("ext.c"), "int counter;\n").unwrap();
        let diff = tree.path().join("fix.diff");
        let patch = |from: &str| {
            format!("--- a/ext.c\n+++ b/ext.c\n@@ -1 +1 @@\n-{from}\n+_Atomic int counter;\n")
        };
        std::fs::write(&diff, patch("long counter;")).unwrap();
        let error = git_apply(tree.path(), &diff).unwrap_err();
        assert!(error.contains("patch does not apply"), "{error}");
        assert_eq!(
            std::fs::read_to_string(tree.path().join("ext.c")).unwrap(),
            "int counter;\n"
        );

        std::fs::write(&diff, patch("int counter;")).unwrap();
        git_apply(tree.path(), &diff).unwrap();
        assert_eq!(
            std::fs::read_to_string(tree.path().join("ext.c")).unwrap(),
            "_Atomic int counter;\n"
        );
    }
}
