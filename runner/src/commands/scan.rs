//! `ftreview scan PATH...`: the static pass alone (no interpreter needed). Prints findings
//! ruff-style (or JSON) and exits 1 when any finding reaches `--min-severity`.

use std::fmt::Write as _;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use ftreview_static::{scan_paths, GilState, ScanOptions, ScanReport, Severity};

use crate::exit::Outcome;

#[derive(Debug, Args)]
pub struct ScanArgs {
    /// C files or directories holding an extension's sources (`.c`, `.h`, `clinic/*.c.h`).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Print the whole report as JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Show (and fail on) findings at or above this severity.
    #[arg(long, value_enum, default_value_t = MinSeverity::Low)]
    pub min_severity: MinSeverity,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Also scan generated C (Cython, mypyc output), skipped by default.
    #[arg(long)]
    pub include_generated: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum MinSeverity {
    Info,
    Low,
    Medium,
    High,
}

impl From<MinSeverity> for Severity {
    fn from(value: MinSeverity) -> Self {
        match value {
            MinSeverity::Info => Severity::Info,
            MinSeverity::Low => Severity::Low,
            MinSeverity::Medium => Severity::Medium,
            MinSeverity::High => Severity::High,
        }
    }
}

pub fn run(args: ScanArgs) -> anyhow::Result<Outcome> {
    let opts = ScanOptions {
        jobs: args.jobs,
        include_generated: args.include_generated,
    };
    let report = scan_paths(&args.paths, &opts)?;
    let min = Severity::from(args.min_severity);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render_text(&report, min));
    }
    if report.files.is_empty() {
        eprintln!("error: no C sources found under the given paths");
        return Ok(Outcome::HarnessError);
    }
    Ok(if report.findings_at_least(min).next().is_some() {
        Outcome::Findings
    } else {
        Outcome::Clean
    })
}

/// Files listed one by one in the summary; beyond this only the worst are.
const FILES_LISTED: usize = 15;

fn render_text(report: &ScanReport, min: Severity) -> String {
    let mut out = String::new();
    for f in report.findings_at_least(min) {
        let sev = format!("{:?}", f.severity).to_lowercase();
        let _ = writeln!(
            out,
            "{}:{}:{}: {} [{sev}] {}",
            f.file.display(),
            f.span.line,
            f.span.column,
            f.code,
            f.message
        );
        if let Some(how) = &f.protected_by {
            let _ = writeln!(out, "    protected by: {how}");
        }
        let _ = writeln!(out, "    fix: {}", f.fix);
        if !f.entry_points.is_empty() {
            let _ = writeln!(out, "    reached from: {}", f.entry_points.join(", "));
        }
    }
    out.push_str(&summary(report, min));
    out
}

fn summary(report: &ScanReport, min: Severity) -> String {
    let mut out = String::from("\n");
    let shown = report.findings_at_least(min).count();
    let count = |s: Severity| report.findings.iter().filter(|f| f.severity == s).count();
    let _ = writeln!(
        out,
        "{shown} finding(s) at or above {min:?}: {} high, {} medium, {} low, {} info",
        count(Severity::High),
        count(Severity::Medium),
        count(Severity::Low),
        count(Severity::Info)
    );
    let lines: usize = report.files.iter().map(|f| f.lines).sum();
    let _ = writeln!(
        out,
        "parse quality: {:.1}% of functions parsed without errors ({} files, {lines} lines)",
        report.parse_quality() * 100.0,
        report.files.len()
    );
    let mut files: Vec<_> = report.files.iter().collect();
    files.sort_by(|a, b| {
        a.parse_quality()
            .total_cmp(&b.parse_quality())
            .then(a.path.cmp(&b.path))
    });
    let listed = if files.len() > FILES_LISTED {
        "worst files"
    } else {
        "per file"
    };
    let _ = writeln!(out, "  {listed}:");
    for f in files.iter().take(FILES_LISTED) {
        let _ = writeln!(
            out,
            "    {:>6.1}%  {}/{} functions  {}",
            f.parse_quality() * 100.0,
            f.functions - f.functions_with_errors,
            f.functions,
            f.path.display()
        );
    }
    for s in &report.skipped {
        let _ = writeln!(out, "  skipped {}: {}", s.path.display(), s.reason);
    }
    let _ = writeln!(out, "Py_mod_gil: {}", gil_text(report.gil.state));
    for m in &report.gil.modules {
        let at = m
            .declared_at
            .as_ref()
            .map(|(p, l)| format!(" at {}:{l}", p.display()))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  module {} ({:?}): {}{at}",
            m.name,
            m.phase,
            gil_text(m.gil)
        );
    }
    out
}

fn gil_text(state: GilState) -> &'static str {
    match state {
        GilState::NotUsed => "declared (Py_MOD_GIL_NOT_USED)",
        GilState::Used => "declares it needs the GIL (Py_MOD_GIL_USED)",
        GilState::Missing => "NOT declared: the GIL is re-enabled at import",
        GilState::NoModule => "no PyInit_* function found",
    }
}
