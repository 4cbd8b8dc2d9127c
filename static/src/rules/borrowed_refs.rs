//! FT301 / FT302: C-API calls returning a borrowed reference from a container another thread
//! can mutate (the list in `static/data/borrowed-verdicts.tsv`, derived from CPython's
//! `Doc/data/refcounts.dat`), and `PyDict_Next` on a dict not held in a critical section.
//! Containers this function just created, and calls under a critical section on the
//! container, are not hazards.

use std::collections::HashMap;
use std::sync::LazyLock;

use crate::facts::{strip_object_expr, Event, EventKind, FunctionFacts};
use crate::model::{Confidence, FixKind, Rule, Severity};
use crate::program::Program;
use crate::rules::{call_symbol, protection, Draft, Sink};

/// The derived list: every API returning a borrowed reference.
#[cfg(test)]
const BORROWED_APIS: &str = include_str!("../../data/borrowed-apis.txt");
/// The verdict for each: `api, shared|safe, replacement, added_in, why`.
pub(crate) const VERDICTS: &str = include_str!("../../data/borrowed-verdicts.tsv");

pub(crate) struct Verdict {
    pub shared: bool,
    pub replacement: Option<&'static str>,
    pub added_in: Option<&'static str>,
    pub why: &'static str,
}

pub(crate) static HAZARDS: LazyLock<HashMap<&'static str, Verdict>> = LazyLock::new(|| {
    VERDICTS
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|line| {
            let cols: Vec<&str> = line.split('\t').collect();
            let opt = |s: &'static str| (s != "-").then_some(s);
            Some((
                *cols.first()?,
                Verdict {
                    shared: *cols.get(1)? == "shared",
                    replacement: opt(cols.get(2)?),
                    added_in: opt(cols.get(3)?),
                    why: cols.get(4)?,
                },
            ))
        })
        .collect()
});

pub(crate) fn check(program: &Program, sink: &mut Sink) {
    for (file, func) in program.functions() {
        for event in &func.events {
            let EventKind::Call { callee, args } = &event.kind else {
                continue;
            };
            let container = args.first().map(|a| strip_object_expr(a)).unwrap_or("");
            if program.is_fresh(func, container) || is_kwargs_param(func, container) {
                continue;
            }
            if callee == "PyDict_Next" {
                dict_next(program, sink, file, func, event, container);
            } else if let Some(verdict) = HAZARDS.get(callee.as_str()).filter(|v| v.shared) {
                borrowed(program, sink, file, func, event, callee, container, verdict);
            }
        }
    }
}

/// The `**kwargs` dict a call receives is created for that call alone.
fn is_kwargs_param(func: &FunctionFacts, name: &str) -> bool {
    func.params.len() >= 2
        && func
            .params
            .last()
            .is_some_and(|p| p.name == name && p.name.starts_with("kw"))
}

fn container_protection(
    program: &Program,
    func: &FunctionFacts,
    event: &Event,
    container: &str,
) -> Option<String> {
    let guard = func.guard(event);
    if guard.holds_section_on(container) {
        return guard.protection();
    }
    protection(program, func, event)
}

#[allow(clippy::too_many_arguments)]
fn borrowed(
    program: &Program,
    sink: &mut Sink,
    file: usize,
    func: &FunctionFacts,
    event: &Event,
    callee: &str,
    container: &str,
    verdict: &Verdict,
) {
    let protected_by = container_protection(program, func, event, container);
    let (severity, message) = match &protected_by {
        Some(how) => (Severity::Info, format!("`{callee}({container}, ...)` returns a borrowed reference; protected by {how}")),
        None => (
            Severity::Medium,
            format!("`{callee}` returns a borrowed reference; {}, so the object can be freed before this code takes its own reference", verdict.why),
        ),
    };
    let fix = match (verdict.replacement, verdict.added_in) {
        (Some(r), Some(v)) if !r.contains(' ') => {
            format!("use `{r}` (strong reference, CPython {v}+; pythoncapi-compat backports it) and release it when done")
        }
        (Some(r), _) => format!("use {r}"),
        _ => "take a strong reference at once (`Py_XNewRef`) and use only that".to_string(),
    };
    let fix_kind = if verdict
        .replacement
        .is_some_and(|r| r.starts_with("Py_BEGIN_CRITICAL_SECTION"))
    {
        FixKind::CriticalSection
    } else {
        FixKind::StrongReferenceApi
    };
    sink.add(Draft {
        rule: Rule::BorrowedReference,
        severity,
        confidence: Confidence::Medium,
        file,
        span: event.span,
        function: Some(func.name.clone()),
        symbol: Some(call_symbol(callee)),
        message,
        fix,
        fix_kind,
        protected_by,
    });
}

fn dict_next(
    program: &Program,
    sink: &mut Sink,
    file: usize,
    func: &FunctionFacts,
    event: &Event,
    dict: &str,
) {
    let protected_by = container_protection(program, func, event, dict);
    let (severity, message) = match &protected_by {
        Some(how) => (Severity::Info, format!("`PyDict_Next({dict}, ...)` iterates under {how}")),
        None => (
            Severity::Medium,
            format!("`PyDict_Next({dict}, ...)` iterates without a critical section on `{dict}`: another thread can resize it mid-iteration and the borrowed keys/values can die"),
        ),
    };
    sink.add(Draft {
        rule: Rule::DictNextUnlocked,
        severity,
        confidence: Confidence::Medium,
        file,
        span: event.span,
        function: Some(func.name.clone()),
        symbol: Some(call_symbol("PyDict_Next")),
        message,
        fix: format!("wrap the loop in `Py_BEGIN_CRITICAL_SECTION({dict})` / `Py_END_CRITICAL_SECTION()`, or iterate over `PyDict_Items({dict})`"),
        fix_kind: FixKind::CriticalSection,
        protected_by,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A refreshed refcounts.dat that adds a borrowed API forces a decision about it.
    #[test]
    fn every_derived_borrowed_api_has_a_verdict() {
        let missing: Vec<&str> = BORROWED_APIS
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .filter(|api| !HAZARDS.contains_key(api))
            .collect();
        assert!(
            missing.is_empty(),
            "add these to static/data/borrowed-verdicts.tsv: {missing:?}"
        );
        assert!(!HAZARDS["PyTuple_GetItem"].shared);
        assert_eq!(
            HAZARDS["PyList_GetItem"].replacement,
            Some("PyList_GetItemRef")
        );
    }
}
