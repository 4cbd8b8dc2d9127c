//! How a run reads TSan reports once the extension is installed: `<null>` frames symbolized
//! from the modules' DWARF, and, for a reused build, frames pointed from the tree it was
//! compiled in to this run's identical copy of the sources.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tsan_parse::{Classifier, Report, Symbolizer};

#[derive(Clone)]
pub(crate) struct ReportReader {
    pub classifier: Classifier,
    symbolizer: Arc<Symbolizer>,
    /// (the tree a reused build was compiled in, this run's copy)
    remap: Option<(PathBuf, PathBuf)>,
}

impl ReportReader {
    pub fn new(
        classifier: Classifier,
        symbolizer: Symbolizer,
        remap: Option<(PathBuf, PathBuf)>,
    ) -> ReportReader {
        ReportReader {
            classifier,
            symbolizer: Arc::new(symbolizer),
            remap,
        }
    }

    pub fn prepare(&self, report: &mut Report) {
        self.symbolizer.symbolize_report(report);
        let Some((compiled_in, here)) = &self.remap else {
            return;
        };
        for stack in report.all_stacks_mut() {
            for frame in &mut stack.frames {
                let moved = frame
                    .file
                    .as_deref()
                    .and_then(|f| Path::new(f).strip_prefix(compiled_in).ok())
                    .map(|rest| here.join(rest).display().to_string().into());
                if moved.is_some() {
                    frame.file = moved;
                }
            }
        }
    }
}
