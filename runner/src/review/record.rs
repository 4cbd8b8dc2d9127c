//! The review's record as it grows: every phase, every piece of evidence as it arrives, the
//! clustering kept up to date (so the first sight of each race is announced at once), and
//! `run.json` rewritten after each step so a failure or Ctrl-C keeps everything so far.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::OpenOptions;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use ftreview_reports::model::{CommandRecord, Phase, PhaseRecord, PhaseStatus, RunRecord};
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
    /// Distinct sets of extension functions seen racing (or crashing) together, and their
    /// count, which the stress phase reads to stop reseeding once rounds add none.
    function_sets: BTreeSet<BTreeSet<String>>,
    found: Arc<AtomicUsize>,
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
            function_sets: BTreeSet::new(),
            found: Arc::default(),
        }
    }

    /// The count of distinct sets of racing extension functions so far, as it grows.
    pub fn found(&self) -> Arc<AtomicUsize> {
        self.found.clone()
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
        }
    }

    fn evidence(&mut self, evidence: Evidence) {
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
                self.first_sight(&report);
            }
            kept.push(report);
        }
        self.append_findings(&kept);
        self.save();
    }

    /// A new root cause: counted as something new when its extension functions were not seen
    /// racing together before, and announced (a crash is announced with its record).
    fn first_sight(&mut self, report: &Report) {
        let classifier = self
            .reader
            .as_ref()
            .map(|r| r.classifier.clone())
            .unwrap_or_default();
        let frames = extension_frames(&classifier, report);
        if self.function_sets.insert(racing_functions(&frames)) {
            self.found.fetch_add(1, Ordering::Relaxed);
        }
        if report.crash.is_none() {
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

/// What makes a root cause new at a maintainer's grain: the functions racing, not their lines.
fn racing_functions(frames: &[ExtensionFrame]) -> BTreeSet<String> {
    frames.iter().map(|f| f.function.clone()).collect()
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

    const LOG: &str =
        include_str!("../../../tsan-parse/tests/fixtures/logs/pyext/clang_stress_1.log");

    fn functions(report: &Report) -> BTreeSet<String> {
        racing_functions(&extension_frames(&Classifier::default(), report))
    }

    #[test]
    fn the_same_functions_racing_at_other_lines_are_nothing_new() {
        let reports = tsan_parse::parse_str(LOG);
        let first = functions(&reports[0]);
        assert!(!first.is_empty(), "{:?}", reports[0]);
        let mut moved = reports[0].clone();
        for frame in moved.accesses.iter_mut().flat_map(|a| &mut a.stack.frames) {
            frame.line = frame.line.map(|line| line + 3);
        }
        assert_eq!(functions(&moved), first);
        assert_ne!(functions(&reports[1]), first);
    }
}
