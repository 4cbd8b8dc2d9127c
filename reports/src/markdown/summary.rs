//! The head of the plan: verdict, what was reviewed and exercised, counts, phases and
//! what the run did not cover.

use super::*;

pub(super) fn summary(out: &mut String, a: &Analysis) {
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
    super::build::missing_modules_banner(out, a);
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
