//! One-line Python reproducers of a scenario's operations: what an anomaly's `call` says.
//!
//! `import pkg; S = pkg.T(); S.add(1)`: the imports, the shared objects the op uses (built by
//! their makers' expressions, inlined), the names the worker gives it (`tid`, `i`, `rng`) and
//! the op itself. A one-liner cannot define functions, so helpers and multi-line statements
//! are `exec`'d from string literals.

use crate::generate::py_str;
use crate::model::TypeApi;
use crate::ops::Vars;

/// The helpers ops call (`_touch`, `_first_built`); also part of every script.
pub(crate) const OP_HELPERS: &str = include_str!("op_helpers.py");
const HELPER_NAMES: [&str; 3] = ["_defines", "_touch", "_first_built"];
const STDLIB: [&str; 7] = [
    "copy",
    "functools",
    "gc",
    "itertools",
    "operator",
    "pickle",
    "random",
];

/// What the ops of one scenario may refer to.
pub(crate) struct ReproContext<'a> {
    pub vars: &'a Vars<'a>,
    pub subjects: &'a [(&'static str, &'a TypeApi)],
    pub pool: Option<(&'a TypeApi, usize)>,
    pub hand_setup: Option<&'a str>,
}

impl ReproContext<'_> {
    /// A one-line reproducer of `body` (an op's statements).
    pub fn one_line(&self, body: &str) -> String {
        let body = self.vars.inline_makers(body);
        let mut statements = self.prelude(&body);
        statements.push(single_statement(&body));
        with_imports(self, statements)
    }

    /// The statements that build `name` (a shared object), imports included.
    pub fn setup_of(&self, name: &str) -> String {
        with_imports(self, self.prelude(name))
    }

    fn prelude(&self, body: &str) -> Vec<String> {
        let mut statements = Vec::new();
        if mentions(body, "rng") {
            statements.push("rng = random.Random(0)".to_string());
        }
        for name in ["tid", "i"] {
            if mentions(body, name) {
                statements.push(format!("{name} = 0"));
            }
        }
        let mut built = Vec::new();
        for (name, ty) in self.subjects {
            if mentions(body, name) {
                built.push(format!("{name} = {}", self.make(ty)));
            }
        }
        if let Some((ty, size)) = self.pool.filter(|_| mentions(body, "POOL")) {
            built.push(format!("POOL = [{} for _ in range({size})]", self.make(ty)));
        }
        if let Some(setup) = self.hand_setup {
            built.push(format!("exec({}, globals())", py_str(setup)));
        }
        let uses_helper = |text: &str| HELPER_NAMES.iter().any(|h| mentions(text, h));
        if uses_helper(body) || built.iter().any(|s| uses_helper(s)) {
            statements.push(format!("exec({})", py_str(OP_HELPERS)));
        }
        statements.extend(built);
        statements
    }

    fn make(&self, ty: &TypeApi) -> String {
        self.vars
            .inline_makers(&self.vars.make(&ty.qualname).unwrap_or_default())
    }
}

fn single_statement(body: &str) -> String {
    if body.contains('\n') {
        format!("exec({})", py_str(body))
    } else {
        body.to_string()
    }
}

fn with_imports(ctx: &ReproContext, statements: Vec<String>) -> String {
    let text = statements.join("; ");
    let mut imports: Vec<&str> = ctx.vars.imports();
    imports.extend(STDLIB.iter().copied().filter(|m| mentions(&text, m)));
    if imports.is_empty() {
        text
    } else {
        format!("import {}; {text}", imports.join(", "))
    }
}

/// `text` uses the identifier `name` (not as part of a longer name or an attribute).
pub(crate) fn mentions(text: &str, name: &str) -> bool {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    text.match_indices(name).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + name.len()..].chars().next();
        !before.is_some_and(|c| is_ident(c) || c == '.') && !after.is_some_and(is_ident)
    })
}

#[cfg(test)]
mod tests {
    use super::mentions;

    #[test]
    fn mentions_whole_identifiers_only() {
        assert!(mentions("S.add(1)", "S"));
        assert!(mentions("operator.iadd(S, O)", "O"));
        assert!(!mentions("SO.add(1)", "S"));
        assert!(!mentions("pkg.S", "S"));
        assert!(mentions("x = rng.randrange(3)", "rng"));
        assert!(!mentions("strange", "rng"));
    }
}
