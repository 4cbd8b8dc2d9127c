//! Whether a patch fixes a run's problems: each problem's small reproducer rerun K times on
//! the run's build (before) and on the patched build (after). `ftreview verify` measures it;
//! this module owns its record (`verification.json`), its Markdown (`verification.md`) and
//! how the run's plan finds the latest one.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::results::Outcome;

pub const VERIFICATION_FILE: &str = "verification.json";
pub const VERIFICATION_MARKDOWN: &str = "verification.md";
/// Verifications live in `RUN_DIR/verify-<UTC time>/`.
pub const VERIFY_DIR_PREFIX: &str = "verify-";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verification {
    /// What was verified: the patched tree or the release (`--source`, `--target`).
    pub patched: String,
    /// Reruns of each reproducer, before and after.
    pub runs: u32,
    pub problems: Vec<VerifiedProblem>,
    /// Races the patched build showed in the same reruns that are none of the run's problems
    /// (their problem ids).
    pub new_problems: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerifiedProblem {
    pub id: String,
    pub title: String,
    pub before: Tally,
    pub after: Tally,
    pub status: VerifyStatus,
    /// Why, when the status needs one (the operation that no longer exists).
    pub note: Option<String>,
}

/// How many of the runs showed the problem.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    pub reproduced: u32,
    pub runs: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerifyStatus {
    /// Reproduced before, never after.
    Fixed,
    StillReproduces,
    /// The patched build cannot run the reproducer's operations (the API changed).
    NotExercised,
    /// Its reproducer did not show it on the run's build either: nothing to compare.
    NotReproducedBefore,
}

impl VerifyStatus {
    pub fn label(self) -> &'static str {
        match self {
            VerifyStatus::Fixed => "fixed",
            VerifyStatus::StillReproduces => "still reproduces",
            VerifyStatus::NotExercised => "not exercised any more (the API changed)",
            VerifyStatus::NotReproducedBefore => "not reproduced before (cannot tell)",
        }
    }
}

impl Verification {
    /// Success (exit 0) only when every problem is fixed and nothing new appeared.
    pub fn outcome(&self) -> Outcome {
        let all_fixed = self
            .problems
            .iter()
            .all(|p| p.status == VerifyStatus::Fixed);
        if all_fixed && !self.problems.is_empty() && self.new_problems.is_empty() {
            Outcome::Clean
        } else {
            Outcome::Findings
        }
    }

    pub fn fixed(&self) -> usize {
        (self.problems.iter())
            .filter(|p| p.status == VerifyStatus::Fixed)
            .count()
    }

    /// `verification.json` and `verification.md` in `dir`.
    pub fn write(&self, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
        let json = serde_json::to_string_pretty(self).expect("a verification serializes") + "\n";
        let mut files = Vec::new();
        for (name, text) in [
            (VERIFICATION_FILE, json),
            (VERIFICATION_MARKDOWN, self.markdown()),
        ] {
            let path = dir.join(name);
            std::fs::write(&path, text)
                .with_context(|| format!("cannot write {}", path.display()))?;
            files.push(path);
        }
        Ok(files)
    }

    pub fn markdown(&self) -> String {
        let mut out = String::from("# Verification of a patch\n\n");
        let _ = writeln!(
            out,
            "Patched: `{}`. Each problem's small reproducer ran {} times on the run's build (before) and on the patched build (after), in fresh processes under ThreadSanitizer.\n",
            self.patched, self.runs
        );
        let _ = writeln!(
            out,
            "**{} of {} problems fixed**{}.\n",
            self.fixed(),
            self.problems.len(),
            match self.new_problems.len() {
                0 => String::from(", no new race in the same reruns"),
                n => format!(", {n} new problem(s) in the same reruns"),
            }
        );
        out.push_str("| Problem | Before | After | Status |\n|---|---|---|---|\n");
        for problem in &self.problems {
            let note = problem
                .note
                .as_deref()
                .map(|n| format!(": {}", n.replace('|', "\\|")))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "| `{}` {} | {}/{} | {}/{} | {}{note} |",
                problem.id,
                problem.title.replace('|', "\\|"),
                problem.before.reproduced,
                problem.before.runs,
                problem.after.reproduced,
                problem.after.runs,
                problem.status.label()
            );
        }
        if !self.new_problems.is_empty() {
            out.push_str("\nNew in the patched build's reruns (not problems of the run): ");
            let ids: Vec<String> = self.new_problems.iter().map(|p| format!("`{p}`")).collect();
            out.push_str(&ids.join(", "));
            out.push('\n');
        }
        out
    }
}

/// The verification directories of the run in `run_dir`, oldest first.
pub fn verification_dirs(run_dir: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(run_dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(VERIFY_DIR_PREFIX)
        })
        .map(|e| e.path())
        .collect();
    dirs.sort();
    dirs
}

/// The newest verification of the run in `run_dir` (its directory and record), if any.
pub fn latest_verification(run_dir: &Path) -> Option<(PathBuf, Verification)> {
    verification_dirs(run_dir)
        .into_iter()
        .rev()
        .find_map(|dir| {
            let text = std::fs::read_to_string(dir.join(VERIFICATION_FILE)).ok()?;
            Some((dir, serde_json::from_str(&text).ok()?))
        })
}

/// The plan's line about the latest verification, linked relative to the plan.
pub(crate) fn plan_section(run_dir: &Path) -> Option<String> {
    let (dir, verification) = latest_verification(run_dir)?;
    let name = dir.file_name()?.to_string_lossy().into_owned();
    Some(format!(
        "## Verification\n\nThe latest patch verification ([{name}/{VERIFICATION_MARKDOWN}]({name}/{VERIFICATION_MARKDOWN}), `{}`): {} of {} problems fixed{}.\n\n",
        verification.patched,
        verification.fixed(),
        verification.problems.len(),
        match verification.new_problems.len() {
            0 => String::new(),
            n => format!(", {n} new problem(s)"),
        }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(id: &str, before: u32, after: u32, status: VerifyStatus) -> VerifiedProblem {
        VerifiedProblem {
            id: id.into(),
            title: "`Vector` objects race".into(),
            before: Tally {
                reproduced: before,
                runs: 5,
            },
            after: Tally {
                reproduced: after,
                runs: 5,
            },
            status,
            note: None,
        }
    }

    fn verification(problems: Vec<VerifiedProblem>, new_problems: Vec<String>) -> Verification {
        Verification {
            patched: "/src/fixed".into(),
            runs: 5,
            problems,
            new_problems,
        }
    }

    #[test]
    fn success_only_when_every_problem_is_fixed_and_nothing_is_new() {
        let fixed = || problem("problem-a", 4, 0, VerifyStatus::Fixed);
        assert_eq!(
            verification(vec![fixed()], vec![]).outcome(),
            Outcome::Clean
        );
        let still = problem("problem-b", 5, 2, VerifyStatus::StillReproduces);
        assert_eq!(
            verification(vec![fixed(), still], vec![]).outcome(),
            Outcome::Findings
        );
        let new = vec!["problem-c".to_string()];
        assert_eq!(
            verification(vec![fixed()], new).outcome(),
            Outcome::Findings
        );
        assert_eq!(verification(vec![], vec![]).outcome(), Outcome::Findings);
    }

    #[test]
    fn the_table_shows_before_and_after_and_the_plan_links_the_latest() {
        let dir = tempfile::tempdir().unwrap();
        let older = verification(
            vec![problem("problem-a", 4, 3, VerifyStatus::StillReproduces)],
            vec![],
        );
        let newer = verification(
            vec![problem("problem-a", 4, 0, VerifyStatus::Fixed)],
            vec![],
        );
        for (name, v) in [
            ("verify-20260101-000000", &older),
            ("verify-20260102-000000", &newer),
        ] {
            std::fs::create_dir(dir.path().join(name)).unwrap();
            v.write(&dir.path().join(name)).unwrap();
        }
        let table = newer.markdown();
        assert!(
            table.contains("| `problem-a` `Vector` objects race | 4/5 | 0/5 | fixed |"),
            "{table}"
        );
        assert!(
            table.contains("**1 of 1 problems fixed**, no new race"),
            "{table}"
        );
        let (latest, read) = latest_verification(dir.path()).unwrap();
        assert!(latest.ends_with("verify-20260102-000000"));
        assert_eq!(read, newer);
        let section = plan_section(dir.path()).unwrap();
        assert!(
            section.contains("(verify-20260102-000000/verification.md)"),
            "{section}"
        );
        assert!(section.contains("1 of 1 problems fixed"), "{section}");
        assert!(plan_section(&dir.path().join("verify-20260101-000000")).is_none());
    }
}
