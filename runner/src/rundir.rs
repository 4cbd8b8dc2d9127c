//! The run directory: everything a run produced, kept.
//!
//! ```text
//! RUN_DIR/
//!   run.json              the run model (reports crate), rewritten after every phase
//!   report.md results.json results.sarif   written by the reports crate
//!   commands.jsonl        every command executed: exact line, cwd, env, exit, seconds
//!   suppressions.txt      merged TSan suppressions (race_top:/thread: only)
//!   harness/              the pytest plugin and helper scripts ftreview ran
//!   fetch/                the downloaded sdist and the unpacked source tree (fetch/src/…)
//!   venv/                 the target's virtual environment
//!   build/                build logs, the built wheel, meson/cmake build dirs
//!   logs/<phase>/         per phase: output.log, tsan.<pid>, tests.jsonl, *.stacks.txt
//!   logs/stress/<scenario>/   per scenario: script.py, output.log, outcome.json, tsan.<pid>
//!   findings/reports.jsonl    every parsed TSan report with its origin
//! ```

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;

pub const HELPER: &str = include_str!("../python/ftreview_helper.py");
pub const PLUGIN: &str = include_str!("../python/ftreview_pytest_plugin.py");

#[derive(Debug, Clone)]
pub struct RunDir {
    pub root: PathBuf,
}

impl RunDir {
    /// Creates `parent/<slug>-<UTC timestamp>` (or `parent/<slug>` when `exact`).
    pub fn create(parent: &Path, slug: &str, exact: bool) -> anyhow::Result<RunDir> {
        let name = if exact {
            slug.to_string()
        } else {
            format!("{slug}-{}", utc_stamp(SystemTime::now()))
        };
        let root = parent.join(name);
        fs::create_dir_all(&root)
            .with_context(|| format!("cannot create the run directory {}", root.display()))?;
        let root = fs::canonicalize(&root)?;
        let dir = RunDir { root };
        fs::create_dir_all(dir.harness())?;
        fs::write(dir.helper(), HELPER)?;
        fs::write(dir.harness().join("ftreview_pytest_plugin.py"), PLUGIN)?;
        Ok(dir)
    }

    pub fn harness(&self) -> PathBuf {
        self.root.join("harness")
    }

    pub fn helper(&self) -> PathBuf {
        self.harness().join("ftreview_helper.py")
    }

    pub fn fetch(&self) -> PathBuf {
        self.root.join("fetch")
    }

    pub fn venv(&self) -> PathBuf {
        self.root.join("venv")
    }

    pub fn build(&self) -> PathBuf {
        self.root.join("build")
    }

    pub fn journal(&self) -> PathBuf {
        self.root.join("commands.jsonl")
    }

    pub fn suppressions(&self) -> PathBuf {
        self.root.join("suppressions.txt")
    }

    /// `logs/<phase>` (created).
    pub fn logs(&self, phase: &str) -> anyhow::Result<PathBuf> {
        let dir = self.root.join("logs").join(phase);
        fs::create_dir_all(&dir)?;
        Ok(dir)
    }

    pub fn findings(&self) -> anyhow::Result<PathBuf> {
        let dir = self.root.join("findings");
        fs::create_dir_all(&dir)?;
        Ok(dir)
    }
}

/// `YYYYMMDD-HHMMSS` in UTC.
fn utc_stamp(time: SystemTime) -> String {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}{month:02}{day:02}-{:02}{:02}{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn stamps_in_utc() {
        let t = UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        assert_eq!(utc_stamp(t), "20261118-110640");
        assert_eq!(utc_stamp(UNIX_EPOCH), "19700101-000000");
    }

    #[test]
    fn creates_the_harness() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::create(dir.path(), "pkg-1.0", true).unwrap();
        assert!(run.helper().is_file());
        assert!(run.harness().join("ftreview_pytest_plugin.py").is_file());
        assert!(run.logs("tests").unwrap().is_dir());
    }
}
