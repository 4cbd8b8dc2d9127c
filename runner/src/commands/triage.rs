//! `ftreview triage`: clusters ThreadSanitizer logs a user already has (from CI, from their
//! own runs) into root causes. No interpreter or build needed.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use tsan_parse::{
    suppression_entries, triage_paths, Classifier, ClusterOptions, RootCause, Side, Suppressions,
    Symbolizer, Triage, TriageOptions,
};

use crate::exit::Outcome;

#[derive(Debug, Args)]
pub struct TriageArgs {
    /// TSan logs (`tsan.<pid>` files, CI logs, `.gz`) or directories holding them.
    #[arg(required = true, value_name = "LOG_OR_DIR")]
    pub inputs: Vec<PathBuf>,
    /// Print the triage as JSON.
    #[arg(long)]
    pub json: bool,
    /// Where the built modules are (directory searched recursively, or a file): used to
    /// symbolize frames TSan printed as `<null> <null> (mod.so+0x…)`. Repeatable.
    #[arg(long = "so-path", value_name = "DIR")]
    pub so_paths: Vec<PathBuf>,
    /// Module or source path substring that marks the extension's code, e.g. `_multidict`.
    /// Repeatable. Without it, every frame outside the interpreter, libc, the TSan runtime
    /// and system libraries counts as extension code.
    #[arg(long = "extension", value_name = "PATTERN")]
    pub extensions: Vec<String>,
    /// Also write `race_top:` suppression entries for every root cause to FILE.
    #[arg(long, value_name = "FILE")]
    pub suppressions: Option<PathBuf>,
    /// The suppressions file the logs' run gave TSan (`TSAN_OPTIONS=suppressions=…`): its
    /// `race_top:` entries are applied again past inlined CPython header helpers, which TSan
    /// compares them with, and matching reports are kept apart as interpreter-internal.
    #[arg(long, value_name = "FILE")]
    pub tsan_suppressions: Option<PathBuf>,
}

pub fn run(args: TriageArgs) -> anyhow::Result<Outcome> {
    let triage = triage_paths(&args.inputs, &options(&args)?, &|_| None)?;
    for unreadable in &triage.stats.unreadable {
        eprintln!(
            "warning: {}: {} (reports read before the failure are kept)",
            unreadable.file.display(),
            unreadable.error
        );
    }
    for failure in &triage.stats.runtime_errors {
        eprintln!(
            "warning: {}: TSan failed in that run, its reports may be incomplete: {}",
            failure.file.display(),
            failure.error
        );
    }
    if triage.stats.files > 0 && triage.stats.unreadable.len() as u64 == triage.stats.files {
        anyhow::bail!("none of the {} log files could be read", triage.stats.files);
    }
    if let Some(path) = &args.suppressions {
        let mut text = suppression_entries(&triage.root_causes).join("\n");
        text.push('\n');
        std::fs::write(path, text)
            .with_context(|| format!("cannot write suppressions to {}", path.display()))?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&triage)?);
    } else {
        print!("{}", render_text(&triage));
    }
    Ok(if triage.is_clean() {
        Outcome::Clean
    } else {
        Outcome::Findings
    })
}

fn render_text(triage: &Triage) -> String {
    let stats = &triage.stats;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} root cause{} from {} report{} in {} file{} ({:.1} MB read)",
        triage.root_causes.len(),
        plural(triage.root_causes.len() as u64),
        stats.reports,
        plural(stats.reports),
        stats.files,
        plural(stats.files),
        stats.bytes as f64 / 1e6
    );
    if stats.partial_reports > 0 || stats.crashes > 0 {
        let _ = writeln!(
            out,
            "{} partial (cut) report{}, {} crash{}",
            stats.partial_reports,
            plural(stats.partial_reports),
            stats.crashes,
            if stats.crashes == 1 { "" } else { "es" }
        );
    }
    for (index, root_cause) in triage.root_causes.iter().enumerate() {
        out.push('\n');
        render_root_cause(&mut out, index + 1, root_cause);
    }
    if !triage.interpreter_noise.is_empty() {
        let noise_reports: u64 = triage.interpreter_noise.iter().map(|r| r.count).sum();
        let _ = writeln!(
            out,
            "\nInterpreter noise: {} cluster{} ({} report{}) with no extension frame, not counted above:",
            triage.interpreter_noise.len(),
            plural(triage.interpreter_noise.len() as u64),
            noise_reports,
            plural(noise_reports)
        );
        for root_cause in &triage.interpreter_noise {
            let top = root_cause
                .sides
                .first()
                .and_then(|s| s.top_frame.as_ref().or(s.frame.as_ref()))
                .map(|f| f.describe())
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  {}  {} ×{}  {top}",
                root_cause.id, root_cause.kind, root_cause.count
            );
        }
    }
    out
}

fn render_root_cause(out: &mut String, number: usize, root_cause: &RootCause) {
    let _ = writeln!(
        out,
        "[{number}] {}  {}  ×{}",
        root_cause.id, root_cause.kind, root_cause.count
    );
    if let Some(variable) = &root_cause.variable {
        let _ = writeln!(out, "    on {variable}");
    }
    for side in &root_cause.sides {
        let _ = writeln!(out, "    {}", describe_side(side));
    }
    if !root_cause.origins.is_empty() {
        let origins: Vec<String> = root_cause
            .origins
            .iter()
            .map(|o| format!("{} ({})", o.origin, o.count))
            .collect();
        let _ = writeln!(out, "    seen in: {}", origins.join(", "));
    }
    let pids: Vec<String> = root_cause.pids.iter().map(u32::to_string).collect();
    if !pids.is_empty() {
        let _ = writeln!(out, "    pids: {}", pids.join(", "));
    }
    if root_cause.distinct_call_paths > 1 {
        let _ = writeln!(
            out,
            "    {} distinct call paths",
            root_cause.distinct_call_paths
        );
    }
    let source = root_cause.representative_source();
    let _ = writeln!(
        out,
        "    first report: {}:{}{}",
        source.file.display(),
        source.line,
        if root_cause.representative.complete {
            ""
        } else {
            " (partial)"
        }
    );
}

/// `write  record_hit programs/race_global.c:8  (in memcpy)`.
fn describe_side(side: &Side) -> String {
    let access: Vec<String> = side.access_kinds.iter().map(|k| k.to_string()).collect();
    let access = if access.is_empty() {
        String::new()
    } else {
        format!("{:<12} ", access.join("/"))
    };
    let frame = side
        .frame
        .as_ref()
        .map(|f| f.describe())
        .unwrap_or_else(|| "(no extension frame)".to_string());
    match &side.top_frame {
        Some(top) => format!("{access}{frame}  (in {})", top.describe()),
        None => format!("{access}{frame}"),
    }
}

fn plural(count: u64) -> &'static str {
    if count == 1 {
        ""
    } else {
        "s"
    }
}

fn options(args: &TriageArgs) -> anyhow::Result<TriageOptions> {
    Ok(TriageOptions {
        classifier: Classifier::new(args.extensions.clone(), Vec::new()),
        symbolizer: (!args.so_paths.is_empty()).then(|| Symbolizer::new(args.so_paths.clone())),
        cluster: ClusterOptions::default(),
        suppressions: match &args.tsan_suppressions {
            Some(path) => Suppressions::read(path)?,
            None => Suppressions::default(),
        },
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn fixture(path: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tsan-parse/tests/fixtures")
            .join(path)
    }

    fn args(inputs: Vec<PathBuf>) -> TriageArgs {
        TriageArgs {
            inputs,
            json: false,
            so_paths: Vec::new(),
            extensions: Vec::new(),
            suppressions: None,
            tsan_suppressions: None,
        }
    }

    #[test]
    fn real_logs_give_findings_and_suppressions() {
        let dir = tempfile::tempdir().unwrap();
        let suppressions = dir.path().join("tsan.supp");
        let outcome = run(TriageArgs {
            suppressions: Some(suppressions.clone()),
            ..args(vec![fixture("logs/gcc")])
        })
        .unwrap();
        assert_eq!(outcome, Outcome::Findings);
        let written = std::fs::read_to_string(suppressions).unwrap();
        assert!(
            written.lines().any(|l| l == "race_top:record_hit"),
            "{written}"
        );
    }

    #[test]
    fn a_log_without_reports_is_clean() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("tsan.1");
        std::fs::write(&log, "collected 12 items\n12 passed\n").unwrap();
        assert_eq!(run(args(vec![log])).unwrap(), Outcome::Clean);
    }

    #[test]
    fn tsan_suppressions_are_applied_again_at_triage() {
        let mut args = args(vec![fixture("logs/pyext_reuse")]);
        args.extensions = vec!["reuse.cpython".into()];
        let reasons = |args: &TriageArgs| {
            let triage = triage_paths(&args.inputs, &options(args).unwrap(), &|_| None).unwrap();
            (triage.interpreter_noise.iter())
                .map(|cause| cause.internal.clone().expect("a reason").to_string())
                .collect::<Vec<_>>()
        };
        let unsuppressed = reasons(&args);
        assert!(!unsuppressed.is_empty());
        assert!(
            unsuppressed.iter().all(|r| !r.contains("race_top:")),
            "{unsuppressed:?}"
        );
        args.tsan_suppressions = Some(fixture("suppressions/pyext_reuse.txt"));
        let suppressed = reasons(&args);
        assert!(
            suppressed
                .iter()
                .any(|r| r.contains("`race_top:list_get_item_ref`")),
            "{suppressed:?}"
        );
        args.tsan_suppressions = Some(PathBuf::from("/nonexistent/supp.txt"));
        let error = options(&args).unwrap_err();
        assert!(
            format!("{error:#}").contains("/nonexistent/supp.txt"),
            "{error:#}"
        );
    }

    #[test]
    fn a_missing_input_is_an_error_naming_it() {
        let error = run(args(vec![PathBuf::from("/nonexistent/tsan.42")])).unwrap_err();
        assert!(format!("{error:#}").contains("/nonexistent/tsan.42"));
    }

    #[test]
    fn text_output_names_root_causes_variables_and_sites() {
        let options = TriageOptions {
            classifier: Classifier::new(vec!["racy".into()], Vec::new()),
            ..TriageOptions::default()
        };
        let triage = triage_paths(&[fixture("logs/pyext")], &options, &|_| None).unwrap();
        let text = render_text(&triage);
        assert!(text.starts_with(&format!("{} root cause", triage.root_causes.len())));
        for cause in &triage.root_causes {
            assert!(text.contains(&cause.id), "{text}");
        }
        assert!(text.contains("on calls"), "{text}");
        assert!(text.contains("racy_bump"), "{text}");
        assert!(text.contains("racy.c:13"), "{text}");
    }
}
