//! File-scope items: functions (handed to the body walker), declarations, structs,
//! initializer tables, `#define`s and `#include`s.

use std::sync::LazyLock;

use regex::Regex;
use tree_sitter::Node;

use super::body::BodyWalker;
use super::initializers::{init_values, parse_methoddef, string_macro_parts};
use super::preprocessor::live_parts;
use super::syntax::{
    base_type_name, contains_kind, declarator_name, find_kind, span_of, string_value, text,
    Specifiers,
};
use super::types::{FileFacts, FunctionFacts, GlobalVar, Param, Prototype, StructDef, Table};
use crate::normalize::OBJECT_HEAD_FIELD;
use crate::parse::F;

/// The body of a cast macro: `((T *)(op))`, `((struct T *)self)`.
static CAST_MACRO_VALUE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^\(?\s*\(\s*(?:const\s+)?(?:struct\s+)?(\w+)\s*\*\s*\)\s*\(?\s*\w+\s*\)?\s*\)?$")
        .expect("valid regex")
});

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
        if let Some(parts) = string_macro_parts(self.text(value)) {
            self.facts.string_macros.push((name.to_string(), parts));
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
        if function.is_none() && !specifiers.is_typedef {
            self.prototypes(node);
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

    /// `int hash_update(ctx_t *ctx, const char *data, size_t n);`: which parameters are
    /// pointers the function may write through.
    fn prototypes(&mut self, node: Node) {
        let mut cursor = node.walk();
        for decl in node.children_by_field_id(F.declarator, &mut cursor) {
            let Some(func_decl) = find_kind(decl, "function_declarator") else {
                continue;
            };
            let Some(name) = func_decl
                .child_by_field_id(F.declarator.get())
                .and_then(|d| declarator_name(d, self.src))
            else {
                continue;
            };
            let Some(params) = func_decl.child_by_field_id(F.parameters.get()) else {
                continue;
            };
            let mut c2 = params.walk();
            let writable_pointer = params
                .named_children(&mut c2)
                .filter(|p| p.kind() == "parameter_declaration")
                .map(|p| is_writable_pointer(p, self.src))
                .collect();
            self.facts.prototypes.push(Prototype {
                name: name.to_string(),
                writable_pointer,
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

/// A parameter `T *p` or `T p[]` whose pointee is not `const` (`const T *p` and `T const *p`
/// are read-only; `T *const p` is not).
fn is_writable_pointer(param: Node, src: &[u8]) -> bool {
    let Some(declarator) = param.child_by_field_id(F.declarator.get()) else {
        return false;
    };
    let is_pointer = [
        "pointer_declarator",
        "abstract_pointer_declarator",
        "array_declarator",
        "abstract_array_declarator",
    ]
    .iter()
    .any(|kind| find_kind(declarator, kind).is_some());
    let mut cursor = param.walk();
    let const_pointee = param
        .children(&mut cursor)
        .any(|c| c.kind() == "type_qualifier" && text(c, src) == "const");
    is_pointer && !const_pointee
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
