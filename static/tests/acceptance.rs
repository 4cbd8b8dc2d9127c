//! The acceptance checks on real sources: multidict 6.7.1 from PyPI (through pip, as a
//! user gets it; skipped loudly when unreachable, a failure under FTREVIEW_REQUIRE_E2E=1) and
//! CPython's own `Modules/` (when FTREVIEW_CPYTHON_SRC points at an unpacked source tree;
//! skipped loudly otherwise, since nothing else here knows where one is).

use std::path::{Path, PathBuf};
use std::process::Command;

use ftreview_static::{scan_paths, GilState, ScanOptions, Severity, SymbolKind};

use ftreview_testkit::{cpython_src, skip as skip_or_fail};

/// The unpacked multidict 6.7.1 sdist, downloaded once into the test target dir.
fn multidict_sources() -> Option<PathBuf> {
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("static-multidict-sdist");
    let tree = cache.join("multidict-6.7.1");
    if tree.join("multidict/_multidict.c").is_file() {
        return Some(tree);
    }
    let fetched = Command::new("python3")
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
        .output()
        .map_err(|e| e.to_string())
        .and_then(|out| {
            if out.status.success() {
                Ok(())
            } else {
                Err(String::from_utf8_lossy(&out.stderr).into_owned())
            }
        })
        .and_then(|()| {
            let status = Command::new("tar")
                .arg("xzf")
                .arg(cache.join("multidict-6.7.1.tar.gz"))
                .arg("-C")
                .arg(&cache)
                .status()
                .map_err(|e| e.to_string())?;
            if status.success() {
                Ok(())
            } else {
                Err(format!("tar exited with {status}"))
            }
        });
    match fetched {
        Ok(()) => Some(tree),
        Err(why) => {
            skip_or_fail(&format!(
                "the multidict 6.7.1 sdist could not be fetched with pip: {why}"
            ));
            None
        }
    }
}

#[test]
fn multidict_reports_the_version_counter_the_hash_table_and_its_gil_declaration() {
    let Some(tree) = multidict_sources() else {
        return;
    };
    let report = scan_paths(&[tree.join("multidict")], &ScanOptions::default()).unwrap();

    assert_eq!(report.gil.state, GilState::NotUsed);
    let high: Vec<(String, String, String)> = report
        .findings_at_least(Severity::High)
        .map(|f| {
            let symbol = f.symbol.as_ref().unwrap();
            assert_eq!(symbol.kind, SymbolKind::Field);
            (
                f.code.clone(),
                symbol.container.clone().unwrap(),
                symbol.name.clone(),
            )
        })
        .collect();
    let expected = [
        ("FT401", "MultiDictObject", "keys"), // _md_resize frees the old table
        ("FT401", "MultiDictObject", "keys"), // clear() frees it too
        ("FT203", "mod_state", "global_version"), // ++state->global_version
    ];
    let mut expected: Vec<(String, String, String)> = expected
        .iter()
        .map(|(c, t, f)| (c.to_string(), t.to_string(), f.to_string()))
        .collect();
    let mut high_sorted = high.clone();
    high_sorted.sort();
    expected.sort();
    assert_eq!(
        high_sorted, expected,
        "every HIGH finding should be one of the known races"
    );

    let resize = report
        .findings
        .iter()
        .find(|f| f.function.as_deref() == Some("_md_resize"))
        .unwrap();
    assert!(
        resize.entry_points.iter().any(|e| e == "MultiDict.add"),
        "{:?}",
        resize.entry_points
    );
    let add = report.methods.iter().find(|m| {
        m.python_name == "add" && m.owner_type.as_deref() == Some("multidict._multidict.MultiDict")
    });
    assert!(add.is_some(), "MultiDict.add binding missing");
    let dict_types: Vec<_> = report
        .types_with_struct("MultiDictObject")
        .filter_map(|t| t.name.as_deref())
        .collect();
    assert_eq!(
        dict_types,
        [
            "multidict._multidict.MultiDict",
            "multidict._multidict.CIMultiDict"
        ]
    );
}

#[test]
fn cpython_modules_scan_completes_with_a_parse_quality() {
    let Some(root) = cpython_src() else {
        return;
    };
    let report = scan_paths(&[Path::new(&root).join("Modules")], &ScanOptions::default()).unwrap();
    assert!(report.files.len() > 300, "{} files", report.files.len());
    assert!(
        report.parse_quality() > 0.9,
        "parse quality {}",
        report.parse_quality()
    );
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    let sre = report
        .gil
        .modules
        .iter()
        .find(|m| m.name == "_sre")
        .expect("_sre module");
    assert_eq!(sre.gil, GilState::NotUsed);
}
