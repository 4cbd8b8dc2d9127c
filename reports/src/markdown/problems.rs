//! One section per problem, at a maintainer's grain: what is shared, who races on it (the
//! Python operations, both source lines with their code), the fix, the reproducer inline with
//! how often it reproduced, linked crashes and hangs, and the site pairs collapsed.

use super::stacks::{code_block, stacks};
use super::*;
use crate::results::{Owner, Receiver, ReproducerKind, ReproducerRef};

pub(super) fn problems(out: &mut String, a: &Analysis) {
    out.push_str("## Problems\n\n");
    let problems = findings_in(a, &[Category::Race]);
    if problems.is_empty() {
        out.push_str("ThreadSanitizer saw no race in extension code.\n\n");
        return;
    }
    let _ = writeln!(
        out,
        "{} problem(s), most severe first. Each is one piece of shared state, the operations that race on it, and one fix; every pair of racing lines TSan saw on it is listed under it.\n",
        problems.len()
    );
    for (n, problem) in problems.iter().enumerate() {
        section(out, a, n + 1, problem);
    }
}

fn section(out: &mut String, a: &Analysis, n: usize, problem: &Finding) {
    let _ = writeln!(
        out,
        "### P{n}. {} (`{}`, {})\n",
        problem.title,
        problem.id,
        problem.severity.label()
    );
    if let Some(owner) = &problem.owner {
        let _ = writeln!(
            out,
            "**Shared:** {}.\n",
            shared(owner, problem.variable.as_deref())
        );
    }
    let origins: Vec<String> = problem
        .origins
        .iter()
        .take(4)
        .map(|o| format!("`{o}`"))
        .collect();
    let more = problem.origins.len().saturating_sub(origins.len());
    let _ = writeln!(
        out,
        "**Seen:** {} site pair(s), {} report(s), from {}{}.\n",
        problem.sites.len(),
        problem.count,
        origins.join(", "),
        if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        }
    );
    if let Some(rc) = a
        .run
        .triage
        .root_causes
        .iter()
        .find(|rc| Some(&rc.id) == problem.sites.first().map(|s| &s.id))
    {
        racing_lines(out, a, rc);
        stacks(out, a, rc);
    }
    fix_paragraph(out, &problem.fix);
    if let Some(patch) = a.patches.as_ref().and_then(|p| p.of(&problem.id)) {
        crate::patches::plan_paragraph(out, &a.run.run_dir, patch);
    }
    if let Some(reproducer) = &problem.reproducer {
        reproducer_block(out, a, reproducer);
    }
    linked(out, a, problem);
    site_table(out, problem);
}

/// Both sides' lines of the problem's leading site pair, with code.
pub(super) fn racing_lines(out: &mut String, a: &Analysis, rc: &RootCause) {
    let mut shown = Vec::new();
    for (caption, stack) in super::stacks::side_stacks(rc) {
        let Some(frame) = stack
            .frames
            .iter()
            .find(|f| f.origin == FrameOrigin::Extension)
        else {
            continue;
        };
        let key = (frame.file.clone(), frame.line);
        if !shown.contains(&key) {
            shown.push(key);
            code_block(out, &a.tree, frame, &caption);
        }
    }
}

pub(super) fn shared(owner: &Owner, variable: Option<&str>) -> String {
    let fields = variable.map(|v| format!(" (`{v}`)")).unwrap_or_default();
    match owner {
        Owner::Global {
            name,
            function: Some(function),
        } => format!("the function-scope static `{name}` of `{function}`, one for the whole process"),
        Owner::Global { name, .. } => format!("the global `{name}`, one for the whole process"),
        Owner::ModuleState { .. } => format!("the module's state{fields}, shared by every thread and object"),
        Owner::Object {
            type_name,
            receiver: Receiver::SelfObject,
        } => format!("the fields of one `{type_name}` object{fields}, used by several threads at once"),
        Owner::Object {
            type_name,
            receiver: Receiver::Argument,
        } => format!("the fields of a `{type_name}` passed to another one's method{fields}, read while a third thread changes it"),
        Owner::HeapBlock {
            allocated_in,
            type_name,
        } => format!(
            "the heap block allocated in `{allocated_in}`{}{fields}",
            type_name
                .as_deref()
                .map(|t| format!(" and held by a `{t}` object"))
                .unwrap_or_default()
        ),
        Owner::LockOrder { functions } => format!("the mutexes `{}` take", functions.join("` and `")),
        Owner::Code { functions } => format!("data the code of `{}` uses{fields}", functions.join("`, `")),
    }
}

pub(super) fn reproducer_block(out: &mut String, a: &Analysis, reproducer: &ReproducerRef) {
    let rate = match reproducer.runs {
        0 => "not rerun".to_string(),
        runs => format!(
            "reproduced in {} of {runs} fresh runs under TSan",
            reproducer.reproduced
        ),
    };
    let what = match reproducer.kind {
        ReproducerKind::Small => "Reproducer",
        ReproducerKind::Scenario => "Reproducer (the generated scenario that found it)",
        ReproducerKind::Test => "Reproducer (the test that found it)",
    };
    let _ = writeln!(out, "**{what}** — {rate}:\n");
    let script = reproducer
        .script
        .as_ref()
        .filter(|_| reproducer.kind == ReproducerKind::Small)
        .and_then(|s| std::fs::read_to_string(a.run.run_dir.join(s)).ok());
    if let Some(script) = script {
        let _ = writeln!(out, "```python\n{}\n```\n", script.trim_end());
    }
    let _ = writeln!(out, "```sh\n{}\n```\n", reproducer.command);
}

/// Crashes, hangs and broken invariants seen with this problem.
fn linked(out: &mut String, a: &Analysis, problem: &Finding) {
    let events: Vec<&Finding> = a
        .results
        .findings
        .iter()
        .filter(|f| {
            matches!(
                f.category,
                Category::Crash | Category::Hang | Category::Anomaly
            )
        })
        .filter(|f| problem.related.contains(&f.id))
        .collect();
    if events.is_empty() {
        return;
    }
    out.push_str("**Seen with it** (same scenarios, its code on their stacks):\n\n");
    for event in &events {
        let _ = writeln!(out, "- {} (`{}`)", event.title, event.id);
    }
    out.push('\n');
    for event in events {
        super::events::event_dumps(out, a, event);
    }
}

fn site_table(out: &mut String, problem: &Finding) {
    let _ = writeln!(
        out,
        "<details><summary>{} site pair(s)</summary>\n\n| Site pair | Kind | Sides | Field | Reports |\n|---|---|---|---|--:|",
        problem.sites.len()
    );
    let mut sites: Vec<_> = problem.sites.iter().collect();
    sites.sort_by_key(|s| std::cmp::Reverse(s.count));
    for site in sites.iter().take(MAX_SITE_ROWS) {
        let sides: Vec<String> = site
            .locations
            .iter()
            .map(|l| match &l.function {
                Some(function) => format!("`{}` in `{function}`", l.display()),
                None => format!("`{}`", l.display()),
            })
            .collect();
        let _ = writeln!(
            out,
            "| `{}` | {} ({}) | {} | {} | {} |",
            site.id,
            cell(&site.kind),
            site.severity.label(),
            cell(&sides.join(" vs ")),
            site.variable
                .as_deref()
                .map(|v| format!("`{v}`"))
                .unwrap_or_default(),
            site.count
        );
    }
    if let Some(rest) = sites.get(MAX_SITE_ROWS..).filter(|rest| !rest.is_empty()) {
        let reports: u64 = rest.iter().map(|s| s.count).sum();
        let _ = writeln!(
            out,
            "\n… {} more site pair(s) with {reports} report(s): this problem's `sites` in `results.json`.",
            rest.len()
        );
    }
    out.push_str("\n</details>\n\n");
}

/// A problem's fix: its kind, the edit, and why (the plan and the issue body alike).
pub(super) fn fix_paragraph(out: &mut String, fix: &crate::results::Fix) {
    let _ = writeln!(
        out,
        "**Fix — {}:** {}\n\n*Why:* {}\n",
        fix.kind.label(),
        fix.action,
        fix.reason
    );
}
