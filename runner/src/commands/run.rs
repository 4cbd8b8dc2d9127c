//! `ftreview run`: from a package name (or source tree, sdist, git URL) to attributed TSan
//! findings, a run directory with everything kept, and a migration plan.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::{Args, ValueEnum};
use ftreview_reports::{load_baseline, summary_table, write_all, Baseline, Format, RunRecord};
use ftreview_toolchain::{BuildRequest, Interpreter};
use serde_json::json;
use tokio::sync::watch;

use crate::env::Installer;
use crate::events::{format_secs, Display, Events};
use crate::exit::Outcome;
use crate::phases::StressOptions;
use crate::registry::Registry;
use crate::review::{self, FixedShares, PhaseSet, RunOptions, TargetRun};
use crate::rundir::RunDir;
use crate::target::TargetSpec;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// What to review: a PyPI name with an optional exact version (`multidict==6.7.1`), a
    /// source directory, an sdist (.tar.gz/.tar.xz), or `git+URL[@rev]`. Several may be given.
    #[arg(required = true, value_name = "TARGET")]
    pub targets: Vec<String>,
    /// TSan free-threaded python to use (default: the newest cached one; built when none is).
    #[arg(long, env = "FTREVIEW_PYTHON", value_name = "PATH")]
    pub python: Option<PathBuf>,
    /// Run directory (default: ./ftreview-runs/<target>-<UTC time>; with several targets, one
    /// subdirectory per target).
    #[arg(long, short = 'o', value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Processes to run at once (test phases and stress scenarios).
    #[arg(long, short = 'j', default_value_t = default_jobs())]
    pub jobs: usize,
    /// Threads per test in the pytest-run-parallel phase.
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub parallel_threads: usize,
    /// Time budget of the whole review of one target, from fetch to the written plan (the
    /// interpreter already built), in seconds. Setup spends from it first; the rest is shared
    /// out between the phases by expected yield, stress scenarios first.
    /// Accepts seconds or a unit: `900`, `90s`, `15m`, `1h`.
    #[arg(long, default_value = "15m", value_name = "DURATION", value_parser = parse_budget)]
    pub budget: Duration,
    /// Fix the time of each test phase, in seconds, instead of its share of the budget.
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<u64>,
    /// Fix the time of the stress phase, in seconds, instead of its share of the budget.
    #[arg(long, value_name = "SECS")]
    pub stress_budget: Option<u64>,
    /// A single test running longer than this is stopped and reported as slow.
    #[arg(long, default_value_t = 60, value_name = "SECS")]
    pub test_timeout: u64,
    /// Also run benchmark tests (the `benchmark` fixture or marker) in the instrumented
    /// phases; they crawl under TSan.
    #[arg(long)]
    pub benchmarks: bool,
    /// Timeout of one stress scenario, in seconds; its workers stop at half of it (20 s at
    /// most), so a process still running past that is stuck.
    #[arg(long, default_value_t = 40, value_name = "SECS")]
    pub scenario_timeout: u64,
    /// Seed of the generated stress scenarios.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Reruns of each problem's small reproducer, in fresh processes under TSan (0: none).
    #[arg(long, default_value_t = 5, value_name = "K")]
    pub repro_runs: u32,
    /// Threads per stress scenario.
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub stress_threads: usize,
    /// Do not record the calls the test suite makes into the extension (modes, options,
    /// argument types); stress scenarios take introspection's catalogue of arguments only.
    #[arg(long)]
    pub no_test_calls: bool,
    /// Instrumented phases to run.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "tests,parallel,stress"
    )]
    pub phases: Vec<PhaseName>,
    /// Extra package registry (YAML) on top of the shipped one and ~/.config/ftreview/registry.yaml.
    #[arg(long, value_name = "FILE")]
    pub registry: Option<PathBuf>,
    /// Extra TSan suppressions, merged with the interpreter's (only race_top:/thread: kept).
    #[arg(long, value_name = "FILE")]
    pub suppressions: Vec<PathBuf>,
    /// Rebuild the extension even when a cached build of the same sources exists.
    #[arg(long)]
    pub rebuild: bool,
    /// What installs the wheel and the test requirements into the test venv: uv, falling back
    /// to pip when uv is unavailable or fails, or pip alone (slow: it runs under the TSan
    /// interpreter).
    #[arg(long, value_enum, default_value = "uv")]
    pub installer: Installer,
    /// A previous results.json: report only new findings, and exit 1 only on those.
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,
    /// Print a machine-readable summary on stdout (progress stays on stderr).
    #[arg(long)]
    pub json: bool,
    /// No progress output.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PhaseName {
    /// The test suite as is.
    Tests,
    /// The test suite under pytest-run-parallel.
    Parallel,
    /// Generated multithreaded stress scenarios.
    Stress,
}

/// `900`, `90s`, `15m`, `1h`; at least a minute (setup alone takes that).
fn parse_budget(text: &str) -> Result<Duration, String> {
    let (number, unit) = text
        .find(|c: char| !c.is_ascii_digit())
        .map_or((text, ""), |i| text.split_at(i));
    let value: u64 = number.parse().map_err(|_| {
        format!("`{text}` is not a duration: use seconds or a unit, e.g. 900, 90s, 15m, 1h")
    })?;
    let secs = match unit {
        "" | "s" => value,
        "m" => value * 60,
        "h" => value * 3600,
        other => return Err(format!("unknown unit `{other}` in `{text}`: use s, m or h")),
    };
    if secs < 60 {
        return Err(format!(
            "a budget of {secs} s leaves no time for the review: give at least 60s"
        ));
    }
    Ok(Duration::from_secs(secs))
}

fn default_jobs() -> usize {
    std::thread::available_parallelism()
        .map(usize::from)
        .unwrap_or(2)
}

pub fn run(args: RunArgs) -> anyhow::Result<Outcome> {
    let specs = args
        .targets
        .iter()
        .map(|t| TargetSpec::parse(t))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let registry = Registry::load(args.registry.as_deref())?;
    let events = Display::stderr(args.quiet);
    let interpreter = resolve_interpreter(args.python.as_deref(), &events)?;
    let options = RunOptions {
        jobs: args.jobs.max(1),
        parallel_threads: args.parallel_threads.max(1),
        budget: args.budget,
        fixed: FixedShares {
            stress: args.stress_budget.map(Duration::from_secs),
            test_phase: args.timeout.map(Duration::from_secs),
        },
        test_timeout: Duration::from_secs(args.test_timeout.max(1)),
        benchmarks: args.benchmarks,
        stress: StressOptions {
            scenario_timeout: Duration::from_secs(args.scenario_timeout),
            seed: args.seed,
            threads: args.stress_threads.max(2),
            test_calls: !args.no_test_calls,
        },
        repro_runs: args.repro_runs,
        phases: PhaseSet {
            tests: args.phases.contains(&PhaseName::Tests),
            parallel: args.phases.contains(&PhaseName::Parallel),
            stress: args.phases.contains(&PhaseName::Stress),
            repro: args.repro_runs > 0,
        },
        registry,
        user_suppressions: args.suppressions.clone(),
        rebuild: args.rebuild,
        installer: args.installer,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let baseline = args.baseline.as_deref().map(load_baseline).transpose()?;
    let mut runs = runtime.block_on(review_all(
        specs,
        &interpreter,
        &options,
        args.out.as_deref(),
        &events,
    ))?;
    for run in &mut runs {
        write_reports(run, baseline.as_ref());
        print_summary(run);
    }
    if runs.len() > 1 {
        let records: Vec<RunRecord> = runs.iter().map(|r| r.record.clone()).collect();
        eprintln!("{}", summary_table(&records));
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&json_summary(&runs))?);
    }
    Ok(overall_outcome(&runs))
}

/// The migration plan, results.json and SARIF, next to run.json. A failure here is reported
/// but leaves run.json, from which `ftreview report` can retry.
fn write_reports(run: &mut TargetRun, baseline: Option<&Baseline>) {
    match write_all(&run.record, &run.run_dir, baseline, Format::All) {
        Ok(written) => {
            run.reports = written.files;
            run.results = Some(written.results);
        }
        Err(err) => run.report_error = Some(format!("writing the reports failed: {err:#}")),
    }
}

/// `--python`/`FTREVIEW_PYTHON`, else the newest cached build, else a fresh build.
fn resolve_interpreter(python: Option<&Path>, events: &Events) -> anyhow::Result<Interpreter> {
    if let Some(python) = python {
        return Interpreter::from_python(python).with_context(|| {
            format!(
                "{} is not usable as a TSan free-threaded interpreter",
                python.display()
            )
        });
    }
    let cache = ftreview_toolchain::default_cache_dir();
    if let Some(cached) = ftreview_toolchain::find_cached(&cache, "", None) {
        return Ok(cached);
    }
    events.note(&format!(
        "No TSan free-threaded interpreter is cached in {}: building one now (several minutes, once; `ftreview build-python` does the same).",
        cache.display()
    ));
    ftreview_toolchain::ensure_interpreter(&BuildRequest::new(cache), &events.toolchain())
}

async fn review_all(
    specs: Vec<TargetSpec>,
    interpreter: &Interpreter,
    options: &RunOptions,
    out: Option<&Path>,
    events: &Events,
) -> anyhow::Result<Vec<TargetRun>> {
    let (cancel_tx, cancel_rx) = watch::channel(false);
    let on_signal = events.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            on_signal.warn("Interrupted: stopping the running processes and writing what was collected (Ctrl-C again to abort at once).");
            let _ = cancel_tx.send(true);
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        }
    });
    let several = specs.len() > 1;
    let base = match (out, several) {
        (Some(out), _) => out.to_path_buf(),
        (None, false) => PathBuf::from("ftreview-runs"),
        (None, true) => RunDir::create(Path::new("ftreview-runs"), "run", false)?.root,
    };
    let mut runs = Vec::new();
    for spec in specs {
        let run_dir = match (out, several) {
            (Some(_), false) => RunDir::create(
                base.parent().unwrap_or(Path::new(".")),
                &base.file_name().unwrap_or_default().to_string_lossy(),
                true,
            )?,
            (None, false) => RunDir::create(&base, &spec.slug(), false)?,
            (_, true) => RunDir::create(&base, &spec.slug(), true)?,
        };
        events.note(&format!("Reviewing {spec} in {}", run_dir.root.display()));
        let run = review::review(
            spec,
            run_dir,
            interpreter,
            options,
            cancel_rx.clone(),
            events,
        )
        .await;
        let interrupted = *cancel_rx.borrow();
        runs.push(run);
        if interrupted {
            break;
        }
    }
    Ok(runs)
}

/// The reports' decision (the same `ftreview report` takes); without reports, a harness error.
fn outcome_of(run: &TargetRun) -> Outcome {
    run.results
        .as_ref()
        .map_or(Outcome::HarnessError, |r| r.outcome())
}

fn overall_outcome(runs: &[TargetRun]) -> Outcome {
    Outcome::worst(runs.iter().map(outcome_of))
}

/// The result of one target on stderr (also with --quiet, which only silences progress).
fn print_summary(run: &TargetRun) {
    let record = &run.record;
    let counts = run
        .results
        .as_ref()
        .map(|r| r.counts.clone())
        .unwrap_or_default();
    let times: Vec<String> = record
        .phases
        .iter()
        .map(|p| format!("{} {}", p.phase, format_secs(p.duration_secs)))
        .collect();
    let total = run.wall_secs;
    let mut lines = vec![
        format!(
            "{} {}: {} problem(s) from {} racing site pair(s), {} crash(es), {} hang(s)",
            record.target.name,
            record.target.version.as_deref().unwrap_or(""),
            counts.problems,
            counts.races,
            counts.crashes,
            counts.hangs
        ),
        format!(
            "  time by phase: {} (wall time {})",
            times.join(", "),
            format_secs(total)
        ),
    ];
    if record.gil.reenabled_on_import == Some(true) {
        lines.push(
            "  importing the extension re-enables the GIL: declare Py_mod_gil (see the plan)"
                .into(),
        );
    }
    if let Some(problem) = &record.clean_unproven {
        lines.push(format!("  cannot vouch for a clean result: {problem}"));
    }
    if let Some(error) = &record.stopped_by {
        lines.push(format!("  stopped: {error}"));
    }
    if let Some(error) = &run.report_error {
        lines.push(format!("  {error}"));
    }
    for file in &run.reports {
        lines.push(format!("  wrote {}", file.display()));
    }
    lines.push(format!(
        "  run directory: {} (run.json, commands.jsonl, logs/)",
        run.run_dir.display()
    ));
    eprintln!("{}", lines.join("\n"));
}

fn json_summary(runs: &[TargetRun]) -> serde_json::Value {
    let targets: Vec<serde_json::Value> = runs
        .iter()
        .map(|run| {
            let counts = run.results.as_ref().map(|r| r.counts.clone()).unwrap_or_default();
            json!({
                "target": run.spec.to_string(),
                "name": run.record.target.name,
                "version": run.record.target.version,
                "run_dir": run.run_dir,
                "outcome": format!("{:?}", outcome_of(run)).to_lowercase(),
                "verdict": run.results.as_ref().map(|r| r.verdict.level),
                "problems": counts.problems,
                "racing_site_pairs": counts.races,
                "crashes": counts.crashes,
                "hangs": counts.hangs,
                "gil_reenabled_on_import": run.record.gil.reenabled_on_import,
                "error": run.record.stopped_by.as_ref().or(run.report_error.as_ref()),
                "reports": run.reports,
                "untrustworthy": run.record.clean_unproven,
                "phases": run.record.phases.iter().map(|p| json!({
                    "name": p.phase, "status": p.status, "seconds": p.duration_secs, "items": p.items_run, "reports": p.reports, "message": p.message,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({ "outcome": format!("{:?}", overall_outcome(runs)).to_lowercase(), "targets": targets })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_read_seconds_and_units_and_refuse_nonsense() {
        assert_eq!(parse_budget("900"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_budget("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_budget("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_budget("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_budget("30s").unwrap_err().contains("at least 60s"));
        assert!(parse_budget("ten").unwrap_err().contains("not a duration"));
        assert!(parse_budget("5d").unwrap_err().contains("unknown unit"));
    }
}
