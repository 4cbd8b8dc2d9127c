//! Fixture-driven tests of the suggested patches: small C snippets through the real
//! tree-sitter parse, and the racy fixture's sources through git and gcc.

mod atomic;
mod critical_section;
mod fixture;

use std::fmt::Debug;

use super::{Refusal, SourceFile};

fn source(path: &str, text: &str) -> SourceFile {
    SourceFile {
        path: path.into(),
        text: text.to_string(),
    }
}

/// The refusal's message; panics on a patch.
fn refusal<T: Debug>(result: Result<T, Refusal>) -> String {
    result.expect_err("expected a refusal").0
}

/// Whether the text parses (after macro normalization) without ERROR or MISSING nodes.
fn parses_cleanly(text: &str) -> bool {
    let normalized = crate::normalize::normalize(text.as_bytes());
    !crate::parse::parse(&normalized)
        .expect("tree-sitter parses")
        .root_node()
        .has_error()
}
