//! Static findings and what became of them at run time.

use std::collections::{BTreeMap, BTreeSet};

use ftreview_static::{Finding as StaticFinding, Rule};

use crate::fix::static_fix;
use crate::model::RunRecord;
use crate::results::*;
use crate::source::SourceTree;
use crate::xref::{called, Links};

pub(super) fn static_finding(
    run: &RunRecord,
    finding: &StaticFinding,
    links: &Links,
    problem_of: &BTreeMap<String, String>,
    exercised: &BTreeSet<String>,
    tree: &SourceTree,
) -> Finding {
    let root_causes = links.root_causes_of(&finding.id);
    // Races are reported by problem: link the problems the confirming root causes fall in.
    let mut related: Vec<String> = root_causes
        .iter()
        .filter_map(|rc| problem_of.get(rc).cloned())
        .collect();
    related.sort();
    related.dedup();
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
        status: Some(static_status(run, finding, root_causes, exercised)),
        title: finding.message.clone(),
        variable: finding.symbol.as_ref().map(|s| s.name.clone()),
        locations: vec![SourceLocation {
            file: tree.display(&finding.file.to_string_lossy()),
            line: Some(finding.span.line as u32),
            column: Some(finding.span.column as u32),
            function: finding.function.clone(),
            in_interpreter: false,
        }],
        count: 1,
        origins: Vec::new(),
        reproducer: None,
        fix: static_fix(finding),
        related,
        new: None,
        owner: None,
        operations: Vec::new(),
        sites: Vec::new(),
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
