//! `ftreview scan` end to end on the static crate's rule fixtures (real files, real binary).

use std::path::PathBuf;

use assert_cmd::Command;
use predicates::prelude::*;

fn fixtures(rule: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../static/tests/fixtures")
        .join(rule)
}

fn scan() -> Command {
    Command::cargo_bin("ftreview").unwrap()
}

#[test]
fn findings_print_ruff_style_with_a_summary_and_exit_1() {
    scan()
        .args(["scan"])
        .arg(fixtures("module_state"))
        .assert()
        .code(1)
        .stdout(predicate::str::contains(
            "state.c:23:14: FT203 [high] module state field `state_t.version`",
        ))
        .stdout(predicate::str::contains(
            "    fix: use an atomic for `version`",
        ))
        .stdout(predicate::str::contains(
            "parse quality: 100.0% of functions parsed without errors",
        ))
        .stdout(predicate::str::contains(
            "Py_mod_gil: declared (Py_MOD_GIL_NOT_USED)",
        ));
}

#[test]
fn json_output_is_the_scan_report() {
    let output = scan()
        .args(["scan", "--json"])
        .arg(fixtures("libc_calls"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let codes: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap())
        .collect();
    assert!(codes.contains(&"FT601"), "{codes:?}");
    assert_eq!(report["files"][0]["functions_with_errors"], 0);
    assert_eq!(report["gil"]["state"], "no-module");
}

#[test]
fn threshold_above_every_finding_exits_0() {
    scan()
        .args(["scan", "--min-severity", "high"])
        .arg(fixtures("libc_calls"))
        .assert()
        .code(0);
}

#[test]
fn a_missing_path_is_a_clear_error_exit_2() {
    scan()
        .args(["scan", "/nonexistent/ext-src"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "/nonexistent/ext-src does not exist",
        ));
}
