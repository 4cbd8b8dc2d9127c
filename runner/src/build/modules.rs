//! Which extension modules the sources define and which ones the wheel holds, by last dotted
//! part: a wheel with fewer than the sources declare dropped part of its C code.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::sync::LazyLock;

use anyhow::Context;
use regex::Regex;

/// Directories whose modules are rarely part of the wheel.
const NOT_SHIPPED: &[&str] = &[
    "test",
    "tests",
    "testing",
    "example",
    "examples",
    "doc",
    "docs",
    "bench",
    "benchmarks",
    "build",
    "dist",
    ".git",
    ".tox",
    ".nox",
    ".venv",
    "venv",
    "__pycache__",
];

const C_SOURCES: &[&str] = &["c", "cc", "cpp", "cxx", "c++"];

/// Modules defined by the sources: `PyInit_<name>` in C and C++ files, and Cython `.pyx` files.
pub(crate) fn declared_modules(root: &Path) -> Vec<String> {
    static INIT: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"\bPyInit_(\w+)\s*\(").expect("valid regex"));
    let mut modules = BTreeSet::new();
    let walker = walkdir::WalkDir::new(root)
        .into_iter()
        .filter_entry(|e| e.depth() == 0 || !is_not_shipped(e.file_name()));
    for entry in walker.filter_map(|e| e.ok()) {
        let path = entry.path();
        let Some(ext) = path.extension().and_then(|e| e.to_str()) else {
            continue;
        };
        if ext == "pyx" {
            if let Some(stem) = path.file_stem() {
                modules.insert(stem.to_string_lossy().into_owned());
            }
        } else if C_SOURCES.contains(&ext) {
            let Ok(bytes) = fs::read(path) else { continue };
            let text = String::from_utf8_lossy(&bytes);
            modules.extend(INIT.captures_iter(&text).map(|c| c[1].to_string()));
        }
    }
    modules.into_iter().collect()
}

fn is_not_shipped(name: &std::ffi::OsStr) -> bool {
    let name = name.to_string_lossy();
    NOT_SHIPPED.contains(&name.as_ref()) || name.ends_with(".egg-info")
}

/// Extension modules in a wheel (`pkg/_speedups.cpython-313t-x86_64-linux-gnu.so` → `_speedups`).
pub(crate) fn wheel_modules(wheel: &Path) -> anyhow::Result<Vec<String>> {
    let file = fs::File::open(wheel).with_context(|| format!("cannot open {}", wheel.display()))?;
    let zip = zip::ZipArchive::new(file)
        .with_context(|| format!("{} is not a wheel (zip)", wheel.display()))?;
    let modules: BTreeSet<String> = zip
        .file_names()
        .filter_map(|name| name.ok())
        .filter_map(|name| {
            let file = name.rsplit('/').next()?;
            file.ends_with(".so")
                .then(|| file.split('.').next().unwrap_or(file).to_string())
        })
        .collect();
    Ok(modules.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn finds_init_functions_and_cython_modules_outside_tests() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for sub in ["src", "tests", "pkg"] {
            fs::create_dir_all(root.join(sub)).unwrap();
        }
        fs::write(
            root.join("src/m.c"),
            "PyMODINIT_FUNC\nPyInit__speedups(void)\n{ return 0; }\n",
        )
        .unwrap();
        fs::write(root.join("pkg/fast.pyx"), "def f(): pass\n").unwrap();
        fs::write(root.join("pkg/fast.c"), "PyInit_fast (void)").unwrap();
        fs::write(root.join("tests/t.c"), "PyInit_testonly(void)").unwrap();
        assert_eq!(declared_modules(root), ["_speedups", "fast"]);
    }

    #[test]
    fn lists_the_shared_objects_of_a_wheel() {
        let dir = tempfile::tempdir().unwrap();
        let wheel = dir.path().join("pkg-1.0-cp313-cp313t-linux_x86_64.whl");
        let mut zip = zip::ZipWriter::new(fs::File::create(&wheel).unwrap());
        let options = zip::write::SimpleFileOptions::default();
        for name in [
            "pkg/__init__.py",
            "pkg/_speedups.cpython-313t-x86_64-linux-gnu.so",
            "pkg/sub/_io.abi3.so",
        ] {
            zip.start_file(name, options).unwrap();
            zip.write_all(b"x").unwrap();
        }
        zip.finish().unwrap();
        assert_eq!(wheel_modules(&wheel).unwrap(), ["_io", "_speedups"]);
    }
}
