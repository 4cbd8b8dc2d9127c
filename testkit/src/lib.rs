//! What ftreview's end-to-end tests share (a dev-dependency of every crate, depending on none
//! of them).
//!
//! One rule for prerequisites: a test that lacks one (the TSan interpreter, a CPython source
//! tree, llvm-symbolizer, the network) skips loudly on a developer's machine and fails when
//! `FTREVIEW_REQUIRE_E2E=1` (CI, which installs all of them).

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// The variable that turns a missing prerequisite into a failure.
pub const REQUIRE_E2E: &str = "FTREVIEW_REQUIRE_E2E";

/// Whether missing prerequisites must fail (`FTREVIEW_REQUIRE_E2E=1`).
pub fn required() -> bool {
    std::env::var(REQUIRE_E2E).as_deref() == Ok("1")
}

/// `found`, or a loud skip (`None`) naming `what` is missing; a panic when required.
pub fn require<T>(what: &str, found: Option<T>) -> Option<T> {
    if found.is_none() {
        skip(what);
    }
    found
}

/// Says a prerequisite is missing: a skip, or a failure when required.
pub fn skip(what: &str) {
    assert!(!required(), "{REQUIRE_E2E}=1 but {what}");
    eprintln!("SKIPPED: {what}");
}

/// A non-empty environment variable as a path.
pub fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// The TSan free-threaded interpreter named by `FTREVIEW_PYTHON` (`.ci/run` builds one).
pub fn tsan_python() -> Option<PathBuf> {
    require(
        "FTREVIEW_PYTHON does not name a TSan free-threaded python (`ftreview build-python` builds one; `ftreview python path` prints it)",
        env_path("FTREVIEW_PYTHON").filter(|p| p.is_file()),
    )
}

/// The CPython source tree named by `FTREVIEW_CPYTHON_SRC`.
pub fn cpython_src() -> Option<PathBuf> {
    require(
        "FTREVIEW_CPYTHON_SRC does not name a CPython source tree (.ci/run unpacks one)",
        env_path("FTREVIEW_CPYTHON_SRC").filter(|p| p.join("Include").is_dir()),
    )
}

/// `llvm-symbolizer` (any version) on PATH or in /usr/lib/llvm-*/bin.
pub fn llvm_symbolizer() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .flat_map(|dir| [dir.join("llvm-symbolizer"), dir.join("llvm-symbolizer-19")]);
    let versioned = (14..=22)
        .rev()
        .map(|v| PathBuf::from(format!("/usr/lib/llvm-{v}/bin/llvm-symbolizer")));
    require(
        "no llvm-symbolizer on PATH or in /usr/lib/llvm-*/bin (.ci/install-system-deps.sh installs llvm-19)",
        on_path.chain(versioned).find(|p| p.is_file()),
    )
}

/// The workspace's `test-fixtures/` directory.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../test-fixtures")
}

/// A content hash of files and trees (paths relative to each root, and bytes, in order):
/// the key under which a shared fixture run is reused.
pub fn content_hash(roots: &[&Path]) -> String {
    let mut hasher = Sha256::new();
    for root in roots {
        hasher.update(root.display().to_string().as_bytes());
        let walk = walkdir::WalkDir::new(root)
            .sort_by_file_name()
            .into_iter()
            .filter_entry(|e| {
                let name = e.file_name().to_string_lossy();
                !(name.starts_with('.')
                    || name == "build"
                    || name == "__pycache__"
                    || name.ends_with(".egg-info"))
            });
        for entry in walk
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_file())
        {
            let relative = entry.path().strip_prefix(root).unwrap_or(entry.path());
            hasher.update(relative.display().to_string().as_bytes());
            hasher.update([0]);
            hasher.update(std::fs::read(entry.path()).unwrap_or_default());
        }
    }
    hex::encode(&hasher.finalize()[..12])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_follows_content_not_mtimes() {
        let dir = tempfile_dir();
        std::fs::write(dir.join("a.c"), "int x;").unwrap();
        let first = content_hash(&[&dir]);
        std::fs::write(dir.join("a.c"), "int x;").unwrap();
        assert_eq!(content_hash(&[&dir]), first);
        std::fs::write(dir.join("a.c"), "int y;").unwrap();
        assert_ne!(content_hash(&[&dir]), first);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("testkit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
