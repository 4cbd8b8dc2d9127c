//! ThreadSanitizer report grammar, symbolization and root-cause clustering.
//!
//! The pipeline: [`parse_reader`] (or [`parse_paths`] over many `tsan.<pid>` files in
//! parallel) yields [`Report`]s; the caller sets each report's `origin`; a [`Symbolizer`]
//! fills `<null>` frames from the modules' DWARF; a [`Classifier`] marks each frame's
//! [`FrameOrigin`]; [`Clusterer`] folds reports into [`RootCause`]s and returns a [`Triage`].
//! [`triage_paths`] runs the whole pipeline.

mod lines;
mod model;
mod parser;
mod triage;

pub use model::*;
pub use parser::{parse_reader, parse_str, ReportReader, MAX_LINE};
pub use triage::*;
