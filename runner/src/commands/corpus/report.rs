//! `corpus.json`: the merged result of a corpus, one entry per target of the list. Versioned
//! like results.json (additive changes keep the version) and documented in `docs/corpus.md`.
//! A previous `corpus.json` is also the cost file of `corpus plan` and the baseline of
//! `corpus merge`.

use std::path::Path;

use anyhow::{bail, Context};
use ftreview_reports::results::{GilSummary, Outcome, VerdictLevel};
use serde::{Deserialize, Serialize};

pub const CORPUS_SCHEMA_VERSION: u32 = 1;
pub const CORPUS_JSON: &str = "corpus.json";
pub const CORPUS_MARKDOWN: &str = "corpus.md";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CorpusReport {
    pub schema_version: u32,
    pub tool_version: String,
    /// In list order.
    pub targets: Vec<CorpusTarget>,
    /// With `--baseline`: what changed since that corpus.
    pub changes: Option<Changes>,
}

/// Whether ftreview reviewed the target to the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetStatus {
    Reviewed,
    /// The review stopped early, crashed, or never ran: `error` says why.
    Error,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CorpusTarget {
    /// As written in the list.
    pub target: String,
    /// The line's own `ftreview run` options.
    pub options: Vec<String>,
    pub line: usize,
    /// Identifies the target across versions (normalized PyPI name, repository or directory
    /// name): what costs and baselines are matched on.
    pub key: String,
    /// `K` of `--shard K/N`; `None` when no shard ran it.
    pub shard: Option<usize>,
    pub name: String,
    pub version: Option<String>,
    pub status: TargetStatus,
    pub verdict: Option<VerdictLevel>,
    /// The exit decision of the review (results.json's).
    pub outcome: Option<Outcome>,
    pub gil: Option<GilSummary>,
    pub counts: Option<TargetCounts>,
    /// Wall time of `ftreview run` for this target, when this corpus ran it.
    pub wall_secs: Option<f64>,
    /// Exit code of `ftreview run` (`None`: killed by a signal, or not run).
    pub exit_code: Option<i32>,
    pub error: Option<String>,
    /// Why a clean result proves nothing, when results.json says so.
    pub clean_unproven: Option<String>,
    /// Run directory and migration plan, relative to the directory of corpus.json.
    pub run_dir: Option<String>,
    pub plan: Option<String>,
}

/// The counts of the table, from results.json.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetCounts {
    /// Problems: shared state to fix, one fix each.
    #[serde(default)]
    pub problems: usize,
    /// Racing site pairs under them.
    pub races: usize,
    pub crashes: usize,
    pub hangs: usize,
    /// Static findings of that severity, recognized protection left out.
    pub static_high: usize,
    pub static_medium: usize,
}

/// Differences from a baseline corpus, matched on `key`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Changes {
    pub baseline: String,
    /// Keys the baseline lacks.
    pub new: Vec<String>,
    /// Baseline keys this corpus lacks.
    pub removed: Vec<String>,
    /// A better state than in the baseline (`error` counts as the worst).
    pub improved: Vec<StateChange>,
    pub regressed: Vec<StateChange>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateChange {
    pub key: String,
    /// `ready`, `close`, `needs_work`, `far` or `error`, with the version when known.
    pub before: String,
    pub after: String,
}

impl CorpusReport {
    pub fn load(path: &Path) -> anyhow::Result<CorpusReport> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let version = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.get("schema_version")?.as_u64());
        if version != Some(u64::from(CORPUS_SCHEMA_VERSION)) {
            bail!(
                "{} is not a corpus.json of schema version {CORPUS_SCHEMA_VERSION} (found {version:?}): pass the corpus.json `ftreview corpus merge` wrote",
                path.display()
            );
        }
        serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not a valid corpus.json: pass the file `ftreview corpus merge` wrote",
                path.display()
            )
        })
    }
}
