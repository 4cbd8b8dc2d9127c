//! ThreadSanitizer report grammar, symbolization and root-cause clustering.
//!
//! The pipeline: [`parse_reader`] (or [`parse_paths`] over many `tsan.<pid>` files in
//! parallel) yields [`Report`]s; the caller sets each report's `origin`; a [`Symbolizer`]
//! fills `<null>` frames from the modules' DWARF; a [`Classifier`] marks each frame's
//! [`FrameOrigin`]; a [`Clusterer`] folds reports into [`RootCause`]s and returns a
//! [`Triage`]. [`triage_paths`] runs the whole pipeline; [`suppression_entries`] turns
//! accepted root causes into `race_top:` lines.

mod classify;
mod cluster;
mod files;
mod lines;
mod model;
mod origin;
mod parser;
mod suppress;
mod symbolize;
mod triage;

pub use classify::Classifier;
pub use cluster::{Added, ClusterOptions, Clusterer};
pub use files::{
    cluster, expand_inputs, parse_file, parse_paths, record_file, triage_paths, FileSummary,
    OriginFn, TriageOptions,
};
pub use model::*;
pub use origin::{Origin, Phase};
pub use parser::{parse_reader, parse_str, ReportReader, MAX_LINE, MAX_RUNTIME_ERRORS};
pub use suppress::suppression_entries;
pub use symbolize::Symbolizer;
pub use triage::*;
