//! Operations: one Python statement a worker runs per iteration, built from the model.
//!
//! Shared objects are module globals of the script (`S`, `O`, `POOL`); an argument `@Type`
//! becomes a call of that type's maker (`make_0_Vector()`), or the other shared object.

use std::fmt::Write as _;

use crate::hints::Hints;
use crate::model::{
    ApiModel, ArgSet, ArgSource, Callable, Constructor, Keyword, Method, ModelSource, Mutation,
    TrialOutcome, TypeApi,
};

/// Tried argument sets per callable turned into operations (untried ones are all used: most
/// fail with `TypeError`).
const ARG_SETS_PER_CALLABLE: usize = 3;
/// Constructors per type used for churn.
const CONSTRUCTORS_PER_TYPE: usize = 3;
/// Items a reader takes from an iterator.
const ITER_ITEMS: usize = 256;

/// In-place operators: the `operator` function (a statement `S |= x` would make `S` local)
/// and the dunder.
const INPLACE: [(&str, &str, &str); 6] = [
    ("+=", "iadd", "__iadd__"),
    ("-=", "isub", "__isub__"),
    ("*=", "imul", "__imul__"),
    ("|=", "ior", "__ior__"),
    ("&=", "iand", "__iand__"),
    ("^=", "ixor", "__ixor__"),
];
/// Binary operators and their dunders.
const BINARY: [(&str, &str); 6] = [
    ("+", "__add__"),
    ("-", "__sub__"),
    ("*", "__mul__"),
    ("|", "__or__"),
    ("&", "__and__"),
    ("^", "__xor__"),
];

#[derive(Debug, Clone)]
pub(crate) struct Op {
    pub label: String,
    pub body: String,
    /// What the op exercises (`pkg.f`, `pkg.T.add`, `pkg.T.__len__`, `pkg.T.prop`), if known.
    pub callable: Option<String>,
    /// The op runs the extension's C code directly.
    pub reaches_c: bool,
    /// For a plain call: the callee and argument expressions, so it can be bound ahead.
    pub call: Option<(String, String)>,
}

impl Op {
    pub fn statement(label: impl Into<String>, body: impl Into<String>) -> Op {
        Op {
            label: label.into(),
            body: body.into(),
            callable: None,
            reaches_c: false,
            call: None,
        }
    }

    fn exercising(mut self, callable: String, reaches_c: bool) -> Op {
        self.callable = Some(callable);
        self.reaches_c = reaches_c;
        self
    }

    /// An operation on `ty` through one of its dunders (`len(S)` is `__len__`).
    fn slot(ty: &TypeApi, dunder: &str, label: String, body: String) -> Op {
        Op::statement(label, body).exercising(
            format!("{}.{dunder}", ty.qualname),
            ty.slot_reaches_c(dunder),
        )
    }

    fn call(label: String, callee: String, args: String, callable: &Callable) -> Op {
        let body = format!("{callee}({args})");
        Op {
            label,
            body,
            callable: Some(callable.qualname.clone()),
            reaches_c: callable.reaches_c,
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
            reaches_c: self.reaches_c,
            call: None,
        }
    }

    /// The same op applied to a fresh object built by `make`.
    pub fn on_fresh_object(&self, var: &str, make: &str) -> Op {
        Op {
            label: format!("fresh {make}: {}", self.label),
            body: format!("{var} = {make}\n{}", self.body),
            callable: self.callable.clone(),
            reaches_c: self.reaches_c,
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
    /// The catalogue's constructors (the hints' when it has none), then the tests'.
    constructors: Vec<Constructor>,
}

impl TypeEntry<'_> {
    /// The constructors objects are built by: the first, and every one the tests used.
    fn variants(&self) -> Vec<usize> {
        (0..self.constructors.len())
            .filter(|&i| i == 0 || self.constructors[i].source == ArgSource::Tests)
            .collect()
    }

    /// The maker function building with constructor `index`.
    fn maker_of(&self, index: usize) -> String {
        match index {
            0 => self.maker.clone(),
            _ => format!("{}_{index}", self.maker),
        }
    }
}

/// The types of a model, how to reach and build them.
pub(crate) struct Vars<'a> {
    pub model: &'a ApiModel,
    types: Vec<TypeEntry<'a>>,
}

impl<'a> Vars<'a> {
    pub fn new(model: &'a ApiModel, hints: &Hints) -> Self {
        let mut types: Vec<TypeEntry> = Vec::new();
        for module in &model.modules {
            for api in &module.types {
                let (catalogue, tests): (Vec<Constructor>, Vec<Constructor>) = api
                    .constructors
                    .iter()
                    .cloned()
                    .partition(|c| c.source == ArgSource::Catalogue);
                let mut constructors = catalogue;
                if constructors.is_empty() {
                    let hinted = hints.constructors.get(&api.qualname).into_iter().flatten();
                    constructors.extend(
                        hinted.map(|expr| Constructor::positional(vec![format!("={expr}")])),
                    );
                }
                constructors.extend(tests);
                let maker = format!("make_{}_{}", types.len(), identifier(&api.name));
                types.push(TypeEntry {
                    api,
                    access: api
                        .access
                        .clone()
                        .unwrap_or_else(|| format!("{}.{}", module.name, api.name)),
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

    /// A call building a fresh instance with the `choice`-th (modulo their number) of the
    /// constructors objects are built by.
    pub fn make_variant(&self, qualname: &str, choice: u64) -> Option<String> {
        let entry = self.entry(qualname)?;
        let variants = entry.variants();
        let index = variants[(choice % variants.len() as u64) as usize];
        Some(format!("{}()", entry.maker_of(index)))
    }

    /// A list of `size` fresh instances built by each constructor in turn.
    pub fn pool(&self, qualname: &str, size: usize) -> Option<String> {
        if self.variant_count(qualname) == 1 {
            return Some(format!("[{} for _ in range({size})]", self.make(qualname)?));
        }
        let built: Option<Vec<String>> = (0..size as u64)
            .map(|i| self.make_variant(qualname, i))
            .collect();
        Some(format!("[{}]", built?.join(", ")))
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
        for (entry, index) in self.makers() {
            let _ = writeln!(py, "\ndef {}():", entry.maker_of(index));
            let _ = writeln!(py, "    return {}", self.maker_expression(entry, index));
        }
    }

    /// Every maker: each constructible type with each constructor objects are built by.
    fn makers(&self) -> impl Iterator<Item = (&TypeEntry<'a>, usize)> + '_ {
        self.types
            .iter()
            .filter(|t| !t.constructors.is_empty())
            .flat_map(|t| t.variants().into_iter().map(move |i| (t, i)))
    }

    /// What a maker returns: its constructor, or with untried constructors (a model from
    /// static bindings) the first that builds at run time.
    fn maker_expression(&self, entry: &TypeEntry, index: usize) -> String {
        let built = |ctor: &Constructor| {
            self.construct(entry, ctor, &Subst::None)
                .unwrap_or_default()
        };
        match (self.model.source, index) {
            (ModelSource::StaticBindings, 0) => {
                let makers: Vec<String> = entry
                    .constructors
                    .iter()
                    .filter(|c| c.source == ArgSource::Catalogue)
                    .map(|ctor| format!("lambda: {}", built(ctor)))
                    .collect();
                format!("_first_built({})", makers.join(", "))
            }
            _ => built(&entry.constructors[index]),
        }
    }

    /// `text` with every maker call replaced by what the maker returns (for one-line
    /// reproducers, which cannot define functions).
    pub fn inline_makers(&self, text: &str) -> String {
        let mut out = text.to_string();
        for _ in 0..=self.types.len() {
            let before = out.clone();
            for (entry, index) in self.makers() {
                let call = format!("{}()", entry.maker_of(index));
                if out.contains(&call) {
                    out = out.replace(&call, &self.maker_expression(entry, index));
                }
            }
            if out == before {
                break;
            }
        }
        out
    }

    /// An expression building a fresh instance, with no maker function to call.
    pub fn fresh(&self, qualname: &str) -> Option<String> {
        self.make(qualname).map(|call| self.inline_makers(&call))
    }

    /// The arguments of `set` with `@Type` as fresh instances, or as `var` for `other`'s type.
    pub fn call_args(&self, set: &ArgSet, other: Option<(&str, &str)>) -> Option<String> {
        let subst = other.map_or(Subst::None, |(qualname, var)| Subst::Var { qualname, var });
        self.args(&set.args, &set.keywords, &subst)
            .map(|a| self.inline_makers(&a))
    }

    /// Constructing an instance runs C code (tp_new or tp_init of an extension type).
    fn construction_reaches_c(ty: &TypeApi) -> bool {
        ty.slot_reaches_c("__new__") || ty.slot_reaches_c("__init__")
    }

    fn construct(&self, entry: &TypeEntry, ctor: &Constructor, subst: &Subst) -> Option<String> {
        if let ([whole], []) = (ctor.args.as_slice(), ctor.keywords.as_slice()) {
            if let Some(expr) = whole.strip_prefix('=') {
                return Some(expr.to_string());
            }
        }
        Some(format!(
            "{}({})",
            entry.access,
            self.args(&ctor.args, &ctor.keywords, subst)?
        ))
    }

    /// Renders positional and keyword arguments; `None` when one names a type without
    /// constructor.
    fn args(&self, args: &[String], keywords: &[Keyword], subst: &Subst) -> Option<String> {
        let positional = args.iter().map(|arg| self.arg(arg, subst));
        let named = keywords
            .iter()
            .map(|k| Some(format!("{}={}", k.name, self.arg(&k.value, subst)?)));
        let rendered: Option<Vec<String>> = positional.chain(named).collect();
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
        let subst = Subst::Var {
            qualname: &ty.qualname,
            var,
        };
        let mut ops = Vec::new();
        for entry in self.types.iter() {
            for ctor in entry
                .constructors
                .iter()
                .filter(|c| takes_instance(&c.args, &c.keywords, ty))
            {
                if let Some(call) = self.construct(entry, ctor, &subst) {
                    let label = format!(
                        "{}({})",
                        entry.api.name,
                        label_args(&ctor.args, &ctor.keywords)
                    );
                    ops.push(Op::statement(label, format!("_touch({call})")).exercising(
                        entry.api.qualname.clone(),
                        Self::construction_reaches_c(entry.api),
                    ));
                }
            }
        }
        ops
    }

    /// `new T(args)` for each constructor objects of `ty` are built by (the catalogue's
    /// first few, every one of the tests).
    pub fn constructions(&self, ty: &TypeApi) -> Vec<Op> {
        let Some(entry) = self.entry(&ty.qualname) else {
            return Vec::new();
        };
        (0..entry.constructors.len())
            .filter(|&i| {
                i < CONSTRUCTORS_PER_TYPE || entry.constructors[i].source == ArgSource::Tests
            })
            .filter_map(|i| self.construction(entry, i))
            .collect()
    }

    /// How many constructors objects of the type are built by (see [`Vars::make_variant`]).
    pub fn variant_count(&self, qualname: &str) -> usize {
        self.entry(qualname).map_or(0, |e| e.variants().len())
    }

    /// `new T(args)` with the `choice`-th constructor objects are built by.
    pub fn construction_variant(&self, ty: &TypeApi, choice: usize) -> Option<Op> {
        let entry = self.entry(&ty.qualname)?;
        let index = *entry.variants().get(choice)?;
        self.construction(entry, index)
    }

    fn construction(&self, entry: &TypeEntry, index: usize) -> Option<Op> {
        let ctor = &entry.constructors[index];
        let call = self.construct(entry, ctor, &Subst::None)?;
        let ty = entry.api;
        Some(
            Op::statement(
                format!(
                    "new {}({})",
                    ty.name,
                    label_args(&ctor.args, &ctor.keywords)
                ),
                format!("x = {call}\ndel x"),
            )
            .exercising(ty.qualname.clone(), Self::construction_reaches_c(ty)),
        )
    }
}

/// An argument (positional or keyword) is an instance of `ty`.
fn takes_instance(args: &[String], keywords: &[Keyword], ty: &TypeApi) -> bool {
    let needle = format!("@{}", ty.qualname);
    args.iter()
        .chain(keywords.iter().map(|k| &k.value))
        .any(|a| *a == needle)
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
    usable_sets(&method.call.arg_sets)
        .filter_map(|set| method_op(vars, ty, method, set, var, other))
        .collect()
}

/// `obj.method(args)` with one argument set.
pub(crate) fn method_op(
    vars: &Vars,
    ty: &TypeApi,
    method: &Method,
    set: &ArgSet,
    var: &str,
    other: Option<&str>,
) -> Option<Op> {
    let subst = other.map_or(Subst::None, |o| Subst::Var {
        qualname: &ty.qualname,
        var: o,
    });
    let label = format!(
        "{}.{}({})",
        ty.name,
        method.call.name,
        label_args(&set.args, &set.keywords)
    );
    let args = vars.args(&set.args, &set.keywords, &subst)?;
    // A reader's result is read too: views and iterators walk the object's internals.
    if method.mutation == Mutation::None {
        return Some(
            Op::statement(label, format!("_touch({var}.{}({args}))", method.call.name))
                .exercising(method.call.qualname.clone(), method.call.reaches_c),
        );
    }
    Some(Op::call(
        label,
        format!("{var}.{}", method.call.name),
        args,
        &method.call,
    ))
}

/// The argument sets a scenario calls: the first tried ones of the catalogue that were
/// accepted (all of them when untried), then every one the tests made.
pub(crate) fn usable_sets(sets: &[ArgSet]) -> impl Iterator<Item = &ArgSet> {
    let untried = sets.iter().any(|s| s.outcome == TrialOutcome::Untried);
    let limit = if untried {
        usize::MAX
    } else {
        ARG_SETS_PER_CALLABLE
    };
    let catalogue = sets
        .iter()
        .filter(|s| s.source == ArgSource::Catalogue && s.usable())
        .take(limit);
    catalogue.chain(sets.iter().filter(|s| s.source == ArgSource::Tests))
}

pub(crate) fn call_function(vars: &Vars, function: &Callable, set: &ArgSet) -> Option<Op> {
    let module = function.qualname.rsplit_once('.').map_or("", |(m, _)| m);
    let label = format!(
        "{}({})",
        function.name,
        label_args(&set.args, &set.keywords)
    );
    Some(Op::call(
        label,
        format!("{module}.{}", function.name),
        vars.args(&set.args, &set.keywords, &Subst::None)?,
        function,
    ))
}

/// The right operand of an operator: the peer for another instance of the same type, a
/// fresh instance of another type, or the expression.
fn operand(vars: &Vars, ty: &TypeApi, operand: &str, peer: &str) -> Option<String> {
    match operand.strip_prefix('@') {
        Some(qualname) if qualname == ty.qualname => Some(peer.to_string()),
        Some(qualname) => vars.make(qualname),
        None => Some(operand.to_string()),
    }
}

fn operator_label(ty: &TypeApi, op: &str, operand: &str) -> String {
    let right = match operand.strip_prefix('@') {
        Some(q) => q.rsplit('.').next().unwrap_or(q),
        None => operand,
    };
    format!("{} {op} {right}", ty.name)
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
                ops.push(Op::slot(
                    ty,
                    "__setitem__",
                    format!("{}[{k}] = {value}", ty.name),
                    format!("{var}[{k}] = {value}"),
                ));
            }
        }
        if p.del_item {
            for k in p.item_key.iter().flat_map(|key| key_variants(key)) {
                ops.push(Op::slot(
                    ty,
                    "__delitem__",
                    format!("del {}[{k}]", ty.name),
                    format!("del {var}[{k}]"),
                ));
            }
        }
        let peer = other
            .map(str::to_string)
            .or_else(|| vars.make(&ty.qualname))
            .unwrap_or_default();
        for used in &p.inplace {
            let Some((_, func, dunder)) = INPLACE.iter().find(|(sym, ..)| *sym == used.op) else {
                continue;
            };
            if let Some(right) = operand(vars, ty, &used.operand, &peer) {
                ops.push(Op::slot(
                    ty,
                    dunder,
                    operator_label(ty, &used.op, &used.operand),
                    format!("operator.{func}({var}, {right})"),
                ));
            }
        }
    }
    ops.extend(property_setters(ty, var));
    ops
}

/// Assignments of every writable property: the value read back, and each value a trial
/// assignment accepted (a setter replacing what readers hold).
pub(crate) fn property_setters(ty: &TypeApi, var: &str) -> Vec<Op> {
    let mut ops = Vec::new();
    for prop in ty.properties.iter().filter(|p| p.writable) {
        let callable = format!("{}.{}", ty.qualname, prop.name);
        if prop.readable {
            ops.push(
                Op::statement(
                    format!("{}.{} = {}.{}", ty.name, prop.name, ty.name, prop.name),
                    format!("{var}.{0} = {var}.{0}", prop.name),
                )
                .exercising(callable.clone(), prop.reaches_c),
            );
        }
        for value in &prop.set_values {
            ops.push(
                Op::statement(
                    format!("{}.{} = {value}", ty.name, prop.name),
                    format!("{var}.{} = {value}", prop.name),
                )
                .exercising(callable.clone(), prop.reaches_c),
            );
        }
    }
    ops
}

/// Everything that only reads `var`: protocols, non-mutating methods, readable properties,
/// objects derived from it (views, proxies).
pub(crate) fn readers(vars: &Vars, ty: &TypeApi, var: &str, other: Option<&str>) -> Vec<Op> {
    let name = &ty.name;
    let mut ops = vec![Op::slot(
        ty,
        "__repr__",
        format!("repr({name})"),
        format!("repr({var})"),
    )];
    if let Some(p) = &ty.protocols {
        let mut push = |on: bool, dunder: &str, label: String, body: String| {
            if on {
                ops.push(Op::slot(ty, dunder, label, body));
            }
        };
        push(
            p.len,
            "__len__",
            format!("len({name})"),
            format!("len({var})"),
        );
        push(
            p.iter,
            "__iter__",
            format!("iter({name})"),
            format!("list(itertools.islice(iter({var}), {ITER_ITEMS}))"),
        );
        let reduce = if ty.slot_reaches_c("__copy__") {
            "__copy__"
        } else {
            "__reduce_ex__"
        };
        push(
            p.copy,
            reduce,
            format!("copy({name})"),
            format!("copy.copy({var})"),
        );
        push(
            p.pickle,
            "__reduce_ex__",
            format!("pickle({name})"),
            format!("pickle.dumps({var})"),
        );
        push(
            p.buffer,
            "__buffer__",
            format!("memoryview({name})"),
            format!("bytes(memoryview({var}))"),
        );
        let peer = other.unwrap_or(var);
        push(
            p.richcompare,
            "__eq__",
            format!("{name} == {name}"),
            format!("{var} == {peer}"),
        );
        for used in &p.number {
            let dunder = BINARY
                .iter()
                .find(|(sym, _)| *sym == used.op)
                .map_or("", |b| b.1);
            if let Some(right) = operand(vars, ty, &used.operand, peer) {
                push(
                    true,
                    dunder,
                    operator_label(ty, &used.op, &used.operand),
                    format!("{var} {} {right}", used.op),
                );
            }
        }
        if let Some(key) = &p.item_key {
            push(
                true,
                "__getitem__",
                format!("{name}[{key}]"),
                format!("{var}[{key}]"),
            );
        }
        let probe = p.item_key.clone().unwrap_or_else(|| "1".into());
        push(
            p.contains,
            "__contains__",
            format!("{probe} in {name}"),
            format!("{probe} in {var}"),
        );
    }
    for prop in ty.properties.iter().filter(|p| p.readable) {
        ops.push(
            Op::statement(
                format!("{name}.{}", prop.name),
                format!("{var}.{}", prop.name),
            )
            .exercising(format!("{}.{}", ty.qualname, prop.name), prop.reaches_c),
        );
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
    let mut ops: Vec<Op> = ty
        .methods
        .iter()
        .filter(|m| {
            m.call
                .arg_sets
                .iter()
                .any(|s| s.usable() && takes_instance(&s.args, &s.keywords, ty))
        })
        .flat_map(|m| {
            method_ops(vars, ty, m, var, Some(other))
                .into_iter()
                .filter(|op| op.body.contains(other))
        })
        .collect();
    if let Some(p) = &ty.protocols {
        let same_type = |used: &&crate::model::OperatorUse| {
            used.operand.strip_prefix('@') == Some(ty.qualname.as_str())
        };
        for used in p.number.iter().filter(same_type) {
            let dunder = BINARY
                .iter()
                .find(|(sym, _)| *sym == used.op)
                .map_or("", |b| b.1);
            ops.push(Op::slot(
                ty,
                dunder,
                format!("{0} {1} other {0}", ty.name, used.op),
                format!("{var} {} {other}", used.op),
            ));
        }
        for used in p.inplace.iter().filter(same_type) {
            if let Some((_, func, dunder)) = INPLACE.iter().find(|(sym, ..)| *sym == used.op) {
                ops.push(Op::slot(
                    ty,
                    dunder,
                    format!("{0} {1} other {0}", ty.name, used.op),
                    format!("operator.{func}({var}, {other})"),
                ));
            }
        }
        if p.richcompare {
            ops.push(Op::slot(
                ty,
                "__eq__",
                format!("{0} == other {0}", ty.name),
                format!("{var} == {other}"),
            ));
        }
    }
    ops
}

/// Construction and destruction across threads: fresh objects, a pool whose members are
/// replaced (deallocated by whichever thread drops the last reference) while others use
/// them, objects built from the shared one, and GC.
pub(crate) fn churn(vars: &Vars, ty: &TypeApi, shared: &str, pool_size: usize) -> Vec<Op> {
    let mut ops = vars.constructions(ty);
    for choice in 0..vars.variant_count(&ty.qualname) {
        let Some(make) = vars.make_variant(&ty.qualname, choice as u64) else {
            continue;
        };
        ops.push(
            Op::statement(
                match choice {
                    0 => format!("replace pool {}", ty.name),
                    _ => format!("replace pool {} by {make}", ty.name),
                },
                format!("POOL[rng.randrange({pool_size})] = {make}"),
            )
            .exercising(ty.qualname.clone(), Vars::construction_reaches_c(ty)),
        );
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

fn label_args(args: &[String], keywords: &[Keyword]) -> String {
    let short = |a: &str| -> String {
        match a.strip_prefix('@') {
            Some(q) => format!("<{}>", q.rsplit('.').next().unwrap_or(q)),
            None => a.strip_prefix('=').unwrap_or(a).chars().take(40).collect(),
        }
    };
    let named = keywords
        .iter()
        .map(|k| format!("{}={}", k.name, short(&k.value)));
    let all: Vec<String> = args.iter().map(|a| short(a)).chain(named).collect();
    all.join(", ")
}

fn identifier(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}
