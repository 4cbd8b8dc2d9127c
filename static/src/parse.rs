//! Parsing with tree-sitter-c: one parser per worker thread, plus the parse-quality count.

use std::cell::RefCell;

use std::sync::LazyLock;

use anyhow::{Context, Result};
use tree_sitter::{Language, Node, Parser, Tree};

type FieldId = std::num::NonZeroU16;

thread_local! {
    static PARSER: RefCell<Option<Parser>> = const { RefCell::new(None) };
}

/// Parses (already normalized) C source.
pub(crate) fn parse(src: &[u8]) -> Result<Tree> {
    PARSER.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            let mut parser = Parser::new();
            parser
                .set_language(&tree_sitter_c::LANGUAGE.into())
                .context("tree-sitter-c grammar does not match the tree-sitter runtime")?;
            *slot = Some(parser);
        }
        let parser = slot.as_mut().expect("parser just set");
        parser
            .parse(src, None)
            .context("tree-sitter gave up parsing (timeout or cancellation)")
    })
}

/// Counts function definitions and those containing an ERROR or MISSING node.
pub(crate) fn function_quality(root: Node) -> (usize, usize) {
    let mut functions = 0;
    let mut with_errors = 0;
    let mut cursor = root.walk();
    let mut stack = vec![root];
    while let Some(node) = stack.pop() {
        if node.kind() == "function_definition" {
            functions += 1;
            with_errors += usize::from(node.has_error());
            continue;
        }
        if !node.has_error() && !is_container(node.kind()) {
            continue;
        }
        stack.extend(node.children(&mut cursor));
    }
    (functions, with_errors)
}

/// Nodes that can hold function definitions.
pub(crate) fn is_container(kind: &str) -> bool {
    matches!(
        kind,
        "translation_unit"
            | "preproc_if"
            | "preproc_ifdef"
            | "preproc_else"
            | "preproc_elif"
            | "preproc_elifdef"
            | "linkage_specification"
            | "declaration_list"
            | "ERROR"
    )
}

/// Field ids of the C grammar, looked up once: by-name lookups compare strings on every call.
pub(crate) struct Fields {
    pub declarator: FieldId,
    pub argument: FieldId,
    pub type_: FieldId,
    pub value: FieldId,
    pub name: FieldId,
    pub operator: FieldId,
    pub function: FieldId,
    pub condition: FieldId,
    pub arguments: FieldId,
    pub right: FieldId,
    pub left: FieldId,
    pub label: FieldId,
    pub field: FieldId,
    pub body: FieldId,
    pub parameters: FieldId,
    pub index: FieldId,
    pub designator: FieldId,
    pub consequence: FieldId,
    pub alternative: FieldId,
    pub path: FieldId,
}

pub(crate) static F: LazyLock<Fields> = LazyLock::new(|| {
    let language: Language = tree_sitter_c::LANGUAGE.into();
    let id = |name: &str| {
        language
            .field_id_for_name(name)
            .unwrap_or_else(|| panic!("tree-sitter-c has no field `{name}`"))
    };
    Fields {
        declarator: id("declarator"),
        argument: id("argument"),
        type_: id("type"),
        value: id("value"),
        name: id("name"),
        operator: id("operator"),
        function: id("function"),
        condition: id("condition"),
        arguments: id("arguments"),
        right: id("right"),
        left: id("left"),
        label: id("label"),
        field: id("field"),
        body: id("body"),
        parameters: id("parameters"),
        index: id("index"),
        designator: id("designator"),
        consequence: id("consequence"),
        alternative: id("alternative"),
        path: id("path"),
    }
});
