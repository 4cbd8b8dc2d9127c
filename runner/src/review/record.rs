//! The review's record as it grows: every phase, every piece of evidence as it arrives, the
//! clustering kept up to date (so the first sight of each race is announced at once), and
//! `run.json` rewritten after each step so a failure or Ctrl-C keeps everything so far.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::OpenOptions;
use std::io::Write;
use std::time::Instant;

use ftreview_reports::model::{CommandRecord, Phase, PhaseRecord, PhaseStatus, RunRecord};
use ftreview_reports::results::Category;
use tsan_parse::{Added, Classifier, ClusterOptions, Clusterer, FrameOrigin, Report, Suppressions};

use crate::events::{Event, Events, FirstSight};
use crate::phases::{Collected, Evidence, ReportReader};
use crate::process::Runner;
use crate::rundir::RunDir;

/// The record of one target's review.
pub(crate) struct Review {
    pub run_dir: RunDir,
    pub record: RunRecord,
    pub runner: Runner,
    pub events: Events,
    started: Instant,
    clusterer: Clusterer,
    reader: Option<ReportReader>,
    /// What the stress phase counts to stop reseeding once rounds add nothing.
    stress_problems: ProblemIds,
}

impl Review {
    pub fn new(run_dir: RunDir, record: RunRecord, runner: Runner, events: Events) -> Review {
        Review {
            run_dir,
            record,
            runner,
            events,
            started: Instant::now(),
            clusterer: Clusterer::new(Classifier::default(), ClusterOptions::default()),
            reader: None,
            stress_problems: ProblemIds::default(),
        }
    }

    /// How reports are read from here on.
    pub fn read_reports_with(&mut self, reader: ReportReader) {
        self.clusterer = Clusterer::new(reader.classifier.clone(), ClusterOptions::default());
        self.reader = Some(reader);
    }

    /// Applies the `race_top:` entries TSan was given again at triage time, past the inlined
    /// header helpers TSan compares them with.
    pub fn suppress_at_triage(&mut self, suppressions: Suppressions) {
        let unsuppressed = Clusterer::new(Classifier::default(), ClusterOptions::default());
        let clusterer = std::mem::replace(&mut self.clusterer, unsuppressed);
        self.clusterer = clusterer.with_suppressions(suppressions);
    }

    pub fn reader(&self) -> Option<ReportReader> {
        self.reader.clone()
    }

    pub fn elapsed_secs(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    pub fn phase(&mut self, record: PhaseRecord) {
        self.record.phases.push(record);
        self.save();
    }

    /// A phase that ends the run: record it, and say why.
    pub fn fail(&mut self, phase: Phase, started: Instant, err: &anyhow::Error) -> String {
        let message = format!("{err:#}");
        self.phase(PhaseRecord {
            phase,
            status: PhaseStatus::Error,
            duration_secs: started.elapsed().as_secs_f64(),
            items_run: None,
            reports: 0,
            message: message.lines().next().map(str::to_string),
            coverage: None,
            pytest: None,
        });
        format!("{phase}: {message}")
    }

    /// Takes in what a phase sent.
    pub fn absorb(&mut self, collected: Collected) {
        match collected {
            Collected::Evidence(evidence) => self.evidence(evidence),
            Collected::Scenario(scenario) => self.record.scenarios.push(scenario),
            Collected::Exercised {
                callables,
                c_callables,
            } => {
                self.record.exercised.python_callables.extend(callables);
                self.record.exercised.c_callables.extend(c_callables);
            }
            Collected::Phase(phase) => self.phase(phase),
            Collected::Layout(layout) => self.record.test_layout = Some(layout),
            Collected::SingleThreaded(bugs) => self.record.single_threaded.extend(bugs),
            Collected::ParallelTestsReachingExtension(n) => {
                self.record.exercised.parallel_tests_reaching_extension += n
            }
            Collected::StressProblemCount(reply) => {
                let _ = reply.send(self.stress_problems.count(&self.record));
            }
        }
    }

    fn evidence(&mut self, evidence: Evidence) {
        // A new crash or root cause can make a new problem; nothing else can.
        let mut changed = !evidence.crashes.is_empty();
        for crash in &evidence.crashes {
            self.announce(
                crash.kind.clone(),
                crash_site(crash),
                crash.origin.to_string(),
            );
        }
        for hang in &evidence.hangs {
            self.announce("hang".into(), Vec::new(), hang.origin.to_string());
        }
        for log in evidence.logs {
            tsan_parse::record_file(&mut self.clusterer, log);
        }
        self.record.crashes.extend(evidence.crashes);
        self.record.hangs.extend(evidence.hangs);
        let mut kept = Vec::with_capacity(evidence.reports.len());
        for mut report in evidence.reports {
            if let Some(reader) = &self.reader {
                reader.prepare(&mut report);
            }
            if self.clusterer.add(report.clone()) == Added::NewRootCause {
                changed = true;
                self.first_sight(&report);
            }
            kept.push(report);
        }
        self.append_findings(&kept);
        self.save();
        if changed {
            self.stress_problems.stale = true;
        }
    }

    /// A new root cause, announced (a crash is announced with its record).
    fn first_sight(&self, report: &Report) {
        if report.crash.is_none() {
            let classifier = self
                .reader
                .as_ref()
                .map(|r| r.classifier.clone())
                .unwrap_or_default();
            let frames = extension_frames(&classifier, report);
            let origin = report
                .origin
                .as_ref()
                .map(|o| o.to_string())
                .unwrap_or_default();
            let sites = frames.iter().map(ExtensionFrame::site).collect();
            self.announce(report.kind.to_string(), sites, origin);
        }
    }

    fn announce(&self, kind: String, sites: Vec<String>, origin: String) {
        self.events.emit(Event::Found(FirstSight {
            kind,
            sites,
            origin,
            elapsed: self.started.elapsed(),
        }));
    }

    /// `findings/reports.jsonl`: every parsed report with its origin, one per line, as it came.
    fn append_findings(&self, reports: &[Report]) {
        let Ok(dir) = self.run_dir.findings() else {
            return;
        };
        let Ok(mut file) = OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("reports.jsonl"))
        else {
            return;
        };
        for report in reports {
            if let Ok(line) = serde_json::to_string(report) {
                let _ = writeln!(file, "{line}");
            }
        }
    }

    /// Clusters what was collected and writes run.json.
    pub fn save(&mut self) {
        self.record.triage = self.clusterer.clone().finish();
        self.record.environment.commands = command_records(&self.runner);
        if let Err(err) = self.record.save(&self.run_dir.root) {
            self.events.warn(&format!("{err:#}"));
        }
    }
}

fn command_records(runner: &Runner) -> Vec<CommandRecord> {
    runner
        .history()
        .into_iter()
        .map(|step| CommandRecord {
            phase: step.phase,
            label: step.label,
            argv: step.argv,
            cwd: step.cwd,
            env: step.env.into_iter().collect::<BTreeMap<_, _>>(),
        })
        .collect()
}

/// The innermost extension frame of one side of a report.
struct ExtensionFrame {
    file: String,
    line: Option<u32>,
    function: String,
}

impl ExtensionFrame {
    /// `file.c:12 (function)`, for the progress display.
    fn site(&self) -> String {
        let line = self.line.map(|l| format!(":{l}")).unwrap_or_default();
        format!("{}{line} ({})", self.file, self.function)
    }
}

/// The ids of the problems and crashes the stress phase showed so far. The analysis behind
/// them reads the whole record, so it is redone only when asked after new root causes or
/// crashes came in.
#[derive(Default)]
struct ProblemIds {
    ids: BTreeSet<String>,
    stale: bool,
}

impl ProblemIds {
    fn count(&mut self, run: &RunRecord) -> usize {
        if std::mem::take(&mut self.stale) {
            self.ids.extend(problem_ids(run));
        }
        self.ids.len()
    }
}

/// What makes the stress phase's evidence new at a maintainer's grain: a problem (one piece
/// of shared state and its fix) or a crash site its scenarios had not shown, not one more pair
/// of functions racing on known state. A crash linked to a problem is that problem's (a heap
/// the race corrupted faults wherever it is next touched), and hangs are left out: each hung
/// process is its own finding. What the suites running beside it find is theirs: it says
/// nothing about whether more stress pays.
fn problem_ids(run: &RunRecord) -> impl Iterator<Item = String> {
    ftreview_reports::analyze(run, None)
        .results
        .findings
        .into_iter()
        .filter(|f| match f.category {
            Category::Race => true,
            Category::Crash => f.related.is_empty(),
            _ => false,
        })
        .filter(|f| f.origins.iter().any(|o| o.phase == Phase::Stress))
        .map(|f| f.id)
}

/// The extension frame nearest the top of each side.
fn extension_frames(classifier: &Classifier, report: &Report) -> Vec<ExtensionFrame> {
    let mut report = report.clone();
    classifier.classify_report(&mut report);
    report
        .accesses
        .iter()
        .map(|a| &a.stack)
        .chain(report.stacks.iter())
        .filter_map(|stack| {
            let frame = stack
                .frames
                .iter()
                .find(|f| f.origin == FrameOrigin::Extension)?;
            let file = frame.file.as_deref()?;
            Some(ExtensionFrame {
                file: file.rsplit('/').next().unwrap_or(file).to_string(),
                line: frame.line,
                function: frame.function.as_deref().unwrap_or("?").to_string(),
            })
        })
        .collect()
}

fn crash_site(crash: &ftreview_reports::model::CrashRecord) -> Vec<String> {
    crash
        .native_stack
        .as_deref()
        .and_then(|s| s.lines().next())
        .map(|l| vec![l.trim().to_string()])
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOGS: &str = "../reports/tests/data/racy/logs/stress";

    /// The recorded racy run with the triage of `logs` (real fixture logs, from stress
    /// scenarios), and the sets of extension functions racing in them.
    fn run_after(logs: &[&str]) -> (RunRecord, BTreeSet<BTreeSet<String>>) {
        run_after_in(Phase::Stress, logs)
    }

    /// The same, with the reports as if `phase` had made them.
    fn run_after_in(phase: Phase, logs: &[&str]) -> (RunRecord, BTreeSet<BTreeSet<String>>) {
        let (_dir, mut run) = crate::testdata::recorded_run();
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        run.target.source_dir = root.join("../test-fixtures/racy_ext");
        let classifier = Classifier::new(vec!["ftfixture_racy".into()], Vec::new());
        let mut clusterer = Clusterer::new(classifier.clone(), ClusterOptions::default());
        let mut function_sets = BTreeSet::new();
        for log in logs {
            let text = std::fs::read_to_string(root.join(LOGS).join(log)).unwrap();
            for mut report in tsan_parse::parse_str(&text) {
                report.origin = Some(tsan_parse::Origin::new(phase, *log));
                let frames = extension_frames(&classifier, &report);
                function_sets.insert(frames.into_iter().map(|f| f.function).collect());
                clusterer.add(report);
            }
        }
        run.triage = clusterer.finish();
        (run, function_sets)
    }

    const VECTOR: &str = "shared_vector/tsan.8730";
    const MODULE: &str = "module_functions/tsan.8935";

    #[test]
    fn more_functions_racing_on_known_objects_are_nothing_new_and_a_global_is() {
        // Its Vector objects race through `self` and through an argument: two problems.
        let (run, function_sets) = run_after(&[VECTOR]);
        let vector: BTreeSet<String> = problem_ids(&run).collect();
        assert_eq!(vector.len(), 2, "{vector:?}");
        assert!(function_sets.len() > 2 * vector.len(), "{function_sets:?}");
        let both: BTreeSet<String> = problem_ids(&run_after(&[VECTOR, MODULE]).0).collect();
        assert!(both.is_superset(&vector) && both.len() == 3, "{both:?}");
    }

    #[test]
    fn a_crash_in_a_problems_code_is_that_problems_and_one_elsewhere_is_new() {
        let (mut run, _) = run_after(&[VECTOR]);
        let crash = |item: &str, frame: &str| ftreview_reports::model::CrashRecord {
            origin: tsan_parse::Origin::new(Phase::Stress, item),
            kind: "SEGV".into(),
            signal: Some(11),
            python_stack: None,
            native_stack: Some(format!("    #0 {frame} ftfixture_racy.c:140\n")),
            reproducer: None,
        };
        run.crashes.push(crash(VECTOR, "vector_push"));
        assert_eq!(
            problem_ids(&run).count(),
            2,
            "a SEGV in vector_push where Vector raced belongs to the Vector problem"
        );
        run.crashes
            .push(crash("another.scenario", "unrelated_function"));
        assert_eq!(problem_ids(&run).count(), 3);
    }

    #[test]
    fn what_the_suites_found_is_not_the_stress_phases_news() {
        let (suites, _) = run_after_in(Phase::ParallelTests, &[VECTOR, MODULE]);
        assert!(!ftreview_reports::analyze(&suites, None)
            .results
            .findings
            .is_empty());
        assert_eq!(problem_ids(&suites).count(), 0);
    }

    #[test]
    fn problems_are_recounted_only_after_new_evidence_and_never_uncounted() {
        let mut problems = ProblemIds::default();
        let (vector, _) = run_after(&[VECTOR]);
        assert_eq!(problems.count(&vector), 0, "nothing came in yet");
        problems.stale = true;
        assert_eq!(problems.count(&vector), 2);
        let (both, _) = run_after(&[VECTOR, MODULE]);
        assert_eq!(problems.count(&both), 2, "no new evidence, no new analysis");
        problems.stale = true;
        assert_eq!(problems.count(&both), 3);
        problems.stale = true;
        assert_eq!(problems.count(&vector), 3);
    }
}
