//! The kept source tree: maps the paths TSan and the static pass print to files under it,
//! and reads the lines the plan shows.
//!
//! Paths in reports are whatever the compiler saw: a build directory, pip's temp dir, another
//! machine's checkout. A path is resolved by its longest suffix that exists under the tree.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

/// Lines shown above and below a source line.
const CONTEXT_LINES: u32 = 2;

pub struct SourceTree {
    root: PathBuf,
    /// Resolved files by printed path: the lookup stats the file system, and races and
    /// findings name the same few files over and over.
    resolved: RefCell<HashMap<String, Option<PathBuf>>>,
    /// File contents by resolved path; `None` when unreadable.
    cache: RefCell<HashMap<PathBuf, Option<Vec<String>>>>,
}

/// A few numbered lines around a line of interest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snippet {
    pub first_line: u32,
    pub lines: Vec<String>,
    pub focus: u32,
}

impl SourceTree {
    pub fn new(root: &Path) -> SourceTree {
        SourceTree {
            root: root.to_path_buf(),
            resolved: RefCell::new(HashMap::new()),
            cache: RefCell::new(HashMap::new()),
        }
    }

    /// The file under the tree that `printed` refers to.
    pub fn resolve(&self, printed: &str) -> Option<PathBuf> {
        if let Some(known) = self.resolved.borrow().get(printed) {
            return known.clone();
        }
        let found = self.lookup(printed);
        self.resolved
            .borrow_mut()
            .insert(printed.to_string(), found.clone());
        found
    }

    fn lookup(&self, printed: &str) -> Option<PathBuf> {
        let path = Path::new(printed);
        if path.is_absolute() && path.starts_with(&self.root) && path.is_file() {
            return Some(path.to_path_buf());
        }
        let parts: Vec<&std::ffi::OsStr> = path
            .components()
            .filter_map(|c| match c {
                Component::Normal(part) => Some(part),
                _ => None,
            })
            .collect();
        (0..parts.len())
            .map(|skip| parts[skip..].iter().collect::<PathBuf>())
            .map(|suffix| self.root.join(suffix))
            .find(|candidate| candidate.is_file())
    }

    /// `printed` relative to the tree when it resolves there, else as printed.
    pub fn display(&self, printed: &str) -> String {
        self.resolve(printed)
            .and_then(|p| p.strip_prefix(&self.root).ok().map(Path::to_path_buf))
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| printed.to_string())
    }

    /// One line's text (1-based), trimmed of trailing whitespace.
    pub fn line(&self, printed: &str, line: u32) -> Option<String> {
        self.with_lines(printed, |lines| {
            lines
                .get(line.checked_sub(1)? as usize)
                .map(|l| l.trim_end().to_string())
        })
    }

    /// `line` with a few lines of context.
    pub fn snippet(&self, printed: &str, line: u32) -> Option<Snippet> {
        self.with_lines(printed, |lines| {
            let index = line.checked_sub(1)? as usize;
            if index >= lines.len() {
                return None;
            }
            let first = line.saturating_sub(CONTEXT_LINES).max(1);
            let last = (line + CONTEXT_LINES).min(lines.len() as u32);
            Some(Snippet {
                first_line: first,
                lines: lines[first as usize - 1..last as usize]
                    .iter()
                    .map(|l| l.trim_end().to_string())
                    .collect(),
                focus: line,
            })
        })
    }

    fn with_lines<T>(&self, printed: &str, read: impl FnOnce(&[String]) -> Option<T>) -> Option<T> {
        let path = self.resolve(printed)?;
        let mut cache = self.cache.borrow_mut();
        let lines = cache.entry(path.clone()).or_insert_with(|| {
            std::fs::read(&path).ok().map(|bytes| {
                String::from_utf8_lossy(&bytes)
                    .lines()
                    .map(str::to_string)
                    .collect()
            })
        });
        read(lines.as_deref()?)
    }
}

impl Snippet {
    /// Numbered lines, the focus line marked with `>`.
    pub fn render(&self) -> String {
        let width = (self.first_line as usize + self.lines.len() - 1)
            .to_string()
            .len();
        self.lines
            .iter()
            .enumerate()
            .map(|(i, text)| {
                let number = self.first_line + i as u32;
                let mark = if number == self.focus { '>' } else { ' ' };
                format!("{mark} {number:>width$} | {text}")
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_foreign_build_paths_by_suffix() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("pkg/lib")).unwrap();
        std::fs::write(
            dir.path().join("pkg/lib/a.h"),
            "one\ntwo\nthree\nfour\nfive\nsix\n",
        )
        .unwrap();
        let tree = SourceTree::new(dir.path());
        let printed = "/tmp/pip-req-build-x1/pkg/lib/a.h";
        assert_eq!(tree.display(printed), "pkg/lib/a.h");
        assert_eq!(tree.line(printed, 2).as_deref(), Some("two"));
        let snippet = tree.snippet(printed, 5).unwrap();
        assert_eq!((snippet.first_line, snippet.lines.len()), (3, 4));
        assert!(snippet.render().contains("> 5 | five"));
        assert_eq!(tree.display("/elsewhere/missing.c"), "/elsewhere/missing.c");
        assert_eq!(tree.line(printed, 99), None);
    }
}
