//! Building the extension from the kept source tree against the TSan interpreter, and caching
//! the wheel.
//!
//! setuptools inherits the interpreter's `-fsanitize=thread` from sysconfig; meson-python and
//! scikit-build-core do not, so they get the sanitizer through their own settings, and every
//! backend gets the interpreter's compiler (the TSan runtimes of gcc and clang differ). Build
//! directories are kept under the run directory: debug info then points at readable files.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context;
use ftreview_reports::model::Phase;
use ftreview_toolchain::{sha256_hex, Interpreter};
use serde::{Deserialize, Serialize};

use crate::env::{cache_root, expect_success, Venv};
use crate::process::Runner;
use crate::target::Source;

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
}

/// What to build and how.
pub(crate) struct BuildRequest<'a> {
    pub venv: &'a Venv,
    pub interpreter: &'a Interpreter,
    pub source: &'a Source,
    /// `build-system.build-backend` of the project.
    pub build_backend: &'a str,
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
    // The build directory is part of the settings but not of what gets built.
    let key_settings: Vec<String> = settings
        .iter()
        .filter(|s| !s.starts_with("build-dir="))
        .cloned()
        .collect();
    let key = cache_key(request.source, request.interpreter, &key_settings);
    if !request.rebuild {
        if let Some(cached) = cached_build(&key) {
            return Ok(cached);
        }
    }
    build_wheel(request, &settings, &key).await
}

/// Key of the build cache: same sources, same interpreter, same settings.
fn cache_key(source: &Source, interpreter: &Interpreter, settings: &[String]) -> String {
    let python = interpreter.python.display().to_string();
    let parts = [
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
/// identical copy, and reports are pointed there).
fn cached_build(key: &str) -> Option<BuiltWheel> {
    let dir = cache_dir(key);
    let meta: BuiltWheel =
        serde_json::from_str(&fs::read_to_string(dir.join("build.json")).ok()?).ok()?;
    meta.wheel.is_file().then_some(BuiltWheel {
        cached: true,
        ..meta
    })
}

/// Builds a wheel from `source.root` with `pip wheel --no-deps` and stores it in the cache.
async fn build_wheel(
    request: &BuildRequest<'_>,
    settings: &[String],
    key: &str,
) -> anyhow::Result<BuiltWheel> {
    let out_dir = request.out_dir;
    fs::create_dir_all(out_dir)?;
    let mut step = request
        .venv
        .pip("build wheel", &out_dir.join("build.log"))
        .in_phase(Phase::Build)
        .args(["wheel", "--no-deps", "--verbose", "--wheel-dir"])
        .arg(out_dir.join("wheel"))
        .arg(&request.source.root)
        .envs(&compiler_env(request.interpreter));
    for setting in settings {
        step = step.arg(format!("--config-settings={setting}"));
    }
    let result = request.runner.run(&step).await?;
    expect_success(
        result,
        "the extension failed to build against the TSan interpreter",
    )?;
    let wheel = fs::read_dir(out_dir.join("wheel"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "whl"))
        .context("pip reported success but left no wheel")?;
    let dir = cache_dir(key);
    fs::create_dir_all(&dir)?;
    let cached_wheel = dir.join(wheel.file_name().unwrap_or_default());
    fs::copy(&wheel, &cached_wheel)?;
    let built = BuiltWheel {
        wheel: cached_wheel,
        compiled_in: request.source.root.clone(),
        cached: false,
    };
    fs::write(
        dir.join("build.json"),
        serde_json::to_string_pretty(&built)?,
    )?;
    Ok(built)
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
