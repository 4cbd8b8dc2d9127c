//! The build stage's record: declared and built modules, supplied tools, the forced retry,
//! and the build log's causes and fixes.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// How the extension was built: the tools ftreview supplied, the retry that forced the C
/// build, and why extension modules the sources declare are not in the wheel.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildRecord {
    /// Modules the sources define (`PyInit_<name>`, Cython `.pyx` files), by last dotted part.
    pub declared_modules: Vec<String>,
    /// Extension modules in the kept wheel, by last dotted part.
    pub built_modules: Vec<String>,
    /// Build tools ftreview installed because the host lacked them.
    pub supplied_tools: Vec<SuppliedTool>,
    /// The second build, with the project's own switch for requiring its C build.
    pub retry: Option<BuildRetry>,
    /// Build log lines telling why modules are missing or the build failed, in log order.
    pub causes: Vec<BuildCause>,
    /// What to change so the C part builds, most direct first.
    pub fixes: Vec<BuildFix>,
}

impl BuildRecord {
    /// Declared modules the kept wheel does not have.
    pub fn missing_modules(&self) -> Vec<&str> {
        (self.declared_modules.iter())
            .filter(|m| !self.built_modules.contains(m))
            .map(String::as_str)
            .collect()
    }
}

/// A program ftreview put on the build's `PATH` from a PyPI package in its own tools venv.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SuppliedTool {
    /// The program, e.g. `cmake`.
    pub tool: String,
    /// The PyPI package and version that provided it, e.g. `cmake 4.1.2`.
    pub package: String,
    /// Where the project uses it, e.g. `setup.py:27`.
    pub used_at: String,
}

/// The build rerun with the environment variable the setup code reads to require its C part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildRetry {
    pub variable: String,
    pub value: String,
    /// Where the setup code reads it, e.g. `setup.py:19`.
    pub read_at: String,
    /// The retry's build log, relative to the run directory.
    pub log: PathBuf,
    /// Modules the retry built (its wheel is kept when it built more than the first build).
    pub built_modules: Vec<String>,
    /// Why the retry failed, when it did (the first build's wheel is kept then).
    pub error: Option<String>,
}

/// One telling line of a build log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildCause {
    pub kind: BuildCauseKind,
    /// The log, relative to the run directory, e.g. `build/build.log`.
    pub log: PathBuf,
    /// 1-based line number in the log.
    pub line: u64,
    /// The line as logged, trimmed.
    pub text: String,
}

impl std::fmt::Display for BuildCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.log.display(), self.line, self.text)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BuildCauseKind {
    /// A compiler diagnostic at `location` (`src/m.c:10:36`).
    CompilerError {
        location: String,
    },
    MissingHeader {
        header: String,
    },
    /// A library the linker did not find (`-lNAME`).
    MissingLibrary {
        library: String,
    },
    /// A program the build ran that is not on `PATH`.
    MissingTool {
        tool: String,
    },
    /// A Python module the setup code imports that the build environment lacks.
    MissingPythonModule {
        module: String,
    },
    /// The setup code says it left the C part out (skipped, fell back to pure Python).
    SkippedExtension,
}

/// A change that makes the C part build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BuildFix {
    /// Declare the PyPI package that provides a missing program or module.
    AddBuildRequirement { package: String, provides: String },
    /// Install a program no PyPI package is known to provide.
    InstallProgram { program: String },
    /// Install the development package of a missing header or library.
    InstallDevelopmentFiles { missing: String },
    /// Make the code compile; `advice` when the error is a known free-threading one.
    FixCompileError {
        location: String,
        advice: Option<String>,
    },
    /// Set the switch the setup code reads to require its C build.
    SetEnvironment {
        variable: String,
        value: String,
        read_at: String,
    },
}

impl std::fmt::Display for BuildFix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BuildFix::AddBuildRequirement { package, provides } => write!(
                f,
                "add `{package}` (PyPI, provides `{provides}`) to `[build-system] requires` in pyproject.toml"
            ),
            BuildFix::InstallProgram { program } => {
                write!(f, "install `{program}` on the build machine (it is not on PATH)")
            }
            BuildFix::InstallDevelopmentFiles { missing } => write!(
                f,
                "install the development package that provides `{missing}` (or point the build at it)"
            ),
            BuildFix::FixCompileError { location, advice } => {
                write!(f, "make `{location}` compile on free-threaded CPython")?;
                match advice {
                    Some(advice) => write!(f, ": {advice}"),
                    None => Ok(()),
                }
            }
            BuildFix::SetEnvironment {
                variable,
                value,
                read_at,
            } => write!(
                f,
                "build with `{variable}={value}` ({read_at} reads it to require the C extension)"
            ),
        }
    }
}
