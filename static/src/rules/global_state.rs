//! FT201 / FT202: file-scope and function-scope `static` (and other global) variables written
//! while other threads may run: counters, flags, `PyObject *` caches, tables, structs. Writes
//! under a lock, through atomics, to thread-locals, or only during module init are reported at
//! `Info`/`Low` with what protects them. `if (!cache) cache = ...` is FT202.

use std::collections::HashSet;

use crate::facts::{AccessKind, EventKind, FunctionFacts, GlobalVar};
use crate::model::{Confidence, FixKind, Rule, Severity, Span, Symbol, SymbolKind};
use crate::program::{Context, Program};
use crate::rules::{callee_write, protection, Draft, Sink};

pub(crate) fn check(program: &Program, sink: &mut Sink) {
    for (file, func) in program.functions() {
        let lazy: HashSet<&str> = func
            .events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::LazyInit { var } => Some(var.as_str()),
                _ => None,
            })
            .collect();
        for event in &func.events {
            let (kind, var, field) = match &event.kind {
                EventKind::Access { kind, target }
                    if *kind != AccessKind::Read && !target.root_is_local =>
                {
                    (*kind, target.root.as_str(), target.field())
                }
                EventKind::LazyInit { var } => (AccessKind::Write, var.as_str(), None),
                _ => continue,
            };
            let is_lazy = lazy.contains(var);
            if is_lazy && !matches!(event.kind, EventKind::LazyInit { .. }) {
                continue; // reported once, at the check
            }
            let Some((_, global)) = program.resolve_global(file, &func.name, var) else {
                continue;
            };
            if global.is_const {
                continue;
            }
            let site = Site {
                func,
                global,
                kind,
                field,
                span: event.span,
                is_lazy,
                callee: callee_write(event),
            };
            let protected_by = global
                .inherent_protection
                .clone()
                .or_else(|| protection(program, func, event));
            sink.add(site.draft(file, protected_by, program.context(func)));
        }
    }
}

struct Site<'a> {
    func: &'a FunctionFacts,
    global: &'a GlobalVar,
    kind: AccessKind,
    field: Option<&'a str>,
    span: Span,
    is_lazy: bool,
    /// Written by a callee it was passed to: how the message says so, and how sure.
    callee: Option<(String, Confidence)>,
}

impl Site<'_> {
    fn draft(&self, file: usize, protected_by: Option<String>, context: &Context) -> Draft {
        let g = self.global;
        let what = match &g.function {
            Some(owner) => format!("static local `{}` of `{owner}`", g.name),
            None if g.is_static => format!("file-scope static `{}`", g.name),
            None => format!("global `{}`", g.name),
        };
        let target = match self.field {
            Some(field) => format!("{what} (field `{field}`)"),
            None => what,
        };
        let target = match &self.callee {
            Some((how, _)) => format!("{target} ({how})"),
            None => target,
        };
        let rule = if self.is_lazy {
            Rule::LazyInitRace
        } else {
            Rule::GlobalMutableState
        };
        let (severity, confidence, message) = if let Some(how) = &protected_by {
            (
                Severity::Info,
                Confidence::High,
                format!("{target} is written here, protected by {how}"),
            )
        } else if *context == Context::ModuleInit {
            (
                Severity::Low,
                Confidence::Medium,
                format!("{target} is written only during module initialization (serialized by the import lock), but it is process-wide state"),
            )
        } else if self.is_lazy {
            (
                Severity::Medium,
                Confidence::High,
                format!("{target} is lazily initialized (check, then set) without a lock: two threads can both see it unset and both initialize it"),
            )
        } else {
            let (severity, how) = match self.kind {
                AccessKind::Update => (Severity::High, "updated (read-modify-write)"),
                AccessKind::Release => (Severity::High, "released (freed or decref'd)"),
                _ => (Severity::Medium, "assigned"),
            };
            (severity, Confidence::High, format!("{target} is {how} here without a lock or atomic; other threads read and write it concurrently"))
        };
        let symbol = Symbol {
            kind: if g.function.is_some() {
                SymbolKind::StaticLocal
            } else {
                SymbolKind::Global
            },
            name: g.name.clone(),
            container: g.function.clone(),
        };
        let (fix, fix_kind) = self.fix();
        let confidence = self
            .callee
            .as_ref()
            .map_or(confidence, |(_, sure)| confidence.min(*sure));
        Draft {
            rule,
            severity,
            confidence,
            file,
            span: self.span,
            function: Some(self.func.name.clone()),
            symbol: Some(symbol),
            message,
            fix,
            fix_kind,
            protected_by,
        }
    }

    fn fix(&self) -> (String, FixKind) {
        let g = self.global;
        if self.is_lazy {
            return (format!(
                "initialize `{}` once in the module's exec function (better: in module state), or guard the check and the set with a static PyMutex",
                g.name
            ), FixKind::OnceInit);
        }
        match self.kind {
            AccessKind::Update if !g.is_pointer && !g.is_array && self.callee.is_none() => (format!(
                "make `{}` atomic (`_Py_atomic_add_*` / C11 `atomic_fetch_add`), or keep it in module state behind a PyMutex",
                g.name
            ), FixKind::Atomic),
            _ => (format!(
                "move `{}` into module state and guard it with a PyMutex (or make it `_Thread_local` if each thread needs its own)",
                g.name
            ), FixKind::ModuleState),
        }
    }
}
