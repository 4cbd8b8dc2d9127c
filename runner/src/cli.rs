//! Command-line arguments. Each subcommand's arguments live in one struct so the command
//! module that implements it takes exactly what it needs.

use clap::{Parser, Subcommand};

use crate::commands::{
    build_python::BuildPythonArgs, corpus::CorpusArgs, doctor::DoctorArgs, python::PythonArgs,
    report::ReportArgs, repro::ReproArgs, run::RunArgs, scan::ScanArgs, triage::TriageArgs,
    verify::VerifyArgs,
};

#[derive(Debug, Parser)]
#[command(name = "ftreview", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build (once, cached) and verify a ThreadSanitizer-instrumented free-threaded CPython.
    BuildPython(BuildPythonArgs),
    /// Inspect the cached interpreters.
    Python(PythonArgs),
    /// Check this machine: compilers, symbolizer, ASLR, cache.
    Doctor(DoctorArgs),
    /// Build an extension with TSan, run its tests and stress scenarios, and write a migration plan.
    Run(RunArgs),
    /// Static pass only: find free-threading hazards in C sources (no interpreter needed).
    Scan(ScanArgs),
    /// Cluster ThreadSanitizer logs you already have into root causes.
    Triage(TriageArgs),
    /// Rebuild the Markdown plan, JSON and SARIF from a run directory.
    Report(ReportArgs),
    /// Rerun a kept reproducer script K times and say how often it reproduces.
    Repro(ReproArgs),
    /// Rerun each problem's reproducer on the run's build and on a patched one: fixed or not.
    Verify(VerifyArgs),
    /// Review a list of extensions in shards (CI matrix jobs, pods) and merge the results.
    Corpus(CorpusArgs),
}
