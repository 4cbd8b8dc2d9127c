//! Result types of clustering: root causes with counts, call paths and origins.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::internal::InternalReason;
use crate::model::{AccessKind, Frame, Report, ReportKind, ReportSource, StackRole};
use crate::origin::Origin;

/// Everything triage found in a set of logs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Triage {
    /// Root causes that are the extension's (at least one of their reports is), most
    /// frequent first, ties by id.
    pub root_causes: Vec<RootCause>,
    /// Root causes that are not the extension's, each with [`RootCause::internal`] saying
    /// why, kept apart in the same order.
    pub interpreter_noise: Vec<RootCause>,
    pub stats: TriageStats,
}

/// Counts over all the input.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TriageStats {
    pub files: u64,
    pub bytes: u64,
    pub reports: u64,
    /// Reports cut before their closing line (kept, marked `complete: false`).
    pub partial_reports: u64,
    /// Deadly-signal reports (SEGV and friends).
    pub crashes: u64,
    /// Sum of the `ThreadSanitizer: reported N warnings` trailers found.
    pub warnings_reported: u64,
    /// Files that could not be read, with the reason; their readable part is kept.
    pub unreadable: Vec<UnreadableFile>,
    /// Lines where TSan itself failed (`CHECK failed`, `FATAL:`): that run is not to be
    /// trusted. Sorted by file.
    #[serde(default)]
    pub runtime_errors: Vec<RuntimeError>,
}

/// A line where the TSan runtime reported its own failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeError {
    pub file: PathBuf,
    pub error: String,
}

/// A log file that failed part way (or entirely).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnreadableFile {
    pub file: PathBuf,
    pub error: String,
}

/// One root cause: all reports that share kind, the nearest extension frame of each side and
/// the racy location.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RootCause {
    /// Stable id (`tsan-` + 16 hex digits) from the cluster key: the same bug gets the same id
    /// across runs, machines and addresses.
    pub id: String,
    pub kind: ReportKind,
    /// Number of reports.
    pub count: u64,
    /// One side per access (races) or per stack (other kinds), in key order.
    pub sides: Vec<Side>,
    /// The racy variable: a global's name, or the heap block (allocation site and offset).
    pub variable: Option<String>,
    /// The location part of the key: `global:NAME`, `heap:FUNCTION@FILE:LINE`, `stack`, `tls`,
    /// `fd`, or none.
    pub location_key: Option<String>,
    /// Distinct call paths seen, at most [`crate::ClusterOptions::max_call_paths`], smallest first.
    pub call_paths: Vec<CallPath>,
    /// How many distinct call paths were seen in all (may exceed `call_paths.len()`).
    pub distinct_call_paths: u64,
    /// Which tests or scenarios produced it (the reports' `origin`), with counts, by name.
    pub origins: Vec<OriginCount>,
    /// Reports without an origin.
    pub unattributed: u64,
    /// Processes it was seen in (at most [`crate::ClusterOptions::max_pids`], smallest first).
    pub pids: Vec<u32>,
    /// The report with the smallest source (file, offset): same input, same representative.
    pub representative: Report,
    /// Why it is not the extension's (then it is listed in [`Triage::interpreter_noise`]);
    /// `None` for the extension's root causes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal: Option<InternalReason>,
}

/// One side of a root cause: what the access or stack was and where extension code did it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Side {
    pub role: StackRole,
    /// For access sides: the access kinds seen on this side across the cluster.
    pub access_kinds: Vec<AccessKind>,
    /// The frame nearest the top that belongs to the extension; `None` if the stack has none.
    pub frame: Option<Frame>,
    /// The innermost frame outside the TSan runtime (what was called: `PyDict_SetItem`,
    /// `malloc`, …), when it differs from `frame`.
    pub top_frame: Option<Frame>,
}

/// One distinct path: for each side, its frames (innermost first, runtime frames dropped,
/// at most [`crate::ClusterOptions::call_path_depth`]) as `function file:line`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CallPath {
    pub sides: Vec<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OriginCount {
    pub origin: Origin,
    pub count: u64,
}

impl Triage {
    pub fn is_clean(&self) -> bool {
        self.root_causes.is_empty()
    }
}

impl RootCause {
    /// Every report source the representative came from (for linking back to logs).
    pub fn representative_source(&self) -> &ReportSource {
        &self.representative.source
    }
}
