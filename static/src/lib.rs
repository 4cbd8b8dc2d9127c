//! A tree-sitter pass that finds free-threading hazards in the C sources of Python extensions.
//!
//! [`scan_paths`] walks files and directories (`.c`, `.h`, Argument Clinic `clinic/*.c.h`),
//! normalizes CPython macros tree-sitter cannot parse (keeping byte offsets), parses each file
//! once in parallel, extracts plain facts from the tree, and runs the rules over the facts of
//! all files together (so a lock taken in a clinic wrapper protects the `*_impl` it calls).
//!
//! [`critical_section_patch`] and [`atomic_patch`] turn the two mechanical fixes into edited
//! source and a unified diff, or a [`Refusal`] saying why the edit would not be certain.

mod bindings;
mod edit;
mod facts;
mod model;
mod normalize;
mod parse;
mod program;
mod rules;
mod source;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rayon::prelude::*;

pub use edit::{
    atomic_patch, critical_section_patch, AtomicTarget, FileEdit, Patch, Refusal, SourceFile,
};
pub use model::*;

use program::{Program, ScannedFile};

/// Scans C sources under `paths` (files or directories). Unreadable files are listed in
/// `skipped` and the rest still scanned; a path that does not exist is an error.
pub fn scan_paths(paths: &[PathBuf], opts: &ScanOptions) -> Result<ScanReport> {
    let files = source::discover(paths)?;
    in_pool(opts.jobs, || scan_files(paths, &files, opts))
}

fn scan_files(roots: &[PathBuf], files: &[PathBuf], opts: &ScanOptions) -> ScanReport {
    let mut scanned = Vec::new();
    let mut reports = Vec::new();
    let mut skipped = Vec::new();
    let mut seen: HashSet<PathBuf> = files.iter().filter_map(|f| f.canonicalize().ok()).collect();
    let mut batch = files.to_vec();
    // Headers the sources include from outside the scanned paths join in later rounds.
    for _ in 0..MAX_INCLUDE_ROUNDS {
        if batch.is_empty() {
            break;
        }
        let results: Vec<_> = batch
            .par_iter()
            .map(|path| scan_file(path, relative_to_roots(path, roots), opts))
            .collect();
        let mut next = Vec::new();
        for (path, result) in batch.iter().zip(results) {
            match result {
                Ok(FileOutcome::Scanned(scanned_file)) => {
                    let (mut file, report) = *scanned_file;
                    file.included = included_files(path, &file.facts.includes).collect();
                    next.extend(
                        file.included
                            .iter()
                            .filter(|p| seen.insert((*p).clone()))
                            .cloned(),
                    );
                    scanned.push(file);
                    reports.push(report);
                }
                Ok(FileOutcome::Skipped(reason)) => skipped.push(SkippedFile {
                    path: path.clone(),
                    reason,
                }),
                Err(err) => skipped.push(SkippedFile {
                    path: path.clone(),
                    reason: format!("{err:#}"),
                }),
            }
        }
        batch = next;
    }
    let program = Program::new(scanned);
    let findings = rules::run_all(&program);
    let gil = rules::gil_declaration::declaration(&program);
    ScanReport {
        files: reports,
        skipped,
        findings,
        gil,
        methods: program.bindings.methods,
        types: program.bindings.types,
    }
}

/// Parses the files with tree-sitter and nothing else: the baseline the benchmark compares
/// the whole pass against. Returns the number of lines parsed.
pub fn parse_only(paths: &[PathBuf], opts: &ScanOptions) -> Result<usize> {
    let files = source::discover(paths)?;
    let lines = in_pool(opts.jobs, || {
        files
            .par_iter()
            .map(|path| -> Result<usize> {
                let text =
                    std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
                parse::parse(&text)?;
                Ok(count_lines(&text))
            })
            .collect::<Result<Vec<usize>>>()
    })??;
    Ok(lines.iter().sum())
}

/// How many times included headers may pull in further headers.
const MAX_INCLUDE_ROUNDS: usize = 4;

/// Quoted includes of `file` that exist next to it (the compiler's first place to look).
fn included_files<'a>(
    file: &'a Path,
    includes: &'a [String],
) -> impl Iterator<Item = PathBuf> + 'a {
    let dir = file.parent().unwrap_or(Path::new("."));
    includes
        .iter()
        .map(move |include| dir.join(include))
        .filter(|path| path.is_file())
        .filter_map(|path| path.canonicalize().ok())
}

/// Worker stacks big enough for the recursive walk over deeply nested generated expressions.
const WORKER_STACK: usize = 32 << 20;

fn in_pool<T: Send>(jobs: Option<usize>, work: impl FnOnce() -> T + Send) -> Result<T> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(jobs.unwrap_or(0))
        .stack_size(WORKER_STACK)
        .build()
        .context("starting worker threads")?;
    Ok(pool.install(work))
}

enum FileOutcome {
    Scanned(Box<(ScannedFile, FileReport)>),
    Skipped(String),
}

fn scan_file(path: &Path, rel: String, opts: &ScanOptions) -> Result<FileOutcome> {
    let original =
        std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    if !opts.include_generated {
        if let Some(generator) = source::generated_by(&original) {
            return Ok(FileOutcome::Skipped(generator.to_string()));
        }
    }
    let normalized = normalize::normalize(&original);
    let tree = parse::parse(&normalized)?;
    let (functions, functions_with_errors) = parse::function_quality(tree.root_node());
    let facts = facts::extract(tree.root_node(), &normalized, &original);
    let report = FileReport {
        path: path.to_path_buf(),
        lines: count_lines(&original),
        functions,
        functions_with_errors,
    };
    let file = ScannedFile {
        path: path.to_path_buf(),
        rel,
        facts,
        canonical: path.canonicalize().ok(),
        included: Vec::new(),
    };
    Ok(FileOutcome::Scanned(Box::new((file, report))))
}

fn count_lines(text: &[u8]) -> usize {
    memchr_count(b'\n', text) + usize::from(!text.is_empty() && !text.ends_with(b"\n"))
}

fn memchr_count(needle: u8, haystack: &[u8]) -> usize {
    haystack.iter().filter(|&&b| b == needle).count()
}

/// The path below the scanned root it was found under (for ids that survive moving the tree).
fn relative_to_roots(path: &Path, roots: &[PathBuf]) -> String {
    roots
        .iter()
        .filter(|root| root.is_dir())
        .find_map(|root| path.strip_prefix(root).ok())
        .unwrap_or(path)
        .to_string_lossy()
        .replace('\\', "/")
}
