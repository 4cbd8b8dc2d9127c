//! A ThreadSanitizer-instrumented free-threaded CPython, wherever it came from: the cache
//! or any existing installation the user points at (`FTREVIEW_PYTHON`).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::host::{self, Compiler};

/// A verified TSan free-threaded interpreter, ready to build and run extensions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interpreter {
    /// The `python3.Xt` executable.
    pub python: PathBuf,
    /// `sys.prefix` of the installation.
    pub prefix: PathBuf,
    /// Full version, e.g. `3.13.5`.
    pub version: String,
    /// Compiler family the interpreter (and so every extension built for it) uses.
    pub compiler: Compiler,
    /// The exact C compiler command recorded in the interpreter's sysconfig (`CC`).
    pub cc: String,
    /// CPython's TSan suppression files that apply to a free-threaded build
    /// (`Tools/tsan/suppressions_free_threading.txt`), when known.
    pub suppressions: Vec<PathBuf>,
    /// This machine's ASLR entropy makes TSan abort unless runs use `setarch -R`.
    /// Computed for the current machine, not stored with the build.
    #[serde(skip)]
    pub needs_setarch: bool,
    /// `llvm-symbolizer` for clang's runtime (gcc's libtsan symbolizes by itself).
    pub symbolizer: Option<PathBuf>,
    /// Where the sources came from and which checksum they had.
    pub source: SourceRecord,
}

/// Provenance of an interpreter's sources.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceRecord {
    pub kind: SourceKind,
    /// URL, Debian package version, or local path.
    pub location: String,
    /// SHA-256 of the source tarball (none for a source directory or an external interpreter).
    pub sha256: Option<String>,
    /// How the checksum was checked, in words (e.g. "matches the pinned python.org checksum").
    pub checksum_note: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SourceKind {
    PythonOrg,
    Debian,
    Url,
    LocalTarball,
    LocalDir,
    /// An interpreter ftreview did not build (e.g. `FTREVIEW_PYTHON`).
    External,
}

impl std::fmt::Display for SourceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SourceKind::PythonOrg => "python.org",
            SourceKind::Debian => "debian",
            SourceKind::Url => "url",
            SourceKind::LocalTarball => "tarball",
            SourceKind::LocalDir => "source-dir",
            SourceKind::External => "external",
        })
    }
}

/// What the interpreter says about itself.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Introspection {
    pub version: String,
    pub prefix: PathBuf,
    pub gil_disabled_build: bool,
    pub gil_enabled: bool,
    pub cflags: String,
    pub cc: String,
    pub srcdir: Option<PathBuf>,
    pub include: PathBuf,
    pub ext_suffix: String,
}

const INTROSPECT: &str = r#"
import json, platform, sys, sysconfig
v = sysconfig.get_config_var
print(json.dumps({
    "version": platform.python_version(),
    "prefix": sys.prefix,
    "gil_disabled_build": bool(v("Py_GIL_DISABLED")),
    "gil_enabled": sys._is_gil_enabled() if hasattr(sys, "_is_gil_enabled") else True,
    "cflags": v("CFLAGS") or "",
    "cc": v("CC") or "",
    "srcdir": v("srcdir"),
    "include": sysconfig.get_paths()["include"],
    "ext_suffix": v("EXT_SUFFIX") or "",
}))
"#;

impl Interpreter {
    /// Inspects an existing interpreter and checks that it is free-threaded and built with
    /// `-fsanitize=thread`. A cached ftreview build keeps its recorded provenance and
    /// suppressions; for any other, the suppressions are taken from its source tree if it
    /// still exists.
    pub fn from_python(python: &Path) -> Result<Interpreter> {
        if let Some(cached) = crate::cache::entry_for_python(python) {
            return Ok(cached);
        }
        let info = introspect(python)?;
        ensure_tsan_free_threaded(&info, python)?;
        let compiler = Compiler::from_cc(&info.cc);
        let suppressions = info
            .srcdir
            .as_deref()
            .map(|src| src.join("Tools/tsan/suppressions_free_threading.txt"))
            .filter(|path| path.is_file())
            .into_iter()
            .collect();
        Ok(Interpreter {
            python: python.to_path_buf(),
            prefix: info.prefix,
            version: info.version,
            compiler,
            cc: info.cc,
            suppressions,
            needs_setarch: host::needs_setarch(),
            symbolizer: host::symbolizer_for(compiler),
            source: SourceRecord {
                kind: SourceKind::External,
                location: python.display().to_string(),
                sha256: None,
                checksum_note: "built outside ftreview".into(),
            },
        })
    }

    /// Program and arguments to put before the interpreter (or anything that loads a TSan
    /// runtime) so TSan can start on this machine: `setarch <arch> -R` when ASLR entropy is
    /// too high, nothing otherwise.
    pub fn command_prefix(&self) -> Vec<OsString> {
        if self.needs_setarch {
            host::setarch_prefix()
        } else {
            Vec::new()
        }
    }

    /// A `std::process::Command` running this interpreter with `args`, wrapped in the command
    /// prefix when needed.
    pub fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        let mut argv = self.command_prefix();
        argv.push(self.python.clone().into_os_string());
        argv.extend(args.into_iter().map(Into::into));
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]);
        cmd
    }
}

/// Runs the introspection snippet with TSan reporting off (the interpreter's own startup is
/// not what is being examined) and the GIL left at the build's default.
pub(crate) fn introspect(python: &Path) -> Result<Introspection> {
    if !python.is_file() {
        bail!("{} does not exist or is not a file", python.display());
    }
    let output = host::command(python)
        .args(["-I", "-c", INTROSPECT])
        .env("TSAN_OPTIONS", "report_bugs=0")
        .env_remove("PYTHON_GIL")
        .output()
        .with_context(|| format!("could not run {}", python.display()))?;
    if !output.status.success() {
        bail!(
            "{} failed to start ({}): {}",
            python.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line)
        .with_context(|| format!("unexpected output from {}: {stdout}", python.display()))
}

pub(crate) fn ensure_tsan_free_threaded(info: &Introspection, python: &Path) -> Result<()> {
    if !info.gil_disabled_build || info.gil_enabled {
        bail!(
            "{} (Python {}) is not a free-threaded build (sys._is_gil_enabled() is True); \
             build one with `ftreview build-python`",
            python.display(),
            info.version
        );
    }
    if !info.cflags.contains("-fsanitize=thread") {
        bail!(
            "{} (Python {}) is free-threaded but not built with ThreadSanitizer \
             (no -fsanitize=thread in CFLAGS); build one with `ftreview build-python`",
            python.display(),
            info.version
        );
    }
    Ok(())
}
