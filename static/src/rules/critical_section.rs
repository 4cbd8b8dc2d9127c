//! FT501 / FT502: misuse of critical sections. A `return`, `goto` or `break` that leaves
//! `Py_BEGIN_CRITICAL_SECTION` without its END keeps the object locked forever. A call that can
//! run arbitrary code or allocate (`Py_DECREF`, `PyObject_Call*`, allocation) suspends the
//! section; between two writes to the object, other threads then see it half-updated.

use std::collections::HashSet;

use crate::facts::{Access, AccessKind, Event, EventKind, FunctionFacts, Section};
use crate::model::{Confidence, FixKind, Rule, Severity, Symbol, SymbolKind};
use crate::program::Program;
use crate::rules::{field_symbol, Draft, Sink};

pub(crate) fn check(program: &Program, sink: &mut Sink) {
    for (file, func) in program.functions() {
        escapes(sink, file, func);
        suspensions(program, sink, file, func);
    }
}

fn escapes(sink: &mut Sink, file: usize, func: &FunctionFacts) {
    for event in &func.events {
        let open = &func.guard(event).sections;
        let Some(innermost) = open.last() else {
            continue;
        };
        let escaping = match &event.kind {
            EventKind::Return => Some(("return", open.iter().any(|s| s.from_macro))),
            EventKind::LoopEscape => Some(("break/continue", true)),
            EventKind::Goto { label } => {
                let target_regions: HashSet<usize> = func
                    .events
                    .iter()
                    .find(|e| matches!(&e.kind, EventKind::Label { name } if name == label))
                    .map(|e| func.guard(e).sections.iter().map(|s| s.region).collect())
                    .unwrap_or_default();
                let left: Vec<&Section> = open
                    .iter()
                    .filter(|s| !target_regions.contains(&s.region))
                    .collect();
                (!left.is_empty()).then(|| ("goto", left.iter().any(|s| s.from_macro)))
            }
            _ => None,
        };
        let Some((jump, from_macro)) = escaping else {
            continue;
        };
        sink.add(Draft {
            rule: Rule::CriticalSectionEscape,
            severity: if from_macro { Severity::High } else { Severity::Medium },
            confidence: if from_macro { Confidence::High } else { Confidence::Medium },
            file,
            span: event.span,
            function: Some(func.name.clone()),
            symbol: Some(Symbol { kind: SymbolKind::Call, name: "Py_BEGIN_CRITICAL_SECTION".into(), container: None }),
            message: format!("`{jump}` leaves `{}` without Py_END_CRITICAL_SECTION: the object stays locked and the next thread to lock it hangs", innermost.text),
            fix: "set the result in a variable and jump to a label just before Py_END_CRITICAL_SECTION(); return after it".to_string(),
            fix_kind: FixKind::Restructure,
            protected_by: None,
        });
    }
}

/// Calls that can run arbitrary Python code or allocate, and so suspend a critical section.
fn may_suspend(callee: &str) -> bool {
    const EXACT: &[&str] = &[
        "Py_DECREF",
        "Py_XDECREF",
        "Py_CLEAR",
        "Py_SETREF",
        "Py_XSETREF",
        "PyObject_Hash",
        "PyObject_Str",
        "PyObject_Repr",
        "PyObject_GetItem",
        "PyObject_SetItem",
        "PyObject_DelItem",
        "PyObject_GetIter",
        "PyIter_Next",
        "PyDict_SetItem",
        "PyDict_DelItem",
        "PyList_SetItem",
        "PyList_Append",
        "PyTuple_Pack",
        "Py_BuildValue",
        "PyMem_Malloc",
        "PyMem_Calloc",
        "PyMem_Realloc",
        "PyObject_Malloc",
        "PyObject_Realloc",
        "PyObject_GC_Track",
    ];
    const PREFIXES: &[&str] = &[
        "PyObject_Call",
        "PyObject_Vectorcall",
        "PyObject_RichCompare",
        "PyObject_GetAttr",
        "PyObject_SetAttr",
        "PyNumber_",
        "PySequence_",
        "PyMapping_",
        "PyObject_GC_New",
        "PyObject_New",
        "PyUnicode_From",
        "PyLong_From",
        "PyFloat_From",
        "PyBytes_From",
    ];
    EXACT.contains(&callee)
        || PREFIXES.iter().any(|p| callee.starts_with(p))
        || (callee.starts_with("Py") && callee.ends_with("_New"))
}

/// A write to a field of an object this function did not create.
fn object_write<'f>(
    program: &Program,
    func: &FunctionFacts,
    event: &'f Event,
) -> Option<&'f Access> {
    match &event.kind {
        EventKind::Access { kind, target }
            if *kind != AccessKind::Read && !target.root.is_empty() && target.field().is_some() =>
        {
            (!program.is_fresh(func, &target.root)).then_some(target)
        }
        _ => None,
    }
}

fn suspensions(program: &Program, sink: &mut Sink, file: usize, func: &FunctionFacts) {
    for (i, event) in func.events.iter().enumerate() {
        let EventKind::Call { callee, .. } = &event.kind else {
            continue;
        };
        let Some(section) = func.guard(event).sections.last() else {
            continue;
        };
        if !may_suspend(callee) {
            continue;
        }
        let in_region = |e: &&Event| {
            func.guard(e)
                .sections
                .iter()
                .any(|s| s.region == section.region)
        };
        let write_in = |e| object_write(program, func, e);
        let before = func.events[..i]
            .iter()
            .rev()
            .take_while(|e| in_region(e))
            .find_map(write_in);
        let Some(first) = before else { continue };
        let after = func.events[i + 1..]
            .iter()
            .take_while(|e| in_region(e))
            .filter_map(write_in)
            .find(|t| t.root == first.root);
        let Some(second) = after else { continue };
        let field = first.field().unwrap_or_default();
        sink.add(Draft {
            rule: Rule::CriticalSectionSuspend,
            severity: Severity::Medium,
            confidence: Confidence::Medium,
            file,
            span: event.span,
            function: Some(func.name.clone()),
            symbol: Some(field_symbol(program.container_type(first), field)),
            message: format!(
                "`{callee}` inside `{}` runs between writes to `{}->{}` and `{}->{}`: it can run arbitrary code or allocate, which suspends the section, and other threads then see the half-updated object",
                section.text, first.root, first.fields.join("."), second.root, second.fields.join(".")
            ),
            fix: "finish updating the object before the call (e.g. collect objects to release in locals and Py_DECREF them after Py_END_CRITICAL_SECTION())".to_string(),
            fix_kind: FixKind::Restructure,
            protected_by: None,
        });
    }
}
