//! The commands that rerun what a run saw, short and portable: a scenario script relative to
//! the run directory with the run's test venv, or the pytest command a maintainer types in
//! their own checkout (pytest-run-parallel's options as the run used them).

use std::path::Path;

use crate::model::{Origin, Reproducer, RunRecord};
use crate::results::{ReproducerKind, ReproducerRef};

/// Options of the recorded pytest command that matter to a maintainer's rerun.
const KEPT_PYTEST_OPTIONS: [&str; 2] = ["--parallel-threads=", "--skip-thread-unsafe="];

/// How to rerun the test or scenario an event or race came from (not rerun by ftreview).
pub(super) fn event_reproducer(
    run: &RunRecord,
    origin: &Origin,
    kept: Option<&Reproducer>,
) -> Option<ReproducerRef> {
    if let Some(test) = origin.test() {
        return test_reproducer(run, origin, test);
    }
    let script = kept?.script.as_deref()?;
    let script = relative(&run.run_dir, script);
    Some(ReproducerRef {
        kind: ReproducerKind::Scenario,
        command: format!("PYTHON_GIL=0 test-venv/bin/python {}", shell_quote(&script)),
        script: Some(script),
        runs: 0,
        reproduced: 0,
    })
}

/// The scenario or test that found it, for a problem whose small reproducer did not run or
/// never reproduced: scenarios first (standalone and fast).
pub(super) fn origin_reproducer(run: &RunRecord, origins: &[Origin]) -> Option<ReproducerRef> {
    let scenario = origins.iter().find_map(|o| {
        let name = o.scenario()?;
        let record = run.scenarios.iter().find(|s| s.name == name)?;
        event_reproducer(run, o, Some(&record.reproducer))
    });
    scenario.or_else(|| {
        origins
            .iter()
            .find_map(|o| test_reproducer(run, o, o.test()?))
    })
}

/// `PYTHON_GIL=0 python -m pytest [parallel options] NODEID`.
pub(super) fn test_reproducer(
    run: &RunRecord,
    origin: &Origin,
    test: &str,
) -> Option<ReproducerRef> {
    let phase = run.phases.iter().find(|p| p.phase == origin.phase)?;
    let options: Vec<String> = phase
        .pytest
        .iter()
        .flat_map(|p| &p.argv)
        .filter(|a| KEPT_PYTEST_OPTIONS.iter().any(|k| a.starts_with(k)))
        .cloned()
        .collect();
    let mut words = vec![
        "PYTHON_GIL=0".to_string(),
        "python".into(),
        "-m".into(),
        "pytest".into(),
    ];
    words.extend(options);
    words.push(shell_quote(test));
    Some(ReproducerRef {
        kind: ReproducerKind::Test,
        script: None,
        command: words.join(" "),
        runs: 0,
        reproduced: 0,
    })
}

/// `path` relative to `base` when inside it.
fn relative(base: &Path, path: &Path) -> String {
    path.strip_prefix(base)
        .unwrap_or(path)
        .display()
        .to_string()
}

pub fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if plain {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}
