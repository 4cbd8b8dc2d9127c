//! The environment appendix.

use std::collections::HashMap;

use super::*;

pub(super) fn appendix(out: &mut String, a: &Analysis) {
    let run = a.run;
    out.push_str("## Appendix: environment\n\n| | |\n|---|---|\n");
    let rows = [
        ("ftreview", run.environment.ftreview_version.clone()),
        ("Host", run.environment.host.clone()),
        (
            "Python",
            format!(
                "{} (`{}`)",
                run.interpreter.version,
                run.interpreter.python.display()
            ),
        ),
        ("Interpreter sources", run.interpreter.source.clone()),
        (
            "Compiler",
            format!("{} (`CC={}`)", run.interpreter.compiler, run.interpreter.cc),
        ),
        (
            "TSAN_OPTIONS",
            format!("`{}`", run.environment.tsan_options),
        ),
        (
            "Source tree",
            format!("`{}`", run.target.source_dir.display()),
        ),
        ("TSan logs", logs_line(&run.triage.stats)),
    ];
    for (name, value) in rows {
        let _ = writeln!(out, "| {name} | {} |", cell(&value));
    }
    out.push('\n');
    if run.environment.commands.is_empty() {
        return;
    }
    out.push_str("<details><summary>Commands, in order</summary>\n\n```sh\n");
    let mut shown_of_kind: HashMap<&str, usize> = HashMap::new();
    for command in &run.environment.commands {
        let shown = shown_of_kind.entry(command_kind(command)).or_default();
        *shown += 1;
        if *shown > MAX_COMMANDS_PER_KIND {
            continue;
        }
        let env: Vec<String> = command
            .env
            .iter()
            .map(|(k, v)| format!("{k}={}", shell_quote(v)))
            .collect();
        let argv: Vec<String> = command.argv.iter().map(|a| shell_quote(a)).collect();
        let _ = writeln!(
            out,
            "# {} (in {})\n{}{}\n",
            command.label,
            command.cwd.display(),
            if env.is_empty() {
                String::new()
            } else {
                env.join(" ") + " "
            },
            argv.join(" ")
        );
    }
    let mut left: Vec<(&str, usize)> = shown_of_kind
        .into_iter()
        .filter(|(_, n)| *n > MAX_COMMANDS_PER_KIND)
        .map(|(kind, n)| (kind, n - MAX_COMMANDS_PER_KIND))
        .collect();
    left.sort();
    for (kind, n) in left {
        let _ = writeln!(out, "# … {n} more `{kind}` command(s) in commands.jsonl");
    }
    out.push_str("```\n\n</details>\n");
}

/// What a command is, for counting: its phase (`stress`, `repro`), or its label for setup steps.
fn command_kind(command: &crate::model::CommandRecord) -> &str {
    command.phase.map_or(&command.label, |phase| phase.name())
}

/// How much was read, and whether TSan itself failed anywhere (then its results are suspect).
fn logs_line(stats: &tsan_parse::TriageStats) -> String {
    let mut line = format!(
        "{} file(s), {:.1} MB, {} report(s) ({} cut short)",
        stats.files,
        stats.bytes as f64 / 1e6,
        stats.reports,
        stats.partial_reports
    );
    if !stats.runtime_errors.is_empty() {
        let first = &stats.runtime_errors[0];
        let _ = write!(
            line,
            "; **TSan failed {} time(s)**, first in `{}`: `{}`",
            stats.runtime_errors.len(),
            first.file.display(),
            first.error
        );
    }
    if !stats.unreadable.is_empty() {
        let _ = write!(
            line,
            "; {} log(s) could not be read to the end",
            stats.unreadable.len()
        );
    }
    line
}
