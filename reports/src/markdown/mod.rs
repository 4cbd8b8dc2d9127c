//! The Markdown migration plan, written for GitHub: a summary with the verdict, one section
//! per problem (shared state, who races, code, fix, reproducer), crashes and hangs that stand
//! alone, static findings by status, interpreter-internal reports, a phased plan and the
//! environment to reproduce the run.

mod appendix;
mod build;
mod events;
mod issue;
mod plan;
mod problems;
mod stacks;
mod statics;
mod summary;

use std::collections::BTreeMap;
use std::fmt::Write;

use tsan_parse::{Frame, FrameOrigin, Phase, RootCause, Stack};

use crate::analyze::{frame_location, phase_status_label, python_names, shell_quote, Analysis};
use crate::results::{Category, Finding, FixKind, GilDeclared, Severity, StaticStatus};
use crate::source::SourceTree;

pub use issue::issue_body;

/// Rows of a static-findings table; the rest are counted and left to `results.json`.
const MAX_STATIC_ROWS: usize = 40;
/// Lines kept from a crash or hang dump.
const MAX_DUMP_LINES: usize = 40;
/// Rows of a problem's site-pair table, the most reported first; the rest are in
/// `results.json`.
const MAX_SITE_ROWS: usize = 20;
/// Commands of one kind listed in the appendix; the rest are counted (`commands.jsonl` has all).
const MAX_COMMANDS_PER_KIND: usize = 2;
/// Non-extension frames shown above the extension frames of a crash stack.
const CRASH_CONTEXT_FRAMES: usize = 3;

pub fn render_markdown(analysis: &Analysis) -> String {
    let mut out = String::new();
    summary::summary(&mut out, analysis);
    if let Some(section) = crate::verification::plan_section(&analysis.run.run_dir) {
        out.push_str(&section);
    }
    build::build_notes(&mut out, analysis);
    problems::problems(&mut out, analysis);
    events::crashes_and_hangs(&mut out, analysis);
    events::single_threaded(&mut out, analysis);
    statics::static_findings(&mut out, analysis);
    statics::interpreter_noise(&mut out, analysis);
    plan::plan(&mut out, analysis);
    appendix::appendix(&mut out, analysis);
    out
}

pub(super) fn findings_in<'a>(a: &'a Analysis, categories: &[Category]) -> Vec<&'a Finding> {
    a.results
        .findings
        .iter()
        .filter(|f| categories.contains(&f.category))
        .collect()
}

/// Text safe inside a table cell.
pub(super) fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

pub(super) fn id_list(ids: &[String]) -> String {
    ids.iter()
        .map(|id| format!("`{id}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) fn capitalize(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}
