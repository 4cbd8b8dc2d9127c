//! Suggested patches: for the problems whose fix is a local, certain edit (a type's methods
//! under the object's critical section, a counter made atomic), the edit as a unified diff.
//! `ftreview verify --suggested` applies each in a scratch copy, builds it and reruns the
//! problem's reproducer; this module owns the record of that (`patches/patches.json`) and
//! what the plan shows: a patch only when its verification says fixed.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use ftreview_static::{
    atomic_patch, critical_section_patch, AtomicTarget, BindingKind, Patch, Refusal, SourceFile,
};
use serde::{Deserialize, Serialize};

use crate::analyze::binding_name;
use crate::model::RunRecord;
use crate::results::{Finding, FixKind, Owner, Receiver};
use crate::verification::{VerifiedProblem, VerifyStatus};

/// `RUN_DIR/patches/`: one `<problem id>.diff` per suggested patch and `patches.json`.
pub const PATCHES_DIR: &str = "patches";
pub const PATCHES_FILE: &str = "patches.json";

/// Longest diff the plan shows inline; a longer one is linked.
const INLINE_DIFF_LINES: usize = 80;

/// Slots whose first argument is not an existing object of the type.
const NOT_ON_SELF: [&str; 2] = ["__new__", "__del__"];

/// The suggested patches of a run and what verifying them showed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuggestedPatches {
    /// Reruns of each reproducer, before and after.
    pub runs: u32,
    pub patches: Vec<SuggestedPatch>,
    /// Problems with no mechanical patch, and why.
    pub unsuggested: Vec<Unsuggested>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuggestedPatch {
    pub problem_id: String,
    pub fix: FixKind,
    /// What the patch does, for people.
    pub summary: String,
    /// The diff's file name in `patches/`.
    pub diff: String,
    pub check: PatchCheck,
}

/// How far a suggested patch got.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum PatchCheck {
    /// `git apply` refused it in the scratch copy.
    DoesNotApply { error: String },
    /// The patched copy did not build.
    BuildFailed { error: String },
    /// It built; its problem's reproducer ran on both builds.
    Verified {
        problem: VerifiedProblem,
        /// Races of none of the run's problems in the patched build's reruns (their ids).
        new_problems: Vec<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unsuggested {
    pub problem_id: String,
    pub reason: String,
}

impl SuggestedPatch {
    /// Only a patch whose verification says fixed, with nothing new, is shown as a fix.
    pub fn fixes(&self) -> bool {
        self.fixed().is_some()
    }

    /// The verification of a patch that fixes its problem.
    fn fixed(&self) -> Option<&VerifiedProblem> {
        match &self.check {
            PatchCheck::Verified {
                problem,
                new_problems,
            } if problem.status == VerifyStatus::Fixed && new_problems.is_empty() => Some(problem),
            _ => None,
        }
    }

    /// Why a patch that is not shown was not, in a few words.
    pub fn failure(&self) -> String {
        match &self.check {
            PatchCheck::DoesNotApply { error } => format!("it does not apply ({error})"),
            PatchCheck::BuildFailed { .. } => "the patched extension does not build".into(),
            PatchCheck::Verified { new_problems, .. } if !new_problems.is_empty() => {
                format!("its reruns show new race(s): {}", new_problems.join(", "))
            }
            PatchCheck::Verified { problem: v, .. } => format!(
                "its verification says {} ({}/{} runs on the run's build, {}/{} patched)",
                v.status.label(),
                v.before.reproduced,
                v.before.runs,
                v.after.reproduced,
                v.after.runs
            ),
        }
    }
}

/// The mechanical patch for `problem`, or why it has none.
pub fn suggest_patch(run: &RunRecord, problem: &Finding) -> Result<Patch, Refusal> {
    let refuse = |why: &str| Err(Refusal(why.to_string()));
    let files = source_files(run)?;
    match (problem.fix.kind, &problem.owner) {
        (FixKind::CriticalSection, Some(owner)) if locks_self(owner) => {
            let functions = methods_of(run, problem);
            if functions.is_empty() {
                return refuse("no C method of the type is bound to its operations");
            }
            critical_section_patch(&files, &functions)
        }
        (
            FixKind::Atomic,
            Some(Owner::Global {
                name,
                function: None,
            }),
        ) => atomic_patch(&files, &AtomicTarget::Global(name.clone())),
        (FixKind::Atomic, Some(Owner::ModuleState { field: Some(field) })) => atomic_patch(
            &files,
            &AtomicTarget::Field {
                field: field.clone(),
            },
        ),
        (kind, _) => refuse(&format!(
            "a {} fix is not a local, certain edit",
            kind.label()
        )),
    }
}

/// Whether the fix locks the object the methods are called on.
fn locks_self(owner: &Owner) -> bool {
    match owner {
        Owner::Object { receiver, .. } => *receiver == Receiver::SelfObject,
        Owner::HeapBlock { type_name, .. } => type_name.is_some(),
        _ => false,
    }
}

/// The C functions bound to the problem's operations on an object (methods, getters,
/// setters, slots), in source order.
fn methods_of(run: &RunRecord, problem: &Finding) -> Vec<String> {
    let Some(scan) = &run.static_scan else {
        return Vec::new();
    };
    let mut functions: Vec<String> = Vec::new();
    let on_object = (scan.methods.iter())
        .filter(|m| m.kind != BindingKind::Function)
        .filter(|m| !NOT_ON_SELF.contains(&m.python_name.as_str()))
        .filter(|m| problem.operations.contains(&binding_name(m)));
    for binding in on_object {
        if !functions.contains(&binding.c_function) {
            functions.push(binding.c_function.clone());
        }
    }
    functions
}

/// The C sources the static pass read, relative to the source tree.
fn source_files(run: &RunRecord) -> Result<Vec<SourceFile>, Refusal> {
    let root = &run.target.source_dir;
    let scan = (run.static_scan.as_ref())
        .ok_or_else(|| Refusal("the static pass did not run, so no source is known".into()))?;
    scan.files
        .iter()
        .map(|file| {
            let absolute = root.join(&file.path);
            let text = std::fs::read_to_string(&absolute)
                .map_err(|err| Refusal(format!("cannot read {}: {err}", absolute.display())))?;
            let path = absolute.strip_prefix(root).unwrap_or(&file.path);
            Ok(SourceFile {
                path: path.to_path_buf(),
                text,
            })
        })
        .collect()
}

impl SuggestedPatches {
    /// `run_dir/patches/patches.json`, if `ftreview verify --suggested` wrote one.
    pub fn load(run_dir: &Path) -> Option<SuggestedPatches> {
        let text = std::fs::read_to_string(patches_dir(run_dir).join(PATCHES_FILE)).ok()?;
        serde_json::from_str(&text).ok()
    }

    pub fn write(&self, run_dir: &Path) -> anyhow::Result<PathBuf> {
        let path = patches_dir(run_dir).join(PATCHES_FILE);
        let json = serde_json::to_string_pretty(self).expect("patches serialize") + "\n";
        std::fs::write(&path, json).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(path)
    }

    pub fn of(&self, problem_id: &str) -> Option<&SuggestedPatch> {
        self.patches.iter().find(|p| p.problem_id == problem_id)
    }
}

pub fn patches_dir(run_dir: &Path) -> PathBuf {
    run_dir.join(PATCHES_DIR)
}

/// The plan's paragraph on a problem's suggested patch: the diff when verified, else one line
/// saying why it is not shown.
pub(crate) fn plan_paragraph(out: &mut String, run_dir: &Path, patch: &SuggestedPatch) {
    let link = format!("{PATCHES_DIR}/{}", patch.diff);
    let Some(verified) = patch.fixed() else {
        let _ = writeln!(
            out,
            "*Suggested patch not shown:* {} ([{link}]({link})).\n",
            patch.failure()
        );
        return;
    };
    let _ = writeln!(
        out,
        "**Verified patch** ([{link}]({link})): {}. Applied to a scratch copy of the tree and built; its reproducer showed the problem in {}/{} runs on the run's build and {}/{} on the patched one.\n",
        patch.summary,
        verified.before.reproduced,
        verified.before.runs,
        verified.after.reproduced,
        verified.after.runs
    );
    let Ok(diff) = std::fs::read_to_string(patches_dir(run_dir).join(&patch.diff)) else {
        return;
    };
    if diff.lines().count() <= INLINE_DIFF_LINES {
        let _ = writeln!(out, "```diff\n{}```\n", diff);
    }
}
