//! The walk over one function body: accesses, calls, jumps and the lock state at each.

use std::collections::HashMap;

use tree_sitter::Node;

use super::c_api::{
    is_atomic_api, is_atomic_store, is_constructor_call, is_release_call, lock_op,
    may_write_through, writes_first_arg, LockOp,
};
use super::preprocessor::live_parts;
use super::syntax::{
    base_type_name, callee_name, cast_type, declarator_name, is_jump, span_of, strip_casts, text,
    Specifiers,
};
use super::types::{
    strip_object_expr, Access, AccessKind, Event, EventKind, FunctionFacts, Guard, LocalSource,
    PassedTo, Section, CAST_MACRO,
};
use crate::normalize::{CS_BEGIN, CS_END, NOGIL_BEGIN, NOGIL_END};
use crate::parse::F;

pub(super) struct BodyWalker<'a, 'f> {
    src: &'a [u8],
    original: &'a [u8],
    facts: &'f mut FunctionFacts,
    locals: HashMap<String, String>,
    guard: Guard,
    next_region: usize,
    breakable_depth: usize,
    loop_depth: usize,
    atomic: bool,
    pub(super) static_decls: Vec<Node<'a>>,
}

/// Deeper nesting than this is skipped (pathological generated code).
const MAX_DEPTH: usize = 1500;

impl<'a, 'f> BodyWalker<'a, 'f> {
    pub(super) fn new(src: &'a [u8], original: &'a [u8], facts: &'f mut FunctionFacts) -> Self {
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
        self.push_passed(kind, node, None);
    }

    fn push_passed(&mut self, kind: EventKind, node: Node, passed_to: Option<PassedTo>) {
        if self.facts.guards.last() != Some(&self.guard) {
            self.facts.guards.push(self.guard.clone());
        }
        let guard = self.facts.guards.len() - 1;
        self.facts.events.push(Event {
            kind,
            span: span_of(node),
            guard,
            atomic: self.atomic,
            passed_to,
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

    pub(super) fn visit(&mut self, node: Node<'a>, depth: usize) {
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
        let mut source = LocalSource {
            local: local.to_string(),
            copied: None,
            through: None,
        };
        match stripped.kind() {
            "field_expression" => {
                if let Some(access) = self.access_path(stripped) {
                    self.facts
                        .aliases
                        .push((local.to_string(), access, self.guard.clone()));
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
                source.copied = single_identifier_arg(stripped, self.src).map(str::to_string);
                source.through = Some(callee.to_string());
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
        if stripped.kind() == "identifier" {
            source.copied = Some(self.text(stripped).to_string());
        }
        self.facts.local_sources.push(source);
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
                    if !self.deref_write(base, kind) {
                        self.lvalue(base, kind, depth + 1);
                    }
                }
                if let Some(index) = target.child_by_field_id(F.index.get()) {
                    self.visit(index, depth + 1);
                }
            }
            "pointer_expression" => {
                if let Some(inner) = target.child_by_field_id(F.argument.get()) {
                    self.deref_write(inner, kind);
                }
                self.visit(target, depth + 1);
            }
            _ => self.visit(target, depth + 1),
        }
    }

    /// `*p = v`, `p[i] = v` with `p` a local or parameter: the function writes through `p`.
    fn deref_write(&mut self, pointer: Node<'a>, kind: AccessKind) -> bool {
        let pointer = strip_casts(pointer);
        let name = self.text(pointer);
        let is_local = pointer.kind() == "identifier" && self.locals.contains_key(name);
        if is_local {
            self.facts.deref_writes.push((name.to_string(), kind));
        }
        is_local
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
                passed_to: None,
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
            } else if !may_write_through(callee) || !self.passed_arg(*arg, callee, i, depth) {
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
        let (access, taken_under) = match arg.kind() {
            "field_expression" => (self.access_path(arg), None),
            "identifier" => {
                let name = self.text(arg);
                let alias = self
                    .facts
                    .aliases
                    .iter()
                    .rev()
                    .find(|(local, ..)| local == name);
                (
                    alias.map(|(_, a, _)| a.clone()),
                    alias.map(|(.., guard)| guard.clone()),
                )
            }
            _ => (None, None),
        };
        if let Some(target) = access {
            // `old = self->x; self->x = new;` under a lock, then `Py_DECREF(old)` after it: the
            // old value was unlinked under the lock, and no other thread can reach it any more.
            let held = taken_under.filter(|g| !g.sections.is_empty() || !g.mutexes.is_empty());
            let current = held.map(|guard| std::mem::replace(&mut self.guard, guard));
            self.push(
                EventKind::Access {
                    kind: AccessKind::Release,
                    target: target.clone(),
                },
                arg,
            );
            if let Some(current) = current {
                self.guard = current;
            }
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

    /// `f(self->state)`, `f(&self->ctx)`, `f(&counter)`: state handed to a callee that may
    /// write through it. Records the access (as a read until the program knows the callee)
    /// and returns true; false for any other argument.
    fn passed_arg(&mut self, arg: Node<'a>, callee: &str, index: usize, depth: usize) -> bool {
        let stripped = strip_casts(arg);
        let (target, by_address) = match stripped.kind() {
            "pointer_expression" if self.text(stripped).starts_with('&') => {
                match stripped.child_by_field_id(F.argument.get()) {
                    Some(inner) => (strip_casts(inner), true),
                    None => return false,
                }
            }
            _ => (stripped, false),
        };
        let access = match target.kind() {
            "field_expression" => self.access_path(target),
            "identifier" if !self.locals.contains_key(self.text(target)) => Some(Access {
                root: self.text(target).to_string(),
                root_type: None,
                root_is_local: false,
                fields: Vec::new(),
            }),
            _ => None,
        };
        let Some(target_access) = access else {
            return false;
        };
        let passed = PassedTo {
            callee: callee.to_string(),
            index,
            by_address,
            writes: None,
        };
        let kind = EventKind::Access {
            kind: AccessKind::Read,
            target: target_access,
        };
        self.push_passed(kind, target, Some(passed));
        if let Some(inner) = target.child_by_field_id(F.argument.get()).map(strip_casts) {
            if inner.kind() != "identifier" {
                self.visit(inner, depth + 1);
            }
        }
        true
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

/// `f(x)` → `x` (casts around `x` removed).
fn single_identifier_arg<'a>(call: Node, src: &'a [u8]) -> Option<&'a str> {
    let args = call.child_by_field_id(F.arguments.get())?;
    let arg = (args.named_child_count() == 1)
        .then(|| args.named_child(0))
        .flatten()
        .map(strip_casts)?;
    (arg.kind() == "identifier").then(|| text(arg, src))
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
