//! The Markdown migration plan, written for GitHub: a summary with the verdict, the
//! confirmed races with their code and fix, crashes and hangs, static findings by status,
//! interpreter-internal reports, a phased plan and the environment to reproduce the run.

use std::collections::BTreeMap;
use std::fmt::Write;

use tsan_parse::{Frame, FrameOrigin, Phase, RootCause, Stack};

use crate::analyze::{frame_location, phase_status_label, python_names, shell_quote, Analysis};
use crate::results::{Category, Finding, FixKind, GilDeclared, Severity, StaticStatus};
use crate::source::SourceTree;

/// Races shown in full (code, stacks, fix); the rest get one table row each.
const MAX_DETAILED_RACES: usize = 25;
/// Rows of a static-findings table; the rest are counted and left to `results.json`.
const MAX_STATIC_ROWS: usize = 40;
/// Lines kept from a crash or hang dump.
const MAX_DUMP_LINES: usize = 40;
/// Non-extension frames shown above the extension frames of a crash stack.
const CRASH_CONTEXT_FRAMES: usize = 3;

pub fn render_markdown(analysis: &Analysis) -> String {
    let mut out = String::new();
    summary(&mut out, analysis);
    build_notes(&mut out, analysis);
    races(&mut out, analysis);
    crashes_and_hangs(&mut out, analysis);
    static_findings(&mut out, analysis);
    interpreter_noise(&mut out, analysis);
    plan(&mut out, analysis);
    appendix(&mut out, analysis);
    out
}

fn summary(out: &mut String, a: &Analysis) {
    let (run, results) = (a.run, &a.results);
    let version = run.target.version.as_deref().unwrap_or("");
    let _ = writeln!(
        out,
        "# Free-threading migration plan: {} {version}\n",
        run.target.name
    );
    let _ = writeln!(
        out,
        "> **Verdict: {}** — {}.\n",
        results.verdict.level.label(),
        results.verdict.reasons.join("; ")
    );
    if let Some(build) = run
        .build
        .as_ref()
        .filter(|b| !b.missing_modules().is_empty())
    {
        let _ = writeln!(
            out,
            "> **The build left out `{}`**: see [Build](#build) for the log lines that tell why{}.\n",
            build.missing_modules().join("`, `"),
            build
                .fixes
                .first()
                .map(|fix| format!("; fix: {fix}"))
                .unwrap_or_default()
        );
    }
    let c = &results.counts;
    let rows = [
        ("Extension", extension_line(a)),
        (
            "Interpreter",
            format!(
                "CPython {} free-threaded with ThreadSanitizer ({})",
                run.interpreter.version, run.interpreter.compiler
            ),
        ),
        ("`Py_mod_gil`", gil_line(a)),
        ("Instrumented", instrumentation_line(a)),
        ("Exercised", exercised_line(a)),
        (
            "Findings",
            format!(
                "{} race(s), {} crash(es), {} hang(s) · static: {} confirmed, {} not reproduced, {} not exercised · {} interpreter-internal report(s) kept apart",
                c.races, c.crashes, c.hangs, c.static_confirmed, c.static_not_reproduced,
                c.static_not_exercised, c.interpreter_noise
            ),
        ),
    ];
    out.push_str("| | |\n|---|---|\n");
    for (name, value) in rows {
        let _ = writeln!(out, "| **{name}** | {} |", cell(&value));
    }
    if let Some(baseline) = &results.baseline {
        let _ = writeln!(
            out,
            "| **Baseline** | {} new finding(s) ({} that fail CI) against `{}`; {} fixed since |",
            baseline.new_findings,
            baseline.new_actionable,
            baseline.path,
            baseline.fixed.len()
        );
    }
    out.push('\n');
    counts_table(out, a);
    phases_table(out, a);
}

/// What the build supplied, retried and left out, with the log lines telling why and the fix.
fn build_notes(out: &mut String, a: &Analysis) {
    let Some(build) = &a.run.build else { return };
    if build.supplied_tools.is_empty() && build.retry.is_none() && build.causes.is_empty() {
        return;
    }
    out.push_str("## Build\n\n");
    for tool in &build.supplied_tools {
        let _ = writeln!(
            out,
            "- ftreview supplied `{}` from PyPI: `{}` runs it and the build host had none on PATH.",
            tool.package, tool.used_at
        );
    }
    if let Some(retry) = &build.retry {
        let outcome = match (&retry.error, retry.built_modules.as_slice()) {
            (Some(error), _) => format!("the build failed ({error})"),
            (None, []) => "it built no extension module either".into(),
            (None, built) => format!("it built `{}`", built.join("`, `")),
        };
        let _ = writeln!(
            out,
            "- Rebuilt with `{}={}` (`{}` reads it to require the C extension): {outcome}.",
            retry.variable, retry.value, retry.read_at
        );
    }
    let missing = build.missing_modules();
    if !missing.is_empty() {
        let _ = writeln!(
            out,
            "- **The wheel lacks {} of the {} extension module(s) the sources declare: `{}`.** TSan checked none of their code.",
            missing.len(),
            build.declared_modules.len(),
            missing.join("`, `")
        );
    }
    if !build.causes.is_empty() {
        if !out.ends_with("## Build\n\n") {
            out.push('\n');
        }
        out.push_str("The build log says:\n\n```text\n");
        for cause in &build.causes {
            let _ = writeln!(out, "{cause}");
        }
        out.push_str("```\n");
    }
    if !build.fixes.is_empty() {
        out.push_str("\nFix:\n\n");
        for fix in &build.fixes {
            let _ = writeln!(out, "- [ ] {}", capitalize(&fix.to_string()));
        }
    }
    out.push('\n');
}

fn extension_line(a: &Analysis) -> String {
    let target = &a.run.target;
    let kind = match target.kind {
        crate::model::TargetKind::Pypi => "PyPI",
        crate::model::TargetKind::Local => "local",
        crate::model::TargetKind::Git => "git",
    };
    let mut line = format!("`{}` ({kind})", target.spec);
    if let Some(sha) = &target.sdist_sha256 {
        let _ = write!(line, ", sdist SHA-256 `{}…`", &sha[..sha.len().min(16)]);
    }
    if let Some(rev) = &target.git_rev {
        let _ = write!(line, ", commit `{rev}`");
    }
    line
}

fn gil_line(a: &Analysis) -> String {
    let gil = &a.results.gil;
    let declared = match gil.declared {
        GilDeclared::NotUsed => format!(
            "`Py_MOD_GIL_NOT_USED` declared{}",
            gil.declared_at
                .as_ref()
                .map(|at| format!(" at `{at}`"))
                .unwrap_or_default()
        ),
        GilDeclared::Used => "`Py_MOD_GIL_USED` declared: the extension asks for the GIL".into(),
        GilDeclared::Missing => "**not declared**".into(),
        GilDeclared::Unknown => "unknown (no static scan)".into(),
    };
    let import = match gil.reenabled_on_import {
        Some(true) => "importing it **turns the GIL back on**",
        Some(false) => "the GIL stays off at import",
        None => "import check did not run",
    };
    format!("{declared}; {import}")
}

fn instrumentation_line(a: &Analysis) -> String {
    let modules = &a.run.instrumentation;
    let instrumented = modules.iter().filter(|m| m.instrumented).count();
    let missing: Vec<String> = modules
        .iter()
        .filter(|m| !m.instrumented)
        .map(|m| {
            format!(
                "`{}`",
                m.path.file_name().unwrap_or_default().to_string_lossy()
            )
        })
        .collect();
    let mut line = format!(
        "{instrumented} of {} extension module(s) carry TSan instrumentation",
        modules.len()
    );
    if !missing.is_empty() {
        let _ = write!(
            line,
            "; **not instrumented: {}** (races there are invisible)",
            missing.join(", ")
        );
    }
    line
}

fn exercised_line(a: &Analysis) -> String {
    let e = &a.results.exercised;
    let per_phase: Vec<String> = a
        .run
        .phases
        .iter()
        .filter(|p| p.phase.is_test_suite() || p.phase == Phase::Stress)
        .filter_map(|p| Some(format!("{} {}", p.phase, p.items_run?)))
        .collect();
    let mut line = format!(
        "{} test(s), {} stress scenario(s) ({}); {} extension function(s) ran concurrently",
        e.tests_run,
        e.scenarios_run,
        per_phase.join(", "),
        e.c_functions.len()
    );
    if !e.concurrent_phase_ran {
        line.push_str(" · **no multi-threaded phase completed**");
    }
    line
}

fn counts_table(out: &mut String, a: &Analysis) {
    let mut rows: BTreeMap<String, [usize; 4]> = BTreeMap::new();
    for f in a
        .results
        .findings
        .iter()
        .filter(|f| f.severity > Severity::Info)
    {
        let label = match f.category {
            Category::Static => format!("static {}", f.kind),
            _ => f.kind.clone(),
        };
        let column = match f.severity {
            Severity::Critical => 0,
            Severity::High => 1,
            Severity::Medium => 2,
            _ => 3,
        };
        rows.entry(label).or_default()[column] += 1;
    }
    if rows.is_empty() {
        return;
    }
    out.push_str("| Kind | Critical | High | Medium | Low | Total |\n|---|--:|--:|--:|--:|--:|\n");
    for (kind, n) in &rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            cell(kind),
            n[0],
            n[1],
            n[2],
            n[3],
            n.iter().sum::<usize>()
        );
    }
    out.push('\n');
}

fn phases_table(out: &mut String, a: &Analysis) {
    if a.run.phases.is_empty() {
        return;
    }
    out.push_str("| Phase | Status | Time (share) | Ran / selected / all | TSan reports | Note |\n|---|---|--:|--:|--:|---|\n");
    for p in &a.run.phases {
        let share = p
            .coverage
            .as_ref()
            .and_then(|c| c.share_secs)
            .map(|s| format!(" ({s:.0} s)"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "| {} | {} | {:.1} s{share} | {} | {} | {} |",
            p.phase,
            phase_status_label(p.status),
            p.duration_secs,
            coverage_cell(p),
            p.reports,
            cell(p.message.as_deref().unwrap_or(""))
        );
    }
    out.push('\n');
    not_covered(out, a);
}

/// `ran / selected / all` of a phase, or what it ran.
fn coverage_cell(p: &crate::model::PhaseRecord) -> String {
    let of = |n: Option<u64>| n.map_or("?".to_string(), |n| n.to_string());
    match (&p.coverage, p.items_run) {
        (Some(c), _) => format!("{} / {} / {}", c.ran, of(c.selected), of(c.total)),
        (None, Some(n)) => n.to_string(),
        (None, None) => "—".into(),
    }
}

/// What the budget, the selection and the suite's layout left out, said plainly.
fn not_covered(out: &mut String, a: &Analysis) {
    let mut lines: Vec<String> = a
        .run
        .phases
        .iter()
        .filter_map(|p| Some((p.phase, p.coverage.as_ref()?)))
        .flat_map(|(phase, c)| c.left_out.iter().map(move |l| format!("{phase}: {l}")))
        .collect();
    if let Some(layout) = &a.run.test_layout {
        lines.push(format!(
            "test suite: ran in `{}`: {}",
            layout.root.display(),
            layout.reason
        ));
        for error in &layout.collection_errors {
            lines.push(format!(
                "test suite: `{}` failed to collect ({}): `{}`",
                error.nodeid,
                collection_error_label(&error.kind),
                error.message
            ));
        }
    }
    if let Some(schedule) = &a.run.schedule {
        let shares: Vec<String> = schedule
            .shares
            .iter()
            .map(|s| format!("{} {:.0} s", s.phase, s.secs))
            .collect();
        lines.push(format!(
            "schedule: a {:.0} s budget, {:.0} s of it spent on setup; phases {} ({})",
            schedule.budget_secs,
            schedule.setup_secs,
            if schedule.concurrent {
                "side by side"
            } else {
                "in turn"
            },
            shares.join(", ")
        ));
    }
    if lines.is_empty() {
        return;
    }
    out.push_str("**Coverage.**\n\n");
    for line in lines {
        let _ = writeln!(out, "- {line}");
    }
    out.push('\n');
}

fn collection_error_label(kind: &crate::model::CollectionErrorKind) -> String {
    use crate::model::CollectionErrorKind::*;
    match kind {
        ImportShadowing => "the source tree's package shadows the installed build".into(),
        MissingTestDependency { module } => format!("missing test dependency `{module}`"),
        Syntax => "syntax error".into(),
        Other => "import error".into(),
    }
}

fn races(out: &mut String, a: &Analysis) {
    out.push_str("## Confirmed races\n\n");
    let races = findings_in(a, &[Category::Race]);
    if races.is_empty() {
        out.push_str("ThreadSanitizer saw no race in extension code.\n\n");
        return;
    }
    out.push_str("Most severe first. Each is one root cause: all reports with the same kind, racing lines and location.\n\n");
    let (detailed, rest) = races.split_at(races.len().min(MAX_DETAILED_RACES));
    for (n, finding) in detailed.iter().enumerate() {
        if let Some(rc) = root_cause(a, &finding.id) {
            race(out, a, n + 1, finding, rc);
        }
    }
    if !rest.is_empty() {
        let _ = writeln!(
            out,
            "### {} more, less severe or less frequent\n\n| ID | Kind | Where | Reports | Fix |\n|---|---|---|--:|---|",
            rest.len()
        );
        for f in rest {
            let _ = writeln!(
                out,
                "| `{}` | {} ({}) | {} | {} | {} |",
                f.id,
                cell(&f.kind),
                f.severity.label(),
                cell(&location_text(f)),
                f.count,
                f.fix.kind.label()
            );
        }
        out.push('\n');
    }
}

fn root_cause<'a>(a: &'a Analysis, id: &str) -> Option<&'a RootCause> {
    a.run.triage.root_causes.iter().find(|rc| rc.id == id)
}

fn race(out: &mut String, a: &Analysis, n: usize, finding: &Finding, rc: &RootCause) {
    let _ = writeln!(
        out,
        "### {n}. {} (`{}`, {})\n",
        finding.title.split(':').next().unwrap_or(&finding.title),
        finding.id,
        finding.severity.label()
    );
    let _ = writeln!(out, "{}\n", race_sentence(a, finding, rc));
    let mut shown = Vec::new();
    for (caption, stack) in side_stacks(rc) {
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
    stacks(out, a, rc);
    if let Some(command) = &finding.reproducer {
        let _ = writeln!(out, "**Reproduce:**\n\n```sh\n{command}\n```\n");
    }
    let _ = writeln!(
        out,
        "**Fix — {}:** {}\n\n*Why:* {}\n",
        finding.fix.kind.label(),
        finding.fix.action,
        finding.fix.reason
    );
}

fn race_sentence(a: &Analysis, finding: &Finding, rc: &RootCause) -> String {
    let place = |frame: &Frame| {
        format!(
            "`{}` (`{}`)",
            frame.function.as_deref().unwrap_or("?"),
            frame_location(frame, &a.tree)
                .map(|l| l.display())
                .unwrap_or_default()
        )
    };
    let sides: Vec<(String, String)> = rc
        .sides
        .iter()
        .map(|side| {
            let what = side
                .access_kinds
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("/");
            let frame = side.frame.as_ref().or(side.top_frame.as_ref());
            (
                what,
                frame
                    .map(place)
                    .unwrap_or_else(|| "code outside the extension".into()),
            )
        })
        .collect();
    let mut sentence = if sides.iter().all(|(what, _)| !what.is_empty()) {
        sides
            .iter()
            .map(|(what, place)| format!("**{what}** in {place}"))
            .collect::<Vec<_>>()
            .join(" races with ")
    } else {
        let places: Vec<&str> = sides.iter().map(|(_, place)| place.as_str()).collect();
        format!("**{}** between {}", rc.kind, places.join(" and "))
    };
    if let Some(variable) = &finding.variable {
        let _ = write!(sentence, ", on `{variable}`");
    }
    if let Some(location) = &rc.variable {
        if finding.variable.as_deref() != Some(location.as_str()) {
            let _ = write!(sentence, " ({location})");
        }
    }
    let origins: Vec<String> = rc
        .origins
        .iter()
        .map(|o| format!("`{}` ({})", o.origin, o.count))
        .collect();
    let _ = write!(
        sentence,
        ". Seen **{}** time(s) in {} process(es), {} distinct call path(s)",
        rc.count,
        rc.pids.len().max(1),
        rc.distinct_call_paths.max(1)
    );
    if !origins.is_empty() {
        let _ = write!(sentence, ", from {}", origins.join(", "));
    }
    if rc.unattributed > 0 {
        let _ = write!(sentence, ", {} outside any test", rc.unattributed);
    }
    if !finding.related.is_empty() {
        let confirmed: Vec<String> = finding
            .related
            .iter()
            .map(|id| match a.results.findings.iter().find(|f| &f.id == id) {
                Some(f) => format!("{} `{id}`", f.rule),
                None => format!("`{id}`"),
            })
            .collect();
        let _ = write!(
            sentence,
            ". Confirms static finding(s) {}",
            confirmed.join(", ")
        );
    }
    sentence.push('.');
    sentence
}

fn code_block(out: &mut String, tree: &SourceTree, frame: &Frame, caption: &str) {
    let Some(file) = frame.file.as_deref() else {
        return;
    };
    let location = frame_location(frame, tree)
        .map(|l| l.display())
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "`{location}` — {caption}, in `{}`:\n",
        frame.function.as_deref().unwrap_or("?")
    );
    let Some(line) = frame.line else {
        out.push_str("*(the report gives no line number for this frame)*\n\n");
        return;
    };
    match tree.snippet(file, line) {
        Some(snippet) => {
            let _ = writeln!(out, "```c\n{}\n```\n", snippet.render());
        }
        None => out.push_str("*(this file is not in the kept source tree)*\n\n"),
    }
}

/// The stacks that show what each side did, with a caption.
fn side_stacks(rc: &RootCause) -> Vec<(String, &Stack)> {
    let report = &rc.representative;
    let accesses = report.accesses.iter().map(|access| {
        let previous = if access.previous { "previous " } else { "" };
        let size = access
            .size
            .map(|n| format!(" of size {n}"))
            .unwrap_or_default();
        (
            format!(
                "{previous}{}{size} by thread T{}",
                access.kind, access.thread
            ),
            &access.stack,
        )
    });
    let locks = report.lock_edges.iter().flat_map(|edge| {
        let acquired = (
            format!(
                "thread T{} acquires M{} while holding M{}",
                edge.thread, edge.acquired, edge.held
            ),
            &edge.stack,
        );
        let held = edge.previous_stack.iter().map(move |stack| {
            (
                format!("thread T{} acquired M{} here", edge.thread, edge.held),
                stack,
            )
        });
        std::iter::once(acquired).chain(held)
    });
    let bare = report
        .stacks
        .iter()
        .map(|stack| ("stack".to_string(), stack));
    accesses.chain(locks).chain(bare).collect()
}

fn stacks(out: &mut String, a: &Analysis, rc: &RootCause) {
    out.push_str(
        "<details><summary>Stacks (extension frames and the entry point)</summary>\n\n```text\n",
    );
    for (caption, stack) in side_stacks(rc) {
        let _ = writeln!(out, "{caption}:");
        out.push_str(&trimmed_stack(a, stack));
    }
    for location in &rc.representative.locations {
        if let tsan_parse::Location::Heap { size, stack, .. } = location {
            let _ = writeln!(out, "heap block of size {size} allocated at:");
            out.push_str(&trimmed_stack(a, stack));
        }
    }
    out.push_str("```\n\n</details>\n\n");
}

/// The extension frames of a stack, then the frame that called into them (the entry point)
/// and, when the static pass knows it, the Python name bound to the outermost one.
fn trimmed_stack(a: &Analysis, stack: &Stack) -> String {
    let mut out = String::new();
    let frames = &stack.frames;
    let Some(last) = frames
        .iter()
        .rposition(|f| f.origin == FrameOrigin::Extension)
    else {
        for frame in frames
            .iter()
            .filter(|f| f.origin != FrameOrigin::TsanRuntime)
            .take(CRASH_CONTEXT_FRAMES)
        {
            let _ = writeln!(out, "  {}", describe(a, frame));
        }
        return out;
    };
    for frame in frames[..=last]
        .iter()
        .filter(|f| f.origin == FrameOrigin::Extension)
    {
        let _ = writeln!(out, "  {}", describe(a, frame));
    }
    let python = frames[last]
        .function
        .as_deref()
        .map(|f| python_names(a.run, f))
        .unwrap_or_default();
    if !python.is_empty() {
        let _ = writeln!(out, "  ↑ called from Python as {}", python.join(", "));
    } else if let Some(caller) = frames.get(last + 1) {
        let _ = writeln!(out, "  ↑ entered from {}", describe(a, caller));
    }
    out
}

fn describe(a: &Analysis, frame: &Frame) -> String {
    let function = frame.function.as_deref().unwrap_or("??");
    match frame_location(frame, &a.tree) {
        Some(location) => format!("{function}  {}", location.display()),
        None => frame.describe(),
    }
}

fn crashes_and_hangs(out: &mut String, a: &Analysis) {
    out.push_str("## Crashes, hangs and corrupted state\n\n");
    let events = findings_in(a, &[Category::Crash, Category::Hang, Category::Anomaly]);
    if events.is_empty() {
        out.push_str(
            "No process crashed or hung, and no scenario saw its object's state break.\n\n",
        );
        return;
    }
    for finding in events {
        let _ = writeln!(out, "### {} (`{}`)\n", finding.title, finding.id);
        if let Some(rc) = root_cause(a, &finding.id) {
            let _ = writeln!(
                out,
                "ThreadSanitizer caught the signal {} time(s), from {}.\n",
                rc.count,
                rc.origins
                    .iter()
                    .map(|o| format!("`{}`", o.origin))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            for stack in &rc.representative.stacks {
                out.push_str("```text\n");
                out.push_str(&trimmed_stack(a, stack));
                out.push_str("```\n\n");
            }
        }
        event_dumps(out, a, finding);
        if let Some(command) = &finding.reproducer {
            let _ = writeln!(out, "**Reproduce:**\n\n```sh\n{command}\n```\n");
        }
    }
}

/// The Python and native stacks the runner kept for a crash or hang.
fn event_dumps(out: &mut String, a: &Analysis, finding: &Finding) {
    let origin = finding.origins.first();
    let matches = |o: &crate::model::Origin| Some(o) == origin;
    let dumps: Vec<(&str, &Option<String>)> = match finding.category {
        Category::Crash => a
            .run
            .crashes
            .iter()
            .filter(|c| matches(&c.origin) && c.kind == finding.kind)
            .flat_map(|c| {
                [
                    ("Python stack", &c.python_stack),
                    ("Native stack", &c.native_stack),
                ]
            })
            .collect(),
        Category::Anomaly => Vec::new(),
        _ => a
            .run
            .hangs
            .iter()
            .filter(|h| matches(&h.origin))
            .flat_map(|h| {
                [
                    ("Python stacks", &h.python_stacks),
                    ("Native stacks", &h.native_stacks),
                ]
            })
            .collect(),
    };
    for (title, dump) in dumps {
        if let Some(text) = dump {
            let lines: Vec<&str> = text.lines().collect();
            let kept = &lines[..lines.len().min(MAX_DUMP_LINES)];
            let cut = lines.len() - kept.len();
            let _ = writeln!(
                out,
                "<details><summary>{title}</summary>\n\n```text\n{}",
                kept.join("\n")
            );
            if cut > 0 {
                let _ = writeln!(out, "… {cut} more line(s) in the run directory");
            }
            out.push_str("```\n\n</details>\n\n");
        }
    }
}

fn static_findings(out: &mut String, a: &Analysis) {
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

fn location_text(f: &Finding) -> String {
    f.locations
        .first()
        .map(|l| match &l.function {
            Some(function) => format!("`{}` in `{function}`", l.display()),
            None => format!("`{}`", l.display()),
        })
        .unwrap_or_default()
}

fn interpreter_noise(out: &mut String, a: &Analysis) {
    out.push_str("## Interpreter-internal reports\n\n");
    let noise = &a.results.interpreter_noise;
    if noise.is_empty() {
        out.push_str("None.\n\n");
        return;
    }
    out.push_str("Every frame of these reports is inside CPython: they are not the extension's to fix (check for a newer interpreter or report them upstream).\n\n");
    out.push_str("| ID | Kind | Reports | Frames | Seen in |\n|---|---|--:|---|---|\n");
    for n in noise {
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {} |",
            n.id,
            cell(&n.kind),
            n.count,
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

fn plan(out: &mut String, a: &Analysis) {
    out.push_str("## Migration plan\n\n");
    let findings = &a.results.findings;
    let open =
        |f: &&Finding| f.status != Some(StaticStatus::Protected) && f.severity >= Severity::Medium;
    let declare: Vec<&Finding> = findings
        .iter()
        .filter(|f| f.fix.kind == FixKind::DeclareGil)
        .collect();
    let apis: Vec<&Finding> = findings
        .iter()
        .filter(open)
        .filter(|f| f.fix.kind == FixKind::StrongReferenceApi)
        .collect();
    let protect: Vec<&Finding> = findings
        .iter()
        .filter(open)
        .filter(|f| {
            !matches!(
                f.fix.kind,
                FixKind::DeclareGil | FixKind::StrongReferenceApi
            )
        })
        .filter(|f| f.status != Some(StaticStatus::Confirmed))
        .collect();

    out.push_str("### Phase 1 — Declare free-threading support\n\n");
    match a.results.gil.declared {
        GilDeclared::NotUsed => out.push_str("- [x] `Py_mod_gil` is declared `Py_MOD_GIL_NOT_USED`. Keep it, and declare it in every new module.\n"),
        _ => {
            out.push_str("- [ ] Add `{Py_mod_gil, Py_MOD_GIL_NOT_USED}` to the module's `PyModuleDef_Slot` array (multi-phase init), or call `PyUnstable_Module_SetGIL(module, Py_MOD_GIL_NOT_USED)` under `#ifdef Py_GIL_DISABLED` (single-phase init)");
            if !declare.is_empty() {
                let _ = write!(out, " — {}", id_list(&declare.iter().map(|f| f.id.clone()).collect::<Vec<_>>()));
            }
            if protect.is_empty() {
                out.push_str(".\n");
            } else {
                out.push_str(". Do it after phase 2: the declaration promises the code is safe without the GIL.\n");
            }
        }
    }
    out.push('\n');

    out.push_str("### Phase 2 — Protect shared state\n\n");
    if protect.is_empty() {
        out.push_str("Nothing to protect was found.\n\n");
    }
    let mut by_fix: BTreeMap<FixKind, Vec<&Finding>> = BTreeMap::new();
    for f in protect {
        by_fix.entry(f.fix.kind).or_default().push(f);
    }
    for (kind, group) in by_fix {
        let _ = writeln!(out, "**{}**\n", capitalize(kind.label()));
        for f in group {
            let evidence = match f.category {
                Category::Static => {
                    format!("static, {}", f.status.map(|s| s.label()).unwrap_or(""))
                }
                _ => format!("{} report(s)", f.count),
            };
            let _ = writeln!(
                out,
                "- [ ] `{}` ({}, {evidence}) {} — {}",
                f.id,
                f.severity.label(),
                location_text(f),
                f.fix.action
            );
        }
        out.push('\n');
    }

    out.push_str("### Phase 3 — Replace borrowed-reference APIs\n\n");
    if apis.is_empty() {
        out.push_str("No borrowed-reference hazard was found.\n");
    }
    for f in &apis {
        let _ = writeln!(
            out,
            "- [ ] `{}` {} — {}",
            f.id,
            location_text(f),
            f.fix.action
        );
    }
    out.push('\n');

    let spec = shell_quote(&a.run.target.spec);
    out.push_str("### Phase 4 — Verify\n\n");
    let reproducers: Vec<(&str, &str)> = findings
        .iter()
        .filter_map(|f| f.reproducer.as_deref().map(|r| (f.id.as_str(), r)))
        .collect();
    let _ = writeln!(
        out,
        "- [ ] Rerun each reproducer until it stays quiet ({} kept; `ftreview repro` reruns one K times and counts).",
        reproducers.len()
    );
    let _ = writeln!(
        out,
        "- [ ] Rerun the whole review: `ftreview run {spec}` — the verdict should reach *ready*."
    );
    out.push_str("- [ ] Add a test or scenario for every *not exercised* finding, so the next run covers it.\n\n");

    out.push_str("### Phase 5 — Keep ThreadSanitizer in CI\n\n");
    let _ = writeln!(
        out,
        "- [ ] Commit this run's `results.json` as the baseline and run `ftreview run {spec} --baseline results.json` in CI: it fails only on findings the baseline does not have.\n- [ ] Upload `results.sarif` to GitHub code scanning so findings show up on the lines they concern.\n"
    );
}

fn appendix(out: &mut String, a: &Analysis) {
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
    ];
    for (name, value) in rows {
        let _ = writeln!(out, "| {name} | {} |", cell(&value));
    }
    out.push('\n');
    if run.environment.commands.is_empty() {
        return;
    }
    out.push_str("<details><summary>Commands, in order</summary>\n\n```sh\n");
    for command in &run.environment.commands {
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
    out.push_str("```\n\n</details>\n");
}

fn findings_in<'a>(a: &'a Analysis, categories: &[Category]) -> Vec<&'a Finding> {
    a.results
        .findings
        .iter()
        .filter(|f| categories.contains(&f.category))
        .collect()
}

/// Text safe inside a table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

fn id_list(ids: &[String]) -> String {
    ids.iter()
        .map(|id| format!("`{id}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn capitalize(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}
