//! Where the suite runs, so that it tests the installed, instrumented build and never the
//! source tree's copy of the package. A project with its package at the top of the tree
//! (`pkg/__init__.py` next to `tests/`) shadows the wheel when pytest runs in the tree (pytest
//! puts the root on `sys.path` for a root `conftest.py` or a `tests/__init__.py`): those suites
//! run from a scratch copy of their test directories and pytest configuration instead, as tox
//! and cibuildwheel do. A collection probe checks the choice before any phase spends time on
//! it: every watched package must be imported from the venv, and import errors are classified.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ftreview_reports::model::{
    CollectionError, CollectionErrorKind, LayoutStrategy, Phase, TestLayout,
};

use super::attribution::{read_events, TestEvent};
use super::pytest::{events_file, PytestCommand};
use super::Ctx;

/// Files pytest reads its configuration or fixtures from, at the root of a project.
const ROOT_FILES: &[&str] = &[
    "conftest.py",
    "pytest.ini",
    "pyproject.toml",
    "setup.cfg",
    "tox.ini",
];

/// The collection probe's limit when the suites' deadline is further away.
const PROBE_TIMEOUT: Duration = Duration::from_secs(600);

/// What the suite needs to know to start.
pub(crate) struct LayoutRequest<'a> {
    pub targets: &'a [String],
    pub no_addopts: bool,
    /// When the suites must be done: the probe stops there too.
    pub deadline: Instant,
}

/// Picks the layout, probes it with a collection run, and switches once when the probe shows
/// the package shadowed. Never fails: a probe that cannot run leaves the first choice.
pub(crate) async fn choose_layout(ctx: &Ctx, request: &LayoutRequest<'_>) -> TestLayout {
    let first = if shadows_package(&ctx.source_root, &ctx.watch_modules) {
        LayoutStrategy::Scratch
    } else {
        LayoutStrategy::SourceTree
    };
    let probe = probe(ctx, first, request).await;
    if !probe.shadowed() {
        return probe.into_layout(format!(
            "{}; the collection probe imported the package from the venv",
            first_reason(first)
        ));
    }
    let other = match first {
        LayoutStrategy::Scratch => LayoutStrategy::SourceTree,
        LayoutStrategy::SourceTree => LayoutStrategy::Scratch,
    };
    let retried = probe_strategy_reason(&probe);
    let second = self::probe(ctx, other, request).await;
    let reason = if second.shadowed() {
        format!("both layouts import the package from outside the venv ({retried}); the suite cannot exercise the built extension")
    } else {
        format!(
            "the {} layout {retried}, so the suite runs from the {} layout",
            label(first),
            label(other)
        )
    };
    second.into_layout(reason)
}

fn first_reason(strategy: LayoutStrategy) -> &'static str {
    match strategy {
        LayoutStrategy::Scratch => "the source tree holds the package itself, so the tests run from a scratch copy of the test directories",
        LayoutStrategy::SourceTree => "the package is not importable from the source tree's root",
    }
}

fn label(strategy: LayoutStrategy) -> &'static str {
    match strategy {
        LayoutStrategy::Scratch => "scratch-copy",
        LayoutStrategy::SourceTree => "source-tree",
    }
}

fn probe_strategy_reason(probe: &Probe) -> String {
    match probe.outside_venv.first() {
        Some((module, file)) => format!("imported {module} from {file}"),
        None => "failed to import the package at collection".to_string(),
    }
}

/// Whether a watched package sits at the root of the source tree.
fn shadows_package(root: &Path, packages: &[String]) -> bool {
    packages.iter().any(|p| {
        root.join(p).join("__init__.py").is_file() || root.join(format!("{p}.py")).is_file()
    })
}

/// The directory pytest runs in for a strategy: the source tree, or a copy of its test
/// directories and root configuration under the run directory.
fn layout_root(ctx: &Ctx, strategy: LayoutStrategy, targets: &[String]) -> anyhow::Result<PathBuf> {
    match strategy {
        LayoutStrategy::SourceTree => Ok(ctx.source_root.clone()),
        LayoutStrategy::Scratch => {
            let scratch = ctx.run_dir.root.join("tests-root");
            let _ = fs::remove_dir_all(&scratch);
            fs::create_dir_all(&scratch)?;
            for name in ROOT_FILES {
                let file = ctx.source_root.join(name);
                if file.is_file() {
                    fs::copy(&file, scratch.join(name))?;
                }
            }
            for target in test_dirs(&ctx.source_root, targets) {
                copy_tree(&ctx.source_root.join(&target), &scratch.join(&target))?;
            }
            Ok(scratch)
        }
    }
}

/// The top-level directories the targets name (`tests/unit/test_x.py::t` → `tests`).
fn test_dirs(root: &Path, targets: &[String]) -> Vec<String> {
    let mut dirs: Vec<String> = targets
        .iter()
        .filter(|t| !t.starts_with('-'))
        .filter_map(|t| t.split("::").next()?.split('/').next().map(str::to_string))
        .filter(|d| root.join(d).exists())
        .collect();
    dirs.sort();
    dirs.dedup();
    dirs
}

fn copy_tree(from: &Path, to: &Path) -> anyhow::Result<()> {
    if from.is_file() {
        if let Some(parent) = to.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::copy(from, to)?;
        return Ok(());
    }
    for entry in walkdir::WalkDir::new(from)
        .into_iter()
        .filter_entry(|e| e.file_name() != "__pycache__")
    {
        let entry = entry?;
        let dest = to.join(entry.path().strip_prefix(from)?);
        if entry.file_type().is_dir() {
            fs::create_dir_all(&dest)?;
        } else if entry.file_type().is_file() {
            fs::copy(entry.path(), &dest)?;
        }
    }
    Ok(())
}

/// What a collection run showed.
struct Probe {
    strategy: LayoutStrategy,
    root: PathBuf,
    collected: u64,
    errors: Vec<CollectionError>,
    /// Watched modules imported from outside the venv (module, file).
    outside_venv: Vec<(String, String)>,
}

impl Probe {
    fn shadowed(&self) -> bool {
        !self.outside_venv.is_empty()
            || self
                .errors
                .iter()
                .any(|e| e.kind == CollectionErrorKind::ImportShadowing)
    }

    fn into_layout(self, reason: String) -> TestLayout {
        TestLayout {
            strategy: self.strategy,
            root: self.root,
            reason,
            collected: self.collected,
            collection_errors: self.errors,
        }
    }
}

async fn probe(ctx: &Ctx, strategy: LayoutStrategy, request: &LayoutRequest<'_>) -> Probe {
    let mut result = Probe {
        strategy,
        root: ctx.source_root.clone(),
        collected: 0,
        errors: Vec::new(),
        outside_venv: Vec::new(),
    };
    let Ok(root) = layout_root(ctx, strategy, request.targets) else {
        return result;
    };
    result.root = root;
    let Ok(logs) = ctx.run_dir.logs(&format!("collect/{}", label(strategy))) else {
        return result;
    };
    let command = PytestCommand {
        phase: Phase::Tests,
        cwd: &result.root,
        targets: request.targets,
        parallel_threads: None,
        no_addopts: request.no_addopts,
        collect_only: true,
        deadline: None,
        test_timeout: None,
        skip_benchmarks: false,
        record_calls: false,
        selection: None,
    };
    let Ok(step) = command.step(ctx, &logs) else {
        return result;
    };
    // Reports off: collection imports the package, nothing races yet.
    let left = request.deadline.saturating_duration_since(Instant::now());
    let step = step
        .env("TSAN_OPTIONS", "report_bugs=0")
        .timeout(left.min(PROBE_TIMEOUT));
    if ctx.runner.run(&step).await.is_err() {
        return result;
    }
    let events = read_events(&events_file(&logs));
    let venv_root = ctx
        .venv
        .root
        .canonicalize()
        .unwrap_or(ctx.venv.root.clone());
    for event in events {
        match event {
            TestEvent::Collected { count, .. } => result.collected += count,
            TestEvent::CollectError { nodeid, error } => result.errors.push(CollectionError {
                kind: classify_collection_error(&error, &ctx.watch_modules),
                nodeid,
                message: error,
            }),
            TestEvent::Session { modules, .. } => {
                result.outside_venv = imported_outside(&modules, &venv_root);
            }
            _ => {}
        }
    }
    result
}

/// Watched modules whose file is not under the venv (namespace packages have none).
fn imported_outside(
    modules: &HashMap<String, Option<String>>,
    venv: &Path,
) -> Vec<(String, String)> {
    let mut outside: Vec<(String, String)> = modules
        .iter()
        .filter_map(|(module, file)| {
            let file = file.as_ref()?;
            let resolved = Path::new(file)
                .canonicalize()
                .unwrap_or(PathBuf::from(file));
            (!resolved.starts_with(venv)).then(|| (module.clone(), file.clone()))
        })
        .collect();
    outside.sort();
    outside
}

/// What a collection error means, from its first error line.
pub(crate) fn classify_collection_error(error: &str, packages: &[String]) -> CollectionErrorKind {
    if error.contains("SyntaxError") || error.contains("IndentationError") {
        return CollectionErrorKind::Syntax;
    }
    let Some(module) = missing_module(error) else {
        return CollectionErrorKind::Other;
    };
    let top = module.split('.').next().unwrap_or(&module);
    if packages.iter().any(|p| p == top) {
        CollectionErrorKind::ImportShadowing
    } else {
        CollectionErrorKind::MissingTestDependency {
            module: top.to_string(),
        }
    }
}

/// `ModuleNotFoundError: No module named 'pkg._ext'` → `pkg._ext`; also `ImportError: cannot
/// import name 'x' from 'pkg' (/src/pkg/__init__.py)` → `pkg`.
fn missing_module(error: &str) -> Option<String> {
    let quoted = |after: &str| -> Option<String> {
        let rest = &error[error.find(after)? + after.len()..];
        let rest = rest.trim_start().strip_prefix('\'')?;
        Some(rest[..rest.find('\'')?].to_string())
    };
    if error.contains("ModuleNotFoundError") {
        return quoted("No module named");
    }
    if error.contains("ImportError") {
        return quoted(" from");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collection_errors_say_what_went_wrong() {
        let packages = ["pkg".to_string()];
        assert_eq!(
            classify_collection_error("ModuleNotFoundError: No module named 'pkg._ext'", &packages),
            CollectionErrorKind::ImportShadowing
        );
        assert_eq!(
            classify_collection_error(
                "ImportError: cannot import name '_ext' from 'pkg' (/src/pkg/__init__.py)",
                &packages
            ),
            CollectionErrorKind::ImportShadowing
        );
        assert_eq!(
            classify_collection_error(
                "ModuleNotFoundError: No module named 'hypothesis.strategies'",
                &packages
            ),
            CollectionErrorKind::MissingTestDependency {
                module: "hypothesis".into()
            }
        );
        assert_eq!(
            classify_collection_error("SyntaxError: invalid syntax", &packages),
            CollectionErrorKind::Syntax
        );
        assert_eq!(
            classify_collection_error("ValueError: boom", &packages),
            CollectionErrorKind::Other
        );
    }

    #[test]
    fn a_package_at_the_root_of_the_tree_shadows_the_install() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("pkg")).unwrap();
        fs::write(dir.path().join("pkg/__init__.py"), "").unwrap();
        fs::create_dir_all(dir.path().join("src/other")).unwrap();
        assert!(shadows_package(dir.path(), &["pkg".into()]));
        assert!(!shadows_package(dir.path(), &["other".into()]));
    }

    #[test]
    fn test_directories_come_from_the_targets() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("tests/unit")).unwrap();
        let targets = [
            "tests/unit/test_a.py::test_b".to_string(),
            "tests".into(),
            "-k".into(),
            "missing".into(),
        ];
        assert_eq!(test_dirs(dir.path(), &targets), ["tests"]);
    }
}
