//! FT401 / FT402 / FT403: per-object state. Functions that write fields of a Python object
//! struct (one starting with `PyObject_HEAD`) without a critical section or lock; readers of
//! fields whose writers lock (or free the old value); and fields touched between
//! `Py_BEGIN_ALLOW_THREADS` and its END without a lock. Objects the function just created and
//! lifecycle functions (`tp_new`, `tp_dealloc`...) are skipped: nobody else sees the object.

use std::collections::HashMap;

use crate::facts::{Access, AccessKind, Event, EventKind, FunctionFacts};
use crate::model::{Confidence, FixKind, Rule, Severity};
use crate::program::{Context, Program};
use crate::rules::{field_symbol, protection, Draft, Sink};

/// (container type, field)
type FieldKey = (String, String);

#[derive(Default)]
struct Writers {
    /// Functions writing the field without protection, and whether they release its old value.
    unprotected: Vec<(String, bool)>,
    /// Functions writing it under a lock (and which).
    protected: Vec<(String, String)>,
}

pub(crate) fn check(program: &Program, sink: &mut Sink) {
    let mut writers: HashMap<FieldKey, Writers> = HashMap::new();
    for (file, func) in shared_functions(program) {
        for (event, target, key) in object_accesses(program, func) {
            let EventKind::Access { kind, .. } = &event.kind else {
                continue;
            };
            let protected_by = field_protection(program, func, event, &key);
            if *kind == AccessKind::Read {
                continue;
            }
            let releases = releases_field(func, &key, program);
            let entry = writers.entry(key.clone()).or_default();
            match &protected_by {
                Some(how) => entry.protected.push((func.name.clone(), how.clone())),
                None => entry.unprotected.push((func.name.clone(), releases)),
            }
            sink.add(write_draft(
                program,
                file,
                func,
                event,
                target,
                &key,
                releases,
                protected_by,
            ));
        }
    }
    for (file, func) in shared_functions(program) {
        for (event, target, key) in object_accesses(program, func) {
            let EventKind::Access { kind, .. } = &event.kind else {
                continue;
            };
            let Some(w) = writers.get(&key) else { continue };
            // Without the GIL (or a lock) other threads run even on default builds; fields
            // that are only set while the object is created are fine.
            let guard = func.guard(event);
            if guard.nogil && guard.mutexes.is_empty() {
                sink.add(nogil_draft(file, func, event, target, &key));
            }
            if *kind != AccessKind::Read {
                continue;
            }
            let writes_itself = w.unprotected.iter().any(|(f, _)| *f == func.name)
                || w.protected.iter().any(|(f, _)| *f == func.name);
            if writes_itself || field_protection(program, func, event, &key).is_some() {
                continue;
            }
            if let Some(draft) = read_draft(file, func, event, target, &key, w) {
                sink.add(draft);
            }
        }
    }
}

/// Functions that can run while their objects are shared.
fn shared_functions(program: &Program) -> impl Iterator<Item = (usize, &FunctionFacts)> {
    program
        .functions()
        .filter(|(_, f)| !matches!(program.context(f), Context::Lifecycle | Context::ModuleInit))
}

/// Field accesses on Python object structs the function did not just create.
fn object_accesses<'f>(
    program: &'f Program,
    func: &'f FunctionFacts,
) -> impl Iterator<Item = (&'f Event, &'f Access, FieldKey)> {
    func.events.iter().filter_map(move |event| {
        let EventKind::Access { target, .. } = &event.kind else {
            return None;
        };
        let field = target.field()?;
        if target.root.is_empty() || program.is_fresh(func, &target.root) {
            return None;
        }
        let container = program.container_type(target)?;
        if !program.is_object_type(&container) || program.module_state_types.contains(&container) {
            return None;
        }
        Some((event, target, (container, field.to_string())))
    })
}

fn field_protection(
    program: &Program,
    func: &FunctionFacts,
    event: &Event,
    key: &FieldKey,
) -> Option<String> {
    let declared_atomic = program.field_declaration(&key.0, &key.1).is_some_and(|d| {
        d.contains("_Atomic") || d.contains("atomic_") || d.starts_with("PyMutex")
    });
    if declared_atomic {
        return Some("its atomic declaration".to_string());
    }
    protection(program, func, event)
}

/// The function frees, decrefs or reallocates the field's old value (unprotected).
fn releases_field(func: &FunctionFacts, key: &FieldKey, program: &Program) -> bool {
    func.events.iter().any(|e| match &e.kind {
        EventKind::Access {
            kind: AccessKind::Release,
            target,
        } => {
            target.field() == Some(key.1.as_str())
                && program.container_type(target).as_deref() == Some(key.0.as_str())
        }
        _ => false,
    })
}

fn expr(target: &Access) -> String {
    format!("{}->{}", target.root, target.fields.join("."))
}

#[allow(clippy::too_many_arguments)]
fn write_draft(
    program: &Program,
    file: usize,
    func: &FunctionFacts,
    event: &Event,
    target: &Access,
    key: &FieldKey,
    releases: bool,
    protected_by: Option<String>,
) -> Draft {
    let (container, field) = key;
    let (severity, message) = match (&protected_by, releases) {
        (Some(how), _) => (Severity::Info, format!("`{}` ({container}) is written, protected by {how}", expr(target))),
        (None, true) => (
            Severity::High,
            format!("`{}` ({container}) is replaced and its old value freed without a lock: a concurrent reader of the same object can use freed memory", expr(target)),
        ),
        (None, false) => (
            Severity::Medium,
            format!("`{}` ({container}) is written without a critical section: concurrent calls on the same object race", expr(target)),
        ),
    };
    let object = if target.root.is_empty() {
        "self"
    } else {
        target.root.as_str()
    };
    let (fix, fix_kind) = write_fix(program, func, object, field);
    let bound_or_param =
        program.is_bound(func) || func.params.iter().any(|p| p.name == target.root);
    Draft {
        rule: Rule::UnlockedFieldWrite,
        severity,
        confidence: if bound_or_param {
            Confidence::High
        } else {
            Confidence::Medium
        },
        file,
        span: event.span,
        function: Some(func.name.clone()),
        symbol: Some(field_symbol(Some(container.clone()), field)),
        message,
        fix,
        fix_kind,
        protected_by,
    }
}

/// A critical section on the written object, or on both objects when the function also
/// uses the state of a second one it was passed (`merge(self, other)`).
fn write_fix(
    program: &Program,
    func: &FunctionFacts,
    object: &str,
    field: &str,
) -> (String, FixKind) {
    let other = object_accesses(program, func)
        .map(|(_, target, _)| target.root.as_str())
        .find(|root| *root != object && func.params.iter().any(|p| p.name == *root));
    let bound = program.is_bound(func);
    let name = &func.name;
    match other {
        Some(other) if bound => (format!("wrap the body of `{name}` in `Py_BEGIN_CRITICAL_SECTION2({object}, {other})` ... `Py_END_CRITICAL_SECTION2()`: it uses the state of both objects; lock `{object}` where `{field}` is read"), FixKind::TwoObjectCriticalSection),
        Some(other) => (format!("hold `Py_BEGIN_CRITICAL_SECTION2(a, b)` on both objects (`{object}` and `{other}` here) in the Python-facing callers of `{name}` (see entry points), and lock the object where `{field}` is read"), FixKind::TwoObjectCriticalSection),
        None if bound => (format!("wrap the body of `{name}` in `Py_BEGIN_CRITICAL_SECTION({object})` ... `Py_END_CRITICAL_SECTION()` (Argument Clinic: `@critical_section`), and lock the same object where `{field}` is read"), FixKind::CriticalSection),
        None => (format!("hold `Py_BEGIN_CRITICAL_SECTION(obj)` on the object in the Python-facing callers of `{name}` (see entry points), and where `{field}` is read"), FixKind::CriticalSection),
    }
}

fn read_draft(
    file: usize,
    func: &FunctionFacts,
    event: &Event,
    target: &Access,
    key: &FieldKey,
    w: &Writers,
) -> Option<Draft> {
    let (container, field) = key;
    let (severity, message) = if let Some((writer, how)) = w.protected.first() {
        (
            Severity::Medium,
            format!(
                "`{}` ({container}) is read without the lock its writer `{writer}` takes ({how})",
                expr(target)
            ),
        )
    } else if let Some((writer, _)) = w.unprotected.iter().find(|(_, releases)| *releases) {
        (
            Severity::Low,
            format!("`{}` ({container}) is read without a lock while `{writer}` can free and replace it", expr(target)),
        )
    } else {
        return None;
    };
    Some(Draft {
        rule: Rule::UnlockedFieldRead,
        severity,
        confidence: Confidence::Medium,
        file,
        span: event.span,
        function: Some(func.name.clone()),
        symbol: Some(field_symbol(Some(container.clone()), field)),
        message,
        fix: format!("read `{field}` under the same `Py_BEGIN_CRITICAL_SECTION` as its writers (or load it atomically if it is a plain value)"),
        fix_kind: FixKind::CriticalSection,
        protected_by: None,
    })
}

fn nogil_draft(
    file: usize,
    func: &FunctionFacts,
    event: &Event,
    target: &Access,
    key: &FieldKey,
) -> Draft {
    let (container, field) = key;
    Draft {
        rule: Rule::FieldInAllowThreads,
        severity: Severity::Medium,
        confidence: Confidence::Medium,
        file,
        span: event.span,
        function: Some(func.name.clone()),
        symbol: Some(field_symbol(Some(container.clone()), field)),
        message: format!("`{}` ({container}) is used between Py_BEGIN_ALLOW_THREADS and Py_END_ALLOW_THREADS without a lock: other threads can change or free it meanwhile", expr(target)),
        fix: format!("copy `{field}` into a local before Py_BEGIN_ALLOW_THREADS, or guard it with a PyMutex held across the region"),
        fix_kind: FixKind::LocalCopy,
        protected_by: None,
    }
}
