//! What calls do, by name: atomics, locks, releases, constructors.

/// Calls whose arguments are accessed atomically.
pub(super) fn is_atomic_api(callee: &str) -> bool {
    callee.starts_with("_Py_atomic_")
        || callee.starts_with("atomic_")
        || callee.starts_with("__atomic_")
        || callee.starts_with("__sync_")
        || callee.starts_with("FT_ATOMIC_")
        || callee.starts_with("Interlocked")
        || callee.starts_with("_Py_atomic")
}

pub(super) fn is_atomic_store(callee: &str) -> bool {
    [
        "store", "add", "sub", "exchange", "compare", "or", "and", "xor", "inc", "dec", "fetch",
        "STORE",
    ]
    .iter()
    .any(|op| callee.contains(op))
}

/// Lock acquisition / release by callee name.
#[derive(Clone, Copy, PartialEq)]
pub(super) enum LockOp {
    Acquire,
    Release,
}

pub(super) fn lock_op(callee: &str) -> Option<LockOp> {
    let lower = callee.to_ascii_lowercase();
    let parts: Vec<&str> = lower.split('_').collect();
    let has = |words: &[&str]| parts.iter().any(|p| words.contains(p));
    if has(&[
        "alloc", "allocate", "free", "new", "init", "destroy", "create", "held", "locked", "is",
    ]) {
        return None;
    }
    // A project's `ENTER_ZLIB(self)` / `LEAVE_ZLIB(self)` lock macros.
    let is_macro = callee
        .chars()
        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    if is_macro && has(&["enter"]) {
        return Some(LockOp::Acquire);
    }
    if is_macro && has(&["leave", "exit"]) {
        return Some(LockOp::Release);
    }
    if has(&[
        "unlock",
        "release",
        "leavecriticalsection",
        "releasesrwlockexclusive",
        "releasesrwlockshared",
    ]) {
        Some(LockOp::Release)
    } else if has(&[
        "lock",
        "acquire",
        "wrlock",
        "rdlock",
        "lockflags",
        "entercriticalsection",
        "acquiresrwlockexclusive",
        "acquiresrwlockshared",
    ]) {
        Some(LockOp::Acquire)
    } else {
        None
    }
}

/// Callees that release the value of their (first) argument.
pub(super) fn is_release_call(callee: &str) -> bool {
    matches!(
        callee,
        "free"
            | "PyMem_Free"
            | "PyMem_RawFree"
            | "PyObject_Free"
            | "PyObject_GC_Del"
            | "PyMem_DEL"
            | "PyMem_Del"
            | "PyObject_Del"
            | "PyObject_DEL"
            | "Py_DECREF"
            | "Py_XDECREF"
            | "Py_CLEAR"
            | "Py_SETREF"
            | "Py_XSETREF"
            | "realloc"
            | "PyMem_Realloc"
            | "PyMem_RawRealloc"
            | "PyObject_Realloc"
            | "PyMem_Resize"
            | "PyMem_RESIZE"
            | "_PyBytes_Resize"
            | "_PyTuple_Resize"
            | "PyUnicode_Resize"
            | "PyBuffer_Release"
    ) || callee.ends_with("_free")
        || callee.ends_with("_Free")
        || callee.ends_with("_dealloc")
}

/// Callees that also write their (first) argument.
pub(super) fn writes_first_arg(callee: &str) -> bool {
    matches!(
        callee,
        "Py_CLEAR" | "Py_SETREF" | "Py_XSETREF" | "PyMem_Resize" | "PyMem_RESIZE"
    )
}

/// Calls whose arguments may be written through by a callee the program judges (the
/// extension's own functions, vendored or external C). CPython's C-API is left out: it
/// synchronizes its own objects, and its reference-counting and lock macros are handled as
/// releases, locks and atomics.
pub(crate) fn may_write_through(callee: &str) -> bool {
    !(callee.starts_with("Py")
        || callee.starts_with("_Py")
        || callee.to_ascii_lowercase().contains("atomic")
        || is_release_call(callee)
        || writes_first_arg(callee)
        || is_atomic_api(callee)
        || lock_op(callee).is_some())
}

/// Calls that create a new, not yet shared object.
pub(super) fn is_constructor_call(callee: &str) -> bool {
    COPYING_CALLS.contains(&callee)
        || callee.ends_with("_New")
        || callee.ends_with("_NewVar")
        || callee.ends_with("_alloc")
        || callee.ends_with("GenericAlloc")
        || callee.ends_with("GenericNew")
        || callee.starts_with("PyObject_GC_New")
        || callee.ends_with("_new")
        || (callee.starts_with("new") && callee.to_ascii_lowercase().contains("object"))
}

/// APIs that always return a new container (a copy), never one the caller passed in.
/// `PySequence_Fast` is not here: it returns a list or tuple argument itself.
const COPYING_CALLS: &[&str] = &[
    "PySequence_List",
    "PySequence_Tuple",
    "PyList_GetSlice",
    "PyList_AsTuple",
    "PyDict_Copy",
    "PyDict_Keys",
    "PyDict_Values",
    "PyDict_Items",
    "PyMapping_Keys",
    "PyMapping_Values",
    "PyMapping_Items",
    "PyObject_Dir",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_calls_are_recognized_by_name() {
        assert!(lock_op("PyMutex_Lock") == Some(LockOp::Acquire));
        assert!(lock_op("pthread_mutex_unlock") == Some(LockOp::Release));
        assert!(lock_op("PyThread_acquire_lock") == Some(LockOp::Acquire));
        assert!(lock_op("PyThread_release_lock") == Some(LockOp::Release));
        assert!(lock_op("PyThread_allocate_lock").is_none());
        assert!(lock_op("clock").is_none());
        assert!(lock_op("ENTER_ZLIB") == Some(LockOp::Acquire));
        assert!(lock_op("LEAVE_ZLIB") == Some(LockOp::Release));
        assert!(lock_op("tree_enter_node").is_none());
    }
}
