//! `ftreview build-python`: build (once, cached) and verify a ThreadSanitizer-instrumented
//! free-threaded CPython.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use ftreview_toolchain::{ensure_interpreter, BuildRequest, Compiler, CompilerChoice, SourceSpec};

use crate::exit::Outcome;

#[derive(Debug, Args)]
#[command(
    after_help = "Prints the interpreter's path on stdout (progress and the source and checksum \
used go to stderr); logs stay in the cache under logs/.

Examples:
  ftreview build-python                                  # newest pinned series, python.org or Debian
  ftreview build-python --version 3.13 --source debian --cc clang
  ftreview build-python --source ~/src/cpython          # a local checkout or tarball
  ftreview build-python --source https://example.org/Python-3.14.0.tar.xz --sha256 <hex>"
)]
pub struct BuildPythonArgs {
    /// CPython version: `3.13` (the newest 3.13.x the source offers; a cached 3.13.x is
    /// reused) or an exact `3.13.5`. Default: the series of the newest pinned release.
    #[arg(long)]
    pub version: Option<String>,

    /// Where the sources come from: `auto` (python.org, or Debian's source package when
    /// python.org is unreachable or has no pinned checksum for the version), `python.org`,
    /// `debian`, a URL, a tarball, or a CPython source directory. FTREVIEW_PYTHON_ORG_URL
    /// points python.org downloads at a mirror.
    #[arg(long, default_value = "auto")]
    pub source: SourceSpec,

    /// Expected SHA-256 of a URL or local tarball (python.org tarballs are checked against
    /// the checksums pinned in ftreview).
    #[arg(long)]
    pub sha256: Option<String>,

    /// Compiler for the interpreter and every extension built for it. `auto` picks clang
    /// when it has a TSan runtime and llvm-symbolizer (faster build, column numbers), else gcc.
    #[arg(long, value_enum, default_value_t = CcArg::Auto)]
    pub cc: CcArg,

    /// Parallel make jobs (default: all cores).
    #[arg(long, short = 'j')]
    pub jobs: Option<usize>,

    /// Rebuild even if a valid cached build exists.
    #[arg(long)]
    pub force: bool,

    /// Cache directory (default: $FTREVIEW_CACHE_DIR, else ~/.cache/ftreview).
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CcArg {
    Auto,
    Gcc,
    Clang,
}

impl CcArg {
    pub fn choice(self) -> CompilerChoice {
        match self {
            CcArg::Auto => CompilerChoice::Auto,
            CcArg::Gcc => CompilerChoice::Exactly(Compiler::Gcc),
            CcArg::Clang => CompilerChoice::Exactly(Compiler::Clang),
        }
    }

    /// The compiler to filter cached interpreters by (`auto` = any).
    pub fn family(self) -> Option<Compiler> {
        match self {
            CcArg::Auto => None,
            CcArg::Gcc => Some(Compiler::Gcc),
            CcArg::Clang => Some(Compiler::Clang),
        }
    }
}

pub fn run(args: BuildPythonArgs) -> anyhow::Result<Outcome> {
    let request = BuildRequest {
        version: args.version,
        source: args.source,
        sha256: args.sha256,
        compiler: args.cc.choice(),
        python_org_mirror: None,
        jobs: args.jobs,
        force: args.force,
        cache_dir: args
            .cache_dir
            .unwrap_or_else(ftreview_toolchain::default_cache_dir),
    };
    let interpreter =
        ensure_interpreter(&request, &crate::events::Display::stderr(false).toolchain())?;
    if interpreter.needs_setarch {
        eprintln!(
            "note: this machine's ASLR entropy is too high for TSan; ftreview runs the \
             interpreter under `setarch -R` (do the same when running it by hand)"
        );
    }
    println!("{}", interpreter.python.display());
    Ok(Outcome::Clean)
}
