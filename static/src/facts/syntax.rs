//! Small questions about tree-sitter nodes shared by the top-level and body walks.

use tree_sitter::Node;

use crate::model::Span;
use crate::parse::F;

pub(super) fn text<'a>(node: Node, src: &'a [u8]) -> &'a str {
    std::str::from_utf8(&src[node.byte_range()]).unwrap_or("")
}

pub(super) fn span_of(node: Node) -> Span {
    let (s, e) = (node.start_position(), node.end_position());
    Span {
        line: s.row + 1,
        column: s.column + 1,
        end_line: e.row + 1,
        end_column: e.column + 1,
    }
}

#[derive(Default)]
pub(super) struct Specifiers {
    pub(super) is_static: bool,
    pub(super) is_extern: bool,
    pub(super) is_typedef: bool,
    pub(super) is_const: bool,
    pub(super) protection: Option<String>,
}

impl Specifiers {
    pub(super) fn of(node: Node, src: &[u8]) -> Self {
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
pub(super) fn base_type_name(type_text: &str) -> String {
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

pub(super) fn declarator_name<'a>(node: Node, src: &'a [u8]) -> Option<&'a str> {
    match node.kind() {
        "identifier" | "field_identifier" | "type_identifier" => Some(text(node, src)),
        "parenthesized_declarator" => node.named_child(0).and_then(|n| declarator_name(n, src)),
        _ => node
            .child_by_field_id(F.declarator.get())
            .and_then(|n| declarator_name(n, src)),
    }
}

pub(super) fn contains_kind(node: Node, kind: &str) -> bool {
    find_kind(node, kind).is_some()
}

/// Finds `kind` along the declarator chain of `node` (including itself).
pub(super) fn find_kind<'t>(node: Node<'t>, kind: &str) -> Option<Node<'t>> {
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

pub(super) fn string_value(node: Node, src: &[u8]) -> String {
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
pub(super) fn strip_casts(mut node: Node) -> Node {
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
pub(super) fn cast_type(mut node: Node, src: &[u8]) -> Option<String> {
    while node.kind() == "parenthesized_expression" {
        node = node.named_child(0)?;
    }
    (node.kind() == "cast_expression")
        .then(|| node.child_by_field_id(F.type_.get()))
        .flatten()
        .and_then(|t| t.child_by_field_id(F.type_.get()))
        .map(|t| base_type_name(text(t, src)))
}

pub(super) fn is_jump(node: Node) -> bool {
    matches!(
        node.kind(),
        "return_statement" | "goto_statement" | "break_statement" | "continue_statement"
    )
}

/// The name of a called function: `f` for `f(...)`, `tp_alloc` for `type->tp_alloc(...)`.
pub(super) fn callee_name<'a>(function: Node, src: &'a [u8]) -> &'a str {
    let function = strip_casts(function);
    match function.kind() {
        "field_expression" => function
            .child_by_field_id(F.field.get())
            .map(|f| text(f, src))
            .unwrap_or(""),
        _ => text(function, src),
    }
}
