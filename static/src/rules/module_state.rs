//! FT203: fields of the module state struct (`m_size = sizeof(T)`) written outside module
//! init without an atomic or a lock. Module state is shared by every thread that calls into
//! the module, so a plain `++state->counter` is a data race on every call.

use crate::facts::{AccessKind, EventKind};
use crate::model::{Confidence, FixKind, Rule, Severity};
use crate::program::{Context, Program};
use crate::rules::{callee_write, field_symbol, protection, Draft, Sink};

pub(crate) fn check(program: &Program, sink: &mut Sink) {
    if program.module_state_types.is_empty() {
        return;
    }
    for (file, func) in program.functions() {
        if matches!(program.context(func), Context::ModuleInit) {
            continue;
        }
        for event in &func.events {
            let EventKind::Access { kind, target } = &event.kind else {
                continue;
            };
            if *kind == AccessKind::Read {
                continue;
            }
            let (Some(field), Some(container)) = (target.field(), program.container_type(target))
            else {
                continue;
            };
            if !program.module_state_types.contains(&container) {
                continue;
            }
            let atomic_field = program
                .field_declaration(&container, field)
                .filter(|decl| {
                    decl.contains("_Atomic") || decl.contains("atomic_") || decl.contains("PyMutex")
                })
                .map(|_| "its atomic declaration".to_string());
            let protected_by = atomic_field.or_else(|| protection(program, func, event));
            let callee = callee_write(event);
            let subject = match &callee {
                Some((how, _)) => format!("module state field `{container}.{field}` ({how})"),
                None => format!("module state field `{container}.{field}`"),
            };
            let (severity, confidence, message) = match (&protected_by, kind) {
                (Some(how), _) => (Severity::Info, Confidence::High, format!("{subject} is written here, protected by {how}")),
                (None, AccessKind::Release) => (
                    Severity::High,
                    Confidence::High,
                    format!("{subject} is replaced and its old value released without a lock; a thread reading it meanwhile can use the freed object"),
                ),
                (None, AccessKind::Update) => (
                    Severity::High,
                    Confidence::High,
                    format!("{subject} is updated without an atomic or a lock; every thread calling into the module races on it"),
                ),
                (None, _) => (
                    Severity::Medium,
                    Confidence::Medium,
                    format!("{subject} is assigned outside module init without a lock; threads calling into the module race on it"),
                ),
            };
            let confidence = callee
                .as_ref()
                .map_or(confidence, |(_, sure)| confidence.min(*sure));
            let (fix, fix_kind) = if *kind == AccessKind::Release {
                (format!("guard `{field}` and every use of its value with a PyMutex in the module state (an atomic swap cannot keep a reader from using the freed value); set it once in the exec function if it never changes after"), FixKind::PyMutex)
            } else if callee.is_some() {
                (format!("hold a PyMutex in the module state around every call that uses `{field}` (state changed inside a callee cannot be made atomic)"), FixKind::PyMutex)
            } else {
                (format!("use an atomic for `{field}` (`_Py_atomic_add_*` / C11 `atomic_fetch_add`) or guard it with a PyMutex in the module state; set it once in the exec function if it never changes after"), FixKind::Atomic)
            };
            sink.add(Draft {
                rule: Rule::ModuleStateMutation,
                severity,
                confidence,
                file,
                span: event.span,
                function: Some(func.name.clone()),
                symbol: Some(field_symbol(Some(container.clone()), field)),
                message,
                fix,
                fix_kind,
                protected_by,
            });
        }
    }
}
