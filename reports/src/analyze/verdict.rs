//! The verdict, the counts and the summaries of a run.

use std::collections::{BTreeMap, BTreeSet};

use ftreview_static::GilState;
use tsan_parse::RootCause;

use crate::model::{PhaseStatus, RunRecord};
use crate::results::*;
use crate::source::SourceTree;

/// Problems at or above this count make the verdict "far".
const FAR_PROBLEMS: usize = 3;

pub(super) fn gil_summary(run: &RunRecord, tree: &SourceTree) -> GilSummary {
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

pub(super) fn counts(run: &RunRecord, findings: &[Finding]) -> Counts {
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
        problems: of(Category::Race),
        races: findings
            .iter()
            .filter(|f| f.category == Category::Race)
            .map(|f| f.sites.len())
            .sum(),
        crashes: of(Category::Crash),
        hangs: of(Category::Hang),
        anomalies: of(Category::Anomaly),
        single_threaded: of(Category::SingleThreaded),
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

pub(super) fn exercised_summary(run: &RunRecord, exercised: &BTreeSet<String>) -> ExercisedSummary {
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

pub(super) fn noise_entry(rc: &RootCause) -> NoiseEntry {
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
        reason: (rc.internal.as_ref()).map_or_else(
            || "no frame is the extension's".to_string(),
            |r| r.to_string(),
        ),
        origins: rc.origins.iter().map(|o| o.origin.clone()).collect(),
    }
}

/// ready / close / needs work / far, with the facts that decided it.
pub(super) fn verdict(run: &RunRecord, findings: &[Finding], gil: &GilSummary) -> Verdict {
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
            "{} problem(s) of shared state racing in extension code{}",
            races.len(),
            if critical > 0 {
                format!(
                    ", {critical} of them critical (use-after-free, or a crash in the same code)"
                )
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
    let level = if crashes > 0 || critical > 0 || races.len() >= FAR_PROBLEMS {
        VerdictLevel::Far
    } else if !races.is_empty() {
        VerdictLevel::NeedsWork
    } else if let Some(unproven) = &run.clean_unproven {
        reasons.push(format!("cannot vouch for a clean result: {unproven}"));
        VerdictLevel::Unverified
    } else if !gil_off || open > 0 || !run.exercised.concurrent_phase_ran {
        VerdictLevel::Close
    } else {
        reasons.push("no race, crash or hang under concurrent load, and the GIL stays off".into());
        VerdictLevel::Ready
    };
    Verdict { level, reasons }
}
