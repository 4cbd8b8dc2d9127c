use super::{parses_cleanly, refusal, source};
use crate::edit::{critical_section_patch, Patch, Refusal, SourceFile};

fn wrap(files: &[SourceFile], functions: &[&str]) -> Result<Patch, Refusal> {
    let functions: Vec<String> = functions.iter().map(|f| f.to_string()).collect();
    critical_section_patch(files, &functions)
}

/// The edited text of a one-file extension `ext.c`.
fn wrapped(text: &str, functions: &[&str]) -> String {
    let patch = wrap(&[source("ext.c", text)], functions).expect("a patch");
    assert_eq!(patch.edits.len(), 1);
    let after = patch.edits[0].after.clone();
    assert!(
        parses_cleanly(&after),
        "edited text does not parse:\n{after}"
    );
    after
}

fn refused(text: &str, functions: &[&str]) -> String {
    refusal(wrap(&[source("ext.c", text)], functions))
}

const APPEND: &str = "\
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pthread.h>

static PyObject *
Vector_append(VectorObject *self, PyObject *arg)
{
    if (arg == NULL) {
        return NULL;
    }
    Py_RETURN_NONE;
}
";

#[test]
fn renames_the_body_and_adds_a_locking_wrapper_with_the_original_signature() {
    assert_eq!(
        wrapped(APPEND, &["Vector_append"]),
        "\
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#ifndef Py_BEGIN_CRITICAL_SECTION  /* Python < 3.13: the GIL already serializes these */
#  define Py_BEGIN_CRITICAL_SECTION(op) {
#  define Py_END_CRITICAL_SECTION() }
#endif
#include <pthread.h>

static PyObject *
Vector_append_lock_held(VectorObject *self, PyObject *arg)
{
    if (arg == NULL) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
Vector_append(VectorObject *self, PyObject *arg)
{
    PyObject *result;
    Py_BEGIN_CRITICAL_SECTION(self);
    result = Vector_append_lock_held(self, arg);
    Py_END_CRITICAL_SECTION();
    return result;
}
"
    );
}

#[test]
fn the_diff_names_the_file_under_a_and_b_with_three_lines_of_context() {
    let patch = wrap(&[source("src/ext.c", APPEND)], &["Vector_append"]).unwrap();
    let diff = patch.unified_diff();
    assert!(diff.starts_with("--- a/src/ext.c\n+++ b/src/ext.c\n@@ -1,12 +1,26 @@\n #define PY_SSIZE_T_CLEAN\n #include <Python.h>\n+#ifndef"), "{diff}");
    assert!(
        diff.contains(
            "\n-Vector_append(VectorObject *self, PyObject *arg)\n+Vector_append_lock_held("
        ),
        "{diff}"
    );
    assert_eq!(
        patch.summary,
        "hold the object's critical section in Vector_append (wrappers around the unchanged bodies)"
    );
}

#[test]
fn void_functions_get_no_result_and_unused_parameters_are_forwarded_by_name() {
    let after = wrapped(
        "#include \"Python.h\"\n\nstatic void\nObj_touch(Obj *self, PyObject *const *args, Py_ssize_t nargs, PyObject *Py_UNUSED(kwnames))\n{\n\tself->n = nargs;\n}\n",
        &["Obj_touch"],
    );
    assert!(after.contains("#include \"Python.h\"\n#ifndef Py_BEGIN_CRITICAL_SECTION"));
    assert!(after.contains("Obj_touch_lock_held(Obj *self, PyObject *const *args, Py_ssize_t nargs, PyObject *Py_UNUSED(kwnames))\n{\n\tself->n = nargs;\n}"));
    assert!(
        after.ends_with(
            "\
static void
Obj_touch(Obj *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
\tPy_BEGIN_CRITICAL_SECTION(self);
\tObj_touch_lock_held(self, args, nargs, kwnames);
\tPy_END_CRITICAL_SECTION();
}
"
        ),
        "{after}"
    );
}

#[test]
fn the_result_keeps_the_return_type_and_avoids_a_parameter_named_result() {
    let after = wrapped(
        "#include <Python.h>\nstatic const char *\nname_of(Obj *self, PyObject *result)\n{\n  return self->name;\n}\n",
        &["name_of"],
    );
    assert!(
        after.ends_with(
            "\
{
  const char *result_;
  Py_BEGIN_CRITICAL_SECTION(self);
  result_ = name_of_lock_held(self, result);
  Py_END_CRITICAL_SECTION();
  return result_;
}
"
        ),
        "{after}"
    );
    let after = wrapped(
        "#include <Python.h>\nstatic Py_ssize_t Obj_len(Obj *self) { return self->n; }\n",
        &["Obj_len"],
    );
    assert!(after.contains("{\n    Py_ssize_t result;\n"), "{after}");
}

#[test]
fn crlf_files_keep_their_line_endings() {
    let after = wrapped(&APPEND.replace('\n', "\r\n"), &["Vector_append"]);
    assert!(!after.replace("\r\n", "").contains('\n'), "{after:?}");
    assert!(after.contains("#endif\r\n#include <pthread.h>\r\n"));
}

#[test]
fn one_guard_per_file_after_the_last_include_when_python_h_comes_indirectly() {
    let text = "#include \"ext.h\"\n#include <string.h>\n\nstatic PyObject *a(Obj *self) { return NULL; }\nstatic PyObject *b(Obj *self) { return NULL; }\n";
    let after = wrapped(text, &["a", "b"]);
    assert!(after
        .starts_with("#include \"ext.h\"\n#include <string.h>\n#ifndef Py_BEGIN_CRITICAL_SECTION"));
    assert_eq!(
        after.matches("#ifndef Py_BEGIN_CRITICAL_SECTION").count(),
        1
    );
}

#[test]
fn no_guard_when_the_file_already_provides_the_macros() {
    for provider in [
        "#include \"pythoncapi_compat.h\"\n",
        "#ifndef Py_BEGIN_CRITICAL_SECTION\n# define Py_BEGIN_CRITICAL_SECTION(op) {\n# define Py_END_CRITICAL_SECTION() }\n#endif\n",
    ] {
        let text = format!("#include <Python.h>\n{provider}\nstatic PyObject *a(Obj *self) {{ return NULL; }}\n");
        let after = wrapped(&text, &["a"]);
        assert_eq!(after.matches("ifndef Py_BEGIN_CRITICAL_SECTION").count(), provider.matches("ifndef").count());
        assert!(after.contains("a_lock_held(self)"));
    }
}

#[test]
fn functions_in_several_files_give_one_diff_section_each() {
    let files = [
        source(
            "src/a.c",
            "#include <Python.h>\nstatic PyObject *A_get(Obj *self) { return NULL; }\n",
        ),
        source(
            "src/b.c",
            "#include <Python.h>\nstatic PyObject *B_get(Obj *self) { return NULL; }\n",
        ),
        source("src/c.c", "#include <Python.h>\n"),
    ];
    let patch = wrap(&files, &["B_get", "A_get", "A_get"]).unwrap();
    let paths: Vec<_> = patch
        .edits
        .iter()
        .map(|e| e.path.to_str().unwrap())
        .collect();
    assert_eq!(paths, ["src/a.c", "src/b.c"]);
    let diff = patch.unified_diff();
    assert_eq!(diff.matches("+++ b/src/").count(), 2);
    assert!(diff.contains("--- a/src/b.c\n+++ b/src/b.c\n"));
    assert!(
        patch.summary.contains("in B_get, A_get ("),
        "{}",
        patch.summary
    );
}

#[test]
fn refuses_functions_it_cannot_find_exactly_once() {
    assert_eq!(
        refused(APPEND, &["Vector_pop"]),
        "no critical-section patch: `Vector_pop` is not defined in the given files"
    );
    let twice = "#include <Python.h>\n#ifdef FAST\nstatic PyObject *f(Obj *self) { return NULL; }\n#else\nstatic PyObject *f(Obj *self) { return Py_None; }\n#endif\n";
    assert_eq!(
        refused(twice, &["f"]),
        "no critical-section patch: `f` is defined 2 times (ext.c:3, ext.c:5); which one is built depends on the build"
    );
    assert_eq!(
        refusal(wrap(&[source("ext.c", APPEND)], &[])),
        "no function was named to wrap"
    );
}

#[test]
fn refuses_a_definition_with_parse_errors() {
    let text =
        "#include <Python.h>\nstatic PyObject *\nf(Obj *self)\n{\n    return self->n +;\n}\n";
    assert_eq!(
        refused(text, &["f"]),
        "no critical-section patch: `f` does not parse cleanly at ext.c:2, so its text cannot be edited safely"
    );
}

#[test]
fn refuses_signatures_a_wrapper_cannot_forward() {
    let cases = [
        (
            "static PyObject *f(void) { return NULL; }",
            "has no parameters, so there is no object to lock",
        ),
        (
            "static PyObject *f() { return NULL; }",
            "has no parameters, so there is no object to lock",
        ),
        (
            "static PyObject *f(Obj *self, ...) { return NULL; }",
            "is variadic (`...`), which a wrapper cannot forward",
        ),
        (
            "static PyObject *f(Obj *self, PyObject *) { return NULL; }",
            "has an unnamed parameter 2, which cannot be forwarded",
        ),
        (
            "static int f(int n, Obj *self) { return n; }",
            "takes `n` first, which is not an object pointer to lock",
        ),
        (
            "static int f(Obj **slot) { return 0; }",
            "takes `slot` first, which is not an object pointer to lock",
        ),
        (
            "PyObject *f(Obj *self) { return NULL; }",
            "is not `static`: other files may call it by name, so it cannot be renamed",
        ),
        (
            "Py_LOCAL_INLINE(PyObject *) f(Obj *self) { return NULL; }",
            "has a signature written with macros, which the wrapper cannot copy reliably",
        ),
    ];
    for (definition, reason) in cases {
        assert_eq!(
            refused(&format!("#include <Python.h>\n{definition}\n"), &["f"]),
            format!("no critical-section patch: `f` {reason}"),
            "{definition}"
        );
    }
}

#[test]
fn refuses_bodies_a_critical_section_would_not_fix() {
    let locked = "#include <Python.h>\nstatic PyObject *f(Obj *self)\n{\n    Py_BEGIN_CRITICAL_SECTION(self);\n    self->n++;\n    Py_END_CRITICAL_SECTION();\n    return NULL;\n}\n";
    assert_eq!(
        refused(locked, &["f"]),
        "no critical-section patch: `f` already holds a critical section; the race is elsewhere"
    );
    let detached = "#include <Python.h>\nstatic PyObject *f(Obj *self)\n{\n    Py_BEGIN_ALLOW_THREADS\n    work(self->state);\n    Py_END_ALLOW_THREADS\n    return NULL;\n}\n";
    assert_eq!(
        refused(detached, &["f"]),
        "no critical-section patch: `f` releases the thread state (`Py_BEGIN_ALLOW_THREADS`), which suspends a critical section: that part would still run unlocked, so it needs a PyMutex"
    );
}

#[test]
fn refuses_a_rename_onto_an_existing_name() {
    let text = "#include <Python.h>\nstatic PyObject *f(Obj *self) { return f_lock_held(self); }\n";
    assert_eq!(
        refused(text, &["f"]),
        "no critical-section patch: `f` cannot be renamed: `f_lock_held` already exists"
    );
}

#[test]
fn every_refused_function_is_named_in_one_message() {
    let text = "#include <Python.h>\nstatic PyObject *ok(Obj *self) { return NULL; }\nPyObject *shared(Obj *self) { return NULL; }\n";
    assert_eq!(
        refused(text, &["shared", "ok", "gone"]),
        "no critical-section patch: `shared` is not `static`: other files may call it by name, so it cannot be renamed; `gone` is not defined in the given files"
    );
}

#[test]
fn refuses_when_the_guard_has_no_place_before_the_wrappers() {
    assert_eq!(
        refused("static PyObject *f(Obj *self) { return NULL; }\n", &["f"]),
        "no critical-section patch: ext.c has no top-level #include to put the Python < 3.13 guard after"
    );
    assert_eq!(
        refused("static PyObject *f(Obj *self) { return NULL; }\n#include <Python.h>\n", &["f"]),
        "no critical-section patch: in ext.c a wrapped function comes before the #include the Python < 3.13 guard must follow"
    );
}
