//! Build tools the host lacks (CMake, Ninja, Meson), supplied from PyPI. When the setup code
//! runs one that is neither on PATH nor brought by the build requirements, ftreview installs the
//! PyPI packages into a tools venv of the host's python3 (cached; never the TSan interpreter:
//! the tools only need to run) and links just the programs wanted into the run's build
//! directory, which goes first on the build's PATH.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use ftreview_reports::model::{Phase, SuppliedTool};
use regex::Regex;

use super::setup_code::SetupCode;
use crate::env::{cache_root, expect_success, installed_versions, requirement_name, Uv};
use crate::process::{Runner, Step};
use crate::target::Index;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BuildTool {
    CMake,
    Ninja,
    Meson,
}

impl BuildTool {
    const ALL: [BuildTool; 3] = [BuildTool::CMake, BuildTool::Ninja, BuildTool::Meson];

    /// The program, which is also the name of its PyPI package.
    pub(crate) fn program(self) -> &'static str {
        match self {
            BuildTool::CMake => "cmake",
            BuildTool::Ninja => "ninja",
            BuildTool::Meson => "meson",
        }
    }

    /// Every program of its package that goes on PATH.
    fn programs(self) -> &'static [&'static str] {
        match self {
            BuildTool::CMake => &["cmake", "ctest", "cpack"],
            BuildTool::Ninja => &["ninja"],
            BuildTool::Meson => &["meson"],
        }
    }

    /// How setup code names it: the program as a quoted command word, or a library that
    /// drives it.
    fn usage(self) -> &'static str {
        match self {
            BuildTool::CMake => r#"["']cmake(?:["']|\s)|\b(?:from|import)\s+skbuild\b"#,
            BuildTool::Ninja => r#"["'](?:-G\s*)?[Nn]inja["']|["']ninja\s"#,
            BuildTool::Meson => r#"["']meson(?:["']|\s)"#,
        }
    }

    /// Build requirements that bring it (the program's package, or a backend that installs
    /// it when the host lacks it).
    fn providers(self) -> &'static [&'static str] {
        match self {
            BuildTool::CMake => &["cmake", "scikit-build-core"],
            BuildTool::Ninja => &["ninja", "scikit-build-core", "meson-python"],
            BuildTool::Meson => &["meson", "meson-python"],
        }
    }
}

/// A tool the build runs and the line of setup code that runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NeededTool {
    pub tool: BuildTool,
    pub used_at: String,
}

/// The tools the setup code runs (Meson brings Ninja, whose files it generates).
pub(crate) fn used(code: &SetupCode) -> Vec<NeededTool> {
    let mut used: Vec<NeededTool> = Vec::new();
    for tool in BuildTool::ALL {
        let usage = Regex::new(tool.usage()).expect("valid regex");
        let used_at = code.matches(&usage).next().map(|found| found.at);
        if let Some(used_at) = used_at {
            used.push(NeededTool { tool, used_at });
        }
    }
    if let Some(meson) = used.iter().find(|n| n.tool == BuildTool::Meson).cloned() {
        if !used.iter().any(|n| n.tool == BuildTool::Ninja) {
            used.push(NeededTool {
                tool: BuildTool::Ninja,
                ..meson
            });
        }
    }
    used
}

/// Whether the build requirements bring the tool.
pub(crate) fn provided(tool: BuildTool, build_requires: &[String]) -> bool {
    (build_requires.iter().map(|r| requirement_name(r)))
        .any(|r| tool.providers().contains(&r.as_str()))
}

/// Whether `program` is an executable file in one of the `PATH` directories.
pub(crate) fn on_path(program: &str, path: &OsStr) -> bool {
    std::env::split_paths(path).any(|dir| {
        fs::metadata(dir.join(program))
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

/// The tools' directory for the build's PATH, and what it holds.
pub(crate) struct Supplied {
    pub bin: PathBuf,
    pub tools: Vec<SuppliedTool>,
}

/// Links the programs of `tools` from the cached tools venv (made now if missing) into
/// `OUT_DIR/tools-bin`.
pub(crate) async fn supply(
    tools: &[NeededTool],
    out_dir: &Path,
    runner: &Runner,
) -> anyhow::Result<Supplied> {
    let venv = tools_venv(out_dir, runner).await?;
    let bin = out_dir.join("tools-bin");
    fs::create_dir_all(&bin)?;
    let versions = installed_versions(&venv);
    let mut supplied = Vec::new();
    for needed in tools {
        for program in needed.tool.programs() {
            let link = bin.join(program);
            let _ = fs::remove_file(&link);
            std::os::unix::fs::symlink(venv.join("bin").join(program), &link)
                .with_context(|| format!("cannot link {}", link.display()))?;
        }
        let package = needed.tool.program();
        supplied.push(SuppliedTool {
            tool: package.into(),
            package: match versions.iter().find(|(name, _)| name == package) {
                Some((_, version)) => format!("{package} {version}"),
                None => package.into(),
            },
            used_at: needed.used_at.clone(),
        });
    }
    Ok(Supplied {
        bin,
        tools: supplied,
    })
}

/// `CACHE/tools/build-tools`: a relocatable uv venv of the host's python3 with every
/// supplied tool, staged next to its place and moved there when complete.
async fn tools_venv(out_dir: &Path, runner: &Runner) -> anyhow::Result<PathBuf> {
    let dest = cache_root().join("tools").join("build-tools");
    let complete = |dir: &Path| {
        (BuildTool::ALL.iter().flat_map(|t| t.programs()))
            .all(|p| dir.join("bin").join(p).is_file())
    };
    if complete(&dest) {
        return Ok(dest);
    }
    let index = Index::from_pip_config();
    let uv = Uv::locate(&index).context("build tools are installed with uv")?;
    let staging = dest.with_extension(format!("staging-{}", std::process::id()));
    let _ = fs::remove_dir_all(&staging);
    let venv = Step::new(
        "tools venv",
        &uv.path,
        out_dir,
        &out_dir.join("tools-venv.log"),
    )
    .in_phase(Phase::Build)
    .args(["venv", "--relocatable", "--python", "python3"])
    .arg(&staging)
    .env("UV_PYTHON_DOWNLOADS", "never");
    expect_success(
        runner.run(&venv).await?,
        "cannot create the build tools venv with the host's python3",
    )?;
    let packages = BuildTool::ALL.map(BuildTool::program);
    let install = uv
        .pip_install_into(
            &staging.join("bin/python"),
            &index,
            "install build tools",
            &out_dir.join("tools-install.log"),
        )
        .in_phase(Phase::Build)
        .args(packages);
    expect_success(
        runner.run(&install).await?,
        "cannot install the build tools from the package index",
    )?;
    fs::create_dir_all(dest.parent().expect("a directory inside the cache"))?;
    // Another run may have published it meanwhile; either copy is complete.
    if fs::rename(&staging, &dest).is_err() {
        let _ = fs::remove_dir_all(&staging);
    }
    anyhow::ensure!(
        complete(&dest),
        "the build tools venv {} is incomplete",
        dest.display()
    );
    Ok(dest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(text: &str) -> SetupCode {
        SetupCode::of_setup_py(text)
    }

    fn tools(needed: &[NeededTool]) -> Vec<BuildTool> {
        needed.iter().map(|n| n.tool).collect()
    }

    #[test]
    fn the_cmake_fixture_runs_cmake() {
        let setup_py = include_str!("../../../test-fixtures/build_cmake_ext/setup.py");
        let used = used(&code(setup_py));
        assert_eq!(tools(&used), [BuildTool::CMake]);
        assert!(used[0].used_at.starts_with("setup.py:"));
    }

    #[test]
    fn meson_brings_ninja_and_build_requirements_bring_their_tools() {
        let text = "subprocess.run(['meson', 'setup', 'b'])\n";
        assert_eq!(
            tools(&used(&code(text))),
            [BuildTool::Meson, BuildTool::Ninja]
        );
        let meson_python = ["meson-python>=0.16".to_string()];
        assert!(provided(BuildTool::Meson, &meson_python));
        assert!(provided(BuildTool::Ninja, &meson_python));
        let cmake = "check_call(['cmake', '-G', 'Ninja', '..'])\n";
        assert_eq!(
            tools(&used(&code(cmake))),
            [BuildTool::CMake, BuildTool::Ninja]
        );
        assert!(provided(BuildTool::CMake, &["CMake>=3.20".into()]));
        assert!(!provided(BuildTool::Ninja, &["cmake>=3.20".into()]));
        let comment = "# see CMakeLists.txt\nname = 'cmakefile'\n";
        assert!(used(&code(comment)).is_empty());
    }

    #[test]
    fn finds_executables_on_a_path() {
        let dir = tempfile::tempdir().unwrap();
        let tool = dir.path().join("mytool");
        fs::write(&tool, "#!/bin/sh\n").unwrap();
        fs::write(dir.path().join("plain"), "").unwrap();
        fs::set_permissions(&tool, fs::Permissions::from_mode(0o755)).unwrap();
        let path = std::env::join_paths([Path::new("/nonexistent"), dir.path()]).unwrap();
        assert!(on_path("mytool", &path));
        assert!(!on_path("plain", &path));
        assert!(!on_path("missing", &path));
    }
}
