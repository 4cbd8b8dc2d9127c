//! One walk over a file's syntax tree that records everything the rules need, so the tree can
//! be dropped and the rules run over plain data (and across files).

use std::collections::HashMap;
use std::sync::LazyLock;

use regex::Regex;

use tree_sitter::Node;

use crate::model::Span;
use crate::normalize::{CS_BEGIN, CS_END, NOGIL_BEGIN, NOGIL_END, OBJECT_HEAD_FIELD};
use crate::parse::F;

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
    List(Vec<InitValue>),
    /// `sizeof(T)`: keeps T.
    SizeOf(String),
    Other,
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
    /// Locals assigned from a field: local → field access (for "old = self->buf; ... free(old)").
    pub aliases: Vec<(String, Access)>,
    /// Locals holding an object this function just created (not yet shared).
    pub fresh: Vec<String>,
}

impl FunctionFacts {
    pub fn guard(&self, event: &Event) -> &Guard {
        &self.guards[event.guard]
    }
}

/// The body of a cast macro: `((T *)(op))`, `((struct T *)self)`.
static CAST_MACRO_VALUE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^\(?\s*\(\s*(?:const\s+)?(?:struct\s+)?(\w+)\s*\*\s*\)\s*\(?\s*\w+\s*\)?\s*\)?$")
        .expect("valid regex")
});

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
    breakable_depth: usize,
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

pub(crate) fn span_of(node: Node) -> Span {
    let (s, e) = (node.start_position(), node.end_position());
    Span {
        line: s.row + 1,
        column: s.column + 1,
        end_line: e.row + 1,
        end_column: e.column + 1,
    }
}

/// Extracts the facts of one file. `src` is the normalized text, `original` the file as written
/// (same length) for quoting macros.
pub(crate) fn extract(root: Node, src: &[u8], original: &[u8]) -> FileFacts {
    let mut top = TopLevel {
        src,
        original,
        facts: FileFacts::default(),
    };
    top.visit_container(root);
    top.facts
}

struct TopLevel<'a> {
    src: &'a [u8],
    original: &'a [u8],
    facts: FileFacts,
}

fn text<'a>(node: Node, src: &'a [u8]) -> &'a str {
    std::str::from_utf8(&src[node.byte_range()]).unwrap_or("")
}

impl<'a> TopLevel<'a> {
    fn text(&self, node: Node) -> &'a str {
        text(node, self.src)
    }

    fn visit_container(&mut self, node: Node) {
        let mut cursor = node.walk();
        for child in node.named_children(&mut cursor) {
            match child.kind() {
                "function_definition" => self.function(child),
                "declaration" => self.declaration(child, None),
                "type_definition" => self.type_definition(child),
                "struct_specifier" => self.struct_specifier(child, Vec::new()),
                "preproc_def" | "preproc_function_def" => self.preproc_def(child),
                "preproc_include" => self.include(child),
                "expression_statement" => {} // stray macro calls at file scope
                kind if kind.starts_with("preproc_") && kind != "preproc_call" => {
                    for part in live_parts(child, self.src) {
                        self.visit_part(part);
                    }
                }
                kind if crate::parse::is_container(kind) => self.visit_container(child),
                _ => {}
            }
        }
    }

    /// One item of a live preprocessor branch.
    fn visit_part(&mut self, node: Node) {
        match node.kind() {
            "function_definition" => self.function(node),
            "declaration" => self.declaration(node, None),
            "type_definition" => self.type_definition(node),
            "struct_specifier" => self.struct_specifier(node, Vec::new()),
            "preproc_def" | "preproc_function_def" => self.preproc_def(node),
            "preproc_include" => self.include(node),
            kind if kind.starts_with("preproc_") => {
                for part in live_parts(node, self.src) {
                    self.visit_part(part);
                }
            }
            kind if crate::parse::is_container(kind) => self.visit_container(node),
            _ => {}
        }
    }

    /// `#include "local.h"` (not `<system.h>`).
    fn include(&mut self, node: Node) {
        if let Some(path) = node.child_by_field_id(F.path.get()) {
            if path.kind() == "string_literal" {
                self.facts.includes.push(string_value(path, self.src));
            }
        }
    }

    fn preproc_def(&mut self, node: Node) {
        let (Some(name), Some(value)) = (
            node.child_by_field_id(F.name.get()),
            node.child_by_field_id(F.value.get()),
        ) else {
            return;
        };
        let name = self.text(name);
        if let Some(cast) = CAST_MACRO_VALUE.captures(self.text(value).trim()) {
            self.facts
                .cast_macros
                .push((name.to_string(), cast[1].to_string()));
            return;
        }
        if !name.ends_with("_METHODDEF") {
            return;
        }
        if let Some((python, c_function)) = parse_methoddef(self.text(value)) {
            self.facts
                .methoddef_macros
                .push((name.to_string(), python, c_function));
        }
    }

    fn type_definition(&mut self, node: Node) {
        let mut names = Vec::new();
        let mut cursor = node.walk();
        for decl in node.children_by_field_id(F.declarator, &mut cursor) {
            if decl.kind() == "type_identifier" {
                names.push(self.text(decl).to_string());
            }
        }
        if let Some(ty) = node.child_by_field_id(F.type_.get()) {
            if ty.kind() == "struct_specifier" {
                self.struct_specifier(ty, names);
            }
        }
    }

    fn struct_specifier(&mut self, node: Node, mut names: Vec<String>) {
        let Some(body) = node.child_by_field_id(F.body.get()) else {
            return;
        };
        if let Some(tag) = node.child_by_field_id(F.name.get()) {
            names.push(self.text(tag).to_string());
        }
        let mut fields = Vec::new();
        let mut first_field_type = None;
        let mut cursor = body.walk();
        for field in body.named_children(&mut cursor) {
            if field.kind() != "field_declaration" {
                continue;
            }
            let type_name = field
                .child_by_field_id(F.type_.get())
                .map(|t| base_type_name(self.text(t)))
                .unwrap_or_default();
            let mut c2 = field.walk();
            for decl in field.children_by_field_id(F.declarator, &mut c2) {
                if let Some(name) = declarator_name(decl, self.src) {
                    if fields.is_empty() && decl.kind() == "field_identifier" {
                        first_field_type = Some(type_name.clone());
                    }
                    fields.push((
                        name.to_string(),
                        type_name.clone(),
                        self.text(field).to_string(),
                    ));
                }
            }
        }
        if names.is_empty() {
            return;
        }
        let has_object_head = fields
            .first()
            .is_some_and(|(n, _, _)| n.starts_with(OBJECT_HEAD_FIELD));
        self.facts.structs.push(StructDef {
            names,
            fields,
            first_field_type,
            has_object_head,
        });
    }

    /// A file-scope declaration, or a `static` local when `function` is set.
    fn declaration(&mut self, node: Node, function: Option<&str>) {
        let specifiers = Specifiers::of(node, self.src);
        if specifiers.is_extern && function.is_none() {
            let mut cursor = node.walk();
            for decl in node.children_by_field_id(F.declarator, &mut cursor) {
                if let Some(name) = declarator_name(decl, self.src) {
                    self.facts.externs.push(name.to_string());
                }
            }
        }
        if specifiers.is_extern || specifiers.is_typedef {
            return;
        }
        if function.is_some() && !specifiers.is_static {
            return;
        }
        let type_name = node
            .child_by_field_id(F.type_.get())
            .map(|t| base_type_name(self.text(t)))
            .unwrap_or_default();
        if type_name.is_empty() {
            return;
        }
        if let Some(ty) = node.child_by_field_id(F.type_.get()) {
            if ty.kind() == "struct_specifier" {
                self.struct_specifier(ty, Vec::new());
            }
        }
        let mut cursor = node.walk();
        for decl in node.children_by_field_id(F.declarator, &mut cursor) {
            let (target, value) = match decl.kind() {
                "init_declarator" => (
                    decl.child_by_field_id(F.declarator.get()),
                    decl.child_by_field_id(F.value.get()),
                ),
                _ => (Some(decl), None),
            };
            let Some(target) = target else { continue };
            if contains_kind(target, "function_declarator") {
                continue; // a prototype
            }
            let Some(name) = declarator_name(target, self.src) else {
                continue;
            };
            let is_pointer = contains_kind(target, "pointer_declarator");
            let is_array = contains_kind(target, "array_declarator");
            if let (Some(value), None) = (value, function) {
                if value.kind() == "initializer_list" && is_table_type(&type_name) {
                    self.facts.tables.push(Table {
                        name: name.to_string(),
                        type_name: type_name.clone(),
                        line: node.start_position().row + 1,
                        values: init_values(value, self.src),
                    });
                }
            }
            let inherent_protection = specifiers
                .protection
                .clone()
                .or_else(|| lock_type_protection(&type_name, is_pointer));
            self.facts.globals.push(GlobalVar {
                name: name.to_string(),
                function: function.map(str::to_string),
                is_pointer,
                is_array,
                is_const: specifiers.is_const && !is_pointer,
                is_static: specifiers.is_static,
                inherent_protection,
            });
        }
    }

    fn function(&mut self, node: Node) {
        let Some(declarator) = node.child_by_field_id(F.declarator.get()) else {
            return;
        };
        let Some(func_decl) = find_kind(declarator, "function_declarator") else {
            return;
        };
        let Some(name_node) = func_decl.child_by_field_id(F.declarator.get()) else {
            return;
        };
        let Some(name) = declarator_name(name_node, self.src) else {
            return;
        };
        let specifiers = Specifiers::of(node, self.src);
        let mut facts = FunctionFacts {
            name: name.to_string(),
            span: span_of(name_node),
            is_static: specifiers.is_static,
            ..FunctionFacts::default()
        };
        if let Some(params) = func_decl.child_by_field_id(F.parameters.get()) {
            let mut cursor = params.walk();
            for param in params.named_children(&mut cursor) {
                let ty = param
                    .child_by_field_id(F.type_.get())
                    .map(|t| base_type_name(self.text(t)))
                    .unwrap_or_default();
                if let Some(pname) = param
                    .child_by_field_id(F.declarator.get())
                    .and_then(|d| declarator_name(d, self.src))
                {
                    facts.params.push(Param {
                        name: pname.to_string(),
                        type_name: ty,
                    });
                }
            }
        }
        let mut walker = BodyWalker::new(self.src, self.original, &mut facts);
        if let Some(body) = node.child_by_field_id(F.body.get()) {
            walker.visit(body, 0);
        }
        let statics = std::mem::take(&mut walker.static_decls);
        for decl in statics {
            self.declaration(decl, Some(name));
        }
        self.facts.functions.push(facts);
    }
}

fn is_table_type(type_name: &str) -> bool {
    matches!(
        type_name,
        "PyMethodDef"
            | "PyGetSetDef"
            | "PyType_Slot"
            | "PyType_Spec"
            | "PyTypeObject"
            | "PyModuleDef"
            | "PyModuleDef_Slot"
            | "PyMappingMethods"
            | "PySequenceMethods"
            | "PyNumberMethods"
            | "PyAsyncMethods"
            | "PyBufferProcs"
    )
}

/// Types whose variables are themselves synchronization, not shared data.
fn lock_type_protection(type_name: &str, is_pointer: bool) -> Option<String> {
    let is_lock = matches!(
        type_name,
        "PyMutex"
            | "pthread_mutex_t"
            | "pthread_rwlock_t"
            | "pthread_once_t"
            | "pthread_key_t"
            | "Py_tss_t"
            | "PyThread_type_lock"
            | "mtx_t"
            | "once_flag"
            | "tss_t"
            | "CRITICAL_SECTION"
            | "SRWLOCK"
            | "_PyOnceFlag"
            | "PyThread_ident_t"
    ) || type_name.starts_with("atomic_")
        || type_name.starts_with("_Py_atomic");
    (is_lock && !is_pointer)
        .then(|| format!("its type `{type_name}` is a synchronization primitive"))
}

#[derive(Default)]
struct Specifiers {
    is_static: bool,
    is_extern: bool,
    is_typedef: bool,
    is_const: bool,
    protection: Option<String>,
}

impl Specifiers {
    fn of(node: Node, src: &[u8]) -> Self {
        let mut s = Specifiers::default();
        let mut cursor = node.walk();
        for child in node.children(&mut cursor) {
            match (child.kind(), text(child, src)) {
                ("storage_class_specifier", "static") => s.is_static = true,
                ("storage_class_specifier", "extern") => s.is_extern = true,
                ("storage_class_specifier", t @ ("__thread" | "thread_local")) => {
                    s.protection = Some(format!(
                        "`{}` (thread-local)",
                        if t == "__thread" { "_Thread_local" } else { t }
                    ))
                }
                ("type_qualifier", "const") => s.is_const = true,
                ("type_qualifier", "_Atomic") => s.protection = Some("`_Atomic`".to_string()),
                ("typedef", _) => s.is_typedef = true,
                _ => {}
            }
        }
        s
    }
}

/// `const struct Foo` → `Foo`; `PyObject` stays.
pub(crate) fn base_type_name(type_text: &str) -> String {
    type_text
        .split_whitespace()
        .rfind(|w| {
            !matches!(
                *w,
                "const" | "struct" | "volatile" | "unsigned" | "signed" | "enum" | "union"
            )
        })
        .unwrap_or("")
        .trim_end_matches('*')
        .to_string()
}

fn declarator_name<'a>(node: Node, src: &'a [u8]) -> Option<&'a str> {
    match node.kind() {
        "identifier" | "field_identifier" | "type_identifier" => Some(text(node, src)),
        "parenthesized_declarator" => node.named_child(0).and_then(|n| declarator_name(n, src)),
        _ => node
            .child_by_field_id(F.declarator.get())
            .and_then(|n| declarator_name(n, src)),
    }
}

fn contains_kind(node: Node, kind: &str) -> bool {
    find_kind(node, kind).is_some()
}

/// Finds `kind` along the declarator chain of `node` (including itself).
fn find_kind<'t>(node: Node<'t>, kind: &str) -> Option<Node<'t>> {
    let mut current = Some(node);
    while let Some(n) = current {
        if n.kind() == kind {
            return Some(n);
        }
        current = n.child_by_field_id(F.declarator.get()).or_else(|| {
            (n.kind() == "parenthesized_declarator")
                .then(|| n.named_child(0))
                .flatten()
        });
    }
    None
}

fn init_values(list: Node, src: &[u8]) -> Vec<InitValue> {
    let mut values = Vec::new();
    let mut cursor = list.walk();
    for child in list.named_children(&mut cursor) {
        let line = child.start_position().row + 1;
        if child.kind() == "ERROR" {
            // `X_METHODDEF` entries (macros that end in their own comma) parse as errors.
            let mut inner = child.walk();
            for ident in child
                .named_children(&mut inner)
                .filter(|n| n.kind() == "identifier")
            {
                let line = ident.start_position().row + 1;
                values.push(InitValue {
                    designator: None,
                    value: Value::Ident(text(ident, src).to_string()),
                    line,
                });
            }
            continue;
        }
        let (designator, value) = if child.kind() == "initializer_pair" {
            let designator = child
                .child_by_field_id(F.designator.get())
                .map(|d| text(d, src).trim_start_matches('.').to_string());
            (designator, child.child_by_field_id(F.value.get()))
        } else {
            (None, Some(child))
        };
        let Some(value) = value else { continue };
        if value.kind() == "comment" {
            continue;
        }
        values.push(InitValue {
            designator,
            value: value_of(value, src),
            line,
        });
    }
    values
}

fn value_of(node: Node, src: &[u8]) -> Value {
    let node = strip_casts(node);
    match node.kind() {
        "identifier" => Value::Ident(text(node, src).to_string()),
        "string_literal" | "concatenated_string" => Value::Str(string_value(node, src)),
        "initializer_list" => Value::List(init_values(node, src)),
        "pointer_expression" => match node.child_by_field_id(F.argument.get()) {
            Some(arg) if text(node, src).starts_with('&') => value_of(arg, src),
            _ => Value::Other,
        },
        "sizeof_expression" => Value::SizeOf(base_type_name(
            text(node, src)
                .trim_start_matches("sizeof")
                .trim()
                .trim_start_matches('(')
                .trim_end_matches(')'),
        )),
        "call_expression" => {
            // `_PyCFunction_CAST(func)` and friends.
            let callee = node
                .child_by_field_id(F.function.get())
                .map(|f| text(f, src))
                .unwrap_or("");
            let args = node.child_by_field_id(F.arguments.get());
            match args.and_then(|a| a.named_child(0)) {
                Some(arg) if callee.contains("CAST") => value_of(arg, src),
                _ => Value::Other,
            }
        }
        _ => Value::Other,
    }
}

fn string_value(node: Node, src: &[u8]) -> String {
    let mut out = String::new();
    let mut stack = vec![node];
    while let Some(n) = stack.pop() {
        if n.kind() == "string_content" || n.kind() == "escape_sequence" {
            out.push_str(text(n, src));
        } else {
            let mut cursor = n.walk();
            let children: Vec<_> = n.named_children(&mut cursor).collect();
            stack.extend(children.into_iter().rev());
        }
    }
    out
}

/// Removes parentheses and casts around an expression.
fn strip_casts(mut node: Node) -> Node {
    loop {
        match node.kind() {
            "parenthesized_expression" => match node.named_child(0) {
                Some(inner) => node = inner,
                None => return node,
            },
            "cast_expression" => match node.child_by_field_id(F.value.get()) {
                Some(inner) => node = inner,
                None => return node,
            },
            _ => return node,
        }
    }
}

/// The type a cast expression casts to, if `node` (after parentheses) is one.
fn cast_type(mut node: Node, src: &[u8]) -> Option<String> {
    while node.kind() == "parenthesized_expression" {
        node = node.named_child(0)?;
    }
    (node.kind() == "cast_expression")
        .then(|| node.child_by_field_id(F.type_.get()))
        .flatten()
        .and_then(|t| t.child_by_field_id(F.type_.get()))
        .map(|t| base_type_name(text(t, src)))
}

/// `{"name", (PyCFunction)func, METH_O, doc},` → (name, func).
fn parse_methoddef(value: &str) -> Option<(String, String)> {
    let rest = value
        .trim_start_matches(|c: char| c == '\\' || c.is_whitespace())
        .strip_prefix('{')?
        .trim_start();
    let rest = rest.strip_prefix('"')?;
    let end = rest.find('"')?;
    let name = rest[..end].to_string();
    let after = rest[end + 1..].trim_start().strip_prefix(',')?;
    let func_part = after.split(',').next()?;
    let func = func_part
        .rsplit(|c: char| c == ')' || c == '(' || c.is_whitespace())
        .find(|s| !s.is_empty())?
        .to_string();
    Some((name, func))
}

/// The oldest free-threaded CPython (3.13.0 final) as `PY_VERSION_HEX`.
const OLDEST_FREE_THREADED: u64 = 0x030D_00F0;

/// The parts of a preprocessor conditional that a free-threaded CPython build compiles:
/// `#if PY_VERSION_HEX < 0x030D0000` and `#ifndef Py_GIL_DISABLED` bodies are dead there.
pub(crate) fn live_parts<'t>(node: Node<'t>, src: &[u8]) -> Vec<Node<'t>> {
    let truth = match node.kind() {
        "preproc_if" | "preproc_elif" => node
            .child_by_field_id(F.condition.get())
            .and_then(|c| condition_truth(text(c, src))),
        "preproc_ifdef" | "preproc_elifdef" => {
            node.child_by_field_id(F.name.get()).and_then(|name| {
                let negated = text(node, src)
                    .trim_start_matches('#')
                    .trim_start()
                    .starts_with("ifndef")
                    || text(node, src)
                        .trim_start_matches('#')
                        .trim_start()
                        .starts_with("elifndef");
                defined_truth(text(name, src)).map(|t| t != negated)
            })
        }
        _ => None,
    };
    let skip = [
        node.child_by_field_id(F.condition.get()),
        node.child_by_field_id(F.name.get()),
    ];
    let alternative = node.child_by_field_id(F.alternative.get());
    let mut cursor = node.walk();
    node.named_children(&mut cursor)
        .filter(|child| !skip.contains(&Some(*child)))
        .filter(|child| {
            if Some(*child) == alternative {
                truth != Some(true)
            } else {
                truth != Some(false)
            }
        })
        .collect()
}

/// Whether a `#if` condition holds on every free-threaded build (`None`: depends).
fn condition_truth(condition: &str) -> Option<bool> {
    let condition = condition.trim();
    if condition.contains("||") {
        let parts: Vec<Option<bool>> = condition.split("||").map(condition_truth).collect();
        return if parts.contains(&Some(true)) {
            Some(true)
        } else if parts.iter().all(|p| *p == Some(false)) {
            Some(false)
        } else {
            None
        };
    }
    if condition.contains("&&") {
        let parts: Vec<Option<bool>> = condition.split("&&").map(condition_truth).collect();
        return if parts.contains(&Some(false)) {
            Some(false)
        } else if parts.iter().all(|p| *p == Some(true)) {
            Some(true)
        } else {
            None
        };
    }
    let term = condition
        .trim_start_matches('(')
        .trim_end_matches(')')
        .trim();
    if let Some(rest) = term.strip_prefix('!') {
        return condition_truth(rest).map(|t| !t);
    }
    if let Some(rest) = term.strip_prefix("defined") {
        return defined_truth(
            rest.trim()
                .trim_start_matches('(')
                .trim_end_matches(')')
                .trim(),
        );
    }
    if term == "Py_GIL_DISABLED" {
        return Some(true);
    }
    version_truth(term)
}

fn defined_truth(macro_name: &str) -> Option<bool> {
    match macro_name.trim() {
        "Py_GIL_DISABLED" => Some(true),
        "PYPY_VERSION" | "GRAALVM_PYTHON" => Some(false),
        _ => None,
    }
}

/// `PY_VERSION_HEX >= 0x030D0000` and friends.
fn version_truth(term: &str) -> Option<bool> {
    if let Some(rest) = term.strip_suffix("PY_VERSION_HEX") {
        // `0x030A0000 <= PY_VERSION_HEX`: flip it around.
        let (value, op) = ["<=", ">=", "<", ">"]
            .iter()
            .find_map(|op| rest.trim_end().strip_suffix(op).map(|v| (v.trim(), *op)))?;
        let flipped = match op {
            "<=" => ">=",
            ">=" => "<=",
            "<" => ">",
            _ => "<",
        };
        return version_truth(&format!("PY_VERSION_HEX {flipped} {value}"));
    }
    let rest = term.strip_prefix("PY_VERSION_HEX")?.trim_start();
    let (op, value) = ["<=", ">=", "<", ">"]
        .iter()
        .find_map(|op| rest.strip_prefix(op).map(|v| (*op, v.trim())))?;
    let digits = value
        .strip_prefix("0x")
        .or_else(|| value.strip_prefix("0X"))?;
    let version = u64::from_str_radix(digits.trim_end_matches(['u', 'U', 'l', 'L']), 16).ok()?;
    match op {
        "<" if version <= OLDEST_FREE_THREADED => Some(false),
        "<=" if version < OLDEST_FREE_THREADED => Some(false),
        ">=" if version <= OLDEST_FREE_THREADED => Some(true),
        ">" if version < OLDEST_FREE_THREADED => Some(true),
        _ => None,
    }
}

/// Calls whose arguments are accessed atomically.
fn is_atomic_api(callee: &str) -> bool {
    callee.starts_with("_Py_atomic_")
        || callee.starts_with("atomic_")
        || callee.starts_with("__atomic_")
        || callee.starts_with("__sync_")
        || callee.starts_with("FT_ATOMIC_")
        || callee.starts_with("Interlocked")
        || callee.starts_with("_Py_atomic")
}

fn is_atomic_store(callee: &str) -> bool {
    [
        "store", "add", "sub", "exchange", "compare", "or", "and", "xor", "inc", "dec", "fetch",
        "STORE",
    ]
    .iter()
    .any(|op| callee.contains(op))
}

/// Lock acquisition / release by callee name.
#[derive(Clone, Copy, PartialEq)]
enum LockOp {
    Acquire,
    Release,
}

fn lock_op(callee: &str) -> Option<LockOp> {
    let lower = callee.to_ascii_lowercase();
    let parts: Vec<&str> = lower.split('_').collect();
    let has = |words: &[&str]| parts.iter().any(|p| words.contains(p));
    if has(&[
        "alloc", "allocate", "free", "new", "init", "destroy", "create", "held", "locked", "is",
    ]) {
        return None;
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
pub(crate) fn is_release_call(callee: &str) -> bool {
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
fn writes_first_arg(callee: &str) -> bool {
    matches!(
        callee,
        "Py_CLEAR" | "Py_SETREF" | "Py_XSETREF" | "PyMem_Resize" | "PyMem_RESIZE"
    )
}

/// Calls that create a new, not yet shared object.
pub(crate) fn is_constructor_call(callee: &str) -> bool {
    COPYING_CALLS.contains(&callee)
        || callee.ends_with("_New")
        || callee.ends_with("_NewVar")
        || callee.ends_with("tp_alloc")
        || callee.ends_with("GenericAlloc")
        || callee.ends_with("GenericNew")
        || callee.starts_with("PyObject_GC_New")
        || callee.ends_with("_new")
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

struct BodyWalker<'a, 'f> {
    src: &'a [u8],
    original: &'a [u8],
    facts: &'f mut FunctionFacts,
    locals: HashMap<String, String>,
    guard: Guard,
    next_region: usize,
    breakable_depth: usize,
    loop_depth: usize,
    atomic: bool,
    static_decls: Vec<Node<'a>>,
}

/// Deeper nesting than this is skipped (pathological generated code).
const MAX_DEPTH: usize = 1500;

impl<'a, 'f> BodyWalker<'a, 'f> {
    fn new(src: &'a [u8], original: &'a [u8], facts: &'f mut FunctionFacts) -> Self {
        let locals = facts
            .params
            .iter()
            .map(|p| (p.name.clone(), p.type_name.clone()))
            .collect();
        facts.guards.push(Guard::default());
        BodyWalker {
            src,
            original,
            facts,
            locals,
            guard: Guard::default(),
            next_region: 0,
            breakable_depth: 0,
            loop_depth: 0,
            atomic: false,
            static_decls: Vec::new(),
        }
    }

    fn text(&self, node: Node) -> &'a str {
        text(node, self.src)
    }

    fn push(&mut self, kind: EventKind, node: Node) {
        if self.facts.guards.last() != Some(&self.guard) {
            self.facts.guards.push(self.guard.clone());
        }
        let guard = self.facts.guards.len() - 1;
        self.facts.events.push(Event {
            kind,
            span: span_of(node),
            guard,
            atomic: self.atomic,
        });
    }

    fn visit_children(&mut self, node: Node<'a>, depth: usize) {
        let mut cursor = node.walk();
        if !cursor.goto_first_child() {
            return;
        }
        loop {
            let child = cursor.node();
            if child.is_named() {
                self.visit(child, depth + 1);
            }
            if !cursor.goto_next_sibling() {
                break;
            }
        }
    }

    fn visit(&mut self, node: Node<'a>, depth: usize) {
        if depth > MAX_DEPTH {
            return;
        }
        match node.kind() {
            "compound_statement" => self.compound(node, depth),
            "declaration" => self.local_declaration(node, depth),
            "call_expression" => self.call(node, depth),
            "assignment_expression" => self.assignment(node, depth),
            "update_expression" => {
                if let Some(arg) = node.child_by_field_id(F.argument.get()) {
                    self.lvalue(arg, AccessKind::Update, depth);
                }
            }
            "field_expression" => self.field_read(node, depth),
            "if_statement" => self.if_statement(node, depth),
            "for_statement" | "while_statement" | "do_statement" => {
                self.breakable_depth += 1;
                self.loop_depth += 1;
                self.visit_children(node, depth);
                self.breakable_depth -= 1;
                self.loop_depth -= 1;
            }
            "switch_statement" => {
                self.breakable_depth += 1;
                self.visit_children(node, depth);
                self.breakable_depth -= 1;
            }
            "return_statement" => {
                self.push(EventKind::Return, node);
                self.visit_children(node, depth);
            }
            "goto_statement" => {
                let label = node
                    .child_by_field_id(F.label.get())
                    .map(|l| self.text(l).to_string())
                    .unwrap_or_default();
                self.push(EventKind::Goto { label }, node);
            }
            "labeled_statement" => {
                let name = node
                    .child_by_field_id(F.label.get())
                    .map(|l| self.text(l).to_string())
                    .unwrap_or_default();
                self.push(EventKind::Label { name }, node);
                self.visit_children(node, depth);
            }
            "break_statement" | "continue_statement" => {
                let depth_now = if node.kind() == "break_statement" {
                    self.breakable_depth
                } else {
                    self.loop_depth
                };
                if self
                    .guard
                    .sections
                    .iter()
                    .any(|s| s.from_macro && s.breakable_depth >= depth_now)
                {
                    self.push(EventKind::LoopEscape, node);
                }
            }
            "string_literal"
            | "concatenated_string"
            | "number_literal"
            | "char_literal"
            | "comment"
            | "preproc_def"
            | "preproc_function_def"
            | "preproc_call"
            | "preproc_include"
            | "type_descriptor"
            | "sizeof_expression"
            | "primitive_type"
            | "type_identifier" => {}
            "preproc_if" | "preproc_ifdef" | "preproc_elif" | "preproc_elifdef" => {
                for part in live_parts(node, self.src) {
                    self.visit(part, depth + 1);
                }
            }
            _ => self.visit_children(node, depth),
        }
    }

    /// Lock changes inside a block that ends in a jump do not flow past the block
    /// (`if (err) { unlock(); return NULL; }`).
    /// Statements after a jump are dead until the next label (`goto out; return -1;`), and
    /// lock changes inside a block that ends in a jump do not flow past the block
    /// (`if (err) { unlock(); return NULL; }`).
    fn compound(&mut self, node: Node<'a>, depth: usize) {
        let before = self.guard.clone();
        let mut dead = false;
        let mut cursor = node.walk();
        let children: Vec<Node<'a>> = node.named_children(&mut cursor).collect();
        for child in &children {
            if matches!(child.kind(), "labeled_statement" | "case_statement") {
                dead = false;
            }
            if !dead {
                self.visit(*child, depth + 1);
            }
            dead = dead || is_jump(*child);
        }
        if children.last().is_some_and(|last| is_jump(*last)) {
            self.guard = before;
        }
    }

    fn local_declaration(&mut self, node: Node<'a>, depth: usize) {
        let specifiers = Specifiers::of(node, self.src);
        if specifiers.is_static {
            self.static_decls.push(node);
        }
        let type_name = node
            .child_by_field_id(F.type_.get())
            .map(|t| base_type_name(self.text(t)))
            .unwrap_or_default();
        let mut cursor = node.walk();
        let declarators: Vec<_> = node
            .children_by_field_id(F.declarator, &mut cursor)
            .collect();
        for decl in declarators {
            let target = if decl.kind() == "init_declarator" {
                decl.child_by_field_id(F.declarator.get())
            } else {
                Some(decl)
            };
            let Some(name) = target.and_then(|t| declarator_name(t, self.src)) else {
                continue;
            };
            if !specifiers.is_static {
                self.locals.insert(name.to_string(), type_name.clone());
            }
            if let Some(value) = decl.child_by_field_id(F.value.get()) {
                self.note_local_value(name, value);
                self.visit(value, depth + 1);
            }
        }
    }

    /// Records aliases of fields and freshly created objects held in locals.
    fn note_local_value(&mut self, local: &str, value: Node<'a>) {
        let stripped = strip_casts(value);
        match stripped.kind() {
            "field_expression" => {
                if let Some(access) = self.access_path(stripped) {
                    self.facts.aliases.push((local.to_string(), access));
                }
            }
            "call_expression" => {
                let callee = stripped
                    .child_by_field_id(F.function.get())
                    .map(|f| callee_name(f, self.src))
                    .unwrap_or("");
                if is_constructor_call(callee) {
                    self.facts.fresh.push(local.to_string());
                }
            }
            // `new_md = (MultiDictObject *)ret;` where `ret` was just created.
            "identifier" => {
                let source = self.text(stripped);
                if self.facts.fresh.iter().any(|f| f == source) {
                    self.facts.fresh.push(local.to_string());
                }
            }
            _ => {}
        }
    }

    fn assignment(&mut self, node: Node<'a>, depth: usize) {
        let (Some(left), Some(right)) = (
            node.child_by_field_id(F.left.get()),
            node.child_by_field_id(F.right.get()),
        ) else {
            return self.visit_children(node, depth);
        };
        let op = node
            .child_by_field_id(F.operator.get())
            .map(|o| self.text(o))
            .unwrap_or("=");
        let kind = if op == "=" {
            AccessKind::Write
        } else {
            AccessKind::Update
        };
        if left.kind() == "identifier" && self.locals.contains_key(self.text(left)) {
            self.note_local_value(self.text(left), right);
        }
        self.visit(right, depth + 1);
        self.lvalue(left, kind, depth);
    }

    fn lvalue(&mut self, node: Node<'a>, kind: AccessKind, depth: usize) {
        let target = strip_casts(node);
        match target.kind() {
            "identifier" => {
                let name = self.text(target);
                if !self.locals.contains_key(name) {
                    let access = Access {
                        root: name.to_string(),
                        root_type: None,
                        root_is_local: false,
                        fields: Vec::new(),
                    };
                    self.push(
                        EventKind::Access {
                            kind,
                            target: access,
                        },
                        target,
                    );
                }
            }
            "field_expression" => {
                if let Some(access) = self.access_path(target) {
                    self.push(
                        EventKind::Access {
                            kind,
                            target: access,
                        },
                        target,
                    );
                }
                if let Some(inner) = target.child_by_field_id(F.argument.get()) {
                    self.visit(inner, depth + 1);
                }
            }
            "subscript_expression" => {
                if let Some(base) = target.child_by_field_id(F.argument.get()) {
                    self.lvalue(base, kind, depth + 1);
                }
                if let Some(index) = target.child_by_field_id(F.index.get()) {
                    self.visit(index, depth + 1);
                }
            }
            _ => self.visit(target, depth + 1),
        }
    }

    fn field_read(&mut self, node: Node<'a>, depth: usize) {
        if let Some(access) = self.access_path(node) {
            self.push(
                EventKind::Access {
                    kind: AccessKind::Read,
                    target: access,
                },
                node,
            );
        }
        if let Some(inner) = node.child_by_field_id(F.argument.get()) {
            let inner = strip_casts(inner);
            if inner.kind() != "identifier" {
                self.visit(inner, depth + 1);
            }
        }
    }

    /// `self->a.b` → root `self`, fields `[a, b]`.
    fn access_path(&self, node: Node<'a>) -> Option<Access> {
        let mut fields = Vec::new();
        let mut current = node;
        loop {
            match current.kind() {
                "field_expression" => {
                    fields.push(
                        self.text(current.child_by_field_id(F.field.get())?)
                            .to_string(),
                    );
                    let arg = current.child_by_field_id(F.argument.get())?;
                    current = strip_casts(arg);
                    if let Some(cast) = cast_type(arg, self.src) {
                        // `((T *)expr)->field`: the cast names the container, whatever expr is.
                        fields.reverse();
                        let root = self.text(current).to_string();
                        let root_is_local =
                            current.kind() != "identifier" || self.locals.contains_key(&root);
                        return Some(Access {
                            root,
                            root_type: Some(cast),
                            root_is_local,
                            fields,
                        });
                    }
                }
                "subscript_expression" | "pointer_expression" => {
                    current = strip_casts(current.child_by_field_id(F.argument.get())?)
                }
                "identifier" => {
                    fields.reverse();
                    let root = self.text(current).to_string();
                    let local_type = self.locals.get(&root).cloned();
                    let root_is_local = local_type.is_some();
                    // Not a local: a global, or an object-like macro such as `#define SELF ((T *)self)`.
                    let root_type = local_type.or_else(|| Some(format!("{CAST_MACRO}{root}")));
                    return Some(Access {
                        root,
                        root_type,
                        root_is_local,
                        fields,
                    });
                }
                "call_expression" => {
                    // `MD(self)->field` with `#define MD(op) ((T *)(op))`.
                    fields.reverse();
                    let callee = current.child_by_field_id(F.function.get())?;
                    let arg = current
                        .child_by_field_id(F.arguments.get())
                        .and_then(|a| a.named_child(0))
                        .map(strip_casts)
                        .filter(|a| a.kind() == "identifier");
                    return (!fields.is_empty()).then(|| Access {
                        root: arg.map(|a| self.text(a).to_string()).unwrap_or_default(),
                        root_type: Some(format!("{CAST_MACRO}{}", self.text(callee))),
                        root_is_local: true,
                        fields,
                    });
                }
                _ => {
                    fields.reverse();
                    // A call result or other expression: not a global.
                    return (!fields.is_empty()).then(|| Access {
                        root: String::new(),
                        root_type: None,
                        root_is_local: true,
                        fields,
                    });
                }
            }
        }
    }

    fn if_statement(&mut self, node: Node<'a>, depth: usize) {
        let tested = node
            .child_by_field_id(F.condition.get())
            .and_then(|c| null_tested_identifier(c, self.src))
            .filter(|name| !self.locals.contains_key(*name));
        let events_before = self.facts.events.len();
        self.visit_children(node, depth);
        let Some(var) = tested else { return };
        let consequence_end = node
            .child_by_field_id(F.consequence.get())
            .map(|c| c.end_byte())
            .unwrap_or(0);
        let writes_var = self.facts.events[events_before..].iter().any(|e| {
            matches!(&e.kind, EventKind::Access { kind: AccessKind::Write, target } if target.root == var && target.fields.is_empty())
        });
        if writes_var && consequence_end > 0 {
            let event = Event {
                kind: EventKind::LazyInit {
                    var: var.to_string(),
                },
                span: span_of(node),
                guard: self.facts.events.get(events_before).map_or(0, |e| e.guard),
                atomic: false,
            };
            self.facts.events.insert(events_before, event);
        }
    }

    fn call(&mut self, node: Node<'a>, depth: usize) {
        let Some(function) = node.child_by_field_id(F.function.get()) else {
            return;
        };
        let callee = callee_name(function, self.src);
        let args_node = node.child_by_field_id(F.arguments.get());
        let args: Vec<Node<'a>> = match args_node {
            Some(a) => {
                let mut cursor = a.walk();
                a.named_children(&mut cursor)
                    .filter(|n| n.kind() != "comment")
                    .collect()
            }
            None => Vec::new(),
        };
        let arg_texts: Vec<String> = args
            .iter()
            .map(|a| self.text(*a).trim().to_string())
            .collect();
        if self.region_marker(callee, node, &arg_texts) {
            return;
        }
        self.push(
            EventKind::Call {
                callee: callee.to_string(),
                args: arg_texts.clone(),
            },
            node,
        );
        if function.kind() != "identifier" {
            self.visit(function, depth + 1);
        }
        if writes_first_arg(callee) || is_release_call(callee) {
            if let Some(first) = args.first() {
                self.release_arg(*first, callee);
            }
        }
        let atomic = is_atomic_api(callee);
        let inside_atomic = self.atomic || atomic;
        let was_atomic = std::mem::replace(&mut self.atomic, inside_atomic);
        for (i, arg) in args.iter().enumerate() {
            if atomic && i == 0 {
                self.address_arg(
                    *arg,
                    if is_atomic_store(callee) {
                        AccessKind::Update
                    } else {
                        AccessKind::Read
                    },
                    depth,
                );
            } else {
                self.visit(*arg, depth + 1);
            }
        }
        self.atomic = was_atomic;
        self.lock_call(callee, &arg_texts, node);
    }

    /// `free(self->buf)`, `Py_SETREF(self->x, v)`, `free(old)` where `old = self->buf`.
    fn release_arg(&mut self, arg: Node<'a>, callee: &str) {
        let arg = strip_casts(arg);
        let arg = if arg.kind() == "pointer_expression" {
            arg.child_by_field_id(F.argument.get())
                .map(strip_casts)
                .unwrap_or(arg)
        } else {
            arg
        };
        let access = match arg.kind() {
            "field_expression" => self.access_path(arg),
            "identifier" => {
                let name = self.text(arg);
                self.facts
                    .aliases
                    .iter()
                    .rev()
                    .find(|(local, _)| local == name)
                    .map(|(_, a)| a.clone())
            }
            _ => None,
        };
        if let Some(target) = access {
            self.push(
                EventKind::Access {
                    kind: AccessKind::Release,
                    target: target.clone(),
                },
                arg,
            );
            if writes_first_arg(callee) {
                self.push(
                    EventKind::Access {
                        kind: AccessKind::Write,
                        target,
                    },
                    arg,
                );
            }
        }
    }

    /// The target of an atomic operation: `&self->x` or `&counter`.
    fn address_arg(&mut self, arg: Node<'a>, kind: AccessKind, depth: usize) {
        let stripped = strip_casts(arg);
        if stripped.kind() == "pointer_expression" {
            if let Some(inner) = stripped.child_by_field_id(F.argument.get()) {
                return self.lvalue(inner, kind, depth + 1);
            }
        }
        self.visit(arg, depth + 1);
    }

    /// Critical sections and `Py_BEGIN_ALLOW_THREADS` markers (from the normalizer) and the
    /// `PyCriticalSection_Begin` API. Returns true when `callee` was one.
    fn region_marker(&mut self, callee: &str, node: Node<'a>, args: &[String]) -> bool {
        if callee.starts_with(CS_BEGIN) {
            let text = self.original_text(node);
            self.open_section(args.to_vec(), true, text);
        } else if callee.starts_with(CS_END) {
            self.close_section(true);
        } else if callee.starts_with(NOGIL_BEGIN) {
            self.guard.nogil = true;
        } else if callee.starts_with(NOGIL_END) {
            self.guard.nogil = false;
        } else if callee == "PyCriticalSection_Begin" || callee == "PyCriticalSection2_Begin" {
            let text = self.original_text(node);
            self.open_section(args.iter().skip(1).cloned().collect(), false, text);
        } else if callee == "PyCriticalSection_End" || callee == "PyCriticalSection2_End" {
            self.close_section(false);
        } else {
            return false;
        }
        true
    }

    fn open_section(&mut self, objects: Vec<String>, from_macro: bool, text: String) {
        let region = self.next_region;
        self.next_region += 1;
        let breakable_depth = self.breakable_depth;
        self.guard.sections.push(Section {
            objects,
            region,
            from_macro,
            text,
            breakable_depth,
        });
    }

    fn close_section(&mut self, from_macro: bool) {
        if let Some(pos) = self
            .guard
            .sections
            .iter()
            .rposition(|s| s.from_macro == from_macro)
        {
            self.guard.sections.remove(pos);
        }
    }

    /// The macro as written (the normalizer may have moved its `;`).
    fn original_text(&self, node: Node) -> String {
        let end = (node.end_byte() + 1).min(self.original.len());
        let raw = std::str::from_utf8(&self.original[node.start_byte()..end]).unwrap_or("");
        raw.trim_end_matches(|c: char| c == ';' || c.is_whitespace())
            .to_string()
    }

    fn lock_call(&mut self, callee: &str, args: &[String], node: Node<'a>) {
        let Some(op) = lock_op(callee) else { return };
        let key = args
            .first()
            .map(|a| strip_object_expr(a).to_string())
            .unwrap_or_else(|| callee.to_string());
        match op {
            LockOp::Acquire => {
                let call = self.text(node).to_string();
                self.guard.mutexes.push((key, call));
            }
            LockOp::Release => {
                let pos = self.guard.mutexes.iter().rposition(|(k, _)| *k == key);
                match pos {
                    Some(pos) => {
                        self.guard.mutexes.remove(pos);
                    }
                    None => {
                        self.guard.mutexes.pop();
                    }
                }
            }
        }
    }
}

fn is_jump(node: Node) -> bool {
    matches!(
        node.kind(),
        "return_statement" | "goto_statement" | "break_statement" | "continue_statement"
    )
}

/// The name of a called function: `f` for `f(...)`, `tp_alloc` for `type->tp_alloc(...)`.
pub(crate) fn callee_name<'a>(function: Node, src: &'a [u8]) -> &'a str {
    let function = strip_casts(function);
    match function.kind() {
        "field_expression" => function
            .child_by_field_id(F.field.get())
            .map(|f| text(f, src))
            .unwrap_or(""),
        _ => text(function, src),
    }
}

/// `!x`, `x == NULL`, `NULL == x`, `x == 0`, `x` negated... → `x`.
fn null_tested_identifier<'a>(condition: Node, src: &'a [u8]) -> Option<&'a str> {
    let mut node = condition;
    while node.kind() == "parenthesized_expression" {
        node = node.named_child(0)?;
    }
    match node.kind() {
        "unary_expression"
            if node
                .child_by_field_id(F.operator.get())
                .map(|o| text(o, src))
                == Some("!") =>
        {
            let arg = strip_casts(node.child_by_field_id(F.argument.get())?);
            (arg.kind() == "identifier").then(|| text(arg, src))
        }
        "binary_expression"
            if node
                .child_by_field_id(F.operator.get())
                .map(|o| text(o, src))
                == Some("==") =>
        {
            let left = strip_casts(node.child_by_field_id(F.left.get())?);
            let right = strip_casts(node.child_by_field_id(F.right.get())?);
            let is_null =
                |n: Node| matches!(n.kind(), "null" | "number_literal") || text(n, src) == "NULL";
            if left.kind() == "identifier" && is_null(right) {
                Some(text(left, src))
            } else if right.kind() == "identifier" && is_null(left) {
                Some(text(right, src))
            } else {
                None
            }
        }
        "call_expression" => {
            // `if (Py_IsNone(x))`-style checks are not lazy init; `unlikely(!x)` is.
            let args = node.child_by_field_id(F.arguments.get())?;
            (args.named_child_count() == 1)
                .then(|| args.named_child(0))
                .flatten()
                .and_then(|a| null_tested_identifier(a, src))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methoddef_macros_give_name_and_function() {
        assert_eq!(
            parse_methoddef(r#"{"close", (PyCFunction)_io_close, METH_NOARGS, doc},"#),
            Some(("close".into(), "_io_close".into()))
        );
        assert_eq!(
            parse_methoddef("\\\n    {\"resize\", (PyCFunction)widget_resize, METH_O, doc},"),
            Some(("resize".into(), "widget_resize".into()))
        );
        assert_eq!(
            parse_methoddef(r#"{"pop", _PyCFunction_CAST(md_pop), METH_FASTCALL, doc},"#),
            Some(("pop".into(), "md_pop".into()))
        );
    }

    #[test]
    fn version_conditions_older_than_free_threading_are_dead() {
        assert_eq!(condition_truth("PY_VERSION_HEX < 0x030D0000"), Some(false));
        assert_eq!(condition_truth("PY_VERSION_HEX >= 0x030D0000"), Some(true));
        assert_eq!(condition_truth("PY_VERSION_HEX < 0x030E0000"), None);
        assert_eq!(
            condition_truth("PY_VERSION_HEX < 0x030B0000 && !defined(PYPY_VERSION)"),
            Some(false)
        );
        assert_eq!(condition_truth("defined(Py_GIL_DISABLED)"), Some(true));
        assert_eq!(condition_truth("!defined(Py_GIL_DISABLED)"), Some(false));
        assert_eq!(condition_truth("defined(FOO)"), None);
        assert_eq!(condition_truth("0x030A0000 <= PY_VERSION_HEX"), Some(true));
        assert_eq!(condition_truth("PY_VERSION_HEX < 0x030D00A0"), Some(false));
    }

    #[test]
    fn object_expressions_lose_casts_and_address_of() {
        assert_eq!(strip_object_expr("(PyObject *)self"), "self");
        assert_eq!(strip_object_expr("&self->mutex"), "self->mutex");
        assert_eq!(strip_object_expr("(self)"), "self");
    }

    #[test]
    fn lock_calls_are_recognized_by_name() {
        assert!(lock_op("PyMutex_Lock") == Some(LockOp::Acquire));
        assert!(lock_op("pthread_mutex_unlock") == Some(LockOp::Release));
        assert!(lock_op("PyThread_acquire_lock") == Some(LockOp::Acquire));
        assert!(lock_op("PyThread_release_lock") == Some(LockOp::Release));
        assert!(lock_op("PyThread_allocate_lock").is_none());
        assert!(lock_op("clock").is_none());
    }
}
