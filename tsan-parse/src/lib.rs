//! ThreadSanitizer report grammar, symbolization and root-cause clustering.
//!
//! The pipeline: [`parse_reader`] (or [`parse_paths`] over many `tsan.<pid>` files in
//! parallel) yields [`Report`]s; the caller sets each report's `origin`; a [`Symbolizer`]
//! fills `<null>` frames from the modules' DWARF (and gives frames the compiler put on line 0
//! an approximate line, [`Frame::line_approximate`]); a [`Classifier`] marks each frame's
//! [`FrameOrigin`]; a [`Clusterer`] folds reports into [`RootCause`]s and returns a
//! [`Triage`]. [`triage_paths`] runs the whole pipeline; [`suppression_entries`] turns
//! accepted root causes into `race_top:` lines.
//!
//! Root causes that are not the extension's are kept apart in
//! [`Triage::interpreter_noise`], each with an [`InternalReason`]: every frame is the
//! interpreter's; a `race_top:` entry of the run's [`Suppressions`] matches an access stack's
//! [`Stack::effective_top`] (the first frame that is not a CPython header helper inlined into
//! the frame below it, which TSan itself does not skip); or every access is inside an
//! interpreter [`Mechanism`] (the allocator preparing reused memory, a speculative
//! try-incref, the GC) or is interpreter code the extension did not call. A race one of whose
//! accesses is the extension's own code or a call it made stays the extension's (an
//! interpreter function's `race_top:` entry never hides the extension's own access), and a
//! use-after-free is never put down to a mechanism.

mod classify;
mod cluster;
mod files;
mod internal;
mod lines;
mod model;
mod origin;
mod parser;
mod suppress;
mod symbolize;
mod triage;

pub use classify::{cpython_relative, Classifier};
pub use cluster::{Added, ClusterOptions, Clusterer};
pub use files::{
    cluster, expand_inputs, parse_file, parse_paths, record_file, triage_paths, FileSummary,
    OriginFn, TriageOptions,
};
pub use internal::{InternalAccess, InternalReason, Mechanism};
pub use model::*;
pub use origin::{Origin, Phase};
pub use parser::{
    parse_reader, parse_str, ReportReader, FATAL_ERROR, MAX_LINE, MAX_RUNTIME_ERRORS,
};
pub use suppress::{suppression_entries, Suppressions};
pub use symbolize::Symbolizer;
pub use triage::*;
