//! Cross-reference: which static findings a TSan root cause confirms, and which static
//! findings ran concurrently at all.
//!
//! A root cause and a static finding are joined when they name the same global (TSan's
//! `Location is global 'x'`), or when the finding's function is the extension frame of one
//! side of the race and the finding's variable, field or call is on the racing line.

use std::collections::{BTreeMap, BTreeSet};

use ftreview_static::{Finding as StaticFinding, ScanReport, SymbolKind};
use tsan_parse::{Frame, FrameOrigin, RootCause, Side, Triage};

use crate::model::RunRecord;
use crate::source::SourceTree;

/// Links in both directions, each list sorted.
#[derive(Debug, Default)]
pub struct Links {
    pub statics_of_root_cause: BTreeMap<String, Vec<String>>,
    pub root_causes_of_static: BTreeMap<String, Vec<String>>,
}

impl Links {
    pub fn statics_of(&self, root_cause: &str) -> &[String] {
        self.statics_of_root_cause
            .get(root_cause)
            .map_or(&[], Vec::as_slice)
    }

    pub fn root_causes_of(&self, finding: &str) -> &[String] {
        self.root_causes_of_static
            .get(finding)
            .map_or(&[], Vec::as_slice)
    }
}

pub fn cross_reference(triage: &Triage, scan: Option<&ScanReport>, tree: &SourceTree) -> Links {
    let mut links = Links::default();
    let Some(scan) = scan else { return links };
    for root_cause in &triage.root_causes {
        for finding in scan.findings.iter().filter(|f| joins(root_cause, f, tree)) {
            links
                .statics_of_root_cause
                .entry(root_cause.id.clone())
                .or_default()
                .push(finding.id.clone());
            links
                .root_causes_of_static
                .entry(finding.id.clone())
                .or_default()
                .push(root_cause.id.clone());
        }
    }
    for ids in links
        .statics_of_root_cause
        .values_mut()
        .chain(links.root_causes_of_static.values_mut())
    {
        ids.sort();
        ids.dedup();
    }
    links
}

fn joins(root_cause: &RootCause, finding: &StaticFinding, tree: &SourceTree) -> bool {
    if finding.severity == ftreview_static::Severity::Info {
        return false;
    }
    if let (Some(global), Some(symbol)) = (racy_global(root_cause), &finding.symbol) {
        if matches!(symbol.kind, SymbolKind::Global | SymbolKind::StaticLocal) {
            return global.matches(&symbol.name, symbol.container.as_deref());
        }
    }
    root_cause
        .sides
        .iter()
        .any(|side| side_joins(side, finding, tree))
}

fn side_joins(side: &Side, finding: &StaticFinding, tree: &SourceTree) -> bool {
    let Some(frame) = &side.frame else {
        return false;
    };
    if frame.function.is_none() || frame.function.as_deref() != finding.function.as_deref() {
        return false;
    }
    let same_line = frame.line.is_some_and(|line| {
        let line = line as usize;
        finding.span.line == line || finding.related.iter().any(|span| span.line == line)
    });
    let Some(symbol) = &finding.symbol else {
        return same_line;
    };
    match symbol.kind {
        SymbolKind::Call => {
            same_line
                || side.top_frame.as_ref().and_then(|f| f.function.as_deref()) == Some(&symbol.name)
        }
        SymbolKind::Module => false,
        _ => match racing_line(frame, tree) {
            Some(text) => match frame.column.and_then(|column| field_at(&text, column)) {
                Some(field) => field == symbol.name,
                None => mentions(&text, &symbol.name),
            },
            None => same_line,
        },
    }
}

/// A `base->field` on a line, with byte positions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub base: String,
    pub base_start: usize,
    pub arrow: usize,
    pub field: String,
    pub field_end: usize,
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Every `base->field` on a line, left to right.
pub fn members(line: &str) -> Vec<Member> {
    line.match_indices("->")
        .filter_map(|(arrow, _)| {
            let before = &line[..arrow];
            let base_start = before.rfind(|c: char| !is_ident(c)).map_or(0, |i| i + 1);
            let after = &line[arrow + 2..];
            let field_len = after.find(|c: char| !is_ident(c)).unwrap_or(after.len());
            let (base, field) = (&before[base_start..], &after[..field_len]);
            (!base.is_empty() && !field.is_empty()).then(|| Member {
                base: base.to_string(),
                base_start,
                arrow,
                field: field.to_string(),
                field_end: arrow + 2 + field_len,
            })
        })
        .collect()
}

/// The field accessed at a (1-based, byte) column, as clang reports it: at the `++`/`--` of an
/// increment, at the operator of an assignment (the left-hand side is accessed: the array
/// field for `self->items[i] = v`), or at the start of the accessed expression.
pub fn field_at(line: &str, column: u32) -> Option<String> {
    let at = (column as usize).checked_sub(1)?;
    let rest = line.get(at..)?;
    let members = members(line);
    let last_before = |end: usize| members.iter().rfind(|m| m.field_end <= end);
    let found = if rest.starts_with("++") || rest.starts_with("--") {
        match rest[2..].starts_with(|c: char| is_ident(c)) {
            true => chain_from(&members, at + 2),
            false => last_before(at),
        }
    } else if is_assignment(rest) {
        let lhs = line[..at].trim_end();
        match lhs.strip_suffix(']').and_then(matching_open_bracket) {
            Some(open) => last_before(open),
            None => last_before(at),
        }
    } else {
        chain_from(&members, at)
    };
    found.map(|m| m.field.clone())
}

fn is_assignment(rest: &str) -> bool {
    ["=", "+=", "-=", "*=", "/=", "|=", "&=", "^=", "<<=", ">>="]
        .iter()
        .any(|op| rest.starts_with(op) && !rest[op.len()..].starts_with('='))
}

/// The last field of the member chain (`a->b->c`) whose base starts at `at`.
fn chain_from(members: &[Member], at: usize) -> Option<&Member> {
    let mut current = members.iter().find(|m| m.base_start == at)?;
    while let Some(next) = members.iter().find(|m| m.arrow == current.field_end) {
        current = next;
    }
    Some(current)
}

/// Byte position of the `[` that opens the bracket group `inner` ends inside.
fn matching_open_bracket(inner: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (i, c) in inner.char_indices().rev() {
        match c {
            ']' => depth += 1,
            '[' if depth == 0 => return Some(i),
            '[' => depth -= 1,
            _ => {}
        }
    }
    None
}

/// The source text of a frame's line.
pub fn racing_line(frame: &Frame, tree: &SourceTree) -> Option<String> {
    tree.line(frame.file.as_deref()?, frame.line?)
}

/// True when `text` contains `name` as a whole identifier.
pub fn mentions(text: &str, name: &str) -> bool {
    text.match_indices(name).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + name.len()..].chars().next();
        !before.is_some_and(is_ident) && !after.is_some_and(is_ident)
    })
}

/// A global TSan named, split into the owning function (static locals) and the name.
pub struct RacyGlobal {
    pub function: Option<String>,
    pub name: String,
}

impl RacyGlobal {
    fn matches(&self, name: &str, container: Option<&str>) -> bool {
        self.name == name
            && match (&self.function, container) {
                (Some(function), Some(container)) => function == container,
                _ => true,
            }
    }
}

/// clang names a static local `function.name`, gcc `name.N`; file-scope globals are bare.
pub fn racy_global(root_cause: &RootCause) -> Option<RacyGlobal> {
    let printed = root_cause
        .location_key
        .as_deref()?
        .strip_prefix("global:")?;
    Some(match printed.split_once('.') {
        Some((name, suffix)) if suffix.chars().all(|c| c.is_ascii_digit()) => RacyGlobal {
            function: None,
            name: name.to_string(),
        },
        Some((function, name)) => RacyGlobal {
            function: Some(function.to_string()),
            name: name.to_string(),
        },
        None => RacyGlobal {
            function: None,
            name: printed.to_string(),
        },
    })
}

/// Extension C functions known to have run while several threads were active.
pub fn exercised_functions(run: &RunRecord) -> BTreeSet<String> {
    let mut functions: BTreeSet<String> = tsan_functions(&run.triage);
    if run.exercised.concurrent_phase_ran {
        functions.extend(run.exercised.c_functions.iter().cloned());
        if let Some(scan) = &run.static_scan {
            functions.extend(
                scan.methods
                    .iter()
                    .filter(|m| {
                        let owner = m.owner_type.as_deref().unwrap_or_default();
                        let name = format!("{owner}.{}", m.python_name);
                        called(&run.exercised.python_callables, &name)
                    })
                    .map(|m| m.c_function.clone()),
            );
        }
    }
    functions
}

/// Whether `callable` (any qualification: `pkg.mod.Type.meth`) is among `called`, compared by
/// its last two dotted parts, so `Vector.append` matches `ftfixture_racy.Vector.append`.
pub fn called(called: &BTreeSet<String>, callable: &str) -> bool {
    let key = last_two(callable);
    called.iter().any(|c| last_two(c) == key)
}

fn last_two(name: &str) -> &str {
    match name.rmatch_indices('.').nth(1) {
        Some((at, _)) => &name[at + 1..],
        None => name,
    }
}

/// Every extension function in the access stacks of every root cause, noise included.
fn tsan_functions(triage: &Triage) -> BTreeSet<String> {
    triage
        .root_causes
        .iter()
        .chain(&triage.interpreter_noise)
        .flat_map(|rc| rc.representative.accesses.iter().map(|a| &a.stack))
        .flat_map(|stack| &stack.frames)
        .filter(|f| f.origin == FrameOrigin::Extension)
        .filter_map(|f| f.function.as_deref().map(str::to_string))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifier_mentions() {
        assert!(mentions("    self->items[self->size++] = value;", "size"));
        assert!(!mentions("    self->capacity = capacity;", "cap"));
        assert!(mentions(
            "return ++state->global_version;",
            "global_version"
        ));
    }

    #[test]
    fn field_at_follows_clang_columns() {
        let push = "    self->items[self->size++] = value;";
        assert_eq!(field_at(push, 27).as_deref(), Some("size"));
        assert_eq!(field_at(push, 31).as_deref(), Some("items"));
        let pop = "    return PyLong_FromLong(self->items[--self->size]);";
        assert_eq!(field_at(pop, 40).as_deref(), Some("size"));
        assert_eq!(field_at(pop, 28).as_deref(), Some("items"));
        assert_eq!(
            field_at("    return ++state->global_version;", 12).as_deref(),
            Some("global_version")
        );
        assert_eq!(
            field_at("    x = md->keys->indices[i];", 9).as_deref(),
            Some("indices")
        );
        assert_eq!(field_at("    call_count++;", 15), None);
    }

    #[test]
    fn callables_compare_by_last_two_parts() {
        let set: BTreeSet<String> = ["ftfixture_racy.Vector.append".to_string()].into();
        assert!(called(&set, "Vector.append"));
        assert!(!called(&set, "Vector.pop"));
        assert_eq!(last_two("bump"), "bump");
    }
}
