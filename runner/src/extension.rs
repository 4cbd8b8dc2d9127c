//! Building the extension from the kept source tree against the TSan interpreter, caching the
//! wheel, installing it, and proving the result is instrumented.
//!
//! setuptools inherits the interpreter's `-fsanitize=thread` from sysconfig; meson-python and
//! scikit-build-core do not, so they get the sanitizer through their own settings, and every
//! backend gets the interpreter's compiler (the TSan runtimes of gcc and clang differ). Build
//! directories are kept under the run directory: debug info then points at readable files.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};
use ftreview_toolchain::Interpreter;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::process::Runner;
use crate::target::Source;
use crate::venv::{cache_root, expect_success, Venv};

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

/// A built wheel and the tree it was compiled from (which its debug info points into).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BuiltWheel {
    pub wheel: PathBuf,
    pub source_root: PathBuf,
    #[serde(default)]
    pub cached: bool,
}

/// Key of the build cache: same sources, same interpreter, same settings.
fn cache_key(source: &Source, interpreter: &Interpreter, settings: &[String]) -> String {
    let mut hasher = Sha256::new();
    for part in [
        source.sha256.as_str(),
        &interpreter.python.display().to_string(),
        &interpreter.version,
        &interpreter.cc,
    ] {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    for setting in settings {
        hasher.update(setting.as_bytes());
        hasher.update([0]);
    }
    hex::encode(&hasher.finalize()[..12])
}

fn cache_dir(key: &str) -> PathBuf {
    cache_root().join("builds").join(key)
}

/// A cached build whose source tree still exists (otherwise its debug info would point at
/// nothing and it is rebuilt).
pub fn cached_build(
    source: &Source,
    interpreter: &Interpreter,
    settings: &[String],
) -> Option<BuiltWheel> {
    let dir = cache_dir(&cache_key(source, interpreter, settings));
    let meta: BuiltWheel =
        serde_json::from_str(&fs::read_to_string(dir.join("build.json")).ok()?).ok()?;
    (meta.wheel.is_file() && meta.source_root.is_dir()).then_some(BuiltWheel {
        cached: true,
        ..meta
    })
}

/// Builds a wheel from `source.root` with `pip wheel --no-deps` and stores it in the cache.
pub async fn build_wheel(
    venv: &Venv,
    interpreter: &Interpreter,
    source: &Source,
    settings: &[String],
    key_settings: &[String],
    out_dir: &Path,
    runner: &Runner,
) -> anyhow::Result<BuiltWheel> {
    fs::create_dir_all(out_dir)?;
    let mut step = venv
        .pip("build wheel", &out_dir.join("build.log"))
        .args(["wheel", "--no-deps", "--verbose", "--wheel-dir"])
        .arg(out_dir.join("wheel"))
        .arg(&source.root)
        .envs(&compiler_env(interpreter));
    for setting in settings {
        step = step.arg(format!("--config-settings={setting}"));
    }
    let result = runner.run(&step).await?;
    expect_success(
        result,
        "the extension failed to build against the TSan interpreter",
    )?;
    let wheel = fs::read_dir(out_dir.join("wheel"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "whl"))
        .context("pip reported success but left no wheel")?;
    let dir = cache_dir(&cache_key(source, interpreter, key_settings));
    fs::create_dir_all(&dir)?;
    let cached_wheel = dir.join(wheel.file_name().unwrap_or_default());
    fs::copy(&wheel, &cached_wheel)?;
    let built = BuiltWheel {
        wheel: cached_wheel,
        source_root: source.root.clone(),
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

/// What the installed distribution contains.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Installed {
    pub name: String,
    pub version: String,
    pub extensions: Vec<ExtensionModule>,
    pub top_level: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExtensionModule {
    pub module: String,
    pub path: PathBuf,
}

/// Whether a shared object calls into the TSan runtime.
pub fn is_instrumented(path: &Path) -> anyhow::Result<bool> {
    let out = Command::new("nm")
        .args(["-D", "--undefined-only"])
        .arg(path)
        .output()
        .context("cannot run nm (binutils) to check TSan instrumentation")?;
    if !out.status.success() {
        bail!(
            "nm failed on {}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.contains("__tsan_")))
}

/// Why a build cannot yield a trustworthy "no races", if it cannot.
pub fn instrumentation_problem(
    installed: &Installed,
    instrumented: &[(PathBuf, bool)],
) -> Option<String> {
    if installed.extensions.is_empty() {
        return Some(format!(
            "{} installed no extension module: the build produced pure Python (an optional C extension that failed to compile, or a pure-Python fallback); there is nothing for TSan to check",
            installed.name
        ));
    }
    let missing: Vec<String> = instrumented
        .iter()
        .filter(|(_, ok)| !ok)
        .map(|(p, _)| p.display().to_string())
        .collect();
    (!missing.is_empty()).then(|| {
        format!(
            "extension modules built without ThreadSanitizer (no __tsan_* symbols): {}; the build backend ignored the sanitizer flags, so races in them are invisible",
            missing.join(", ")
        )
    })
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

    #[test]
    fn refuses_pure_python_and_uninstrumented_builds() {
        let mut installed = Installed {
            name: "pkg".into(),
            ..Default::default()
        };
        assert!(instrumentation_problem(&installed, &[])
            .unwrap()
            .contains("no extension module"));
        installed.extensions.push(ExtensionModule {
            module: "pkg._c".into(),
            path: "/x/_c.so".into(),
        });
        let problem = instrumentation_problem(&installed, &[("/x/_c.so".into(), false)]).unwrap();
        assert!(problem.contains("/x/_c.so"), "{problem}");
        assert!(instrumentation_problem(&installed, &[("/x/_c.so".into(), true)]).is_none());
    }

    #[test]
    fn nm_tells_instrumented_from_plain_objects() {
        // The test binary itself is not built with TSan.
        let me = std::env::current_exe().unwrap();
        assert!(!is_instrumented(&me).unwrap());
    }
}
