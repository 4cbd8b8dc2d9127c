//! Scenario generation: from an [`ApiModel`] to standalone Python scripts.
//!
//! Generation is a pure function of the model and the config: same seed, same scripts.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::hints::{HandScenario, Hints};
use crate::model::{ApiModel, ArgSet, ArgSource, Callable, Method, ModelSource, TypeApi};
use crate::ops::{self, Op, Vars};
use crate::repro::{ReproContext, OP_HELPERS};

const HARNESS: &str = include_str!("harness.py");
/// Objects in the create/destroy churn pool.
const POOL_SIZE: usize = 8;
/// Targeted scenarios run this many times the configured iterations.
const TARGETED_ITERATION_FACTOR: u64 = 2;

#[derive(Debug, Clone)]
pub struct GenConfig {
    pub seed: u64,
    pub threads: usize,
    /// Iterations per worker thread (the time budget may stop a scenario earlier).
    pub iterations: u64,
    pub time_budget_per_scenario: Duration,
    /// Python-visible names the static pass flagged (`pkg.func`, `pkg.Type.method`, or a
    /// dotted suffix of one): each gets a targeted scenario.
    pub targets: Vec<String>,
    pub hints: Hints,
    /// Fresh child processes of the function hammer that repeat the simultaneous first calls
    /// of module functions (lazy initialisation races happen once per process); at most two
    /// thirds of the budget.
    pub first_call_rounds: u32,
}

impl Default for GenConfig {
    fn default() -> Self {
        GenConfig {
            seed: 0,
            threads: 4,
            iterations: 2000,
            time_budget_per_scenario: Duration::from_secs(20),
            targets: Vec::new(),
            hints: Hints::default(),
            first_call_rounds: 16,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScenarioKind {
    /// Writers on one shared object.
    SharedMutation,
    /// Readers (iteration, repr, len, copy, pickle, comparisons) against writers.
    ReadWrite,
    /// Every module function from every thread at once, first calls included (lazy init).
    FunctionHammer,
    /// Construction, cross-thread deallocation and GC while a shared object mutates.
    Churn,
    /// `a.op(b)` while `b` mutates.
    TwoObject,
    /// Threads assign the properties while others read through the object.
    PropertySetter,
    /// Aimed at a callable the static pass flagged.
    Targeted,
    /// From the package's hints.
    HandWritten,
    /// Threads calling one callable (or constructor) with different argument sets, some
    /// recorded from the test suite: modes, options and argument types side by side.
    MixedArguments,
}

impl ScenarioKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ScenarioKind::SharedMutation => "shared-mutation",
            ScenarioKind::ReadWrite => "read-write",
            ScenarioKind::FunctionHammer => "function-hammer",
            ScenarioKind::Churn => "churn",
            ScenarioKind::TwoObject => "two-object",
            ScenarioKind::PropertySetter => "property-setter",
            ScenarioKind::Targeted => "targeted",
            ScenarioKind::HandWritten => "hand-written",
            ScenarioKind::MixedArguments => "mixed-arguments",
        }
    }
}

/// A standalone Python script. Run it in its own process with the extension importable,
/// `PYTHON_GIL=0` and `FTREVIEW_OUTCOME=<path>`; it writes a [`crate::ScenarioOutcome`] there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scenario {
    /// Stable and filename-safe: `<kind>.<qualified name>`.
    pub name: String,
    pub kind: ScenarioKind,
    pub script: String,
    /// What the script calls from several threads: callables, dunders (`pkg.T.__len__`)
    /// and properties (`pkg.T.label`), by qualname.
    pub callables: Vec<String>,
    /// The part of `callables` that runs the extension's C code directly.
    pub c_callables: Vec<String>,
    /// Where the model came from (static bindings: untried constructors and arguments).
    pub model_source: ModelSource,
}

impl Scenario {
    /// The scenario exercises at least one C callable of the extension.
    pub fn reaches_c(&self) -> bool {
        !self.c_callables.is_empty()
    }
}

/// All scenarios for the model, in a stable order.
pub fn generate(model: &ApiModel, cfg: &GenConfig) -> Vec<Scenario> {
    let vars = Vars::new(model, &cfg.hints);
    let mut specs = Vec::new();
    for ty in vars.constructible() {
        specs.extend(type_scenarios(&vars, ty));
    }
    for module in model.modules.iter().filter(|m| !m.functions.is_empty()) {
        let per_function: Vec<Vec<Op>> = module
            .functions
            .iter()
            .map(|f| function_ops(&vars, f))
            .filter(|ops| !ops.is_empty())
            .collect();
        if !per_function.is_empty() {
            let mut spec = Spec::new(ScenarioKind::FunctionHammer, &module.name, &vars);
            // The first call of each function at once (lazy initialisation), then every
            // argument kind that worked or broke the C-API contract.
            spec.first_calls = per_function.iter().map(|ops| ops[0].clone()).collect();
            spec.role("caller", per_function.into_iter().flatten().collect());
            specs.push(spec);
        }
    }
    specs.extend(mixed_argument_scenarios(model, &vars));
    specs.extend(targeted_scenarios(model, &vars, &cfg.targets));
    specs.extend(
        cfg.hints
            .scenarios
            .iter()
            .map(|hand| hand_scenario(&vars, hand)),
    );
    specs.into_iter().map(|spec| spec.render(cfg)).collect()
}

/// Shared mutation, read/write contention, churn and two-object scenarios for one type.
fn type_scenarios<'a>(vars: &'a Vars<'a>, ty: &'a TypeApi) -> Vec<Spec<'a>> {
    let writers = ops::writers(vars, ty, "S", None);
    let readers = ops::readers(vars, ty, "S", Some("O"));
    let mut specs = Vec::new();
    if !writers.is_empty() {
        let mut spec =
            Spec::new(ScenarioKind::SharedMutation, &ty.qualname, vars).with_subjects(ty, &["S"]);
        spec.role("writer", writers.clone());
        specs.push(spec);
    }
    if !writers.is_empty() && !readers.is_empty() {
        let mut spec =
            Spec::new(ScenarioKind::ReadWrite, &ty.qualname, vars).with_subjects(ty, &["S", "O"]);
        spec.role("writer", writers.clone());
        spec.role("reader", readers);
        specs.push(spec);
    }
    let setters = ops::property_setters(ty, "S");
    if !setters.is_empty() {
        let mut spec =
            Spec::new(ScenarioKind::PropertySetter, &ty.qualname, vars).with_subjects(ty, &["S"]);
        spec.role("setter", setters);
        spec.role("reader", ops::readers(vars, ty, "S", None));
        specs.push(spec);
    }
    let mut churn = Spec::new(ScenarioKind::Churn, &ty.qualname, vars).with_subjects(ty, &["S"]);
    churn.pool = Some(ty);
    if !writers.is_empty() {
        churn.role("writer", writers);
    }
    churn.role("churn", ops::churn(vars, ty, "S", POOL_SIZE));
    specs.push(churn);
    let pairs = ops::pair_ops(vars, ty, "S", "O");
    let other_writers = ops::writers(vars, ty, "O", None);
    if !pairs.is_empty() && !other_writers.is_empty() {
        let mut spec =
            Spec::new(ScenarioKind::TwoObject, &ty.qualname, vars).with_subjects(ty, &["S", "O"]);
        spec.role("pair", pairs);
        spec.role("writer", other_writers);
        specs.push(spec);
    }
    specs
}

fn function_ops(vars: &Vars, function: &Callable) -> Vec<Op> {
    ops::usable_sets(&function.arg_sets)
        .filter_map(|set| ops::call_function(vars, function, set))
        .collect()
}

/// A scenario per callable that the tests called with arguments of their own and that has
/// several argument sets, and per type the tests built with a constructor of their own (see
/// `mixed`).
fn mixed_argument_scenarios<'a>(model: &'a ApiModel, vars: &'a Vars<'a>) -> Vec<Spec<'a>> {
    let mut specs = Vec::new();
    for function in model.modules.iter().flat_map(|m| &m.functions) {
        let calls = recorded_first(&function.arg_sets, |set| {
            ops::call_function(vars, function, set)
        });
        if let Some(spec) = mixed(vars, &function.qualname, calls) {
            specs.push(spec);
        }
    }
    for ty in vars.constructible() {
        for method in &ty.methods {
            let calls = recorded_first(&method.call.arg_sets, |set| {
                ops::method_op(vars, ty, method, set, "S", None)
            });
            if let Some(spec) = mixed(vars, &method.call.qualname, calls) {
                specs.push(spec.with_subjects(ty, &["S"]));
            }
        }
        let builds: Vec<Vec<Op>> = (0..vars.variant_count(&ty.qualname))
            .filter_map(|choice| variant_ops(vars, ty, choice))
            .collect();
        if let Some(spec) = mixed(vars, &ty.qualname, (builds.len() > 1, builds)) {
            specs.push(spec);
        }
    }
    specs
}

/// The ops of a callable's usable argument sets, the tests' first, one list per set, and
/// whether the tests made any of them.
fn recorded_first<'s>(
    sets: &'s [ArgSet],
    op: impl Fn(&'s ArgSet) -> Option<Op>,
) -> (bool, Vec<Vec<Op>>) {
    let (tests, catalogue): (Vec<&ArgSet>, Vec<&ArgSet>) =
        ops::usable_sets(sets).partition(|s| s.source == ArgSource::Tests);
    let calls = tests
        .iter()
        .chain(&catalogue)
        .filter_map(|set| op(set))
        .map(|op| vec![op])
        .collect();
    (!tests.is_empty(), calls)
}

/// What a thread does with objects built by one constructor: builds and drops them, and
/// changes fresh ones (state they share behind the scenes races then).
fn variant_ops(vars: &Vars, ty: &TypeApi, choice: usize) -> Option<Vec<Op>> {
    let build = vars.construction_variant(ty, choice)?;
    let make = vars.make_variant(&ty.qualname, choice as u64)?;
    let mut ops = vec![build];
    ops.extend(
        ops::writers(vars, ty, "x", None)
            .iter()
            .map(|op| op.on_fresh_object("x", &make)),
    );
    Some(ops)
}

/// The mixed-arguments scenario of `subject` when the tests contributed and there are two
/// argument sets (constructors) at least: every thread calls it with a set picked at random
/// on each call, so different sets run side by side (modes, options) and so does one set in
/// two threads (a path only one argument type or option takes).
fn mixed<'a>(
    vars: &'a Vars<'a>,
    subject: &str,
    (from_tests, per_set): (bool, Vec<Vec<Op>>),
) -> Option<Spec<'a>> {
    if !from_tests || per_set.len() < 2 {
        return None;
    }
    let mut spec = Spec::new(ScenarioKind::MixedArguments, subject, vars);
    spec.role("arguments", per_set.into_iter().flatten().collect());
    Some(spec)
}

/// A scenario per flagged callable: every thread on that function, or half the threads on
/// that method of a shared object while the other half mutates it.
fn targeted_scenarios<'a>(
    model: &'a ApiModel,
    vars: &'a Vars<'a>,
    targets: &[String],
) -> Vec<Spec<'a>> {
    let mut specs = Vec::new();
    let mut seen = BTreeSet::new();
    for target in targets {
        for function in model
            .modules
            .iter()
            .flat_map(|m| &m.functions)
            .filter(|f| names(&f.qualname, target))
        {
            let calls = function_ops(vars, function);
            if calls.is_empty() || !seen.insert(function.qualname.clone()) {
                continue;
            }
            let mut spec = Spec::new(ScenarioKind::Targeted, &function.qualname, vars);
            spec.first_calls = calls.clone();
            spec.role("caller", calls);
            specs.push(spec);
        }
        for ty in vars.constructible() {
            for method in ty
                .methods
                .iter()
                .filter(|m| names(&m.call.qualname, target))
            {
                if let Some(spec) = targeted_method(vars, ty, method) {
                    if seen.insert(method.call.qualname.clone()) {
                        specs.push(spec);
                    }
                }
            }
        }
    }
    specs
}

fn targeted_method<'a>(
    vars: &'a Vars<'a>,
    ty: &'a TypeApi,
    method: &'a Method,
) -> Option<Spec<'a>> {
    let calls = ops::method_ops(vars, ty, method, "S", Some("O"));
    if calls.is_empty() {
        return None;
    }
    let mut spec = Spec::new(ScenarioKind::Targeted, &method.call.qualname, vars)
        .with_subjects(ty, &["S", "O"]);
    let writers = ops::writers(vars, ty, "S", None);
    spec.role("target", calls);
    if !writers.is_empty() {
        spec.role("writer", writers);
    }
    Some(spec)
}

/// `target` names `qualname` exactly or as a dotted suffix (`Type.method`, `func`).
fn names(qualname: &str, target: &str) -> bool {
    qualname == target
        || qualname
            .strip_suffix(target)
            .is_some_and(|head| head.ends_with('.'))
}

fn hand_scenario<'a>(vars: &'a Vars<'a>, hand: &'a HandScenario) -> Spec<'a> {
    let mut spec = Spec::new(ScenarioKind::HandWritten, &hand.name, vars);
    spec.hand_setup = Some(&hand.setup);
    spec.role(
        "worker",
        vec![Op::statement(
            format!("hint {}", hand.name),
            hand.worker.trim_end(),
        )],
    );
    spec
}

/// A scenario before rendering.
struct Spec<'a> {
    kind: ScenarioKind,
    subject: String,
    vars: &'a Vars<'a>,
    /// Shared objects (`S`, `O`) of this type, checked for invariants at the end.
    subjects: Vec<(&'static str, &'a TypeApi)>,
    pool: Option<&'a TypeApi>,
    roles: Vec<(String, Vec<Op>)>,
    first_calls: Vec<Op>,
    hand_setup: Option<&'a str>,
}

impl<'a> Spec<'a> {
    fn new(kind: ScenarioKind, subject: &str, vars: &'a Vars<'a>) -> Self {
        Spec {
            kind,
            subject: subject.to_string(),
            vars,
            subjects: Vec::new(),
            pool: None,
            roles: Vec::new(),
            first_calls: Vec::new(),
            hand_setup: None,
        }
    }

    fn with_subjects(mut self, ty: &'a TypeApi, names: &[&'static str]) -> Self {
        self.subjects = names.iter().map(|name| (*name, ty)).collect();
        self
    }

    fn role(&mut self, name: impl Into<String>, ops: Vec<Op>) {
        self.roles.push((name.into(), ops));
    }

    fn name(&self) -> String {
        let raw = format!("{}.{}", self.kind.as_str(), self.subject);
        raw.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    }

    /// Aimed scenarios wait for one pair of operations to interleave (the flagged callable
    /// against a writer, `a.op(b)` against `b`'s writer), so they loop longer; the process
    /// start under TSan costs more than the extra iterations.
    fn iterations(&self, cfg: &GenConfig) -> u64 {
        match self.kind {
            ScenarioKind::Targeted | ScenarioKind::TwoObject => {
                cfg.iterations * TARGETED_ITERATION_FACTOR
            }
            _ => cfg.iterations,
        }
    }

    /// Fresh processes that repeat the first calls. Only the function hammer starts them: it
    /// makes every module function's first call, so another scenario's processes would redo
    /// the same once-per-process initialisations (they still make their first calls at once
    /// in their own process).
    fn first_call_processes(&self, cfg: &GenConfig) -> u32 {
        if self.kind == ScenarioKind::FunctionHammer && !self.first_calls.is_empty() {
            cfg.first_call_rounds
        } else {
            0
        }
    }

    fn ops(&self) -> impl Iterator<Item = &Op> {
        self.roles
            .iter()
            .flat_map(|(_, ops)| ops)
            .chain(&self.first_calls)
    }

    /// The qualnames of the ops (of those reaching C only, with `c_only`).
    fn callables(&self, c_only: bool) -> Vec<String> {
        let set: BTreeSet<String> = self
            .ops()
            .filter(|op| op.reaches_c || !c_only)
            .filter_map(|op| op.callable.clone())
            .collect();
        set.into_iter().collect()
    }

    fn repro(&self, seed: u64) -> ReproContext<'_> {
        ReproContext {
            vars: self.vars,
            subjects: &self.subjects,
            constructor_choice: seed,
            pool: self.pool.map(|ty| (ty, POOL_SIZE)),
            hand_setup: self.hand_setup,
        }
    }

    fn render(self, cfg: &GenConfig) -> Scenario {
        let name = self.name();
        // The scenario's seed also picks the constructor its shared objects are built by.
        let seed = splitmix64(cfg.seed ^ fnv1a(name.as_bytes()));
        let mut py = String::new();
        self.render_header(&mut py, &name, seed, cfg);
        self.vars.render_makers(&mut py);
        self.render_setup(&mut py, seed);
        self.render_ops(&mut py, seed, cfg.threads);
        py.push_str(OP_HELPERS);
        py.push_str(HARNESS);
        Scenario {
            callables: self.callables(false),
            c_callables: self.callables(true),
            model_source: self.vars.model.source,
            name,
            kind: self.kind,
            script: py,
        }
    }

    fn render_header(&self, py: &mut String, name: &str, seed: u64, cfg: &GenConfig) {
        let _ = writeln!(py, "#!/usr/bin/env python3");
        let _ = writeln!(
            py,
            "\"\"\"ftreview stress scenario {name} ({}).\n",
            self.kind.as_str()
        );
        let _ = writeln!(
            py,
            "Generated by ftreview-stress; standalone. Rerun under the TSan interpreter with:"
        );
        let _ = writeln!(
            py,
            "    PYTHON_GIL=0 FTREVIEW_OUTCOME=outcome.json python {name}.py"
        );
        let _ = writeln!(
            py,
            "With FTREVIEW_SINGLE_THREAD=1 the same operations run in one thread (the control run)."
        );
        if self.vars.model.source == ModelSource::StaticBindings {
            let _ = writeln!(
                py,
                "Built from the static pass's bindings (introspection failed): constructors and\narguments are untried catalogue values."
            );
        }
        let _ = writeln!(py, "\"\"\"");
        let _ = writeln!(
            py,
            "import copy\nimport functools\nimport itertools\nimport operator\nimport pickle\n"
        );
        for package in self.vars.imports() {
            let _ = writeln!(py, "import {package}");
        }
        let _ = writeln!(
            py,
            "\nSCENARIO = {{\"name\": {}, \"kind\": \"{}\", \"seed\": {seed}, \"threads\": {}, \"iterations\": {}, \"budget_secs\": {:.1}, \"first_call_rounds\": {}}}\n",
            py_str(name),
            self.kind.as_str(),
            cfg.threads.max(1),
            self.iterations(cfg),
            cfg.time_budget_per_scenario.as_secs_f64(),
            self.first_call_processes(cfg),
        );
    }

    fn render_setup(&self, py: &mut String, seed: u64) {
        let mut globals: Vec<&str> = self.subjects.iter().map(|(name, _)| *name).collect();
        if self.pool.is_some() {
            globals.push("POOL");
        }
        let _ = writeln!(py, "\ndef setup():");
        if !globals.is_empty() {
            let _ = writeln!(py, "    global {}", globals.join(", "));
        }
        for (name, ty) in &self.subjects {
            let _ = writeln!(
                py,
                "    {name} = {}",
                self.vars
                    .make_variant(&ty.qualname, seed)
                    .unwrap_or_default()
            );
        }
        if let Some(ty) = self.pool {
            let _ = writeln!(
                py,
                "    POOL = {}",
                self.vars.pool(&ty.qualname, POOL_SIZE).unwrap_or_default()
            );
        }
        if let Some(code) = self.hand_setup {
            let _ = writeln!(py, "    exec({}, globals())", py_str(code));
        }
        let _ = writeln!(py, "    return None");
    }

    /// The op tables: `(label, function, one-line reproducer)` per op.
    fn render_ops(&self, py: &mut String, seed: u64, threads: usize) {
        let repro = self.repro(seed);
        let mut index = 0;
        let mut table = String::new();
        let mut first = String::new();
        for (role, ops) in &self.roles {
            let _ = writeln!(table, "    {}: [", py_str(role));
            for op in ops {
                op.render_def(py, index);
                let call = py_str(&repro.one_line(&op.body));
                let _ = writeln!(
                    table,
                    "        ({}, op_{index}, {call}),",
                    py_str(&op.label)
                );
                index += 1;
            }
            let _ = writeln!(table, "    ],");
        }
        for op in &self.first_calls {
            if op.render_binder(py, index).is_some() {
                let call = py_str(&repro.one_line(&op.body));
                let _ = writeln!(first, "    ({}, bind_{index}, {call}),", py_str(&op.label));
                index += 1;
            }
        }
        let roles: Vec<String> = (0..threads.max(1))
            .map(|t| py_str(&self.roles[t % self.roles.len()].0))
            .collect();
        let invariants: Vec<String> = self
            .subjects
            .iter()
            .map(|(name, _)| format!("({}, {})", py_str(name), py_str(&repro.setup_of(name))))
            .collect();
        let _ = writeln!(py, "\nROLES = {{\n{table}}}");
        let _ = writeln!(py, "THREAD_ROLES = [{}]", roles.join(", "));
        let _ = writeln!(py, "FIRST_CALLS = [\n{first}]");
        let _ = writeln!(py, "INVARIANTS = [{}]", invariants.join(", "));
    }
}

/// A Python string literal (JSON string syntax is valid Python).
pub(crate) fn py_str(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "''".into())
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn splitmix64(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) & ((1 << 53) - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_match_whole_dotted_suffixes_only() {
        assert!(names("pkg.Vector.append", "Vector.append"));
        assert!(names("pkg.Vector.append", "pkg.Vector.append"));
        assert!(names("pkg.lookup", "lookup"));
        assert!(!names("pkg.Vector.append", "append2"));
        assert!(!names("pkg.Vector.append", "ector.append"));
    }

    #[test]
    fn names_are_filename_safe() {
        let model = ApiModel::from_bindings(&[]);
        let vars = Vars::new(&model, &Hints::default());
        let spec = Spec::new(ScenarioKind::HandWritten, "a b/c<d>", &vars);
        assert_eq!(spec.name(), "hand-written.a_b_c_d_");
    }
}
