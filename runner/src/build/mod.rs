//! Building the extension from the kept source tree against the TSan interpreter, and caching
//! the wheel.
//!
//! setuptools inherits the interpreter's `-fsanitize=thread` from sysconfig; meson-python and
//! scikit-build-core do not, so they get the sanitizer through their own settings, and every
//! backend gets the interpreter's compiler (the TSan runtimes of gcc and clang differ). Build
//! directories are kept under the run directory: debug info then points at readable files.
//!
//! Extensions that degrade to pure Python hide why: the build stage supplies the CMake, Ninja
//! and Meson the setup code runs when the host lacks them, compares the wheel's modules with
//! the ones the sources declare, retries once with the project's own switch for requiring its
//! C build, and quotes the build log lines that tell what went wrong, with the fix.

mod diagnosis;
mod modules;
mod setup_code;
mod switch;
mod tools;

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context;
use ftreview_reports::model::{
    BuildCause, BuildCauseKind, BuildFix, BuildRecord, BuildRetry, Phase,
};
use ftreview_toolchain::{sha256_hex, Interpreter};
use serde::{Deserialize, Serialize};

use crate::env::{cache_root, expect_success, quiet_env, Venv};
use crate::process::{Runner, Step};
use crate::target::Source;
use setup_code::SetupCode;
use switch::ForceSwitch;

/// What the helper learned from the source tree's packaging files.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ProjectInfo {
    pub build_backend: String,
    pub build_requires: Vec<String>,
    pub test_requirements: Vec<String>,
    pub requirement_sources: Vec<String>,
    pub testpaths: Vec<String>,
    pub addopts: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Setuptools,
    MesonPython,
    ScikitBuildCore,
    /// Anything else: built with the interpreter's compiler and checked afterwards.
    Other,
}

impl Backend {
    pub fn of(build_backend: &str) -> Backend {
        let module = build_backend.split(':').next().unwrap_or_default();
        match module.split('.').next().unwrap_or_default() {
            "setuptools" => Backend::Setuptools,
            "mesonpy" => Backend::MesonPython,
            "scikit_build_core" => Backend::ScikitBuildCore,
            _ => Backend::Other,
        }
    }
}

/// `-C` settings that make a backend compile with TSan into a kept build directory.
pub fn config_settings(backend: Backend, build_dir: &Path) -> Vec<String> {
    let dir = build_dir.display();
    let flags = "-fsanitize=thread -g -fno-omit-frame-pointer";
    match backend {
        Backend::MesonPython => vec![
            "setup-args=-Db_sanitize=thread".into(),
            "setup-args=-Db_lundef=false".into(),
            "setup-args=-Ddebug=true".into(),
            format!("build-dir={dir}"),
        ],
        Backend::ScikitBuildCore => vec![
            format!("cmake.define.CMAKE_C_FLAGS={flags}"),
            format!("cmake.define.CMAKE_CXX_FLAGS={flags}"),
            "cmake.define.CMAKE_SHARED_LINKER_FLAGS=-fsanitize=thread".into(),
            "cmake.define.CMAKE_MODULE_LINKER_FLAGS=-fsanitize=thread".into(),
            "cmake.build-type=RelWithDebInfo".into(),
            format!("build-dir={dir}"),
        ],
        Backend::Setuptools | Backend::Other => Vec::new(),
    }
}

/// `CC`/`CXX` of the interpreter's compiler family.
pub fn compiler_env(interpreter: &Interpreter) -> Vec<(String, String)> {
    let cc = interpreter.cc.clone();
    let cxx = cxx_for(&cc);
    vec![("CC".into(), cc), ("CXX".into(), cxx)]
}

fn cxx_for(cc: &str) -> String {
    let (program, rest) = cc
        .split_once(' ')
        .map(|(p, r)| (p, format!(" {r}")))
        .unwrap_or((cc, String::new()));
    let cxx = if program.contains("clang") {
        program.replacen("clang", "clang++", 1)
    } else if program.contains("gcc") {
        program.replacen("gcc", "g++", 1)
    } else {
        "c++".to_string()
    };
    format!("{cxx}{rest}")
}

/// A built wheel and the tree it was compiled in (which its debug info points into).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BuiltWheel {
    pub wheel: PathBuf,
    /// The source tree the compiler saw: this run's, or, for a reused build, the tree of the
    /// run that built it (reports then point into this run's identical copy).
    pub compiled_in: PathBuf,
    #[serde(default)]
    pub cached: bool,
    /// Modules, supplied tools, the retry and the log's causes (kept with the cached wheel).
    #[serde(default)]
    pub record: BuildRecord,
    /// Problems that did not stop the build (a tool that could not be supplied).
    #[serde(skip)]
    pub warnings: Vec<String>,
}

/// A build that failed, with what its log says (`record.causes`, `record.fixes`).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct BuildFailed {
    pub message: String,
    pub record: BuildRecord,
}

/// What to build and how.
pub(crate) struct BuildRequest<'a> {
    pub venv: &'a Venv,
    pub interpreter: &'a Interpreter,
    pub source: &'a Source,
    /// `build-system.build-backend` of the project.
    pub build_backend: &'a str,
    /// `build-system.requires` of the project.
    pub build_requires: &'a [String],
    /// Settings from the registry.
    pub extra_settings: &'a [String],
    /// `RUN_DIR/build`.
    pub out_dir: &'a Path,
    pub rebuild: bool,
    pub runner: &'a Runner,
}

/// The extension's wheel: from the cache when the same sources were built with the same
/// interpreter and settings, else built now.
pub(crate) async fn build_extension(request: &BuildRequest<'_>) -> anyhow::Result<BuiltWheel> {
    let backend = Backend::of(request.build_backend);
    let mut settings = config_settings(backend, &request.out_dir.join("backend"));
    settings.extend(request.extra_settings.iter().cloned());
    let code = SetupCode::read(&request.source.root);
    let tools = tools::used(&code);
    let pass_flags = passes_flags_to_sub_builds(backend, &tools);
    // The build directory is part of the settings but not of what gets built.
    let key_settings: Vec<String> = settings
        .iter()
        .filter(|s| !s.starts_with("build-dir="))
        .cloned()
        .chain(pass_flags.then(|| "sub-builds get the interpreter's CFLAGS".to_string()))
        .collect();
    let key = cache_key(request.source, request.interpreter, &key_settings);
    if !request.rebuild {
        if let Some(cached) = cached_build(&key, request.out_dir) {
            return Ok(cached);
        }
    }
    fs::create_dir_all(request.out_dir)?;
    let mut env = compiler_env(request.interpreter);
    if pass_flags {
        env.extend(interpreter_flags(request).await?);
    }
    let built = build_complete(request, &settings, &code, &tools, env).await?;
    store(&built, &key, request.out_dir)
}

/// Whether the setup code runs a build system of its own (a CMake library built from
/// setup.py) that must compile with the sanitizer too: it starts from `CFLAGS`, which the
/// interpreter's flags do not reach unless set. meson-python and scikit-build-core get the
/// sanitizer through their settings; a user's own `CFLAGS` is left alone.
fn passes_flags_to_sub_builds(backend: Backend, tools: &[tools::NeededTool]) -> bool {
    matches!(backend, Backend::Setuptools | Backend::Other)
        && !tools.is_empty()
        && std::env::var_os("CFLAGS").is_none()
}

/// `CFLAGS`/`CXXFLAGS` set to the interpreter's sysconfig `CFLAGS` (with `-fsanitize=thread`):
/// setuptools compiles with exactly what it would have used (it takes `CFLAGS` in place of
/// sysconfig's), and the sub-build gets the sanitizer.
async fn interpreter_flags(request: &BuildRequest<'_>) -> anyhow::Result<Vec<(String, String)>> {
    let out = request.out_dir.join("sysconfig-cflags.txt");
    let step = Step::new(
        "interpreter CFLAGS",
        &request.venv.python,
        request.out_dir,
        &request.out_dir.join("sysconfig-cflags.log"),
    )
    .in_phase(Phase::Build)
    .args([
        "-c",
        "import sysconfig; print(sysconfig.get_config_var('CFLAGS') or '')",
    ])
    .envs(&quiet_env())
    .stdout_to(&out);
    expect_success(
        request.runner.run(&step).await?,
        "cannot read the interpreter's CFLAGS",
    )?;
    let cflags = fs::read_to_string(&out)?.trim().to_string();
    Ok(vec![
        ("CFLAGS".into(), cflags.clone()),
        ("CXXFLAGS".into(), cflags),
    ])
}

/// Builds with the tools the setup code needs, then, when the wheel lacks modules the
/// sources declare, tells why and retries once with the project's switch for its C build.
async fn build_complete(
    request: &BuildRequest<'_>,
    settings: &[String],
    code: &SetupCode,
    tools: &[tools::NeededTool],
    mut env: Vec<(String, String)>,
) -> anyhow::Result<BuiltWheel> {
    let mut record = BuildRecord {
        declared_modules: modules::declared_modules(&request.source.root),
        ..BuildRecord::default()
    };
    let mut warnings = Vec::new();
    match supply_tools(request, tools).await {
        Ok(Some(supplied)) => {
            env.push(("PATH".into(), path_with(&supplied.bin)));
            record.supplied_tools = supplied.tools;
        }
        Ok(None) => {}
        Err(err) => warnings.push(format!(
            "could not supply the build tools the setup code runs ({err:#}): building without them"
        )),
    }
    let first = Attempt::First.run(request, settings, &env, &record).await?;
    let mut wheel = first.wheel;
    record.built_modules = modules::wheel_modules(&wheel)?;
    if !record.missing_modules().is_empty() {
        record.causes = first.causes;
        let switch = switch::find(code).filter(|s| std::env::var_os(&s.variable).is_none());
        if let Some(switch) = switch {
            if let Some(better) = retry(request, settings, &env, &switch, &mut record).await {
                wheel = better;
            }
        }
        record.fixes = fixes_for(&record);
    }
    Ok(BuiltWheel {
        wheel,
        compiled_in: request.source.root.clone(),
        cached: false,
        record,
        warnings,
    })
}

/// The supplied tools' directory when the setup code runs tools the host lacks.
async fn supply_tools(
    request: &BuildRequest<'_>,
    used: &[tools::NeededTool],
) -> anyhow::Result<Option<tools::Supplied>> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let missing: Vec<tools::NeededTool> = (used.iter())
        .filter(|n| !tools::provided(n.tool, request.build_requires))
        .filter(|n| !tools::on_path(n.tool.program(), &path))
        .cloned()
        .collect();
    if missing.is_empty() {
        return Ok(None);
    }
    tools::supply(&missing, request.out_dir, request.runner)
        .await
        .map(Some)
}

fn path_with(dir: &Path) -> String {
    match std::env::var("PATH") {
        Ok(path) if !path.is_empty() => format!("{}:{path}", dir.display()),
        _ => dir.display().to_string(),
    }
}

/// The build again with `switch` set; its wheel when it built more of the declared modules.
async fn retry(
    request: &BuildRequest<'_>,
    settings: &[String],
    env: &[(String, String)],
    switch: &ForceSwitch,
    record: &mut BuildRecord,
) -> Option<PathBuf> {
    let mut env = env.to_vec();
    env.push((switch.variable.clone(), switch.value.clone()));
    let attempt = Attempt::Forced.run(request, settings, &env, record).await;
    let log = Attempt::Forced.log_in_run_dir(request.out_dir);
    let (built_modules, error, wheel, causes) = match attempt {
        Ok(done) => match modules::wheel_modules(&done.wheel) {
            Ok(built) => (built, None, Some(done.wheel), done.causes),
            Err(err) => (Vec::new(), Some(format!("{err:#}")), None, done.causes),
        },
        Err(err) => {
            let failed = err.downcast_ref::<BuildFailed>();
            let causes = failed.map(|f| f.record.causes.clone()).unwrap_or_default();
            let first_line = format!("{err:#}")
                .lines()
                .next()
                .unwrap_or_default()
                .to_string();
            (Vec::new(), Some(first_line), None, causes)
        }
    };
    let declared_count = |built: &[String]| {
        (record.declared_modules.iter())
            .filter(|m| built.contains(m))
            .count()
    };
    let better = declared_count(&built_modules) > declared_count(&record.built_modules);
    record.retry = Some(BuildRetry {
        variable: switch.variable.clone(),
        value: switch.value.clone(),
        read_at: switch.read_at.clone(),
        log,
        built_modules: built_modules.clone(),
        error,
    });
    if better {
        record.built_modules = built_modules;
    }
    if !record.missing_modules().is_empty() {
        record.causes.extend(causes);
    }
    better.then_some(wheel).flatten()
}

/// The switch the retry used first (when there was one), then what the log's causes call for.
fn fixes_for(record: &BuildRecord) -> Vec<BuildFix> {
    let switch = record.retry.iter().map(|r| BuildFix::SetEnvironment {
        variable: r.variable.clone(),
        value: r.value.clone(),
        read_at: r.read_at.clone(),
    });
    switch.chain(diagnosis::fixes(&record.causes)).collect()
}

/// One `pip wheel` of the kept tree.
#[derive(Debug, Clone, Copy)]
enum Attempt {
    First,
    /// With the project's switch for requiring its C build set.
    Forced,
}

/// A finished attempt: its wheel and what its log says.
struct Attempted {
    wheel: PathBuf,
    causes: Vec<BuildCause>,
}

impl Attempt {
    fn name(self) -> &'static str {
        match self {
            Attempt::First => "build",
            Attempt::Forced => "build-retry",
        }
    }

    /// The log as the record names it: relative to the run directory.
    fn log_in_run_dir(self, out_dir: &Path) -> PathBuf {
        let build_dir = out_dir.file_name().map(PathBuf::from).unwrap_or_default();
        build_dir.join(format!("{}.log", self.name()))
    }

    /// Builds a wheel from `source.root` with `pip wheel --no-deps` into its own directory.
    async fn run(
        self,
        request: &BuildRequest<'_>,
        settings: &[String],
        env: &[(String, String)],
        record: &BuildRecord,
    ) -> anyhow::Result<Attempted> {
        let out_dir = request.out_dir;
        let log = out_dir.join(format!("{}.log", self.name()));
        let wheel_dir = out_dir.join(match self {
            Attempt::First => "wheel",
            Attempt::Forced => "wheel-retry",
        });
        let label = match self {
            Attempt::First => "build wheel",
            Attempt::Forced => "build wheel (C build required)",
        };
        let mut step = request
            .venv
            .pip(label, &log)
            .in_phase(Phase::Build)
            .args(["wheel", "--no-deps", "--verbose", "--wheel-dir"])
            .arg(&wheel_dir)
            .arg(&request.source.root)
            .envs(env);
        for setting in settings {
            step = step.arg(format!("--config-settings={setting}"));
        }
        let result = request.runner.run(&step).await?;
        let text = fs::read_to_string(&log).unwrap_or_default();
        let causes = diagnosis::diagnose(&text, &self.log_in_run_dir(out_dir));
        let fixes = diagnosis::fixes(&causes);
        if let Err(err) = expect_success(result, &failure_summary(&causes, &fixes)) {
            return Err(BuildFailed {
                message: format!("{err:#}"),
                record: BuildRecord {
                    causes,
                    fixes,
                    ..record.clone()
                },
            }
            .into());
        }
        let wheel = fs::read_dir(&wheel_dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.extension().is_some_and(|e| e == "whl"))
            .context("pip reported success but left no wheel")?;
        Ok(Attempted { wheel, causes })
    }
}

/// "failed to build" with what the log names and the fix, all on the first line of the
/// error (the phase message).
fn failure_summary(causes: &[BuildCause], fixes: &[BuildFix]) -> String {
    let mut said: Vec<String> = causes.iter().map(|c| c.to_string()).collect();
    if !fixes.is_empty() {
        let fixes: Vec<String> = fixes.iter().map(|f| f.to_string()).collect();
        said.push(format!("fix: {}", fixes.join("; ")));
    }
    let summary = "the extension failed to build against the TSan interpreter";
    match said.is_empty() {
        true => summary.to_string(),
        false => format!("{summary} ({})", said.join(" | ")),
    }
}

/// Copies the wheel into the build cache, with its record.
fn store(built: &BuiltWheel, key: &str, out_dir: &Path) -> anyhow::Result<BuiltWheel> {
    let dir = cache_dir(key);
    fs::create_dir_all(&dir)?;
    let cached_wheel = dir.join(built.wheel.file_name().unwrap_or_default());
    fs::copy(&built.wheel, &cached_wheel)?;
    copy_build_logs(out_dir, &dir)?;
    let stored = BuiltWheel {
        wheel: cached_wheel,
        ..built.clone()
    };
    fs::write(
        dir.join("build.json"),
        serde_json::to_string_pretty(&stored)?,
    )?;
    Ok(stored)
}

/// What the build left out and why, in one paragraph (the build phase's message and the
/// reason a clean result cannot be vouched for); `None` when every declared module was built.
pub fn explain(record: &BuildRecord) -> Option<String> {
    let missing = record.missing_modules();
    if missing.is_empty() {
        return None;
    }
    let mut text = format!(
        "the wheel lacks {} of the {} extension module(s) the sources declare ({})",
        missing.len(),
        record.declared_modules.len(),
        missing.join(", ")
    );
    if let Some(retry) = &record.retry {
        text.push_str(&format!(
            "; the retry with {}={} ({}) did not build them either",
            retry.variable, retry.value, retry.read_at
        ));
    }
    match telling_causes(&record.causes).as_slice() {
        [] => text.push_str("; the build log names no cause (see build/build.log)"),
        causes => {
            let quoted: Vec<String> = causes.iter().map(|c| c.to_string()).collect();
            text.push_str(&format!("; the build log says: {}", quoted.join(" | ")));
        }
    }
    let fixes: Vec<String> = record.fixes.iter().map(|f| f.to_string()).collect();
    if !fixes.is_empty() {
        text.push_str(&format!("; fix: {}", fixes.join("; or ")));
    }
    Some(text)
}

/// The causes worth quoting in one line: what went wrong (the first two), else the setup
/// code's own word that it left the C part out.
fn telling_causes(causes: &[BuildCause]) -> Vec<&BuildCause> {
    let (skips, roots): (Vec<&BuildCause>, Vec<&BuildCause>) = causes
        .iter()
        .partition(|c| c.kind == BuildCauseKind::SkippedExtension);
    if roots.is_empty() {
        skips.into_iter().take(1).collect()
    } else {
        roots.into_iter().take(2).collect()
    }
}

/// Version of what a cache entry holds: entries of another version are not reused.
const CACHE_FORMAT: &str = "wheel, build record and logs";

/// Key of the build cache: same sources, same interpreter, same settings.
fn cache_key(source: &Source, interpreter: &Interpreter, settings: &[String]) -> String {
    let python = interpreter.python.display().to_string();
    let format = CACHE_FORMAT.to_string();
    let parts = [
        &format,
        &source.sha256,
        &python,
        &interpreter.version,
        &interpreter.cc,
    ]
    .into_iter()
    .chain(settings);
    let joined: Vec<&str> = parts.map(String::as_str).collect();
    sha256_hex(joined.join("\0").as_bytes())[..24].to_string()
}

fn cache_dir(key: &str) -> PathBuf {
    cache_root().join("builds").join(key)
}

/// A cached build of the same sources (its sources need not exist any more: this run has an
/// identical copy, and reports are pointed there), with its build logs copied into `out_dir`
/// for the causes its record quotes.
fn cached_build(key: &str, out_dir: &Path) -> Option<BuiltWheel> {
    let dir = cache_dir(key);
    let meta: BuiltWheel =
        serde_json::from_str(&fs::read_to_string(dir.join("build.json")).ok()?).ok()?;
    if !meta.wheel.is_file() {
        return None;
    }
    fs::create_dir_all(out_dir).ok()?;
    copy_build_logs(&dir, out_dir).ok()?;
    Some(BuiltWheel {
        cached: true,
        ..meta
    })
}

/// Copies the attempts' logs (`build.log`, `build-retry.log`) that exist.
fn copy_build_logs(from: &Path, to: &Path) -> std::io::Result<()> {
    for attempt in [Attempt::First, Attempt::Forced] {
        let log = format!("{}.log", attempt.name());
        if from.join(&log).is_file() {
            fs::copy(from.join(&log), to.join(&log))?;
        }
    }
    Ok(())
}

/// The distribution name from a wheel file name (`multidict-6.7.1-cp313-cp313t-….whl`).
pub fn wheel_dist_name(wheel: &Path) -> String {
    let name = wheel
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    name.split('-').next().unwrap_or_default().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognizes_backends() {
        assert_eq!(
            Backend::of("setuptools.build_meta:__legacy__"),
            Backend::Setuptools
        );
        assert_eq!(Backend::of("mesonpy"), Backend::MesonPython);
        assert_eq!(
            Backend::of("scikit_build_core.build"),
            Backend::ScikitBuildCore
        );
        assert_eq!(Backend::of("maturin"), Backend::Other);
    }

    #[test]
    fn meson_and_cmake_get_the_sanitizer_and_a_kept_build_dir() {
        let meson = config_settings(Backend::MesonPython, Path::new("/run/build/meson"));
        assert!(meson.contains(&"setup-args=-Db_sanitize=thread".to_string()));
        assert!(meson.contains(&"build-dir=/run/build/meson".to_string()));
        let cmake = config_settings(Backend::ScikitBuildCore, Path::new("/b"));
        assert!(cmake
            .iter()
            .any(|s| s.starts_with("cmake.define.CMAKE_C_FLAGS=-fsanitize=thread")));
        assert!(config_settings(Backend::Setuptools, Path::new("/b")).is_empty());
    }

    #[test]
    fn derives_the_cxx_compiler() {
        assert_eq!(cxx_for("clang-19"), "clang++-19");
        assert_eq!(cxx_for("gcc -pthread"), "g++ -pthread");
        assert_eq!(cxx_for("cc"), "c++");
    }

    fn compile_error() -> BuildCause {
        BuildCause {
            kind: BuildCauseKind::CompilerError {
                location: "m.c:3:5".into(),
            },
            log: "build/build.log".into(),
            line: 40,
            text: "m.c:3:5: error: no member named 'ob_refcnt'".into(),
        }
    }

    #[test]
    fn a_failed_build_names_its_causes_and_fix_in_one_line() {
        let causes = [compile_error()];
        let summary = failure_summary(&causes, &diagnosis::fixes(&causes));
        assert!(summary.starts_with("the extension failed to build against the TSan interpreter (build/build.log:40: m.c:3:5: error:"), "{summary}");
        assert!(summary.ends_with("`Py_SET_REFCNT(op, n)`)"), "{summary}");
        assert!(!summary.contains('\n'));
    }

    #[test]
    fn explains_missing_modules_by_what_went_wrong_before_the_skip_message() {
        let skipped = BuildCause {
            kind: BuildCauseKind::SkippedExtension,
            line: 41,
            text: "warning: falling back to pure Python".into(),
            ..compile_error()
        };
        let mut record = BuildRecord {
            declared_modules: vec!["_m".into()],
            causes: vec![compile_error(), skipped.clone()],
            ..BuildRecord::default()
        };
        let why = explain(&record).unwrap();
        assert!(why.contains("lacks 1 of the 1 extension module(s) the sources declare (_m)"));
        assert!(why.contains("build/build.log:40:") && !why.contains("build/build.log:41:"));
        record.causes = vec![skipped];
        assert!(explain(&record).unwrap().contains("build/build.log:41:"));
        record.built_modules = vec!["_m".into()];
        assert_eq!(explain(&record), None);
    }

    #[test]
    fn reads_the_distribution_name_of_a_wheel() {
        assert_eq!(
            wheel_dist_name(Path::new(
                "/w/multidict-6.7.1-cp313-cp313t-linux_x86_64.whl"
            )),
            "multidict"
        );
    }
}
