//! Fixture-driven rule tests (ruff style): each directory under `tests/fixtures/` holds C files
//! for one rule module. A line that must produce a finding ends with `// expect: CODE severity`
//! (several separated by commas);
//! every other line must produce none of that rule's codes. A snapshot pins the full findings
//! (id, message, symbol, protection) of each directory.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use ftreview_static::{scan_paths, Finding, ScanOptions, ScanReport};

fn fixture_dir(rule: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rule)
}

/// (file name, line, code, severity) for every `// expect:` comment under `dir`.
fn expectations(dir: &Path) -> BTreeSet<(String, usize, String, String)> {
    let mut out = BTreeSet::new();
    for entry in walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
    {
        if !entry.file_type().is_file() {
            continue;
        }
        let text = std::fs::read_to_string(entry.path()).unwrap();
        let name = entry
            .path()
            .strip_prefix(dir)
            .unwrap()
            .display()
            .to_string();
        for (i, line) in text.lines().enumerate() {
            let Some((_, expect)) = line.split_once("// expect: ") else {
                continue;
            };
            // `// expect: FT401 medium, FT403 high`: several findings on one line.
            for one in expect.split(',') {
                let mut words = one.split_whitespace();
                let code = words.next().expect("a code after `expect:`").to_string();
                let severity = words.next().expect("a severity after the code").to_string();
                out.insert((name.clone(), i + 1, code, severity));
            }
        }
    }
    out
}

fn actual(
    dir: &Path,
    report: &ScanReport,
    codes: &[&str],
) -> BTreeSet<(String, usize, String, String)> {
    report
        .findings
        .iter()
        .filter(|f| codes.contains(&f.code.as_str()))
        .map(|f| {
            let name = f.file.strip_prefix(dir).unwrap().display().to_string();
            let severity = format!("{:?}", f.severity).to_lowercase();
            (name, f.span.line, f.code.clone(), severity)
        })
        .collect()
}

fn describe(f: &Finding) -> String {
    let symbol = f.symbol.as_ref().map(|s| match &s.container {
        Some(c) => format!("{:?} {c}.{}", s.kind, s.name),
        None => format!("{:?} {}", s.kind, s.name),
    });
    let mut out = format!(
        "{}:{}:{} {} {:?}/{:?} fn={} symbol={} id={}\n  {}\n  fix ({}): {}\n",
        f.file.file_name().unwrap().to_string_lossy(),
        f.span.line,
        f.span.column,
        f.code,
        f.severity,
        f.confidence,
        f.function.as_deref().unwrap_or("-"),
        symbol.as_deref().unwrap_or("-"),
        f.id,
        f.message,
        serde_json::to_value(f.fix_kind).unwrap().as_str().unwrap(),
        f.fix
    );
    if let Some(how) = &f.protected_by {
        let _ = writeln!(out, "  protected by: {how}");
    }
    if !f.entry_points.is_empty() {
        let _ = writeln!(out, "  entry points: {}", f.entry_points.join(", "));
    }
    out
}

fn check_rule(rule: &str, codes: &[&str]) -> ScanReport {
    let dir = fixture_dir(rule);
    let report = scan_paths(std::slice::from_ref(&dir), &ScanOptions::default()).unwrap();
    let expected = expectations(&dir);
    let found = actual(&dir, &report, codes);
    let missing: Vec<_> = expected.difference(&found).collect();
    let unexpected: Vec<_> = found.difference(&expected).collect();
    assert!(
        missing.is_empty() && unexpected.is_empty(),
        "{rule}: missing {missing:#?}\nunexpected {unexpected:#?}"
    );
    for file in &report.files {
        assert_eq!(
            file.functions_with_errors,
            0,
            "{} has parse errors",
            file.path.display()
        );
    }
    let snapshot: String = report
        .findings
        .iter()
        .filter(|f| codes.contains(&f.code.as_str()))
        .map(describe)
        .collect();
    insta::assert_snapshot!(rule, snapshot);
    report
}

#[test]
fn gil_declaration() {
    let report = check_rule("gil_declaration", &["FT101"]);
    let states: Vec<_> = report
        .gil
        .modules
        .iter()
        .map(|m| (m.name.as_str(), m.gil, m.phase))
        .collect();
    use ftreview_static::{GilState::*, InitPhase::*};
    assert_eq!(
        states,
        [
            ("used", Used, MultiPhase),
            ("declared", NotUsed, MultiPhase),
            ("missing", Missing, MultiPhase),
            ("good", NotUsed, SinglePhase),
            ("bad", Missing, SinglePhase),
        ]
    );
    assert_eq!(report.gil.state, Missing);
}

#[test]
fn global_state() {
    check_rule("global_state", &["FT201", "FT202"]);
}

#[test]
fn module_state() {
    check_rule("module_state", &["FT203"]);
}

#[test]
fn borrowed_refs() {
    check_rule("borrowed_refs", &["FT301", "FT302"]);
}

#[test]
fn object_state() {
    let report = check_rule("object_state", &["FT401", "FT402", "FT403"]);
    let resize = report
        .methods
        .iter()
        .find(|m| m.python_name == "resize")
        .expect("clinic METHODDEF binding");
    assert_eq!(resize.c_function, "widget_resize");
    assert_eq!(resize.owner_type.as_deref(), Some("objects.Widget"));
    // Of the two callers, only the unlocked one names the finding.
    let set_size = report
        .findings
        .iter()
        .find(|f| f.function.as_deref() == Some("buffer_set_size"))
        .unwrap();
    assert_eq!(set_size.entry_points, ["Buffer.clear"]);

    use ftreview_static::TypeDefinitionKind::*;
    let types: Vec<_> = report
        .types
        .iter()
        .map(|t| {
            let file = t.file.file_name().unwrap().to_string_lossy().into_owned();
            (
                file,
                t.c_name.as_str(),
                t.kind,
                t.name.as_deref(),
                t.object_struct.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        types,
        [
            (
                "callees.c".into(),
                "hasher_spec",
                Spec,
                Some("objects.Hasher"),
                Some("HasherObject")
            ),
            (
                "callers.c".into(),
                "buffer_spec",
                Spec,
                Some("objects.Buffer"),
                Some("BufferObject")
            ),
            (
                "static_type.c".into(),
                "ProxyType",
                StaticType,
                Some("objects.Proxy"),
                Some("ProxyObject")
            ),
            (
                "widget.c".into(),
                "widget_spec",
                Spec,
                Some("objects.Widget"),
                Some("WidgetObject")
            ),
        ]
    );
    let get = report.bindings_of("proxy_get").next().unwrap();
    assert_eq!(get.owner_type.as_deref(), Some("objects.Proxy"));
    assert_eq!(
        report
            .types_with_struct("BufferObject")
            .map(|t| t.c_name.as_str())
            .collect::<Vec<_>>(),
        ["buffer_spec"]
    );
}

#[test]
fn critical_section() {
    check_rule("critical_section", &["FT501", "FT502"]);
}

#[test]
fn libc_calls() {
    check_rule("libc_calls", &["FT601"]);
}
