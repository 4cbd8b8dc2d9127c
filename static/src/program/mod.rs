//! The whole scanned program: facts of every file plus the cross-file knowledge rules need
//! (struct types, bindings, who calls whom and under which lock).

mod callee_writes;
mod caller_locks;

pub(crate) use caller_locks::UnlockedPaths;

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;

use crate::bindings::{self, Bindings, Located};
use crate::facts::{
    strip_object_expr, Access, EventKind, FileFacts, FunctionFacts, GlobalVar, StrPart, StructDef,
    CAST_MACRO,
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
    /// The file, and the headers it `#include "..."`s, as canonical paths.
    pub canonical: Option<PathBuf>,
    pub included: Vec<PathBuf>,
}

pub(crate) struct Program {
    pub files: Vec<ScannedFile>,
    pub bindings: Bindings,
    structs: HashMap<String, (usize, usize)>,
    /// A file's index by its path (as scanned).
    file_by_path: HashMap<PathBuf, usize>,
    /// Function id → (file, index in that file's functions).
    ids: Vec<(usize, usize)>,
    by_name: HashMap<String, Vec<usize>>,
    /// Global (and static local) name → (file, index in that file's globals).
    globals_by_name: HashMap<String, Vec<(usize, usize)>>,
    /// Names declared `extern` somewhere.
    externs: HashSet<String>,
    /// Cast macro → the struct type it casts to.
    cast_macros: HashMap<String, String>,
    contexts: HashMap<usize, Context>,
    /// callee id → its call sites: (caller id, index of the call event)
    incoming: HashMap<usize, Vec<(usize, usize)>>,
    /// function id → parameter → the lock every caller holds on the object passed in it.
    param_locks: HashMap<usize, HashMap<String, caller_locks::CallerLock>>,
    /// function id → indices into `bindings.methods`
    bound: HashMap<usize, Vec<usize>>,
    /// function id → parameters that every caller passes a freshly created object in.
    fresh_params: HashMap<usize, HashSet<String>>,
    /// Functions bound to object lifecycle slots (`tp_new`, `tp_init`, `tp_dealloc`...).
    lifecycle_slots: HashSet<usize>,
    pub module_state_types: HashSet<String>,
}

/// CPython object structs an extension struct can start with.
fn is_cpython_object_type(name: &str) -> bool {
    name == "PyObject"
        || name == "PyVarObject"
        || (name.starts_with("Py") && name.ends_with("Object"))
}

impl Program {
    pub fn new(mut files: Vec<ScannedFile>) -> Program {
        let mut ids = Vec::new();
        let mut by_name: HashMap<String, Vec<usize>> = HashMap::new();
        for (fi, file) in files.iter_mut().enumerate() {
            for (i, func) in file.facts.functions.iter_mut().enumerate() {
                func.id = ids.len();
                by_name.entry(func.name.clone()).or_default().push(func.id);
                ids.push((fi, i));
            }
        }
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
        let string_macros = visible_string_macros(&files);
        let bindings = bindings::collect(&tables, &paths, &macros, &string_macros);
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
        let mut globals_by_name: HashMap<String, Vec<(usize, usize)>> = HashMap::new();
        for (fi, file) in files.iter().enumerate() {
            for (gi, g) in file.facts.globals.iter().enumerate() {
                globals_by_name
                    .entry(g.name.clone())
                    .or_default()
                    .push((fi, gi));
            }
        }
        let externs = files
            .iter()
            .flat_map(|f| f.facts.externs.iter().cloned())
            .collect();
        let cast_macros = files
            .iter()
            .flat_map(|f| f.facts.cast_macros.iter().cloned())
            .collect();
        let file_by_path = paths
            .iter()
            .enumerate()
            .map(|(i, p)| (p.clone(), i))
            .collect();
        let mut program = Program {
            file_by_path,
            globals_by_name,
            externs,
            cast_macros,
            files,
            bindings,
            structs,
            ids,
            by_name,
            contexts: HashMap::new(),
            incoming: HashMap::new(),
            param_locks: HashMap::new(),
            bound: HashMap::new(),
            fresh_params: HashMap::new(),
            lifecycle_slots: HashSet::new(),
            module_state_types,
        };
        program.resolve_callee_writes();
        program.compute_bound();
        program.compute_contexts();
        program.compute_fresh_params();
        program.compute_param_locks();
        program
    }

    /// `name` holds an object `function` created, or one every caller created and passed in
    /// (`_init_view(new_view, md)`): no other thread can see it yet.
    pub fn is_fresh(&self, function: &FunctionFacts, name: &str) -> bool {
        function.fresh.iter().any(|f| f == name)
            || self
                .fresh_params
                .get(&function.id)
                .is_some_and(|params| params.contains(name))
    }

    /// Calls to functions of the program: (caller, callee id, event index).
    fn call_sites(&self) -> Vec<(&FunctionFacts, usize, usize)> {
        let mut sites = Vec::new();
        for (file, caller) in self.functions() {
            for (i, event) in caller.events.iter().enumerate() {
                if let EventKind::Call { callee, .. } = &event.kind {
                    if let Some(id) = self
                        .resolve_function(file, callee)
                        .filter(|&id| id != caller.id)
                    {
                        sites.push((caller, id, i));
                    }
                }
            }
        }
        sites
    }

    /// Fixed point: a parameter is fresh when every call passes an object the caller created,
    /// a fresh parameter of its own, or the object a lifecycle slot (`tp_init`'s `self`) got.
    fn compute_fresh_params(&mut self) {
        let sites: Vec<(&FunctionFacts, usize, &[String])> = self
            .call_sites()
            .into_iter()
            .filter(|(_, callee, _)| !self.bound.contains_key(callee))
            .filter_map(|(caller, callee, i)| match &caller.events[i].kind {
                EventKind::Call { args, .. } => Some((caller, callee, args.as_slice())),
                _ => None,
            })
            .collect();
        let mut fresh_params: HashMap<usize, HashSet<String>> = HashMap::new();
        for _ in 0..8 {
            let mut next: HashMap<usize, Vec<Vec<bool>>> = HashMap::new();
            for (caller, callee, args) in &sites {
                let own_object = self
                    .lifecycle_slots
                    .contains(&caller.id)
                    .then(|| caller.params.first().map(|p| p.name.as_str()))
                    .flatten();
                let fresh = args
                    .iter()
                    .map(|a| {
                        let a = strip_object_expr(a);
                        caller.fresh.iter().any(|f| f == a)
                            || own_object == Some(a)
                            || fresh_params.get(&caller.id).is_some_and(|p| p.contains(a))
                    })
                    .collect();
                next.entry(*callee).or_default().push(fresh);
            }
            let computed: HashMap<usize, HashSet<String>> = next
                .into_iter()
                .map(|(callee, calls)| {
                    let fresh = self
                        .function(callee)
                        .params
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| {
                            calls
                                .iter()
                                .all(|args| args.get(*i).copied().unwrap_or(false))
                        })
                        .map(|(_, p)| p.name.clone())
                        .collect::<HashSet<String>>();
                    (callee, fresh)
                })
                .filter(|(_, fresh)| !fresh.is_empty())
                .collect();
            if computed == fresh_params {
                break;
            }
            fresh_params = computed;
        }
        self.fresh_params = fresh_params;
    }

    pub fn functions(&self) -> impl Iterator<Item = (usize, &FunctionFacts)> {
        self.files
            .iter()
            .enumerate()
            .flat_map(|(i, f)| f.facts.functions.iter().map(move |func| (i, func)))
    }

    pub fn function(&self, id: usize) -> &FunctionFacts {
        let (file, i) = self.ids[id];
        &self.files[file].facts.functions[i]
    }

    fn file_of(&self, id: usize) -> usize {
        self.ids[id].0
    }

    /// The function `name` means when used in `file`: the file's own definition, else one in a
    /// header, else a non-static one elsewhere (static functions of other `.c` files are
    /// invisible).
    pub fn resolve_function(&self, file: usize, name: &str) -> Option<usize> {
        let candidates = self.by_name.get(name)?;
        candidates
            .iter()
            .copied()
            .find(|&id| self.file_of(id) == file)
            .or_else(|| {
                candidates
                    .iter()
                    .copied()
                    .find(|&id| self.is_header(self.file_of(id)))
            })
            .or_else(|| {
                candidates
                    .iter()
                    .copied()
                    .find(|&id| !self.function(id).is_static)
            })
            // A header (e.g. a clinic `.c.h`) sees the static functions of the file including it.
            .or_else(|| candidates.first().copied().filter(|_| self.is_header(file)))
    }

    /// [`Self::resolve_function`] for a name used in the file at `path`.
    fn resolve_in(&self, path: &PathBuf, name: &str) -> Option<usize> {
        let file = *self.file_by_path.get(path)?;
        self.resolve_function(file, name)
    }

    fn is_header(&self, file: usize) -> bool {
        self.files[file].path.extension().is_some_and(|e| e == "h")
    }

    pub fn context(&self, function: &FunctionFacts) -> &Context {
        self.contexts.get(&function.id).unwrap_or(&Context::Exposed)
    }

    pub fn is_bound(&self, function: &FunctionFacts) -> bool {
        self.bound.contains_key(&function.id)
    }

    fn compute_bound(&mut self) {
        let mut bound: HashMap<usize, Vec<usize>> = HashMap::new();
        for (i, m) in self.bindings.methods.iter().enumerate() {
            if let Some(id) = self.resolve_in(&m.file, &m.c_function) {
                bound.entry(id).or_default().push(i);
            }
        }
        self.bound = bound;
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
        if let Some(name) = ty.strip_prefix(CAST_MACRO) {
            ty = self.cast_macros.get(name)?.clone();
        }
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

    /// The global a non-local name refers to from `file` (inside `function`): its own, one in a
    /// header, or a non-static one declared `extern` somewhere.
    pub fn resolve_global(
        &self,
        file: usize,
        function: &str,
        name: &str,
    ) -> Option<(usize, &GlobalVar)> {
        let candidates = self.globals_by_name.get(name)?;
        let global = |&(fi, gi): &(usize, usize)| (fi, &self.files[fi].facts.globals[gi]);
        let own = candidates.iter().map(global).find(|(fi, g)| {
            *fi == file && g.function.as_deref().is_none_or(|owner| owner == function)
        });
        own.or_else(|| {
            candidates.iter().map(global).find(|(fi, g)| {
                g.function.is_none()
                    && (self.is_header(*fi) || (!g.is_static && self.externs.contains(name)))
            })
        })
    }

    /// Python-visible names whose C function reaches `function` (nearest first, at most 8).
    pub fn entry_points(&self, file: usize, function: &str) -> Vec<String> {
        let Some(start) = self.resolve_function(file, function) else {
            return Vec::new();
        };
        let mut seen: HashSet<usize> = HashSet::from([start]);
        let mut queue = VecDeque::from([(start, 0)]);
        let mut out = Vec::new();
        while let Some((f, depth)) = queue.pop_front() {
            self.add_python_names(f, &mut out);
            if out.len() >= MAX_ENTRY_POINTS || depth >= MAX_ENTRY_DEPTH {
                continue;
            }
            for &(caller, _) in self.incoming.get(&f).into_iter().flatten() {
                if seen.insert(caller) {
                    queue.push_back((caller, depth + 1));
                }
            }
        }
        out.truncate(MAX_ENTRY_POINTS);
        out
    }

    /// Adds the Python names bound to function `id` (`Type.method`) to `out`, once each.
    fn add_python_names(&self, id: usize, out: &mut Vec<String>) {
        for &i in self.bound.get(&id).into_iter().flatten() {
            let m = &self.bindings.methods[i];
            if !is_python_callable(&m.python_name) {
                continue; // `tp_dealloc`, `tp_traverse`: not something a script can call
            }
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
    }

    /// Fixed point over the call graph: a function is `Locked` when every call site holds a
    /// lock or sits in a `Locked` function, `Lifecycle` when every caller is a lifecycle
    /// function. Functions Python can call directly stay `Exposed`.
    fn compute_contexts(&mut self) {
        // callee → [(caller, lock held at the call)]
        let mut sites: HashMap<usize, Vec<(usize, String, Option<String>)>> = HashMap::new();
        for (caller, callee, i) in self.call_sites() {
            let held = caller.guard(&caller.events[i]).protection();
            sites
                .entry(callee)
                .or_default()
                .push((caller.id, caller.name.clone(), held));
        }
        let mut contexts: HashMap<usize, Context> = HashMap::new();
        for (names, context) in [
            (&self.bindings.lifecycle, Context::Lifecycle),
            (&self.bindings.module_init, Context::ModuleInit),
        ] {
            for (file, name) in names {
                if let Some(id) = self.resolve_in(file, name) {
                    if context == Context::Lifecycle {
                        self.lifecycle_slots.insert(id);
                    }
                    contexts.insert(id, context.clone());
                }
            }
        }
        for (_, func) in self.functions() {
            if func.name.starts_with("PyInit_") {
                contexts.insert(func.id, Context::ModuleInit);
            }
        }
        loop {
            let mut changed = false;
            for (callee, callers) in &sites {
                if self.bound.contains_key(callee) || contexts.contains_key(callee) {
                    continue;
                }
                if let Some(context) = derive_context(callers, &contexts) {
                    contexts.insert(*callee, context);
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        let mut incoming: HashMap<usize, Vec<(usize, usize)>> = HashMap::new();
        for (caller, callee, i) in self.call_sites() {
            incoming.entry(callee).or_default().push((caller.id, i));
        }
        self.incoming = incoming;
        self.contexts = contexts;
    }
}

/// Per file, the string macros it sees: its own, over those of the headers it includes
/// (nearer ones first), so two files' different `MODULE_NAME`s do not mix.
fn visible_string_macros(files: &[ScannedFile]) -> Vec<HashMap<String, Vec<StrPart>>> {
    let by_path: HashMap<&PathBuf, usize> = files
        .iter()
        .enumerate()
        .filter_map(|(i, f)| f.canonical.as_ref().map(|p| (p, i)))
        .collect();
    (0..files.len())
        .map(|start| {
            let mut order = vec![start];
            let mut next = 0;
            while next < order.len() && order.len() < MAX_VISIBLE_HEADERS {
                let included = files[order[next]].included.iter();
                let found: Vec<usize> = included.filter_map(|p| by_path.get(p).copied()).collect();
                order.extend(
                    found
                        .into_iter()
                        .filter(|i| !order.contains(i))
                        .collect::<Vec<_>>(),
                );
                next += 1;
            }
            let mut visible = HashMap::new();
            for &file in order.iter().rev() {
                for (name, parts) in &files[file].facts.string_macros {
                    visible.insert(name.clone(), parts.clone());
                }
            }
            visible
        })
        .collect()
}

/// How many headers' macros a file sees at most (includes of includes...).
const MAX_VISIBLE_HEADERS: usize = 64;

/// Entry points listed per finding, and how many calls away from it they are looked for.
const MAX_ENTRY_POINTS: usize = 8;
const MAX_ENTRY_DEPTH: usize = 6;

/// Slots without a dunder keep their C slot name (`tp_dealloc`).
fn is_python_callable(python_name: &str) -> bool {
    !(python_name.starts_with("tp_")
        || python_name.starts_with("bf_")
        || python_name.starts_with("was_"))
}

fn derive_context(
    callers: &[(usize, String, Option<String>)],
    known: &HashMap<usize, Context>,
) -> Option<Context> {
    let mut lock: Option<String> = None;
    let mut all_module_init = true;
    for (id, caller, held) in callers {
        match (held, known.get(id)) {
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
