//! The python.org path end to end against a loopback mirror serving a real CPython release
//! tarball: download, pinned checksum, unpack, version check, configure. `CONFIG_SITE` stops
//! configure right after it starts, so nothing is built unless FTREVIEW_E2E_FULL_BUILD=1,
//! which then builds, verifies and publishes the interpreter with gcc (5+ minutes).

mod common;

use std::collections::HashMap;

use common::*;
use ftreview_toolchain::{
    ensure_interpreter, find_cached, known_releases, Compiler, CompilerChoice, Progress,
    SourceKind, SourceSpec,
};
use sha2::{Digest, Sha256};

#[test]
fn a_real_release_from_a_python_org_mirror_is_verified_unpacked_and_configured() {
    let Some(tarball) = ftreview_testkit::require(
        "no real CPython tarball on this machine (set FTREVIEW_TEST_CPYTHON_TARBALL)",
        real_cpython_tarball(),
    ) else {
        return;
    };
    let bytes = std::fs::read(&tarball).unwrap();
    let sha256 = hex::encode(Sha256::digest(&bytes));
    let release = known_releases()
        .into_iter()
        .find(|r| r.sha256 == sha256)
        .unwrap_or_else(|| panic!("{} is not a pinned python.org release", tarball.display()));
    let version = release.version;
    let base = serve(HashMap::from([(
        format!("/{version}/Python-{version}.tar.xz"),
        bytes,
    )]));

    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let site = dir.path().join("config.site");
    std::fs::write(
        &site,
        "echo 'config.site: the test stops configure here'\nexit 3\n",
    )
    .unwrap();
    // This test binary holds only this test, so setting the environment races with nothing.
    std::env::set_var("CONFIG_SITE", &site);
    let mut req = request(&cache, SourceSpec::PythonOrg, Some(version));
    req.python_org_mirror = Some(base);
    let err = build_error(&req);
    assert!(err.contains("configure failed"), "{err}");
    assert!(
        err.contains("config.site: the test stops configure here"),
        "{err}"
    );
    let kept = cache.join(format!("downloads/Python-{version}.tar.xz"));
    let kept_sha = hex::encode(Sha256::digest(std::fs::read(&kept).unwrap()));
    assert_eq!(
        kept_sha, sha256,
        "the verified download is kept for the next run"
    );
    assert_nothing_published(&cache);

    if std::env::var_os("FTREVIEW_E2E_FULL_BUILD").is_none() {
        eprintln!(
            "full python.org build skipped (set FTREVIEW_E2E_FULL_BUILD=1 to run it, 5+ min)"
        );
        return;
    }
    std::env::remove_var("CONFIG_SITE");
    req.compiler = CompilerChoice::Exactly(Compiler::Gcc);
    let built = ensure_interpreter(&req, &Progress::hidden()).unwrap();
    assert_eq!(built.source.kind, SourceKind::PythonOrg);
    assert_eq!(built.source.sha256.as_deref(), Some(sha256.as_str()));
    assert_eq!(built.compiler, Compiler::Gcc);
    let again = ensure_interpreter(&req, &Progress::hidden()).unwrap();
    assert_eq!(again.python, built.python);
    assert_eq!(
        find_cached(&cache, version, Some(Compiler::Gcc))
            .unwrap()
            .python,
        built.python
    );
}
