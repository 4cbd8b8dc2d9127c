//! Checks of the real interpreter CI builds once (`ftreview build-python`), found through
//! FTREVIEW_PYTHON or the default cache. Skipped loudly when there is none, unless
//! FTREVIEW_REQUIRE_E2E=1.

use std::path::{Path, PathBuf};

use ftreview_toolchain::{
    default_cache_dir, ensure_interpreter, find_cached, load_manifest, BuildRequest,
    CompilerChoice, Interpreter, Progress, SourceKind, SourceSpec,
};

fn cached_interpreter() -> Option<Interpreter> {
    if let Some(python) = std::env::var_os("FTREVIEW_PYTHON").filter(|p| !p.is_empty()) {
        let interp = Interpreter::from_python(Path::new(&python));
        return Some(interp.expect("FTREVIEW_PYTHON must be a free-threaded TSan interpreter"));
    }
    ftreview_testkit::require(
        &format!(
            "no TSan interpreter: FTREVIEW_PYTHON unset and none cached in {}",
            default_cache_dir().display()
        ),
        find_cached(&default_cache_dir(), "", None),
    )
}

/// The cache root of a cached interpreter: `<root>/pythons/<key>/install`.
fn cache_root(interp: &Interpreter) -> Option<PathBuf> {
    Some(interp.prefix.parent()?.parent()?.parent()?.to_path_buf())
}

#[test]
fn the_cached_build_was_verified_before_it_was_published() {
    let Some(interp) = cached_interpreter() else {
        return;
    };
    let Ok(manifest) = load_manifest(&interp) else {
        eprintln!(
            "{} was not built by ftreview; no manifest to check",
            interp.python.display()
        );
        return;
    };
    let checks = &manifest.verification;
    assert!(checks.gil_disabled);
    assert!(
        checks.cflags.contains("-fsanitize=thread"),
        "{}",
        checks.cflags
    );
    assert!(
        checks
            .canary_report
            .contains("WARNING: ThreadSanitizer: data race"),
        "{}",
        checks.canary_report
    );
    assert!(
        checks.canary_report.contains("canary"),
        "{}",
        checks.canary_report
    );
    assert!(
        checks.pip_version.starts_with("pip "),
        "{}",
        checks.pip_version
    );
    for flag in [
        "--disable-gil",
        "--with-thread-sanitizer",
        "--disable-test-modules",
    ] {
        assert!(manifest.configure_args.iter().any(|a| a == flag), "{flag}");
    }
    let sha = interp
        .source
        .sha256
        .as_deref()
        .expect("tarball sources record their checksum");
    assert_eq!(sha.len(), 64);
    assert!(!interp.source.checksum_note.is_empty());
    assert!(
        !interp.suppressions.is_empty(),
        "CPython's TSan suppressions are kept"
    );
    for file in &interp.suppressions {
        assert!(file.is_file(), "{}", file.display());
    }
    let entry = interp.prefix.parent().unwrap();
    for log in [
        "configure.log",
        "make.log",
        "install.log",
        "compileall.log",
        "verify.log",
    ] {
        assert!(entry.join("logs").join(log).is_file(), "{log} kept");
    }
    assert_eq!(
        std::fs::metadata(&interp.python).unwrap().len(),
        manifest.python_size
    );
}

#[test]
fn from_python_recognises_the_build_and_rejects_a_gil_python() {
    let Some(interp) = cached_interpreter() else {
        return;
    };
    let again = Interpreter::from_python(&interp.python).unwrap();
    assert_eq!(again.version, interp.version);
    assert_eq!(again.compiler, interp.compiler);
    assert_eq!(again.suppressions, interp.suppressions);
    if let Some(system) = ["/usr/bin/python3", "/usr/local/bin/python3"]
        .iter()
        .map(Path::new)
        .find(|p| p.is_file())
    {
        let err = format!("{:#}", Interpreter::from_python(system).unwrap_err());
        assert!(err.contains("not a free-threaded build"), "{err}");
    }
}

/// Runs `code` with the interpreter's own command (prefix included) and returns stdout.
fn run_python(interp: &Interpreter, code: &str) -> String {
    let out = interp
        .command(["-c", code])
        .env("TSAN_OPTIONS", "report_bugs=0")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn the_interpreter_runs_free_threaded_with_its_command_prefix() {
    let Some(interp) = cached_interpreter() else {
        return;
    };
    let gil = run_python(&interp, "import sys; print(sys._is_gil_enabled())");
    assert_eq!(gil, "False");
}

#[test]
fn the_interpreter_runs_under_setarch_when_aslr_demands_it() {
    let Some(mut interp) = cached_interpreter() else {
        return;
    };
    interp.needs_setarch = true;
    assert_eq!(interp.command_prefix()[0], "setarch");
    let personality = run_python(
        &interp,
        "print(open('/proc/self/personality').read().strip())",
    );
    // ADDR_NO_RANDOMIZE.
    assert_eq!(personality, "00040000");
}

#[test]
fn a_second_build_request_returns_the_cached_interpreter() {
    let Some(interp) = cached_interpreter() else {
        return;
    };
    let official = matches!(
        interp.source.kind,
        SourceKind::Debian | SourceKind::PythonOrg
    );
    let Some(root) = cache_root(&interp).filter(|_| official && load_manifest(&interp).is_ok())
    else {
        eprintln!(
            "{} is not an official release build in an ftreview cache",
            interp.python.display()
        );
        return;
    };
    let mut request = BuildRequest::new(root);
    request.version = Some(interp.version.clone());
    request.source = SourceSpec::Debian;
    request.compiler = CompilerChoice::Exactly(interp.compiler);
    let again = ensure_interpreter(&request, &Progress::hidden()).unwrap();
    assert_eq!(again.python, interp.python);
}
