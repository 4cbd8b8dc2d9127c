//! Which reports are the interpreter's own business rather than the extension's, and why.
//!
//! A race is the extension's when one of its accesses is the extension's own code, or
//! interpreter code the extension called (a CPython API on its objects, a borrowed reference
//! it handed on). It is not when every access is inside an interpreter mechanism that races
//! by design, such as the allocator clearing reused memory while another thread's
//! speculative incref reads the stale object, or is interpreter code the extension never
//! called. The mechanisms are defined by where the access happens in CPython, never by the
//! extension's names.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::classify::is_cpython_header;
use crate::cluster::nearest_extension_frame;
use crate::model::{Frame, FrameOrigin, ReportKind, Stack};
use crate::suppress::Suppressions;

/// Why a root cause is kept apart from the extension's findings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum InternalReason {
    /// Every frame of its stacks outside the TSan runtime and libc is the interpreter's.
    InterpreterOnly,
    /// A `race_top:` entry of the run's suppressions matches an access stack's top frame as
    /// [`Stack::effective_top`] finds it (TSan itself compares the entry with the innermost
    /// inlined helper only).
    Suppressed {
        /// The entry as written, `race_top:PATTERN`.
        entry: String,
        /// The frame it matched.
        frame: Frame,
    },
    /// No access is the extension's: each is inside an interpreter mechanism, or is
    /// interpreter code the extension did not call.
    Mechanisms {
        /// One per access, in the order of the root cause's sides.
        accesses: Vec<InternalAccess>,
    },
}

/// One access of a [`InternalReason::Mechanisms`] root cause.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InternalAccess {
    /// `None`: interpreter code outside the known mechanisms, with no extension frame below.
    pub mechanism: Option<Mechanism>,
    /// The frame that places the access: the mechanism's, or the stack's effective top.
    pub frame: Frame,
}

/// Interpreter machinery whose accesses race by design in free-threaded CPython.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mechanism {
    /// The object allocator handing out, clearing or initializing fresh memory (obmalloc,
    /// mimalloc, `tp_alloc`, object header initialization).
    Allocator,
    /// The allocator freeing or reallocating a block its caller passed in. Called from the
    /// extension, that is the extension's own memory: it counts as the extension's, except
    /// against a [`Mechanism::TryIncref`], which tolerates any block being freed.
    Release,
    /// A speculative incref that revalidates its source afterwards (`_Py_TryXGetRef`,
    /// `_Py_TryIncrefCompare`): it may read an object whose memory was freed and reused.
    TryIncref,
    /// The cyclic garbage collector.
    Gc,
    /// String interning: the interpreter-wide table of interned strings and their
    /// immortalization, shared by every caller of `PyDict_SetItemString`, attribute names, …
    Interning,
}

/// Object allocation and initialization of a fresh object's header.
const ALLOCATOR_FUNCTIONS: &[&str] = &[
    "_PyType_AllocNoTrack",
    "PyType_GenericAlloc",
    "_PyObject_GC_New",
    "_PyObject_GC_NewVar",
    "PyUnstable_Object_GC_NewWithExtraData",
    "gc_alloc",
    "_PyObject_New",
    "_PyObject_NewVar",
    "PyObject_Init",
    "PyObject_InitVar",
    "_PyObject_Init",
    "_PyObject_InitVar",
    "_Py_NewReference",
    "_Py_NewReferenceNoTotal",
    "new_reference",
];

/// obmalloc and the mimalloc sources and headers CPython bundles.
const ALLOCATOR_FILES: &[&str] = &["Objects/obmalloc.c", "/mimalloc/"];

/// The allocator's entry points that take a block from their caller: what races inside them
/// is that caller's block.
const RELEASE_FUNCTIONS: &[&str] = &[
    "PyMem_Realloc",
    "PyMem_RawRealloc",
    "PyObject_Realloc",
    "PyMem_Free",
    "PyMem_RawFree",
    "PyObject_Free",
    "PyObject_GC_Del",
    "_PyMem_FreeDelayed",
    "_PyObject_FreeDelayed",
    "mi_free",
    "mi_realloc",
    "mi_heap_realloc",
];

/// The helpers that take a reference speculatively and check that the source still holds
/// the object (the building blocks they call, `_Py_TryIncrefFast` and friends, also serve
/// ordinary increfs and do not count on their own).
const TRY_INCREF_FUNCTIONS: &[&str] = &[
    "_Py_TryIncrefCompare",
    "_Py_TryIncrefCompareStackRef",
    "_Py_TryXGetRef",
    "_Py_TryXGetStackRef",
];

/// Interning and the interned table's own lookups (found anywhere in the interpreter part of
/// a stack: the racing access is often a dict lookup or an incref deeper inside).
const INTERNING_FUNCTIONS: &[&str] = &[
    "intern_common",
    "immortalize_interned",
    "_PyUnicode_InternImmortal",
    "_PyUnicode_InternMortal",
    "PyUnicode_InternInPlace",
];

const GC_FILES: &[&str] = &[
    "Python/gc_free_threading.c",
    "Python/gc.c",
    "Python/gc_gil.c",
];

impl Mechanism {
    /// The mechanism a frame of interpreter code belongs to, if any.
    pub fn of(frame: &Frame) -> Option<Mechanism> {
        if frame.origin != FrameOrigin::Cpython {
            return None;
        }
        let function = frame.function.as_deref().unwrap_or_default();
        let file = frame.file.as_deref().unwrap_or_default();
        let named = |names: &[&str]| names.iter().any(|name| is_function_named(function, name));
        if named(ALLOCATOR_FUNCTIONS) || ALLOCATOR_FILES.iter().any(|f| file.contains(f)) {
            Some(Mechanism::Allocator)
        } else if named(TRY_INCREF_FUNCTIONS) {
            Some(Mechanism::TryIncref)
        } else if GC_FILES.iter().any(|f| file.ends_with(f)) {
            Some(Mechanism::Gc)
        } else {
            None
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Mechanism::Allocator => "the allocator preparing fresh memory",
            Mechanism::Release => "the allocator freeing or reallocating a block",
            Mechanism::TryIncref => "a speculative incref that revalidates its source",
            Mechanism::Gc => "the garbage collector",
            Mechanism::Interning => "string interning",
        }
    }
}

/// `name`, or a compiler clone of it (`name.part.0`, `name.cold`).
fn is_function_named(function: &str, name: &str) -> bool {
    function
        .strip_prefix(name)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
}

impl Stack {
    /// The top frame a `race_top:` entry means: the innermost frame outside the TSan runtime
    /// that is not a CPython header helper inlined into the frame below it. clang and gcc
    /// print each inlined call as a frame of its own at its caller's address, innermost
    /// first, so `_Py_atomic_load_uintptr_relaxed` ← … ← `_Py_TryXGetRef` ←
    /// `list_get_item_ref` all carry the module offset of `list_get_item_ref`, and that is
    /// the frame returned. Needs classified frames.
    pub fn effective_top(&self) -> Option<&Frame> {
        access_frames(self).last()
    }
}

/// From the innermost frame outside the runtime through [`Stack::effective_top`]: the code
/// that made the access.
fn access_frames(stack: &Stack) -> &[Frame] {
    let frames = &stack.frames;
    let Some(start) = frames
        .iter()
        .position(|f| f.origin != FrameOrigin::TsanRuntime)
    else {
        return &[];
    };
    let mut end = start;
    while end + 1 < frames.len() && is_inlined_header_helper(&frames[end], &frames[end + 1]) {
        end += 1;
    }
    &frames[start..=end]
}

fn is_inlined_header_helper(frame: &Frame, caller: &Frame) -> bool {
    let file = frame.file.as_deref().unwrap_or_default();
    frame.origin == FrameOrigin::Cpython
        && file.ends_with(".h")
        && is_cpython_header(file)
        && same_address(frame, caller)
}

fn same_address(a: &Frame, b: &Frame) -> bool {
    match (a.offset, b.offset) {
        (Some(x), Some(y)) => x == y && a.module == b.module,
        _ => a.pc.is_some() && a.pc == b.pc,
    }
}

/// Whose an access is.
enum Owner {
    /// The racing code is the extension's own (inlined CPython helpers included).
    ExtensionCode,
    /// Interpreter or library code the extension called, outside the mechanisms.
    ExtensionCall,
    /// Not the extension's.
    Internal(InternalAccess),
    /// Another library's code without the extension below it; kept as a root cause.
    Other,
}

impl Owner {
    /// An interpreter access by `mechanism`.
    fn is(&self, mechanism: Mechanism) -> bool {
        matches!(self, Owner::Internal(access) if access.mechanism == Some(mechanism))
    }
}

fn owner(stack: &Stack) -> Owner {
    let frames = access_frames(stack);
    let Some(top) = frames.last() else {
        // `[failed to restore the stack]`: nothing to judge by.
        return Owner::Other;
    };
    if top.origin == FrameOrigin::Extension {
        return Owner::ExtensionCode;
    }
    let mechanism = frames
        .iter()
        .find_map(|frame| Mechanism::of(frame).map(|m| (m, frame)))
        .map(|(mechanism, frame)| match mechanism {
            Mechanism::Allocator if passes_through(stack, RELEASE_FUNCTIONS).is_some() => {
                (Mechanism::Release, frame)
            }
            other => (other, frame),
        })
        .or_else(|| {
            passes_through(stack, INTERNING_FUNCTIONS).map(|frame| (Mechanism::Interning, frame))
        });
    match mechanism {
        Some((mechanism, frame)) => Owner::Internal(InternalAccess {
            mechanism: Some(mechanism),
            frame: frame.clone(),
        }),
        None if nearest_extension_frame(stack).is_some() => Owner::ExtensionCall,
        None if interpreter_only(std::slice::from_ref(&stack)) => Owner::Internal(InternalAccess {
            mechanism: None,
            frame: top.clone(),
        }),
        None => Owner::Other,
    }
}

/// An interned string is the interpreter's: interning makes it immortal with plain stores, so
/// the C-API calls that reference-count it (a `Py_DECREF` inside `PyDict_SetItemString`) race
/// with interning, not with anything the extension could lock. Only the extension's own code
/// touching the string stays its access.
fn with_interning_peers(owners: Vec<Owner>, sides: &[&Stack]) -> Vec<Owner> {
    if !owners.iter().any(|o| o.is(Mechanism::Interning)) {
        return owners;
    }
    (owners.into_iter().zip(sides))
        .map(
            |(owner, stack)| match (owner, access_frames(stack).last()) {
                (Owner::ExtensionCall, Some(top)) => Owner::Internal(InternalAccess {
                    mechanism: Some(Mechanism::Interning),
                    frame: top.clone(),
                }),
                (owner, _) => owner,
            },
        )
        .collect()
}

/// The first frame of the interpreter part of the stack above the extension (all of it
/// without one) that is one of `functions`.
fn passes_through<'s>(stack: &'s Stack, functions: &[&str]) -> Option<&'s Frame> {
    stack
        .frames
        .iter()
        .take_while(|frame| frame.origin != FrameOrigin::Extension)
        .filter(|frame| frame.origin == FrameOrigin::Cpython)
        .find(|frame| {
            let function = frame.function.as_deref().unwrap_or_default();
            functions
                .iter()
                .any(|name| is_function_named(function, name))
        })
}

/// Every frame of `stacks` outside the runtime and libc is the interpreter's (and there is
/// one).
fn interpreter_only(stacks: &[&Stack]) -> bool {
    let mut frames = stacks
        .iter()
        .flat_map(|stack| &stack.frames)
        .filter(|f| !matches!(f.origin, FrameOrigin::TsanRuntime | FrameOrigin::Libc))
        .peekable();
    frames.peek().is_some() && frames.all(|f| f.origin == FrameOrigin::Cpython)
}

/// Why a report with these side stacks (the access stacks when it has accesses) is not the
/// extension's, or `None` when it is.
pub(crate) fn internal_reason(
    kind: &ReportKind,
    sides: &[&Stack],
    are_accesses: bool,
    suppressions: &Suppressions,
) -> Option<InternalReason> {
    if interpreter_only(sides) {
        return Some(InternalReason::InterpreterOnly);
    }
    if !kind.is_race() || !are_accesses {
        return None;
    }
    let owners = with_interning_peers(sides.iter().map(|stack| owner(stack)).collect(), sides);
    if let Some(reason) = suppressed(sides, &owners, suppressions) {
        return Some(reason);
    }
    // A use-after-free's free is the act of whoever freed: never a mechanism's.
    if !matches!(kind, ReportKind::DataRace | ReportKind::DataRaceOnVptr) {
        return None;
    }
    let against_try_incref = owners.iter().any(|o| o.is(Mechanism::TryIncref));
    let accesses = (owners.into_iter().zip(sides))
        .map(|(owner, stack)| match owner {
            // The extension's own block, freed or reallocated by its call.
            Owner::Internal(InternalAccess {
                mechanism: Some(Mechanism::Release),
                ..
            }) if !against_try_incref && nearest_extension_frame(stack).is_some() => None,
            Owner::Internal(access) => Some(access),
            _ => None,
        })
        .collect::<Option<Vec<_>>>()?;
    Some(InternalReason::Mechanisms { accesses })
}

/// A side whose top frame a `race_top:` entry matches, unless another side's racing code is
/// the extension's own: an interpreter function's entry never hides the extension's access.
fn suppressed(
    sides: &[&Stack],
    owners: &[Owner],
    suppressions: &Suppressions,
) -> Option<InternalReason> {
    let extension_code: Vec<usize> = (owners.iter().enumerate())
        .filter(|(_, owner)| matches!(owner, Owner::ExtensionCode))
        .map(|(side, _)| side)
        .collect();
    sides.iter().enumerate().find_map(|(side, stack)| {
        if extension_code.iter().any(|other| *other != side) {
            return None;
        }
        let (entry, frame) = suppressions.matching_top(stack)?;
        Some(InternalReason::Suppressed {
            entry: format!("race_top:{entry}"),
            frame: frame.clone(),
        })
    })
}

/// For people: why the root cause is not the extension's.
impl fmt::Display for InternalReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InternalReason::InterpreterOnly => f.write_str("every frame is the interpreter's"),
            InternalReason::Suppressed { entry, frame } => write!(
                f,
                "`{entry}` of the suppressions matches `{}`",
                frame.describe()
            ),
            InternalReason::Mechanisms { accesses } => {
                let parts: Vec<String> = accesses
                    .iter()
                    .map(|access| match access.mechanism {
                        Some(mechanism) => {
                            format!("{} (`{}`)", mechanism.describe(), access.frame.describe())
                        }
                        None => format!(
                            "interpreter code the extension did not call (`{}`)",
                            access.frame.describe()
                        ),
                    })
                    .collect();
                write!(f, "no access is the extension's: {}", parts.join(" vs "))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(function: &str, file: &str, offset: u64, origin: FrameOrigin) -> Frame {
        Frame {
            function: Some(function.into()),
            file: Some(file.into()),
            module: Some("python3.13t".into()),
            offset: Some(offset),
            origin,
            ..Frame::default()
        }
    }

    fn cpython(function: &str, file: &str, offset: u64) -> Frame {
        frame(function, file, offset, FrameOrigin::Cpython)
    }

    #[test]
    fn only_header_helpers_at_their_callers_address_are_skipped() {
        let inlined = Stack {
            frames: vec![
                frame("__tsan_atomic64_load", "", 0x10, FrameOrigin::TsanRuntime),
                cpython(
                    "_Py_atomic_load_ptr",
                    "/py/./Include/cpython/pyatomic_gcc.h",
                    0x20,
                ),
                cpython(
                    "_Py_TryXGetRef",
                    "/py/./Include/internal/pycore_object.h",
                    0x20,
                ),
                cpython("list_get_item_ref", "/py/Objects/listobject.c", 0x20),
                cpython("list_item", "/py/Objects/listobject.c", 0x30),
            ],
            ..Stack::default()
        };
        let top = inlined.effective_top().unwrap();
        assert_eq!(top.function.as_deref(), Some("list_get_item_ref"));
        // An out-of-line copy of a header function (with the atomic inlined into it) is a
        // real call: it stays the top.
        let mut called = inlined.clone();
        called.frames[1].offset = Some(0x28);
        called.frames[2].offset = Some(0x28);
        let top = called.effective_top().unwrap();
        assert_eq!(top.function.as_deref(), Some("_Py_TryXGetRef"));
    }

    #[test]
    fn mechanisms_by_where_the_access_is() {
        let cases = [
            (
                cpython("_PyType_AllocNoTrack", "/py/Objects/typeobject.c", 1),
                Some(Mechanism::Allocator),
            ),
            (
                cpython("_mi_page_malloc", "/py/Objects/mimalloc/alloc.c", 1),
                Some(Mechanism::Allocator),
            ),
            (
                cpython("new_reference.part.0", "/py/Objects/object.c", 1),
                Some(Mechanism::Allocator),
            ),
            (
                cpython("_Py_TryXGetRef", "/py/Include/internal/pycore_object.h", 1),
                Some(Mechanism::TryIncref),
            ),
            // The building blocks of every incref, taken alone, are no mechanism.
            (
                cpython(
                    "_Py_TryIncrefFast",
                    "/py/Include/internal/pycore_object.h",
                    1,
                ),
                None,
            ),
            (
                cpython("update_refs", "/py/Python/gc_free_threading.c", 1),
                Some(Mechanism::Gc),
            ),
            (
                cpython("list_item_impl", "/py/Objects/listobject.c", 1),
                None,
            ),
            // Extension code is never a mechanism, whatever its name.
            (
                frame("gc_alloc", "/src/ext/ext.c", 1, FrameOrigin::Extension),
                None,
            ),
        ];
        for (frame, expected) in cases {
            assert_eq!(Mechanism::of(&frame), expected, "{}", frame.describe());
        }
    }
}
