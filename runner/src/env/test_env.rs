//! The test venv: the built wheel, the suite's requirements, pytest and pytest-run-parallel on
//! the TSan interpreter. Installed by uv (pip when uv is unavailable or fails, and the note
//! says so), and cached by interpreter, wheel bytes and requirements: a rerun of the same
//! version needs exactly the same environment.

use std::path::{Path, PathBuf};

use ftreview_toolchain::{sha256_file, sha256_hex, Interpreter};

use super::uv::Uv;
use super::venv::{cache_root, expect_success, Venv};
use crate::process::{Runner, StepResult};
use crate::target::{normalize, Index};

/// The install's notes, kept in the published venv so a reuse can repeat them.
const NOTES_FILE: &str = "ftreview-install-notes.txt";

/// Requirements every test venv gets after the suite's own.
const HARNESS_REQUIREMENTS: [&str; 2] = ["pytest", "pytest-run-parallel"];

/// What installs into the test venv.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Installer {
    /// uv, and pip where uv is unavailable or fails.
    Uv,
    /// pip alone, under the TSan interpreter.
    Pip,
}

/// What to build a test venv from.
pub(crate) struct TestEnvRequest<'a> {
    pub interpreter: &'a Interpreter,
    /// The build venv: its pip serves as the fallback installer.
    pub build_venv: &'a Venv,
    pub wheel: &'a Path,
    /// The suite's requirements (the harness's are added).
    pub requirements: Vec<String>,
    pub logs: &'a Path,
    pub uv: Option<&'a Uv>,
    pub index: &'a Index,
    pub runner: &'a Runner,
}

/// A test venv ready for the phases.
pub(crate) struct TestEnv {
    pub venv: Venv,
    /// Which installer did the work, and what was skipped or fell back.
    pub notes: Vec<String>,
}

/// The cached venv for this request, if one was published, with what its install noted
/// (a skipped requirement stays skipped).
pub(crate) fn cached_test_env(request: &TestEnvRequest) -> anyhow::Result<Option<TestEnv>> {
    let dir = cache_dir(&key(request)?);
    if !dir.join("bin/python").exists() {
        return Ok(None);
    }
    let mut notes = vec![format!(
        "reused the cached test venv {} (same wheel, requirements and interpreter)",
        dir.display()
    )];
    let saved = std::fs::read_to_string(dir.join(NOTES_FILE)).unwrap_or_default();
    notes.extend(saved.lines().map(str::to_string));
    Ok(Some(TestEnv {
        venv: request.build_venv.relocated(&dir),
        notes,
    }))
}

/// A fresh venv with the wheel installed, staged next to its cache place.
pub(crate) async fn install_wheel(request: &TestEnvRequest<'_>) -> anyhow::Result<TestEnv> {
    let dest = cache_dir(&key(request)?);
    let staging = dest.with_extension(format!("staging-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    let venv = Venv::create(request.interpreter, &staging, request.logs, request.runner).await?;
    let mut env = TestEnv {
        venv,
        notes: Vec::new(),
    };
    let wheel = [request.wheel.display().to_string()];
    let installed = env.install(request, "install wheel", &wheel, true).await?;
    expect_success(
        installed,
        "cannot install the built wheel (or its runtime dependencies)",
    )?;
    Ok(env)
}

/// Installs the suite's requirements and the harness's. A requirement that cannot be
/// installed (no wheel for this interpreter, fails to build) is skipped with a note: most
/// suites still run without a plugin or two. The harness's own must install.
pub(crate) async fn install_requirements(
    env: &mut TestEnv,
    request: &TestEnvRequest<'_>,
) -> anyhow::Result<()> {
    let mut wanted = request.requirements.clone();
    wanted.extend(HARNESS_REQUIREMENTS.map(String::from));
    let all = env
        .install(request, "install test requirements", &wanted, false)
        .await?;
    if all.termination.success() {
        return Ok(());
    }
    // One at a time, to tell which ones cannot install here (cheap with uv).
    let mut skipped = Vec::new();
    for requirement in &wanted {
        let one = env
            .install(
                request,
                "install one test requirement",
                std::slice::from_ref(requirement),
                false,
            )
            .await?;
        if one.termination.success() {
            continue;
        }
        if HARNESS_REQUIREMENTS.contains(&requirement_name(requirement).as_str()) {
            anyhow::bail!(
                "cannot install {requirement} for the TSan interpreter (see {})",
                one.log.display()
            );
        }
        skipped.push(requirement.clone());
    }
    if !skipped.is_empty() {
        env.notes.push(format!(
            "skipped test requirements that would not install: {}",
            skipped.join(", ")
        ));
    }
    Ok(())
}

/// Moves a staged venv to its cache place (our steps run `python -m …`, so no script's
/// shebang needs the old path). If another run published the same key first, use that one.
pub(crate) fn publish(env: TestEnv, request: &TestEnvRequest) -> anyhow::Result<TestEnv> {
    let dest = cache_dir(&key(request)?);
    std::fs::write(env.venv.root.join(NOTES_FILE), env.notes.join("\n"))?;
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent)?;
    }
    if std::fs::rename(&env.venv.root, &dest).is_err() {
        if !dest.join("bin/python").exists() {
            return Ok(env);
        }
        let _ = std::fs::remove_dir_all(&env.venv.root);
    }
    Ok(TestEnv {
        venv: env.venv.relocated(&dest),
        ..env
    })
}

impl TestEnv {
    /// One install step: uv when there is one, pip when uv is missing or failed (noted once).
    async fn install(
        &mut self,
        request: &TestEnvRequest<'_>,
        label: &str,
        packages: &[String],
        reinstall: bool,
    ) -> anyhow::Result<StepResult> {
        let log = next_log(request.logs, label);
        if let Some(uv) = request.uv {
            let mut step = uv.pip_install(&self.venv, request.index, label, &log);
            if reinstall {
                step = step.arg("--reinstall");
            }
            let result = request.runner.run(&step.args(packages.iter())).await?;
            if result.termination.success() {
                self.note_once(&format!("installed with {}", uv.version));
                return Ok(result);
            }
            self.note_once(&format!(
                "{} failed ({}), fell back to pip (see {})",
                uv.version,
                result.termination.describe(),
                log.display()
            ));
        } else {
            self.note_once("installed with pip under the TSan interpreter (slow)");
        }
        let mut step = self
            .venv
            .pip(label, &log.with_extension("pip.log"))
            .arg("install");
        if reinstall {
            step = step.arg("--force-reinstall");
        }
        request.runner.run(&step.args(packages.iter())).await
    }

    fn note_once(&mut self, note: &str) {
        if !self.notes.iter().any(|n| n == note) {
            self.notes.push(note.to_string());
        }
    }
}

/// `<label>-<n>.log`, a new file for every attempt.
fn next_log(logs: &Path, label: &str) -> PathBuf {
    let stem = label.replace(' ', "-");
    (0..)
        .map(|n| logs.join(format!("{stem}-{n}.log")))
        .find(|p| !p.exists())
        .expect("an unused log name")
}

fn key(request: &TestEnvRequest) -> anyhow::Result<String> {
    let parts = [
        request.interpreter.python.display().to_string(),
        request.interpreter.version.clone(),
        sha256_file(request.wheel)?,
        request.requirements.join("\n"),
    ];
    Ok(sha256_hex(parts.join("\0").as_bytes())[..24].to_string())
}

fn cache_dir(key: &str) -> PathBuf {
    cache_root().join("venvs").join(key)
}

/// Normalized project name of a requirement string (`pytest-cov==6.1.0; …` → `pytest-cov`).
pub(crate) fn requirement_name(requirement: &str) -> String {
    let end = requirement
        .find(|c: char| !(c.is_ascii_alphanumeric() || "-_.".contains(c)))
        .unwrap_or(requirement.len());
    normalize(&requirement[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requirement_names_are_normalized_without_versions_or_markers() {
        assert_eq!(
            requirement_name("cffi<2.0.0;python_version<\"3.14\""),
            "cffi"
        );
        assert_eq!(requirement_name("Pytest_Cov==6.1.0"), "pytest-cov");
        assert_eq!(
            requirement_name("pytest-run-parallel"),
            "pytest-run-parallel"
        );
    }
}
