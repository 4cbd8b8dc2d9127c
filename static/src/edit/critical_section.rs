//! Holding the object's critical section in a function, the way Argument Clinic's
//! `@critical_section` does it: the definition is renamed `<name>_lock_held` and a wrapper
//! with the original signature locks the first parameter around the call, so early returns
//! in the unchanged body cannot leave the section open.

use std::collections::HashSet;
use std::ops::Range;
use std::sync::LazyLock;

use regex::Regex;
use tree_sitter::Node;

use super::{
    apply, children, descendants, field, file_edits, mentions, Parsed, Patch, Refusal, SourceFile,
    Splice,
};
use crate::parse::F;

/// Keeps the file building on Pythons before 3.13, which have no critical sections.
const COMPAT_GUARD: [&str; 4] = [
    "#ifndef Py_BEGIN_CRITICAL_SECTION  /* Python < 3.13: the GIL already serializes these */",
    "#  define Py_BEGIN_CRITICAL_SECTION(op) {",
    "#  define Py_END_CRITICAL_SECTION() }",
    "#endif",
];

const LOCK_HELD_SUFFIX: &str = "_lock_held";

static HOLDS_CRITICAL_SECTION: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\bPy_X?BEGIN_CRITICAL_SECTION").expect("valid regex"));

/// Detaching the thread state suspends the critical section: the code inside would still
/// run unlocked.
static DETACHES_THREAD_STATE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\b(?:Py_BEGIN_ALLOW_THREADS|Py_UNBLOCK_THREADS)\b").expect("valid regex")
});

/// A file that already provides the macros for old Pythons.
static HAS_COMPAT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"(?m)^[ \t]*#[ \t]*(?:define[ \t]+Py_BEGIN_CRITICAL_SECTION\b",
        r#"|include[ \t]*["<](?:[^">]*/)?pythoncapi_compat\.h[">])"#
    ))
    .expect("valid regex")
});

/// Wraps each named function (first parameter: the object) in its object's critical section.
pub fn critical_section_patch(
    files: &[SourceFile],
    functions: &[String],
) -> Result<Patch, Refusal> {
    let mut seen = HashSet::new();
    let names: Vec<&str> = functions
        .iter()
        .map(String::as_str)
        .filter(|name| seen.insert(*name))
        .collect();
    if names.is_empty() {
        return Err(Refusal("no function was named to wrap".to_string()));
    }
    let parsed = Parsed::parse_all(files)?;
    let mut wrappers = Vec::new();
    let mut refusals = Vec::new();
    for name in &names {
        match Wrapper::plan(&parsed, name) {
            Ok(wrapper) => wrappers.push(wrapper),
            Err(reason) => refusals.push(format!("`{name}` {reason}")),
        }
    }
    if !refusals.is_empty() {
        return Err(Refusal(format!(
            "no critical-section patch: {}",
            refusals.join("; ")
        )));
    }
    let mut splices: Vec<Vec<Splice>> = parsed.iter().map(|_| Vec::new()).collect();
    for wrapper in wrappers {
        splices[wrapper.file].extend(wrapper.splices);
    }
    for (file, file_splices) in parsed.iter().zip(splices.iter_mut()) {
        if let Some(guard) = compat_guard(file, file_splices)? {
            file_splices.push(guard);
        }
    }
    Ok(Patch {
        edits: file_edits(&parsed, splices),
        summary: format!(
            "hold the object's critical section in {} (wrappers around the unchanged bodies)",
            names.join(", ")
        ),
    })
}

/// The edits for one function: its rename and the wrapper after it.
struct Wrapper {
    file: usize,
    splices: Vec<Splice>,
}

impl Wrapper {
    /// The reason is phrased to follow the function's name.
    fn plan(parsed: &[Parsed], name: &str) -> Result<Self, String> {
        let (file, def) = unique_definition(parsed, name)?;
        let p = &parsed[file];
        let lock_held = format!("{name}{LOCK_HELD_SUFFIX}");
        if parsed.iter().any(|p| mentions(&p.file.text, &lock_held)) {
            return Err(format!("cannot be renamed: `{lock_held}` already exists"));
        }
        let signature = Signature::of(p, def)?;
        let body = field(def, F.body).ok_or("has no body")?;
        let body_text = p.text(body);
        if HOLDS_CRITICAL_SECTION.is_match(body_text) {
            return Err("already holds a critical section; the race is elsewhere".to_string());
        }
        if DETACHES_THREAD_STATE.is_match(body_text) {
            return Err(
                "releases the thread state (`Py_BEGIN_ALLOW_THREADS`), which suspends \
                 a critical section: that part would still run unlocked, so it needs a PyMutex"
                    .to_string(),
            );
        }
        let wrapper = signature.wrapper(&lock_held, indent_of(body_text), p.line_ending());
        Ok(Wrapper {
            file,
            splices: vec![
                Splice {
                    range: signature.name.byte_range(),
                    text: lock_held,
                },
                Splice::insert(def.end_byte(), wrapper),
            ],
        })
    }
}

/// The one definition of `name` across the files, parsed cleanly.
fn unique_definition<'t>(parsed: &'t [Parsed], name: &str) -> Result<(usize, Node<'t>), String> {
    let defs: Vec<(usize, Node)> = parsed
        .iter()
        .enumerate()
        .flat_map(|(i, p)| {
            descendants(p.root())
                .filter(|n| n.kind() == "function_definition")
                .filter(move |n| defined_name(p, *n) == Some(name))
                .map(move |n| (i, n))
        })
        .collect();
    let [(file, def)] = defs[..] else {
        if defs.is_empty() {
            return Err("is not defined in the given files".to_string());
        }
        let places: Vec<String> = defs.iter().map(|(i, n)| parsed[*i].at(*n)).collect();
        return Err(format!(
            "is defined {} times ({}); which one is built depends on the build",
            defs.len(),
            places.join(", ")
        ));
    };
    let in_error = std::iter::successors(def.parent(), Node::parent).any(|n| n.is_error());
    if def.has_error() || in_error {
        return Err(format!(
            "does not parse cleanly at {}, so its text cannot be edited safely",
            parsed[file].at(def)
        ));
    }
    Ok((file, def))
}

/// The name a function definition defines, through the pointer declarators of its return type.
fn defined_name<'a>(p: &Parsed<'a>, def: Node) -> Option<&'a str> {
    let function = function_declarator(def)?;
    let name = field(function, F.declarator)?;
    (name.kind() == "identifier").then(|| p.text(name))
}

fn function_declarator(def: Node) -> Option<Node> {
    let mut node = field(def, F.declarator)?;
    while node.kind() == "pointer_declarator" {
        node = field(node, F.declarator)?;
    }
    (node.kind() == "function_declarator").then_some(node)
}

/// What the wrapper copies from the original definition.
struct Signature<'t> {
    /// The definition's text up to its body, parameters as the wrapper declares them.
    text: String,
    name: Node<'t>,
    /// `None` for `void`.
    return_type: Option<String>,
    params: Vec<String>,
}

impl<'t> Signature<'t> {
    fn of(p: &Parsed, def: Node<'t>) -> Result<Self, String> {
        let body = field(def, F.body).ok_or("has no body")?;
        let head = def.start_byte()..body.start_byte();
        if normalize_changed(&p.file.text[head.clone()]) {
            return Err(
                "has a signature written with macros, which the wrapper cannot copy \
                 reliably"
                    .to_string(),
            );
        }
        let is_static =
            children(def).any(|c| c.kind() == "storage_class_specifier" && p.text(c) == "static");
        if !is_static {
            return Err(
                "is not `static`: other files may call it by name, so it cannot be \
                 renamed"
                    .to_string(),
            );
        }
        let declarator = field(def, F.declarator).ok_or("has no declarator")?;
        let function = function_declarator(def).ok_or("has an unusual declarator")?;
        let name = field(function, F.declarator).ok_or("has an unusual declarator")?;
        let params = parameters(p, function)?;
        let text = apply(
            &p.file.text[head.clone()],
            params
                .iter()
                .filter_map(|param| param.unused.clone())
                .map(|(range, name)| Splice {
                    range: range.start - head.start..range.end - head.start,
                    text: name,
                })
                .collect(),
        );
        Ok(Signature {
            text: text.trim_end().to_string(),
            name,
            return_type: return_type(p, def, declarator.start_byte()..function.start_byte()),
            params: params.into_iter().map(|param| param.name).collect(),
        })
    }

    fn wrapper(&self, lock_held: &str, indent: &str, nl: &str) -> String {
        let call = format!("{lock_held}({})", self.params.join(", "));
        let mut body = Vec::new();
        let result = self.result_variable();
        if let Some(ty) = &self.return_type {
            let space = if ty.ends_with('*') { "" } else { " " };
            body.push(format!("{ty}{space}{result};"));
        }
        body.push(format!("Py_BEGIN_CRITICAL_SECTION({});", self.params[0]));
        body.push(match self.return_type {
            Some(_) => format!("{result} = {call};"),
            None => format!("{call};"),
        });
        body.push("Py_END_CRITICAL_SECTION();".to_string());
        if self.return_type.is_some() {
            body.push(format!("return {result};"));
        }
        let body: String = body.iter().map(|s| format!("{indent}{s}{nl}")).collect();
        format!("{nl}{nl}{}{nl}{{{nl}{body}}}", self.text)
    }

    /// `result`, unless a parameter already has that name.
    fn result_variable(&self) -> String {
        let mut name = "result".to_string();
        while self.params.contains(&name) {
            name.push('_');
        }
        name
    }
}

/// True when the macro normalization would rewrite some of `text`.
fn normalize_changed(text: &str) -> bool {
    crate::normalize::normalize(text.as_bytes()) != text.as_bytes()
}

/// The return type as a declaration prefix (`PyObject *`, `Py_ssize_t`), `None` for `void`;
/// `pointers` is the declarator's text before the function's name.
fn return_type(p: &Parsed, def: Node, pointers: Range<usize>) -> Option<String> {
    let base: Vec<&str> = children(def)
        .filter(|c| c.kind() == "type_qualifier" || Some(*c) == field(def, F.type_))
        .map(|c| p.text(c))
        .collect();
    let pointers: String = p.file.text[pointers].split_whitespace().collect();
    let base = base.join(" ");
    match (base.as_str(), pointers.is_empty()) {
        ("void", true) => None,
        (_, true) => Some(base),
        _ => Some(format!("{base} {pointers}")),
    }
}

/// A parameter as the wrapper declares and forwards it.
struct Param {
    name: String,
    /// A `Py_UNUSED(name)` declarator's range and the plain name replacing it.
    unused: Option<(Range<usize>, String)>,
}

fn parameters(p: &Parsed, function: Node) -> Result<Vec<Param>, String> {
    let list = field(function, F.parameters).ok_or("has no parameter list")?;
    let mut params = Vec::new();
    let declared = children(list).filter(|c| c.is_named() && c.kind() != "comment");
    for (index, decl) in declared.enumerate() {
        match decl.kind() {
            "variadic_parameter" => {
                return Err("is variadic (`...`), which a wrapper cannot forward".to_string())
            }
            _ if is_void_list(p, decl) => break,
            _ => {}
        }
        let declarator = field(decl, F.declarator);
        let param = declarator.and_then(|d| param(p, d)).ok_or_else(|| {
            format!(
                "has an unnamed parameter {}, which cannot be forwarded",
                index + 1
            )
        })?;
        if params.is_empty() && !is_single_pointer(declarator) {
            return Err(format!(
                "takes `{}` first, which is not an object pointer to lock",
                param.name
            ));
        }
        params.push(param);
    }
    if params.is_empty() {
        return Err("has no parameters, so there is no object to lock".to_string());
    }
    Ok(params)
}

/// `(void)`: a list that declares no parameters.
fn is_void_list(p: &Parsed, decl: Node) -> bool {
    decl.kind() == "parameter_declaration"
        && field(decl, F.declarator).is_none()
        && field(decl, F.type_).is_some_and(|t| p.text(t) == "void")
}

/// `T *self` (or `T *Py_UNUSED(self)`), not `T **` or a plain value.
fn is_single_pointer(declarator: Option<Node>) -> bool {
    declarator.is_some_and(|d| {
        d.kind() == "pointer_declarator"
            && field(d, F.declarator)
                .is_some_and(|inner| matches!(inner.kind(), "identifier" | "function_declarator"))
    })
}

/// The name a parameter declarator declares: `*const *args` → `args`.
fn param(p: &Parsed, mut node: Node) -> Option<Param> {
    loop {
        match node.kind() {
            "identifier" => {
                return Some(Param {
                    name: p.text(node).to_string(),
                    unused: None,
                })
            }
            "function_declarator" if unused_macro(p, node) => {
                let args = field(node, F.parameters)?;
                let name = p.text(args).trim_matches(['(', ')', ' ']).to_string();
                let is_identifier = name.chars().all(|c| c.is_alphanumeric() || c == '_');
                return (is_identifier && !name.is_empty()).then(|| Param {
                    unused: Some((node.byte_range(), name.clone())),
                    name,
                });
            }
            "parenthesized_declarator" => node = node.named_child(0)?,
            _ => node = field(node, F.declarator)?,
        }
    }
}

/// `Py_UNUSED(name)`, which tree-sitter reads as a function declarator.
fn unused_macro(p: &Parsed, node: Node) -> bool {
    field(node, F.declarator).is_some_and(|d| p.text(d) == "Py_UNUSED")
}

/// The body's indentation unit: its first indented line's leading whitespace.
fn indent_of(body: &str) -> &str {
    body.lines()
        .skip(1)
        .filter(|line| !line.trim().is_empty())
        .map(|line| &line[..line.len() - line.trim_start().len()])
        .find(|ws| !ws.is_empty())
        .map(|ws| if ws.starts_with('\t') { "\t" } else { ws })
        .unwrap_or("    ")
}

/// The compat guard for a file that gains wrappers, after its `Python.h` include (else its
/// last top-level include), which must come before every wrapper.
fn compat_guard(p: &Parsed, splices: &[Splice]) -> Result<Option<Splice>, Refusal> {
    if splices.is_empty() || HAS_COMPAT.is_match(&p.file.text) {
        return Ok(None);
    }
    let includes: Vec<Node> = children(p.root())
        .filter(|n| n.kind() == "preproc_include")
        .collect();
    let include = includes
        .iter()
        .find(|n| field(**n, F.path).is_some_and(|path| is_python_h(p.text(path))))
        .or(includes.last())
        .ok_or_else(|| {
            Refusal(format!(
                "no critical-section patch: {} has no top-level #include to put the \
                 Python < 3.13 guard after",
                p.file.path.display()
            ))
        })?;
    let nl = p.line_ending();
    let text = &p.file.text;
    let (at, lead) = match text[include.start_byte()..].find('\n') {
        Some(offset) => (include.start_byte() + offset + 1, ""),
        None => (text.len(), nl),
    };
    if splices.iter().any(|s| s.range.start < at) {
        return Err(Refusal(format!(
            "no critical-section patch: in {} a wrapped function comes before the #include \
             the Python < 3.13 guard must follow",
            p.file.path.display()
        )));
    }
    let guard: String = COMPAT_GUARD.iter().map(|l| format!("{l}{nl}")).collect();
    Ok(Some(Splice::insert(at, format!("{lead}{guard}"))))
}

fn is_python_h(path: &str) -> bool {
    matches!(path, "<Python.h>" | "\"Python.h\"")
}
