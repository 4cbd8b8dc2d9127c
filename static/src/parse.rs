//! Parsing with tree-sitter-c: one parser per worker thread, plus the parse-quality count.

use std::cell::RefCell;

use anyhow::{Context, Result};
use tree_sitter::{Node, Parser, Tree};

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
