//! The whole scanned program: facts of every file plus the cross-file knowledge rules need
//! (struct types, bindings, who calls whom and under which lock).

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;

use crate::bindings::{self, Bindings, Located};
use crate::facts::{
    strip_object_expr, Access, EventKind, FileFacts, FunctionFacts, GlobalVar, StructDef,
};

/// Under which circumstances a function runs, as far as callers tell.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Context {
    /// Callable from Python or from unlocked code: no protection known.
    Exposed,
    /// Every call site holds a lock (the text says which, and where).
    Locked(String),
    /// Runs only while its object is not (yet, or any more) shared: `tp_new`, `tp_dealloc`...
    /// Other threads may run the same code on other objects.
    Lifecycle,
    /// Runs only during module initialization, serialized by the import lock.
    ModuleInit,
}

pub(crate) struct ScannedFile {
    pub path: PathBuf,
    /// Path relative to the scanned root, used for stable finding ids.
    pub rel: String,
    pub facts: FileFacts,
}

pub(crate) struct Program {
    pub files: Vec<ScannedFile>,
    pub bindings: Bindings,
    structs: HashMap<String, (usize, usize)>,
    contexts: HashMap<String, Context>,
    /// callee → callers
    callers: HashMap<String, Vec<String>>,
    bound: HashMap<String, Vec<usize>>,
    /// function → parameters that every caller passes a freshly created object in.
    fresh_params: HashMap<String, HashSet<String>>,
    pub module_state_types: HashSet<String>,
}

/// CPython object structs an extension struct can start with.
fn is_cpython_object_type(name: &str) -> bool {
    name == "PyObject"
        || name == "PyVarObject"
        || (name.starts_with("Py") && name.ends_with("Object"))
}

impl Program {
    pub fn new(files: Vec<ScannedFile>) -> Program {
        let paths: Vec<PathBuf> = files.iter().map(|f| f.path.clone()).collect();
        let tables: Vec<Located> = files
            .iter()
            .enumerate()
            .flat_map(|(file, f)| {
                f.facts
                    .tables
                    .iter()
                    .map(move |table| Located { file, table })
            })
            .collect();
        let macros: Vec<_> = files
            .iter()
            .flat_map(|f| f.facts.methoddef_macros.iter().cloned())
            .collect();
        let bindings = bindings::collect(&tables, &paths, &macros);
        drop(tables);
        let mut structs = HashMap::new();
        for (fi, file) in files.iter().enumerate() {
            for (si, s) in file.facts.structs.iter().enumerate() {
                for name in &s.names {
                    structs.entry(name.clone()).or_insert((fi, si));
                }
            }
        }
        let module_state_types = bindings
            .module_defs
            .iter()
            .filter_map(|m| m.state_type.clone())
            .collect();
        let mut bound: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, m) in bindings.methods.iter().enumerate() {
            bound.entry(m.c_function.clone()).or_default().push(i);
        }
        let mut program = Program {
            files,
            bindings,
            structs,
            contexts: HashMap::new(),
            callers: HashMap::new(),
            bound,
            fresh_params: HashMap::new(),
            module_state_types,
        };
        program.compute_contexts();
        program.compute_fresh_params();
        program
    }

    /// `name` holds an object `function` created, or one every caller created and passed in
    /// (`_init_view(new_view, md)`): no other thread can see it yet.
    pub fn is_fresh(&self, function: &FunctionFacts, name: &str) -> bool {
        function.fresh.iter().any(|f| f == name)
            || self
                .fresh_params
                .get(&function.name)
                .is_some_and(|params| params.contains(name))
    }

    fn compute_fresh_params(&mut self) {
        let by_name: HashMap<&str, &FunctionFacts> = self
            .functions()
            .map(|(_, f)| (f.name.as_str(), f))
            .collect();
        // callee → per call site, per argument: is it fresh in the caller?
        let mut sites: HashMap<&str, Vec<Vec<bool>>> = HashMap::new();
        for (_, caller) in self.functions() {
            for event in &caller.events {
                let EventKind::Call { callee, args } = &event.kind else {
                    continue;
                };
                if by_name.contains_key(callee.as_str())
                    && !self.bound.contains_key(callee.as_str())
                {
                    // A lifecycle function's own object (`self` of tp_init) is not shared either.
                    let own_object = matches!(self.context(&caller.name), Context::Lifecycle)
                        .then(|| caller.params.first().map(|p| p.name.as_str()))
                        .flatten();
                    let fresh = args
                        .iter()
                        .map(|a| {
                            let a = strip_object_expr(a);
                            caller.fresh.iter().any(|f| f == a) || own_object == Some(a)
                        })
                        .collect();
                    sites.entry(callee.as_str()).or_default().push(fresh);
                }
            }
        }
        let mut fresh_params = HashMap::new();
        for (callee, calls) in sites {
            let params = &by_name[callee].params;
            let fresh: HashSet<String> = params
                .iter()
                .enumerate()
                .filter(|(i, _)| {
                    calls
                        .iter()
                        .all(|args| args.get(*i).copied().unwrap_or(false))
                })
                .map(|(_, p)| p.name.clone())
                .collect();
            if !fresh.is_empty() {
                fresh_params.insert(callee.to_string(), fresh);
            }
        }
        self.fresh_params = fresh_params;
    }

    pub fn functions(&self) -> impl Iterator<Item = (usize, &FunctionFacts)> {
        self.files
            .iter()
            .enumerate()
            .flat_map(|(i, f)| f.facts.functions.iter().map(move |func| (i, func)))
    }

    pub fn context(&self, function: &str) -> &Context {
        self.contexts.get(function).unwrap_or(&Context::Exposed)
    }

    pub fn is_bound(&self, function: &str) -> bool {
        self.bound.contains_key(function)
    }

    fn struct_def(&self, name: &str) -> Option<&StructDef> {
        self.structs
            .get(name)
            .map(|&(f, s)| &self.files[f].facts.structs[s])
    }

    /// Instances of this struct are Python objects (it starts with `PyObject_HEAD` or a base object).
    pub fn is_object_type(&self, name: &str) -> bool {
        let mut current = name.to_string();
        for _ in 0..8 {
            let Some(def) = self.struct_def(&current) else {
                return false;
            };
            if def.has_object_head {
                return true;
            }
            match &def.first_field_type {
                Some(t) if is_cpython_object_type(t) => return true,
                Some(t) => current = t.clone(),
                None => return false,
            }
        }
        false
    }

    /// The struct type that holds the accessed field (`self->ht.keys` → type of `ht`).
    pub fn container_type(&self, access: &Access) -> Option<String> {
        let mut ty = access.root_type.clone()?;
        for field in access
            .fields
            .iter()
            .take(access.fields.len().saturating_sub(1))
        {
            let def = self.struct_def(&ty)?;
            ty = def.fields.iter().find(|(n, _, _)| n == field)?.1.clone();
        }
        Some(ty)
    }

    /// The declaration of a field, for recognizing `_Atomic` or lock fields.
    pub fn field_declaration(&self, container: &str, field: &str) -> Option<&str> {
        let def = self.struct_def(container)?;
        def.fields
            .iter()
            .find(|(n, _, _)| n == field)
            .map(|(_, _, decl)| decl.as_str())
    }

    /// The global a non-local name refers to from `file` (inside `function`).
    pub fn resolve_global(
        &self,
        file: usize,
        function: &str,
        name: &str,
    ) -> Option<(usize, &GlobalVar)> {
        let in_file = |fi: usize| {
            self.files[fi].facts.globals.iter().find(|g| {
                g.name == name
                    && g.function
                        .as_deref()
                        .is_none_or(|owner| owner == function && fi == file)
            })
        };
        if let Some(g) = in_file(file) {
            return Some((file, g));
        }
        self.files.iter().enumerate().find_map(|(fi, f)| {
            let header = f.path.extension().is_some_and(|e| e == "h");
            f.facts
                .globals
                .iter()
                .find(|g| g.name == name && g.function.is_none() && (header || !g.is_static))
                .map(|g| (fi, g))
        })
    }

    /// Python-visible names whose C function reaches `function` (nearest first, at most 8).
    pub fn entry_points(&self, function: &str) -> Vec<String> {
        let mut seen: HashSet<&str> = HashSet::from([function]);
        let mut queue = VecDeque::from([(function, 0)]);
        let mut out = Vec::new();
        while let Some((f, depth)) = queue.pop_front() {
            for &i in self.bound.get(f).into_iter().flatten() {
                let m = &self.bindings.methods[i];
                let name = match m.owner_type.as_deref() {
                    Some(owner) => format!(
                        "{}.{}",
                        owner.rsplit('.').next().unwrap_or(owner),
                        m.python_name
                    ),
                    None => m.python_name.clone(),
                };
                if !out.contains(&name) {
                    out.push(name);
                }
            }
            if out.len() >= 8 || depth >= 6 {
                continue;
            }
            for caller in self.callers.get(f).into_iter().flatten() {
                if seen.insert(caller) {
                    queue.push_back((caller, depth + 1));
                }
            }
        }
        out.truncate(8);
        out
    }

    /// Fixed point over the call graph: a function is `Locked` when every call site holds a
    /// lock or sits in a `Locked` function, `Lifecycle` when every caller is a lifecycle
    /// function. Functions Python can call directly stay `Exposed`.
    fn compute_contexts(&mut self) {
        let defined: HashSet<&str> = self.functions().map(|(_, f)| f.name.as_str()).collect();
        // callee → [(caller, lock held at the call)]
        let mut sites: HashMap<&str, Vec<(&str, Option<String>)>> = HashMap::new();
        for (_, func) in self.functions() {
            for event in &func.events {
                if let EventKind::Call { callee, .. } = &event.kind {
                    if defined.contains(callee.as_str()) && callee != &func.name {
                        let held = func.guard(event).protection();
                        sites
                            .entry(callee.as_str())
                            .or_default()
                            .push((func.name.as_str(), held));
                    }
                }
            }
        }
        let mut contexts: HashMap<String, Context> = HashMap::new();
        for name in &self.bindings.lifecycle {
            contexts.insert(name.clone(), Context::Lifecycle);
        }
        for name in &self.bindings.module_init {
            contexts.insert(name.clone(), Context::ModuleInit);
        }
        for name in &defined {
            if name.starts_with("PyInit_") {
                contexts.insert(name.to_string(), Context::ModuleInit);
            }
        }
        loop {
            let mut changed = false;
            for (callee, callers) in &sites {
                if self.bound.contains_key(*callee) || contexts.contains_key(*callee) {
                    continue;
                }
                if let Some(context) = derive_context(callers, &contexts) {
                    contexts.insert(callee.to_string(), context);
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        let callers = sites
            .into_iter()
            .map(|(callee, list)| {
                let mut names: Vec<String> = list.into_iter().map(|(c, _)| c.to_string()).collect();
                names.sort();
                names.dedup();
                (callee.to_string(), names)
            })
            .collect();
        self.contexts = contexts;
        self.callers = callers;
    }
}

fn derive_context(
    callers: &[(&str, Option<String>)],
    known: &HashMap<String, Context>,
) -> Option<Context> {
    let mut lock: Option<String> = None;
    let mut all_module_init = true;
    for (caller, held) in callers {
        match (held, known.get(*caller)) {
            (Some(held), _) => {
                lock.get_or_insert_with(|| format!("{held} in caller `{caller}`"));
            }
            (None, Some(Context::Locked(how))) => {
                lock.get_or_insert_with(|| how.clone());
            }
            (None, Some(Context::ModuleInit)) => continue,
            (None, Some(Context::Lifecycle)) => {}
            _ => return None,
        }
        all_module_init = false;
    }
    Some(match lock {
        Some(how) => Context::Locked(how),
        None if all_module_init => Context::ModuleInit,
        None => Context::Lifecycle,
    })
}
