//! Contract tests of `python/ftreview_helper.py`: each subcommand, run by the system python3
//! (no TSan interpreter needed) on the project's fixtures, prints one JSON document on stdout
//! alone, and it deserializes into the type the runner reads it as.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::de::DeserializeOwned;

use crate::build::ProjectInfo;
use crate::env::Installed;
use crate::phases::GilProbe;
use crate::rundir::HELPER;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../test-fixtures")
}

/// `python3 ftreview_helper.py ARGS`, its whole stdout parsed as `T`.
fn helper<T: DeserializeOwned>(args: &[&str]) -> T {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("ftreview_helper.py");
    std::fs::write(&script, HELPER).unwrap();
    let out = Command::new("python3")
        .arg(&script)
        .args(args)
        .output()
        .expect("python3 runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{args:?}: {stderr}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{args:?}: {e}\n{stdout}"))
}

#[test]
fn project_info_reads_every_fixtures_packaging() {
    for (fixture, name, testpath) in [
        ("racy_ext", "ftfixture-racy", Some("tests")),
        ("toplevel_ext", "ftfixture-toplevel", Some("tests")),
        ("build_cmake_ext", "ftfixture-cmake", None),
    ] {
        let root = fixtures().join(fixture);
        let info: ProjectInfo = helper(&["project-info", root.to_str().unwrap(), name]);
        assert!(
            info.build_backend.starts_with("setuptools"),
            "{fixture}: {info:?}"
        );
        if let Some(path) = testpath {
            assert!(
                info.testpaths.iter().any(|p| p == path),
                "{fixture}: {info:?}"
            );
        }
    }
}

#[test]
fn installed_lists_a_distributions_packages_and_modules() {
    let installed: Installed = helper(&["installed", "pip"]);
    assert_eq!(installed.name, "pip");
    assert!(
        installed.top_level.iter().any(|t| t == "pip"),
        "{installed:?}"
    );
    assert!(!installed.version.is_empty());
}

#[test]
fn gil_check_survives_an_interpreter_with_the_gil_and_a_failed_import() {
    let probe: GilProbe = helper(&["gil-check", "_json"]);
    assert_eq!(probe.module, "_json");
    assert!(probe.error.is_none(), "{probe:?}");
    assert_eq!(
        probe.gil_before, probe.gil_after,
        "importing _json changes nothing"
    );
    let missing: GilProbe = helper(&["gil-check", "no_such_module_here"]);
    assert!(
        missing
            .error
            .as_deref()
            .is_some_and(|e| e.starts_with("ModuleNotFoundError")),
        "{missing:?}"
    );
}
