//! Bad input never publishes anything and always says what went wrong.

mod common;

use std::collections::HashMap;

use common::*;
use ftreview_toolchain::SourceSpec;

const PINNED_3135: &str = "93e583f243454e6e9e4588ca2c2662206ad961659863277afcdb96801647d640";

#[test]
fn versions_that_do_not_exist_or_cannot_be_free_threaded_are_refused() {
    let cache = tempfile::tempdir().unwrap();
    let unknown = build_error(&request(cache.path(), SourceSpec::PythonOrg, Some("3.99")));
    assert!(
        unknown.contains("unknown CPython version `3.99`"),
        "{unknown}"
    );
    assert!(
        unknown.contains("3.13.5"),
        "names the known versions: {unknown}"
    );
    let old = build_error(&request(cache.path(), SourceSpec::Auto, Some("3.12")));
    assert!(old.contains("no free-threaded build"), "{old}");
    let nonsense = build_error(&request(cache.path(), SourceSpec::Auto, Some("latest")));
    assert!(nonsense.contains("not a CPython version"), "{nonsense}");
    assert_nothing_published(cache.path());
}

#[test]
fn python_org_checksum_mismatch_is_refused_and_the_download_discarded() {
    let cache = tempfile::tempdir().unwrap();
    let tampered = b"\xFD7zXZ\x00 definitely not CPython".to_vec();
    let base = serve(HashMap::from([(
        "/3.13.5/Python-3.13.5.tar.xz".to_string(),
        tampered,
    )]));
    let mut req = request(cache.path(), SourceSpec::PythonOrg, Some("3.13.5"));
    req.python_org_mirror = Some(base.clone());
    let err = build_error(&req);
    assert!(err.contains("checksum mismatch"), "{err}");
    assert!(
        err.contains(&format!("expected sha256 {PINNED_3135}")),
        "{err}"
    );
    assert!(
        err.contains(&format!("{base}/3.13.5/Python-3.13.5.tar.xz")),
        "names the URL: {err}"
    );
    assert!(!cache.path().join("downloads/Python-3.13.5.tar.xz").exists());
    assert!(!cache
        .path()
        .join("downloads/Python-3.13.5.tar.part")
        .exists());
    assert_nothing_published(cache.path());
}

#[test]
fn an_unreachable_python_org_is_named() {
    let cache = tempfile::tempdir().unwrap();
    let mut req = request(cache.path(), SourceSpec::PythonOrg, Some("3.13"));
    req.python_org_mirror = Some(closed_port_url());
    let err = build_error(&req);
    assert!(err.contains("cannot reach"), "{err}");
    assert_nothing_published(cache.path());
}

#[test]
fn urls_that_404_or_do_not_match_their_sha256_are_refused() {
    let cache = tempfile::tempdir().unwrap();
    let base = serve(HashMap::from([(
        "/src.tar.gz".to_string(),
        b"some bytes".to_vec(),
    )]));

    let missing = build_error(&request(
        cache.path(),
        SourceSpec::Url(format!("{base}/nope.tar.xz")),
        None,
    ));
    assert!(missing.contains("answered HTTP 404"), "{missing}");

    let mut req = request(
        cache.path(),
        SourceSpec::Url(format!("{base}/src.tar.gz")),
        None,
    );
    req.sha256 = Some("0".repeat(64));
    let mismatch = build_error(&req);
    assert!(mismatch.contains("checksum mismatch"), "{mismatch}");
    assert!(
        std::fs::read_dir(cache.path().join("downloads"))
            .unwrap()
            .flat_map(|d| std::fs::read_dir(d.unwrap().path()).unwrap())
            .next()
            .is_none(),
        "a refused download is not kept"
    );
    assert_nothing_published(cache.path());
}

#[test]
fn tarballs_with_paths_escaping_their_root_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let tarball = dir.path().join("evil.tar.gz");
    write_raw_tar_gz(
        &tarball,
        &[
            ("Python-3.13.5/configure", "#!/bin/sh\n"),
            ("Python-3.13.5/../../../escaped", "gotcha"),
        ],
    );
    let err = build_error(&request(&cache, SourceSpec::Path(tarball), None));
    assert!(err.contains("points outside the archive's root"), "{err}");
    assert!(!dir.path().join("escaped").exists());
    assert!(!cache.join("escaped").exists());
    assert_nothing_published(&cache);
}

#[test]
fn a_corrupt_tarball_is_named_as_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let truncated = dir.path().join("Python-3.13.5.tar.xz");
    match real_cpython_tarball() {
        // The first megabyte of a real release: valid xz header, then the data stops.
        Some(real) => {
            let bytes = std::fs::read(real).unwrap();
            std::fs::write(&truncated, &bytes[..1 << 20]).unwrap();
        }
        None => {
            eprintln!("no real CPython tarball here; truncating a synthetic one");
            let whole = dir.path().join("whole.tar.gz");
            write_raw_tar_gz(&whole, &[("Python-3.13.5/configure", &"x".repeat(1 << 16))]);
            let bytes = std::fs::read(&whole).unwrap();
            std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
        }
    }
    let err = build_error(&request(&cache, SourceSpec::Path(truncated), None));
    assert!(err.contains("corrupt or unreadable tarball"), "{err}");
    assert_nothing_published(&cache);
}

#[test]
fn a_failing_configure_quotes_its_log_and_a_rerun_starts_clean() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let tree = fake_source_tree(
        dir.path(),
        "echo checking for a working compiler... yes\necho 'configure: error: simulated failure' >&2\nexit 1",
    );
    let req = request(&cache, SourceSpec::Path(tree.clone()), None);
    for _attempt in 0..2 {
        let err = build_error(&req);
        assert!(err.contains("configure failed (exit status: 1)"), "{err}");
        assert!(err.contains("configure: error: simulated failure"), "{err}");
        let log = err
            .split_whitespace()
            .find(|w| w.ends_with("configure.log:"))
            .expect("error names the log")
            .trim_end_matches(':');
        assert!(std::path::Path::new(log).is_file(), "log kept at {log}");
        assert_nothing_published(&cache);
    }
    // The user's tree was copied, not built in.
    assert!(!tree.join("config.log").exists());
}

#[test]
fn a_source_path_that_does_not_exist_is_named() {
    let cache = tempfile::tempdir().unwrap();
    let err = build_error(&request(
        cache.path(),
        SourceSpec::Path("/nonexistent/cpython".into()),
        None,
    ));
    assert!(
        err.contains("/nonexistent/cpython: no such file or directory"),
        "{err}"
    );
}
