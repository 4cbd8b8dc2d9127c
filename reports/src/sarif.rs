//! SARIF 2.1.0 for GitHub code scanning: one result per finding, located in the source
//! tree (`SRCROOT`), fingerprinted by its stable id, `baselineState` set against a baseline.
//! Recognized protection (`info`) is left out.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::analyze::Analysis;
use crate::results::{Category, Finding, Severity, SourceLocation, StaticStatus};

const SARIF_SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";
const INFORMATION_URI: &str = "https://github.com/ftreview/ftreview";

/// Findings without a source location (crashes and hangs seen only as a dead process) are
/// left out: code scanning rejects results it cannot place. The plan and `results.json` keep them.
pub fn sarif(analysis: &Analysis) -> Value {
    let findings: Vec<&Finding> = analysis
        .results
        .findings
        .iter()
        .filter(|f| f.status != Some(StaticStatus::Protected) && !f.locations.is_empty())
        .collect();
    let rules = rules(&findings);
    let rule_index: BTreeMap<&str, usize> = rules
        .iter()
        .enumerate()
        .map(|(i, (id, _))| (id.as_str(), i))
        .collect();
    let results: Vec<Value> = findings
        .iter()
        .map(|f| result(f, rule_index[f.rule.as_str()]))
        .collect();
    json!({
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "ftreview",
                "version": analysis.results.tool.version,
                "informationUri": INFORMATION_URI,
                "rules": rules.into_iter().map(|(_, rule)| rule).collect::<Vec<_>>(),
            }},
            "originalUriBaseIds": {"SRCROOT": {"uri": directory_uri(&analysis.run.target.source_dir)}},
            "automationDetails": {"id": format!("ftreview/{}/", analysis.run.target.name)},
            "results": results,
        }]
    })
}

/// One rule per distinct rule id, described by its first finding's kind.
fn rules(findings: &[&Finding]) -> Vec<(String, Value)> {
    let mut rules: BTreeMap<String, Value> = BTreeMap::new();
    for f in findings {
        rules.entry(f.rule.clone()).or_insert_with(|| {
            json!({
                "id": f.rule,
                "name": rule_name(f),
                "shortDescription": {"text": rule_description(f)},
                "helpUri": INFORMATION_URI,
                "properties": {"tags": ["free-threading", "concurrency"]},
            })
        });
    }
    rules.into_iter().collect()
}

/// PascalCase of the kind: `DataRace`, `UnlockedFieldWrite`.
fn rule_name(f: &Finding) -> String {
    let words = match f.category {
        Category::Static => f
            .kind
            .split_once(' ')
            .map_or(f.kind.as_str(), |(_, name)| name),
        _ => f.kind.split(" (").next().unwrap_or(&f.kind),
    };
    words
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| w[..1].to_uppercase() + &w[1..])
        .collect()
}

fn rule_description(f: &Finding) -> String {
    match f.category {
        Category::Race => format!("Shared state racing under ThreadSanitizer: {}", f.kind),
        Category::Crash => "A process crashed under concurrent load".into(),
        Category::Hang => "A process stopped making progress under concurrent load".into(),
        Category::Anomaly => "A stress scenario saw an object's state break".into(),
        Category::Static => format!("Static free-threading hazard: {}", f.kind),
        Category::SingleThreaded => format!("A bug one thread is enough for: {}", f.kind),
    }
}

/// One result per finding at its primary location; the rest of its lines (for a problem:
/// every side of every site pair) are related locations.
fn result(f: &Finding, rule_index: usize) -> Value {
    // CPython's files are not in the repository the results are uploaded for.
    let in_repository = |l: &&SourceLocation| !l.in_interpreter;
    let mut locations: Vec<Value> = f
        .locations
        .iter()
        .filter(in_repository)
        .map(location)
        .collect();
    let mut others: Vec<Value> = locations.drain(locations.len().min(1)..).collect();
    others.extend(
        f.sites
            .iter()
            .flat_map(|s| &s.locations)
            .filter(in_repository)
            .filter(|l| f.locations.first().is_none_or(|first| first != *l))
            .map(location),
    );
    let related: Vec<Value> = others
        .into_iter()
        .enumerate()
        .map(|(i, mut l)| {
            l["id"] = json!(i + 1);
            l
        })
        .collect();
    let mut text = format!("{} Fix ({}): {}", f.title, f.fix.kind.label(), f.fix.action);
    if !f.related.is_empty() {
        text.push_str(&format!(" Related: {}.", f.related.join(", ")));
    }
    let mut result = json!({
        "ruleId": f.rule,
        "ruleIndex": rule_index,
        "level": level(f.severity),
        "message": {"text": text},
        "locations": locations,
        "partialFingerprints": {"ftreviewId/v1": f.id},
        "properties": {
            "id": f.id,
            "category": f.category,
            "severity": f.severity,
            "count": f.count,
            "fix": f.fix.kind,
        },
    });
    if !related.is_empty() {
        result["relatedLocations"] = json!(related);
    }
    if let Some(status) = f.status {
        result["properties"]["status"] = json!(status);
    }
    if let Some(new) = f.new {
        result["baselineState"] = json!(if new { "new" } else { "unchanged" });
    }
    result
}

fn location(l: &crate::results::SourceLocation) -> Value {
    let mut region = serde_json::Map::new();
    if let Some(line) = l.line.filter(|&n| n > 0) {
        region.insert("startLine".into(), json!(line));
        if let Some(column) = l.column.filter(|&n| n > 0) {
            region.insert("startColumn".into(), json!(column));
        }
    }
    let mut physical = json!({"artifactLocation": artifact(&l.file)});
    if !region.is_empty() {
        physical["region"] = Value::Object(region);
    }
    let mut location = json!({"physicalLocation": physical});
    if let Some(function) = &l.function {
        location["logicalLocations"] = json!([{"name": function, "kind": "function"}]);
    }
    location
}

/// Relative paths are relative to the source tree; absolute ones (outside it) become file URIs.
fn artifact(file: &str) -> Value {
    if file.starts_with('/') {
        json!({"uri": format!("file://{}", percent_encode(file))})
    } else {
        json!({"uri": percent_encode(file), "uriBaseId": "SRCROOT"})
    }
}

fn directory_uri(dir: &std::path::Path) -> String {
    let text = dir.display().to_string();
    let slash = if text.ends_with('/') { "" } else { "/" };
    format!("file://{}{slash}", percent_encode(&text))
}

fn percent_encode(path: &str) -> String {
    path.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn level(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical | Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low | Severity::Info => "note",
    }
}
