//! Initializer lists of file-scope tables (`PyMethodDef[]`, `PyType_Spec`, slots) and the
//! `X_METHODDEF` macros of Argument Clinic.

use tree_sitter::Node;

use super::syntax::{base_type_name, string_value, strip_casts, text};
use super::types::{InitValue, StrPart, Value};
use crate::parse::F;

pub(super) fn init_values(list: Node, src: &[u8]) -> Vec<InitValue> {
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

/// `"a" "b"` is one string; `MODULE_NAME ".Proxy"` waits for the macro.
fn concatenation(node: Node, src: &[u8]) -> Value {
    let mut parts = Vec::new();
    let mut cursor = node.walk();
    for child in node.named_children(&mut cursor) {
        match child.kind() {
            "string_literal" => parts.push(StrPart::Literal(string_value(child, src))),
            "identifier" => parts.push(StrPart::Macro(text(child, src).to_string())),
            _ => return Value::Other,
        }
    }
    if parts.iter().all(|p| matches!(p, StrPart::Literal(_))) {
        Value::Str(string_value(node, src))
    } else {
        Value::Concat(parts)
    }
}

/// The body of `#define NAME "a" OTHER "b"` as parts, if it is nothing but those.
pub(super) fn string_macro_parts(body: &str) -> Option<Vec<StrPart>> {
    let mut parts = Vec::new();
    let mut rest = body.trim();
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('"') {
            let end = after.find('"')?;
            if after[..end].contains('\\') {
                return None; // escapes: not a plain name
            }
            parts.push(StrPart::Literal(after[..end].to_string()));
            rest = after[end + 1..].trim_start();
        } else {
            let end = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            if end == 0 {
                return None;
            }
            parts.push(StrPart::Macro(rest[..end].to_string()));
            rest = rest[end..].trim_start();
        }
    }
    parts
        .iter()
        .any(|p| matches!(p, StrPart::Literal(_)))
        .then_some(parts)
}

fn value_of(node: Node, src: &[u8]) -> Value {
    let node = strip_casts(node);
    match node.kind() {
        "identifier" => Value::Ident(text(node, src).to_string()),
        "string_literal" => Value::Str(string_value(node, src)),
        "concatenated_string" => concatenation(node, src),
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

/// `{"name", (PyCFunction)func, METH_O, doc},` → (name, func).
pub(super) fn parse_methoddef(value: &str) -> Option<(String, String)> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_macros_are_literals_and_names() {
        assert_eq!(
            string_macro_parts(r#"MODULE_NAME ".Proxy""#),
            Some(vec![
                StrPart::Macro("MODULE_NAME".into()),
                StrPart::Literal(".Proxy".into())
            ])
        );
        assert_eq!(
            string_macro_parts(r#""_ext""#),
            Some(vec![StrPart::Literal("_ext".into())])
        );
        assert_eq!(string_macro_parts("(1 + 2)"), None);
        assert_eq!(string_macro_parts("OTHER"), None);
    }

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
}
