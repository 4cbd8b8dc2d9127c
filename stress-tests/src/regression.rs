//! Regression tests: a problem's small reproducer as a pytest file a maintainer can drop into
//! the suite. Its threads, barrier and operations are the reproducer's; its assertions are what
//! shows without TSan (exceptions only threads raise, broken invariants, a crash) and, under a
//! TSan interpreter logging to a file, a new report naming the extension.

use std::fmt::Write as _;

use crate::small::SmallReproducer;

const TEMPLATE: &str = include_str!("regression_test.py");

impl SmallReproducer {
    /// The pytest file of problem `problem_id` (its id goes in the docstrings and the test name).
    pub fn regression_test(&self, problem_id: &str) -> String {
        let title = self.title.replace('"', "'").replace('\\', "/");
        let mut imports = String::new();
        for module in &self.imports {
            let _ = writeln!(imports, "import {module}");
        }
        let tops: Vec<String> = self
            .imports
            .iter()
            .map(|m| format!("{:?}", m.split('.').next().unwrap_or(m)))
            .collect();
        let mut shared = String::new();
        for (name, make) in &self.shared {
            let _ = writeln!(shared, "    {name} = {make}");
        }
        let names: Vec<String> = (self.shared.iter())
            .map(|(name, _)| format!("{name:?}: {name}"))
            .collect();
        let mut operations = String::new();
        for operation in &self.operations {
            let _ = writeln!(operations, "        lambda: {operation},");
        }
        TEMPLATE
            .replace("__PROBLEM_ID__", problem_id)
            .replace("__TITLE__", &title)
            .replace("__IMPORTS__", imports.trim_end())
            .replace("__IMPORTED__", &format!("{{{}}}", tops.join(", ")))
            .replace("__THREADS__", &self.threads.to_string())
            .replace("__SECONDS__", &format!("{:.1}", self.seconds))
            .replace("__SHARED__", &shared)
            .replace("__SHARED_NAMES__", &format!("{{{}}}", names.join(", ")))
            .replace("__OPERATIONS__", &operations)
            .replace("__TEST_NAME__", &test_name(problem_id))
    }
}

/// `test_problem_1a2b…`: a Python identifier from the id.
fn test_name(problem_id: &str) -> String {
    let id: String = problem_id
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("test_{id}")
}

#[cfg(test)]
mod tests {
    use crate::{parse_api_model, Hints, ReproducerRequest, SmallReproducer};

    fn reproducer(operations: &[&str], on_argument: bool) -> SmallReproducer {
        let model = parse_api_model(include_str!("../tests/data/racy_model.json")).unwrap();
        let request = ReproducerRequest {
            title: "Vector's fields race (ftreview problem-ab12)".into(),
            operations: operations.iter().map(|s| s.to_string()).collect(),
            on_argument,
            threads: 4,
            seconds: 1.0,
        };
        SmallReproducer::new(&model, &Hints::default(), &request).unwrap()
    }

    /// Python (3.11 here) parses the file: the generated test is valid source.
    fn assert_parses(source: &str) {
        let out = std::process::Command::new("python3")
            .args(["-c", "import ast, sys; ast.parse(sys.stdin.read())"])
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                child.stdin.take().unwrap().write_all(source.as_bytes())?;
                child.wait_with_output()
            })
            .unwrap();
        assert!(
            out.status.success(),
            "{}\n{source}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn the_test_runs_the_racing_operations_behind_a_barrier_and_names_its_problem() {
        let test =
            reproducer(&["Vector.append", "Vector.sum"], false).regression_test("problem-ab12");
        assert_parses(&test);
        assert!(
            test.contains("def test_problem_ab12():\n    \"\"\"problem-ab12: "),
            "{test}"
        );
        assert!(test.contains("@pytest.mark.thread_unsafe\n"), "{test}");
        assert!(test.contains("threading.Barrier(THREADS)"), "{test}");
        assert!(
            test.contains("    shared = ftfixture_racy.Vector("),
            "{test}"
        );
        assert!(test.contains("        lambda: shared.append("), "{test}");
        assert!(test.contains("return {\"shared\": shared}, ["), "{test}");
        assert!(test.contains("IMPORTED = {\"ftfixture_racy\"}"), "{test}");
        let placeholder = test
            .split("__")
            .skip(1)
            .any(|rest| rest.starts_with(|c: char| c.is_ascii_uppercase()));
        assert!(!placeholder, "a placeholder is left: {test}");
    }

    #[test]
    fn module_functions_share_no_object_and_an_argument_is_shared_too() {
        let functions = reproducer(&["ftfixture_racy.bump"], false).regression_test("problem-1");
        assert_parses(&functions);
        assert!(functions.contains("return {}, ["), "{functions}");
        let argument = reproducer(&["Vector.extend", "Vector.append"], true).regression_test("p");
        assert_parses(&argument);
        assert!(
            argument.contains("{\"shared\": shared, \"other\": other}"),
            "{argument}"
        );
    }

    #[test]
    fn the_probe_calls_each_operation_once() {
        let probe = reproducer(&["Vector.append", "Vector.sum"], false).probe();
        assert_parses(&probe);
        assert!(
            probe.contains("    shared = ftfixture_racy.Vector("),
            "{probe}"
        );
        assert!(probe.contains("print(json.dumps({\"setup\": None, \"operations\": raised}))"));
    }
}
