//! Baselines: a previous `results.json` whose findings are known, so CI reports and fails
//! only on new ones.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::results::{BaselineSummary, Finding, Results, RESULTS_SCHEMA_VERSION};

#[derive(Debug, Clone)]
pub struct Baseline {
    pub path: PathBuf,
    pub ids: BTreeSet<String>,
}

/// Reads a `results.json` written by `ftreview run` or `ftreview report`.
pub fn load_baseline(path: &Path) -> anyhow::Result<Baseline> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the baseline {}", path.display()))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("the baseline {} is not JSON", path.display()))?;
    let version = value.get("schema_version").and_then(|v| v.as_u64());
    if version != Some(u64::from(RESULTS_SCHEMA_VERSION)) {
        anyhow::bail!(
            "the baseline {} has schema_version {:?}, expected {}: pass a results.json written by this ftreview version",
            path.display(),
            version,
            RESULTS_SCHEMA_VERSION
        );
    }
    let results: Results = serde_json::from_value(value)
        .with_context(|| format!("the baseline {} is not a results.json", path.display()))?;
    Ok(Baseline {
        path: path.to_path_buf(),
        ids: results.findings.into_iter().map(|f| f.id).collect(),
    })
}

impl Baseline {
    /// Sets `new` on every finding and summarizes the comparison.
    pub fn mark(&self, findings: &mut [Finding]) -> BaselineSummary {
        for finding in findings.iter_mut() {
            finding.new = Some(!self.ids.contains(&finding.id));
        }
        let current: BTreeSet<&str> = findings.iter().map(|f| f.id.as_str()).collect();
        BaselineSummary {
            path: self.path.display().to_string(),
            new_findings: findings.iter().filter(|f| f.new == Some(true)).count(),
            new_actionable: findings
                .iter()
                .filter(|f| f.new == Some(true) && f.is_actionable())
                .count(),
            fixed: self
                .ids
                .iter()
                .filter(|id| !current.contains(id.as_str()))
                .cloned()
                .collect(),
        }
    }
}
