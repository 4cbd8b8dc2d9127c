//! The patch as a unified diff that `git apply -p1` and `patch -p1` take at the tree root.

use similar::TextDiff;

use super::{FileEdit, Patch};

/// Lines of unchanged context around each hunk, as `diff -u` and git use.
const CONTEXT_LINES: usize = 3;

impl Patch {
    /// One `--- a/<path>` / `+++ b/<path>` section per edited file.
    pub fn unified_diff(&self) -> String {
        self.edits.iter().map(FileEdit::unified_diff).collect()
    }
}

impl FileEdit {
    fn unified_diff(&self) -> String {
        let path = self.path.to_string_lossy().replace('\\', "/");
        TextDiff::from_lines(&self.before, &self.after)
            .unified_diff()
            .context_radius(CONTEXT_LINES)
            .header(&format!("a/{path}"), &format!("b/{path}"))
            .to_string()
    }
}
