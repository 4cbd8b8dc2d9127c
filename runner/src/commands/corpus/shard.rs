//! A shard's output directory, as `corpus run` writes it and `corpus merge` reads it:
//!
//! ```text
//! SHARD_DIR/
//!   shard.json            which list, which shard, every shard's targets (see ShardRecord)
//!   <target slug>/        the target's run directory (`ftreview run -o`), plus:
//!     attempt.json        how the `ftreview run` child ended (Attempt)
//!     ftreview-run.log    its stdout and stderr
//! ```

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context;
use ftreview_reports::model::{RunRecord, RUN_FILE};
use ftreview_reports::{Results, RESULTS_FILE};
use serde::{Deserialize, Serialize};

pub const SHARD_FILE: &str = "shard.json";
pub const ATTEMPT_FILE: &str = "attempt.json";
pub const LOG_FILE: &str = "ftreview-run.log";

/// `shard.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardRecord {
    pub list: PathBuf,
    pub shard: usize,
    pub of: usize,
    /// The `ftreview run` options given for every target.
    pub run_options: Vec<String>,
    /// Every shard's targets in list order, so that merge can tell a target no shard ran
    /// from one that was never planned, and shards planned from different inputs.
    pub targets: Vec<PlannedTarget>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedTarget {
    pub target: String,
    pub line: usize,
    /// The line's own options.
    pub options: Vec<String>,
    pub key: String,
    /// The run directory's name inside the shard directory.
    pub slug: String,
    /// The PyPI name and version, else the slug: what the table shows when there are no
    /// results to name it.
    pub name: String,
    pub version: Option<String>,
    pub shard: usize,
}

/// `attempt.json`: how the `ftreview run` child of one target ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    /// The child's arguments after the executable.
    pub argv: Vec<String>,
    pub exit_code: Option<i32>,
    /// The signal that killed it.
    pub signal: Option<i32>,
    pub wall_secs: f64,
    /// The corpus run was interrupted (Ctrl-C, SIGTERM) during this target.
    pub interrupted: bool,
    /// Set when the child left no results.json: what went wrong, in one line.
    pub error: Option<String>,
    /// The end of the child's output (the rest is in ftreview-run.log).
    pub output_tail: String,
}

pub fn write_json<T: Serialize>(path: &Path, value: &T) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value).expect("serializes") + "\n";
    fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

impl ShardRecord {
    pub fn load(dir: &Path) -> anyhow::Result<ShardRecord> {
        let path = dir.join(SHARD_FILE);
        let text = fs::read_to_string(&path).with_context(|| {
            format!(
                "{} is not a corpus shard directory (no readable {SHARD_FILE}): pass the directories `ftreview corpus run -o` wrote",
                dir.display()
            )
        })?;
        serde_json::from_str(&text).with_context(|| format!("{} is not valid", path.display()))
    }

    /// This shard's own targets.
    pub fn own_targets(&self) -> impl Iterator<Item = &PlannedTarget> {
        self.targets.iter().filter(|t| t.shard == self.shard)
    }
}

impl Attempt {
    pub fn load(run_dir: &Path) -> Option<Attempt> {
        let text = fs::read_to_string(run_dir.join(ATTEMPT_FILE)).ok()?;
        serde_json::from_str(&text).ok()
    }
}

/// results.json of the run directory, when it reads as [`Results`].
pub fn read_results(run_dir: &Path) -> Option<Results> {
    let text = fs::read_to_string(run_dir.join(RESULTS_FILE)).ok()?;
    serde_json::from_str(&text).ok()
}

/// Whether `run_dir` holds a finished review: its child ran to the end uninterrupted, wrote
/// results.json after the last run.json, and both read back.
pub fn is_finished(run_dir: &Path) -> bool {
    let modified = |name: &str| fs::metadata(run_dir.join(name)).and_then(|m| m.modified());
    let results_after_record = match (modified(RESULTS_FILE), modified(RUN_FILE)) {
        (Ok(results), Ok(record)) => results >= record,
        _ => false,
    };
    results_after_record
        && Attempt::load(run_dir).is_some_and(|a| !a.interrupted)
        && read_results(run_dir).is_some()
        && RunRecord::load(run_dir).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(interrupted: bool) -> Attempt {
        Attempt {
            argv: vec![],
            exit_code: Some(1),
            signal: None,
            wall_secs: 1.0,
            interrupted,
            error: None,
            output_tail: String::new(),
        }
    }

    #[test]
    fn a_run_is_finished_once_its_results_follow_its_record_uninterrupted() {
        let dir = tempfile::tempdir().unwrap();
        let run_dir = dir.path();
        let record: RunRecord =
            serde_json::from_str(include_str!("../../../tests/data/racy-run.json")).unwrap();
        record.save(run_dir).unwrap();
        write_json(&run_dir.join(ATTEMPT_FILE), &attempt(false)).unwrap();
        assert!(!is_finished(run_dir), "no results.json yet");

        let results = ftreview_reports::analyze(&record, None).results;
        fs::write(
            run_dir.join(RESULTS_FILE),
            ftreview_reports::results_json(&results),
        )
        .unwrap();
        assert!(is_finished(run_dir));

        write_json(&run_dir.join(ATTEMPT_FILE), &attempt(true)).unwrap();
        assert!(!is_finished(run_dir), "interrupted: partial results");
        fs::remove_file(run_dir.join(ATTEMPT_FILE)).unwrap();
        assert!(
            !is_finished(run_dir),
            "killed before its attempt was recorded"
        );
    }
}
