//! Locks callers hold on the objects they pass. A helper whose every call site holds a critical
//! section on the object it passes in (or one and the same mutex), directly or through further
//! helpers, has that object protected by its callers. Only the object passed counts: a caller
//! that locks `self` and passes `other` protects nothing in the helper.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};

use super::{Context, Program, MAX_ENTRY_DEPTH, MAX_ENTRY_POINTS};
use crate::facts::{strip_object_expr, Event, EventKind, FunctionFacts, LocalSource};

/// Which lock a call site holds; two sites protect the same object only with the same lock.
#[derive(Debug, Clone, PartialEq, Eq)]
enum LockKey {
    /// A critical section on the object passed.
    Section,
    /// A mutex inside the object passed, by its path from it (`->mutex`), or a lock call on
    /// the object itself, by the call (`ACQUIRE_LOCK`).
    OwnMutex(String),
    /// A mutex named by a global (`module_lock`, `locks.table`).
    GlobalMutex(String),
}

/// The lock every call path holds on the object a parameter receives.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CallerLock {
    key: LockKey,
    /// As written where it is taken first: `Py_BEGIN_CRITICAL_SECTION(self)`.
    text: String,
    /// The functions that take it.
    holders: BTreeSet<String>,
}

impl CallerLock {
    /// `Py_BEGIN_CRITICAL_SECTION(self) in callers `a`, `b``.
    pub fn describe(&self) -> String {
        let names: Vec<String> = self.holders.iter().map(|h| format!("`{h}`")).collect();
        let callers = if names.len() == 1 {
            "caller"
        } else {
            "callers"
        };
        format!("{} in {callers} {}", self.text, names.join(", "))
    }

    fn merge(&mut self, other: CallerLock) -> bool {
        if self.key != other.key {
            return false;
        }
        self.holders.extend(other.holders);
        true
    }
}

/// The Python entry points of a helper on whose paths the object it receives is not locked,
/// and the callers that do lock it.
pub(crate) struct UnlockedPaths {
    pub entry_points: Vec<String>,
    pub locking_callers: BTreeSet<String>,
}

impl Program {
    /// The object an expression of `func` denotes: `(PyObject *)self`, `MD(self)` (a cast
    /// macro) and a local only ever copied from `self` are all `self`.
    pub fn object_root(&self, func: &FunctionFacts, expr: &str) -> String {
        let mut name = self.through_cast_macro(strip_object_expr(expr)).to_string();
        for _ in 0..4 {
            let mut sources = func.local_sources.iter().filter(|s| s.local == name);
            let Some(first) = sources.next() else { break };
            match self.copied_object(first) {
                Some(source) if sources.all(|s| self.copied_object(s) == Some(source)) => {
                    name = source.to_string()
                }
                _ => break,
            }
        }
        name
    }

    /// The object a local was given: `self` in `md = self`, `md = (T *)self`, `md = MD(self)`.
    fn copied_object<'s>(&self, source: &'s LocalSource) -> Option<&'s str> {
        let through_cast = source
            .through
            .as_deref()
            .is_none_or(|m| self.cast_macros.contains_key(m));
        source.copied.as_deref().filter(|_| through_cast)
    }

    /// `MD(self)` → `self` when `MD` is a cast macro.
    fn through_cast_macro<'e>(&self, expr: &'e str) -> &'e str {
        expr.strip_suffix(')')
            .and_then(|e| e.split_once('('))
            .filter(|(callee, _)| self.cast_macros.contains_key(callee.trim()))
            .map(|(_, inner)| strip_object_expr(inner))
            .filter(|inner| inner.chars().all(|c| c.is_alphanumeric() || c == '_'))
            .unwrap_or(expr)
    }

    /// The lock every path into `function` holds on the object passed as `param`.
    pub fn param_lock(&self, function: &FunctionFacts, param: &str) -> Option<&CallerLock> {
        self.param_locks.get(&function.id)?.get(param)
    }

    /// The lock held on `arg` at the call `event` of `caller`: a section on it, a mutex in it or
    /// a global one taken there, or the lock every caller of `caller` holds on it.
    fn site_lock(
        &self,
        caller: &FunctionFacts,
        event: &Event,
        arg: &str,
        known: &HashMap<usize, HashMap<String, CallerLock>>,
    ) -> Option<CallerLock> {
        let object = self.object_root(caller, arg);
        self.lock_taken(caller, event, &object)
            .or_else(|| known.get(&caller.id)?.get(&object).cloned())
    }

    /// A lock `caller` itself holds on `object` at `event`: a section on it, a mutex in it,
    /// or a global one.
    fn lock_taken(
        &self,
        caller: &FunctionFacts,
        event: &Event,
        object: &str,
    ) -> Option<CallerLock> {
        let guard = caller.guard(event);
        let taken_here = |key, text: &str| CallerLock {
            key,
            text: text.to_string(),
            holders: BTreeSet::from([caller.name.clone()]),
        };
        let section = guard.sections.iter().rev().find(|s| {
            s.objects
                .iter()
                .any(|o| self.object_root(caller, o) == object)
        });
        if let Some(section) = section {
            return Some(taken_here(LockKey::Section, &section.text));
        }
        for (mutex, call) in guard.mutexes.iter().rev() {
            let split = mutex.find(['-', '.', '[']).unwrap_or(mutex.len());
            let (root, path) = mutex.split_at(split);
            if self.object_root(caller, root) == object {
                // `PyMutex_Lock(&self->mutex)`, or `ACQUIRE_LOCK(self)`: the object's own lock.
                let which = if path.is_empty() {
                    call.split('(').next().unwrap_or(call)
                } else {
                    path
                };
                return Some(taken_here(LockKey::OwnMutex(which.to_string()), call));
            }
            // `MODULE_LOCK()`: a lock call without arguments takes a process-wide lock.
            let without_args = path.is_empty() && call.starts_with(mutex.as_str());
            let file = self.file_of(caller.id);
            if without_args || self.resolve_global(file, &caller.name, root).is_some() {
                return Some(taken_here(LockKey::GlobalMutex(mutex.clone()), call));
            }
        }
        None
    }

    /// A call site that does not matter for sharing: the caller runs before the object is
    /// shared (lifecycle, module init), or passes an object it just created.
    fn unshared_site(&self, caller: &FunctionFacts, arg: Option<&str>) -> bool {
        matches!(
            self.context(caller),
            Context::Lifecycle | Context::ModuleInit
        ) || arg.is_some_and(|arg| self.is_fresh(caller, &self.object_root(caller, arg)))
    }

    /// Fixed point: a parameter is locked when every call site that matters holds the same
    /// lock on the argument (taken there or inherited from the caller's own callers).
    pub(super) fn compute_param_locks(&mut self) {
        let prepared = self.prepared_args();
        let mut locks: HashMap<usize, HashMap<String, CallerLock>> = HashMap::new();
        for _ in 0..16 {
            let mut next: HashMap<usize, HashMap<String, CallerLock>> = HashMap::new();
            for (callee, param, args) in &prepared {
                if let Some(lock) = common_lock(args, &locks) {
                    next.entry(*callee).or_default().insert(param.clone(), lock);
                }
            }
            if next == locks {
                break;
            }
            locks = next;
        }
        self.param_locks = locks;
    }

    /// Per parameter of every helper Python does not call directly, its argument at each call
    /// site that matters (what does not change during the fixed point worked out once).
    /// Parameters some call does not pass at all are left out.
    fn prepared_args(&self) -> Vec<(usize, String, Vec<ArgAtSite>)> {
        let mut out = Vec::new();
        for (&callee, sites) in &self.incoming {
            if self.bound.contains_key(&callee) {
                continue; // Python calls it directly, without any lock
            }
            for (i, param) in self.function(callee).params.iter().enumerate() {
                let args: Option<Vec<ArgAtSite>> = sites
                    .iter()
                    .filter_map(|&(caller, event)| {
                        let caller = self.function(caller);
                        let event = &caller.events[event];
                        let Some(arg) = call_args(event).and_then(|args| args.get(i)) else {
                            return Some(None);
                        };
                        if self.unshared_site(caller, Some(arg)) {
                            return None;
                        }
                        let object = self.object_root(caller, arg);
                        Some(Some(ArgAtSite {
                            caller: caller.id,
                            taken_here: self.lock_taken(caller, event, &object),
                            object,
                        }))
                    })
                    .collect();
                if let Some(args) = args {
                    out.push((callee, param.name.clone(), args));
                }
            }
        }
        out
    }

    /// Python names reaching `function` on a path where the object it receives as `param`
    /// is not locked (nearest first, at most 8), and the callers that do lock it.
    pub fn unlocked_paths(&self, function: &FunctionFacts, param: &str) -> UnlockedPaths {
        let mut out = UnlockedPaths {
            entry_points: Vec::new(),
            locking_callers: BTreeSet::new(),
        };
        // (function, the parameter holding the object if still known, depth)
        let start = (function.id, Some(param.to_string()));
        let mut seen = HashSet::from([start.clone()]);
        let mut queue = VecDeque::from([(start.0, start.1, 0)]);
        while let Some((f, param, depth)) = queue.pop_front() {
            self.add_python_names(f, &mut out.entry_points);
            if out.entry_points.len() >= MAX_ENTRY_POINTS || depth >= MAX_ENTRY_DEPTH {
                continue;
            }
            let index = param
                .as_deref()
                .and_then(|p| self.function(f).params.iter().position(|q| q.name == p));
            for &(caller_id, event) in self.incoming.get(&f).into_iter().flatten() {
                let caller = self.function(caller_id);
                let event = &caller.events[event];
                let arg = index.and_then(|i| call_args(event)?.get(i));
                if self.unshared_site(caller, arg.map(String::as_str)) {
                    continue;
                }
                let next_param = match arg {
                    Some(arg) => {
                        if let Some(lock) = self.site_lock(caller, event, arg, &self.param_locks) {
                            out.locking_callers.extend(lock.holders);
                            continue;
                        }
                        let root = self.object_root(caller, arg);
                        caller.params.iter().any(|p| p.name == root).then_some(root)
                    }
                    None => None,
                };
                let state = (caller_id, next_param);
                if seen.insert(state.clone()) {
                    queue.push_back((state.0, state.1, depth + 1));
                }
            }
        }
        out.entry_points.truncate(MAX_ENTRY_POINTS);
        out
    }
}

/// A call site's argument: who passes it, the object it is there, and the lock the caller
/// itself holds on it.
struct ArgAtSite {
    caller: usize,
    object: String,
    taken_here: Option<CallerLock>,
}

/// The one lock every site holds on its argument (taken there, or held by all the caller's
/// own callers), if they agree.
fn common_lock(
    args: &[ArgAtSite],
    known: &HashMap<usize, HashMap<String, CallerLock>>,
) -> Option<CallerLock> {
    let mut common: Option<CallerLock> = None;
    for arg in args {
        let lock = arg
            .taken_here
            .clone()
            .or_else(|| known.get(&arg.caller)?.get(&arg.object).cloned())?;
        match &mut common {
            Some(common) => {
                if !common.merge(lock) {
                    return None;
                }
            }
            None => common = Some(lock),
        }
    }
    common
}

fn call_args(event: &Event) -> Option<&[String]> {
    match &event.kind {
        EventKind::Call { args, .. } => Some(args),
        _ => None,
    }
}
