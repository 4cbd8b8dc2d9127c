//! Triage of log files and directories, for benchmarks: prints what was read, how fast,
//! and the root-cause counts.
//!
//! `cargo run --release -p tsan-parse --example triage -- LOG_OR_DIR...`

use std::path::PathBuf;
use std::time::Instant;

use tsan_parse::{triage_paths, TriageOptions};

fn main() -> anyhow::Result<()> {
    let inputs: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    anyhow::ensure!(!inputs.is_empty(), "usage: triage LOG_OR_DIR...");
    let started = Instant::now();
    let triage = triage_paths(&inputs, &TriageOptions::default(), &|_| None)?;
    let seconds = started.elapsed().as_secs_f64();
    let stats = &triage.stats;
    println!(
        "files={} bytes={} reports={} partial={} root_causes={} noise={} seconds={seconds:.3} mb_per_s={:.0}",
        stats.files,
        stats.bytes,
        stats.reports,
        stats.partial_reports,
        triage.root_causes.len(),
        triage.interpreter_noise.len(),
        stats.bytes as f64 / 1e6 / seconds
    );
    Ok(())
}
