//! multidict 6.7.1: the plan names the version-counter and hash-table races with file:line
//! and a fix, and the static findings they confirm. The TSan log is real (see
//! tests/data/README.md); the sources come from PyPI through pip, as a user's run gets them.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use ftreview_reports::results::{Category, FixKind, StaticStatus};
use ftreview_reports::{analyze, render_markdown, results_json, sarif, RunRecord};

const SDIST: &str = "multidict-6.7.1";

/// The unpacked sdist, downloaded once into the test target dir; `None` (after saying why)
/// when PyPI cannot be reached, unless FTREVIEW_REQUIRE_E2E=1 makes that a failure.
fn multidict_sources() -> Option<PathBuf> {
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("multidict-sdist");
    let tree = cache.join(SDIST);
    if tree.join("multidict/_multidict.c").is_file() {
        return Some(tree);
    }
    let download = Command::new("python3")
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--no-binary",
            ":all:",
            "multidict==6.7.1",
            "-d",
        ])
        .arg(&cache)
        .output();
    let unpack = |archive: &Path| {
        Command::new("tar")
            .arg("xzf")
            .arg(archive)
            .arg("-C")
            .arg(&cache)
            .status()
    };
    match download {
        Ok(out)
            if out.status.success()
                && unpack(&cache.join(format!("{SDIST}.tar.gz"))).is_ok_and(|s| s.success()) =>
        {
            Some(tree)
        }
        other => {
            let why = match other {
                Ok(out) => String::from_utf8_lossy(&out.stderr).into_owned(),
                Err(err) => err.to_string(),
            };
            ftreview_testkit::skip(&format!(
                "the multidict 6.7.1 sdist could not be fetched with pip: {why}"
            ));
            None
        }
    }
}

fn multidict_record(tree: &Path) -> RunRecord {
    let mut run = common::record("multidict", "_multidict", tree, &tree.join("multidict"));
    let archive = tree.parent().unwrap().join(format!("{SDIST}.tar.gz"));
    run.target.sdist_sha256 = Some(sha256(&archive));
    run
}

fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn plan_names_the_version_counter_and_hash_table_races_with_fixes() {
    let Some(tree) = multidict_sources() else {
        return;
    };
    let run = multidict_record(&tree);
    let analysis = analyze(&run, None);
    let results = &analysis.results;
    let races: Vec<_> = results
        .findings
        .iter()
        .filter(|f| f.category == Category::Race)
        .collect();

    let counter = races
        .iter()
        .find(|f| {
            f.variable
                .as_deref()
                .is_some_and(|v| v.ends_with("global_version"))
        })
        .expect("the version-counter race");
    assert_eq!(
        counter.locations[0].display(),
        "multidict/_multilib/state.h:131:12"
    );
    assert_eq!(counter.fix.kind, FixKind::Atomic);

    let table_races: Vec<_> = races
        .iter()
        .filter(|f| {
            f.locations
                .iter()
                .any(|l| l.file == "multidict/_multilib/hashtable.h")
        })
        .collect();
    assert!(table_races.len() >= 2, "{races:#?}");
    assert!(
        table_races
            .iter()
            .all(|f| f.fix.kind == FixKind::CriticalSection),
        "{table_races:#?}"
    );
    let confirmed: Vec<_> = results
        .findings
        .iter()
        .filter(|f| f.status == Some(StaticStatus::Confirmed))
        .collect();
    assert!(
        table_races.iter().any(|race| race
            .related
            .iter()
            .any(|id| confirmed.iter().any(|f| &f.id == id))),
        "a hash-table race confirms a static finding"
    );
    assert!(
        counter
            .related
            .iter()
            .any(|id| confirmed.iter().any(|f| &f.id == id)),
        "{counter:#?}"
    );

    common::assert_valid(&common::schema("sarif-2.1.0-rtm.5.json"), &sarif(&analysis));
    let json: serde_json::Value = serde_json::from_str(&results_json(results)).unwrap();
    common::assert_valid(&common::schema("results.schema.json"), &json);

    let hang = results
        .findings
        .iter()
        .find(|f| f.category == Category::Hang)
        .expect("the hang");
    assert!(hang.title.contains("stress: shared_multidict"), "{hang:#?}");

    let markdown = render_markdown(&analysis);
    assert!(markdown.contains("<summary>Python stacks</summary>"));
    for needle in [
        "multidict/_multilib/state.h:131",
        "multidict/_multilib/hashtable.h:",
        "**Fix — atomic:**",
        "**Fix — critical section:**",
    ] {
        assert!(markdown.contains(needle), "the plan lacks {needle}");
    }
    insta::assert_snapshot!(
        "multidict_plan",
        markdown.replace(&tree.display().to_string(), "[SDIST]")
    );
}
