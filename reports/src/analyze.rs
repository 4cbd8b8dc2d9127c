//! From a [`RunRecord`] to [`Results`]: findings with severities, statuses, fixes, links,
//! the verdict and the counts.

use std::collections::{BTreeMap, BTreeSet};

use ftreview_static::{BindingKind, Finding as StaticFinding, GilState, MethodBinding, Rule};
use sha2::{Digest, Sha256};
use tsan_parse::{AccessKind, FrameOrigin, ReportKind, RootCause, StackRole};

use crate::baseline::Baseline;
use crate::fix::{race_fix, static_fix, RaceEvidence};
use crate::model::{CommandRecord, HangKind, Origin, Phase, PhaseStatus, Reproducer, RunRecord};
use crate::results::*;
use crate::source::SourceTree;
use crate::xref::{
    called, cross_reference, exercised_functions, field_at, racing_line, racy_global, Links,
};

/// Extension root causes at or above this count make the verdict "far".
const FAR_ROOT_CAUSES: usize = 5;

/// Everything derived from a run: the results and what rendering them needs.
pub struct Analysis<'a> {
    pub run: &'a RunRecord,
    pub results: Results,
    pub(crate) tree: SourceTree,
}

pub fn analyze<'a>(run: &'a RunRecord, baseline: Option<&Baseline>) -> Analysis<'a> {
    let tree = SourceTree::new(&run.target.source_dir);
    let links = cross_reference(&run.triage, run.static_scan.as_ref(), &tree);
    let exercised = exercised_functions(run);
    let mut findings: Vec<Finding> = Vec::new();
    findings.extend(
        run.triage
            .root_causes
            .iter()
            .map(|rc| root_cause_finding(run, rc, &links, &tree)),
    );
    findings.extend(crash_findings(run));
    link_crashes_by_origin(&mut findings);
    findings.extend(hang_findings(run));
    findings.extend(anomaly_findings(run));
    findings
        .extend(static_findings(run).map(|f| static_finding(run, f, &links, &exercised, &tree)));
    findings.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then(a.category.cmp(&b.category))
            .then(b.count.cmp(&a.count))
            .then(a.id.cmp(&b.id))
    });
    let baseline_summary = baseline.map(|b| b.mark(&mut findings));
    let gil = gil_summary(run, &tree);
    let counts = counts(run, &findings);
    let verdict = verdict(run, &findings, &gil);
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
        exercised: exercised_summary(run, &exercised),
        findings,
        interpreter_noise: run
            .triage
            .interpreter_noise
            .iter()
            .map(noise_entry)
            .collect(),
        baseline: baseline_summary,
        run_status: RunStatus {
            stopped_by: run.stopped_by.clone(),
            clean_unproven: run.clean_unproven.clone(),
        },
    };
    Analysis { run, results, tree }
}

fn static_findings(run: &RunRecord) -> impl Iterator<Item = &StaticFinding> {
    run.static_scan.iter().flat_map(|scan| &scan.findings)
}

fn root_cause_finding(
    run: &RunRecord,
    rc: &RootCause,
    links: &Links,
    tree: &SourceTree,
) -> Finding {
    let statics: Vec<&StaticFinding> = static_findings(run)
        .filter(|f| links.statics_of(&rc.id).contains(&f.id))
        .collect();
    let variable = racy_variable(rc, &statics, tree);
    let severity = race_severity(rc, &statics);
    let category = match rc.kind {
        ReportKind::DeadlySignal(_) => Category::Crash,
        _ => Category::Race,
    };
    let bindings = entry_bindings(run, rc);
    let mut entry_points: Vec<String> = bindings.iter().map(|m| binding_name(m)).collect();
    entry_points.sort();
    entry_points.dedup();
    let fix = race_fix(&RaceEvidence {
        root_cause: rc,
        statics,
        entry_points,
        entry_type: entry_type(&bindings),
        tree,
    });
    Finding {
        id: rc.id.clone(),
        category,
        kind: rc.kind.to_string(),
        rule: tsan_rule(&rc.kind),
        severity,
        status: None,
        title: race_title(rc, variable.as_deref()),
        variable,
        locations: rc
            .sides
            .iter()
            .filter_map(|s| s.frame.as_ref().or(s.top_frame.as_ref()))
            .filter_map(|f| frame_location(f, tree))
            .collect(),
        count: rc.count,
        origins: rc.origins.iter().map(|o| o.origin.clone()).collect(),
        reproducer: rc
            .origins
            .iter()
            .find_map(|o| reproducer_for(run, &o.origin)),
        fix,
        related: links.statics_of(&rc.id).to_vec(),
        new: None,
    }
}

/// `SARIF` rule id of a TSan kind: `TSAN-data-race`, `TSAN-lock-order-inversion`, `TSAN-SEGV`.
pub fn tsan_rule(kind: &ReportKind) -> String {
    let text = kind.header_text();
    let head = text.split(" (").next().unwrap_or(text);
    format!("TSAN-{}", head.replace(' ', "-"))
}

pub fn frame_location(frame: &tsan_parse::Frame, tree: &SourceTree) -> Option<SourceLocation> {
    Some(SourceLocation {
        file: tree.display(frame.file.as_deref()?),
        line: frame.line,
        column: frame.column,
        function: frame.function.as_deref().map(str::to_string),
    })
}

/// The field or variable raced on: a global's name, else the field at the racing column
/// (qualified by the struct a static finding names for it), else what TSan said.
fn racy_variable(rc: &RootCause, statics: &[&StaticFinding], tree: &SourceTree) -> Option<String> {
    if let Some(global) = racy_global(rc) {
        return Some(global.name);
    }
    let field = rc
        .sides
        .iter()
        .filter_map(|s| s.frame.as_ref())
        .find_map(|f| field_at(&racing_line(f, tree)?, f.column?));
    let Some(field) = field else {
        return rc.variable.clone();
    };
    let container = statics
        .iter()
        .filter_map(|f| f.symbol.as_ref())
        .find(|s| s.name == field)
        .and_then(|s| s.container.clone());
    Some(match container {
        Some(container) => format!("{container}.{field}"),
        None => field,
    })
}

/// The C functions the racing stacks entered the extension through: the outermost
/// extension frame of each side, in the representative and every kept call path.
fn entry_functions(rc: &RootCause) -> Vec<String> {
    let representative = rc
        .representative
        .all_stacks()
        .filter(|(role, _)| {
            !matches!(
                role,
                StackRole::Allocation | StackRole::MutexCreation | StackRole::ThreadCreation
            )
        })
        .filter_map(|(_, stack)| {
            stack
                .frames
                .iter()
                .rfind(|f| f.origin == FrameOrigin::Extension)
        })
        .filter_map(|frame| frame.function.as_deref().map(str::to_string));
    // Call path entries read `function file:line`, extension frames only, innermost first.
    let call_paths = rc
        .call_paths
        .iter()
        .flat_map(|path| &path.sides)
        .filter_map(|side| side.last())
        .filter_map(|entry| entry.split_whitespace().next().map(str::to_string));
    let mut functions: Vec<String> = representative.chain(call_paths).collect();
    functions.sort();
    functions.dedup();
    functions
}

/// The Python bindings of the functions a root cause was entered through.
fn entry_bindings<'a>(run: &'a RunRecord, rc: &RootCause) -> Vec<&'a MethodBinding> {
    let Some(scan) = &run.static_scan else {
        return Vec::new();
    };
    entry_functions(rc)
        .iter()
        .flat_map(|function| {
            scan.methods
                .iter()
                .filter(move |m| &m.c_function == function)
        })
        .collect()
}

/// The Python type whose methods every side entered through, if there is one.
fn entry_type(bindings: &[&MethodBinding]) -> Option<String> {
    let mut owners = bindings.iter().map(|m| {
        m.owner_type
            .as_deref()
            .filter(|_| m.kind != BindingKind::Function)
    });
    let first = owners.next()??;
    owners.all(|o| o == Some(first)).then(|| first.to_string())
}

/// `Type.method`, `module.function`, or the bare name when the owner is unknown.
fn binding_name(m: &MethodBinding) -> String {
    match &m.owner_type {
        Some(owner) => format!(
            "{}.{}",
            owner.rsplit('.').next().unwrap_or(owner),
            m.python_name
        ),
        None => m.python_name.clone(),
    }
}

/// The Python names bound to a C function (`Vector.append`, `ftfixture_racy.bump`).
pub fn python_names(run: &RunRecord, c_function: &str) -> Vec<String> {
    let Some(scan) = &run.static_scan else {
        return Vec::new();
    };
    scan.bindings_of(c_function).map(binding_name).collect()
}

fn race_title(rc: &RootCause, variable: Option<&str>) -> String {
    let on = variable.map(|v| format!(" on `{v}`")).unwrap_or_default();
    let sides: Vec<String> = rc
        .sides
        .iter()
        .map(|side| {
            let what = match side.access_kinds.as_slice() {
                [] => "stack".to_string(),
                kinds => kinds
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("/"),
            };
            let function = side
                .frame
                .as_ref()
                .or(side.top_frame.as_ref())
                .and_then(|f| f.function.as_deref())
                .unwrap_or("?");
            format!("{what} in `{function}`")
        })
        .collect();
    format!("{}{on}: {}", rc.kind, sides.join(" vs "))
}

fn race_severity(rc: &RootCause, statics: &[&StaticFinding]) -> Severity {
    match rc.kind {
        ReportKind::HeapUseAfterFree
        | ReportKind::HeapUseAfterFreeVptr
        | ReportKind::DeadlySignal(_) => Severity::Critical,
        ReportKind::DataRace | ReportKind::DataRaceOnVptr => {
            let write_write = rc.sides.len() == 2
                && rc
                    .sides
                    .iter()
                    .all(|s| s.access_kinds.contains(&AccessKind::Write));
            let backed_by_high = statics
                .iter()
                .any(|f| f.severity == ftreview_static::Severity::High);
            if write_write || backed_by_high {
                Severity::High
            } else {
                Severity::Medium
            }
        }
        ReportKind::LockOrderInversion
        | ReportKind::DoubleLock
        | ReportKind::DestroyOfLockedMutex
        | ReportKind::UnlockOfUnlockedMutex => Severity::High,
        ReportKind::ThreadLeak => Severity::Low,
        _ => Severity::Medium,
    }
}

fn crash_findings(run: &RunRecord) -> impl Iterator<Item = Finding> + '_ {
    run.crashes.iter().map(|crash| {
        event_finding(
            Category::Crash,
            &crash.kind,
            format!("{} in {}", crash.kind, crash.origin),
            &crash.origin,
            crash.reproducer.as_ref(),
            Fix {
                kind: FixKind::Investigate,
                action: "Rerun the reproducer; fix the races reported in the same code first, they are the usual cause of a crash under concurrency.".into(),
                reason: "The process died; its stacks show where, not why.".into(),
            },
        )
    })
}

fn hang_findings(run: &RunRecord) -> impl Iterator<Item = Finding> + '_ {
    run.hangs.iter().map(|hang| {
        event_finding(
            Category::Hang,
            match hang.kind {
                HangKind::PossibleDeadlock => "possible deadlock",
                HangKind::NoProgress => "no progress",
            },
            format!(
                "{} for {:.0} s in {}",
                match hang.kind {
                    HangKind::PossibleDeadlock => "threads blocked on locks (possible deadlock)",
                    HangKind::NoProgress => "no progress",
                },
                hang.timeout_secs,
                hang.origin
            ),
            &hang.origin,
            hang.reproducer.as_ref(),
            Fix {
                kind: FixKind::Investigate,
                action: "Read the thread stacks below: threads blocked on locks in extension code point to a lock-order problem (see lock-order findings); a thread spinning in a loop to a corrupted structure.".into(),
                reason: "The process made no progress before its timeout and was killed.".into(),
            },
        )
    })
}

/// One finding per scenario that saw its own invariants break.
fn anomaly_findings(run: &RunRecord) -> impl Iterator<Item = Finding> + '_ {
    run.scenarios
        .iter()
        .filter(|s| !s.anomalies.is_empty())
        .map(|scenario| {
            let origin = Origin::new(Phase::Stress, &scenario.name);
            event_finding(
                Category::Anomaly,
                "logical corruption",
                format!(
                    "logical corruption in {}: {}",
                    origin,
                    scenario.anomalies.join("; ")
                ),
                &origin,
                Some(&scenario.reproducer),
                Fix {
                    kind: FixKind::Investigate,
                    action: "Fix the races on the same object first; rerun the scenario until its invariants hold.".into(),
                    reason: "The object's state stopped agreeing with itself under concurrent use: a race TSan may not have shown (atomics, critical sections released mid-update).".into(),
                },
            )
        })
}

/// A crash, hang or anomaly: an event of one process, known by where it happened.
fn event_finding(
    category: Category,
    kind: &str,
    title: String,
    origin: &Origin,
    reproducer: Option<&Reproducer>,
    fix: Fix,
) -> Finding {
    let (prefix, rule, severity) = match category {
        Category::Hang => ("hang", "HANG", Severity::High),
        Category::Anomaly => ("anomaly", "ANOMALY", Severity::High),
        _ => ("crash", "CRASH", Severity::Critical),
    };
    Finding {
        id: event_id(prefix, origin, kind),
        category,
        kind: kind.to_string(),
        rule: rule.into(),
        severity,
        status: None,
        title,
        variable: None,
        locations: Vec::new(),
        count: 1,
        origins: vec![origin.clone()],
        reproducer: reproducer.map(|r| in_directory(&r.cwd, &r.command)),
        fix,
        related: Vec::new(),
        new: None,
    }
}

/// A crashed process and the deadly signal TSan caught in it share an origin: link them.
fn link_crashes_by_origin(findings: &mut [Finding]) {
    let crashes: Vec<(String, Vec<Origin>)> = findings
        .iter()
        .filter(|f| f.category == Category::Crash)
        .map(|f| (f.id.clone(), f.origins.clone()))
        .collect();
    for finding in findings
        .iter_mut()
        .filter(|f| f.category == Category::Crash)
    {
        let same_origin = crashes
            .iter()
            .filter(|(id, origins)| {
                *id != finding.id && origins.iter().any(|o| finding.origins.contains(o))
            })
            .map(|(id, _)| id.clone());
        finding.related.extend(same_origin);
    }
}

/// `crash-`/`hang-` + a hash of where it happened: stable across identical runs.
fn event_id(prefix: &str, origin: &Origin, kind: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(origin.phase.name().as_bytes());
    hasher.update(b"\n");
    hasher.update(origin.item.as_deref().unwrap_or_default().as_bytes());
    hasher.update(b"\n");
    hasher.update(kind.as_bytes());
    format!("{prefix}-{}", hex::encode(&hasher.finalize()[..8]))
}

/// The command that reruns the test or scenario an origin names.
pub fn reproducer_for(run: &RunRecord, origin: &Origin) -> Option<String> {
    if let Some(name) = origin.scenario() {
        let scenario = run.scenarios.iter().find(|s| s.name == name)?;
        return Some(in_directory(
            &scenario.reproducer.cwd,
            &scenario.reproducer.command,
        ));
    }
    let test = origin.test()?;
    let command = run
        .environment
        .commands
        .iter()
        .filter(|c| c.phase == Some(origin.phase))
        .find(|c| c.argv.iter().any(|a| a.contains("pytest")))?;
    Some(rerun_one_test(command, test))
}

/// The phase's pytest command with its test selection replaced by one node id.
fn rerun_one_test(command: &CommandRecord, node_id: &str) -> String {
    // Test selections: paths (existing under the command's directory, or path-shaped) and
    // node ids; option values such as `-p plugin` are neither.
    let selects_tests = |arg: &str| {
        !arg.starts_with('-')
            && (arg.contains('/')
                || arg.ends_with(".py")
                || arg.contains("::")
                || arg == "."
                || command.cwd.join(arg).exists())
    };
    let pytest_at = command
        .argv
        .iter()
        .position(|a| a.contains("pytest"))
        .unwrap_or(0);
    let argv = command
        .argv
        .iter()
        .enumerate()
        .filter(|(i, arg)| *i <= pytest_at || !selects_tests(arg))
        .map(|(_, arg)| arg.as_str())
        .chain(std::iter::once(node_id));
    let env = command
        .env
        .iter()
        .filter(|(k, _)| matches!(k.as_str(), "PYTHON_GIL" | "TSAN_OPTIONS"))
        .map(|(k, v)| format!("{k}={}", shell_quote(v)));
    let line = env
        .chain(argv.map(shell_quote))
        .collect::<Vec<_>>()
        .join(" ");
    in_directory(&command.cwd, &line)
}

/// `cd DIR && COMMAND`, so a reproducer runs from anywhere.
fn in_directory(cwd: &std::path::Path, command: &str) -> String {
    format!(
        "cd {} && {command}",
        shell_quote(&cwd.display().to_string())
    )
}

pub fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if plain {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

fn static_finding(
    run: &RunRecord,
    finding: &StaticFinding,
    links: &Links,
    exercised: &BTreeSet<String>,
    tree: &SourceTree,
) -> Finding {
    let related = links.root_causes_of(&finding.id).to_vec();
    Finding {
        id: finding.id.clone(),
        category: Category::Static,
        kind: format!("{} {}", finding.code, finding.rule.name()),
        rule: finding.code.clone(),
        severity: match finding.severity {
            ftreview_static::Severity::Info => Severity::Info,
            ftreview_static::Severity::Low => Severity::Low,
            ftreview_static::Severity::Medium => Severity::Medium,
            ftreview_static::Severity::High => Severity::High,
        },
        status: Some(static_status(run, finding, &related, exercised)),
        title: finding.message.clone(),
        variable: finding.symbol.as_ref().map(|s| s.name.clone()),
        locations: vec![SourceLocation {
            file: tree.display(&finding.file.to_string_lossy()),
            line: Some(finding.span.line as u32),
            column: Some(finding.span.column as u32),
            function: finding.function.clone(),
        }],
        count: 1,
        origins: Vec::new(),
        reproducer: None,
        fix: static_fix(finding),
        related,
        new: None,
    }
}

fn static_status(
    run: &RunRecord,
    finding: &StaticFinding,
    root_causes: &[String],
    exercised: &BTreeSet<String>,
) -> StaticStatus {
    if finding.severity == ftreview_static::Severity::Info {
        return StaticStatus::Protected;
    }
    if finding.rule == Rule::GilNotDeclared {
        return match run.gil.reenabled_on_import {
            Some(true) => StaticStatus::Confirmed,
            Some(false) => StaticStatus::NotReproduced,
            None => StaticStatus::NotExercised,
        };
    }
    if !root_causes.is_empty() {
        return StaticStatus::Confirmed;
    }
    let function_ran = finding
        .function
        .as_ref()
        .is_some_and(|f| exercised.contains(f));
    let entry_ran = run.exercised.concurrent_phase_ran
        && finding
            .entry_points
            .iter()
            .any(|e| called(&run.exercised.python_callables, e));
    if function_ran || entry_ran {
        StaticStatus::NotReproduced
    } else {
        StaticStatus::NotExercised
    }
}

fn gil_summary(run: &RunRecord, tree: &SourceTree) -> GilSummary {
    let Some(scan) = &run.static_scan else {
        return GilSummary {
            declared: GilDeclared::Unknown,
            declared_at: None,
            reenabled_on_import: run.gil.reenabled_on_import,
        };
    };
    let declared_at = scan
        .gil
        .modules
        .iter()
        .find_map(|m| m.declared_at.as_ref())
        .map(|(file, line)| format!("{}:{line}", tree.display(&file.to_string_lossy())));
    GilSummary {
        declared: match scan.gil.state {
            GilState::NotUsed => GilDeclared::NotUsed,
            GilState::Used => GilDeclared::Used,
            GilState::Missing => GilDeclared::Missing,
            GilState::NoModule => GilDeclared::Unknown,
        },
        declared_at,
        reenabled_on_import: run.gil.reenabled_on_import,
    }
}

fn counts(run: &RunRecord, findings: &[Finding]) -> Counts {
    let of = |category: Category| findings.iter().filter(|f| f.category == category).count();
    let status =
        |status: StaticStatus| findings.iter().filter(|f| f.status == Some(status)).count();
    let severity = |severity: Severity| {
        findings
            .iter()
            .filter(|f| f.severity == severity && f.status != Some(StaticStatus::Protected))
            .count()
    };
    Counts {
        races: of(Category::Race),
        crashes: of(Category::Crash),
        hangs: of(Category::Hang),
        anomalies: of(Category::Anomaly),
        static_confirmed: status(StaticStatus::Confirmed),
        static_not_reproduced: status(StaticStatus::NotReproduced),
        static_not_exercised: status(StaticStatus::NotExercised),
        static_protected: status(StaticStatus::Protected),
        interpreter_noise: run.triage.interpreter_noise.len(),
        critical: severity(Severity::Critical),
        high: severity(Severity::High),
        medium: severity(Severity::Medium),
        low: severity(Severity::Low),
    }
}

fn exercised_summary(run: &RunRecord, exercised: &BTreeSet<String>) -> ExercisedSummary {
    ExercisedSummary {
        concurrent_phase_ran: run.exercised.concurrent_phase_ran,
        phases: run
            .phases
            .iter()
            .map(|p| format!("{}: {}", p.phase, phase_status_label(p.status)))
            .collect(),
        // The same suite runs in several phases (as is, then in parallel threads).
        tests_run: run
            .phases
            .iter()
            .filter(|p| p.phase.is_test_suite())
            .filter_map(|p| p.items_run)
            .max()
            .unwrap_or(0),
        scenarios_run: run.scenarios.len(),
        c_functions: exercised.iter().cloned().collect(),
    }
}

pub fn phase_status_label(status: PhaseStatus) -> &'static str {
    use PhaseStatus::*;
    match status {
        Passed => "passed",
        Failed => "failed",
        TimedOut => "timed out",
        StoppedAtShare => "stopped at its time share",
        Crashed => "crashed",
        Skipped => "skipped",
        Error => "error",
    }
}

fn noise_entry(rc: &RootCause) -> NoiseEntry {
    NoiseEntry {
        id: rc.id.clone(),
        kind: rc.kind.to_string(),
        count: rc.count,
        frames: rc
            .sides
            .iter()
            .filter_map(|s| s.top_frame.as_ref().or(s.frame.as_ref()))
            .map(|f| f.describe())
            .collect(),
        origins: rc.origins.iter().map(|o| o.origin.clone()).collect(),
    }
}

/// ready / close / needs work / far, with the facts that decided it.
fn verdict(run: &RunRecord, findings: &[Finding], gil: &GilSummary) -> Verdict {
    let races: Vec<&Finding> = findings
        .iter()
        .filter(|f| f.category == Category::Race)
        .collect();
    let crashes = findings
        .iter()
        .filter(|f| {
            matches!(
                f.category,
                Category::Crash | Category::Hang | Category::Anomaly
            )
        })
        .count();
    let critical = races
        .iter()
        .filter(|f| f.severity == Severity::Critical)
        .count();
    let open_static: BTreeMap<Severity, usize> = findings
        .iter()
        .filter(|f| {
            matches!(
                f.status,
                Some(StaticStatus::NotReproduced | StaticStatus::NotExercised)
            ) && f.severity >= Severity::Medium
        })
        .fold(BTreeMap::new(), |mut by, f| {
            *by.entry(f.severity).or_default() += 1;
            by
        });
    let mut reasons = Vec::new();
    if crashes > 0 {
        reasons.push(format!(
            "{crashes} crash(es), hang(s) or corrupted state(s) under concurrency"
        ));
    }
    if !races.is_empty() {
        reasons.push(format!(
            "{} race root cause(s) in extension code{}",
            races.len(),
            if critical > 0 {
                format!(", {critical} of them use-after-free")
            } else {
                String::new()
            }
        ));
    }
    match gil.declared {
        GilDeclared::Missing => reasons.push(
            "the module does not declare `Py_mod_gil`: importing it turns the GIL back on".into(),
        ),
        GilDeclared::Used => reasons.push("the module declares `Py_MOD_GIL_USED`".into()),
        _ if gil.reenabled_on_import == Some(true) => {
            reasons.push("importing the extension turns the GIL back on".into())
        }
        _ => {}
    }
    let open: usize = open_static.values().sum();
    if open > 0 {
        reasons.push(format!(
            "{open} static finding(s) of medium or high severity not confirmed at run time"
        ));
    }
    if !run.exercised.concurrent_phase_ran {
        reasons
            .push("no multi-threaded phase completed: nothing was exercised concurrently".into());
    }
    reasons.extend(
        run.phases
            .iter()
            .filter(|p| matches!(p.status, PhaseStatus::Error | PhaseStatus::TimedOut))
            .map(|p| {
                let message = p
                    .message
                    .as_deref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default();
                format!(
                    "phase `{}` {}{message}",
                    p.phase,
                    phase_status_label(p.status)
                )
            }),
    );
    let gil_off =
        matches!(gil.declared, GilDeclared::NotUsed) && gil.reenabled_on_import != Some(true);
    let level = if crashes > 0 || critical > 0 || races.len() >= FAR_ROOT_CAUSES {
        VerdictLevel::Far
    } else if !races.is_empty() {
        VerdictLevel::NeedsWork
    } else if !gil_off || open > 0 || !run.exercised.concurrent_phase_ran {
        VerdictLevel::Close
    } else {
        reasons.push("no race, crash or hang under concurrent load, and the GIL stays off".into());
        VerdictLevel::Ready
    };
    Verdict { level, reasons }
}
