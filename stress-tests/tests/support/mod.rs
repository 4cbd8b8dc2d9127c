//! Shared by the end-to-end test and the benchmark: a venv of the TSan interpreter with the
//! fixture extensions, running introspection and scenarios, reading TSan logs.
#![allow(dead_code)] // each test target uses a different part

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use ftreview_stress::{
    introspection_args, introspection_script, parse_api_model, parse_outcome, ApiModel,
    IntrospectionRequest, Scenario, ScenarioOutcome, OUTCOME_ENV, SINGLE_THREAD_ENV,
};
use serde::Deserialize;

pub use ftreview_testkit::fixtures_dir;

/// The TSan interpreter from `FTREVIEW_PYTHON`; `None` (after saying why) when the test must
/// skip; panics when `FTREVIEW_REQUIRE_E2E=1` demands it.
pub fn tsan_python(_test: &str) -> Option<PathBuf> {
    ftreview_testkit::tsan_python()
}

/// A venv of `python` with the named fixture packages installed (reports off while building).
pub struct Venv {
    pub python: PathBuf,
    pub dir: tempfile::TempDir,
}

impl Venv {
    pub fn with_fixtures(python: &Path, fixtures: &[&str]) -> Result<Venv> {
        let dir = tempfile::Builder::new()
            .prefix("ftreview-stress-venv")
            .tempdir()?;
        let venv = dir.path().join("venv");
        quiet(Command::new(python).arg("-m").arg("venv").arg(&venv))?;
        let python = venv.join("bin/python");
        quiet(Command::new(&python).args(["-m", "pip", "install", "-q", "setuptools"]))?;
        let mut install = Command::new(&python);
        install.args(["-m", "pip", "install", "-q", "--no-build-isolation"]);
        install.args(fixtures.iter().map(|name| fixtures_dir().join(name)));
        quiet(&mut install)?;
        Ok(Venv { python, dir })
    }

    /// Runs the introspection script on `modules`, reports off.
    pub fn introspect(&self, modules: &[&str]) -> Result<ApiModel> {
        self.introspect_request(&IntrospectionRequest {
            modules: modules.iter().map(|m| m.to_string()).collect(),
            ..IntrospectionRequest::default()
        })
    }

    pub fn introspect_request(&self, request: &IntrospectionRequest) -> Result<ApiModel> {
        let script = self.dir.path().join("introspect.py");
        fs::write(&script, introspection_script())?;
        let output = Command::new(&self.python)
            .arg(&script)
            .args(introspection_args(request))
            .env("PYTHON_GIL", "0")
            .env("TSAN_OPTIONS", "report_bugs=0")
            .output()?;
        eprint!("{}", String::from_utf8_lossy(&output.stderr));
        if !output.status.success() {
            bail!("introspection failed ({})", output.status);
        }
        parse_api_model(&String::from_utf8_lossy(&output.stdout))
    }

    /// Runs one scenario under TSan in `dir` (script, logs, outcome), killing its process
    /// group after `timeout`.
    pub fn run_scenario(
        &self,
        scenario: &Scenario,
        dir: &Path,
        timeout: Duration,
    ) -> Result<ScenarioRun> {
        self.run_scenario_as(scenario, dir, timeout, false)
    }

    /// Runs the scenario, as the single-threaded control run when `control`.
    pub fn run_scenario_as(
        &self,
        scenario: &Scenario,
        dir: &Path,
        timeout: Duration,
        control: bool,
    ) -> Result<ScenarioRun> {
        fs::create_dir_all(dir)?;
        let script = dir.join(format!("{}.py", scenario.name));
        fs::write(&script, &scenario.script)?;
        let outcome_path = dir.join("outcome.json");
        let started = Instant::now();
        let mut command = Command::new(&self.python);
        if control {
            command.env(SINGLE_THREAD_ENV, "1");
        }
        let mut child = command
            .arg(&script)
            .env("PYTHON_GIL", "0")
            .env(OUTCOME_ENV, &outcome_path)
            .env(
                "TSAN_OPTIONS",
                format!(
                    "log_path={}/tsan halt_on_error=0 exitcode=0 second_deadlock_stack=1",
                    dir.display()
                ),
            )
            .env("PATH", path_with_symbolizer())
            .stdin(Stdio::null())
            .stdout(fs::File::create(dir.join("output.log"))?)
            .stderr(Stdio::from(fs::File::create(dir.join("stderr.log"))?))
            .process_group(0)
            .spawn()?;
        let timed_out = loop {
            if child.try_wait()?.is_some() {
                break false;
            }
            if started.elapsed() > timeout {
                // SAFETY: kill(2) on the child's own process group; no memory is touched.
                unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
                child.wait()?;
                break true;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let outcome = fs::read_to_string(&outcome_path)
            .ok()
            .map(|text| parse_outcome(&text))
            .transpose()?;
        Ok(ScenarioRun {
            outcome,
            reports: read_reports(dir)?,
            timed_out,
            elapsed: started.elapsed(),
        })
    }
}

impl Venv {
    /// Runs one line of Python (a reproducer) in the venv as scenarios run: GIL off, TSan
    /// reports kept on stderr.
    pub fn run_line(&self, line: &str) -> Result<std::process::Output> {
        Ok(Command::new(&self.python)
            .args(["-c", line])
            .env("PYTHON_GIL", "0")
            .env("TSAN_OPTIONS", "halt_on_error=0")
            .env("PATH", path_with_symbolizer())
            .output()?)
    }
}

fn quiet(command: &mut Command) -> Result<()> {
    let output = command
        .env("TSAN_OPTIONS", "report_bugs=0")
        .output()
        .with_context(|| format!("running {command:?}"))?;
    if !output.status.success() {
        bail!(
            "{command:?} failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// PATH with an LLVM bin directory (llvm-symbolizer) when one is installed.
fn path_with_symbolizer() -> String {
    let path = std::env::var("PATH").unwrap_or_default();
    let llvm = fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|bin| bin.join("llvm-symbolizer").is_file())
        .max();
    match llvm {
        Some(bin) => format!("{}:{path}", bin.display()),
        None => path,
    }
}

pub struct ScenarioRun {
    pub outcome: Option<ScenarioOutcome>,
    pub reports: Vec<Report>,
    pub timed_out: bool,
    pub elapsed: Duration,
}

/// A TSan report, reduced to what the checks need.
#[derive(Debug)]
pub struct Report {
    pub kind: String,
    /// Every frame of every stack.
    pub frames: Vec<Frame>,
}

#[derive(Debug)]
pub struct Frame {
    /// `#N`: 0 is the racing access, 1 its caller.
    pub index: u32,
    pub function: String,
    pub file: String,
    pub line: u32,
}

/// Every report of every `tsan.*` log in `dir`.
pub fn read_reports(dir: &Path) -> Result<Vec<Report>> {
    let mut reports = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("tsan."))
        {
            reports.extend(parse_log(&fs::read_to_string(&path)?));
        }
    }
    Ok(reports)
}

fn parse_log(text: &str) -> Vec<Report> {
    let mut reports = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("WARNING: ThreadSanitizer: ") {
            let kind = rest.rsplit_once(" (pid=").map_or(rest, |(kind, _)| kind);
            reports.push(Report {
                kind: kind.to_string(),
                frames: Vec::new(),
            });
        } else if let (Some(report), Some(frame)) = (reports.last_mut(), parse_frame(line)) {
            report.frames.push(frame);
        }
    }
    reports
}

/// `    #N function file:line[:col] (module+0x..)`.
fn parse_frame(line: &str) -> Option<Frame> {
    let rest = line.trim_start().strip_prefix('#')?;
    let mut parts = rest.split_whitespace();
    let index = parts.next()?.parse().ok()?;
    let function = parts.next()?.to_string();
    let location = parts.next()?;
    let mut pieces = location.split(':');
    let file = pieces.next()?.to_string();
    let line = pieces.next()?.parse().ok()?;
    Some(Frame {
        index,
        function,
        file,
        line,
    })
}

/// `test-fixtures/<pkg>/expected.yaml`.
#[derive(Debug, Deserialize)]
pub struct Expected {
    pub module: String,
    pub source: String,
    pub races: Vec<ExpectedRace>,
}

#[derive(Debug, Deserialize)]
pub struct ExpectedRace {
    pub id: String,
    pub category: String,
    pub tsan_kind: String,
    pub function: String,
    pub lines: Vec<u32>,
    #[serde(default)]
    pub peer: Option<Site>,
    /// Python entry points that reach it.
    #[serde(default)]
    pub python: Vec<String>,
    /// Reached only with the arguments a test suite passes (`ApiModel::merge_test_calls`),
    /// not with introspection's catalogue.
    #[serde(default)]
    pub needs_test_calls: bool,
}

#[derive(Debug, Deserialize)]
pub struct Site {
    pub function: String,
    pub lines: Vec<u32>,
}

impl Expected {
    pub fn load(package: &str) -> Result<Expected> {
        let path = fixtures_dir().join(package).join("expected.yaml");
        Ok(serde_yaml_ng::from_str(
            &fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?,
        )?)
    }

    fn file_name(&self) -> &str {
        self.source.rsplit('/').next().unwrap_or(&self.source)
    }
}

impl ExpectedRace {
    /// A report of the right kind with a frame at the planted site (and at the peer site).
    pub fn found_in(&self, expected: &Expected, reports: &[Report]) -> bool {
        let at = |r: &Report, function: &str, lines: &[u32]| {
            r.frames.iter().any(|f| {
                f.file.ends_with(expected.file_name())
                    && f.function == function
                    && lines.contains(&f.line)
            })
        };
        reports.iter().any(|r| {
            r.kind == self.tsan_kind
                && at(r, &self.function, &self.lines)
                && self
                    .peer
                    .as_ref()
                    .is_none_or(|p| at(r, &p.function, &p.lines))
        })
    }
}

/// Reports whose racing access is in the given source file, directly or through the C-API
/// function it called (`#0` or `#1`); interpreter-internal races deeper below it do not count.
pub fn reports_in<'r>(reports: &'r [Report], file_name: &str) -> Vec<&'r Report> {
    reports
        .iter()
        .filter(|r| {
            r.frames
                .iter()
                .any(|f| f.index <= 1 && f.file.ends_with(file_name))
        })
        .collect()
}

/// `test-fixtures/quirky_ext/expected.yaml`.
#[derive(Debug, Deserialize)]
pub struct QuirkyExpected {
    pub package: String,
    pub modules: Vec<String>,
    pub source: String,
    pub verdict: String,
    pub define_types: Vec<String>,
    pub quirks: Vec<Quirk>,
}

#[derive(Debug, Deserialize)]
pub struct Quirk {
    pub id: String,
    pub lines: Vec<u32>,
    #[serde(default)]
    pub r#type: Option<String>,
    #[serde(default)]
    pub attribute: Option<String>,
    #[serde(default)]
    pub function: Option<String>,
    /// Pieces a crashed trial's call holds, in order.
    #[serde(default)]
    pub call: Vec<String>,
    #[serde(default)]
    pub signal: Option<String>,
    #[serde(default)]
    pub python: Option<String>,
    #[serde(default)]
    pub op: Option<String>,
    #[serde(default)]
    pub detail: Option<String>,
    #[serde(default)]
    pub module: Option<String>,
    #[serde(default)]
    pub subclass: Option<String>,
    #[serde(default)]
    pub properties: Vec<String>,
}

impl QuirkyExpected {
    pub fn load() -> Result<QuirkyExpected> {
        let path = fixtures_dir().join("quirky_ext/expected.yaml");
        Ok(serde_yaml_ng::from_str(
            &fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?,
        )?)
    }

    pub fn quirk(&self, id: &str) -> &Quirk {
        self.quirks
            .iter()
            .find(|q| q.id == id)
            .unwrap_or_else(|| panic!("quirky_ext/expected.yaml has no quirk {id}"))
    }
}

/// Lines of `text` carrying a `/* PLANTED ` tag (1-based).
pub fn planted_lines(text: &str) -> std::collections::BTreeSet<u32> {
    text.lines()
        .zip(1..)
        .filter(|(line, _)| line.contains("/* PLANTED "))
        .map(|(_, n)| n)
        .collect()
}
