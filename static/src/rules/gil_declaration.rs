//! FT101: does each extension module tell a free-threaded interpreter it can run without the
//! GIL? (`{Py_mod_gil, Py_MOD_GIL_NOT_USED}` for multi-phase init, `PyUnstable_Module_SetGIL`
//! for single-phase init.) Without it the interpreter re-enables the GIL at import.

use crate::facts::{strip_object_expr, EventKind, FunctionFacts, Value};
use crate::model::{
    Confidence, FixKind, GilDeclaration, GilState, InitPhase, ModuleInit, Rule, Severity,
    StaticType, Symbol, SymbolKind,
};
use crate::program::Program;
use crate::rules::{Draft, Sink};

pub(crate) fn check(program: &Program, sink: &mut Sink) {
    for (file, func) in program.functions() {
        let Some(module) = func.name.strip_prefix("PyInit_") else {
            continue;
        };
        let init = module_init(program, file, func, module);
        if init.gil == GilState::NotUsed {
            continue;
        }
        let (severity, message, fix) = match init.gil {
            GilState::Used => (
                Severity::Info,
                format!("module `{module}` declares that it needs the GIL (Py_MOD_GIL_USED)"),
                "switch to Py_MOD_GIL_NOT_USED once the module's state is thread-safe".to_string(),
            ),
            _ => (
                Severity::High,
                format!("module `{module}` does not declare Py_mod_gil: a free-threaded interpreter re-enables the GIL when it is imported"),
                missing_fix(init.phase),
            ),
        };
        sink.add(Draft {
            rule: Rule::GilNotDeclared,
            severity,
            confidence: Confidence::High,
            file,
            span: func.span,
            function: Some(func.name.clone()),
            symbol: Some(Symbol {
                kind: SymbolKind::Module,
                name: module.to_string(),
                container: None,
            }),
            message,
            fix,
            fix_kind: FixKind::DeclareGil,
            protected_by: None,
        });
    }
}

fn missing_fix(phase: InitPhase) -> String {
    match phase {
        InitPhase::SinglePhase => "after creating the module: `#ifdef Py_GIL_DISABLED PyUnstable_Module_SetGIL(m, Py_MOD_GIL_NOT_USED); #endif` (once its state is thread-safe)".to_string(),
        _ => "add `{Py_mod_gil, Py_MOD_GIL_NOT_USED}` to the module's PyModuleDef_Slot array under `#if PY_VERSION_HEX >= 0x030D0000` (once its state is thread-safe)".to_string(),
    }
}

/// The GIL story of every module in the program.
pub(crate) fn declaration(program: &Program) -> GilDeclaration {
    let modules: Vec<ModuleInit> = program
        .functions()
        .filter_map(|(file, f)| {
            f.name
                .strip_prefix("PyInit_")
                .map(|m| module_init(program, file, f, m))
        })
        .collect();
    let state = if modules.is_empty() {
        GilState::NoModule
    } else if modules.iter().any(|m| m.gil == GilState::Missing) {
        GilState::Missing
    } else if modules.iter().all(|m| m.gil == GilState::NotUsed) {
        GilState::NotUsed
    } else {
        GilState::Used
    };
    let static_types = program
        .files
        .iter()
        .flat_map(|f| {
            f.facts
                .tables
                .iter()
                .filter(|t| t.type_name == "PyTypeObject")
                .map(|t| StaticType {
                    c_name: t.name.clone(),
                    file: f.path.clone(),
                    line: t.line,
                })
        })
        .collect();
    GilDeclaration {
        state,
        modules,
        static_types,
    }
}

fn module_init(program: &Program, file: usize, func: &FunctionFacts, module: &str) -> ModuleInit {
    let mut phase = InitPhase::Unknown;
    let mut def_name = None;
    for event in &func.events {
        let EventKind::Call { callee, args } = &event.kind else {
            continue;
        };
        let call_phase = match callee.as_str() {
            "PyModuleDef_Init" => InitPhase::MultiPhase,
            "PyModule_Create" | "PyModule_Create2" => InitPhase::SinglePhase,
            _ => continue,
        };
        phase = call_phase;
        def_name = args.first().map(|a| strip_object_expr(a).to_string());
    }
    let path = program.files[file].path.clone();
    let (gil, declared_at) = slot_declaration(program, file, def_name.as_deref())
        .or_else(|| set_gil_call(program, file, func))
        .map_or((GilState::Missing, None), |(gil, line)| {
            (gil, Some((path.clone(), line)))
        });
    ModuleInit {
        name: module.to_string(),
        file: path,
        line: func.span.line,
        phase,
        gil,
        declared_at,
    }
}

fn gil_value(text: &str) -> Option<GilState> {
    match text {
        "Py_MOD_GIL_NOT_USED" => Some(GilState::NotUsed),
        "Py_MOD_GIL_USED" => Some(GilState::Used),
        _ => None,
    }
}

/// `{Py_mod_gil, ...}` in the slots of the module's def (or, failing that, of the file).
fn slot_declaration(
    program: &Program,
    file: usize,
    def_name: Option<&str>,
) -> Option<(GilState, usize)> {
    let slots_name = program
        .bindings
        .module_defs
        .iter()
        .find(|d| Some(d.def_name.as_str()) == def_name && d.file == file)
        .or_else(|| {
            program
                .bindings
                .module_defs
                .iter()
                .find(|d| Some(d.def_name.as_str()) == def_name)
        })
        .and_then(|d| d.slots.clone());
    // Without a resolved def, only this file's slot arrays can be the module's.
    let files = if slots_name.is_some() {
        &program.files[..]
    } else {
        &program.files[file..=file]
    };
    files
        .iter()
        .flat_map(|f| f.facts.tables.iter())
        .filter(|t| {
            t.type_name == "PyModuleDef_Slot" && slots_name.as_ref().is_none_or(|s| *s == t.name)
        })
        .flat_map(|t| t.values.iter())
        .find_map(|entry| match &entry.value {
            Value::List(pair) => match (
                pair.first().map(|v| &v.value),
                pair.get(1).map(|v| &v.value),
            ) {
                (Some(Value::Ident(slot)), Some(Value::Ident(value))) if slot == "Py_mod_gil" => {
                    gil_value(value).map(|g| (g, entry.line))
                }
                _ => None,
            },
            _ => None,
        })
}

/// `PyUnstable_Module_SetGIL(m, Py_MOD_GIL_NOT_USED)` in the init function or a function it
/// calls.
fn set_gil_call(program: &Program, file: usize, init: &FunctionFacts) -> Option<(GilState, usize)> {
    let find = |func: &FunctionFacts| {
        func.events.iter().find_map(|e| match &e.kind {
            EventKind::Call { callee, args } if callee == "PyUnstable_Module_SetGIL" => args
                .get(1)
                .and_then(|a| gil_value(a.trim()))
                .map(|g| (g, e.span.line)),
            _ => None,
        })
    };
    find(init).or_else(|| {
        init.events.iter().find_map(|e| match &e.kind {
            EventKind::Call { callee, .. } => program
                .resolve_function(file, callee)
                .and_then(|id| find(program.function(id))),
            _ => None,
        })
    })
}
