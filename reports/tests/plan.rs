//! The outputs for the fixture extensions' runs: snapshots, schema validation, Markdown
//! structure, baselines and the multi-run table.

mod common;

use common::{assert_valid, fixture_record, portable, schema};
use ftreview_reports::results::{
    Category, FixKind, Outcome, Owner, Receiver, StaticStatus, VerdictLevel,
};
use ftreview_reports::{
    analyze, load_baseline, render_markdown, results_json, sarif, summary_table, write_all, Format,
};
use pulldown_cmark::{Event, HeadingLevel, Options, Parser, Tag, TagEnd};

#[test]
fn racy_outputs_match_snapshots() {
    let run = fixture_record("racy");
    let analysis = analyze(&run, None);
    insta::assert_snapshot!("racy_plan", portable(&render_markdown(&analysis)));
    insta::assert_snapshot!("racy_results", portable(&results_json(&analysis.results)));
    let sarif = serde_json::to_string_pretty(&sarif(&analysis)).unwrap();
    insta::assert_snapshot!("racy_sarif", portable(&sarif));
}

#[test]
fn clean_twin_outputs_match_snapshots() {
    let run = fixture_record("clean");
    let analysis = analyze(&run, None);
    assert_eq!(analysis.results.verdict.level, VerdictLevel::Ready);
    let unprotected: Vec<_> = (analysis.results.findings.iter())
        .filter(|f| f.status != Some(StaticStatus::Protected))
        .collect();
    assert!(unprotected.is_empty(), "{unprotected:?}");
    insta::assert_snapshot!("clean_plan", portable(&render_markdown(&analysis)));
    insta::assert_snapshot!("clean_results", portable(&results_json(&analysis.results)));
}

#[test]
fn every_planted_race_is_one_problem_with_the_fix_its_evidence_calls_for() {
    let results = analyze(&fixture_record("racy"), None).results;
    let problems: Vec<(&Owner, FixKind)> = results
        .findings
        .iter()
        .filter(|f| f.category == Category::Race)
        .map(|f| (f.owner.as_ref().unwrap(), f.fix.kind))
        .collect();
    let vector = "ftfixture_racy.Vector".to_string();
    let expected = [
        (
            Owner::Global {
                name: "call_count".into(),
                function: None,
            },
            FixKind::Atomic,
        ),
        (
            Owner::Object {
                type_name: vector.clone(),
                receiver: Receiver::SelfObject,
            },
            FixKind::CriticalSection,
        ),
        (
            Owner::Object {
                type_name: vector,
                receiver: Receiver::Argument,
            },
            FixKind::TwoObjectCriticalSection,
        ),
        (
            Owner::LockOrder {
                functions: vec!["fixture_audit".into(), "fixture_deposit".into()],
            },
            FixKind::LockOrder,
        ),
    ];
    for (owner, fix) in &expected {
        assert!(
            problems.contains(&(owner, *fix)),
            "{owner:?} {fix:?} not in {problems:?}"
        );
    }
    assert_eq!(problems.len(), expected.len(), "{problems:?}");
    let counter = results
        .findings
        .iter()
        .find(|f| f.variable.as_deref() == Some("call_count"))
        .unwrap();
    let confirmed = results
        .findings
        .iter()
        .find(|f| counter.related.contains(&f.id))
        .unwrap();
    assert_eq!(confirmed.status, Some(StaticStatus::Confirmed));
    assert_eq!(confirmed.kind, "FT201 global-mutable-state");
    assert!(
        confirmed.related.contains(&counter.id),
        "links go both ways"
    );
    assert_eq!(results.verdict.level, VerdictLevel::Far);
}

#[test]
fn static_findings_get_all_three_statuses() {
    let results = analyze(&fixture_record("racy"), None).results;
    let status_of = |function: &str, rule: &str| {
        results
            .findings
            .iter()
            .find(|f| f.rule == rule && f.locations[0].function.as_deref() == Some(function))
            .and_then(|f| f.status)
    };
    // lookup() ran in every thread of a scenario, its lazy init never raced.
    assert_eq!(
        status_of("fixture_lookup", "FT202"),
        Some(StaticStatus::NotReproduced)
    );
    // Nothing called clear() or v[i] from several threads.
    assert_eq!(
        status_of("Vector_clear", "FT401"),
        Some(StaticStatus::NotExercised)
    );
    assert_eq!(
        status_of("Vector_item", "FT402"),
        Some(StaticStatus::NotExercised)
    );
    assert_eq!(
        status_of("vector_push", "FT401"),
        Some(StaticStatus::Confirmed)
    );
}

#[test]
fn clean_twin_has_no_race_and_only_static_leftovers() {
    let results = analyze(&fixture_record("clean"), None).results;
    assert_eq!(
        (
            results.counts.races,
            results.counts.crashes,
            results.counts.hangs
        ),
        (0, 0, 0)
    );
    assert_eq!(results.counts.static_confirmed, 0);
    assert_ne!(results.verdict.level, VerdictLevel::Far);
    assert!(!results.verdict.reasons.is_empty());
}

#[test]
fn sarif_validates_against_the_2_1_0_schema() {
    let schema = schema("sarif-2.1.0-rtm.5.json");
    for which in ["racy", "clean", "gil"] {
        let run = fixture_record(which);
        let baseline_dir = tempfile::tempdir().unwrap();
        write_all(&run, baseline_dir.path(), None, Format::Json).unwrap();
        let baseline = load_baseline(&baseline_dir.path().join("results.json")).unwrap();
        for baseline in [None, Some(&baseline)] {
            let analysis = analyze(&run, baseline);
            assert_valid(&schema, &sarif(&analysis));
        }
    }
    // The schema does check: a log that breaks it is refused.
    let mut broken = sarif(&analyze(&fixture_record("racy"), None));
    broken["runs"][0]["results"][0]["level"] = "fatal".into();
    let validator = jsonschema::validator_for(&schema).unwrap();
    assert!(!validator.is_valid(&broken));
}

#[test]
fn results_json_validates_against_its_schema() {
    let schema = schema("results.schema.json");
    for which in ["racy", "clean", "gil"] {
        let run = fixture_record(which);
        let analysis = analyze(&run, None);
        let value: serde_json::Value =
            serde_json::from_str(&results_json(&analysis.results)).unwrap();
        assert_valid(&schema, &value);
    }
}

/// Headings (level, text) and the number of tables of a Markdown document.
fn outline(markdown: &str) -> (Vec<(HeadingLevel, String)>, usize) {
    let mut headings = Vec::new();
    let mut tables = 0;
    let mut current: Option<(HeadingLevel, String)> = None;
    for event in Parser::new_ext(markdown, Options::ENABLE_TABLES | Options::ENABLE_TASKLISTS) {
        match event {
            Event::Start(Tag::Heading { level, .. }) => current = Some((level, String::new())),
            Event::Text(text) | Event::Code(text) => {
                if let Some((_, heading)) = &mut current {
                    heading.push_str(&text);
                }
            }
            Event::End(TagEnd::Heading(_)) => headings.extend(current.take()),
            Event::Start(Tag::Table(_)) => tables += 1,
            _ => {}
        }
    }
    (headings, tables)
}

#[test]
fn plan_parses_with_the_expected_sections_and_tables() {
    let run = fixture_record("racy");
    let analysis = analyze(&run, None);
    let markdown = render_markdown(&analysis);
    let (headings, tables) = outline(&markdown);
    let h2: Vec<&str> = headings
        .iter()
        .filter(|(level, _)| *level == HeadingLevel::H2)
        .map(|(_, text)| text.as_str())
        .collect();
    assert_eq!(
        h2,
        [
            "Problems",
            "Crashes, hangs and corrupted state",
            "Static findings",
            "Interpreter-internal reports",
            "Migration plan",
            "Appendix: environment"
        ]
    );
    assert!(headings[0]
        .1
        .starts_with("Free-threading migration plan: ftfixture-racy"));
    let problems = headings
        .iter()
        .filter(|(level, text)| *level == HeadingLevel::H3 && text.contains("problem-"))
        .count();
    assert_eq!(problems, analysis.results.counts.problems);
    // summary, counts, phases, one site-pair table per problem, three static status tables,
    // environment
    assert_eq!(tables, 7 + problems, "{markdown}");
}

#[test]
fn a_baseline_from_one_run_makes_an_identical_run_report_nothing_new() {
    let run = fixture_record("racy");
    let first = tempfile::tempdir().unwrap();
    let written = write_all(&run, first.path(), None, Format::All).unwrap();
    assert_eq!(
        written.outcome,
        Outcome::Findings,
        "without a baseline every actionable finding counts"
    );
    assert_eq!(written.files.len(), 3);
    let baseline = load_baseline(&first.path().join("results.json")).unwrap();
    let second = tempfile::tempdir().unwrap();
    let written = write_all(
        &fixture_record("racy"),
        second.path(),
        Some(&baseline),
        Format::All,
    )
    .unwrap();
    let summary = written.results.baseline.as_ref().unwrap();
    assert_eq!((summary.new_findings, summary.new_actionable), (0, 0));
    assert!(summary.fixed.is_empty());
    assert_eq!(written.outcome, Outcome::Clean);
    assert!(written
        .results
        .findings
        .iter()
        .all(|f| f.new == Some(false)));
}

#[test]
fn a_baseline_without_a_finding_reports_it_as_new() {
    let run = fixture_record("racy");
    let dir = tempfile::tempdir().unwrap();
    write_all(&run, dir.path(), None, Format::Json).unwrap();
    let path = dir.path().join("results.json");
    let mut value: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let dropped = value["findings"].as_array_mut().unwrap().remove(0);
    std::fs::write(&path, value.to_string()).unwrap();
    let results = analyze(&run, Some(&load_baseline(&path).unwrap())).results;
    let new: Vec<&str> = results
        .findings
        .iter()
        .filter(|f| f.new == Some(true))
        .map(|f| f.id.as_str())
        .collect();
    assert_eq!(new, [dropped["id"].as_str().unwrap()]);
    assert!(results.has_new_findings());
}

#[test]
fn bad_baselines_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("results.json");
    std::fs::write(&path, r#"{"schema_version": 99}"#).unwrap();
    let err = load_baseline(&path).unwrap_err().to_string();
    assert!(
        err.contains("schema_version") && err.contains("expected 2"),
        "{err}"
    );
    let err = load_baseline(&dir.path().join("missing.json"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("cannot read the baseline"), "{err}");
}

#[test]
fn several_runs_get_one_markdown_table() {
    let table = summary_table(&[
        fixture_record("racy"),
        fixture_record("clean"),
        fixture_record("gil"),
    ]);
    insta::assert_snapshot!("summary_table", table);
    let (_, tables) = outline(&table);
    assert_eq!(tables, 1);
}

#[test]
fn the_plan_grows_with_problems_not_with_site_pairs() {
    // Five times the racy fixture's root causes (the same code, new ids): the same problems,
    // each listing five times the site pairs in its collapsed table.
    let mut run = fixture_record("racy");
    let before = render_markdown(&analyze(&run, None));
    let originals = run.triage.root_causes.clone();
    for copy in 1..=4 {
        run.triage
            .root_causes
            .extend(originals.iter().cloned().map(|mut rc| {
                rc.id = format!("{}-{copy}", rc.id);
                rc
            }));
    }
    let analysis = analyze(&run, None);
    let after = render_markdown(&analysis);
    let problems = analysis.results.counts.problems;
    assert_eq!(
        problems,
        analyze(&fixture_record("racy"), None)
            .results
            .counts
            .problems
    );
    let added_rows = 4 * originals.len();
    let grown = after.lines().count() - before.lines().count();
    assert!(
        grown <= added_rows,
        "{grown} lines for {added_rows} site pairs"
    );
    let (headings, _) = outline(&after);
    assert_eq!(
        headings
            .iter()
            .filter(|(_, text)| text.contains("problem-"))
            .count(),
        problems
    );
}

#[test]
fn an_undeclared_module_is_confirmed_by_the_import_check_and_planned_first() {
    let run = fixture_record("gil");
    let analysis = analyze(&run, None);
    let results = &analysis.results;
    assert_eq!(
        results.gil.declared,
        ftreview_reports::results::GilDeclared::Missing
    );
    let declare = results
        .findings
        .iter()
        .find(|f| f.rule == "FT101")
        .expect("FT101");
    assert_eq!(
        declare.status,
        Some(StaticStatus::Confirmed),
        "the GIL came back on at import"
    );
    assert_eq!(declare.fix.kind, FixKind::DeclareGil);
    assert_eq!(results.verdict.level, VerdictLevel::Close);
    let markdown = render_markdown(&analysis);
    assert!(
        markdown.contains("importing it **turns the GIL back on**"),
        "{markdown}"
    );
    assert!(
        markdown.contains("- [ ] Add `{Py_mod_gil, Py_MOD_GIL_NOT_USED}`"),
        "{markdown}"
    );
    assert!(markdown.contains(&format!("`{}`", declare.id)));
    insta::assert_snapshot!("gil_plan", portable(&markdown));
}

#[test]
fn a_run_whose_concurrent_phase_failed_says_so_in_the_verdict() {
    let mut run = fixture_record("clean");
    let phase = run
        .phases
        .iter_mut()
        .find(|p| p.phase == ftreview_reports::model::Phase::ParallelTests)
        .unwrap();
    phase.status = ftreview_reports::model::PhaseStatus::TimedOut;
    phase.message = Some("no progress for 900 s".into());
    run.exercised.concurrent_phase_ran = false;
    let analysis = analyze(&run, None);
    let reasons = &analysis.results.verdict.reasons;
    assert_ne!(analysis.results.verdict.level, VerdictLevel::Ready);
    assert!(
        reasons
            .iter()
            .any(|r| r == "phase `parallel-tests` timed out: no progress for 900 s"),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.starts_with("no multi-threaded phase completed")),
        "{reasons:?}"
    );
    assert!(render_markdown(&analysis).contains("**no multi-threaded phase completed**"));
}

#[test]
fn a_long_run_lists_a_few_commands_per_phase_and_counts_the_rest() {
    let mut run = fixture_record("racy");
    let template = run.environment.commands[0].clone();
    for n in 0..5 {
        run.environment
            .commands
            .push(ftreview_reports::model::CommandRecord {
                phase: Some(ftreview_reports::model::Phase::Stress),
                label: format!("stress scenario-{n}"),
                ..template.clone()
            });
    }
    // The fixture's own stress command and the first added one are listed.
    let plan = render_markdown(&analyze(&run, None));
    assert!(plan.contains("# stress scenario-0 "), "{plan}");
    assert!(!plan.contains("# stress scenario-1 "), "{plan}");
    assert!(
        plan.contains("# … 4 more `stress` command(s) in commands.jsonl"),
        "{plan}"
    );
}

#[test]
fn a_problem_with_many_site_pairs_lists_the_most_reported_and_counts_the_rest() {
    let run = fixture_record("racy");
    let mut analysis = analyze(&run, None);
    let problem = (analysis.results.findings.iter_mut())
        .find(|f| f.category == Category::Race)
        .unwrap();
    let template = problem.sites[0].clone();
    problem.sites = (0..25)
        .map(|n| ftreview_reports::results::SitePair {
            id: format!("tsan-pair-{n:02}"),
            count: n,
            ..template.clone()
        })
        .collect();
    let plan = render_markdown(&analysis);
    assert!(plan.contains("| `tsan-pair-24` |"), "{plan}");
    assert!(plan.contains("| `tsan-pair-05` |"), "{plan}");
    assert!(!plan.contains("| `tsan-pair-04` |"), "{plan}");
    assert!(
        plan.contains(
            "… 5 more site pair(s) with 10 report(s): this problem's `sites` in `results.json`."
        ),
        "{plan}"
    );
}
