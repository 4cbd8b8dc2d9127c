//! The rules. Each module looks at the [`Program`] and adds findings to a [`Sink`].

mod borrowed_refs;
mod critical_section;
pub(crate) mod gil_declaration;
mod global_state;
mod libc_calls;
mod module_state;
mod object_state;

use std::collections::HashMap;

use rayon::prelude::*;

use crate::facts::{CalleeWrite, Event, FunctionFacts};
use crate::model::{Confidence, Finding, FixKind, Rule, Severity, Span, Symbol, SymbolKind};
use crate::program::{Context, Program};

/// A finding before its id and entry points are computed.
pub(crate) struct Draft {
    pub rule: Rule,
    pub severity: Severity,
    pub confidence: Confidence,
    pub file: usize,
    pub span: Span,
    pub function: Option<String>,
    pub symbol: Option<Symbol>,
    pub message: String,
    pub fix: String,
    pub fix_kind: FixKind,
    pub protected_by: Option<String>,
}

/// Collects findings; drafts with the same id (rule, file, function, symbol) merge, the extra
/// sites going to `related`.
pub(crate) struct Sink<'p> {
    program: &'p Program,
    findings: Vec<Finding>,
    by_id: HashMap<String, usize>,
}

impl<'p> Sink<'p> {
    pub fn new(program: &'p Program) -> Self {
        Sink {
            program,
            findings: Vec::new(),
            by_id: HashMap::new(),
        }
    }

    /// Adds a finding whose entry points are everything reaching its function.
    pub fn add(&mut self, draft: Draft) {
        self.add_with(draft, None);
    }

    /// Adds a finding reached only through `entry_points` (the unlocked paths into a helper).
    pub fn add_reached_by(&mut self, draft: Draft, entry_points: Vec<String>) {
        self.add_with(draft, Some(entry_points));
    }

    fn add_with(&mut self, draft: Draft, entry_points: Option<Vec<String>>) {
        let rel = &self.program.files[draft.file].rel;
        let id = stable_id(
            draft.rule,
            rel,
            draft.function.as_deref(),
            draft.symbol.as_ref(),
        );
        if let Some(&i) = self.by_id.get(&id) {
            let existing = &mut self.findings[i];
            let mut other = draft.span;
            if draft.severity > existing.severity {
                // The worse site leads; the protected one becomes a related site.
                other = std::mem::replace(&mut existing.span, draft.span);
                existing.severity = draft.severity;
                existing.confidence = draft.confidence;
                existing.message = draft.message;
                existing.fix = draft.fix;
                existing.fix_kind = draft.fix_kind;
                existing.protected_by = draft.protected_by;
                if let Some(entry_points) = entry_points {
                    existing.entry_points = entry_points;
                }
            }
            if existing.span != other && !existing.related.contains(&other) {
                existing.related.push(other);
            }
            return;
        }
        let entry_points = entry_points.unwrap_or_else(|| {
            draft
                .function
                .as_deref()
                .map(|f| self.program.entry_points(draft.file, f))
                .unwrap_or_default()
        });
        self.by_id.insert(id.clone(), self.findings.len());
        self.findings.push(Finding {
            id,
            rule: draft.rule,
            code: draft.rule.code().to_string(),
            severity: draft.severity,
            confidence: draft.confidence,
            file: self.program.files[draft.file].path.clone(),
            span: draft.span,
            function: draft.function,
            symbol: draft.symbol,
            message: draft.message,
            fix: draft.fix,
            fix_kind: draft.fix_kind,
            protected_by: draft.protected_by,
            related: Vec::new(),
            entry_points,
        });
    }

    pub fn into_findings(mut self) -> Vec<Finding> {
        for f in &mut self.findings {
            f.related.sort();
        }
        self.findings
    }
}

/// FNV-1a over the identifying parts: stable across runs, platforms and line edits, and
/// across renames of Rust variants (the rule and symbol kind enter by their serde names).
fn stable_id(rule: Rule, rel: &str, function: Option<&str>, symbol: Option<&Symbol>) -> String {
    let symbol = symbol
        .map(|s| {
            format!(
                "{}:{}:{}",
                s.kind.name(),
                s.container.as_deref().unwrap_or(""),
                s.name
            )
        })
        .unwrap_or_default();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in [rule.name(), rel, function.unwrap_or(""), &symbol] {
        for byte in part.bytes().chain([0]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{hash:016x}")
}

/// Runs every rule.
pub(crate) fn run_all(program: &Program) -> Vec<Finding> {
    type Check = fn(&Program, &mut Sink);
    const CHECKS: [Check; 7] = [
        gil_declaration::check,
        global_state::check,
        module_state::check,
        borrowed_refs::check,
        object_state::check,
        critical_section::check,
        libc_calls::check,
    ];
    // Rules are independent (the rule is part of every id), so they run in parallel.
    let mut findings: Vec<Finding> = CHECKS
        .par_iter()
        .flat_map_iter(|check| {
            let mut sink = Sink::new(program);
            check(program, &mut sink);
            sink.into_findings()
        })
        .collect();
    sort_findings(&mut findings);
    findings
}

fn sort_findings(findings: &mut [Finding]) {
    findings.sort_by(|a, b| {
        (&a.file, a.span.line, a.span.column, &a.code).cmp(&(
            &b.file,
            b.span.line,
            b.span.column,
            &b.code,
        ))
    });
}

/// The protection in force at `event`: atomic access, a lock held here, or a lock every
/// caller holds.
pub(crate) fn protection(program: &Program, func: &FunctionFacts, event: &Event) -> Option<String> {
    if event.atomic {
        return Some("atomic operation".to_string());
    }
    if let Some(held) = func.guard(event).protection() {
        return Some(held);
    }
    match program.context(func) {
        Context::Locked(how) => Some(how.clone()),
        _ => None,
    }
}

/// For a write made by a callee the state was passed to (`hash_update(self->state, ...)`):
/// how the message says so, and how sure the pass is that the callee writes.
pub(crate) fn callee_write(event: &Event) -> Option<(String, Confidence)> {
    let passed = event.passed_to.as_ref()?;
    let (basis, confidence) = match passed.writes? {
        CalleeWrite::Body => ("its body does", Confidence::High),
        CalleeWrite::Prototype => ("it takes a non-const pointer there", Confidence::Medium),
        CalleeWrite::Name => (
            "no prototype seen; it is named like a mutator",
            Confidence::Low,
        ),
    };
    let text = format!(
        "passed to `{}`, which writes through it: {basis}",
        passed.callee
    );
    Some((text, confidence))
}

pub(crate) fn field_symbol(container: Option<String>, field: &str) -> Symbol {
    Symbol {
        kind: SymbolKind::Field,
        name: field.to_string(),
        container,
    }
}

pub(crate) fn call_symbol(callee: &str) -> Symbol {
    Symbol {
        kind: SymbolKind::Call,
        name: callee.to_string(),
        container: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_ignore_lines_and_differ_by_symbol() {
        let a = Symbol {
            kind: SymbolKind::Field,
            name: "keys".into(),
            container: Some("T".into()),
        };
        let b = Symbol {
            kind: SymbolKind::Field,
            name: "used".into(),
            container: Some("T".into()),
        };
        let id = |s| stable_id(Rule::UnlockedFieldWrite, "x/a.c", Some("f"), Some(s));
        let copy = a.clone();
        assert_eq!(id(&a), id(&copy));
        assert_ne!(id(&a), id(&b));
        assert_eq!(id(&a).len(), 16);
    }
}
