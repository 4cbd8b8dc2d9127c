//! Which preprocessor branches a free-threaded CPython build compiles.

use tree_sitter::Node;

use super::syntax::text;
use crate::parse::F;

/// The oldest free-threaded CPython (3.13.0 final) as `PY_VERSION_HEX`.
const OLDEST_FREE_THREADED: u64 = 0x030D_00F0;

/// The parts of a preprocessor conditional that a free-threaded CPython build compiles:
/// `#if PY_VERSION_HEX < 0x030D0000` and `#ifndef Py_GIL_DISABLED` bodies are dead there.
pub(super) fn live_parts<'t>(node: Node<'t>, src: &[u8]) -> Vec<Node<'t>> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
