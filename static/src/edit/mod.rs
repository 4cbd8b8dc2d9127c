//! Suggested patches for the fixes that are mechanical: the edited C source and a unified
//! diff. An edit is made only when it is local and certain; anything else is a [`Refusal`]
//! saying why, for a maintainer to read.

mod atomic;
mod critical_section;
mod diff;

use std::fmt;
use std::ops::Range;
use std::path::PathBuf;

use tree_sitter::{Node, Tree};

pub use atomic::{atomic_patch, AtomicTarget};
pub use critical_section::critical_section_patch;

use crate::{normalize, parse};

/// One C file of the extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// Relative to the tree root; the diff names the file by it.
    pub path: PathBuf,
    pub text: String,
}

/// The edited files and what the edit does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Patch {
    pub edits: Vec<FileEdit>,
    /// One line for people: what the patch does.
    pub summary: String,
}

/// One file before and after the edit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEdit {
    pub path: PathBuf,
    pub before: String,
    pub after: String,
}

/// Why no patch was made, in words a maintainer can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal(pub String);

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refusal {}

/// A file parsed for editing. The tree is over the normalized text, which has the same byte
/// offsets as the original, so node ranges index the original text the edits apply to.
struct Parsed<'a> {
    file: &'a SourceFile,
    tree: Tree,
}

impl<'a> Parsed<'a> {
    fn new(file: &'a SourceFile) -> Result<Self, Refusal> {
        let normalized = normalize::normalize(file.text.as_bytes());
        let tree = parse::parse(&normalized)
            .map_err(|err| Refusal(format!("{}: {err:#}", file.path.display())))?;
        Ok(Parsed { file, tree })
    }

    fn parse_all(files: &'a [SourceFile]) -> Result<Vec<Self>, Refusal> {
        files.iter().map(Parsed::new).collect()
    }

    fn root(&self) -> Node<'_> {
        self.tree.root_node()
    }

    fn text(&self, node: Node) -> &'a str {
        &self.file.text[node.byte_range()]
    }

    /// `path:line` of a node, for messages.
    fn at(&self, node: Node) -> String {
        format!(
            "{}:{}",
            self.file.path.display(),
            node.start_position().row + 1
        )
    }

    fn line_ending(&self) -> &'static str {
        if self.file.text.contains("\r\n") {
            "\r\n"
        } else {
            "\n"
        }
    }
}

/// A replacement of a byte range of a text.
struct Splice {
    range: Range<usize>,
    text: String,
}

impl Splice {
    fn insert(at: usize, text: String) -> Self {
        Splice {
            range: at..at,
            text,
        }
    }
}

/// `text` with the splices applied; they must not overlap.
fn apply(text: &str, mut splices: Vec<Splice>) -> String {
    splices.sort_by_key(|s| (s.range.start, s.range.end));
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    for splice in splices {
        out.push_str(&text[copied..splice.range.start]);
        out.push_str(&splice.text);
        copied = splice.range.end;
    }
    out.push_str(&text[copied..]);
    out
}

/// The file edits of per-file splices, in file order, skipping files left alone.
fn file_edits(parsed: &[Parsed], mut splices: Vec<Vec<Splice>>) -> Vec<FileEdit> {
    parsed
        .iter()
        .zip(splices.iter_mut())
        .filter(|(_, s)| !s.is_empty())
        .map(|(p, s)| FileEdit {
            path: p.file.path.clone(),
            before: p.file.text.clone(),
            after: apply(&p.file.text, std::mem::take(s)),
        })
        .collect()
}

/// Every node under `root`, parents before children.
fn descendants(root: Node) -> impl Iterator<Item = Node> {
    let mut stack = vec![root];
    std::iter::from_fn(move || {
        let node = stack.pop()?;
        let mut cursor = node.walk();
        let children: Vec<Node> = node.children(&mut cursor).collect();
        stack.extend(children.into_iter().rev());
        Some(node)
    })
}

/// The direct children of a node, named or not.
fn children(node: Node) -> impl Iterator<Item = Node> {
    (0..node.child_count()).filter_map(move |i| node.child(i))
}

fn field<'t>(node: Node<'t>, id: std::num::NonZeroU16) -> Option<Node<'t>> {
    node.child_by_field_id(id.get())
}

/// True when `name` occurs in `text` as a whole word.
fn mentions(text: &str, name: &str) -> bool {
    let word = |c: char| c.is_alphanumeric() || c == '_';
    text.match_indices(name)
        .any(|(at, _)| !text[..at].ends_with(word) && !text[at + name.len()..].starts_with(word))
}

#[cfg(test)]
mod tests;
