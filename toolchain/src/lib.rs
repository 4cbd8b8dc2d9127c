//! Builds, caches and verifies ThreadSanitizer-instrumented free-threaded CPython
//! interpreters.
//!
//! The runner needs one thing from this crate: an [`Interpreter`]. Get it from the cache
//! ([`find_cached`]), from an existing installation ([`Interpreter::from_python`]), or build
//! it ([`ensure_interpreter`], which returns a valid cached build at once).

mod archive;
mod build;
mod cache;
mod debian;
mod ensure;
mod fetch;
mod host;
mod interpreter;
mod progress;
mod source;
mod verify;
mod versions;

use std::path::PathBuf;

pub use archive::unpack as unpack_archive;
pub use cache::{
    default_cache_dir, find_cached, list_cached, load_manifest, Manifest, Verification,
};
pub use ensure::describe_source;
pub use fetch::{sha256_file, sha256_hex};
pub use host::{
    choose_compiler, mmap_rnd_bits, needs_setarch, prerequisites, setarch_prefix, symbolizer_for,
    Compiler, CompilerChoice, CompilerInfo, Prerequisite,
};
pub use interpreter::{Interpreter, SourceKind, SourceRecord};
pub use progress::{format_secs, BuildEvent, Progress};
pub use versions::{known_releases, KnownRelease};

/// Where to take CPython's sources from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SourceSpec {
    /// python.org, falling back to Debian's source package when python.org is unreachable.
    #[default]
    Auto,
    /// python.org's release tarball, checked against the pinned SHA-256 table.
    PythonOrg,
    /// Debian's source package (`apt-get source --download-only pythonX.Y`).
    Debian,
    /// A tarball to download.
    Url(String),
    /// A local tarball or an unpacked source directory.
    Path(PathBuf),
}

impl std::str::FromStr for SourceSpec {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<SourceSpec> {
        Ok(match s {
            "" => anyhow::bail!("empty --source"),
            "auto" => SourceSpec::Auto,
            "python.org" | "pythonorg" => SourceSpec::PythonOrg,
            "debian" => SourceSpec::Debian,
            url if url.starts_with("http://") || url.starts_with("https://") => {
                SourceSpec::Url(url.to_string())
            }
            path => SourceSpec::Path(PathBuf::from(path)),
        })
    }
}

/// What to build.
#[derive(Debug, Clone)]
pub struct BuildRequest {
    /// `3.13` (newest known 3.13.x), `3.13.5`, or `None` for the newest known release.
    pub version: Option<String>,
    pub source: SourceSpec,
    /// Expected SHA-256 of a URL or local tarball (python.org tarballs use the pinned table).
    pub sha256: Option<String>,
    pub compiler: CompilerChoice,
    /// Base URL of a python.org mirror (`…/ftp/python`); `None` = `$FTREVIEW_PYTHON_ORG_URL`,
    /// else python.org.
    pub python_org_mirror: Option<String>,
    /// Parallel make jobs; `None` = all available cores.
    pub jobs: Option<usize>,
    /// Rebuild even when a valid cached build exists.
    pub force: bool,
    pub cache_dir: PathBuf,
}

impl BuildRequest {
    /// A request with defaults (auto source and compiler) for the given cache.
    pub fn new(cache_dir: PathBuf) -> BuildRequest {
        BuildRequest {
            version: None,
            source: SourceSpec::Auto,
            sha256: None,
            compiler: CompilerChoice::Auto,
            python_org_mirror: None,
            jobs: None,
            force: false,
            cache_dir,
        }
    }
}

/// Returns a verified interpreter for `request`: a valid cached one at once, otherwise
/// fetches the sources, builds, verifies and publishes it atomically.
pub fn ensure_interpreter(
    request: &BuildRequest,
    progress: &Progress,
) -> anyhow::Result<Interpreter> {
    ensure::ensure_interpreter(request, progress)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_specs_parse_from_the_command_line() {
        let parse = |s: &str| s.parse::<SourceSpec>().unwrap();
        assert_eq!(parse("auto"), SourceSpec::Auto);
        assert_eq!(parse("python.org"), SourceSpec::PythonOrg);
        assert_eq!(parse("debian"), SourceSpec::Debian);
        assert_eq!(
            parse("https://h/Python-3.13.5.tar.xz"),
            SourceSpec::Url("https://h/Python-3.13.5.tar.xz".into())
        );
        assert_eq!(parse("./cpython"), SourceSpec::Path("./cpython".into()));
        assert!("".parse::<SourceSpec>().is_err());
    }
}
