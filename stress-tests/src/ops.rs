//! Operations: one Python statement a worker runs per iteration, built from the model.
//!
//! Shared objects are module globals of the script (`S`, `O`, `POOL`); an argument `@Type`
//! becomes a call of that type's maker (`make_0_Vector()`), or the other shared object.

use std::fmt::Write as _;

use crate::hints::Hints;
use crate::model::{ApiModel, Callable, Method, Mutation, TypeApi};

/// Arguments sets per callable turned into operations.
const ARG_SETS_PER_CALLABLE: usize = 2;
/// Constructors per type used for churn.
const CONSTRUCTORS_PER_TYPE: usize = 3;
/// Items a reader takes from an iterator.
const ITER_ITEMS: usize = 256;

/// `operator` functions for in-place operators (a statement `S |= x` would make `S` local).
const INPLACE: [(&str, &str); 6] = [
    ("+=", "iadd"),
    ("-=", "isub"),
    ("*=", "imul"),
    ("|=", "ior"),
    ("&=", "iand"),
    ("^=", "ixor"),
];

#[derive(Debug, Clone)]
pub(crate) struct Op {
    pub label: String,
    pub body: String,
    /// The extension callable the op exercises, if one.
    pub callable: Option<String>,
    /// For a plain call: the callee and argument expressions, so it can be bound ahead.
    pub call: Option<(String, String)>,
}

impl Op {
    pub fn statement(
        label: impl Into<String>,
        body: impl Into<String>,
        callable: Option<&str>,
    ) -> Op {
        Op {
            label: label.into(),
            body: body.into(),
            callable: callable.map(str::to_string),
            call: None,
        }
    }

    fn call(label: String, callee: String, args: String, callable: &str) -> Op {
        let body = format!("{callee}({args})");
        Op {
            label,
            body,
            callable: Some(callable.to_string()),
            call: Some((callee, args)),
        }
    }

    /// The same op applied to a pool member picked at random.
    fn on_pool_member(&self, var: &str) -> Op {
        let body = format!("{var} = POOL[rng.randrange(len(POOL))]\n{}", self.body);
        Op {
            label: format!("pool: {}", self.label),
            body,
            callable: self.callable.clone(),
            call: None,
        }
    }

    /// `bind_N()`, returning the call as a zero-argument callable (see the harness's
    /// `_first_calls`); `None` for ops that are not plain calls.
    pub fn render_binder(&self, py: &mut String, index: usize) -> Option<()> {
        let (callee, args) = self.call.as_ref()?;
        let sep = if args.is_empty() { "" } else { ", " };
        let _ = writeln!(
            py,
            "\ndef bind_{index}():\n    return functools.partial({callee}{sep}{args})"
        );
        Some(())
    }

    pub fn render_def(&self, py: &mut String, index: usize) {
        let _ = writeln!(py, "\ndef op_{index}(tid, i, rng):");
        for line in self.body.lines() {
            let _ = writeln!(py, "    {line}");
        }
    }
}

struct TypeEntry<'a> {
    api: &'a TypeApi,
    /// Python expression for the type object.
    access: String,
    maker: String,
    /// Constructor argument lists (`["=expr"]` for a whole expression).
    constructors: Vec<Vec<String>>,
}

/// The types of a model, how to reach and build them.
pub(crate) struct Vars<'a> {
    model: &'a ApiModel,
    types: Vec<TypeEntry<'a>>,
}

impl<'a> Vars<'a> {
    pub fn new(model: &'a ApiModel, hints: &Hints) -> Self {
        let mut types: Vec<TypeEntry> = Vec::new();
        for module in &model.modules {
            for api in &module.types {
                let mut constructors: Vec<Vec<String>> =
                    api.constructors.iter().map(|c| c.args.clone()).collect();
                if constructors.is_empty() {
                    let hinted = hints.constructors.get(&api.qualname).into_iter().flatten();
                    constructors.extend(hinted.map(|expr| vec![format!("={expr}")]));
                }
                let maker = format!("make_{}_{}", types.len(), identifier(&api.name));
                types.push(TypeEntry {
                    api,
                    access: format!("{}.{}", module.name, api.name),
                    maker,
                    constructors,
                });
            }
        }
        Vars { model, types }
    }

    pub fn constructible(&self) -> impl Iterator<Item = &'a TypeApi> + '_ {
        self.types
            .iter()
            .filter(|t| !t.constructors.is_empty())
            .map(|t| t.api)
    }

    fn entry(&self, qualname: &str) -> Option<&TypeEntry<'a>> {
        self.types
            .iter()
            .find(|t| t.api.qualname == qualname && !t.constructors.is_empty())
    }

    /// A call building a fresh instance.
    pub fn make(&self, qualname: &str) -> Option<String> {
        self.entry(qualname).map(|t| format!("{}()", t.maker))
    }

    pub fn imports(&self) -> Vec<&'a str> {
        let mut names: Vec<&str> = self
            .model
            .modules
            .iter()
            .filter(|m| m.import_error.is_none())
            .map(|m| m.name.as_str())
            .collect();
        names.sort();
        names.dedup();
        names
    }

    pub fn render_makers(&self, py: &mut String) {
        for entry in self.types.iter().filter(|t| !t.constructors.is_empty()) {
            let _ = writeln!(py, "\ndef {}():", entry.maker);
            let _ = writeln!(
                py,
                "    return {}",
                self.construct(entry, &entry.constructors[0], &Subst::None)
                    .unwrap_or_default()
            );
        }
    }

    fn construct(&self, entry: &TypeEntry, args: &[String], subst: &Subst) -> Option<String> {
        if let [whole] = args {
            if let Some(expr) = whole.strip_prefix('=') {
                return Some(expr.to_string());
            }
        }
        Some(format!("{}({})", entry.access, self.args(args, subst)?))
    }

    /// Renders argument expressions; `None` when one names a type without constructor.
    fn args(&self, args: &[String], subst: &Subst) -> Option<String> {
        let rendered: Option<Vec<String>> = args.iter().map(|arg| self.arg(arg, subst)).collect();
        rendered.map(|r| r.join(", "))
    }

    fn arg(&self, arg: &str, subst: &Subst) -> Option<String> {
        match arg.strip_prefix('@') {
            Some(qualname) => match subst {
                Subst::Var { qualname: q, var } if *q == qualname => Some(var.to_string()),
                _ => self.make(qualname),
            },
            None => Some(arg.to_string()),
        }
    }

    /// Constructor calls of any type that take an instance of `ty`, with `var` as that instance.
    fn constructors_taking(&self, ty: &TypeApi, var: &str) -> Vec<Op> {
        let needle = format!("@{}", ty.qualname);
        let subst = Subst::Var {
            qualname: &ty.qualname,
            var,
        };
        let mut ops = Vec::new();
        for entry in self.types.iter() {
            for args in entry
                .constructors
                .iter()
                .filter(|args| args.contains(&needle))
            {
                if let Some(call) = self.construct(entry, args, &subst) {
                    let label = format!("{}({})", entry.api.name, label_args(args));
                    ops.push(Op::statement(
                        label,
                        format!("_touch({call})"),
                        Some(&entry.api.qualname),
                    ));
                }
            }
        }
        ops
    }
}

/// Which `@Type` argument stands for a shared object instead of a fresh instance.
enum Subst<'s> {
    None,
    Var { qualname: &'s str, var: &'s str },
}

/// `obj.method(args)` for the method's working argument sets.
pub(crate) fn method_ops(
    vars: &Vars,
    ty: &TypeApi,
    method: &Method,
    var: &str,
    other: Option<&str>,
) -> Vec<Op> {
    let subst = other.map_or(Subst::None, |o| Subst::Var {
        qualname: &ty.qualname,
        var: o,
    });
    method
        .call
        .arg_sets
        .iter()
        .filter(|s| s.accepted())
        .take(ARG_SETS_PER_CALLABLE)
        .filter_map(|set| {
            let label = format!(
                "{}.{}({})",
                ty.name,
                method.call.name,
                label_args(&set.args)
            );
            let args = vars.args(&set.args, &subst)?;
            // A reader's result is read too: views and iterators walk the object's internals.
            if method.mutation == Mutation::None {
                return Some(Op::statement(
                    label,
                    format!("_touch({var}.{}({args}))", method.call.name),
                    Some(&method.call.qualname),
                ));
            }
            Some(Op::call(
                label,
                format!("{var}.{}", method.call.name),
                args,
                &method.call.qualname,
            ))
        })
        .collect()
}

pub(crate) fn call_function(vars: &Vars, function: &Callable, args: &[String]) -> Option<Op> {
    let module = function.qualname.rsplit_once('.').map_or("", |(m, _)| m);
    let label = format!("{}({})", function.name, label_args(args));
    Some(Op::call(
        label,
        format!("{module}.{}", function.name),
        vars.args(args, &Subst::None)?,
        &function.qualname,
    ))
}

/// Everything that changes `var`: mutating methods, item assignment and deletion, in-place
/// operators, property assignment.
pub(crate) fn writers(vars: &Vars, ty: &TypeApi, var: &str, other: Option<&str>) -> Vec<Op> {
    let mut ops: Vec<Op> = ty
        .methods
        .iter()
        .filter(|m| m.mutation.may_write())
        .flat_map(|m| method_ops(vars, ty, m, var, other))
        .collect();
    if let Some(p) = &ty.protocols {
        if let Some((key, value)) = &p.set_item {
            for k in key_variants(key) {
                ops.push(Op::statement(
                    format!("{}[{k}] = {value}", ty.name),
                    format!("{var}[{k}] = {value}"),
                    None,
                ));
            }
        }
        if p.del_item {
            for k in p.item_key.iter().flat_map(|key| key_variants(key)) {
                ops.push(Op::statement(
                    format!("del {}[{k}]", ty.name),
                    format!("del {var}[{k}]"),
                    None,
                ));
            }
        }
        let right = other
            .map(str::to_string)
            .or_else(|| vars.make(&ty.qualname))
            .unwrap_or_default();
        for op in &p.inplace {
            if let Some((_, func)) = INPLACE.iter().find(|(sym, _)| sym == op) {
                ops.push(Op::statement(
                    format!("{} {op} {}", ty.name, ty.name),
                    format!("operator.{func}({var}, {right})"),
                    None,
                ));
            }
        }
    }
    for prop in ty.properties.iter().filter(|p| p.writable) {
        ops.push(Op::statement(
            format!("{}.{} = ...", ty.name, prop.name),
            format!("{var}.{0} = {var}.{0}", prop.name),
            None,
        ));
    }
    ops
}

/// Everything that only reads `var`: protocols, non-mutating methods, readable properties,
/// objects derived from it (views, proxies).
pub(crate) fn readers(vars: &Vars, ty: &TypeApi, var: &str, other: Option<&str>) -> Vec<Op> {
    let name = &ty.name;
    let mut ops = vec![Op::statement(
        format!("repr({name})"),
        format!("repr({var})"),
        None,
    )];
    if let Some(p) = &ty.protocols {
        let mut push = |on: bool, label: String, body: String| {
            if on {
                ops.push(Op::statement(label, body, None));
            }
        };
        push(p.len, format!("len({name})"), format!("len({var})"));
        push(
            p.iter,
            format!("iter({name})"),
            format!("list(itertools.islice(iter({var}), {ITER_ITEMS}))"),
        );
        push(p.copy, format!("copy({name})"), format!("copy.copy({var})"));
        push(
            p.pickle,
            format!("pickle({name})"),
            format!("pickle.dumps({var})"),
        );
        push(
            p.buffer,
            format!("memoryview({name})"),
            format!("bytes(memoryview({var}))"),
        );
        let peer = other.unwrap_or(var);
        push(
            p.richcompare,
            format!("{name} == {name}"),
            format!("{var} == {peer}"),
        );
        for op in &p.number {
            push(
                true,
                format!("{name} {op} {name}"),
                format!("{var} {op} {peer}"),
            );
        }
        if let Some(key) = &p.item_key {
            push(true, format!("{name}[{key}]"), format!("{var}[{key}]"));
        }
        let probe = p.item_key.clone().unwrap_or_else(|| "1".into());
        push(
            p.contains,
            format!("{probe} in {name}"),
            format!("{probe} in {var}"),
        );
    }
    for prop in ty.properties.iter().filter(|p| p.readable) {
        ops.push(Op::statement(
            format!("{name}.{}", prop.name),
            format!("{var}.{}", prop.name),
            None,
        ));
    }
    ops.extend(
        ty.methods
            .iter()
            .filter(|m| m.mutation == Mutation::None)
            .flat_map(|m| method_ops(vars, ty, m, var, other)),
    );
    ops.extend(vars.constructors_taking(ty, var));
    ops
}

/// Operations between the two shared objects: methods taking another instance, binary and
/// in-place operators, comparisons.
pub(crate) fn pair_ops(vars: &Vars, ty: &TypeApi, var: &str, other: &str) -> Vec<Op> {
    let needle = format!("@{}", ty.qualname);
    let mut ops: Vec<Op> = ty
        .methods
        .iter()
        .filter(|m| {
            m.call
                .arg_sets
                .iter()
                .any(|s| s.accepted() && s.args.contains(&needle))
        })
        .flat_map(|m| {
            method_ops(vars, ty, m, var, Some(other))
                .into_iter()
                .filter(|op| op.body.contains(other))
        })
        .collect();
    if let Some(p) = &ty.protocols {
        for op in &p.number {
            ops.push(Op::statement(
                format!("{0} {op} other {0}", ty.name),
                format!("{var} {op} {other}"),
                None,
            ));
        }
        for op in &p.inplace {
            if let Some((_, func)) = INPLACE.iter().find(|(sym, _)| sym == op) {
                ops.push(Op::statement(
                    format!("{0} {op} other {0}", ty.name),
                    format!("operator.{func}({var}, {other})"),
                    None,
                ));
            }
        }
        if p.richcompare {
            ops.push(Op::statement(
                format!("{0} == other {0}", ty.name),
                format!("{var} == {other}"),
                None,
            ));
        }
    }
    ops
}

/// Construction and destruction across threads: fresh objects, a pool whose members are
/// replaced (deallocated by whichever thread drops the last reference) while others use
/// them, objects built from the shared one, and GC.
pub(crate) fn churn(vars: &Vars, ty: &TypeApi, shared: &str, pool_size: usize) -> Vec<Op> {
    let mut ops = Vec::new();
    if let Some(entry) = vars.entry(&ty.qualname) {
        for args in entry.constructors.iter().take(CONSTRUCTORS_PER_TYPE) {
            if let Some(call) = vars.construct(entry, args, &Subst::None) {
                ops.push(Op::statement(
                    format!("new {}({})", ty.name, label_args(args)),
                    format!("x = {call}\ndel x"),
                    Some(&ty.qualname),
                ));
            }
        }
    }
    if let Some(make) = vars.make(&ty.qualname) {
        ops.push(Op::statement(
            format!("replace pool {}", ty.name),
            format!("POOL[rng.randrange({pool_size})] = {make}"),
            Some(&ty.qualname),
        ));
    }
    ops.extend(
        readers(vars, ty, "x", None)
            .iter()
            .map(|op| op.on_pool_member("x")),
    );
    ops.extend(
        writers(vars, ty, "x", None)
            .iter()
            .map(|op| op.on_pool_member("x")),
    );
    ops.extend(vars.constructors_taking(ty, shared));
    ops.push(Op::statement(
        "gc.collect()",
        "if rng.random() < 0.02:\n    gc.collect()",
        None,
    ));
    ops
}

/// A key as given, and for string keys also one of 32 generated keys, so maps grow and shrink.
fn key_variants(key: &str) -> Vec<String> {
    let mut keys = vec![key.to_string()];
    if key.starts_with('\'') || key.starts_with('"') {
        keys.push("'k%d' % rng.randrange(32)".into());
    }
    keys
}

fn label_args(args: &[String]) -> String {
    let short: Vec<String> = args
        .iter()
        .map(|a| match a.strip_prefix('@') {
            Some(q) => format!("<{}>", q.rsplit('.').next().unwrap_or(q)),
            None => a.strip_prefix('=').unwrap_or(a).chars().take(40).collect(),
        })
        .collect();
    short.join(", ")
}

fn identifier(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}
