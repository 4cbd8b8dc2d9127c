//! Same-length rewriting of CPython macros that tree-sitter cannot parse, so byte offsets (and
//! so every line and column) in the rewritten text still point at the original source.
//!
//! Statement macros written without `;` become calls to marker functions the fact extractor
//! recognizes (so critical sections and `Py_BEGIN_ALLOW_THREADS` regions survive), struct-head
//! macros become a dummy field, and declaration-wrapping macros become plain keywords.

use std::sync::LazyLock;

use regex::bytes::Regex;

/// Marker callee for the start of a critical section; its arguments are the locked objects.
pub(crate) const CS_BEGIN: &str = "__ftcsb";
/// Marker callee for the end of a critical section.
pub(crate) const CS_END: &str = "__ftcse";
/// Marker callee for `Py_BEGIN_ALLOW_THREADS` / `Py_UNBLOCK_THREADS`.
pub(crate) const NOGIL_BEGIN: &str = "__ftatb";
/// Marker callee for `Py_END_ALLOW_THREADS` / `Py_BLOCK_THREADS`.
pub(crate) const NOGIL_END: &str = "__ftate";
/// Marker callee for other statement macros (no meaning for the rules).
pub(crate) const STATEMENT: &str = "__ftstm";
/// Marker field standing for `PyObject_HEAD` / `PyObject_VAR_HEAD` in a struct.
pub(crate) const OBJECT_HEAD_FIELD: &str = "__ftobh";

static MACROS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"\b(?:Py_X?BEGIN_CRITICAL_SECTION\w*|Py_X?END_CRITICAL_SECTION\w*",
        r"|Py_BEGIN_ALLOW_THREADS|Py_END_ALLOW_THREADS|Py_UNBLOCK_THREADS|Py_BLOCK_THREADS",
        r"|PyObject_HEAD|PyObject_VAR_HEAD|PyVarObject_HEAD_INIT|PyObject_HEAD_INIT",
        r"|Py_LOCAL_INLINE|Py_LOCAL|PyAPI_FUNC|PyAPI_DATA",
        r"|Py_ALWAYS_INLINE|Py_NO_INLINE|_Py_NO_RETURN|_Py_HOT_FUNCTION|_Py_NO_SANITIZE_THREAD",
        r"|_Py_NO_SANITIZE_ADDRESS|_Py_NO_SANITIZE_MEMORY|Py_GCC_ATTRIBUTE|Py_DEPRECATED",
        r"|_Thread_local|_Py_CAST|Py_TRASHCAN_BEGIN|Py_TRASHCAN_END",
        r"|_Py_COMP_DIAG_PUSH|_Py_COMP_DIAG_POP|_Py_COMP_DIAG_IGNORE_DEPR_DECLS)\b"
    ))
    .expect("valid macro regex")
});

/// An indented line that starts with an all-caps macro call: a project's own statement macro
/// (`CHECK_INITIALIZED(self)`, `ENSURE_ALIVE(state, fut)`) when nothing but a new statement
/// follows it.
static STATEMENT_MACRO: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?m)^[ \t]+[A-Z][A-Z0-9_]{2,}[ \t]*\(").expect("valid regex"));

/// Returns `src` with the macros rewritten; same length, same line structure.
pub(crate) fn normalize(src: &[u8]) -> Vec<u8> {
    let mut out = src.to_vec();
    for m in MACROS.find_iter(src) {
        let name = &src[m.start()..m.end()];
        rewrite(&mut out, src, m.start(), m.end(), name);
    }
    for m in STATEMENT_MACRO.find_iter(src) {
        terminate_statement_macro(&mut out, src, m.start(), m.end() - 1);
    }
    out
}

/// `    CHECK(self)\n` → `   CHECK(self);\n`: the call moves one column left into its
/// indentation to make room for the `;`.
fn terminate_statement_macro(out: &mut [u8], src: &[u8], line_start: usize, open: usize) {
    let Some(close) = matching_paren(src, open) else {
        return;
    };
    let rest_of_line = src[close + 1..].iter().take_while(|&&b| b != b'\n');
    if rest_of_line.clone().any(|b| !b.is_ascii_whitespace())
        || src[line_start..open].contains(&b'\n')
    {
        return;
    }
    let starts_statement =
        |b: u8| b.is_ascii_alphabetic() || matches!(b, b'_' | b'{' | b'}' | b'#');
    if !next_non_space(src, close + 1).is_some_and(starts_statement) || out[close] != src[close] {
        return;
    }
    let name_start = line_start
        + src[line_start..]
            .iter()
            .take_while(|b| b.is_ascii_whitespace())
            .count();
    out.copy_within(name_start..=close, name_start - 1);
    out[close] = b';';
}

fn rewrite(out: &mut [u8], src: &[u8], start: usize, name_end: usize, name: &[u8]) {
    match name {
        b"Py_BEGIN_ALLOW_THREADS" | b"Py_UNBLOCK_THREADS" => {
            bare_statement(out, src, start, name_end, NOGIL_BEGIN)
        }
        b"Py_END_ALLOW_THREADS" | b"Py_BLOCK_THREADS" => {
            bare_statement(out, src, start, name_end, NOGIL_END)
        }
        b"PyObject_HEAD" | b"PyObject_VAR_HEAD" => struct_head(out, src, start, name_end),
        b"PyVarObject_HEAD_INIT" | b"PyObject_HEAD_INIT" => {
            call_followed_by(out, src, start, name_end, "__fthi", b',')
        }
        b"Py_LOCAL_INLINE" => keyword_wrapper(out, src, start, name_end, "static inline"),
        b"Py_LOCAL" => keyword_wrapper(out, src, start, name_end, "static"),
        b"PyAPI_FUNC" | b"PyAPI_DATA" => keyword_wrapper(out, src, start, name_end, "extern"),
        b"Py_GCC_ATTRIBUTE" | b"Py_DEPRECATED" => blank_call(out, src, start, name_end),
        b"_Py_CAST" => type_cast(out, src, start, name_end),
        b"Py_TRASHCAN_BEGIN" => call_followed_by(out, src, start, name_end, STATEMENT, b';'),
        b"Py_TRASHCAN_END" => bare_statement(out, src, start, name_end, STATEMENT),
        // tree-sitter-c knows `__thread` but not the C11 spelling.
        b"_Thread_local" => {
            blank(out, start, name_end);
            out[start..start + 8].copy_from_slice(b"__thread");
        }
        _ if name.starts_with(b"Py_BEGIN_CRITICAL") || name.starts_with(b"Py_XBEGIN_CRITICAL") => {
            call_followed_by(out, src, start, name_end, CS_BEGIN, b';')
        }
        _ if name.starts_with(b"Py_END_CRITICAL") || name.starts_with(b"Py_XEND_CRITICAL") => {
            call_followed_by(out, src, start, name_end, CS_END, b';')
        }
        _ => blank(out, start, name_end),
    }
}

/// `Py_BEGIN_ALLOW_THREADS` → `__ftatb______();` (the `();` eats the tail of the name).
fn bare_statement(out: &mut [u8], src: &[u8], start: usize, end: usize, marker: &str) {
    if next_non_space(src, end) == Some(b'(') {
        return; // someone's own function-like macro of the same name; leave it alone
    }
    let len = end - start;
    write_padded(out, start, len - 3, marker);
    out[end - 3..end].copy_from_slice(b"();");
}

/// `PyObject_HEAD` → `int __ftobh_;` so the struct body parses and the head is recognizable.
fn struct_head(out: &mut [u8], src: &[u8], start: usize, end: usize) {
    let has_semicolon = next_non_space(src, end) == Some(b';');
    let len = end - start;
    out[start..start + 4].copy_from_slice(b"int ");
    let ident_len = len - 4 - usize::from(!has_semicolon);
    write_padded(out, start + 4, ident_len, OBJECT_HEAD_FIELD);
    if !has_semicolon {
        out[end - 1] = b';';
    }
}

/// `NAME(args)` that must be followed by `terminator`: when it is not, the name loses one
/// byte, the argument list moves left by one and the terminator goes after it.
fn call_followed_by(
    out: &mut [u8],
    src: &[u8],
    start: usize,
    name_end: usize,
    marker: &str,
    terminator: u8,
) {
    let Some(open) = paren_after(src, name_end) else {
        // `Py_END_CRITICAL_SECTION` without parentheses does not exist; keep as is.
        return;
    };
    let Some(close) = matching_paren(src, open) else {
        return;
    };
    let name_len = name_end - start;
    if next_non_space(src, close + 1) == Some(terminator) || name_len <= marker.len() {
        write_padded(out, start, name_len, marker);
        return;
    }
    write_padded(out, start, name_len - 1, marker);
    out.copy_within(name_end..=close, name_end - 1);
    out[close] = terminator;
}

/// `_Py_CAST(T *, x)` → `       ((T *) x)`: a cast tree-sitter can parse.
fn type_cast(out: &mut [u8], src: &[u8], start: usize, name_end: usize) {
    let Some(open) = paren_after(src, name_end) else {
        return;
    };
    let Some(close) = matching_paren(src, open) else {
        return;
    };
    let Some(comma) = top_level_comma(src, open, close) else {
        return;
    };
    blank(out, start, open + 1);
    out[open - 1..=open].copy_from_slice(b"((");
    out[comma] = b')';
}

/// The first `,` directly inside the parentheses `open..close`.
fn top_level_comma(src: &[u8], open: usize, close: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (i, &b) in src.iter().enumerate().take(close).skip(open + 1) {
        match b {
            b'(' => depth += 1,
            b')' => depth = depth.saturating_sub(1),
            b',' if depth == 0 => return Some(i),
            _ => {}
        }
    }
    None
}

/// `Py_LOCAL_INLINE(int)` → `static inline   int `.
fn keyword_wrapper(out: &mut [u8], src: &[u8], start: usize, name_end: usize, keyword: &str) {
    let (Some(open), true) = (
        paren_after(src, name_end),
        keyword.len() <= name_end - start,
    ) else {
        return;
    };
    let Some(close) = matching_paren(src, open) else {
        return;
    };
    blank(out, start, open + 1);
    out[start..start + keyword.len()].copy_from_slice(keyword.as_bytes());
    out[close] = b' ';
}

/// An attribute-like macro with arguments: blanked entirely.
fn blank_call(out: &mut [u8], src: &[u8], start: usize, name_end: usize) {
    match paren_after(src, name_end).and_then(|open| matching_paren(src, open)) {
        Some(close) => blank(out, start, close + 1),
        None => blank(out, start, name_end),
    }
}

/// Replaces bytes with spaces, keeping newlines.
fn blank(out: &mut [u8], start: usize, end: usize) {
    for b in &mut out[start..end] {
        if *b != b'\n' {
            *b = b' ';
        }
    }
}

fn write_padded(out: &mut [u8], start: usize, len: usize, marker: &str) {
    let marker = marker.as_bytes();
    out[start..start + marker.len()].copy_from_slice(marker);
    out[start + marker.len()..start + len].fill(b'_');
}

fn next_non_space(src: &[u8], from: usize) -> Option<u8> {
    src[from..]
        .iter()
        .copied()
        .find(|b| !b.is_ascii_whitespace())
}

fn paren_after(src: &[u8], from: usize) -> Option<usize> {
    let offset = src[from..].iter().position(|b| !b.is_ascii_whitespace())?;
    (src[from + offset] == b'(').then_some(from + offset)
}

/// The `)` closing the `(` at `open`, skipping string and char literals.
fn matching_paren(src: &[u8], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut quote: Option<u8> = None;
    let mut i = open;
    while i < src.len() {
        let b = src[i];
        match quote {
            Some(_) if b == b'\\' => i += 1,
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None if b == b'"' || b == b'\'' => quote = Some(b),
            None if b == b'(' => depth += 1,
            None if b == b')' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            None => {}
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> String {
        let out = normalize(s.as_bytes());
        assert_eq!(out.len(), s.len());
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn statement_macros_become_marker_calls() {
        assert_eq!(
            norm("    Py_BEGIN_ALLOW_THREADS\n    x = 1;\n    Py_END_ALLOW_THREADS\n"),
            "    __ftatb____________();\n    x = 1;\n    __ftate__________();\n"
        );
    }

    #[test]
    fn critical_sections_keep_their_argument_and_gain_a_semicolon() {
        assert_eq!(
            norm("Py_BEGIN_CRITICAL_SECTION(self)\nPy_END_CRITICAL_SECTION()\n"),
            "__ftcsb_________________(self);\n__ftcse_______________();\n"
        );
        assert_eq!(
            norm("Py_BEGIN_CRITICAL_SECTION2(a, b);"),
            "__ftcsb___________________(a, b);"
        );
    }

    #[test]
    fn object_heads_become_a_marker_field() {
        assert_eq!(norm("PyObject_HEAD\n"), "int __ftobh_;\n");
        assert_eq!(norm("PyObject_HEAD;"), "int __ftobh__;");
        assert_eq!(
            norm("PyVarObject_HEAD_INIT(NULL, 0)\n\"x\","),
            "__fthi______________(NULL, 0),\n\"x\","
        );
    }

    #[test]
    fn own_statement_macros_gain_a_semicolon() {
        assert_eq!(
            norm("{\n    CHECK_INITIALIZED(self)\n    return f(x);\n}"),
            "{\n   CHECK_INITIALIZED(self);\n    return f(x);\n}"
        );
        // Part of an expression, or already terminated: untouched.
        let kept = "    x = 1 +\n    ADD_ONE(y)\n    + 2;\n    FOO(a);\n";
        assert_eq!(norm(kept), kept);
    }

    #[test]
    fn type_casts_become_c_casts() {
        assert_eq!(
            norm("return _Py_CAST(PyObject *, f(a, b));"),
            "return        ((PyObject *) f(a, b));"
        );
    }

    #[test]
    fn wrappers_become_keywords_and_identifiers_are_left_alone() {
        assert_eq!(
            norm("Py_LOCAL_INLINE(int) f(void)"),
            "static inline   int  f(void)"
        );
        assert_eq!(norm("my_Py_BLOCK_THREADS_x"), "my_Py_BLOCK_THREADS_x");
    }
}
