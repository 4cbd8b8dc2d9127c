//! Site pairs: one TSan root cause as the plan shows it, with its racing lines, the Python
//! entry points of its sides, its severity and its fix.

use ftreview_static::{BindingKind, Finding as StaticFinding, MethodBinding, Rule, SymbolKind};
use tsan_parse::{AccessKind, FrameOrigin, Location, ReportKind, RootCause, StackRole};

use super::static_findings;
use crate::fix::{
    memory_owner, race_fix, second_object, side_functions, MemoryOwner, RaceEvidence,
};
use crate::model::RunRecord;
use crate::results::*;
use crate::source::SourceTree;
use crate::xref::{field_at, racing_line, racy_global, Links};

/// One root cause with what grouping it into a problem needs.
pub(super) struct Site<'a> {
    pub root_cause: &'a RootCause,
    pub pair: SitePair,
    pub owner: Owner,
    pub fix: Fix,
    /// Python names of the methods the racing stacks entered through.
    pub entry_points: Vec<String>,
    /// Static findings it confirms.
    pub statics: Vec<String>,
}

impl Site<'_> {
    /// The extension functions on its sides (for linking crashes and hangs).
    pub fn functions(&self) -> Vec<String> {
        side_functions(self.root_cause)
    }
}

pub(super) fn site<'a>(
    run: &RunRecord,
    rc: &'a RootCause,
    links: &Links,
    tree: &SourceTree,
) -> Site<'a> {
    let statics: Vec<&StaticFinding> = static_findings(run)
        .filter(|f| links.statics_of(&rc.id).contains(&f.id))
        .collect();
    let variable = racy_variable(rc, &statics, tree);
    let bindings = entry_bindings(run, rc);
    let mut entry_points: Vec<String> = bindings.iter().map(|m| binding_name(m)).collect();
    entry_points.sort();
    entry_points.dedup();
    let evidence = RaceEvidence {
        root_cause: rc,
        statics,
        entry_points: entry_points.clone(),
        entry_type: entry_type(&bindings),
        tree,
    };
    let fix = race_fix(&evidence);
    let owner = owner_of(&evidence);
    Site {
        root_cause: rc,
        pair: SitePair {
            id: rc.id.clone(),
            kind: rc.kind.to_string(),
            locations: rc
                .sides
                .iter()
                .filter_map(|s| s.frame.as_ref().or(s.top_frame.as_ref()))
                .filter_map(|f| frame_location(f, tree))
                .collect(),
            variable,
            count: rc.count,
            severity: race_severity(rc, &evidence.statics),
        },
        owner,
        fix,
        entry_points,
        statics: links.statics_of(&rc.id).to_vec(),
    }
}

/// What the racing accesses share: a global by name, the module's state, a heap block by
/// its allocation site, or the fields of one Python type's objects (through `self` or
/// through an argument of the same type); the mutexes of a lock-order inversion.
fn owner_of(evidence: &RaceEvidence) -> Owner {
    let rc = evidence.root_cause;
    let mut functions = side_functions(rc);
    functions.sort();
    functions.dedup();
    if rc.kind == ReportKind::LockOrderInversion {
        return Owner::LockOrder { functions };
    }
    if let Some(global) = racy_global(rc) {
        // gcc prints a static local without its function; the static pass knows it.
        let function = global.function.or_else(|| {
            lazy_static(evidence)
                .filter(|(name, _)| *name == global.name)
                .and_then(|(_, function)| function)
        });
        return Owner::Global {
            name: global.name,
            function,
        };
    }
    if let Some(allocated_in) = extension_allocation(rc) {
        return Owner::HeapBlock {
            allocated_in,
            type_name: evidence.entry_type.clone(),
        };
    }
    // Both sides' lines, for whether the other side's object is a second one.
    let lines: Vec<String> = rc
        .sides
        .iter()
        .filter_map(|s| s.frame.as_ref())
        .map(|f| racing_line(f, evidence.tree).unwrap_or_default())
        .collect();
    match (memory_owner(evidence), &evidence.entry_type) {
        (MemoryOwner::Module, _) => Owner::ModuleState {
            field: rc
                .sides
                .iter()
                .filter_map(|s| s.frame.as_ref())
                .find_map(|f| field_at(&racing_line(f, evidence.tree)?, f.column?)),
        },
        (_, Some(type_name)) => Owner::Object {
            type_name: type_name.clone(),
            receiver: match lines.as_slice() {
                [first, second] if second_object(first, second).is_some() => Receiver::Argument,
                _ => Receiver::SelfObject,
            },
        },
        // An object a lazily-initialized static published, read through the static while its
        // builder still writes it: the static's problem, whichever memory TSan saw.
        _ => match lazy_static(evidence) {
            Some((name, function)) => Owner::Global {
                name: name.to_string(),
                function,
            },
            None => Owner::Code { functions },
        },
    }
}

/// The static (name, and function for a static local) of a lazy-init finding the pair confirms.
fn lazy_static<'e>(evidence: &'e RaceEvidence) -> Option<(&'e str, Option<String>)> {
    evidence.statics.iter().find_map(|finding| {
        let symbol = finding.symbol.as_ref()?;
        let function = match symbol.kind {
            SymbolKind::StaticLocal => symbol.container.clone().or(finding.function.clone()),
            SymbolKind::Global => None,
            _ => return None,
        };
        (finding.rule == Rule::LazyInitRace).then_some((symbol.name.as_str(), function))
    })
}

/// The extension function that allocated the raced heap block, when TSan tracked it (memory
/// from `malloc` in the extension; Python objects come from CPython's allocator, untracked).
fn extension_allocation(rc: &RootCause) -> Option<String> {
    rc.representative.locations.iter().find_map(|l| match l {
        Location::Heap { stack, .. } => stack
            .frames
            .iter()
            .find(|f| f.origin == FrameOrigin::Extension)
            .and_then(|f| f.function.as_deref().map(str::to_string)),
        _ => None,
    })
}

/// `SARIF` rule id of a TSan kind: `TSAN-data-race`, `TSAN-lock-order-inversion`, `TSAN-SEGV`.
pub fn tsan_rule(kind: &ReportKind) -> String {
    let text = kind.header_text();
    let head = text.split(" (").next().unwrap_or(text);
    format!("TSAN-{}", head.replace(' ', "-"))
}

pub fn frame_location(frame: &tsan_parse::Frame, tree: &SourceTree) -> Option<SourceLocation> {
    let printed = frame.file.as_deref()?;
    let in_interpreter = frame.origin == FrameOrigin::Cpython && tree.resolve(printed).is_none();
    Some(SourceLocation {
        file: if in_interpreter {
            tsan_parse::cpython_relative(printed)
        } else {
            tree.display(printed)
        },
        line: frame.line,
        column: frame.column,
        function: frame.function.as_deref().map(str::to_string),
        in_interpreter,
    })
}

/// The field or variable raced on: a global's name, else the field at the racing column
/// (qualified by the struct a static finding names for it), else what TSan said.
fn racy_variable(rc: &RootCause, statics: &[&StaticFinding], tree: &SourceTree) -> Option<String> {
    if let Some(global) = racy_global(rc) {
        return Some(global.name);
    }
    let field = rc
        .sides
        .iter()
        .filter_map(|s| s.frame.as_ref())
        .find_map(|f| field_at(&racing_line(f, tree)?, f.column?));
    let Some(field) = field else {
        return rc.variable.clone();
    };
    let container = statics
        .iter()
        .filter_map(|f| f.symbol.as_ref())
        .find(|s| s.name == field)
        .and_then(|s| s.container.clone());
    Some(match container {
        Some(container) => format!("{container}.{field}"),
        None => field,
    })
}

/// The C functions the racing stacks entered the extension through: the outermost
/// extension frame of each side, in the representative and every kept call path.
fn entry_functions(rc: &RootCause) -> Vec<String> {
    let representative = rc
        .representative
        .all_stacks()
        .filter(|(role, _)| {
            !matches!(
                role,
                StackRole::Allocation | StackRole::MutexCreation | StackRole::ThreadCreation
            )
        })
        .filter_map(|(_, stack)| {
            stack
                .frames
                .iter()
                .rfind(|f| f.origin == FrameOrigin::Extension)
        })
        .filter_map(|frame| frame.function.as_deref().map(str::to_string));
    // Call path entries read `function file:line`, extension frames only, innermost first.
    let call_paths = rc
        .call_paths
        .iter()
        .flat_map(|path| &path.sides)
        .filter_map(|side| side.last())
        .filter_map(|entry| entry.split_whitespace().next().map(str::to_string));
    let mut functions: Vec<String> = representative.chain(call_paths).collect();
    functions.sort();
    functions.dedup();
    functions
}

/// The Python bindings of the functions a root cause was entered through.
fn entry_bindings<'a>(run: &'a RunRecord, rc: &RootCause) -> Vec<&'a MethodBinding> {
    let Some(scan) = &run.static_scan else {
        return Vec::new();
    };
    entry_functions(rc)
        .iter()
        .flat_map(|function| {
            scan.methods
                .iter()
                .filter(move |m| &m.c_function == function)
        })
        .collect()
}

/// The Python type whose methods every side entered through, if there is one.
fn entry_type(bindings: &[&MethodBinding]) -> Option<String> {
    let mut owners = bindings.iter().map(|m| {
        m.owner_type
            .as_deref()
            .filter(|_| m.kind != BindingKind::Function)
    });
    let first = owners.next()??;
    owners.all(|o| o == Some(first)).then(|| first.to_string())
}

/// `Type.method`, `module.function`, or the bare name when the owner is unknown.
pub(crate) fn binding_name(m: &MethodBinding) -> String {
    match &m.owner_type {
        Some(owner) => format!(
            "{}.{}",
            owner.rsplit('.').next().unwrap_or(owner),
            m.python_name
        ),
        None => m.python_name.clone(),
    }
}

/// The Python names bound to a C function (`Vector.append`, `ftfixture_racy.bump`).
pub fn python_names(run: &RunRecord, c_function: &str) -> Vec<String> {
    let Some(scan) = &run.static_scan else {
        return Vec::new();
    };
    scan.bindings_of(c_function).map(binding_name).collect()
}

fn race_severity(rc: &RootCause, statics: &[&StaticFinding]) -> Severity {
    match rc.kind {
        ReportKind::HeapUseAfterFree
        | ReportKind::HeapUseAfterFreeVptr
        | ReportKind::DeadlySignal(_) => Severity::Critical,
        ReportKind::DataRace | ReportKind::DataRaceOnVptr => {
            let write_write = rc.sides.len() == 2
                && rc
                    .sides
                    .iter()
                    .all(|s| s.access_kinds.contains(&AccessKind::Write));
            let backed_by_high = statics
                .iter()
                .any(|f| f.severity == ftreview_static::Severity::High);
            if write_write || backed_by_high {
                Severity::High
            } else {
                Severity::Medium
            }
        }
        ReportKind::LockOrderInversion
        | ReportKind::DoubleLock
        | ReportKind::DestroyOfLockedMutex
        | ReportKind::UnlockOfUnlockedMutex => Severity::High,
        ReportKind::ThreadLeak => Severity::Low,
        _ => Severity::Medium,
    }
}
