//! Making an integer counter atomic with C11's `_Atomic` on its declaration: `++`, `--` and
//! compound assignments become atomic read-modify-writes, plain reads and writes atomic loads
//! and stores, in a one-line diff that gcc and clang build for every integer type.

use std::collections::HashSet;
use std::fmt;
use std::sync::LazyLock;

use regex::Regex;
use tree_sitter::Node;

use super::{
    children, descendants, field, file_edits, mentions, Parsed, Patch, Refusal, SourceFile, Splice,
};
use crate::parse::F;

/// The counter to make atomic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AtomicTarget {
    /// A file-scope variable.
    Global(String),
    /// A struct field, used as `->field` or `.field`.
    Field { field: String },
}

impl fmt::Display for AtomicTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AtomicTarget::Global(name) => write!(f, "`{name}`"),
            AtomicTarget::Field { field } => write!(f, "field `{field}`"),
        }
    }
}

static FIXED_WIDTH_INTEGER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^u?int(?:_least|_fast)?(?:8|16|32|64)_t$").expect("valid regex"));

/// Adds `_Atomic` to the one declaration of `target` when every use stays correct with it.
pub fn atomic_patch(files: &[SourceFile], target: &AtomicTarget) -> Result<Patch, Refusal> {
    let refuse = |reason: String| Refusal(format!("no `_Atomic` patch for {target}: {reason}"));
    let parsed = Parsed::parse_all(files)?;
    let decl = Declaration::find(&parsed, target).map_err(refuse)?;
    let p = &parsed[decl.file];
    refuse_cpp(p).map_err(refuse)?;
    let ty = decl.integer_type(p).map_err(refuse)?;
    let ops = Uses::new(&parsed, target).check().map_err(refuse)?;
    let mut splices: Vec<Vec<Splice>> = parsed.iter().map(|_| Vec::new()).collect();
    splices[decl.file].push(Splice::insert(ty.start_byte(), "_Atomic ".to_string()));
    let summary = summary(&decl.display_name(p, target), &collapse(p.text(ty)), &ops);
    Ok(Patch {
        edits: file_edits(&parsed, splices),
        summary,
    })
}

fn summary(name: &str, ty: &str, ops: &[String]) -> String {
    let effect = match ops {
        [] => "its reads and writes become atomic loads and stores".to_string(),
        [op] => format!("its `{op}` becomes one atomic read-modify-write"),
        [init @ .., last] => {
            let init: Vec<String> = init.iter().map(|op| format!("`{op}`")).collect();
            format!(
                "its {} and `{last}` become atomic read-modify-writes",
                init.join(", ")
            )
        }
    };
    format!("make `{name}` an `_Atomic {ty}`: {effect}")
}

/// The declaration the qualifier goes on.
struct Declaration<'t> {
    file: usize,
    /// A `declaration` or `field_declaration`.
    node: Node<'t>,
    /// The declarator naming the target, outermost first down to its identifier.
    chain: Vec<Node<'t>>,
    /// The struct a field belongs to.
    owner: Option<Node<'t>>,
}

impl<'t> Declaration<'t> {
    fn find(parsed: &'t [Parsed], target: &AtomicTarget) -> Result<Self, String> {
        let found: Vec<Declaration> = parsed
            .iter()
            .enumerate()
            .flat_map(|(file, p)| candidates(file, p, target))
            .collect();
        let places: Vec<String> = found.iter().map(|d| parsed[d.file].at(d.node)).collect();
        let places = places.join(", ");
        match (found.len(), target) {
            (1, _) => Ok(found.into_iter().next().expect("one declaration")),
            (0, AtomicTarget::Global(_)) => {
                Err("no file-scope declaration of it in the given files".to_string())
            }
            (0, AtomicTarget::Field { .. }) => {
                Err("no struct in the given files declares it".to_string())
            }
            (n, AtomicTarget::Global(_)) => Err(format!(
                "it is declared {n} times ({}); every declaration needs the same qualifier, \
                 so edit them by hand",
                places
            )),
            (n, AtomicTarget::Field { field }) => Err(format!(
                "{n} structs declare a field `{field}` ({}), and its uses cannot be told apart \
                 without types",
                places
            )),
        }
    }

    /// The type node `_Atomic` goes before, when the declaration is a lone, unqualified integer.
    fn integer_type(&self, p: &Parsed<'t>) -> Result<Node<'t>, String> {
        let at = p.at(self.node);
        let declarators = self
            .node
            .children_by_field_id(F.declarator, &mut self.node.walk())
            .count();
        if declarators > 1 {
            return Err(format!(
                "its declaration at {at} declares {declarators} names; split it so only this \
                 one changes"
            ));
        }
        let inner: Vec<&str> = self.chain.iter().map(|n| n.kind()).collect();
        if inner.contains(&"pointer_declarator") {
            return Err(format!("it is a pointer ({at}), not an integer counter"));
        }
        if inner.contains(&"array_declarator") {
            return Err(format!("it is an array ({at}), not an integer counter"));
        }
        if has_child(self.node, "bitfield_clause") {
            return Err(format!(
                "it is a bit-field ({at}), which `_Atomic` cannot qualify"
            ));
        }
        let head = &p.file.text[self.node.start_byte()..self.chain[0].start_byte()];
        for (word, reason) in [
            ("_Atomic", "it is already `_Atomic`"),
            (
                "volatile",
                "it is `volatile`, chosen on purpose; make it atomic by hand",
            ),
            ("const", "it is `const`, so no thread writes it"),
            (
                "extern",
                "it is only declared `extern` here; its definition is not in the given files",
            ),
        ] {
            if mentions(head, word) {
                return Err(format!("{reason} ({at})"));
            }
        }
        let ty = field(self.node, F.type_)
            .ok_or_else(|| format!("its declaration at {at} has no type"))?;
        if !is_integer_type(p, ty) {
            return Err(format!(
                "its type `{}` ({at}) is not an integer type; only integer counters are made \
                 atomic mechanically",
                collapse(p.text(ty))
            ));
        }
        Ok(ty)
    }

    /// `call_count`, or `Struct.field` when the struct has a name.
    fn display_name(&self, p: &Parsed, target: &AtomicTarget) -> String {
        match target {
            AtomicTarget::Global(name) => name.clone(),
            AtomicTarget::Field { field } => match self.owner.and_then(|s| struct_name(p, s)) {
                Some(owner) => format!("{owner}.{field}"),
                None => field.clone(),
            },
        }
    }
}

/// Declarations of `target` in one file: file-scope variables, or fields of any struct.
fn candidates<'t>(file: usize, p: &'t Parsed, target: &AtomicTarget) -> Vec<Declaration<'t>> {
    let (kind, name) = match target {
        AtomicTarget::Global(name) => ("declaration", name),
        AtomicTarget::Field { field } => ("field_declaration", field),
    };
    descendants(p.root())
        .filter(|n| n.kind() == kind)
        .filter(|n| kind == "field_declaration" || !inside_function(*n))
        .filter_map(|node| {
            let chain = node
                .children_by_field_id(F.declarator, &mut node.walk())
                .map(declarator_chain)
                .find(|chain| chain.last().is_some_and(|id| p.text(*id) == name))?;
            let is_function = chain.iter().any(|n| n.kind() == "function_declarator");
            (!is_function).then(|| Declaration {
                file,
                node,
                chain,
                owner: node.parent().and_then(|list| list.parent()),
            })
        })
        .collect()
}

fn inside_function(node: Node) -> bool {
    std::iter::successors(node.parent(), Node::parent).any(|n| n.kind() == "function_definition")
}

/// A declarator down to the identifier it declares: `*items[4]` → pointer, array, identifier.
fn declarator_chain(mut node: Node) -> Vec<Node> {
    let mut chain = Vec::new();
    loop {
        chain.push(node);
        let inner = match node.kind() {
            "identifier" | "field_identifier" => return chain,
            "init_declarator" => {
                chain.pop();
                field(node, F.declarator)
            }
            "parenthesized_declarator" => node.named_child(0),
            _ => field(node, F.declarator),
        };
        match inner {
            Some(inner) => node = inner,
            None => return chain,
        }
    }
}

fn has_child(node: Node, kind: &str) -> bool {
    children(node).any(|c| c.kind() == kind)
}

/// `struct tag` or the typedef name of an anonymous struct.
fn struct_name<'a>(p: &Parsed<'a>, node: Node) -> Option<&'a str> {
    if let Some(name) = field(node, F.name) {
        return Some(p.text(name));
    }
    let typedef = node.parent().filter(|n| n.kind() == "type_definition")?;
    field(typedef, F.declarator)
        .filter(|d| d.kind() == "type_identifier")
        .map(|d| p.text(d))
}

fn is_integer_type(p: &Parsed, ty: Node) -> bool {
    match ty.kind() {
        "primitive_type" | "type_identifier" => is_integer_name(p.text(ty)),
        // `unsigned`, `long long`, `unsigned char`; not `long double`.
        "sized_type_specifier" => {
            field(ty, F.type_).is_none_or(|t| matches!(p.text(t), "int" | "char"))
        }
        _ => false,
    }
}

fn is_integer_name(name: &str) -> bool {
    matches!(
        name,
        "char"
            | "short"
            | "int"
            | "long"
            | "size_t"
            | "ssize_t"
            | "ptrdiff_t"
            | "intptr_t"
            | "uintptr_t"
            | "intmax_t"
            | "uintmax_t"
            | "Py_ssize_t"
            | "Py_hash_t"
            | "Py_uhash_t"
    ) || FIXED_WIDTH_INTEGER.is_match(name)
}

/// Whitespace runs as single spaces: `unsigned  long` → `unsigned long`.
fn collapse(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A macro definition: its file, name, body, and whether it takes parameters.
struct Macro<'p, 'a> {
    file: &'p Parsed<'a>,
    name: &'a str,
    body: &'a str,
    takes_parameters: bool,
}

/// Every use of the target in the files, and in the macros that expand to one.
struct Uses<'p, 'a> {
    parsed: &'p [Parsed<'a>],
    target: &'p AtomicTarget,
    macros: Vec<Macro<'p, 'a>>,
    /// Macros whose bodies use the target (or another such macro).
    aliases: HashSet<&'a str>,
}

impl<'p, 'a> Uses<'p, 'a> {
    fn new(parsed: &'p [Parsed<'a>], target: &'p AtomicTarget) -> Self {
        let mut uses = Uses {
            parsed,
            target,
            macros: parsed.iter().flat_map(macros).collect(),
            aliases: HashSet::new(),
        };
        // A macro that mentions a macro using the target uses it too.
        loop {
            let found: Vec<&str> = uses
                .macros
                .iter()
                .filter(|m| !uses.aliases.contains(m.name) && uses.mentioned_in(m.body))
                .map(|m| m.name)
                .collect();
            if found.is_empty() {
                return uses;
            }
            uses.aliases.extend(found);
        }
    }

    fn mentioned_in(&self, text: &str) -> bool {
        let direct = match self.target {
            AtomicTarget::Global(name) => mentions(text, name),
            AtomicTarget::Field { field } => text
                .match_indices(field.as_str())
                .any(|(at, _)| is_member_access(text, at, field.len())),
        };
        direct || self.aliases.iter().any(|alias| mentions(text, alias))
    }

    /// The read-modify-write operators applied to the target, or why `_Atomic` would not do.
    fn check(&self) -> Result<Vec<String>, String> {
        let mut ops = Vec::new();
        for p in self.parsed {
            self.check_file(p, &mut ops)?;
        }
        for m in self.macros.iter().filter(|m| self.aliases.contains(m.name)) {
            self.check_macro(m, &mut ops)?;
        }
        Ok(ops)
    }

    fn check_file(&self, p: &Parsed, ops: &mut Vec<String>) -> Result<(), String> {
        let uses: Vec<Node> = descendants(p.root())
            .filter(|n| self.is_use(p, *n))
            .collect();
        if !uses.is_empty() {
            refuse_cpp(p)?;
        }
        let garbled = error_nodes(p.root())
            .into_iter()
            .find(|error| self.mentioned_in(p.text(enclosing_item(*error))));
        if let Some(error) = garbled {
            return Err(format!(
                "{} does not parse around a use, so not every use can be checked",
                p.at(error)
            ));
        }
        for node in uses {
            self.check_use(p, node, &p.at(node), ops)?;
        }
        Ok(())
    }

    /// A macro body is checked as the statements it expands to.
    fn check_macro(&self, m: &Macro, ops: &mut Vec<String>) -> Result<(), String> {
        let at = format!("macro `{}` in {}", m.name, m.file.file.path.display());
        let source = SourceFile {
            path: m.file.file.path.clone(),
            text: format!("void ftreview_macro_body(void) {{ {} ; }}", m.body),
        };
        let expansion = Parsed::new(&source).map_err(|r| r.0)?;
        if expansion.root().has_error() {
            return Err(format!(
                "{at} uses it in a form that cannot be parsed and checked"
            ));
        }
        for node in descendants(expansion.root()).filter(|n| self.is_use(&expansion, *n)) {
            self.check_use(&expansion, node, &at, ops)?;
        }
        Ok(())
    }

    fn is_use(&self, p: &Parsed, node: Node) -> bool {
        let is_alias = |n: Node| n.kind() == "identifier" && self.aliases.contains(&p.text(n));
        match (node.kind(), self.target) {
            ("identifier", AtomicTarget::Global(name)) if p.text(node) == name => true,
            ("identifier", _) => is_alias(node),
            ("field_expression", AtomicTarget::Field { field: name }) => {
                field(node, F.field).is_some_and(|f| p.text(f) == name)
            }
            ("call_expression", _) => field(node, F.function).is_some_and(is_alias),
            _ => false,
        }
    }

    /// Records the operator of a read-modify-write use; refuses an address taken or a write
    /// computed from a separate read.
    fn check_use(
        &self,
        p: &Parsed,
        node: Node,
        at: &str,
        ops: &mut Vec<String>,
    ) -> Result<(), String> {
        let mut operand = node;
        while let Some(parent) = operand
            .parent()
            .filter(|n| n.kind() == "parenthesized_expression")
        {
            operand = parent;
        }
        let Some(parent) = operand.parent() else {
            return Ok(());
        };
        if let Some(name) = self.writing_macro_taking(p, parent) {
            return Err(format!(
                "it is passed to macro `{name}` at {at}, whose body takes an address or \
                 assigns, so what it does with it cannot be checked"
            ));
        }
        let operator = field(parent, F.operator).map(|op| p.text(op));
        match (parent.kind(), operator) {
            ("pointer_expression", Some("&")) => Err(format!(
                "its address is taken (`{}` at {at}), and an `_Atomic` object's address \
                 does not convert to a plain pointer",
                collapse(p.text(parent))
            )),
            ("update_expression", Some(op)) => {
                record(ops, op);
                Ok(())
            }
            ("assignment_expression", Some(op)) if field(parent, F.left) == Some(operand) => {
                if op != "=" {
                    record(ops, op);
                    return Ok(());
                }
                let right = field(parent, F.right).ok_or("an assignment without a right side")?;
                if descendants(right).any(|n| self.is_use(p, n)) {
                    return Err(format!(
                        "`{}` at {at} reads it and writes it back in two steps, and an \
                         update in between would be lost; make it one compound assignment \
                         (`+=`) or take a lock",
                        collapse(p.text(parent))
                    ));
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// The function-like macro of the files an argument list belongs to, when its body takes
    /// an address (`&`) or assigns (`=`): it could do either to the argument.
    fn writing_macro_taking(&self, p: &Parsed, arguments: Node) -> Option<&str> {
        let call = arguments
            .parent()
            .filter(|_| arguments.kind() == "argument_list")?;
        let callee = field(call, F.function).map(|f| p.text(f))?;
        self.macros
            .iter()
            .find(|m| {
                m.takes_parameters && m.name == callee && ADDRESS_OR_ASSIGNMENT.is_match(m.body)
            })
            .map(|m| m.name)
    }
}

/// A unary or binary `&` that is not `&&`, or a plain `=` that is not a comparison.
static ADDRESS_OR_ASSIGNMENT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:^|[^&])&(?:[^&]|$)|(?:^|[^=!<>+\-*/%&|^])=(?:[^=]|$)").expect("valid regex")
});

/// The macro definitions of a file.
fn macros<'p, 'a>(p: &'p Parsed<'a>) -> Vec<Macro<'p, 'a>> {
    descendants(p.root())
        .filter(|n| matches!(n.kind(), "preproc_def" | "preproc_function_def"))
        .filter_map(|n| {
            Some(Macro {
                file: p,
                name: p.text(field(n, F.name)?),
                body: p.text(field(n, F.value)?),
                takes_parameters: n.kind() == "preproc_function_def",
            })
        })
        .collect()
}

/// The ERROR and MISSING nodes of a tree, outermost only.
fn error_nodes(root: Node) -> Vec<Node> {
    let mut found = Vec::new();
    let mut stack = vec![root];
    while let Some(node) = stack.pop() {
        if node.is_error() || node.is_missing() {
            found.push(node);
        } else if node.has_error() {
            stack.extend(children(node));
        }
    }
    found
}

/// The function a node is in, else its top-level item: the extent a parse error can garble.
fn enclosing_item(node: Node) -> Node {
    let mut item = node;
    while let Some(parent) = item.parent() {
        if item.kind() == "function_definition" || parent.parent().is_none() {
            break;
        }
        item = parent;
    }
    item
}

fn record(ops: &mut Vec<String>, op: &str) {
    if !ops.iter().any(|seen| seen == op) {
        ops.push(op.to_string());
    }
}

/// `->field` or `.field` at `at` in macro text.
fn is_member_access(text: &str, at: usize, len: usize) -> bool {
    let before = text[..at].trim_end();
    let after = &text[at + len..];
    (before.ends_with("->") || before.ends_with('.'))
        && !after.starts_with(|c: char| c.is_alphanumeric() || c == '_')
}

fn refuse_cpp(p: &Parsed) -> Result<(), String> {
    let is_cpp = p
        .file
        .path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e, "cc" | "cpp" | "cxx" | "c++" | "hpp" | "hh" | "hxx"));
    if is_cpp {
        return Err(format!(
            "{} is C++, where `_Atomic` is not a keyword (use std::atomic there)",
            p.file.path.display()
        ));
    }
    Ok(())
}
