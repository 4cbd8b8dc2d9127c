//! Many log files at once: directories expanded, files parsed in parallel (one file per
//! task), gzip-compressed logs read transparently.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use anyhow::Context;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::classify::Classifier;
use crate::cluster::{ClusterOptions, Clusterer};
use crate::model::{Report, ReportSource};
use crate::parser::parse_reader;
use crate::suppress::Suppressions;
use crate::symbolize::Symbolizer;
use crate::triage::{RuntimeError, Triage, UnreadableFile};

/// Read buffer per file: large enough that a read is a few syscalls per megabyte.
const READ_BUFFER: usize = 1 << 20;

/// What parsing one file gave, besides its reports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileSummary {
    pub file: PathBuf,
    pub bytes: u64,
    pub reports: u64,
    /// Sum of its `ThreadSanitizer: reported N warnings` trailers.
    pub warnings_reported: u64,
    /// TSan's own failures (see [`crate::ReportReader::runtime_errors`]).
    pub runtime_errors: Vec<String>,
    /// Why reading stopped early; the reports before the failure were delivered.
    pub error: Option<String>,
}

/// The files to read: each input file as is, each directory's files recursively (sorted).
/// Fails when an input does not exist.
pub fn expand_inputs(inputs: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for input in inputs {
        let metadata = std::fs::metadata(input).with_context(|| {
            format!(
                "cannot read log input {}: pass TSan log files or directories holding them",
                input.display()
            )
        })?;
        if metadata.is_dir() {
            for entry in walkdir::WalkDir::new(input).sort_by_file_name() {
                let entry = entry.with_context(|| format!("cannot list {}", input.display()))?;
                if entry.file_type().is_file() {
                    files.push(entry.into_path());
                }
            }
        } else {
            files.push(input.clone());
        }
    }
    Ok(files)
}

/// Parses `files` in parallel and calls `each` with every report (from several threads).
pub fn parse_paths(files: &[PathBuf], each: impl Fn(Report) + Sync + Send) -> Vec<FileSummary> {
    files
        .par_iter()
        .map(|file| parse_file(file, &mut |report| each(report)))
        .collect()
}

/// Parses one file, calling `each` with every report.
pub fn parse_file(file: &Path, each: &mut dyn FnMut(Report)) -> FileSummary {
    read_file(file, false, each)
}

/// [`parse_file`], optionally with only the parts clustering reads (see
/// [`crate::ReportReader::key_parts_only`]).
fn read_file(file: &Path, key_parts_only: bool, each: &mut dyn FnMut(Report)) -> FileSummary {
    let mut summary = FileSummary {
        file: file.to_path_buf(),
        ..FileSummary::default()
    };
    let input = match open_log(file) {
        Ok(input) => input,
        Err(error) => {
            summary.error = Some(format!("{error:#}"));
            return summary;
        }
    };
    let mut reader = parse_reader(input, file);
    if key_parts_only {
        reader = reader.key_parts_only();
    }
    for report in &mut reader {
        match report {
            Ok(report) => {
                summary.reports += 1;
                each(report);
            }
            Err(error) => summary.error = Some(format!("read error: {error}")),
        }
    }
    summary.bytes = reader.bytes_read();
    summary.warnings_reported = reader.warnings_reported();
    summary.runtime_errors = reader.runtime_errors().to_vec();
    summary
}

fn open_log(file: &Path) -> anyhow::Result<Box<dyn BufRead + Send>> {
    let opened = File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
    let input: Box<dyn Read + Send> = if file.extension().is_some_and(|e| e == "gz") {
        Box::new(flate2::read::MultiGzDecoder::new(opened))
    } else {
        Box::new(opened)
    };
    Ok(Box::new(BufReader::with_capacity(READ_BUFFER, input)))
}

/// Everything [`triage_paths`] needs besides the inputs.
#[derive(Debug, Default)]
pub struct TriageOptions {
    pub classifier: Classifier,
    /// Resolves `<null>` frames; `None` leaves them as printed.
    pub symbolizer: Option<Symbolizer>,
    pub cluster: ClusterOptions,
    /// The run's `race_top:` suppressions, applied again at triage (see
    /// [`Clusterer::with_suppressions`]).
    pub suppressions: Suppressions,
}

/// Which test or scenario produced the report read at a source (see [`Report::origin`]).
pub type OriginFn<'a> = dyn Fn(&ReportSource) -> Option<crate::Origin> + Sync + 'a;

/// The whole pipeline over log files and directories: parse in parallel, symbolize, set
/// origins, classify and cluster. Memory stays bounded by the number of root causes.
/// Reports are parsed as far as clustering needs; each root cause's representative is then
/// read again, in full, from its source.
pub fn triage_paths(
    inputs: &[PathBuf],
    options: &TriageOptions,
    origin_of: &OriginFn<'_>,
) -> anyhow::Result<Triage> {
    let files = expand_inputs(inputs)?;
    let new_clusterer = || {
        Clusterer::new(options.classifier.clone(), options.cluster)
            .with_suppressions(options.suppressions.clone())
    };
    let prepare = |report: &mut Report| {
        if let Some(symbolizer) = &options.symbolizer {
            symbolizer.symbolize_report(report);
        }
        report.origin = origin_of(&report.source);
    };
    let mut clusterer = files
        .par_iter()
        .fold(new_clusterer, |mut clusterer, file| {
            let summary = read_file(file, true, &mut |mut report| {
                prepare(&mut report);
                clusterer.add(report);
            });
            record_file(&mut clusterer, summary);
            clusterer
        })
        .reduce(new_clusterer, |mut a, b| {
            a.merge(b);
            a
        });
    for representative in clusterer.representatives_mut() {
        if let Some(mut full) = read_report_at(&representative.source) {
            prepare(&mut full);
            *representative = full;
        }
    }
    Ok(clusterer.finish())
}

/// The report that starts at `source`, parsed in full; `None` if the file changed.
fn read_report_at(source: &ReportSource) -> Option<Report> {
    let input: Box<dyn BufRead + Send> = if source.file.extension().is_some_and(|e| e == "gz") {
        let mut input = open_log(&source.file).ok()?;
        std::io::copy(
            &mut (&mut input).take(source.byte_offset),
            &mut std::io::sink(),
        )
        .ok()?;
        input
    } else {
        let mut file = File::open(&source.file).ok()?;
        file.seek(SeekFrom::Start(source.byte_offset)).ok()?;
        Box::new(BufReader::new(file))
    };
    let report = parse_reader(input, &source.file)
        .starting_at(source.byte_offset, source.line)
        .next()?
        .ok()?;
    (report.source == *source).then_some(report)
}

/// Counts a read file into the clusterer's stats (its size, trailers, TSan's own failures, and
/// why reading stopped, if it did).
pub fn record_file(clusterer: &mut Clusterer, summary: FileSummary) {
    let stats = clusterer.stats_mut();
    stats.files += 1;
    stats.bytes += summary.bytes;
    stats.warnings_reported += summary.warnings_reported;
    stats.runtime_errors.extend(
        summary
            .runtime_errors
            .into_iter()
            .map(|error| RuntimeError {
                file: summary.file.clone(),
                error,
            }),
    );
    if let Some(error) = summary.error {
        stats.unreadable.push(UnreadableFile {
            file: summary.file,
            error,
        });
    }
}

/// Clusters reports already in memory (no files involved).
pub fn cluster(
    reports: impl IntoIterator<Item = Report>,
    classifier: &Classifier,
    options: ClusterOptions,
) -> Triage {
    let mut clusterer = Clusterer::new(classifier.clone(), options);
    for report in reports {
        clusterer.add(report);
    }
    clusterer.finish()
}
