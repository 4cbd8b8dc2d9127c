//! Reading a phase's TSan logs and saying which test or scenario produced each report.
//!
//! The pytest plugin records, per test, the byte range of the process's log file
//! (`tsan.<pid>`) the test wrote; a report starting inside a range belongs to that test.
//! Scenarios run in their own log directory, so all their reports are theirs.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use tsan_parse::{FileSummary, Origin, Phase, Report};

/// One line of the plugin's `tests.jsonl`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum TestEvent {
    Start {
        nodeid: String,
        pid: u32,
        #[serde(default)]
        offset: u64,
    },
    Test {
        nodeid: String,
        pid: u32,
        start: u64,
        end: u64,
        /// Calls into the extension's compiled modules during the test.
        #[serde(default)]
        ext_calls: u64,
    },
    /// Tests collected, before any deselection.
    Collected {
        count: u64,
    },
    Deselected {
        reason: String,
        count: u64,
    },
    CollectError {
        nodeid: String,
        error: String,
    },
    /// A test stopped at the per-test timeout.
    Slow {
        nodeid: String,
        seconds: f64,
    },
    /// The session stopped early (the phase's budget share ran out).
    Stopped {
        reason: String,
        remaining: u64,
    },
    Session {
        #[serde(default)]
        modules: HashMap<String, Option<String>>,
    },
}

/// Reads the events file; missing file or torn last line (a crash mid-write) are tolerated.
pub fn read_events(path: &Path) -> Vec<TestEvent> {
    let text = fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

/// The test that started and never finished (what was running at a crash or hang).
pub fn unfinished_test(events: &[TestEvent]) -> Option<String> {
    let mut running: Option<&str> = None;
    for event in events {
        match event {
            TestEvent::Start { nodeid, .. } => running = Some(nodeid),
            TestEvent::Test { nodeid, .. } if running == Some(nodeid.as_str()) => running = None,
            _ => {}
        }
    }
    running.map(str::to_string)
}

/// Log files TSan wrote into `dir` (`tsan.<pid>`), sorted.
pub fn tsan_logs(dir: &Path) -> Vec<PathBuf> {
    let mut logs: Vec<PathBuf> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("tsan."))
        })
        .collect();
    logs.sort();
    logs
}

fn pid_of_log(path: &Path) -> Option<u32> {
    path.extension()?.to_str()?.parse().ok()
}

/// Every report of every log in `dir`, with what reading each log found (its size, TSan's
/// own failures, why reading stopped): the run record keeps those.
pub fn read_logs(dir: &Path) -> (Vec<Report>, Vec<FileSummary>) {
    let mut reports = Vec::new();
    let summaries = tsan_logs(dir)
        .iter()
        .map(|log| tsan_parse::parse_file(log, &mut |report| reports.push(report)))
        .collect();
    (reports, summaries)
}

/// The reports of `dir` alone.
pub fn read_reports(dir: &Path) -> Vec<Report> {
    read_logs(dir).0
}

/// Sets `origin` on each report: the test whose range holds it, or no item for the rest
/// (collection, session teardown).
pub fn attribute_to_tests(reports: &mut [Report], events: &[TestEvent], phase: Phase) {
    let mut ranges: HashMap<u32, Vec<(u64, u64, &str)>> = HashMap::new();
    for event in events {
        if let TestEvent::Test {
            nodeid,
            pid,
            start,
            end,
            ..
        } = event
        {
            ranges.entry(*pid).or_default().push((*start, *end, nodeid));
        }
    }
    // A test that started and never finished (its process crashed or hung) owns the rest of
    // its process's log.
    for event in events {
        if let TestEvent::Start {
            nodeid,
            pid,
            offset,
        } = event
        {
            let finished = ranges.get(pid).is_some_and(|r| {
                r.iter()
                    .any(|(start, _, id)| id == nodeid && start == offset)
            });
            if !finished {
                ranges
                    .entry(*pid)
                    .or_default()
                    .push((*offset, u64::MAX, nodeid));
            }
        }
    }
    for report in reports.iter_mut() {
        let pid = pid_of_log(&report.source.file).or(report.pid);
        let offset = report.source.byte_offset;
        let test = pid
            .and_then(|pid| ranges.get(&pid))
            .and_then(|r| {
                r.iter()
                    .find(|(start, end, _)| *start <= offset && offset < *end)
            })
            .map(|(_, _, id)| *id);
        report.origin = Some(Origin {
            phase,
            item: test.map(str::to_string),
        });
    }
}

/// Sets the same origin on every report (a scenario's own log directory).
pub fn attribute_all(reports: &mut [Report], origin: &Origin) {
    for report in reports {
        report.origin = Some(origin.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "==================
WARNING: ThreadSanitizer: data race (pid=42)
  Write of size 8 at 0x7b0400000010 by thread T2:
    #0 bump counter.c:10:5 (racy.so+0x1234)

  Previous write of size 8 at 0x7b0400000010 by thread T1:
    #0 bump counter.c:10:5 (racy.so+0x1234)

SUMMARY: ThreadSanitizer: data race counter.c:10:5 in bump
==================
";

    fn events(pid: u32, ranges: &[(&str, u64, u64)]) -> Vec<TestEvent> {
        ranges
            .iter()
            .map(|(id, start, end)| TestEvent::Test {
                nodeid: id.to_string(),
                pid,
                start: *start,
                end: *end,
                ext_calls: 0,
            })
            .collect()
    }

    #[test]
    fn reports_land_in_the_test_whose_range_holds_them() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("tsan.42");
        // Two reports: one written during test_a, one during test_b.
        fs::write(&log, format!("{LOG}{LOG}")).unwrap();
        let mut reports = read_reports(dir.path());
        assert_eq!(reports.len(), 2);
        let len = LOG.len() as u64;
        attribute_to_tests(
            &mut reports,
            &events(
                42,
                &[("t.py::test_a", 0, len), ("t.py::test_b", len, 2 * len)],
            ),
            Phase::Tests,
        );
        assert_eq!(
            reports[0].origin,
            Some(Origin::new(Phase::Tests, "t.py::test_a"))
        );
        assert_eq!(
            reports[1].origin,
            Some(Origin::new(Phase::Tests, "t.py::test_b"))
        );
    }

    #[test]
    fn reports_of_other_processes_or_outside_tests_are_marked() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("tsan.7"), LOG).unwrap();
        let mut reports = read_reports(dir.path());
        attribute_to_tests(
            &mut reports,
            &events(42, &[("t.py::test_a", 0, 10_000)]),
            Phase::Tests,
        );
        assert_eq!(reports[0].origin, Some(Origin::outside(Phase::Tests)));
    }

    #[test]
    fn a_crashed_test_owns_the_rest_of_its_log() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("tsan.42"), LOG).unwrap();
        let mut reports = read_reports(dir.path());
        let mut events = events(42, &[("t.py::ok", 0, 0)]);
        events.push(TestEvent::Start {
            nodeid: "t.py::boom".into(),
            pid: 42,
            offset: 0,
        });
        attribute_to_tests(&mut reports, &events, Phase::Tests);
        assert_eq!(
            reports[0].origin,
            Some(Origin::new(Phase::Tests, "t.py::boom"))
        );
    }

    #[test]
    fn finds_the_test_running_at_a_crash() {
        let lines = [
            r#"{"event": "start", "nodeid": "t.py::ok", "pid": 1}"#,
            r#"{"event": "test", "nodeid": "t.py::ok", "pid": 1, "log": null, "start": 0, "end": 0, "outcome": "passed"}"#,
            r#"{"event": "start", "nodeid": "t.py::boom", "pid": 1}"#,
            r#"{"event": "te"#,
        ];
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tests.jsonl");
        fs::write(&path, lines.join("\n")).unwrap();
        let events = read_events(&path);
        assert_eq!(events.len(), 3);
        assert_eq!(unfinished_test(&events).as_deref(), Some("t.py::boom"));
    }
}
