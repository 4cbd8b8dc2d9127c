//! `ftreview corpus merge`: the shards' directories joined into one corpus: `corpus.json`
//! (see [`CorpusReport`]) and `corpus.md`, a table with one row per target of the list. Counts
//! and verdicts come from each run's results.json; a target without a finished review shows
//! as `error` with what went wrong. With `--baseline` (an earlier corpus.json) it also lists
//! what changed, and exits 1 when a target got worse.

use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path, PathBuf};

use anyhow::Context;
use clap::Args;
use ftreview_reports::results::{Category, Severity, StaticStatus, VerdictLevel};
use ftreview_reports::{Results, MARKDOWN_FILE};

use super::report::{
    Changes, CorpusReport, CorpusTarget, StateChange, TargetCounts, TargetStatus, CORPUS_JSON,
    CORPUS_MARKDOWN, CORPUS_SCHEMA_VERSION,
};
use super::shard::{read_results, write_json, Attempt, PlannedTarget, ShardRecord};
use crate::events::format_secs;
use crate::exit::Outcome;

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// Shard directories written by `ftreview corpus run -o`, in any order.
    #[arg(required = true, value_name = "SHARD_DIR")]
    shards: Vec<PathBuf>,
    /// Where corpus.md and corpus.json go (default: ./ftreview-corpus).
    #[arg(long, short = 'o', value_name = "DIR")]
    out: Option<PathBuf>,
    /// An earlier corpus.json: also list new, removed, improved and regressed targets, and
    /// exit 1 when one regressed.
    #[arg(long, value_name = "CORPUS_JSON")]
    baseline: Option<PathBuf>,
}

pub fn run(args: MergeArgs) -> anyhow::Result<Outcome> {
    let out = args.out.unwrap_or_else(|| PathBuf::from("ftreview-corpus"));
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let out = std::fs::canonicalize(&out)?;
    let shards = args
        .shards
        .iter()
        .map(|dir| Ok((std::fs::canonicalize(dir)?, ShardRecord::load(dir)?)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut report = merge(&shards, &out);
    if let Some(path) = &args.baseline {
        let baseline = CorpusReport::load(path)?;
        report.changes = Some(changes(&baseline, &report, &path.display().to_string()));
    }
    let markdown = render_markdown(&report);
    write_json(&out.join(CORPUS_JSON), &report)?;
    let md_path = out.join(CORPUS_MARKDOWN);
    std::fs::write(&md_path, &markdown)
        .with_context(|| format!("cannot write {}", md_path.display()))?;
    print!("{markdown}");
    eprintln!(
        "wrote {} and {}",
        md_path.display(),
        out.join(CORPUS_JSON).display()
    );
    let regressed = report
        .changes
        .as_ref()
        .is_some_and(|c| !c.regressed.is_empty());
    Ok(if regressed {
        Outcome::Findings
    } else {
        Outcome::Clean
    })
}

/// One row per planned target, in list order; paths relative to `out`.
fn merge(shards: &[(PathBuf, ShardRecord)], out: &Path) -> CorpusReport {
    if shards.windows(2).any(|w| w[0].1.targets != w[1].1.targets) {
        eprintln!("warning: the shards were planned from different lists, costs or run options: targets may be missing or repeated; give every `corpus run` the same inputs");
    }
    let mut rows: BTreeMap<(usize, String), CorpusTarget> = BTreeMap::new();
    for (dir, record) in shards {
        for planned in record.own_targets() {
            let key = (planned.line, planned.target.clone());
            if rows.contains_key(&key) {
                eprintln!(
                    "warning: {} was given in two shard directories; keeping the first",
                    planned.target
                );
                continue;
            }
            rows.insert(key, reviewed_row(planned, &dir.join(&planned.slug), out));
        }
    }
    for (_, record) in shards {
        for planned in &record.targets {
            let key = (planned.line, planned.target.clone());
            rows.entry(key)
                .or_insert_with(|| missing_row(planned, record.of));
        }
    }
    CorpusReport {
        schema_version: CORPUS_SCHEMA_VERSION,
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        targets: rows.into_values().collect(),
        changes: None,
    }
}

/// A row with nothing but what the plan says: the results are still to be found.
fn planned_row(planned: &PlannedTarget) -> CorpusTarget {
    CorpusTarget {
        target: planned.target.clone(),
        options: planned.options.clone(),
        line: planned.line,
        key: planned.key.clone(),
        shard: Some(planned.shard),
        name: planned.name.clone(),
        version: planned.version.clone(),
        status: TargetStatus::Error,
        verdict: None,
        outcome: None,
        gil: None,
        counts: None,
        wall_secs: None,
        exit_code: None,
        error: None,
        clean_unproven: None,
        run_dir: None,
        plan: None,
    }
}

fn missing_row(planned: &PlannedTarget, of: usize) -> CorpusTarget {
    CorpusTarget {
        error: Some(format!(
            "not reviewed: the directory of shard {}/{of} was not given to merge",
            planned.shard
        )),
        ..planned_row(planned)
    }
}

fn reviewed_row(planned: &PlannedTarget, run_dir: &Path, out: &Path) -> CorpusTarget {
    let mut row = planned_row(planned);
    if !run_dir.is_dir() {
        row.error = Some("not reviewed: the shard stopped before this target".into());
        return row;
    }
    row.run_dir = Some(relative_path(out, run_dir));
    let attempt = Attempt::load(run_dir);
    if let Some(attempt) = &attempt {
        row.wall_secs = Some(attempt.wall_secs);
        row.exit_code = attempt.exit_code;
    }
    let Some(results) = read_results(run_dir) else {
        row.error = Some(match attempt {
            Some(Attempt {
                error: Some(error), ..
            }) => error,
            _ => "no results.json: the shard was stopped during this target; rerun it".into(),
        });
        return row;
    };
    if run_dir.join(MARKDOWN_FILE).is_file() {
        row.plan = Some(relative_path(out, &run_dir.join(MARKDOWN_FILE)));
    }
    row.name = results.target.name.clone();
    row.version = results.target.version.clone().or(row.version);
    row.verdict = Some(results.verdict.level);
    row.outcome = Some(results.outcome());
    row.gil = Some(results.gil.clone());
    row.counts = Some(counts(&results));
    row.clean_unproven = results.run_status.clean_unproven.clone();
    row.error = results.run_status.stopped_by.clone();
    if attempt.is_some_and(|a| a.interrupted) {
        row.error = Some("interrupted: rerun the shard to finish this target".into());
    }
    if row.error.is_none() {
        row.status = TargetStatus::Reviewed;
    }
    row
}

/// The table's counts from results.json.
fn counts(results: &Results) -> TargetCounts {
    let statics = |severity: Severity| {
        results
            .findings
            .iter()
            .filter(|f| f.category == Category::Static && f.severity == severity)
            .filter(|f| f.status != Some(StaticStatus::Protected))
            .count()
    };
    TargetCounts {
        problems: results.counts.problems,
        races: results.counts.races,
        crashes: results.counts.crashes,
        hangs: results.counts.hangs,
        static_high: statics(Severity::High),
        static_medium: statics(Severity::Medium),
    }
}

/// `to` relative to the directory `from` (both absolute).
fn relative_path(from: &Path, to: &Path) -> String {
    let from: Vec<Component> = from.components().collect();
    let to: Vec<Component> = to.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut path = PathBuf::new();
    for _ in common..from.len() {
        path.push("..");
    }
    path.extend(&to[common..]);
    path.display().to_string()
}

/// `ready` … `far`, or `error`; ordered from best to worst.
fn state(target: &CorpusTarget) -> (u8, &'static str) {
    match (target.status, target.verdict) {
        (TargetStatus::Reviewed, Some(level)) => match level {
            VerdictLevel::Ready => (0, "ready"),
            VerdictLevel::Close => (1, "close"),
            VerdictLevel::Unverified => (2, "unverified"),
            VerdictLevel::NeedsWork => (3, "needs_work"),
            VerdictLevel::Far => (4, "far"),
        },
        _ => (u8::MAX, "error"),
    }
}

fn changes(baseline: &CorpusReport, current: &CorpusReport, path: &str) -> Changes {
    let before: HashMap<&str, &CorpusTarget> = baseline
        .targets
        .iter()
        .map(|t| (t.key.as_str(), t))
        .collect();
    let after: HashMap<&str, &CorpusTarget> = current
        .targets
        .iter()
        .map(|t| (t.key.as_str(), t))
        .collect();
    let described = |t: &CorpusTarget| match &t.version {
        Some(version) => format!("{} ({version})", state(t).1),
        None => state(t).1.to_string(),
    };
    let mut changes = Changes {
        baseline: path.to_string(),
        ..Changes::default()
    };
    for target in &current.targets {
        let Some(old) = before.get(target.key.as_str()) else {
            changes.new.push(target.key.clone());
            continue;
        };
        let change = StateChange {
            key: target.key.clone(),
            before: described(old),
            after: described(target),
        };
        match state(target).0.cmp(&state(old).0) {
            std::cmp::Ordering::Less => changes.improved.push(change),
            std::cmp::Ordering::Greater => changes.regressed.push(change),
            std::cmp::Ordering::Equal => {}
        }
    }
    changes.removed = baseline
        .targets
        .iter()
        .filter(|t| !after.contains_key(t.key.as_str()))
        .map(|t| t.key.clone())
        .collect();
    changes
}

fn render_markdown(report: &CorpusReport) -> String {
    let mut tally: BTreeMap<(u8, &str), usize> = BTreeMap::new();
    for target in &report.targets {
        *tally.entry(state(target)).or_default() += 1;
    }
    let tally: Vec<String> = tally
        .iter()
        .map(|((_, name), n)| format!("{n} {}", name.replace('_', " ")))
        .collect();
    let mut out = format!(
        "# Corpus review\n\n{} target(s): {}.\n\n",
        report.targets.len(),
        tally.join(", ")
    );
    out += "| Package | Version | Verdict | Py_mod_gil | Problems (site pairs) | Crashes | Hangs | Static high / medium | Wall time | Plan | Error or note |\n";
    out += "|---|---|---|---|---|---|---|---|---|---|---|\n";
    for target in &report.targets {
        out += &table_row(target);
    }
    if let Some(changes) = &report.changes {
        out += &render_changes(changes);
    }
    out
}

fn table_row(target: &CorpusTarget) -> String {
    let verdict = match (target.status, target.verdict) {
        (TargetStatus::Reviewed, Some(level)) => level.label(),
        _ => "error",
    };
    let gil = target.gil.as_ref().map_or(String::new(), |gil| {
        let mut text = gil.declared.label().to_string();
        if gil.reenabled_on_import == Some(true) {
            text += " (GIL re-enabled on import)";
        }
        text
    });
    let count = |pick: fn(&TargetCounts) -> usize| {
        target
            .counts
            .as_ref()
            .map_or("—".to_string(), |c| pick(c).to_string())
    };
    let problems = target.counts.as_ref().map_or("—".to_string(), |c| {
        format!("{} ({})", c.problems, c.races)
    });
    let statics = target.counts.as_ref().map_or("—".to_string(), |c| {
        format!("{} / {}", c.static_high, c.static_medium)
    });
    let plan = target
        .plan
        .as_ref()
        .map_or(String::new(), |p| format!("[plan]({p})"));
    // The first line only: a failed build's message goes on with its log (kept in the JSON).
    let note = match (&target.error, &target.clean_unproven) {
        (Some(error), _) => first_line(error).to_string(),
        (None, Some(unproven)) => format!("clean unproven: {}", first_line(unproven)),
        (None, None) => String::new(),
    };
    let cells = [
        target.name.clone(),
        target.version.clone().unwrap_or_default(),
        verdict.to_string(),
        gil,
        problems,
        count(|c| c.crashes),
        count(|c| c.hangs),
        statics,
        target.wall_secs.map_or(String::new(), format_secs),
        plan,
        note,
    ];
    let cells: Vec<String> = cells.iter().map(|c| cell(c)).collect();
    format!("| {} |\n", cells.join(" | "))
}

pub(super) fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default().trim()
}

/// A table cell: pipes escaped.
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

fn render_changes(changes: &Changes) -> String {
    let moved = |list: &[StateChange]| {
        list.iter()
            .map(|c| format!("{} ({} → {})", c.key, c.before, c.after))
            .collect::<Vec<_>>()
    };
    let sections = [
        ("New", changes.new.clone()),
        ("Removed", changes.removed.clone()),
        ("Improved", moved(&changes.improved)),
        ("Regressed", moved(&changes.regressed)),
    ];
    let mut out = format!("\n## Changes since {}\n\n", changes.baseline);
    for (title, items) in sections {
        let items = if items.is_empty() {
            "none".to_string()
        } else {
            items.join(", ")
        };
        out += &format!("- {title}: {items}\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::corpus::shard::{ATTEMPT_FILE, SHARD_FILE};
    use ftreview_reports::model::RunRecord;

    /// Results of a real run of the racy fixture.
    fn racy_results() -> Results {
        let record: RunRecord =
            serde_json::from_str(include_str!("../../../tests/data/racy-run.json")).unwrap();
        ftreview_reports::analyze(&record, None).results
    }

    fn planned(target: &str, line: usize, shard: usize) -> PlannedTarget {
        PlannedTarget {
            target: target.into(),
            line,
            options: vec![],
            key: target.into(),
            slug: target.into(),
            name: target.into(),
            version: None,
            shard,
        }
    }

    fn attempt(error: Option<&str>) -> Attempt {
        Attempt {
            argv: vec![],
            exit_code: Some(if error.is_some() { 2 } else { 1 }),
            signal: None,
            wall_secs: 75.0,
            interrupted: false,
            error: error.map(String::from),
            output_tail: String::new(),
        }
    }

    /// Shard 1 of 3 reviewed `racy` (results) and `broken` (no results); shard 2 has not
    /// reached `late`; shard 3's directory is not given.
    fn shard_dirs(root: &Path) -> Vec<(PathBuf, ShardRecord)> {
        let targets = vec![
            planned("racy", 1, 1),
            planned("late", 2, 2),
            planned("broken", 3, 1),
            planned("absent", 4, 3),
        ];
        let record = |shard| ShardRecord {
            list: "list.txt".into(),
            shard,
            of: 3,
            run_options: vec![],
            targets: targets.clone(),
        };
        let (one, two) = (root.join("shard-1"), root.join("shard-2"));
        for (dir, shard) in [(&one, 1), (&two, 2)] {
            std::fs::create_dir_all(dir).unwrap();
            write_json(&dir.join(SHARD_FILE), &record(shard)).unwrap();
        }
        let racy = one.join("racy");
        std::fs::create_dir_all(&racy).unwrap();
        std::fs::write(
            racy.join(ftreview_reports::RESULTS_FILE),
            ftreview_reports::results_json(&racy_results()),
        )
        .unwrap();
        std::fs::write(racy.join(MARKDOWN_FILE), "# plan\n").unwrap();
        write_json(&racy.join(ATTEMPT_FILE), &attempt(None)).unwrap();
        let broken = one.join("broken");
        std::fs::create_dir_all(&broken).unwrap();
        let error = "ftreview run exited with 2 before writing results.json: bad | registry";
        write_json(&broken.join(ATTEMPT_FILE), &attempt(Some(error))).unwrap();
        [one, two]
            .into_iter()
            .map(|dir| {
                let record = ShardRecord::load(&dir).unwrap();
                (dir, record)
            })
            .collect()
    }

    #[test]
    fn rows_follow_the_list_with_results_errors_and_missing_shards() {
        let root = tempfile::tempdir().unwrap();
        let out = root.path().join("merged");
        let report = merge(&shard_dirs(root.path()), &out);
        let targets: Vec<&str> = report.targets.iter().map(|t| t.target.as_str()).collect();
        assert_eq!(targets, ["racy", "late", "broken", "absent"]);

        let results = racy_results();
        let racy = &report.targets[0];
        assert_eq!(racy.status, TargetStatus::Reviewed);
        assert_eq!(racy.name, results.target.name);
        assert_eq!(racy.verdict, Some(results.verdict.level));
        assert_eq!(racy.counts.as_ref().unwrap().races, results.counts.races);
        assert!(results.counts.races > 0, "the racy fixture has races");
        assert_eq!(
            racy.plan.as_deref(),
            Some("../shard-1/racy/migration-plan.md")
        );
        assert_eq!(racy.wall_secs, Some(75.0));

        let error = |i: usize| report.targets[i].error.as_deref().unwrap();
        assert!(error(1).contains("the shard stopped before this target"));
        assert!(error(2).contains("bad | registry"));
        assert!(error(3).contains("shard 3/3 was not given"));
        assert!(report.targets[1..]
            .iter()
            .all(|t| t.status == TargetStatus::Error && t.verdict.is_none()));

        let markdown = render_markdown(&report);
        assert!(
            markdown.contains("4 target(s): 1 needs work, 3 error."),
            "{markdown}"
        );
        let racy_row = markdown
            .lines()
            .find(|l| l.starts_with("| ftfixture-racy"))
            .unwrap();
        let static_high = results
            .findings
            .iter()
            .filter(|f| f.category == Category::Static && f.severity == Severity::High)
            .count();
        assert!(
            racy_row.contains(&format!(
                "| needs work | {} | {} ({}) | 0 | 0 | {static_high} / ",
                results.gil.declared.label(),
                results.counts.problems,
                results.counts.races
            )),
            "{racy_row}"
        );
        assert!(racy_row.contains("[plan](../shard-1/racy/migration-plan.md)"));
        assert!(markdown.contains("| broken |  | error |"), "{markdown}");
        assert!(markdown.contains("bad \\| registry"), "pipes are escaped");
    }

    fn with_state(key: &str, verdict: Option<VerdictLevel>) -> CorpusTarget {
        let mut row = planned_row(&planned(key, 1, 1));
        row.verdict = verdict;
        if verdict.is_some() {
            row.status = TargetStatus::Reviewed;
        }
        row
    }

    #[test]
    fn changes_against_a_baseline_are_matched_on_keys() {
        let corpus = |targets| CorpusReport {
            schema_version: CORPUS_SCHEMA_VERSION,
            tool_version: "0".into(),
            targets,
            changes: None,
        };
        let baseline = corpus(vec![
            with_state("fixed", Some(VerdictLevel::NeedsWork)),
            with_state("broke", Some(VerdictLevel::Ready)),
            with_state("same", Some(VerdictLevel::Close)),
            with_state("gone", Some(VerdictLevel::Far)),
            with_state("builds-now", None),
        ]);
        let mut fixed = with_state("fixed", Some(VerdictLevel::Ready));
        fixed.version = Some("2.0".into());
        let current = corpus(vec![
            fixed,
            with_state("broke", None),
            with_state("same", Some(VerdictLevel::Close)),
            with_state("added", Some(VerdictLevel::Ready)),
            with_state("builds-now", Some(VerdictLevel::Far)),
        ]);
        let changes = changes(&baseline, &current, "old.json");
        assert_eq!(changes.new, ["added"]);
        assert_eq!(changes.removed, ["gone"]);
        let keys = |list: &[StateChange]| list.iter().map(|c| c.key.clone()).collect::<Vec<_>>();
        assert_eq!(keys(&changes.improved), ["fixed", "builds-now"]);
        assert_eq!(keys(&changes.regressed), ["broke"]);
        assert_eq!(changes.improved[0].after, "ready (2.0)");
        assert_eq!(changes.regressed[0].after, "error");
        let text = render_changes(&changes);
        assert!(
            text.contains("- Regressed: broke (ready → error)"),
            "{text}"
        );
    }

    #[test]
    fn relative_paths_climb_out_of_the_output_directory() {
        assert_eq!(
            relative_path(Path::new("/a/b/out"), Path::new("/a/b/s1/x/plan.md")),
            "../s1/x/plan.md"
        );
        assert_eq!(
            relative_path(Path::new("/a"), Path::new("/a/s/p.md")),
            "s/p.md"
        );
    }
}
