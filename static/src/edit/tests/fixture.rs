//! The patches on the racy fixture's real source: the diff applies with `git apply -p1` at the
//! tree root, the edited file parses, and it builds against free-threaded 3.13 headers.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{parses_cleanly, refusal, source};
use crate::edit::{atomic_patch, critical_section_patch, AtomicTarget, Patch, SourceFile};

const FIXTURE_C: &str = "src/ftfixture_racy.c";

fn fixture_root() -> PathBuf {
    ftreview_testkit::fixtures_dir().join("racy_ext")
}

fn fixture_sources() -> Vec<SourceFile> {
    let text = std::fs::read_to_string(fixture_root().join(FIXTURE_C)).expect("fixture source");
    vec![source(FIXTURE_C, &text)]
}

fn names(functions: &[&str]) -> Vec<String> {
    functions.iter().map(|f| f.to_string()).collect()
}

/// Applies the diff with git in a copy of the fixture tree; returns the copy and the edited
/// file's text there.
fn apply_in_copy(patch: &Patch) -> (tempfile::TempDir, String) {
    let copy = tempfile::tempdir().unwrap();
    copy_tree(&fixture_root(), copy.path());
    let diff = copy.path().join("fix.diff");
    std::fs::write(&diff, patch.unified_diff()).unwrap();
    for args in [&["apply", "--check", "-p1"][..], &["apply", "-p1"]] {
        let out = Command::new("git")
            .args(args)
            .arg(&diff)
            .current_dir(copy.path())
            .output()
            .expect("running git");
        assert!(
            out.status.success(),
            "git {args:?}: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            patch.unified_diff()
        );
    }
    let edited = std::fs::read_to_string(copy.path().join(FIXTURE_C)).unwrap();
    (copy, edited)
}

fn copy_tree(from: &Path, to: &Path) {
    for entry in walkdir::WalkDir::new(from) {
        let entry = entry.unwrap();
        let target = to.join(entry.path().strip_prefix(from).unwrap());
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// The free-threaded headers next to `FTREVIEW_PYTHON` (`<prefix>/include/python3.13t`).
fn free_threaded_include() -> Option<PathBuf> {
    let python = ftreview_testkit::tsan_python()?;
    let include = python.parent()?.parent()?.join("include");
    let found = std::fs::read_dir(include)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|dir| dir.join("Python.h").is_file() && dir.to_string_lossy().ends_with('t'));
    ftreview_testkit::require("no free-threaded Python.h beside FTREVIEW_PYTHON", found)
}

/// `gcc -fsyntax-only -Wall -Werror` on a file; skipped (loudly) without gcc or headers.
fn assert_builds(file: &Path, include: Option<PathBuf>) {
    let Some(include) = include else {
        return;
    };
    let Ok(out) = Command::new("gcc")
        .args(["-fsyntax-only", "-Wall", "-Werror", "-I"])
        .arg(&include)
        .arg(file)
        .output()
    else {
        return ftreview_testkit::skip("no gcc on PATH to build the patched fixture");
    };
    assert!(
        out.status.success(),
        "{} does not build against {}:\n{}",
        file.display(),
        include.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn assert_applies_parses_and_builds(patch: &Patch) -> String {
    let (copy, edited) = apply_in_copy(patch);
    assert_eq!(edited, patch.edits[0].after);
    assert!(
        parses_cleanly(&edited),
        "the patched fixture has parse errors"
    );
    assert_builds(&copy.path().join(FIXTURE_C), free_threaded_include());
    edited
}

#[test]
fn vector_methods_get_critical_sections_that_apply_and_build() {
    let vector = [
        "Vector_append",
        "Vector_pop",
        "Vector_clear",
        "Vector_sum",
        "Vector_length",
        "Vector_item",
        "Vector_repr",
    ];
    let patch = critical_section_patch(&fixture_sources(), &names(&vector)).unwrap();
    let edited = assert_applies_parses_and_builds(&patch);
    for name in vector {
        assert!(edited.contains(&format!("{name}_lock_held(VectorObject *self")));
    }
    assert!(edited.contains(
        "static PyObject *\nVector_item(VectorObject *self, Py_ssize_t index)\n{\n    PyObject *result;\n    Py_BEGIN_CRITICAL_SECTION(self);\n    result = Vector_item_lock_held(self, index);\n"
    ));
    assert_eq!(
        edited.matches("#ifndef Py_BEGIN_CRITICAL_SECTION").count(),
        1
    );
}

#[test]
fn hasher_update_is_refused_because_it_detaches_and_hexdigest_is_wrapped() {
    let both = names(&["Hasher_update", "Hasher_hexdigest"]);
    assert_eq!(
        refusal(critical_section_patch(&fixture_sources(), &both)),
        "no critical-section patch: `Hasher_update` releases the thread state (`Py_BEGIN_ALLOW_THREADS`), which suspends a critical section: that part would still run unlocked, so it needs a PyMutex"
    );
    let patch = critical_section_patch(&fixture_sources(), &names(&["Hasher_hexdigest"])).unwrap();
    let edited = assert_applies_parses_and_builds(&patch);
    assert!(edited.contains("Hasher_hexdigest(HasherObject *self, PyObject *ignored)\n{"));
}

#[test]
fn call_count_becomes_atomic_in_one_line_that_applies_and_builds() {
    let target = AtomicTarget::Global("call_count".to_string());
    let patch = atomic_patch(&fixture_sources(), &target).unwrap();
    let diff = patch.unified_diff();
    let changed = |sign: char| -> Vec<&str> {
        diff.lines()
            .filter(|l| l.starts_with(sign) && !l.starts_with(&sign.to_string().repeat(3)))
            .collect()
    };
    assert_eq!(
        changed('+'),
        ["+static _Atomic long call_count = 0;  /* module-wide, shared by every thread */"]
    );
    assert_eq!(changed('-').len(), 1);
    assert_applies_parses_and_builds(&patch);
}

/// The compat guard on an interpreter before 3.13, when the headers of one are at hand.
#[test]
fn the_wrapper_builds_before_3_13_through_the_guard() {
    let text = "#include <Python.h>\n\ntypedef struct {\n    PyObject_HEAD\n    long n;\n} Obj;\n\nstatic PyObject *\nObj_bump(Obj *self, PyObject *Py_UNUSED(ignored))\n{\n    return PyLong_FromLong(++self->n);\n}\n\nPyObject *use(Obj *o) { return Obj_bump(o, NULL); }\n";
    let patch = critical_section_patch(&[source("obj.c", text)], &names(&["Obj_bump"])).unwrap();
    let Some(include) = older_python_include() else {
        return eprintln!("SKIPPED: no python3 before 3.13 with headers for the guard's build");
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("obj.c");
    std::fs::write(&file, &patch.edits[0].after).unwrap();
    assert_builds(&file, Some(include));
}

fn older_python_include() -> Option<PathBuf> {
    let script = "import sys, sysconfig\nif sys.version_info < (3, 13): print(sysconfig.get_path('include'))";
    let out = Command::new("python3").args(["-c", script]).output().ok()?;
    let dir = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
    dir.join("Python.h").is_file().then_some(dir)
}
