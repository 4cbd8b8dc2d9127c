//! The migration plan: phases of work, each item a problem or a static finding.

use super::statics::location_text;
use super::*;

pub(super) fn plan(out: &mut String, a: &Analysis) {
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
    let reproducers = findings.iter().filter(|f| f.reproducer.is_some()).count();
    let _ = writeln!(
        out,
        "- [ ] Rerun each problem's reproducer until it stays quiet ({reproducers} kept; `ftreview repro PROBLEM_ID` reruns one K times and counts)."
    );
    verify_item(out, a);
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

/// How to prove a fix: the user's patch, or ftreview's own for the mechanical fixes when it
/// has not verified them yet.
fn verify_item(out: &mut String, a: &Analysis) {
    let problems = || (a.results.findings.iter()).filter(|f| f.category == Category::Race);
    if problems().next().is_none() {
        return;
    }
    out.push_str("- [ ] Prove a fix: `ftreview verify RUN_DIR --source PATCHED_TREE` (RUN_DIR: this plan's directory) rebuilds it and reruns each problem's reproducer before and after.");
    let mechanical = problems()
        .filter(|f| matches!(f.fix.kind, FixKind::CriticalSection | FixKind::Atomic))
        .count();
    if a.patches.is_none() && mechanical > 0 {
        let _ = write!(
            out,
            " For the {mechanical} problem(s) whose fix is a critical section or an atomic, `ftreview verify RUN_DIR --suggested` writes the patch, builds it and shows it here once it fixes the problem."
        );
    }
    out.push('\n');
}
