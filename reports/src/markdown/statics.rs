//! Static findings by status, and the interpreter-internal reports kept apart.

use super::*;

pub(super) fn static_findings(out: &mut String, a: &Analysis) {
    out.push_str("## Static findings\n\n");
    if a.run.static_scan.is_none() {
        out.push_str("The static pass did not run.\n\n");
        return;
    }
    let sections = [
        (StaticStatus::Confirmed, "Confirmed at run time", "A race report (or the GIL check) shows the hazard happening."),
        (StaticStatus::NotReproduced, "Not reproduced", "The code ran concurrently and TSan saw no race: lower priority, but not proof of safety."),
        (StaticStatus::NotExercised, "Not exercised", "The code never ran concurrently: no evidence either way; add a test or scenario that calls it from several threads."),
    ];
    for (status, title, meaning) in sections {
        let findings: Vec<&Finding> = a
            .results
            .findings
            .iter()
            .filter(|f| f.status == Some(status))
            .collect();
        let _ = writeln!(out, "### {title} ({})\n", findings.len());
        if findings.is_empty() {
            continue;
        }
        let _ = writeln!(
            out,
            "{meaning} The fix of each is in the migration plan below.\n"
        );
        out.push_str("| ID | Rule | Where | What | Fix |\n|---|---|---|---|---|\n");
        for f in findings.iter().take(MAX_STATIC_ROWS) {
            let fix = match status {
                StaticStatus::Confirmed if f.related.is_empty() => {
                    format!("{} (confirmed by the import check)", f.fix.kind.label())
                }
                StaticStatus::Confirmed => {
                    format!("{} (see {})", f.fix.kind.label(), id_list(&f.related))
                }
                _ => f.fix.kind.label().to_string(),
            };
            let _ = writeln!(
                out,
                "| `{}` | {} ({}) | {} | {} | {} |",
                f.id,
                f.rule,
                f.severity.label(),
                cell(&location_text(f)),
                cell(&f.title),
                cell(&fix)
            );
        }
        if findings.len() > MAX_STATIC_ROWS {
            let _ = writeln!(
                out,
                "\n{} more (less severe) in `results.json`.",
                findings.len() - MAX_STATIC_ROWS
            );
        }
        out.push('\n');
    }
    let protected = a.results.counts.static_protected;
    if protected > 0 {
        let _ = writeln!(out, "The pass also recognized protection (critical sections, locks, atomics, thread-locals) at {protected} site(s); they are listed in `results.json` with status `protected`.\n");
    }
}

pub(super) fn location_text(f: &Finding) -> String {
    f.locations
        .first()
        .map(|l| match &l.function {
            Some(function) => format!("`{}` in `{function}`", l.display()),
            None => format!("`{}`", l.display()),
        })
        .unwrap_or_default()
}

pub(super) fn interpreter_noise(out: &mut String, a: &Analysis) {
    out.push_str("## Interpreter-internal reports\n\n");
    let noise = &a.results.interpreter_noise;
    if noise.is_empty() {
        out.push_str("None.\n\n");
        return;
    }
    out.push_str("No access of these reports is the extension's: each is CPython's own machinery (or a `race_top:` suppression of the run matched it past inlined header helpers). They are not the extension's to fix; check a newer interpreter or report them upstream.\n\n");
    out.push_str("| ID | Kind | Reports | Why | Frames | Seen in |\n|---|---|--:|---|---|---|\n");
    for n in noise {
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {} | {} |",
            n.id,
            cell(&n.kind),
            n.count,
            cell(&n.reason),
            cell(
                &n.frames
                    .iter()
                    .map(|f| format!("`{f}`"))
                    .collect::<Vec<_>>()
                    .join("<br>")
            ),
            cell(
                &n.origins
                    .iter()
                    .map(|o| o.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        );
    }
    out.push('\n');
}
