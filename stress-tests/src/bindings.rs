//! A model from the static pass's bindings, for when introspection failed: every bound name
//! is called with catalogue arguments, untried.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::{
    ApiModel, ArgSet, ArgSource, Callable, Constructor, Method, ModelSource, ModuleApi, Mutation,
    OperatorUse, Property, Protocols, PythonInfo, TrialOutcome, TypeApi, API_MODEL_FORMAT,
};

/// A Python-visible name bound to C code, as the static pass found it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindingSpec {
    /// The importable module holding the binding (`pkg._ext`).
    pub module: String,
    /// The owning type's `tp_name` (`pkg._ext.Proxy`, `_ext.Proxy`); `None` for a module
    /// function.
    pub owner_type: Option<String>,
    /// The attribute name (`add`, `__len__` for a slot).
    pub python_name: String,
    pub kind: BindingKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BindingKind {
    Function,
    Method,
    Getter,
    Setter,
    /// A type slot; `python_name` is its dunder.
    Slot,
}

/// Argument lists tried for every function and method: each fails fast with `TypeError`
/// when the arity or kind is wrong.
const CATALOGUE_ARGS: [&[&str]; 6] = [
    &[],
    &["1"],
    &["'a'"],
    &["None"],
    &["[1, 2, 3]"],
    &["1", "'a'"],
];
/// Constructor argument lists; the script's maker uses the first that builds.
const CATALOGUE_CONSTRUCTORS: [&[&str]; 4] = [&[], &["1"], &["'a'"], &["[1, 2, 3]"]];
const BINARY: [(&str, &str); 6] = [
    ("__add__", "+"),
    ("__sub__", "-"),
    ("__mul__", "*"),
    ("__or__", "|"),
    ("__and__", "&"),
    ("__xor__", "^"),
];

impl ApiModel {
    /// A model whose functions and methods are the bindings, called with untried catalogue
    /// arguments; its types are reached as `MODULE.<last part of tp_name>` (what
    /// `PyModule_AddType` names them). Bindings of a method kind without an owner type are
    /// left out: there is nothing to call them on.
    pub fn from_bindings(bindings: &[BindingSpec]) -> ApiModel {
        let mut modules: BTreeMap<&str, ModuleApi> = BTreeMap::new();
        let mut types: BTreeMap<(&str, &str), TypeApi> = BTreeMap::new();
        for binding in bindings {
            let module = modules
                .entry(&binding.module)
                .or_insert_with(|| empty_module(&binding.module));
            match (&binding.owner_type, binding.kind) {
                (None, BindingKind::Function) | (None, BindingKind::Method) => {
                    module.functions.push(untried_callable(
                        &binding.python_name,
                        &format!("{}.{}", binding.module, binding.python_name),
                    ));
                }
                (Some(owner), kind) => {
                    let ty = types
                        .entry((&binding.module, owner))
                        .or_insert_with(|| empty_type(&binding.module, owner));
                    add_member(ty, &binding.python_name, kind);
                }
                (None, _) => {}
            }
        }
        for ((module, _), mut ty) in types {
            finish_protocols(&mut ty);
            if let Some(m) = modules.get_mut(module) {
                m.types.push(ty);
            }
        }
        let mut modules: Vec<ModuleApi> = modules.into_values().collect();
        for module in &mut modules {
            module.functions.sort_by(|a, b| a.qualname.cmp(&b.qualname));
            module.functions.dedup_by(|a, b| a.qualname == b.qualname);
        }
        ApiModel {
            format: API_MODEL_FORMAT,
            source: ModelSource::StaticBindings,
            python: PythonInfo {
                version: "unknown (model from static bindings)".into(),
                gil_enabled: false,
            },
            modules,
            values: Vec::new(),
            skipped: Vec::new(),
            crashed_trials: Vec::new(),
            restarts: 0,
            restarts_exhausted: false,
            time_limit_reached: false,
            unmatched_define_types: Vec::new(),
        }
    }
}

fn empty_module(name: &str) -> ModuleApi {
    ModuleApi {
        name: name.to_string(),
        file: None,
        import_error: None,
        extension: true,
        functions: Vec::new(),
        types: Vec::new(),
    }
}

fn untried(args: &[&str]) -> ArgSet {
    ArgSet {
        args: args.iter().map(|a| a.to_string()).collect(),
        keywords: Vec::new(),
        outcome: TrialOutcome::Untried,
        error: None,
        source: ArgSource::Catalogue,
    }
}

fn untried_callable(name: &str, qualname: &str) -> Callable {
    Callable {
        name: name.to_string(),
        qualname: qualname.to_string(),
        signature: None,
        doc: None,
        arg_sets: CATALOGUE_ARGS.iter().map(|args| untried(args)).collect(),
        reaches_c: true,
    }
}

fn empty_type(module: &str, tp_name: &str) -> TypeApi {
    let name = tp_name.rsplit('.').next().unwrap_or(tp_name);
    TypeApi {
        name: name.to_string(),
        qualname: tp_name.to_string(),
        access: Some(format!("{module}.{name}")),
        tp_name: Some(tp_name.to_string()),
        extension: true,
        signature: None,
        doc: None,
        constructors: CATALOGUE_CONSTRUCTORS
            .iter()
            .map(|args| Constructor::positional(args.iter().map(|a| a.to_string()).collect()))
            .collect(),
        constructor_error: None,
        subclassable: false,
        methods: Vec::new(),
        properties: Vec::new(),
        protocols: Some(Protocols::default()),
        c_slots: Vec::new(),
    }
}

fn add_member(ty: &mut TypeApi, python_name: &str, kind: BindingKind) {
    match kind {
        BindingKind::Function | BindingKind::Method => {
            if !ty.methods.iter().any(|m| m.call.name == python_name) {
                ty.methods.push(Method {
                    call: untried_callable(python_name, &format!("{}.{python_name}", ty.qualname)),
                    mutation: Mutation::Unknown,
                    returns_type: None,
                });
            }
        }
        BindingKind::Getter | BindingKind::Setter => {
            let index = match ty.properties.iter().position(|p| p.name == python_name) {
                Some(index) => index,
                None => {
                    ty.properties.push(Property {
                        name: python_name.to_string(),
                        readable: false,
                        writable: false,
                        set_values: Vec::new(),
                        reaches_c: true,
                    });
                    ty.properties.len() - 1
                }
            };
            let prop = &mut ty.properties[index];
            prop.readable |= kind == BindingKind::Getter;
            prop.writable |= kind == BindingKind::Setter;
        }
        BindingKind::Slot => {
            if !ty.c_slots.iter().any(|s| s == python_name) {
                ty.c_slots.push(python_name.to_string());
                ty.c_slots.sort();
            }
        }
    }
}

/// The protocols the slots imply, tried on instances of the same type.
fn finish_protocols(ty: &mut TypeApi) {
    let has = |dunder: &str| ty.c_slots.iter().any(|s| s == dunder);
    let same_type = format!("@{}", ty.qualname);
    let operators = |inplace: bool| -> Vec<OperatorUse> {
        BINARY
            .iter()
            .filter(|(dunder, _)| {
                let name = if inplace {
                    dunder.replacen("__", "__i", 1)
                } else {
                    dunder.to_string()
                };
                has(&name)
            })
            .map(|(_, op)| OperatorUse {
                op: if inplace {
                    format!("{op}=")
                } else {
                    op.to_string()
                },
                operand: same_type.clone(),
            })
            .collect()
    };
    ty.protocols = Some(Protocols {
        len: has("__len__"),
        iter: has("__iter__"),
        contains: has("__contains__"),
        buffer: has("__buffer__"),
        hash: has("__hash__"),
        richcompare: has("__eq__"),
        number: operators(false),
        inplace: operators(true),
        item_key: has("__getitem__").then(|| "0".to_string()),
        set_item: has("__setitem__").then(|| ("0".to_string(), "1".to_string())),
        ..Protocols::default()
    });
}
