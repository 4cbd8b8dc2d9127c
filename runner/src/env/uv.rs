//! uv installs wheels and test requirements into the TSan interpreter's venvs in seconds,
//! where pip running *under* that interpreter takes minutes. ftreview uses the `uv` on PATH or
//! a pinned release from the package index (PyPI ships uv as a binary wheel), installed once
//! into its cache and checked against the pinned SHA-256.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};

use super::venv::{cache_root, Venv};
use crate::process::Step;
use crate::target::Index;

/// The uv release ftreview installs when none is on PATH.
const PINNED_VERSION: &str = "0.13.9";

/// The pinned release's wheel for this machine, with its SHA-256 (from PyPI).
fn pinned_wheel() -> Option<(&'static str, &'static str)> {
    match std::env::consts::ARCH {
        "x86_64" => Some((
            "uv-0.13.9-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
            "d7f459fe4fd247d830351c75686d3996ace3c6f3f728eb0e85a30b7ada0cef19",
        )),
        "aarch64" => Some((
            "uv-0.13.9-py3-none-manylinux_2_17_aarch64.manylinux2014_aarch64.musllinux_1_1_aarch64.whl",
            "5435c5ce14a56431208ca0996416d310f1598e8c2c8ba707688985a16bb82dbe",
        )),
        _ => None,
    }
}

/// A usable uv binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uv {
    pub path: PathBuf,
    /// `uv 0.13.9`, as it prints itself.
    pub version: String,
}

impl Uv {
    /// uv on PATH, else the pinned release in ftreview's cache (downloaded on first use).
    pub fn locate(index: &Index) -> anyhow::Result<Uv> {
        if let Some(uv) = Uv::at(Path::new("uv")) {
            return Ok(uv);
        }
        let dest = cache_root()
            .join("tools")
            .join(format!("uv-{PINNED_VERSION}"))
            .join("uv");
        if let Some(uv) = Uv::at(&dest) {
            return Ok(uv);
        }
        install_pinned(index, &dest)?;
        Uv::at(&dest).with_context(|| format!("{} does not run", dest.display()))
    }

    fn at(path: &Path) -> Option<Uv> {
        let out = Command::new(path).arg("--version").output().ok()?;
        let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
        (out.status.success() && version.starts_with("uv ")).then(|| Uv {
            path: path.to_path_buf(),
            version: version.split(" (").next().unwrap_or(&version).to_string(),
        })
    }

    /// `uv pip install --python VENV ARGS` against the same index pip would use. uv runs the
    /// interpreter only to ask for its tags (reports off); builds of sdists run under it.
    pub fn pip_install(&self, venv: &Venv, index: &Index, label: &str, log: &Path) -> Step {
        self.pip_install_into(&venv.python, index, label, log)
    }

    /// `uv pip install --python PYTHON ARGS`, for any interpreter's environment.
    pub fn pip_install_into(&self, python: &Path, index: &Index, label: &str, log: &Path) -> Step {
        let cwd = log.parent().unwrap_or(Path::new("."));
        let mut step = Step::new(label, &self.path, cwd, log)
            .args(["pip", "install", "--python"])
            .arg(python)
            .args(["--index-url", index.base()])
            .envs(&super::quiet_env())
            .env("UV_NO_PROGRESS", "1")
            .env(
                "UV_CACHE_DIR",
                cache_root().join("uv").display().to_string(),
            );
        for links in find_links() {
            step = step.args(["--find-links", &links]);
        }
        step
    }
}

/// pip's `--find-links` directories, which uv does not read from pip's configuration.
fn find_links() -> Vec<String> {
    std::env::var("PIP_FIND_LINKS")
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

fn install_pinned(index: &Index, dest: &Path) -> anyhow::Result<()> {
    let Some((filename, sha256)) = pinned_wheel() else {
        bail!(
            "no pinned uv release for {}: put uv on PATH",
            std::env::consts::ARCH
        );
    };
    let dir = dest.parent().expect("a file inside the tools directory");
    fs::create_dir_all(dir)?;
    let mut file = index.find_file("uv", filename)?;
    // The pin, not the index, decides what runs.
    file.sha256 = sha256.to_string();
    let wheel = dir.join(filename);
    index.download(&file, &wheel)?;
    let staged = dir.join(format!("uv.{}", std::process::id()));
    extract_binary(&wheel, &staged)?;
    fs::rename(&staged, dest)?;
    let _ = fs::remove_file(&wheel);
    Ok(())
}

/// Copies `uv-X.data/scripts/uv` out of the wheel, executable.
fn extract_binary(wheel: &Path, dest: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mut zip = zip::ZipArchive::new(fs::File::open(wheel)?)
        .with_context(|| format!("{} is not a wheel", wheel.display()))?;
    let name = zip
        .file_names()
        .filter_map(|n| n.ok().map(|n| n.into_owned()))
        .find(|n| n.ends_with(".data/scripts/uv"))
        .with_context(|| format!("{} holds no uv binary", wheel.display()))?;
    let mut bytes = Vec::new();
    zip.by_name(&name)?.read_to_end(&mut bytes)?;
    fs::write(dest, bytes)?;
    fs::set_permissions(dest, fs::Permissions::from_mode(0o755))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn the_binary_comes_out_of_the_wheel_executable() {
        let dir = tempfile::tempdir().unwrap();
        let wheel = dir.path().join("uv-0-py3-none-any.whl");
        let mut zip = zip::ZipWriter::new(fs::File::create(&wheel).unwrap());
        let options = zip::write::SimpleFileOptions::default();
        zip.start_file("uv-0.data/scripts/uvx", options).unwrap();
        zip.write_all(b"other").unwrap();
        zip.start_file("uv-0.data/scripts/uv", options).unwrap();
        zip.write_all(b"#!/bin/sh\necho 'uv 0.0.1 (test)'\n")
            .unwrap();
        zip.finish().unwrap();
        let dest = dir.path().join("uv");
        extract_binary(&wheel, &dest).unwrap();
        let uv = Uv::at(&dest).unwrap();
        assert_eq!(uv.version, "uv 0.0.1");
    }
}
