//! `race_top:` suppressions: applied at triage time, and written for root causes a user
//! chose to accept.
//!
//! TSan compares a `race_top:` entry with the innermost frame of each access stack, and with
//! clang that frame is often a CPython header helper inlined into the function the entry
//! names (`race_top:list_get_item_ref` against `_Py_atomic_load_uintptr_relaxed`). Triage
//! therefore applies the entries again, to [`crate::Stack::effective_top`].
//!
//! Only `race_top:` is produced: `race:` matches any frame and would hide every race called
//! through the same interpreter function.

use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::model::{Frame, FrameOrigin, Stack};
use crate::triage::RootCause;

/// The `race_top:` entries of a TSan suppressions file (other kinds are TSan's alone).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suppressions {
    /// Patterns after `race_top:`, in file order.
    pub race_top: Vec<String>,
}

impl Suppressions {
    /// Parses suppressions text as TSan does: one `kind:pattern` per line, `#` comments.
    pub fn parse(text: &str) -> Suppressions {
        let race_top = text
            .lines()
            .map(str::trim)
            .filter_map(|line| line.strip_prefix("race_top:"))
            .map(str::trim)
            .filter(|pattern| !pattern.is_empty())
            .map(str::to_string)
            .collect();
        Suppressions { race_top }
    }

    /// Reads the suppressions file a run gave TSan.
    pub fn read(path: &Path) -> anyhow::Result<Suppressions> {
        let text = std::fs::read_to_string(path).with_context(|| {
            format!(
                "cannot read suppressions {}: pass the file given to TSan (TSAN_OPTIONS suppressions=…)",
                path.display()
            )
        })?;
        Ok(Suppressions::parse(&text))
    }

    pub fn is_empty(&self) -> bool {
        self.race_top.is_empty()
    }

    /// The first entry that matches TSan's own top frame of `stack` or its effective top
    /// frame, with the frame it matched. Like TSan, an entry matches a frame's function,
    /// file or module.
    pub fn matching_top<'a>(&self, stack: &'a Stack) -> Option<(&str, &'a Frame)> {
        if self.is_empty() {
            return None;
        }
        let candidates = stack
            .frames
            .first()
            .into_iter()
            .chain(stack.effective_top());
        candidates.into_iter().find_map(|frame| {
            let texts = [&frame.function, &frame.file, &frame.module];
            self.race_top
                .iter()
                .find(|pattern| {
                    texts
                        .iter()
                        .filter_map(|text| text.as_deref())
                        .any(|text| template_match(pattern, text))
                })
                .map(|pattern| (pattern.as_str(), frame))
        })
    }
}

/// TSan's `TemplateMatch`, step for step: `*` matches any run of characters, a leading `^`
/// anchors at the start, `$` at the end; otherwise a pattern matches anywhere in `text`.
/// Each literal part matches its first occurrence, as TSan's `strstr` does.
fn template_match(template: &str, text: &str) -> bool {
    if text.is_empty() {
        return false;
    }
    let (mut anchored, mut template) = match template.strip_prefix('^') {
        Some(rest) => (true, rest),
        None => (false, template),
    };
    let mut rest = text;
    let mut after_asterisk = false;
    while let Some(next) = template.chars().next() {
        if next == '*' {
            template = &template[1..];
            anchored = false;
            after_asterisk = true;
            continue;
        }
        if next == '$' {
            return rest.is_empty() || after_asterisk;
        }
        if rest.is_empty() {
            return false;
        }
        let end = template.find(['*', '$']).unwrap_or(template.len());
        let part = &template[..end];
        let Some(at) = rest.find(part) else {
            return false;
        };
        if anchored && at != 0 {
            return false;
        }
        rest = &rest[at + part.len()..];
        template = &template[end..];
        anchored = false;
        after_asterisk = false;
    }
    true
}

/// Suppression-file lines for `root_causes`: a `#` comment naming each root cause, then one
/// `race_top:FUNCTION` per distinct extension function at the effective top of its access
/// stacks. Root causes that `race_top:` cannot target safely (not a race, or a stack whose
/// effective top is not extension code) get a comment saying so; so do entries whose frame
/// TSan does not print first (it compares the entry with that first frame only, so only
/// ftreview's triage applies them).
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
        let tops = top_extension_functions(root_cause);
        if tops.is_empty() {
            lines.push(format!(
                "# {}: not suppressible with race_top: (no extension function at the top of its stacks)",
                root_cause.id
            ));
        }
        for (function, printed_top) in tops {
            if let Some(printed) = printed_top {
                lines.push(format!("# {function}: TSan prints `{printed}` above it, so only ftreview's triage applies this entry"));
            }
            if emitted.insert(function.clone()) {
                lines.push(format!("race_top:{function}"));
            } else {
                lines.push(format!("# race_top:{function} (listed above)"));
            }
        }
    }
    lines
}

/// Functions of the effective top frame of each access stack, when it is extension code,
/// each with the function TSan prints first when that is another frame.
fn top_extension_functions(root_cause: &RootCause) -> Vec<(String, Option<String>)> {
    if !root_cause.kind.is_race() {
        return Vec::new();
    }
    let mut functions: Vec<(String, Option<String>)> = root_cause
        .representative
        .accesses
        .iter()
        .filter_map(|access| {
            let top = access.stack.effective_top()?;
            let function = top.function.as_deref()?;
            let printed = access.stack.frames.first()?;
            (top.origin == FrameOrigin::Extension).then(|| {
                let printed_function = (!std::ptr::eq(printed, top))
                    .then(|| printed.function.as_deref().unwrap_or("??").to_string());
                (function.to_string(), printed_function)
            })
        })
        .collect();
    functions.sort();
    functions.dedup_by(|a, b| a.0 == b.0);
    functions
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tsan_template_semantics() {
        let cases = [
            ("list_get_item_ref", "list_get_item_ref", true),
            ("list_get_item_ref", "my_list_get_item_ref_cache", true),
            ("^list_get", "list_get_item_ref", true),
            ("^get_item", "list_get_item_ref", false),
            ("item_ref$", "list_get_item_ref", true),
            ("list$", "list_get_item_ref", false),
            ("^list_get_item_ref$", "list_get_item_ref", true),
            ("^list*ref$", "list_get_item_ref", true),
            ("^list*item$", "list_get_item_ref", false),
            ("list*", "list_get_item_ref", true),
            ("*ref", "list_get_item_ref", true),
            ("a*b*c", "xaybzc", true),
            ("a*b*c", "xaybz", false),
            ("ref", "", false),
        ];
        for (pattern, text, expected) in cases {
            assert_eq!(
                template_match(pattern, text),
                expected,
                "{pattern} ~ {text}"
            );
        }
    }

    #[test]
    fn only_race_top_entries_are_kept() {
        let suppressions = Suppressions::parse(
            "# CPython\nrace:_PyEval_EvalFrameDefault\n  race_top:list_get_item_ref  \nthread:pthread_create\nrace_top:\nrace_top:new_reference\n",
        );
        assert_eq!(
            suppressions.race_top,
            ["list_get_item_ref", "new_reference"]
        );
    }

    #[test]
    fn a_missing_file_says_what_to_pass() {
        let error = Suppressions::read(Path::new("/nonexistent/supp.txt")).unwrap_err();
        let message = format!("{error:#}");
        assert!(message.contains("/nonexistent/supp.txt"), "{message}");
        assert!(message.contains("pass the file given to TSan"), "{message}");
    }
}
