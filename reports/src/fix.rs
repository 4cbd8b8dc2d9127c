//! Choosing a concrete fix from the evidence: the kind of report, what was raced on (a
//! global, module state, an object, a buffer), what the racing lines do, and what the
//! static pass says about the same code.

use ftreview_static::{Finding as StaticFinding, Rule};
use tsan_parse::{AccessKind, Frame, FrameOrigin, Location, ReportKind, RootCause};

use crate::results::{Fix, FixKind};
use crate::source::SourceTree;
use crate::xref::{members, racing_line, racy_global};

/// What the fix of a root cause is chosen from.
pub struct RaceEvidence<'a> {
    pub root_cause: &'a RootCause,
    /// Static findings joined with it.
    pub statics: Vec<&'a StaticFinding>,
    /// Python names of the methods the racing stacks entered through (`Vector.append`).
    pub entry_points: Vec<String>,
    /// The Python type all those methods belong to, if they share one.
    pub entry_type: Option<String>,
    pub tree: &'a SourceTree,
}

/// Allocation frames that make a heap block a Python object.
const OBJECT_ALLOCATORS: &[&str] = &[
    "PyType_GenericAlloc",
    "_PyType_AllocNoTrack",
    "_PyObject_GC_New",
    "_PyObject_GC_NewVar",
    "_PyObject_New",
    "_PyObject_NewVar",
    "PyObject_Malloc",
    "gc_alloc",
];

/// Allocation frames that make a heap block a module's state.
const MODULE_ALLOCATORS: &[&str] = &[
    "PyModule_FromDefAndSpec2",
    "PyModule_ExecDef",
    "PyModule_New",
    "PyModule_NewObject",
];

pub fn race_fix(evidence: &RaceEvidence) -> Fix {
    let rc = evidence.root_cause;
    match rc.kind {
        ReportKind::LockOrderInversion => lock_order_fix(rc),
        ReportKind::HeapUseAfterFree | ReportKind::HeapUseAfterFreeVptr => use_after_free_fix(evidence),
        ReportKind::DataRace | ReportKind::DataRaceOnVptr => data_race_fix(evidence),
        ReportKind::DeadlySignal(_) => Fix {
            kind: FixKind::Investigate,
            action: "Run the reproducer under a debugger; fix the races listed for the same code first: a crash under concurrency is usually their consequence.".into(),
            reason: "The process died on a signal; TSan shows where, not why.".into(),
        },
        _ => Fix {
            kind: FixKind::Investigate,
            action: format!("Read the `{}` report and the code on its stacks.", rc.kind),
            reason: "This report kind has no generic remedy.".into(),
        },
    }
}

fn lock_order_fix(rc: &RootCause) -> Fix {
    let functions = side_functions(rc).join("` and `");
    Fix {
        kind: FixKind::LockOrder,
        action: format!(
            "Acquire the mutexes in one fixed order everywhere (`{functions}` take them in opposite orders), or merge them into one lock."
        ),
        reason: "TSan saw the same mutexes taken in opposite orders by two threads: once both run at the same time, each waits for the other forever.".into(),
    }
}

fn use_after_free_fix(evidence: &RaceEvidence) -> Fix {
    if let Some(borrowed) = evidence
        .statics
        .iter()
        .find(|f| f.rule == Rule::BorrowedReference)
    {
        return strong_reference_fix(borrowed);
    }
    Fix {
        kind: FixKind::CriticalSection,
        action: format!(
            "Hold `Py_BEGIN_CRITICAL_SECTION(obj)` on the object that owns the memory in both `{}`, so the free cannot happen while the other side uses it.",
            side_functions(evidence.root_cause).join("` and `")
        ),
        reason: "One thread freed memory another thread was still using: the free and the use must be ordered by the owner's lock.".into(),
    }
}

fn strong_reference_fix(borrowed: &StaticFinding) -> Fix {
    Fix {
        kind: FixKind::StrongReferenceApi,
        action: borrowed.fix.clone(),
        reason: format!(
            "The racing code holds a borrowed reference ({}); another thread can drop the last strong reference while it is in use.",
            borrowed.message
        ),
    }
}

fn data_race_fix(evidence: &RaceEvidence) -> Fix {
    let rc = evidence.root_cause;
    if let Some(borrowed) = evidence
        .statics
        .iter()
        .find(|f| f.rule == Rule::BorrowedReference)
    {
        return strong_reference_fix(borrowed);
    }
    let lines: Vec<String> = side_frames(rc)
        .map(|f| racing_line(f, evidence.tree).unwrap_or_default())
        .collect();
    let read_modify_write = lines.iter().any(|l| is_read_modify_write(l));
    // An atomic access by the extension's own code; atomics inside the interpreter or its
    // allocator (a side whose innermost frame is not the extension's) are not the extension's
    // to match.
    let mixed_atomic = rc
        .sides
        .iter()
        .filter(|s| s.top_frame.is_none())
        .flat_map(|s| &s.access_kinds)
        .any(|k| k.is_atomic());
    let word_sized = access_size(rc).is_some_and(|size| size <= 8);
    if let Some(global) = racy_global(rc) {
        return global_fix(
            evidence,
            &global.name,
            read_modify_write && word_sized,
            word_sized,
        );
    }
    match memory_owner(evidence) {
        MemoryOwner::Module => module_state_fix(read_modify_write && word_sized),
        _ if mixed_atomic && word_sized => Fix {
            kind: FixKind::Atomic,
            action: "Make every access to this field atomic (`_Py_atomic_load_*`/`_Py_atomic_store_*` or C11 `atomic_*`), not only some of them.".into(),
            reason: "One side already uses an atomic access and the other does not: a plain access next to an atomic one is still a race.".into(),
        },
        MemoryOwner::Object => object_fix(evidence, &lines),
        MemoryOwner::Unknown => Fix {
            kind: FixKind::PyMutex,
            action: "Guard this shared heap data with a `PyMutex` stored next to it, and take it in every function that reads or writes it.".into(),
            reason: "The raced memory is shared heap data that belongs to no Python object the evidence names.".into(),
        },
    }
}

fn global_fix(evidence: &RaceEvidence, name: &str, atomic_update: bool, word_sized: bool) -> Fix {
    let lazy_init = evidence
        .statics
        .iter()
        .any(|f| f.rule == Rule::LazyInitRace);
    if lazy_init {
        return Fix {
            kind: FixKind::ModuleState,
            action: format!(
                "Build `{name}` once in the module's exec slot and keep it in module state (or guard its check-and-set with a static `PyMutex`)."
            ),
            reason: "The static pass found a lazy initialization (check, then set) of this variable, and TSan saw two threads in it at once.".into(),
        };
    }
    if atomic_update {
        return Fix {
            kind: FixKind::Atomic,
            action: format!(
                "Update `{name}` with an atomic read-modify-write (`_Py_atomic_add_*` or C11 `atomic_fetch_add`) and read it with an atomic load."
            ),
            reason: "It is one machine word changed by read-modify-write (`++`, `+=`); concurrent updates are lost without an atomic.".into(),
        };
    }
    if !word_sized && written_by_bulk_copy(evidence.root_cause) {
        return Fix {
            kind: FixKind::ThreadLocal,
            action: format!(
                "Make `{name}` thread-local (`_Thread_local` / `Py_tss_t`) or a local buffer: each call only needs its own scratch space."
            ),
            reason: "The shared static buffer is filled wholesale (memcpy/memset/string functions) by each caller: a scratch buffer, not shared state.".into(),
        };
    }
    Fix {
        kind: FixKind::PyMutex,
        action: format!(
            "Guard every read and write of `{name}` with one static `PyMutex` (or move it into module state with its own lock)."
        ),
        reason: "It is module-wide state read and written by several threads; one lock keeps its updates whole.".into(),
    }
}

fn module_state_fix(atomic_update: bool) -> Fix {
    if atomic_update {
        return Fix {
            kind: FixKind::Atomic,
            action: "Update this module-state field with an atomic read-modify-write (`_Py_atomic_add_uint64` or C11 `atomic_fetch_add`) and read it atomically.".into(),
            reason: "The raced memory is the module's state (allocated at module creation), shared by every thread; it is one word changed by `++`/`+=`.".into(),
        };
    }
    Fix {
        kind: FixKind::PyMutex,
        action: "Add a `PyMutex` to the module state and hold it around every access to this field.".into(),
        reason: "The raced memory is the module's state (allocated at module creation), shared by every thread and every object of the module.".into(),
    }
}

fn object_fix(evidence: &RaceEvidence, lines: &[String]) -> Fix {
    let methods = match evidence.entry_points.as_slice() {
        [] => format!("`{}`", side_functions(evidence.root_cause).join("`, `")),
        names => names
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", "),
    };
    let other = match lines {
        [first, second] => second_object(first, second),
        _ => None,
    };
    if let Some(other) = other {
        return Fix {
            kind: FixKind::TwoObjectCriticalSection,
            action: format!(
                "Lock both objects with `Py_BEGIN_CRITICAL_SECTION2(self, {other})` where `{other}` is read, and hold `Py_BEGIN_CRITICAL_SECTION(self)` in the writers ({methods})."
            ),
            reason: format!(
                "One side reaches the field through `{other}`, a second object of the method, while another thread mutates that object through `self`: locking only `self` does not order the two."
            ),
        };
    }
    Fix {
        kind: FixKind::CriticalSection,
        action: format!(
            "Hold `Py_BEGIN_CRITICAL_SECTION(self)` … `Py_END_CRITICAL_SECTION()` around the bodies of {methods} (Argument Clinic: `@critical_section`), readers included."
        ),
        reason: "Both sides reach the memory through one Python object's fields in its methods: the object's own critical section orders them.".into(),
    }
}

/// Who owns the raced memory.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum MemoryOwner {
    /// A Python object or a buffer one owns.
    Object,
    /// The module's state.
    Module,
    Unknown,
}

/// The allocation stack decides when TSan printed one; objects and buffers from mimalloc (the
/// free-threaded allocator) have none, so the static pass's view of the racing code and the
/// racing lines themselves decide then.
pub(crate) fn memory_owner(evidence: &RaceEvidence) -> MemoryOwner {
    if let Some(owner) = heap_owner(evidence.root_cause) {
        return owner;
    }
    let lines = own_access_lines(evidence);
    let rules: Vec<Rule> = evidence.statics.iter().map(|f| f.rule).collect();
    if rules.contains(&Rule::ModuleStateMutation) {
        return MemoryOwner::Module;
    }
    let field_rules = [
        Rule::UnlockedFieldWrite,
        Rule::UnlockedFieldRead,
        Rule::FieldInAllowThreads,
    ];
    if rules.iter().any(|r| field_rules.contains(r)) {
        return MemoryOwner::Object;
    }
    let bases: Vec<String> = lines
        .iter()
        .flat_map(|l| members(l))
        .map(|m| m.base)
        .collect();
    if bases.iter().any(|b| b.ends_with("state") || b == "st") {
        MemoryOwner::Module
    } else if evidence.entry_type.is_some() {
        MemoryOwner::Object
    } else {
        MemoryOwner::Unknown
    }
}

/// From the `Location is heap block` allocation stack, when TSan printed one.
fn heap_owner(rc: &RootCause) -> Option<MemoryOwner> {
    let stack = rc.representative.locations.iter().find_map(|l| match l {
        Location::Heap { stack, .. } => Some(stack),
        _ => None,
    })?;
    let called = |names: &[&str]| {
        stack
            .frames
            .iter()
            .filter_map(|f| f.function.as_deref())
            .any(|f| names.contains(&f))
    };
    let extension_allocated = stack
        .frames
        .iter()
        .any(|f| f.origin == FrameOrigin::Extension);
    Some(if called(MODULE_ALLOCATORS) {
        MemoryOwner::Module
    } else if called(OBJECT_ALLOCATORS) || extension_allocated {
        MemoryOwner::Object
    } else {
        MemoryOwner::Unknown
    })
}

/// `x++`, `++x`, `x--`, `x += n`, … on a line.
fn is_read_modify_write(line: &str) -> bool {
    let code = line.split("//").next().unwrap_or(line);
    code.contains("++")
        || code.contains("--")
        || ["+=", "-=", "|=", "&=", "^=", "*="]
            .iter()
            .any(|op| code.contains(op))
}

/// Two sides that reach the same field through different pointers (`other->size` against
/// `self->size`): the race spans two objects. Returns the pointer that is not `self`.
pub(crate) fn second_object(first: &str, second: &str) -> Option<String> {
    let (a, b) = (members(first), members(second));
    a.iter().find_map(|ma| {
        b.iter()
            .find(|mb| ma.field == mb.field && ma.base != mb.base)
            .map(|mb| {
                if ma.base == "self" {
                    &mb.base
                } else {
                    &ma.base
                }
                .clone()
            })
    })
}

fn access_size(rc: &RootCause) -> Option<u32> {
    rc.representative
        .accesses
        .iter()
        .filter_map(|a| a.size)
        .max()
}

fn written_by_bulk_copy(rc: &RootCause) -> bool {
    rc.sides
        .iter()
        .filter_map(|s| s.top_frame.as_ref())
        .any(|f| {
            f.function.as_deref().is_some_and(|name| {
                [
                    "memcpy", "memmove", "memset", "strcpy", "strncpy", "strcat", "sprintf",
                    "snprintf",
                ]
                .iter()
                .any(|bulk| name.trim_start_matches('_').starts_with(bulk))
            })
        })
        && rc
            .sides
            .iter()
            .flat_map(|s| &s.access_kinds)
            .any(|k| *k == AccessKind::Write)
}

/// The racing lines of the sides whose access is the line's own. A side whose innermost frame
/// is a callee (an allocator filling a new object, `tp_new`) raced inside that callee: the
/// members its line names say nothing about the memory.
fn own_access_lines(evidence: &RaceEvidence) -> Vec<String> {
    (evidence.root_cause.sides.iter())
        .filter(|s| s.top_frame.is_none())
        .filter_map(|s| s.frame.as_ref())
        .map(|f| racing_line(f, evidence.tree).unwrap_or_default())
        .collect()
}

fn side_frames(rc: &RootCause) -> impl Iterator<Item = &Frame> {
    rc.sides.iter().filter_map(|s| s.frame.as_ref())
}

/// The distinct functions of the sides' extension frames.
pub fn side_functions(rc: &RootCause) -> Vec<String> {
    let mut functions: Vec<String> = side_frames(rc)
        .filter_map(|f| f.function.as_deref().map(str::to_string))
        .collect();
    functions.dedup();
    if functions.is_empty() {
        functions.push("?".into());
    }
    functions
}

/// The fix a static finding asks for: the remedy its own advice names first.
pub fn static_fix(finding: &StaticFinding) -> Fix {
    const KEYWORDS: &[(&str, FixKind)] = &[
        ("Py_mod_gil", FixKind::DeclareGil),
        ("SetGIL", FixKind::DeclareGil),
        ("CRITICAL_SECTION2", FixKind::TwoObjectCriticalSection),
        ("critical section", FixKind::CriticalSection),
        ("CRITICAL_SECTION", FixKind::CriticalSection),
        ("@critical_section", FixKind::CriticalSection),
        ("Ref`", FixKind::StrongReferenceApi),
        ("strong reference", FixKind::StrongReferenceApi),
        ("atomic", FixKind::Atomic),
        ("PyMutex", FixKind::PyMutex),
        ("module state", FixKind::ModuleState),
        ("exec function", FixKind::ModuleState),
        ("_Thread_local", FixKind::ThreadLocal),
        ("thread-local", FixKind::ThreadLocal),
        ("_r`", FixKind::ThreadLocal),
    ];
    let kind = KEYWORDS
        .iter()
        .filter_map(|(word, kind)| finding.fix.find(word).map(|at| (at, *kind)))
        .min_by_key(|(at, _)| *at)
        .map_or(FixKind::Investigate, |(_, kind)| kind);
    Fix {
        kind,
        action: finding.fix.clone(),
        reason: finding.message.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_modify_write_lines() {
        assert!(is_read_modify_write("    call_count++;  /* comment */"));
        assert!(is_read_modify_write("    return ++state->global_version;"));
        assert!(is_read_modify_write("    ledger_balance += amount;"));
        assert!(!is_read_modify_write("    self->capacity = capacity;"));
    }

    #[test]
    fn second_object_needs_one_field_through_two_pointers() {
        let push = "    self->items[self->size++] = value;";
        let extend = "        Py_ssize_t n = other->size;";
        assert_eq!(second_object(extend, push).as_deref(), Some("other"));
        assert_eq!(second_object(push, extend).as_deref(), Some("other"));
        assert_eq!(second_object(push, push), None);
        assert_eq!(
            second_object("md->keys->indices[i] = ix;", "ix = keys->indices[i];"),
            None
        );
    }
}
