//! Small reproducers: one shared object, a few threads behind a `threading.Barrier`, each
//! looping one of the operations that race on it. Plain Python a maintainer can run with any
//! free-threaded CPython: no ftreview import, no absolute path, about 40 lines.

use std::fmt::Write as _;

use crate::hints::Hints;
use crate::model::{ApiModel, ArgSet, Callable, Method, TypeApi};
use crate::ops::{usable_sets, Vars};

/// What to reproduce.
#[derive(Debug, Clone, PartialEq)]
pub struct ReproducerRequest {
    /// One line said at the top (what races).
    pub title: String,
    /// The racing Python operations: `Type.method` (short type name) or `module.function`.
    pub operations: Vec<String>,
    /// The race is on a second object of the same type that a method was given (`a.extend(b)`
    /// while `b` changes): `b` is shared too.
    pub on_argument: bool,
    pub threads: usize,
    /// How long the threads loop.
    pub seconds: f64,
}

/// The racing operations resolved against the API model: what the script, the regression
/// test and the probe are rendered from.
#[derive(Debug, Clone, PartialEq)]
pub struct SmallReproducer {
    pub title: String,
    /// Modules to import.
    pub imports: Vec<String>,
    /// The shared objects, by variable name (`shared`, `other`), and the expression making each.
    pub shared: Vec<(String, String)>,
    /// One Python expression per racing operation (`shared.append(1)`).
    pub operations: Vec<String>,
    pub threads: usize,
    pub seconds: f64,
}

impl SmallReproducer {
    /// `None` when the model cannot build the shared object or call any of the operations.
    pub fn new(model: &ApiModel, hints: &Hints, request: &ReproducerRequest) -> Option<Self> {
        let vars = Vars::new(model, hints);
        let mut calls: Vec<Call> = request
            .operations
            .iter()
            .filter_map(|op| resolve(&vars, model, op, request.on_argument))
            .collect();
        // Both racing stacks may have entered through the method given the second object (one
        // thread's `a.extend(b)` reads `b` while another's `b.extend(…)` changes it): when no
        // recorded operation changes `other`, those methods called on it do.
        if request.on_argument && !calls.iter().any(|c| c.changes_other) {
            let changers: Vec<Call> = (request.operations.iter())
                .filter_map(|op| change_argument(&vars, model, op))
                .collect();
            calls.extend(changers);
        }
        if calls.is_empty() {
            return None;
        }
        let threads = request.threads.max(calls.len()).clamp(2, 8);
        let mut shared: Vec<(String, String)> = Vec::new();
        for object in calls.iter().flat_map(|c| c.setup.clone()) {
            if !shared.contains(&object) {
                shared.push(object);
            }
        }
        Some(SmallReproducer {
            title: request.title.replace('\n', " "),
            imports: vars.imports().into_iter().map(String::from).collect(),
            shared,
            operations: calls.into_iter().map(|c| c.expression).collect(),
            threads,
            seconds: request.seconds,
        })
    }

    /// The standalone script.
    pub fn script(&self) -> String {
        let mut py = String::new();
        let _ = writeln!(py, "# {}", self.title);
        py.push_str("# Run with a free-threaded CPython (3.13t, 3.14t); a ThreadSanitizer build reports the race.\n");
        py.push_str("import os\nimport sys\nimport threading\nimport time\n\n");
        py.push_str("if os.environ.get(\"PYTHON_GIL\") != \"0\":  # with the GIL the threads would take turns\n");
        py.push_str("    os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, \"PYTHON_GIL\": \"0\"})\n\n");
        self.render_imports(&mut py);
        py.push('\n');
        self.render_objects(&mut py, "");
        let _ = writeln!(
            py,
            "]\nTHREADS = {}\nSECONDS = {:.1}\nbarrier = threading.Barrier(THREADS)\n",
            self.threads, self.seconds
        );
        py.push_str("\ndef worker(operation):\n    barrier.wait()  # every thread starts at once\n    end = time.monotonic() + SECONDS\n    while time.monotonic() < end:\n        try:\n            operation()\n        except Exception:  # contention may raise; the race is what matters\n            pass\n\n");
        py.push_str("threads = [threading.Thread(target=worker, args=(OPERATIONS[n % len(OPERATIONS)],)) for n in range(THREADS)]\nfor thread in threads:\n    thread.start()\nfor thread in threads:\n    thread.join()\n");
        py
    }

    /// A script that makes the shared objects and calls each operation once, from one thread,
    /// and prints what happened as JSON: `{"setup": null | "Error: …", "operations": [null |
    /// "ExceptionName", …]}`. Whether the operations still exist in another version of the API.
    pub fn probe(&self) -> String {
        let mut py = String::from("import json\n");
        self.render_imports(&mut py);
        py.push_str("\ntry:\n");
        self.render_objects(&mut py, "    ");
        py.push_str("    ]\nexcept Exception as exc:\n    print(json.dumps({\"setup\": f\"{type(exc).__name__}: {exc}\", \"operations\": []}))\n    raise SystemExit(0)\n");
        py.push_str("raised = []\nfor operation in OPERATIONS:\n    try:\n        operation()\n        raised.append(None)\n    except Exception as exc:\n        raised.append(type(exc).__name__)\n");
        py.push_str("print(json.dumps({\"setup\": None, \"operations\": raised}))\n");
        py
    }

    /// The shared objects and an open `OPERATIONS = [` list of the operations, at `indent`.
    fn render_objects(&self, py: &mut String, indent: &str) {
        for (name, make) in &self.shared {
            let _ = writeln!(py, "{indent}{name} = {make}");
        }
        let _ = writeln!(py, "{indent}OPERATIONS = [");
        for operation in &self.operations {
            let _ = writeln!(py, "{indent}    lambda: {operation},");
        }
    }

    fn render_imports(&self, py: &mut String) {
        for module in &self.imports {
            let _ = writeln!(py, "import {module}");
        }
    }
}

/// The script, or `None` when the model cannot build the shared object or call any of the
/// operations.
pub fn small_reproducer(
    model: &ApiModel,
    hints: &Hints,
    request: &ReproducerRequest,
) -> Option<String> {
    SmallReproducer::new(model, hints, request).map(|r| r.script())
}

/// One resolved operation: the shared objects it needs and its expression.
struct Call {
    setup: Vec<(String, String)>,
    expression: String,
    /// It runs on the second object of a race on an argument (`other.append(1)`).
    changes_other: bool,
}

fn resolve(vars: &Vars, model: &ApiModel, op: &str, on_argument: bool) -> Option<Call> {
    let (owner, name) = op.rsplit_once('.')?;
    if let Some(function) = module_function(model, owner, name) {
        let args = usable_sets(&function.arg_sets)
            .next()
            .map_or(Some(String::new()), |set| vars.call_args(set, None))?;
        return Some(Call {
            setup: Vec::new(),
            expression: format!("{}({args})", function.qualname),
            changes_other: false,
        });
    }
    let (ty, method) = type_method(vars, model, owner, name)?;
    let set = usable_sets(&method.call.arg_sets).next();
    let takes_same_type = set.is_some_and(|s| takes_type(s, ty));
    // On an argument: methods given the second object run on the first; the rest change the
    // second one.
    let (target, other) = match (on_argument, takes_same_type) {
        (true, true) => ("shared", Some((ty.qualname.as_str(), "other"))),
        (true, false) => ("other", None),
        _ => ("shared", None),
    };
    let args = match set {
        Some(set) => vars.call_args(set, other)?,
        None => String::new(),
    };
    Some(Call {
        setup: shared_objects(vars, ty, on_argument)?,
        expression: format!("{target}.{name}({args})"),
        changes_other: target == "other",
    })
}

/// `other.method(…)` for a method that can be given the second object: called on it with
/// arguments of another kind (a fresh object when it takes no other), it changes `other`.
fn change_argument(vars: &Vars, model: &ApiModel, op: &str) -> Option<Call> {
    let (owner, name) = op.rsplit_once('.')?;
    let (ty, method) = type_method(vars, model, owner, name)?;
    let sets: Vec<&ArgSet> = usable_sets(&method.call.arg_sets).collect();
    if !sets.iter().any(|s| takes_type(s, ty)) {
        return None;
    }
    let set = (sets.iter().find(|s| !takes_type(s, ty))).or(sets.first())?;
    Some(Call {
        setup: shared_objects(vars, ty, true)?,
        expression: format!("other.{name}({})", vars.call_args(set, None)?),
        changes_other: true,
    })
}

/// The type named `owner` whose objects the model can make, and its method `name`.
fn type_method<'m>(
    vars: &Vars,
    model: &'m ApiModel,
    owner: &str,
    name: &str,
) -> Option<(&'m TypeApi, &'m Method)> {
    let ty = model
        .types()
        .find(|t| t.name == owner && vars.fresh(&t.qualname).is_some())?;
    let method = ty.methods.iter().find(|m| m.call.name == name)?;
    Some((ty, method))
}

fn takes_type(set: &ArgSet, ty: &TypeApi) -> bool {
    set.args.iter().any(|a| a == &format!("@{}", ty.qualname))
}

/// `shared`, and `other` for a race on an argument.
fn shared_objects(vars: &Vars, ty: &TypeApi, on_argument: bool) -> Option<Vec<(String, String)>> {
    let mut setup = vec![("shared".to_string(), vars.fresh(&ty.qualname)?)];
    if on_argument {
        setup.push(("other".to_string(), vars.fresh(&ty.qualname)?));
    }
    Some(setup)
}

fn module_function<'m>(model: &'m ApiModel, module: &str, name: &str) -> Option<&'m Callable> {
    model
        .modules
        .iter()
        .filter(|m| m.name == module || m.name.rsplit('.').next() == Some(module))
        .flat_map(|m| &m.functions)
        .find(|f| f.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn racy_model() -> ApiModel {
        crate::parse_api_model(include_str!("../tests/data/racy_model.json")).unwrap()
    }

    fn request(operations: &[&str], on_argument: bool) -> ReproducerRequest {
        ReproducerRequest {
            title: "test".into(),
            operations: operations.iter().map(|s| s.to_string()).collect(),
            on_argument,
            threads: 4,
            seconds: 2.0,
        }
    }

    #[test]
    fn one_shared_object_and_its_racing_operations_in_a_short_script() {
        let script = small_reproducer(
            &racy_model(),
            &Hints::default(),
            &request(&["Vector.append", "Vector.sum"], false),
        )
        .unwrap();
        assert!(script.contains("import ftfixture_racy\n"), "{script}");
        assert!(
            script.contains("shared = ftfixture_racy.Vector("),
            "{script}"
        );
        assert!(script.contains("    lambda: shared.append("), "{script}");
        assert!(script.contains("    lambda: shared.sum()"), "{script}");
        assert!(
            !script.contains("ftreview_"),
            "no ftreview import: {script}"
        );
        assert!(script.lines().count() <= 40, "{script}");
    }

    #[test]
    fn a_race_on_an_argument_shares_the_second_object_too() {
        let script = small_reproducer(
            &racy_model(),
            &Hints::default(),
            &request(&["Vector.extend", "Vector.append"], true),
        )
        .unwrap();
        assert!(
            script.contains("other = ftfixture_racy.Vector("),
            "{script}"
        );
        assert!(script.contains("lambda: shared.extend(other)"), "{script}");
        assert!(script.contains("lambda: other.append("), "{script}");
    }

    #[test]
    fn a_race_on_an_argument_seen_only_through_the_method_given_it_changes_the_argument_too() {
        let script = small_reproducer(
            &racy_model(),
            &Hints::default(),
            &request(&["Vector.extend"], true),
        )
        .unwrap();
        assert!(script.contains("lambda: shared.extend(other)"), "{script}");
        assert!(
            script.contains("lambda: other.extend([1, 2, 3])"),
            "{script}"
        );
        let both = small_reproducer(
            &racy_model(),
            &Hints::default(),
            &request(&["Vector.extend", "Vector.append"], true),
        )
        .unwrap();
        assert!(!both.contains("other.extend("), "{both}");
    }

    #[test]
    fn module_functions_and_unknown_operations() {
        let model = racy_model();
        let script = small_reproducer(
            &model,
            &Hints::default(),
            &request(&["ftfixture_racy.bump", "ftfixture_racy.calls"], false),
        )
        .unwrap();
        assert!(script.contains("lambda: ftfixture_racy.bump()"), "{script}");
        assert!(small_reproducer(
            &model,
            &Hints::default(),
            &request(&["Nothing.here"], false)
        )
        .is_none());
    }
}
