//! `race_top:` suppression entries for root causes a user chose to accept.
//!
//! Only `race_top:` is produced: it matches the innermost frame of an access stack alone,
//! while `race:` matches any frame and would hide every race called through the same
//! interpreter function.

use crate::model::FrameOrigin;
use crate::triage::RootCause;

/// Suppression-file lines for `root_causes`: a `#` comment naming each root cause, then one
/// `race_top:FUNCTION` per distinct extension function at the top of its access stacks.
/// Root causes that `race_top:` cannot target safely (not a race, or a stack whose top
/// frame is not extension code, such as `memcpy`) get a comment saying so.
pub fn suppression_entries(root_causes: &[RootCause]) -> Vec<String> {
    let mut lines = Vec::new();
    let mut emitted = std::collections::BTreeSet::new();
    for root_cause in root_causes {
        let on = root_cause
            .variable
            .as_deref()
            .map(|variable| format!(" on {variable}"))
            .unwrap_or_default();
        lines.push(format!(
            "# {}: {}{on} ({} report{})",
            root_cause.id,
            root_cause.kind,
            root_cause.count,
            if root_cause.count == 1 { "" } else { "s" }
        ));
        let functions = top_extension_functions(root_cause);
        if functions.is_empty() {
            lines.push(format!(
                "# {}: not suppressible with race_top: (no extension function at the top of its stacks)",
                root_cause.id
            ));
        }
        for function in functions {
            if emitted.insert(function.clone()) {
                lines.push(format!("race_top:{function}"));
            } else {
                lines.push(format!("# race_top:{function} (listed above)"));
            }
        }
    }
    lines
}

/// Functions of the innermost frame of each access stack, when that frame is extension code.
fn top_extension_functions(root_cause: &RootCause) -> Vec<String> {
    if !root_cause.kind.is_race() {
        return Vec::new();
    }
    let mut functions: Vec<String> = root_cause
        .representative
        .accesses
        .iter()
        .filter_map(|access| access.stack.frames.first())
        .filter(|frame| frame.origin == FrameOrigin::Extension)
        .filter_map(|frame| frame.function.as_deref().map(str::to_string))
        .collect();
    functions.sort();
    functions.dedup();
    functions
}
