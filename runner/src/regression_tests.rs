//! `ftreview report RUN_DIR --tests DIR`: one pytest file per problem, made from its small
//! reproducer, for the maintainer's suite. A `conftest.py` registers pytest-run-parallel's
//! `thread_unsafe` marker, so the files also run without the plugin.

use std::path::{Path, PathBuf};

use anyhow::Context;
use ftreview_reports::RunRecord;

use crate::phases::RecordedProblems;
use crate::registry::Registry;

const CONFTEST: &str = "\
# Written by `ftreview report --tests`: the marker pytest-run-parallel knows, registered so the
# tests also run without the plugin.
def pytest_configure(config):
    config.addinivalue_line(\"markers\", \"thread_unsafe: starts its own threads (pytest-run-parallel runs it in one thread)\")
";

/// What was written, and the problems left without a test (with the reason).
pub(crate) struct WrittenTests {
    pub files: Vec<PathBuf>,
    pub skipped: Vec<(String, String)>,
}

pub(crate) fn write_tests(
    run_dir: &Path,
    record: &RunRecord,
    registry: &Registry,
    out: &Path,
) -> anyhow::Result<WrittenTests> {
    let problems = RecordedProblems::load(run_dir, record, registry)?;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut written = WrittenTests {
        files: Vec::new(),
        skipped: Vec::new(),
    };
    for target in &problems.targets {
        let Some(reproducer) = problems.reproducer(target) else {
            let why = "the API model cannot build its shared object or call its operations";
            written
                .skipped
                .push((target.problem_id.clone(), why.into()));
            continue;
        };
        let path = out.join(format!("{}.py", test_file_stem(&target.problem_id)));
        std::fs::write(&path, reproducer.regression_test(&target.problem_id))
            .with_context(|| format!("cannot write {}", path.display()))?;
        written.files.push(path);
    }
    let conftest = out.join("conftest.py");
    if !written.files.is_empty() && !conftest.exists() {
        std::fs::write(&conftest, CONFTEST)
            .with_context(|| format!("cannot write {}", conftest.display()))?;
        written.files.push(conftest);
    }
    Ok(written)
}

/// `test_problem_1a2b…`: a module name pytest collects.
fn test_file_stem(problem_id: &str) -> String {
    format!("test_{}", problem_id.replace('-', "_"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::recorded_run;

    #[test]
    fn one_test_file_per_problem_named_by_its_id() {
        let (dir, record) = recorded_run();
        let out = dir.path().join("tests");
        let written = write_tests(dir.path(), &record, &Registry::default(), &out).unwrap();
        let problems: Vec<String> = ftreview_reports::analyze(&record, None)
            .results
            .findings
            .into_iter()
            .filter(|f| f.owner.is_some())
            .map(|f| f.id)
            .collect();
        assert!(written.files.len() > 1, "{:?}", written.skipped);
        assert_eq!(
            written.files.len() + written.skipped.len(),
            problems.len() + 1,
            "a file or a reason per problem, and conftest.py"
        );
        for id in &problems {
            let file = out.join(format!("{}.py", test_file_stem(id)));
            if written.skipped.iter().any(|(skipped, _)| skipped == id) {
                continue;
            }
            let text = std::fs::read_to_string(&file).unwrap();
            assert!(text.starts_with(&format!("\"\"\"Regression test for {id}: ")));
            assert!(text.contains("@pytest.mark.thread_unsafe\n"), "{text}");
        }
        let conftest = std::fs::read_to_string(out.join("conftest.py")).unwrap();
        assert!(conftest.contains("thread_unsafe"), "{conftest}");
    }

    #[test]
    fn a_run_without_stress_phase_says_how_to_get_tests() {
        let (dir, record) = recorded_run();
        std::fs::remove_dir_all(dir.path().join("logs")).unwrap();
        let err = write_tests(dir.path(), &record, &Registry::default(), dir.path())
            .err()
            .unwrap();
        assert!(format!("{err:#}").contains("--phases stress"), "{err:#}");
    }
}
