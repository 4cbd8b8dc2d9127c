//! Crashes, hangs and broken invariants: events of whole processes. Crashes of the same kind
//! at the same faulting function are one finding however many processes died there (TSan's
//! deadly-signal report and the dead process are one crash, counted once). An event whose
//! stacks run through a problem's code, in a test or scenario where that problem raced, is
//! linked to the problem instead of standing alone.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use super::commands::event_reproducer;
use crate::model::{
    AnomalyRecord, CrashRecord, HangKind, Origin, Phase, RunRecord, SingleThreadedKind,
};
use crate::results::*;

/// An event finding with the text its stacks hold (for linking).
pub(super) struct Event {
    pub finding: Finding,
    stacks: String,
}

pub(super) fn events(run: &RunRecord) -> Vec<Event> {
    let mut events = crashes(run);
    events.extend(hangs(run));
    events.extend(anomalies(run));
    events
}

/// Links each event to the problems it belongs to (both ways, through `related`); an event
/// linked to no problem stands alone.
pub(super) fn link(
    problems: &mut [Finding],
    functions: &[Vec<String>],
    events: Vec<Event>,
) -> Vec<Finding> {
    let mut linked_events = Vec::new();
    for mut event in events {
        for (problem, functions) in problems.iter_mut().zip(functions) {
            let same_origin = event
                .finding
                .origins
                .iter()
                .any(|o| problem.origins.contains(o));
            let same_code = functions
                .iter()
                .any(|f| mentions_function(&event.stacks, f))
                || problem
                    .operations
                    .iter()
                    .any(|op| event.stacks.contains(&format!("{op}(")));
            if same_origin && same_code {
                problem.related.push(event.finding.id.clone());
                event.finding.related.push(problem.id.clone());
                if event.finding.category == Category::Crash {
                    problem.severity = Severity::Critical;
                }
            }
        }
        linked_events.push(event.finding);
    }
    linked_events
}

/// `fn` as a frame's function in stack text (`#3 fn file.c:12`, `in fn (`, `fn  file.c:12`).
fn mentions_function(stacks: &str, function: &str) -> bool {
    stacks.match_indices(function).any(|(at, _)| {
        let before = stacks[..at].chars().next_back();
        let after = stacks[at + function.len()..].chars().next();
        let boundary = |c: Option<char>| c.is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_'));
        boundary(before) && boundary(after)
    })
}

/// One finding per crash kind and faulting function.
fn crashes(run: &RunRecord) -> Vec<Event> {
    let mut groups: BTreeMap<(String, String), Vec<&CrashRecord>> = BTreeMap::new();
    for crash in &run.crashes {
        groups
            .entry((crash.kind.clone(), faulting_function(crash)))
            .or_default()
            .push(crash);
    }
    groups
        .into_iter()
        .map(|((kind, function), crashes)| {
            let first = crashes[0];
            let at = if function.is_empty() {
                String::new()
            } else {
                format!(" in `{function}`")
            };
            let mut finding = event_finding(
                Category::Crash,
                &kind,
                format!("{kind}{at} ({} process(es))", crashes.len()),
                &id_of("crash", &[&kind, &function]),
                crashes.iter().map(|c| c.origin.clone()).collect(),
                event_reproducer(run, &first.origin, first.reproducer.as_ref()),
                Fix {
                    kind: FixKind::Investigate,
                    action: "Rerun the reproducer; fix the races reported in the same code first, they are the usual cause of a crash under concurrency.".into(),
                    reason: "The process died; its stacks show where, not why.".into(),
                },
            );
            finding.count = crashes.len() as u64;
            let stacks = crashes
                .iter()
                .flat_map(|c| [c.native_stack.as_deref(), c.python_stack.as_deref()])
                .flatten()
                .collect::<Vec<_>>()
                .join("\n");
            Event { finding, stacks }
        })
        .collect()
}

/// The first function of the native stack (TSan prints the faulting frame first).
fn faulting_function(crash: &CrashRecord) -> String {
    crash
        .native_stack
        .as_deref()
        .and_then(|stack| stack.lines().next())
        // Without stacks the record holds TSan's description (`SEGV on unknown address …`).
        .filter(|line| {
            let signal = crash.kind.split_whitespace().next().unwrap_or_default();
            !line.starts_with(signal)
        })
        .map(|line| {
            let line =
                line.trim_start_matches(|c: char| c == '#' || c.is_ascii_digit() || c == ' ');
            let line = line.split(" in ").nth(1).unwrap_or(line);
            line.split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .unwrap_or_default()
}

fn hangs(run: &RunRecord) -> Vec<Event> {
    run.hangs
        .iter()
        .map(|hang| {
            let (kind, what) = match hang.kind {
                HangKind::PossibleDeadlock => (
                    "possible deadlock",
                    "threads blocked on locks (possible deadlock)",
                ),
                HangKind::NoProgress => ("no progress", "no progress"),
            };
            let finding = event_finding(
                Category::Hang,
                kind,
                format!("{what} for {:.0} s in {}", hang.timeout_secs, hang.origin),
                &id_of("hang", &[kind, &hang.origin.to_string()]),
                vec![hang.origin.clone()],
                event_reproducer(run, &hang.origin, hang.reproducer.as_ref()),
                Fix {
                    kind: FixKind::Investigate,
                    action: "Read the thread stacks below: threads blocked on locks in extension code point to a lock-order problem; a thread spinning in a loop, to a corrupted structure.".into(),
                    reason: "The process made no progress before its timeout and was killed.".into(),
                },
            );
            let stacks = [hang.native_stacks.as_deref(), hang.python_stacks.as_deref()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join("\n");
            Event { finding, stacks }
        })
        .collect()
}

/// One finding per scenario that saw its own invariants break in a way its single-threaded
/// control did not (a control that reproduced it made it a single-threaded bug).
fn anomalies(run: &RunRecord) -> Vec<Event> {
    run.scenarios
        .iter()
        .filter_map(|scenario| {
            let concurrent: Vec<&AnomalyRecord> = scenario
                .anomalies
                .iter()
                .filter(|a| a.single_threaded != Some(true))
                .collect();
            (!concurrent.is_empty()).then_some((scenario, concurrent))
        })
        .map(|(scenario, concurrent)| {
            let origin = Origin::new(Phase::Stress, &scenario.name);
            let described: Vec<String> = concurrent
                .iter()
                .map(|a| match a.single_threaded {
                    Some(false) => format!("{} (not in the single-threaded control run)", a.description),
                    _ => format!("{} (no control run)", a.description),
                })
                .collect();
            let finding = event_finding(
                Category::Anomaly,
                "logical corruption",
                format!("logical corruption in {origin}: {}", described.join("; ")),
                &id_of("anomaly", &[&origin.to_string()]),
                vec![origin.clone()],
                event_reproducer(run, &origin, Some(&scenario.reproducer)),
                Fix {
                    kind: FixKind::Investigate,
                    action: "Fix the races on the same object first; rerun the scenario until its invariants hold.".into(),
                    reason: "The object's state stopped agreeing with itself under concurrent use: a race TSan may not have shown (atomics, critical sections released mid-update).".into(),
                },
            );
            let stacks = described.join("\n");
            Event { finding, stacks }
        })
        .collect()
}

/// Bugs one thread is enough for, once each (kind and call).
pub(super) fn single_threaded(run: &RunRecord) -> Vec<Finding> {
    let mut seen = std::collections::BTreeSet::new();
    run.single_threaded
        .iter()
        .filter(|bug| seen.insert((format!("{:?}", bug.kind), bug.call.clone())))
        .map(|bug| {
            let (kind, what) = match bug.kind {
                SingleThreadedKind::Crash => ("crash", "crashes the interpreter"),
                SingleThreadedKind::Hang => ("hang", "never returns"),
                SingleThreadedKind::InternalError => ("C-API contract", "breaks the C-API contract"),
                SingleThreadedKind::Invariant => ("broken invariant", "breaks the object's invariants"),
            };
            let call = bug.call.as_deref().unwrap_or("(the call was not recorded)");
            let mut finding = event_finding(
                Category::SingleThreaded,
                kind,
                format!("`{call}` {what}, in one thread"),
                &id_of("single", &[kind, call]),
                vec![bug.origin.clone()],
                bug.call.as_ref().map(|call| ReproducerRef {
                    kind: ReproducerKind::Small,
                    script: None,
                    command: format!("PYTHON_GIL=0 python -c {}", super::commands::shell_quote(call)),
                    runs: 0,
                    reproduced: 0,
                }),
                Fix {
                    kind: FixKind::Investigate,
                    action: bug.detail.clone().unwrap_or_else(|| "Run the one-line reproducer under a debugger.".into()),
                    reason: "One call in one thread is enough: a bug of the extension with or without the GIL.".into(),
                },
            );
            finding.severity = Severity::Medium;
            finding.rule = "SINGLE-THREADED".into();
            finding
        })
        .collect()
}

fn event_finding(
    category: Category,
    kind: &str,
    title: String,
    id: &str,
    origins: Vec<Origin>,
    reproducer: Option<ReproducerRef>,
    fix: Fix,
) -> Finding {
    let (rule, severity) = match category {
        Category::Hang => ("HANG", Severity::High),
        Category::Anomaly => ("ANOMALY", Severity::High),
        _ => ("CRASH", Severity::Critical),
    };
    let mut origins = origins;
    origins.sort();
    origins.dedup();
    Finding {
        id: id.to_string(),
        category,
        kind: kind.to_string(),
        rule: rule.into(),
        severity,
        status: None,
        title,
        variable: None,
        locations: Vec::new(),
        count: 1,
        origins,
        reproducer,
        fix,
        related: Vec::new(),
        new: None,
        owner: None,
        operations: Vec::new(),
        sites: Vec::new(),
    }
}

/// `crash-`/`hang-`/`anomaly-` + a hash of what identifies it: stable across identical runs.
fn id_of(prefix: &str, parts: &[&str]) -> String {
    let digest = Sha256::digest(parts.join("\n").as_bytes());
    format!("{prefix}-{}", &hex::encode(digest)[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn functions_are_found_as_whole_words_in_stack_text() {
        let stacks = "#8  0x00007e in vector_push (self=0x7e0) at src/f.c:140\n  Vector_sum f.c:12";
        assert!(mentions_function(stacks, "vector_push"));
        assert!(mentions_function(stacks, "Vector_sum"));
        assert!(!mentions_function(stacks, "vector"));
        assert!(!mentions_function(stacks, "push"));
    }
}
