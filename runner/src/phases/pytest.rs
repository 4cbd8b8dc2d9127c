//! The one place a pytest command line is built: the collection probe, the plain suite and
//! the suite under pytest-run-parallel all come from here, and every phase records the command
//! it ran (without its test selection) so a test's reproducer is that command plus its id.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ftreview_reports::model::{Phase, PytestInvocation};
use serde::Serialize;

use super::Ctx;
use crate::env::{installed_versions, tsan_log_prefix};
use crate::process::Step;
use crate::rundir::RunDir;

/// Which tests a phase runs, in which order (read by the plugin).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub(crate) struct Selection {
    /// Run these first, in this order.
    pub order: Vec<String>,
    /// Leave these out.
    pub exclude: Vec<String>,
}

/// One pytest run of a phase.
pub(crate) struct PytestCommand<'a> {
    pub phase: Phase,
    /// Where pytest runs (the layout's root).
    pub cwd: &'a Path,
    /// Test paths, or the registry's pytest arguments.
    pub targets: &'a [String],
    pub parallel_threads: Option<usize>,
    /// `-o addopts=`: the suite's configured options need plugins a fresh venv lacks.
    pub no_addopts: bool,
    pub collect_only: bool,
    /// No test starts after this (the phase's share of the budget).
    pub deadline: Option<SystemTime>,
    pub test_timeout: Option<Duration>,
    pub skip_benchmarks: bool,
    /// Record the calls into the extension to [`recorded_calls`].
    pub record_calls: bool,
    /// Written next to the phase's logs for the plugin.
    pub selection: Option<&'a Selection>,
}

impl PytestCommand<'_> {
    /// The options every run shares, without the test selection.
    fn options(&self, ctx: &Ctx) -> Vec<String> {
        let mut argv: Vec<String> = [
            // -P: the working directory must not shadow the installed, instrumented package.
            "-P",
            "-m",
            "pytest",
            "-p",
            "ftreview_pytest_plugin",
            "-p",
            "no:xdist",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:randomly",
            "--continue-on-collection-errors",
            "-rfE",
            "--color=no",
            "-o",
            "faulthandler_timeout=0",
        ]
        .map(String::from)
        .to_vec();
        if self.no_addopts {
            argv.extend(["-o".into(), "addopts=".into()]);
        }
        // Coverage tracing under TSan multiplies a suite's time (multidict's collection of
        // 1,640 tests: 294 s with its `--cov` addopts, 59 s without), and nothing here reads it.
        if installed_versions(&ctx.venv.root)
            .iter()
            .any(|(name, _)| name == "pytest-cov")
        {
            argv.push("--no-cov".into());
        }
        if let Some(threads) = self.parallel_threads {
            argv.push(format!("--parallel-threads={threads}"));
            argv.push("--skip-thread-unsafe=true".into());
        }
        if self.collect_only {
            argv.extend(["--collect-only".into(), "-q".into()]);
        }
        for ignored in ctx.overrides.ignore.iter().flatten() {
            let flag = if ignored.contains("::") {
                "--deselect"
            } else {
                "--ignore"
            };
            argv.push(format!("{flag}={ignored}"));
        }
        argv
    }

    /// The variables a rerun needs (TSan's, the interpreter's, the plugin's path).
    fn rerun_env(&self, ctx: &Ctx, logs: &Path) -> Vec<(String, String)> {
        let mut env = ctx.tsan_env(logs);
        env.push((
            "PYTHONPATH".into(),
            ctx.run_dir.harness().display().to_string(),
        ));
        env
    }

    /// The step that runs this command, logging into `logs`.
    pub fn step(&self, ctx: &Ctx, logs: &Path) -> anyhow::Result<Step> {
        let mut step = Step::new(
            self.phase.name(),
            &ctx.venv.python,
            self.cwd,
            &logs.join("output.log"),
        )
        .in_phase(self.phase)
        .args(self.options(ctx))
        .args(self.targets.iter())
        .envs(&self.rerun_env(ctx, logs))
        .dies_after_tsan_fatal_error_in(&tsan_log_prefix(logs))
        .env(
            "FTREVIEW_TSAN_LOG",
            tsan_log_prefix(logs).display().to_string(),
        )
        .env(
            "FTREVIEW_TEST_EVENTS",
            events_file(logs).display().to_string(),
        )
        .env("FTREVIEW_WATCH_MODULES", ctx.watch_modules.join(","))
        .env(
            "FTREVIEW_EXTENSION_MODULES",
            ctx.extension_modules.join(","),
        );
        if let Some(deadline) = self.deadline {
            let secs = deadline.duration_since(UNIX_EPOCH).unwrap_or_default();
            step = step.env("FTREVIEW_DEADLINE", format!("{:.1}", secs.as_secs_f64()));
        }
        if let Some(timeout) = self.test_timeout {
            step = step.env("FTREVIEW_TEST_TIMEOUT", timeout.as_secs().to_string());
        }
        if self.skip_benchmarks {
            step = step.env("FTREVIEW_SKIP_BENCHMARKS", "1");
        }
        if self.record_calls {
            step = step.env(
                ftreview_stress::RECORD_CALLS_ENV,
                recorded_calls(&ctx.run_dir).display().to_string(),
            );
        }
        if let Some(selection) = self.selection {
            let file = logs.join("selection.json");
            std::fs::write(&file, serde_json::to_string_pretty(selection)?)?;
            step = step.env("FTREVIEW_SELECTION", file.display().to_string());
        }
        Ok(step)
    }

    /// What the phase record keeps: the command without its test selection.
    pub fn invocation(&self, ctx: &Ctx, logs: &Path) -> PytestInvocation {
        let mut argv = vec![ctx.venv.python.display().to_string()];
        argv.extend(self.options(ctx));
        let keep = ["PYTHON_GIL", "TSAN_OPTIONS", "PYTHONPATH"];
        PytestInvocation {
            cwd: self.cwd.to_path_buf(),
            argv,
            env: self
                .rerun_env(ctx, logs)
                .into_iter()
                .filter(|(k, _)| keep.contains(&k.as_str()))
                .collect::<BTreeMap<_, _>>(),
        }
    }
}

/// Where the plain suite's run records the calls its tests make into the extension (the
/// stress phase reads them).
pub(crate) fn recorded_calls(run_dir: &RunDir) -> PathBuf {
    run_dir
        .root
        .join("logs")
        .join(Phase::Tests.name())
        .join(ftreview_stress::API_CALLS_FILE)
}

/// The plugin's events file of a phase.
pub(crate) fn events_file(logs: &Path) -> PathBuf {
    logs.join("tests.jsonl")
}
