// Each test binary uses a subset of these helpers.
#![allow(dead_code)]

//! Assembles RunRecords from the real evidence in `tests/data` (see its README): the runner's
//! part from `record.json`, the triage from real TSan logs through tsan-parse, the static scan
//! from the real sources through the static pass.

use std::path::{Path, PathBuf};

use ftreview_reports::RunRecord;
use tsan_parse::{Classifier, Origin, Phase, ReportSource, TriageOptions};

pub fn data_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

pub fn workspace_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// `logs/<phase>/<item>/tsan.N` → `phase: item`; pytest items get their node id.
fn origin_of(source: &ReportSource) -> Option<Origin> {
    let item_dir = source.file.parent()?;
    let item = item_dir.file_name()?.to_str()?;
    let phase_dir = item_dir.parent()?.file_name()?.to_str()?;
    let phase: Phase = serde_json::from_value(serde_json::Value::from(phase_dir)).ok()?;
    Some(match phase {
        Phase::ParallelTests => Origin::new(phase, format!("tests/test_api.py::{item}")),
        _ => Origin::new(phase, item),
    })
}

/// A RunRecord of `data/<name>` whose extension sources live in `source_dir`.
pub fn record(name: &str, extension: &str, source_dir: &Path, scan_dir: &Path) -> RunRecord {
    let dir = data_dir(name);
    let text = std::fs::read_to_string(dir.join("record.json")).unwrap();
    let mut run: RunRecord = serde_json::from_str(&text).unwrap();
    run.target.source_dir = source_dir.to_path_buf();
    let options = TriageOptions {
        classifier: Classifier::new(vec![extension.to_string()], Vec::new()),
        ..TriageOptions::default()
    };
    let logs = dir.join("logs");
    if logs.is_dir() {
        run.triage = tsan_parse::triage_paths(&[logs], &options, &origin_of).unwrap();
    }
    let scan = ftreview_static::scan_paths(&[scan_dir.to_path_buf()], &Default::default()).unwrap();
    run.static_scan = Some(relative_to(scan, source_dir));
    run
}

/// Static findings name files as scanned; make them relative to the source tree so snapshots
/// do not depend on where the checkout is.
fn relative_to(mut scan: ftreview_static::ScanReport, root: &Path) -> ftreview_static::ScanReport {
    let strip = |p: &mut PathBuf| {
        if let Ok(rel) = p.strip_prefix(root) {
            *p = rel.to_path_buf();
        }
    };
    scan.findings.iter_mut().for_each(|f| strip(&mut f.file));
    scan.files.iter_mut().for_each(|f| strip(&mut f.path));
    scan.methods.iter_mut().for_each(|m| strip(&mut m.file));
    for module in &mut scan.gil.modules {
        strip(&mut module.file);
        if let Some((file, _)) = &mut module.declared_at {
            strip(file);
        }
    }
    scan
}

/// A fixture extension's record: `racy` or `clean`.
pub fn fixture_record(which: &str) -> RunRecord {
    let source = workspace_dir().join(format!("test-fixtures/{which}_ext"));
    record(
        which,
        &format!("ftfixture_{which}"),
        &source,
        &source.join("src"),
    )
}

/// Output text with the checkout's location replaced, so snapshots hold on any machine.
pub fn portable(text: &str) -> String {
    text.replace(&workspace_dir().display().to_string(), "[WORKSPACE]")
}

/// One of the schemas shipped in `reports/schema`.
pub fn schema(name: &str) -> serde_json::Value {
    let path = workspace_dir().join("reports/schema").join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

pub fn assert_valid(schema: &serde_json::Value, instance: &serde_json::Value) {
    let validator = jsonschema::validator_for(schema).expect("the schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "invalid against the schema:\n{}",
        errors.join("\n")
    );
}
