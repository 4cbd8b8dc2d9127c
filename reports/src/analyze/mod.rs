//! From a [`RunRecord`] to [`Results`]: problems (shared state with its racing site pairs,
//! one fix each), crashes, hangs and anomalies that stand alone, static findings with what
//! became of them, the verdict and the counts.

mod commands;
mod events;
mod problems;
mod sites;
mod statics;
mod verdict;

use std::collections::BTreeMap;

use ftreview_static::Finding as StaticFinding;
use tsan_parse::{ReportKind, Triage};

use crate::baseline::Baseline;
use crate::model::RunRecord;
use crate::patches::SuggestedPatches;
use crate::results::*;
use crate::source::SourceTree;
use crate::xref::{cross_reference, exercised_functions};

pub use commands::shell_quote;
pub use problems::problem_id;
pub(crate) use sites::{binding_name, frame_location, python_names};
pub use verdict::phase_status_label;

/// Everything derived from a run: the results and what rendering them needs.
pub struct Analysis<'a> {
    pub run: &'a RunRecord,
    pub results: Results,
    pub(crate) tree: SourceTree,
    /// What `ftreview verify --suggested` left in the run directory.
    pub(crate) patches: Option<SuggestedPatches>,
}

pub fn analyze<'a>(run: &'a RunRecord, baseline: Option<&Baseline>) -> Analysis<'a> {
    let tree = SourceTree::new(&run.target.source_dir);
    let links = cross_reference(&run.triage, run.static_scan.as_ref(), &tree);
    let exercised = exercised_functions(run);
    // Deadly signals are crashes (the run records each dead process once), not races.
    let sites: Vec<_> = run
        .triage
        .root_causes
        .iter()
        .filter(|rc| !matches!(rc.kind, ReportKind::DeadlySignal(_)))
        .map(|rc| sites::site(run, rc, &links, &tree))
        .collect();
    let problem_of: BTreeMap<String, String> = sites
        .iter()
        .map(|s| (s.pair.id.clone(), problems::problem_id(&s.owner)))
        .collect();
    let functions_of: BTreeMap<String, Vec<String>> =
        sites.iter().fold(BTreeMap::new(), |mut by, s| {
            by.entry(problem_of[&s.pair.id].clone())
                .or_insert_with(Vec::new)
                .extend(s.functions());
            by
        });
    let mut findings = problems::problems(run, sites);
    let functions: Vec<Vec<String>> = findings
        .iter()
        .map(|p| functions_of.get(&p.id).cloned().unwrap_or_default())
        .collect();
    let events = events::link(&mut findings, &functions, events::events(run));
    for problem in &mut findings {
        problem.related.sort();
        problem.related.dedup();
    }
    findings.extend(events);
    findings.extend(events::single_threaded(run));
    findings.extend(
        static_findings(run)
            .map(|f| statics::static_finding(run, f, &links, &problem_of, &exercised, &tree)),
    );
    findings.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then(a.category.cmp(&b.category))
            .then(b.count.cmp(&a.count))
            .then(a.id.cmp(&b.id))
    });
    let baseline_summary = baseline.map(|b| b.mark(&mut findings));
    let gil = verdict::gil_summary(run, &tree);
    let counts = verdict::counts(run, &findings);
    let verdict = verdict::verdict(run, &findings, &gil);
    let results = Results {
        schema_version: RESULTS_SCHEMA_VERSION,
        tool: Tool {
            name: "ftreview".into(),
            version: run.environment.ftreview_version.clone(),
        },
        target: TargetSummary {
            name: run.target.name.clone(),
            version: run.target.version.clone(),
            spec: run.target.spec.clone(),
            interpreter: run.interpreter.version.clone(),
            compiler: run.interpreter.compiler.clone(),
        },
        verdict,
        gil,
        counts,
        exercised: verdict::exercised_summary(run, &exercised),
        findings,
        interpreter_noise: run
            .triage
            .interpreter_noise
            .iter()
            .map(verdict::noise_entry)
            .collect(),
        baseline: baseline_summary,
        run_status: RunStatus {
            stopped_by: run.stopped_by.clone(),
            clean_unproven: run.clean_unproven.clone(),
        },
    };
    let patches = SuggestedPatches::load(&run.run_dir);
    Analysis {
        run,
        results,
        tree,
        patches,
    }
}

/// Whether a rerun's reports (`rerun`, clustered) show the problem `problem` of `run` again:
/// a root cause with the same owner, or, for a problem of shared code, one through its hub
/// function.
pub fn reproduces(run: &RunRecord, rerun: &Triage, problem: &Owner) -> bool {
    shown_owners(run, rerun)
        .iter()
        .any(|owner| same_problem(problem, owner))
}

/// The owners of the races a rerun's reports show, read against `run`'s sources.
pub fn shown_owners(run: &RunRecord, rerun: &Triage) -> Vec<Owner> {
    let tree = SourceTree::new(&run.target.source_dir);
    let links = cross_reference(rerun, run.static_scan.as_ref(), &tree);
    let mut owners: Vec<Owner> = rerun
        .root_causes
        .iter()
        .filter(|rc| !matches!(rc.kind, ReportKind::DeadlySignal(_)))
        .map(|rc| sites::site(run, rc, &links, &tree).owner)
        .collect();
    owners.sort();
    owners.dedup();
    owners
}

/// Whether a race on `seen` belongs to the problem of `problem` (shared code: through its hub).
pub fn same_problem(problem: &Owner, seen: &Owner) -> bool {
    match (problem, seen) {
        (Owner::Code { functions: hub }, Owner::Code { functions }) => {
            hub.iter().any(|h| functions.contains(h))
        }
        (wanted, owner) => wanted == owner,
    }
}

fn static_findings(run: &RunRecord) -> impl Iterator<Item = &StaticFinding> {
    run.static_scan.iter().flat_map(|scan| &scan.findings)
}
