//! Which C functions Python can call, and under which name: method tables (`PyMethodDef`,
//! `PyGetSetDef`), type slots (`PyType_Slot`, static `PyTypeObject`s and their mapping /
//! sequence tables), module definitions (`PyModuleDef`, `PyModuleDef_Slot`).

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use crate::facts::{InitValue, StrPart, Table, Value};
use crate::model::{BindingKind, MethodBinding, TypeDefinition, TypeDefinitionKind};

/// A table and the file it is in.
pub(crate) struct Located<'a> {
    pub file: usize,
    pub table: &'a Table,
}

/// Bindings found, plus the slots that mark object or module lifecycle functions.
#[derive(Default)]
pub(crate) struct Bindings {
    pub methods: Vec<MethodBinding>,
    /// C functions that run while their object is not shared: `tp_new`, `tp_init`,
    /// `tp_dealloc`, `tp_traverse`, `tp_clear`...
    pub lifecycle: Vec<(PathBuf, String)>,
    /// C functions that run during module init or teardown: `Py_mod_exec`, `m_free`...
    pub module_init: Vec<(PathBuf, String)>,
    /// (file index, module C def name, module name, slots table name)
    pub module_defs: Vec<ModuleDef>,
    /// Static `PyTypeObject`s and `PyType_Spec`s.
    pub types: Vec<TypeDefinition>,
}

pub(crate) struct ModuleDef {
    pub file: usize,
    pub def_name: String,
    pub slots: Option<String>,
    pub state_type: Option<String>,
}

/// Positional field names of `PyTypeObject` after `PyVarObject_HEAD_INIT`.
const TYPE_OBJECT_FIELDS: &[&str] = &[
    "ob_base",
    "tp_name",
    "tp_basicsize",
    "tp_itemsize",
    "tp_dealloc",
    "tp_vectorcall_offset",
    "tp_getattr",
    "tp_setattr",
    "tp_as_async",
    "tp_repr",
    "tp_as_number",
    "tp_as_sequence",
    "tp_as_mapping",
    "tp_hash",
    "tp_call",
    "tp_str",
    "tp_getattro",
    "tp_setattro",
    "tp_as_buffer",
    "tp_flags",
    "tp_doc",
    "tp_traverse",
    "tp_clear",
    "tp_richcompare",
    "tp_weaklistoffset",
    "tp_iter",
    "tp_iternext",
    "tp_methods",
    "tp_members",
    "tp_getset",
    "tp_base",
    "tp_dict",
    "tp_descr_get",
    "tp_descr_set",
    "tp_dictoffset",
    "tp_init",
    "tp_alloc",
    "tp_new",
    "tp_free",
    "tp_is_gc",
    "tp_bases",
    "tp_mro",
    "tp_cache",
    "tp_subclasses",
    "tp_weaklist",
    "tp_del",
    "tp_version_tag",
    "tp_finalize",
    "tp_vectorcall",
];
const MAPPING_FIELDS: &[&str] = &["mp_length", "mp_subscript", "mp_ass_subscript"];
const SEQUENCE_FIELDS: &[&str] = &[
    "sq_length",
    "sq_concat",
    "sq_repeat",
    "sq_item",
    "was_sq_slice",
    "sq_ass_item",
    "was_sq_ass_slice",
    "sq_contains",
    "sq_inplace_concat",
    "sq_inplace_repeat",
];
const MODULE_DEF_FIELDS: &[&str] = &[
    "m_base",
    "m_name",
    "m_doc",
    "m_size",
    "m_methods",
    "m_slots",
    "m_traverse",
    "m_clear",
    "m_free",
];
const SPEC_FIELDS: &[&str] = &["name", "basicsize", "itemsize", "flags", "slots"];

const LIFECYCLE_SLOTS: &[&str] = &[
    "tp_new",
    "tp_init",
    "tp_dealloc",
    "tp_traverse",
    "tp_clear",
    "tp_finalize",
    "tp_free",
    "tp_alloc",
    "tp_del",
];

/// The Python name a slot gives its function.
fn slot_python_name(slot: &str) -> &str {
    match slot {
        "tp_iter" => "__iter__",
        "tp_iternext" => "__next__",
        "tp_repr" => "__repr__",
        "tp_str" => "__str__",
        "tp_hash" => "__hash__",
        "tp_call" => "__call__",
        "tp_richcompare" => "__eq__",
        "tp_getattro" | "tp_getattr" => "__getattribute__",
        "tp_setattro" | "tp_setattr" => "__setattr__",
        "tp_init" => "__init__",
        "tp_new" => "__new__",
        "tp_finalize" | "tp_del" => "__del__",
        "tp_descr_get" => "__get__",
        "tp_descr_set" => "__set__",
        "mp_length" | "sq_length" => "__len__",
        "mp_subscript" | "sq_item" => "__getitem__",
        "mp_ass_subscript" | "sq_ass_item" => "__setitem__",
        "sq_contains" => "__contains__",
        "sq_concat" | "nb_add" => "__add__",
        "sq_inplace_concat" | "nb_inplace_add" => "__iadd__",
        "sq_repeat" | "nb_multiply" => "__mul__",
        "sq_inplace_repeat" | "nb_inplace_multiply" => "__imul__",
        "nb_subtract" => "__sub__",
        "nb_inplace_subtract" => "__isub__",
        "nb_bool" => "__bool__",
        "nb_int" => "__int__",
        "nb_float" => "__float__",
        "nb_index" => "__index__",
        "nb_or" => "__or__",
        "nb_and" => "__and__",
        "nb_xor" => "__xor__",
        "nb_inplace_or" => "__ior__",
        "nb_inplace_and" => "__iand__",
        "nb_inplace_xor" => "__ixor__",
        "nb_negative" => "__neg__",
        "nb_invert" => "__invert__",
        "am_await" => "__await__",
        "am_aiter" => "__aiter__",
        "am_anext" => "__anext__",
        "bf_getbuffer" => "__buffer__",
        "bf_releasebuffer" => "__release_buffer__",
        other => other,
    }
}

/// The fields of a struct initializer: designated values by name, positional ones by `order`.
fn fields<'v>(values: &'v [InitValue], order: &[&'static str]) -> Vec<(String, &'v InitValue)> {
    let mut out = Vec::new();
    let mut position = 0;
    for value in values {
        match &value.designator {
            Some(name) => {
                position = order
                    .iter()
                    .position(|f| f == name)
                    .map_or(position, |p| p + 1);
                out.push((name.clone(), value));
            }
            None => {
                if let Some(name) = order.get(position) {
                    out.push((name.to_string(), value));
                }
                position += 1;
            }
        }
    }
    out
}

/// The literal parts of `MODULE_NAME ".Proxy"` (`.Proxy`).
fn literals(parts: &[StrPart]) -> String {
    parts
        .iter()
        .filter_map(|p| match p {
            StrPart::Literal(text) => Some(text.as_str()),
            StrPart::Macro(_) => None,
        })
        .collect()
}

fn ident(value: &Value) -> Option<&str> {
    match value {
        Value::Ident(name) if name != "NULL" && name != "0" => Some(name),
        _ => None,
    }
}

struct Builder<'a> {
    tables: &'a [Located<'a>],
    paths: &'a [PathBuf],
    /// `X_METHODDEF` macro → (python name, C function)
    macros: HashMap<&'a str, (&'a str, &'a str)>,
    /// `#define MODULE_NAME "_ext"`: macro → its literals and macros.
    string_macros: &'a [HashMap<String, Vec<StrPart>>],
    /// Method tables already bound through a type or module: (file, name).
    reached: HashSet<(usize, String)>,
    out: Bindings,
}

pub(crate) fn collect(
    tables: &[Located],
    paths: &[PathBuf],
    macros: &[(String, String, String)],
    string_macros: &[HashMap<String, Vec<StrPart>>],
) -> Bindings {
    let macros = macros
        .iter()
        .map(|(m, p, c)| (m.as_str(), (p.as_str(), c.as_str())))
        .collect();
    let mut builder = Builder {
        tables,
        paths,
        macros,
        string_macros,
        reached: HashSet::new(),
        out: Bindings::default(),
    };
    for located in tables {
        builder.table(located);
    }
    // A method table whose owner was not recognized is still callable from Python.
    for located in tables.iter().filter(|t| t.table.type_name == "PyMethodDef") {
        if !builder
            .reached
            .contains(&(located.file, located.table.name.clone()))
        {
            builder.method_table(located, None, BindingKind::Function);
        }
    }
    let mut out = builder.out;
    out.methods.sort();
    out.methods.dedup();
    out.lifecycle.sort();
    out.lifecycle.dedup();
    out.module_init.sort();
    out.module_init.dedup();
    out.types
        .sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    out
}

impl<'a> Builder<'a> {
    /// A table by name, preferring the same file.
    fn find(&self, file: usize, name: &str) -> Option<&'a Located<'a>> {
        let mut candidates = self.tables.iter().filter(|t| t.table.name == name);
        let first = candidates.next()?;
        if first.file == file {
            return Some(first);
        }
        candidates.find(|t| t.file == file).or(Some(first))
    }

    fn table(&mut self, located: &Located) {
        let table = located.table;
        match table.type_name.as_str() {
            "PyType_Spec" => {
                let f = fields(&table.values, SPEC_FIELDS);
                let owner = self.define_type(located, &f, TypeDefinitionKind::Spec);
                if let Some(slots) = f
                    .iter()
                    .find(|(n, _)| n == "slots")
                    .and_then(|(_, v)| ident(&v.value))
                {
                    if let Some(slots) = self.find(located.file, slots) {
                        self.type_slots(slots, owner.as_deref());
                    }
                }
            }
            "PyTypeObject" => {
                let f = fields(&table.values, TYPE_OBJECT_FIELDS);
                let owner = self.define_type(located, &f, TypeDefinitionKind::StaticType);
                for (slot, value) in &f {
                    if let Some(func) = ident(&value.value) {
                        self.slot(located, slot, func, value.line, owner.as_deref());
                    }
                }
            }
            "PyModuleDef" => self.module_def(located),
            _ => {}
        }
    }

    /// Records the type a `PyType_Spec` or static `PyTypeObject` defines; returns its name.
    fn define_type(
        &mut self,
        located: &Located,
        fields: &[(String, &InitValue)],
        kind: TypeDefinitionKind,
    ) -> Option<String> {
        let (name_field, size_field) = match kind {
            TypeDefinitionKind::Spec => ("name", "basicsize"),
            TypeDefinitionKind::StaticType => ("tp_name", "tp_basicsize"),
        };
        let get = |wanted: &str| fields.iter().find(|(n, _)| n == wanted).map(|(_, v)| *v);
        let value = get(name_field).map(|v| &v.value);
        let name = value.and_then(|v| self.string(located.file, v));
        let object_struct = get(size_field).and_then(|v| match &v.value {
            Value::SizeOf(t) => Some(t.clone()),
            _ => None,
        });
        self.out.types.push(TypeDefinition {
            c_name: located.table.name.clone(),
            kind,
            name: name.clone(),
            object_struct,
            file: self.paths[located.file].clone(),
            line: located.table.line,
        });
        // Bindings still get the type's last dotted part when a macro in its name is unknown.
        name.or_else(|| match value? {
            Value::Concat(parts) => Some(literals(parts)),
            _ => None,
        })
    }

    /// A string initializer in `file`, with the string macros it sees resolved
    /// (`MODULE_NAME ".Proxy"`).
    fn string(&self, file: usize, value: &Value) -> Option<String> {
        match value {
            Value::Str(s) => Some(s.clone()),
            Value::Concat(parts) => self.resolve_parts(file, parts, 0),
            _ => None,
        }
    }

    fn resolve_parts(&self, file: usize, parts: &[StrPart], depth: usize) -> Option<String> {
        let mut out = String::new();
        for part in parts {
            match part {
                StrPart::Literal(text) => out.push_str(text),
                StrPart::Macro(name) if depth < 4 => {
                    let body = self.string_macros[file].get(name)?;
                    out.push_str(&self.resolve_parts(file, body, depth + 1)?);
                }
                StrPart::Macro(_) => return None,
            }
        }
        Some(out)
    }

    fn module_def(&mut self, located: &Located) {
        let f = fields(&located.table.values, MODULE_DEF_FIELDS);
        let get = |name: &str| f.iter().find(|(n, _)| n == name).map(|(_, v)| *v);
        let module_name = get("m_name").and_then(|v| self.string(located.file, &v.value));
        if let Some(methods) = get("m_methods").and_then(|v| ident(&v.value)) {
            if let Some(methods) = self.find(located.file, methods) {
                self.method_table(methods, module_name.as_deref(), BindingKind::Function);
            }
        }
        for slot in ["m_traverse", "m_clear", "m_free"] {
            if let Some(func) = get(slot).and_then(|v| ident(&v.value)) {
                self.out
                    .module_init
                    .push((self.paths[located.file].clone(), func.to_string()));
            }
        }
        let slots = get("m_slots")
            .and_then(|v| ident(&v.value))
            .map(str::to_string);
        if let Some(slots) = slots.as_deref().and_then(|s| self.find(located.file, s)) {
            for entry in &slots.table.values {
                if let Value::List(pair) = &entry.value {
                    if let (Some("Py_mod_exec" | "Py_mod_create"), Some(func)) = (
                        pair.first().and_then(|v| ident(&v.value)),
                        pair.get(1).and_then(|v| ident(&v.value)),
                    ) {
                        self.out
                            .module_init
                            .push((self.paths[slots.file].clone(), func.to_string()));
                    }
                }
            }
        }
        let state_type = get("m_size").and_then(|v| match &v.value {
            Value::SizeOf(t) => Some(t.clone()),
            _ => None,
        });
        self.out.module_defs.push(ModuleDef {
            file: located.file,
            def_name: located.table.name.clone(),
            slots,
            state_type,
        });
    }

    /// `PyType_Slot` array: `{Py_tp_methods, table}`, `{Py_mp_subscript, func}`, ...
    fn type_slots(&mut self, located: &Located, owner: Option<&str>) {
        for entry in &located.table.values {
            let Value::List(pair) = &entry.value else {
                continue;
            };
            let (Some(slot), Some(func)) = (
                pair.first().and_then(|v| ident(&v.value)),
                pair.get(1).and_then(|v| ident(&v.value)),
            ) else {
                continue;
            };
            let slot = slot.strip_prefix("Py_").unwrap_or(slot);
            self.slot(located, slot, func, entry.line, owner);
        }
    }

    /// One slot of a type: a table (`tp_methods`, `tp_as_mapping`...) or a function.
    fn slot(
        &mut self,
        located: &Located,
        slot: &str,
        value: &str,
        line: usize,
        owner: Option<&str>,
    ) {
        match slot {
            "tp_methods" => {
                if let Some(t) = self.find(located.file, value) {
                    self.method_table(t, owner, BindingKind::Method);
                }
            }
            "tp_getset" => {
                if let Some(t) = self.find(located.file, value) {
                    self.getset_table(t, owner);
                }
            }
            "tp_as_mapping" | "tp_as_sequence" | "tp_as_number" | "tp_as_async"
            | "tp_as_buffer" => {
                if let Some(t) = self.find(located.file, value) {
                    let order = if slot == "tp_as_mapping" {
                        MAPPING_FIELDS
                    } else {
                        SEQUENCE_FIELDS
                    };
                    let order = if matches!(slot, "tp_as_mapping" | "tp_as_sequence") {
                        order
                    } else {
                        &[]
                    };
                    for (name, v) in fields(&t.table.values, order) {
                        if let Some(func) = ident(&v.value) {
                            self.bind(t, &name, func, v.line, owner, BindingKind::Slot);
                        }
                    }
                }
            }
            "ob_base"
            | "tp_name"
            | "tp_doc"
            | "tp_flags"
            | "tp_base"
            | "tp_members"
            | "tp_basicsize"
            | "tp_itemsize"
            | "tp_dictoffset"
            | "tp_weaklistoffset"
            | "tp_vectorcall_offset"
            | "tp_token" => {}
            _ => self.bind(located, slot, value, line, owner, BindingKind::Slot),
        }
    }

    fn bind(
        &mut self,
        located: &Located,
        slot: &str,
        func: &str,
        line: usize,
        owner: Option<&str>,
        kind: BindingKind,
    ) {
        if LIFECYCLE_SLOTS.contains(&slot) {
            self.out
                .lifecycle
                .push((self.paths[located.file].clone(), func.to_string()));
        }
        if slot.starts_with("tp_")
            || slot.starts_with("mp_")
            || slot.starts_with("sq_")
            || slot.starts_with("nb_")
            || slot.starts_with("am_")
            || slot.starts_with("bf_")
            || kind != BindingKind::Slot
        {
            let python_name = if kind == BindingKind::Slot {
                slot_python_name(slot)
            } else {
                slot
            };
            self.out.methods.push(MethodBinding {
                python_name: python_name.to_string(),
                c_function: func.to_string(),
                kind,
                table: located.table.name.clone(),
                owner_type: owner.map(str::to_string),
                file: self.paths[located.file].clone(),
                line,
            });
        }
    }

    fn method_table(&mut self, located: &Located, owner: Option<&str>, kind: BindingKind) {
        self.reached
            .insert((located.file, located.table.name.clone()));
        for entry in &located.table.values {
            let (name, func) = match &entry.value {
                Value::List(items) => {
                    match (
                        items
                            .first()
                            .and_then(|v| self.string(located.file, &v.value)),
                        items.get(1).and_then(|v| ident(&v.value)),
                    ) {
                        (Some(n), Some(f)) => (n, f),
                        _ => continue,
                    }
                }
                Value::Ident(m) => match self.macros.get(m.as_str()) {
                    Some((n, f)) => (n.to_string(), *f),
                    None => continue,
                },
                _ => continue,
            };
            self.bind(located, &name, func, entry.line, owner, kind);
        }
    }

    fn getset_table(&mut self, located: &Located, owner: Option<&str>) {
        for entry in &located.table.values {
            let Value::List(items) = &entry.value else {
                continue;
            };
            let Some(name) = items
                .first()
                .and_then(|v| self.string(located.file, &v.value))
            else {
                continue;
            };
            if let Some(getter) = items.get(1).and_then(|v| ident(&v.value)) {
                self.bind(
                    located,
                    &name,
                    getter,
                    entry.line,
                    owner,
                    BindingKind::Getter,
                );
            }
            if let Some(setter) = items.get(2).and_then(|v| ident(&v.value)) {
                self.bind(
                    located,
                    &name,
                    setter,
                    entry.line,
                    owner,
                    BindingKind::Setter,
                );
            }
        }
    }
}
