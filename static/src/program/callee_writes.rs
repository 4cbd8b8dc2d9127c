//! State mutated through a callee: a field or global passed by pointer to a function that
//! writes through that parameter (`hash_update(self->state, buf, n)`) is written there, at the
//! call. The extension's own functions are judged by their bodies (transitively); functions
//! without a body by a visible prototype (a non-`const` pointer parameter), a few libc
//! functions by what they are documented to do, and, with no prototype in sight, the first
//! argument of a callee named like a mutator (`*_update`, `*_add`, `*_reset`) counts, with
//! low confidence. Pointers to Python objects and to module state are left out: a callee
//! writing their fields is judged where it does so.

use std::collections::HashMap;

use super::Program;
use crate::facts::{
    may_write_through, Access, AccessKind, CalleeWrite, Event, EventKind, FunctionFacts, PassedTo,
};

/// How a function writes through a parameter: the access kind, and the weakest evidence on
/// the way (`Body` < `Prototype` < `Name`).
type Through = (AccessKind, CalleeWrite);

/// function id → parameter index → how it writes through it
type WritesThrough = HashMap<usize, HashMap<usize, Through>>;

/// libc functions that write through their first argument.
const LIBC_WRITERS: &[&str] = &[
    "memset",
    "memcpy",
    "memmove",
    "bzero",
    "explicit_bzero",
    "strcpy",
    "strncpy",
    "strcat",
    "strncat",
    "sprintf",
    "snprintf",
    "vsprintf",
    "vsnprintf",
    "wmemset",
    "wmemcpy",
    "wmemmove",
];

/// Words that name a mutation in a C function name (`SHA256_Update`, `ctx_add`, `buf_reset`).
const MUTATOR_WORDS: &[&str] = &[
    "update",
    "set",
    "add",
    "append",
    "push",
    "pop",
    "insert",
    "remove",
    "delete",
    "clear",
    "reset",
    "init",
    "write",
    "put",
    "feed",
    "final",
    "finalize",
    "finish",
    "fill",
    "store",
    "incr",
    "increment",
    "decr",
    "decrement",
    "extend",
    "absorb",
    "accumulate",
];

/// Words that make a name a query even next to a mutator word (`last_insert_rowid`,
/// `is_set`, `get_update_count`).
const QUERY_WORDS: &[&str] = &[
    "get", "last", "is", "has", "count", "size", "len", "length", "peek", "query", "find",
    "lookup", "check",
];

fn named_like_mutator(callee: &str) -> bool {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut previous_lower = false;
    for c in callee.chars() {
        if c == '_' || (c.is_ascii_uppercase() && previous_lower) {
            words.push(std::mem::take(&mut word));
        }
        if c != '_' {
            word.push(c.to_ascii_lowercase());
        }
        previous_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
    }
    words.push(word);
    words.iter().any(|w| MUTATOR_WORDS.contains(&w.as_str()))
        && !words.iter().any(|w| QUERY_WORDS.contains(&w.as_str()))
}

/// Update (read-modify-write) over write; the weaker evidence.
fn combine(a: Through, b: Through) -> Through {
    let kind = if a.0 == AccessKind::Update || b.0 == AccessKind::Update {
        AccessKind::Update
    } else {
        AccessKind::Write
    };
    (kind, a.1.max(b.1))
}

fn note(writes: &mut WritesThrough, function: usize, param: usize, how: Through) {
    let entry = writes.entry(function).or_default();
    let merged = entry.get(&param).map_or(how, |old| combine(*old, how));
    entry.insert(param, merged);
}

/// Who a call's argument goes to: the extension's own function (parameter `index` of `id`,
/// judged by the fixed point), or a function judged once and for all.
#[derive(Clone, Copy)]
enum Callee {
    Own { id: usize, index: usize },
    Judged(Option<Through>),
}

/// A call that may write through state: a field or global passed to it (`event`), and/or a
/// parameter of the calling function handed on (`param`).
struct Site {
    function: usize,
    event: Option<usize>,
    param: Option<usize>,
    callee: Callee,
}

impl Program {
    /// Fixed point: which parameters each function writes through, and so which passed
    /// fields and globals are written at their call; those accesses become writes.
    pub(super) fn resolve_callee_writes(&mut self) {
        let prototypes: HashMap<&str, &[bool]> = self
            .files
            .iter()
            .flat_map(|f| f.facts.prototypes.iter())
            .map(|p| (p.name.as_str(), p.writable_pointer.as_slice()))
            .collect();
        let (mut through, sites) = self.write_sites(&prototypes);
        let how = |site: &Site, through: &WritesThrough| match site.callee {
            Callee::Own { id, index } => through.get(&id)?.get(&index).copied(),
            Callee::Judged(how) => how,
        };
        for _ in 0..16 {
            let before = through.clone();
            for site in &sites {
                if let (Some(param), Some(how)) = (site.param, how(site, &through)) {
                    note(&mut through, site.function, param, how);
                }
            }
            if through == before {
                break;
            }
        }
        let written: Vec<(usize, usize, Through)> = sites
            .iter()
            .filter_map(|site| Some((site.function, site.event?, how(site, &through)?)))
            .collect();
        for (function, event, (kind, how)) in written {
            let (file, index) = self.ids[function];
            let event = &mut self.files[file].facts.functions[index].events[event];
            if let EventKind::Access { kind: access, .. } = &mut event.kind {
                *access = kind;
            }
            if let Some(p) = &mut event.passed_to {
                p.writes = Some(how);
            }
        }
    }

    /// The writes through parameters each function makes itself, and the calls that may add
    /// more once their callees are judged.
    fn write_sites(&self, prototypes: &HashMap<&str, &[bool]>) -> (WritesThrough, Vec<Site>) {
        let mut direct = WritesThrough::new();
        let mut sites = Vec::new();
        for (file, func) in self.functions() {
            let param_of = |expr: &str| {
                let root = self.object_root(func, expr);
                func.params.iter().position(|p| p.name == root)
            };
            for (i, event) in func.events.iter().enumerate() {
                match (&event.kind, &event.passed_to) {
                    (EventKind::Access { target, .. }, Some(passed)) => {
                        if !self.passes_pointer(file, func, target, passed) {
                            continue;
                        }
                        let callee = self.callee(file, &passed.callee, passed.index, prototypes);
                        let param = (!target.fields.is_empty())
                            .then(|| param_of(&target.root))
                            .flatten();
                        sites.push(Site {
                            function: func.id,
                            event: Some(i),
                            param,
                            callee,
                        });
                    }
                    (EventKind::Access { target, .. }, None) if !target.fields.is_empty() => {
                        if let (Some(kind), Some(param)) =
                            (written_kind(event), param_of(&target.root))
                        {
                            note(&mut direct, func.id, param, (kind, CalleeWrite::Body));
                        }
                    }
                    (EventKind::Call { callee, args }, _) => {
                        for (index, arg) in args.iter().enumerate() {
                            let Some(param) = param_of(arg) else { continue };
                            let callee = self.callee(file, callee, index, prototypes);
                            if !matches!(callee, Callee::Judged(None)) {
                                sites.push(Site {
                                    function: func.id,
                                    event: None,
                                    param: Some(param),
                                    callee,
                                });
                            }
                        }
                    }
                    _ => {}
                }
            }
            for (local, kind) in &func.deref_writes {
                if let Some(param) = param_of(local) {
                    note(&mut direct, func.id, param, (*kind, CalleeWrite::Body));
                }
            }
        }
        (direct, sites)
    }

    /// Who argument `index` of a call to `callee` (from `file`) goes to, judged right away
    /// unless it is the extension's own function.
    fn callee(
        &self,
        file: usize,
        callee: &str,
        index: usize,
        prototypes: &HashMap<&str, &[bool]>,
    ) -> Callee {
        if !may_write_through(callee) {
            return Callee::Judged(None);
        }
        if let Some(id) = self.resolve_function(file, callee) {
            return Callee::Own { id, index };
        }
        let how = if let Some(writable) = prototypes.get(callee) {
            writable
                .get(index)
                .copied()
                .unwrap_or(false)
                .then_some((AccessKind::Update, CalleeWrite::Prototype))
        } else if index != 0 {
            None
        } else if LIBC_WRITERS.contains(&callee) {
            Some((AccessKind::Write, CalleeWrite::Prototype))
        } else {
            named_like_mutator(callee).then_some((AccessKind::Update, CalleeWrite::Name))
        };
        Callee::Judged(how)
    }

    /// The call gets a pointer to the state, not a copy of it: `&x`, a pointer or array field
    /// or global. Pointers to Python objects are left out (see the module doc).
    fn passes_pointer(
        &self,
        file: usize,
        func: &FunctionFacts,
        target: &Access,
        passed: &PassedTo,
    ) -> bool {
        let Some(field) = target.field() else {
            let global = self.resolve_global(file, &func.name, &target.root);
            return global.is_some_and(|(_, g)| passed.by_address || g.is_pointer || g.is_array);
        };
        let Some(container) = self.container_type(target) else {
            return false;
        };
        let Some((_, type_name, declaration)) = self
            .struct_def(&container)
            .and_then(|s| s.fields.iter().find(|(n, _, _)| n == field))
        else {
            return false;
        };
        if self.is_object_type(type_name)
            || super::is_cpython_object_type(type_name)
            || self.module_state_types.contains(type_name)
        {
            return false; // judged where the callee writes its fields
        }
        passed.by_address || declaration.contains('*') || declaration.contains('[')
    }
}

/// A direct write of the event's target (not a read, not a pass to a call).
fn written_kind(event: &Event) -> Option<AccessKind> {
    match &event.kind {
        EventKind::Access { kind, .. } => match kind {
            AccessKind::Read => None,
            AccessKind::Write => Some(AccessKind::Write),
            AccessKind::Update | AccessKind::Release => Some(AccessKind::Update),
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutator_names_by_word() {
        assert!(named_like_mutator("SHA256_Update"));
        assert!(named_like_mutator("EVP_DigestUpdate"));
        assert!(named_like_mutator("ctx_add"));
        assert!(named_like_mutator("buf_reset"));
        assert!(!named_like_mutator("hash_digest_size"));
        assert!(!named_like_mutator("strlen"));
        assert!(!named_like_mutator("offset_of"));
        assert!(!named_like_mutator("sqlite3_last_insert_rowid"));
        assert!(!named_like_mutator("list_is_set"));
    }
}
