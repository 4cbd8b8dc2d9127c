//! Cross-referencing of TSan root causes with static findings, and the outputs a run
//! produces: the Markdown migration plan, `results.json`, SARIF 2.1.0 and baselines.
//!
//! Everything is rebuilt from a [`RunRecord`] (`RUN_DIR/run.json`): [`analyze`] joins the
//! evidence into [`Results`]; [`render_markdown`], [`results_json`] and [`sarif`] write it out.

mod analyze;
mod baseline;
mod fix;
mod markdown;
pub mod model;
mod patches;
pub mod results;
mod sarif;
mod source;
mod summary;
mod verification;
mod xref;

use std::path::{Path, PathBuf};

use anyhow::Context;

pub use analyze::{analyze, problem_id, reproduces, same_problem, shown_owners, Analysis};
pub use baseline::{load_baseline, Baseline};
pub use markdown::{issue_body, render_markdown};
pub use model::RunRecord;
pub use patches::{
    patches_dir, suggest_patch, PatchCheck, SuggestedPatch, SuggestedPatches, Unsuggested,
    PATCHES_DIR, PATCHES_FILE,
};
pub use results::{Outcome, Results};
pub use sarif::sarif;
pub use summary::summary_table;
pub use verification::{
    latest_verification, verification_dirs, Tally, Verification, VerifiedProblem, VerifyStatus,
    VERIFICATION_FILE, VERIFICATION_MARKDOWN, VERIFY_DIR_PREFIX,
};

pub const MARKDOWN_FILE: &str = "migration-plan.md";
pub const RESULTS_FILE: &str = "results.json";
pub const SARIF_FILE: &str = "results.sarif";

/// Which outputs to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    Markdown,
    Json,
    Sarif,
    #[default]
    All,
}

impl Format {
    fn includes(self, other: Format) -> bool {
        self == Format::All || self == other
    }
}

/// What [`write_all`] wrote, and whether CI should fail.
#[derive(Debug, Clone)]
pub struct Written {
    pub files: Vec<PathBuf>,
    /// The exit decision (the same one `ftreview run` takes).
    pub outcome: Outcome,
    pub results: Results,
}

/// `results.json` text (pretty, stable order).
pub fn results_json(results: &Results) -> String {
    serde_json::to_string_pretty(results).expect("results serialize") + "\n"
}

/// Writes the requested outputs of `run` into `out_dir`.
pub fn write_all(
    run: &RunRecord,
    out_dir: &Path,
    baseline: Option<&Baseline>,
    format: Format,
) -> anyhow::Result<Written> {
    let analysis = analyze(run, baseline);
    let mut outputs: Vec<(&str, String)> = Vec::new();
    if format.includes(Format::Markdown) {
        outputs.push((MARKDOWN_FILE, render_markdown(&analysis)));
    }
    if format.includes(Format::Json) {
        outputs.push((RESULTS_FILE, results_json(&analysis.results)));
    }
    if format.includes(Format::Sarif) {
        let text = serde_json::to_string_pretty(&sarif(&analysis)).expect("SARIF serializes");
        outputs.push((SARIF_FILE, text + "\n"));
    }
    std::fs::create_dir_all(out_dir)
        .with_context(|| format!("cannot create {}", out_dir.display()))?;
    let mut files = Vec::new();
    for (name, text) in outputs {
        let path = out_dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        files.push(path);
    }
    Ok(Written {
        files,
        outcome: analysis.results.outcome(),
        results: analysis.results,
    })
}
