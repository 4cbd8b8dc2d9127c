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
    /// Which constructor the shared objects are built by (see `Vars::make_variant`).
    pub constructor_choice: u64,
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
            let pool = self.vars.pool(&ty.qualname, size).unwrap_or_default();
            built.push(format!("POOL = {}", self.vars.inline_makers(&pool)));
        }
        if let Some(setup) = self.hand_setup {
            built.push(format!("exec({}, globals())", py_str(setup)));
        }
        let helpers = helper_sources(&format!("{body}\n{}", built.join("\n")));
        if !helpers.is_empty() {
            statements.push(format!("exec({})", py_str(&helpers.join("\n\n"))));
        }
        statements.extend(built);
        statements
    }

    fn make(&self, ty: &TypeApi) -> String {
        let make = self
            .vars
            .make_variant(&ty.qualname, self.constructor_choice)
            .unwrap_or_default();
        self.vars.inline_makers(&make)
    }
}

fn single_statement(body: &str) -> String {
    if body.contains('\n') {
        format!("exec({})", py_str(body))
    } else {
        body.to_string()
    }
}

/// The definitions (from [`OP_HELPERS`]) of the helpers `text` calls, and of those they call.
fn helper_sources(text: &str) -> Vec<&'static str> {
    let definitions: Vec<(&str, &str)> = OP_HELPERS
        .split("\n\n\n")
        .filter_map(|chunk| {
            let chunk = chunk.trim();
            let name = chunk.strip_prefix("def ")?.split('(').next()?;
            Some((name, chunk))
        })
        .collect();
    let mut needed: Vec<bool> = definitions
        .iter()
        .map(|(name, _)| mentions(text, name))
        .collect();
    loop {
        let grown: Vec<bool> = definitions
            .iter()
            .zip(&needed)
            .map(|((name, _), &was)| {
                was || definitions
                    .iter()
                    .zip(&needed)
                    .any(|((other, source), &on)| on && other != name && mentions(source, name))
            })
            .collect();
        if grown == needed {
            break;
        }
        needed = grown;
    }
    definitions
        .iter()
        .zip(&needed)
        .filter(|(_, &on)| on)
        .map(|((_, source), _)| *source)
        .collect()
}

fn with_imports(ctx: &ReproContext, statements: Vec<String>) -> String {
    let text = statements.join("; ");
    let mut imports: Vec<&str> = ctx.vars.imports();
    imports.extend(STDLIB.iter().copied().filter(|m| uses_module(&text, m)));
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

/// `text` uses an attribute of the module `name` (`itertools.islice`).
fn uses_module(text: &str, name: &str) -> bool {
    text.match_indices(&format!("{name}.")).any(|(at, _)| {
        !text[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
    })
}

#[cfg(test)]
mod tests {
    use super::{helper_sources, mentions, uses_module};

    #[test]
    fn helpers_come_with_the_helpers_they_call() {
        let sources = helper_sources("_touch(S.keys())");
        assert_eq!(sources.len(), 2, "{sources:?}");
        assert!(sources[0].starts_with("def _defines(") && sources[1].starts_with("def _touch("));
        assert!(helper_sources("S.add(1)").is_empty());
    }

    #[test]
    fn modules_count_when_an_attribute_is_used() {
        assert!(uses_module("copy.copy(S)", "copy"));
        assert!(!uses_module("a copy of S", "copy"));
        assert!(!uses_module("pkg.copy.x", "copy"));
    }

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
