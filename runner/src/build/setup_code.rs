//! The setup code of a source tree: `setup.py`, build scripts at the root (`build.py`,
//! `hatch_build.py`, …), the local modules they import, and `setup.cfg`. The build stage reads
//! it for the programs the build runs and the switches it takes from the environment.

use std::fs;
use std::path::Path;

use regex::{Captures, Regex};

/// Files read at most: setup code imports a handful of helpers, not a package.
const MAX_FILES: usize = 20;

/// One file of setup code, by its path relative to the source root.
pub(crate) struct SetupFile {
    pub path: String,
    pub text: String,
}

pub(crate) struct SetupCode {
    pub files: Vec<SetupFile>,
}

/// A line of setup code that matched, with where it is (`setup.py:27`).
pub(crate) struct Match<'a> {
    pub at: String,
    pub line: &'a str,
    pub captures: Captures<'a>,
}

impl SetupCode {
    pub fn read(root: &Path) -> SetupCode {
        let mut queue: Vec<String> = vec!["setup.py".into(), "setup.cfg".into()];
        queue.extend(root_build_scripts(root));
        let mut files: Vec<SetupFile> = Vec::new();
        while let Some(path) = queue.pop() {
            if files.len() >= MAX_FILES || files.iter().any(|f| f.path == path) {
                continue;
            }
            let Ok(text) = fs::read_to_string(root.join(&path)) else {
                continue;
            };
            if path.ends_with(".py") {
                queue.extend(local_imports(root, &text));
            }
            files.push(SetupFile { path, text });
        }
        files.sort_by(|a, b| setup_py_first(&a.path).cmp(&setup_py_first(&b.path)));
        SetupCode { files }
    }

    /// Setup code that is just this `setup.py`.
    #[cfg(test)]
    pub fn of_setup_py(text: &str) -> SetupCode {
        SetupCode {
            files: vec![SetupFile {
                path: "setup.py".into(),
                text: text.into(),
            }],
        }
    }

    /// Every line matching `pattern`, file by file (setup.py first), in line order.
    pub fn matches<'a>(&'a self, pattern: &'a Regex) -> impl Iterator<Item = Match<'a>> + 'a {
        self.files.iter().flat_map(move |file| {
            file.text.lines().enumerate().filter_map(move |(i, line)| {
                pattern.captures(line).map(|captures| Match {
                    at: format!("{}:{}", file.path, i + 1),
                    line,
                    captures,
                })
            })
        })
    }
}

fn setup_py_first(path: &str) -> (bool, &str) {
    (path != "setup.py", path)
}

/// Python files at the root whose name says they drive the build.
fn root_build_scripts(root: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(root) else {
        return Vec::new();
    };
    let mut scripts: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| {
            name.strip_suffix(".py")
                .is_some_and(|stem| stem.contains("build") || stem.contains("setup"))
        })
        .collect();
    scripts.sort();
    scripts
}

/// Modules of the source tree that `text` imports (`import _build_helpers`,
/// `from tools.build import x`), as paths relative to the root.
fn local_imports(root: &Path, text: &str) -> Vec<String> {
    static IMPORT: std::sync::LazyLock<Regex> = std::sync::LazyLock::new(|| {
        Regex::new(r"^\s*(?:from\s+([\w.]+)\s+import|import\s+([\w.]+))").expect("valid regex")
    });
    text.lines()
        .filter_map(|line| IMPORT.captures(line))
        .filter_map(|c| c.get(1).or_else(|| c.get(2)))
        .filter_map(|module| {
            let base = module.as_str().replace('.', "/");
            [format!("{base}.py"), format!("{base}/__init__.py")]
                .into_iter()
                .find(|candidate| root.join(candidate).is_file())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_setup_py_into_the_local_modules_it_imports() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("tools")).unwrap();
        fs::write(
            root.join("setup.py"),
            "import os\nfrom tools.cmake_build import run\nimport helpers\n",
        )
        .unwrap();
        fs::write(root.join("tools/cmake_build.py"), "CMAKE = 'cmake'\n").unwrap();
        fs::write(root.join("helpers.py"), "X = 1\n").unwrap();
        fs::write(root.join("hatch_build.py"), "Y = 2\n").unwrap();
        fs::write(root.join("conftest.py"), "CMAKE = 'cmake'\n").unwrap();
        let code = SetupCode::read(root);
        let paths: Vec<&str> = code.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "setup.py",
                "hatch_build.py",
                "helpers.py",
                "tools/cmake_build.py"
            ]
        );
        let cmake = Regex::new(r"'(cmake)'").unwrap();
        let found: Vec<String> = code.matches(&cmake).map(|m| m.at).collect();
        assert_eq!(found, ["tools/cmake_build.py:1"]);
    }
}
