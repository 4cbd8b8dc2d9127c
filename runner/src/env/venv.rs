//! The target's virtual environment on the TSan interpreter, and pip inside it.
//!
//! pip under a TSan interpreter is slow, mostly from byte-compiling itself. So the venv is
//! created without pip, and pip runs from a shared copy in ftreview's cache (installed once from
//! the interpreter's bundled wheel, with its bytecode kept) through `PYTHONPATH`. Every pip step
//! runs with `TSAN_OPTIONS=report_bugs=0` (the interpreter races in its allocator while pip runs)
//! and `PIP_NO_COMPILE=1`.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use ftreview_toolchain::Interpreter;
use serde::de::DeserializeOwned;

use super::test_env::requirement_name;
use super::tsan::quiet_env;
use crate::process::{Runner, Step, StepResult};

/// A venv plus the pip to drive it.
#[derive(Debug, Clone)]
pub struct Venv {
    pub root: PathBuf,
    pub python: PathBuf,
    /// Directory holding the shared pip package (put on `PYTHONPATH` for pip steps only).
    pip_dir: PathBuf,
}

impl Venv {
    /// Creates `dir` as a venv of `interpreter` and makes pip available for it.
    pub async fn create(
        interpreter: &Interpreter,
        dir: &Path,
        logs: &Path,
        runner: &Runner,
    ) -> anyhow::Result<Venv> {
        let pip_dir = shared_pip(interpreter, logs, runner).await?;
        let step = Step::new(
            "create venv",
            &interpreter.python,
            logs,
            &logs.join("venv.log"),
        )
        .args(["-m", "venv", "--without-pip"])
        .arg(dir)
        .envs(&quiet_env());
        expect_success(
            runner.run(&step).await?,
            "cannot create the virtual environment",
        )?;
        Ok(Venv {
            root: dir.to_path_buf(),
            python: dir.join("bin/python"),
            pip_dir,
        })
    }

    /// The same kind of venv at another place (after it was moved there).
    pub fn relocated(&self, root: &Path) -> Venv {
        Venv {
            root: root.to_path_buf(),
            python: root.join("bin/python"),
            pip_dir: self.pip_dir.clone(),
        }
    }

    /// A pip step (`python -m pip ARGS`) with the quiet TSan environment.
    pub fn pip(&self, label: &str, log: &Path) -> Step {
        let cwd = log.parent().unwrap_or(Path::new("."));
        Step::new(label, &self.python, cwd, log)
            .args(["-m", "pip", "--disable-pip-version-check", "--no-input"])
            .envs(&quiet_env())
            .env("PIP_PROGRESS_BAR", "off")
            .env("PIP_ROOT_USER_ACTION", "ignore")
            .env("PIP_NO_COMPILE", "1")
            .env("PYTHONPATH", self.pip_dir.display().to_string())
    }

    /// Runs `python HELPER ARGS` (reports off) and parses the JSON it prints.
    pub async fn helper<T: DeserializeOwned>(
        &self,
        helper: &Path,
        args: &[&str],
        log: &Path,
        runner: &Runner,
    ) -> anyhow::Result<T> {
        let cwd = log.parent().unwrap_or(Path::new("."));
        let step = Step::new(
            format!("helper {}", args.first().unwrap_or(&"")),
            &self.python,
            cwd,
            log,
        )
        .arg(helper)
        .args(args.iter().copied())
        .envs(&quiet_env());
        helper_output(step, runner).await
    }
}

/// Runs a helper step whose stdout is one JSON document (kept next to its log as
/// `<log>.json`; stderr stays in the log) and parses it.
pub async fn helper_output<T: DeserializeOwned>(step: Step, runner: &Runner) -> anyhow::Result<T> {
    let json = step.log.with_extension("json");
    let step = step.stdout_to(&json);
    let result = runner.run(&step).await?;
    if !result.termination.success() {
        bail!(
            "`{}` failed ({}): {}",
            result.label,
            result.termination.describe(),
            result.log_tail(5)
        );
    }
    let text = fs::read_to_string(&json)?;
    serde_json::from_str(&text).with_context(|| {
        format!(
            "`{}` printed something that is not the expected JSON (see {})",
            result.label,
            json.display()
        )
    })
}

/// Turns a failed step into an error carrying the end of its log.
pub fn expect_success(result: StepResult, what: &str) -> anyhow::Result<StepResult> {
    if result.termination.success() {
        Ok(result)
    } else {
        bail!(
            "{what}: `{}` ended with {} (log: {})\n{}",
            result.label,
            result.termination.describe(),
            result.log.display(),
            result.log_tail(15)
        )
    }
}

/// The interpreter's bundled pip, installed once into ftreview's cache.
async fn shared_pip(
    interpreter: &Interpreter,
    logs: &Path,
    runner: &Runner,
) -> anyhow::Result<PathBuf> {
    let wheel = bundled_pip_wheel(&interpreter.prefix)?;
    let stem = wheel
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let dest = cache_root()
        .join("pip")
        .join(format!("{stem}-{}", interpreter.version));
    if dest.join("pip/__init__.py").is_file() {
        return Ok(dest);
    }
    let staging = dest.with_extension(format!("tmp{}", std::process::id()));
    let _ = fs::remove_dir_all(&staging);
    let step = Step::new(
        "install shared pip",
        &interpreter.python,
        logs,
        &logs.join("pip-bootstrap.log"),
    )
    .arg(wheel.join("pip"))
    .args([
        "install",
        "--no-index",
        "--quiet",
        "--disable-pip-version-check",
        "--target",
    ])
    .arg(&staging)
    .arg(&wheel)
    .envs(&quiet_env());
    expect_success(
        runner.run(&step).await?,
        "cannot install pip for the TSan interpreter",
    )?;
    // Another run may have published it meanwhile; either copy is complete.
    if fs::rename(&staging, &dest).is_err() {
        let _ = fs::remove_dir_all(&staging);
    }
    Ok(dest)
}

fn bundled_pip_wheel(prefix: &Path) -> anyhow::Result<PathBuf> {
    let lib = prefix.join("lib");
    let found = fs::read_dir(&lib)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("ensurepip/_bundled"))
        .filter_map(|dir| fs::read_dir(dir).ok())
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("pip-"))
                && p.extension().is_some_and(|e| e == "whl")
        });
    found.with_context(|| format!("the interpreter at {} has no bundled pip wheel (lib/python3.*/ensurepip/_bundled/pip-*.whl): rebuild it with ensurepip", prefix.display()))
}

/// ftreview's cache directory (shared with the interpreter cache).
pub fn cache_root() -> PathBuf {
    ftreview_toolchain::default_cache_dir()
}

/// (normalized name, version) of every distribution in a venv.
pub(crate) fn installed_versions(venv: &Path) -> Vec<(String, String)> {
    let lib = fs::read_dir(venv.join("lib")).into_iter().flatten();
    lib.filter_map(|e| e.ok())
        .filter_map(|e| fs::read_dir(e.path().join("site-packages")).ok())
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let (dist, version) = name.strip_suffix(".dist-info")?.split_once('-')?;
            Some((requirement_name(dist), version.to_string()))
        })
        .collect()
}
