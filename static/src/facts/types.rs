//! The plain data a file's walk leaves behind: files, functions, events and the locks in
//! force at each.

use crate::model::Span;

/// Everything extracted from one file.
#[derive(Debug, Default)]
pub(crate) struct FileFacts {
    pub globals: Vec<GlobalVar>,
    pub functions: Vec<FunctionFacts>,
    pub structs: Vec<StructDef>,
    pub tables: Vec<Table>,
    /// `#define X_METHODDEF {"name", func, ...}` from Argument Clinic: macro → (name, func).
    pub methoddef_macros: Vec<(String, String, String)>,
    /// Names declared `extern` (a variable defined in another file is visible only through one).
    pub externs: Vec<String>,
    /// Quoted `#include`s, as written.
    pub includes: Vec<String>,
    /// `#define MD(op) ((T *)(op))` and `#define SELF ((T *)self)`: macro → T.
    pub cast_macros: Vec<(String, String)>,
    /// Function declarations without a body (`int hash_update(ctx_t *ctx, const char *p);`).
    pub prototypes: Vec<Prototype>,
    /// `#define MODULE_NAME "_ext"` (and `#define FULL MODULE_NAME ".Proxy"`).
    pub string_macros: Vec<(String, Vec<StrPart>)>,
}

/// A declared function's parameters, as far as writing through them goes.
#[derive(Debug, Clone)]
pub(crate) struct Prototype {
    pub name: String,
    /// Per parameter: a pointer to something not `const` (the callee may write through it).
    pub writable_pointer: Vec<bool>,
}

/// A file-scope variable or a `static` local.
#[derive(Debug, Clone)]
pub(crate) struct GlobalVar {
    pub name: String,
    /// The owning function of a `static` local.
    pub function: Option<String>,
    pub is_pointer: bool,
    pub is_array: bool,
    pub is_const: bool,
    pub is_static: bool,
    /// `_Thread_local`, `_Atomic`, a lock type...: why this variable needs no lock.
    pub inherent_protection: Option<String>,
}

/// A struct definition (by tag and by typedef name).
#[derive(Debug, Clone)]
pub(crate) struct StructDef {
    pub names: Vec<String>,
    /// (field, type name, full declaration text)
    pub fields: Vec<(String, String, String)>,
    /// The type of the first field when it is embedded (not a pointer): a base object struct.
    pub first_field_type: Option<String>,
    pub has_object_head: bool,
}

/// A file-scope variable with an initializer list (method tables, type specs, slots...).
#[derive(Debug, Clone)]
pub(crate) struct Table {
    pub name: String,
    pub type_name: String,
    pub line: usize,
    pub values: Vec<InitValue>,
}

#[derive(Debug, Clone)]
pub(crate) struct InitValue {
    pub designator: Option<String>,
    pub value: Value,
    pub line: usize,
}

#[derive(Debug, Clone)]
pub(crate) enum Value {
    Ident(String),
    Str(String),
    /// `MODULE_NAME ".Proxy"`: string literals and macros, resolved once all files are known.
    Concat(Vec<StrPart>),
    List(Vec<InitValue>),
    /// `sizeof(T)`: keeps T.
    SizeOf(String),
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StrPart {
    Literal(String),
    Macro(String),
}

#[derive(Debug, Clone)]
pub(crate) struct Param {
    pub name: String,
    pub type_name: String,
}

#[derive(Debug, Default)]
pub(crate) struct FunctionFacts {
    /// Index in the program's function list (set by `Program::new`).
    pub id: usize,
    pub name: String,
    /// Where the function's name is, in its definition.
    pub span: Span,
    pub is_static: bool,
    pub params: Vec<Param>,
    pub events: Vec<Event>,
    pub guards: Vec<Guard>,
    /// Locals assigned from a field: local → field access (for "old = self->buf; ... free(old)"),
    /// with the protection in force when the field was read.
    pub aliases: Vec<(String, Access, Guard)>,
    /// Locals holding an object this function just created (not yet shared).
    pub fresh: Vec<String>,
    /// Every value given to a local, in order (which pointer a local copies).
    pub local_sources: Vec<LocalSource>,
    /// Locals written through: `*p = v`, `p[i] = v` (`p->x = v` is an access event).
    pub deref_writes: Vec<(String, AccessKind)>,
}

/// A value given to a local: `md = (T *)self` and `md = MD(self)` copy `self`.
#[derive(Debug, Clone)]
pub(crate) struct LocalSource {
    pub local: String,
    /// The identifier copied, if the value was one (after casts, or as a one-argument call).
    pub copied: Option<String>,
    /// The macro or function the identifier was passed through (`MD`).
    pub through: Option<String>,
}

impl FunctionFacts {
    pub fn guard(&self, event: &Event) -> &Guard {
        &self.guards[event.guard]
    }
}

/// Prefix of a `root_type` that is the name of a macro (or a global) to look up as a cast
/// macro (`#define MD(op) ((T *)(op))`) once all files are known.
pub(crate) const CAST_MACRO: &str = "macro:";

/// A path like `self->ht->keys`: `root` is the first identifier, `fields` the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Access {
    pub root: String,
    /// The declared (or cast) type of `root` without `*`/`const`/`struct`.
    pub root_type: Option<String>,
    /// `root` is a parameter or local of the function (not a global).
    pub root_is_local: bool,
    pub fields: Vec<String>,
}

impl Access {
    pub fn field(&self) -> Option<&str> {
        self.fields.last().map(String::as_str)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AccessKind {
    Read,
    Write,
    /// `x++`, `x += 1`: read-modify-write.
    Update,
    /// The field's value is released (`free(self->buf)`, `Py_SETREF(self->x, ...)`, `realloc`).
    Release,
}

#[derive(Debug, Clone)]
pub(crate) enum EventKind {
    /// A variable or field access. Plain variable accesses are recorded for non-locals only.
    Access {
        kind: AccessKind,
        target: Access,
    },
    Call {
        callee: String,
        args: Vec<String>,
    },
    /// `if (!x) { x = ...; }` on a non-local `x`.
    LazyInit {
        var: String,
    },
    Return,
    Goto {
        label: String,
    },
    Label {
        name: String,
    },
    /// `break`/`continue` that leaves the critical section it is in.
    LoopEscape,
}

#[derive(Debug, Clone)]
pub(crate) struct Event {
    pub kind: EventKind,
    pub span: Span,
    pub guard: usize,
    /// Inside the arguments of an atomic operation.
    pub atomic: bool,
    /// The accessed field or global is an argument of this call (which may write through it).
    pub passed_to: Option<PassedTo>,
}

/// A field or global handed to a call: `f(self->state)`, `f(&self->ctx)`, `f(&counter)`.
#[derive(Debug, Clone)]
pub(crate) struct PassedTo {
    pub callee: String,
    /// Which argument.
    pub index: usize,
    /// `&x`: its address, so a pointer whatever its type.
    pub by_address: bool,
    /// Set by the program once it knows the callee writes through that argument.
    pub writes: Option<CalleeWrite>,
}

/// How the pass knows a callee writes through a pointer argument, strongest evidence first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum CalleeWrite {
    /// The extension's own function writes through that parameter (its body says so).
    Body,
    /// A visible prototype takes a non-`const` pointer there (or a libc function known to).
    Prototype,
    /// No prototype in sight; the callee is named like a mutator (`*_update`, `*_add`).
    Name,
}

/// A critical section open at some point.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Section {
    pub objects: Vec<String>,
    /// Unique within the function.
    pub region: usize,
    /// The macro form (lexically scoped, so any jump out of it is a bug).
    pub from_macro: bool,
    pub text: String,
    pub(super) breakable_depth: usize,
}

/// The protection in force at an event.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Guard {
    pub sections: Vec<Section>,
    /// (lock expression, the call that took it)
    pub mutexes: Vec<(String, String)>,
    /// Between `Py_BEGIN_ALLOW_THREADS` and its END.
    pub nogil: bool,
}

impl Guard {
    /// A description of the lock held, if any.
    pub fn protection(&self) -> Option<String> {
        if let Some(section) = self.sections.last() {
            return Some(section.text.clone());
        }
        self.mutexes.last().map(|(_, call)| call.clone())
    }

    pub fn holds_section_on(&self, object: &str) -> bool {
        let object = strip_object_expr(object);
        self.sections
            .iter()
            .any(|s| s.objects.iter().any(|o| strip_object_expr(o) == object))
    }
}

/// `(PyObject *)self` → `self`; `&x` → `x`.
pub(crate) fn strip_object_expr(text: &str) -> &str {
    let mut t = text.trim();
    loop {
        let before = t;
        if let Some(rest) = t.strip_prefix('&') {
            t = rest.trim_start();
        }
        if t.starts_with('(') {
            if let Some(close) = t.find(')') {
                let inner = &t[1..close];
                if close + 1 < t.len()
                    && inner
                        .chars()
                        .all(|c| c.is_alphanumeric() || "_* ".contains(c))
                {
                    t = t[close + 1..].trim_start(); // a cast
                } else if t.ends_with(')') && close == t.len() - 1 {
                    t = inner.trim();
                }
            }
        }
        if t == before {
            return t;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_expressions_lose_casts_and_address_of() {
        assert_eq!(strip_object_expr("(PyObject *)self"), "self");
        assert_eq!(strip_object_expr("&self->mutex"), "self->mutex");
        assert_eq!(strip_object_expr("(self)"), "self");
    }
}
