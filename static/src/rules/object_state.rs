//! FT401 / FT402 / FT403: per-object state. Functions that write fields of a Python object
//! struct (one starting with `PyObject_HEAD`) without a critical section or lock; readers of
//! fields whose writers lock (or free the old value); and fields touched between
//! `Py_BEGIN_ALLOW_THREADS` and its END without a lock. Objects the function just created and
//! lifecycle functions (`tp_new`, `tp_dealloc`...) are skipped: nobody else sees the object.
//! A helper is protected when every caller locks the object it passes in; when only some do,
//! the finding names the entry points of the paths that do not.

use std::collections::HashMap;

use crate::facts::{Access, AccessKind, Event, EventKind, FunctionFacts};
use crate::model::{Confidence, FixKind, Rule, Severity};
use crate::program::{Context, Program, UnlockedPaths};
use crate::rules::{callee_write, field_symbol, Draft, Sink};

/// (container type, field)
type FieldKey = (String, String);

#[derive(Default)]
struct Writers {
    /// Functions writing the field without protection, and whether they release its old value.
    unprotected: Vec<(String, bool)>,
    /// Functions writing it under a lock (and which).
    protected: Vec<(String, String)>,
}

/// One access to a field of a shared object.
struct Site<'a> {
    file: usize,
    func: &'a FunctionFacts,
    event: &'a Event,
    target: &'a Access,
    key: FieldKey,
}

pub(crate) fn check(program: &Program, sink: &mut Sink) {
    let mut writers: HashMap<FieldKey, Writers> = HashMap::new();
    for site in object_sites(program) {
        let EventKind::Access { kind, .. } = &site.event.kind else {
            continue;
        };
        if *kind == AccessKind::Read {
            continue;
        }
        let protected_by = site.protection(program);
        let releases = releases_field(site.func, &site.key, program);
        let entry = writers.entry(site.key.clone()).or_default();
        match &protected_by {
            Some(how) => entry.protected.push((site.func.name.clone(), how.clone())),
            None => entry.unprotected.push((site.func.name.clone(), releases)),
        }
        site.report(
            program,
            sink,
            write_draft(program, &site, releases, protected_by),
        );
    }
    for site in object_sites(program) {
        let EventKind::Access { kind, .. } = &site.event.kind else {
            continue;
        };
        let Some(w) = writers.get(&site.key) else {
            continue;
        };
        // Without the GIL (or a lock) other threads run even on default builds; fields
        // that are only set while the object is created are fine.
        let guard = site.func.guard(site.event);
        if guard.nogil && guard.mutexes.is_empty() {
            sink.add(nogil_draft(&site));
        }
        if *kind != AccessKind::Read {
            continue;
        }
        let name = &site.func.name;
        let writes_itself = w.unprotected.iter().any(|(f, _)| f == name)
            || w.protected.iter().any(|(f, _)| f == name);
        if writes_itself || site.protection(program).is_some() {
            continue;
        }
        if let Some(draft) = read_draft(&site, w) {
            site.report(program, sink, draft);
        }
    }
}

/// Field accesses on Python object structs, in functions that can run while their objects
/// are shared, on objects the function did not just create.
fn object_sites(program: &Program) -> impl Iterator<Item = Site<'_>> {
    program
        .functions()
        .filter(|(_, f)| !matches!(program.context(f), Context::Lifecycle | Context::ModuleInit))
        .flat_map(move |(file, func)| {
            object_accesses(program, func).map(move |(event, target, key)| Site {
                file,
                func,
                event,
                target,
                key,
            })
        })
}

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

impl Site<'_> {
    /// The object accessed, as the function names it (`self` for `MD(self)->x`).
    fn object(&self, program: &Program) -> String {
        program.object_root(self.func, &self.target.root)
    }

    fn is_param(&self, object: &str) -> bool {
        self.func.params.iter().any(|p| p.name == object)
    }

    /// What keeps other threads off the field here: its declaration, an atomic operation, a
    /// lock held at the access, or a lock every caller holds on the object passed in.
    fn protection(&self, program: &Program) -> Option<String> {
        let (container, field) = &self.key;
        let declared_atomic = program
            .field_declaration(container, field)
            .is_some_and(|d| {
                d.contains("_Atomic") || d.contains("atomic_") || d.starts_with("PyMutex")
            });
        if declared_atomic {
            return Some("its atomic declaration".to_string());
        }
        if self.event.atomic {
            return Some("atomic operation".to_string());
        }
        if let Some(held) = self.func.guard(self.event).protection() {
            return Some(held);
        }
        program
            .param_lock(self.func, &self.object(program))
            .map(|lock| lock.describe())
    }

    /// The unlocked paths into the function, when some of its callers do lock the object.
    fn partly_locked(&self, program: &Program) -> Option<UnlockedPaths> {
        let object = self.object(program);
        if !self.is_param(&object) {
            return None;
        }
        let paths = program.unlocked_paths(self.func, &object);
        (!paths.locking_callers.is_empty() && !paths.entry_points.is_empty()).then_some(paths)
    }

    /// Adds an unprotected finding named by the entry points of the unlocked paths only.
    fn report(&self, program: &Program, sink: &mut Sink, mut draft: Draft) {
        if draft.severity == Severity::Info {
            return sink.add(draft);
        }
        let Some(paths) = self.partly_locked(program) else {
            if let Context::Locked(how) = program.context(self.func) {
                // A lock on some other object may still serialize this one (an iterator's
                // fields under its dict's lock): worth a look, not a claim.
                draft.confidence = Confidence::Low;
                draft.message = format!(
                    "{}; every caller holds {how}, but not on this object",
                    draft.message
                );
            }
            return sink.add(draft);
        };
        let lockers: Vec<String> = paths
            .locking_callers
            .iter()
            .map(|c| format!("`{c}`"))
            .collect();
        draft.message = format!(
            "{}; {} lock{} the object before calling `{}`, the paths from {} do not",
            draft.message,
            lockers.join(", "),
            if lockers.len() == 1 { "s" } else { "" },
            self.func.name,
            paths.entry_points.join(", ")
        );
        draft.fix = format!(
            "lock the object on the paths from {} as {} does (`Py_BEGIN_CRITICAL_SECTION` around the call), or in `{}` itself",
            paths.entry_points.join(", "),
            lockers[0],
            self.func.name
        );
        sink.add_reached_by(draft, paths.entry_points);
    }

    fn expr(&self) -> String {
        format!("{}->{}", self.target.root, self.target.fields.join("."))
    }
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

fn write_draft(
    program: &Program,
    site: &Site,
    releases: bool,
    protected_by: Option<String>,
) -> Draft {
    let (container, field) = &site.key;
    let callee = callee_write(site.event);
    let expr = match &callee {
        Some((how, _)) => format!("`{}` ({container}, {how})", site.expr()),
        None => format!("`{}` ({container})", site.expr()),
    };
    let (severity, message) = match (&protected_by, releases) {
        (Some(how), _) => (Severity::Info, format!("{expr} is written, protected by {how}")),
        (None, true) => (
            Severity::High,
            format!("{expr} is replaced and its old value freed without a lock: a concurrent reader of the same object can use freed memory"),
        ),
        (None, false) => (
            Severity::Medium,
            format!("{expr} is written without a critical section: concurrent calls on the same object race"),
        ),
    };
    let object = if site.target.root.is_empty() {
        "self"
    } else {
        site.target.root.as_str()
    };
    let (fix, fix_kind) = if site.func.guard(site.event).nogil {
        (format!("hold a PyMutex of the object around the use of `{field}` inside Py_BEGIN_ALLOW_THREADS (a critical section is suspended while the GIL is released), and where `{field}` is used elsewhere"), FixKind::PyMutex)
    } else {
        write_fix(program, site.func, object, field)
    };
    let bound_or_param = program.is_bound(site.func) || site.is_param(&site.target.root);
    let confidence = if bound_or_param {
        Confidence::High
    } else {
        Confidence::Medium
    };
    Draft {
        rule: Rule::UnlockedFieldWrite,
        severity,
        confidence: callee.map_or(confidence, |(_, sure)| confidence.min(sure)),
        file: site.file,
        span: site.event.span,
        function: Some(site.func.name.clone()),
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

fn read_draft(site: &Site, w: &Writers) -> Option<Draft> {
    let (container, field) = &site.key;
    let expr = site.expr();
    let (severity, message) = if let Some((writer, how)) = w.protected.first() {
        (
            Severity::Medium,
            format!("`{expr}` ({container}) is read without the lock its writer `{writer}` takes ({how})"),
        )
    } else if let Some((writer, _)) = w.unprotected.iter().find(|(_, releases)| *releases) {
        (
            Severity::Low,
            format!("`{expr}` ({container}) is read without a lock while `{writer}` can free and replace it"),
        )
    } else {
        return None;
    };
    Some(Draft {
        rule: Rule::UnlockedFieldRead,
        severity,
        confidence: Confidence::Medium,
        file: site.file,
        span: site.event.span,
        function: Some(site.func.name.clone()),
        symbol: Some(field_symbol(Some(container.clone()), field)),
        message,
        fix: format!("read `{field}` under the same `Py_BEGIN_CRITICAL_SECTION` as its writers (or load it atomically if it is a plain value)"),
        fix_kind: FixKind::CriticalSection,
        protected_by: None,
    })
}

/// Without the GIL nothing orders this access against other threads: a write there races
/// even on a GIL build, so it is high; a read sees the field change or be freed.
fn nogil_draft(site: &Site) -> Draft {
    let (container, field) = &site.key;
    let expr = site.expr();
    let written =
        matches!(&site.event.kind, EventKind::Access { kind, .. } if *kind != AccessKind::Read);
    let callee = callee_write(site.event);
    let (severity, message, fix, fix_kind) = if written {
        let how = callee
            .as_ref()
            .map_or(String::new(), |(how, _)| format!(" ({how})"));
        (
            Severity::High,
            format!("`{expr}` ({container}) is written{how} between Py_BEGIN_ALLOW_THREADS and Py_END_ALLOW_THREADS without the object's lock: another thread using the same object races with it, with or without the GIL"),
            format!("hold a PyMutex of the object across the region for every use of `{field}` (a critical section is suspended while the GIL is released)"),
            FixKind::PyMutex,
        )
    } else {
        (
            Severity::Medium,
            format!("`{expr}` ({container}) is used between Py_BEGIN_ALLOW_THREADS and Py_END_ALLOW_THREADS without a lock: other threads can change or free it meanwhile"),
            format!("copy `{field}` into a local before Py_BEGIN_ALLOW_THREADS, or guard it with a PyMutex held across the region"),
            FixKind::LocalCopy,
        )
    };
    Draft {
        rule: Rule::FieldInAllowThreads,
        severity,
        confidence: callee.map_or(Confidence::Medium, |(_, sure)| sure.min(Confidence::Medium)),
        file: site.file,
        span: site.event.span,
        function: Some(site.func.name.clone()),
        symbol: Some(field_symbol(Some(container.clone()), field)),
        message,
        fix,
        fix_kind,
        protected_by: None,
    }
}
