use super::{parses_cleanly, refusal, source};
use crate::edit::{atomic_patch, AtomicTarget, Patch, Refusal};

fn global(name: &str) -> AtomicTarget {
    AtomicTarget::Global(name.to_string())
}

fn field(name: &str) -> AtomicTarget {
    AtomicTarget::Field {
        field: name.to_string(),
    }
}

fn patch(text: &str, target: &AtomicTarget) -> Result<Patch, Refusal> {
    atomic_patch(&[source("ext.c", text)], target)
}

/// The one line the patch changes, before and after.
fn changed_line(text: &str, target: &AtomicTarget) -> (String, String) {
    let patch = patch(text, target).expect("a patch");
    let edit = &patch.edits[0];
    assert!(parses_cleanly(&edit.after), "{}", edit.after);
    let changed: Vec<(&str, &str)> = edit
        .before
        .lines()
        .zip(edit.after.lines())
        .filter(|(b, a)| b != a)
        .collect();
    assert_eq!(changed.len(), 1, "{}", patch.unified_diff());
    (changed[0].0.to_string(), changed[0].1.to_string())
}

fn refused(text: &str, target: &AtomicTarget) -> String {
    refusal(patch(text, target))
}

const COUNTER: &str = "\
#include <Python.h>

static long call_count = 0;  /* shared by every thread */

static PyObject *
bump(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    call_count++;
    return PyLong_FromLong(call_count);
}
";

#[test]
fn a_global_counter_gets_atomic_on_its_declaration() {
    let patch = patch(COUNTER, &global("call_count")).unwrap();
    assert_eq!(
        patch.summary,
        "make `call_count` an `_Atomic long`: its `++` becomes one atomic read-modify-write"
    );
    assert_eq!(
        patch.unified_diff(),
        "\
--- a/ext.c
+++ b/ext.c
@@ -1,6 +1,6 @@
 #include <Python.h>
 
-static long call_count = 0;  /* shared by every thread */
+static _Atomic long call_count = 0;  /* shared by every thread */
 
 static PyObject *
 bump(PyObject *module, PyObject *Py_UNUSED(ignored))
"
    );
}

#[test]
fn every_integer_type_is_accepted() {
    for ty in [
        "int",
        "unsigned",
        "unsigned long long",
        "short",
        "signed char",
        "size_t",
        "Py_ssize_t",
        "Py_hash_t",
        "uint64_t",
        "int_fast32_t",
        "uintptr_t",
    ] {
        let text = format!("static {ty} n;\nvoid f(void) {{ n += 2; }}\n");
        let (_, after) = changed_line(&text, &global("n"));
        assert_eq!(after, format!("static _Atomic {ty} n;"));
    }
}

#[test]
fn the_summary_names_the_operations_that_become_atomic() {
    let ops = "static int n;\nvoid f(int x) { n++; n -= 2; n += x; --n; }\n";
    assert_eq!(
        patch(ops, &global("n")).unwrap().summary,
        "make `n` an `_Atomic int`: its `++`, `-=`, `+=` and `--` become atomic read-modify-writes"
    );
    let plain = "static int n;\nint f(void) { n = 0; return n; }\n";
    assert_eq!(
        patch(plain, &global("n")).unwrap().summary,
        "make `n` an `_Atomic int`: its reads and writes become atomic loads and stores"
    );
}

/// multidict's shape (`state.h`): a module-state struct whose version counter an inline
/// helper bumps through the state pointer.
const MODULE_STATE: &str = "\
#include <Python.h>
#include <stdint.h>

typedef struct {
    PyTypeObject *MultiDictType;
    uint64_t global_version;
} mod_state;

static inline uint64_t
NEXT_VERSION(mod_state *state)
{
    return ++state->global_version;
}
";

#[test]
fn a_module_state_field_gets_atomic_in_its_struct() {
    let (before, after) = changed_line(MODULE_STATE, &field("global_version"));
    assert_eq!(before, "    uint64_t global_version;");
    assert_eq!(after, "    _Atomic uint64_t global_version;");
    assert_eq!(
        patch(MODULE_STATE, &field("global_version")).unwrap().summary,
        "make `mod_state.global_version` an `_Atomic uint64_t`: its `++` becomes one atomic read-modify-write"
    );
}

#[test]
fn fields_of_anonymous_structs_and_uses_through_macros_count() {
    let text = "\
static struct {
    Py_ssize_t used;
    long items[8];
} store;
#define CLAIM(s) ((s).used++ % 8)
void put(long v) { store.items[CLAIM(store)] = v; }
";
    let patch = patch(text, &field("used")).unwrap();
    assert_eq!(
        patch.summary,
        "make `used` an `_Atomic Py_ssize_t`: its `++` becomes one atomic read-modify-write"
    );
    assert!(patch.edits[0]
        .after
        .contains("    _Atomic Py_ssize_t used;\n"));
}

#[test]
fn macros_that_only_read_or_bump_it_are_fine() {
    let text = format!(
        "{MODULE_STATE}#define BUMP(s) do {{ \\\n    (s)->global_version += 2; \\\n}} while (0)\n#define SHOW(v) printf(\"%llu\", (unsigned long long)(v))\nvoid f(mod_state *st) {{ BUMP(st); SHOW(st->global_version); }}\n"
    );
    assert_eq!(
        patch(&text, &field("global_version")).unwrap().summary,
        "make `mod_state.global_version` an `_Atomic uint64_t`: its `++` and `+=` become atomic read-modify-writes"
    );
}

#[test]
fn refuses_declarations_that_are_not_one_plain_integer() {
    let cases = [
        ("static double n;", "its type `double` (ext.c:1) is not an integer type; only integer counters are made atomic mechanically"),
        ("static long double n;", "its type `long double` (ext.c:1) is not an integer type; only integer counters are made atomic mechanically"),
        ("static struct stats n;", "its type `struct stats` (ext.c:1) is not an integer type; only integer counters are made atomic mechanically"),
        ("static counter_t n;", "its type `counter_t` (ext.c:1) is not an integer type; only integer counters are made atomic mechanically"),
        ("static long *n;", "it is a pointer (ext.c:1), not an integer counter"),
        ("static long n[4];", "it is an array (ext.c:1), not an integer counter"),
        ("static int m, n;", "its declaration at ext.c:1 declares 2 names; split it so only this one changes"),
        ("static _Atomic long n;", "it is already `_Atomic` (ext.c:1)"),
        ("static volatile long n;", "it is `volatile`, chosen on purpose; make it atomic by hand (ext.c:1)"),
        ("static const long n = 1;", "it is `const`, so no thread writes it (ext.c:1)"),
        ("extern long n;", "it is only declared `extern` here; its definition is not in the given files (ext.c:1)"),
    ];
    for (declaration, reason) in cases {
        assert_eq!(
            refused(&format!("{declaration}\n"), &global("n")),
            format!("no `_Atomic` patch for `n`: {reason}"),
            "{declaration}"
        );
    }
    assert_eq!(
        refused("struct s { unsigned n : 4; };\n", &field("n")),
        "no `_Atomic` patch for field `n`: it is a bit-field (ext.c:1), which `_Atomic` cannot qualify"
    );
}

#[test]
fn refuses_targets_it_cannot_find_exactly_once() {
    let local = "int f(void) { static int n; return n++; }\n";
    assert_eq!(
        refused(local, &global("n")),
        "no `_Atomic` patch for `n`: no file-scope declaration of it in the given files"
    );
    assert_eq!(
        refused(local, &field("n")),
        "no `_Atomic` patch for field `n`: no struct in the given files declares it"
    );
    let files = [
        source("ext.h", "extern long n;\n"),
        source("ext.c", "#include \"ext.h\"\nlong n;\n"),
    ];
    assert_eq!(
        refusal(atomic_patch(&files, &global("n"))),
        "no `_Atomic` patch for `n`: it is declared 2 times (ext.h:1, ext.c:2); every declaration needs the same qualifier, so edit them by hand"
    );
    assert_eq!(
        refused("struct a { int n; };\nstruct b { long n; };\n", &field("n")),
        "no `_Atomic` patch for field `n`: 2 structs declare a field `n` (ext.c:1, ext.c:2), and its uses cannot be told apart without types"
    );
}

#[test]
fn refuses_cpp_sources() {
    let refusal = refusal(atomic_patch(
        &[source("ext.cpp", COUNTER)],
        &global("call_count"),
    ));
    assert_eq!(
        refusal,
        "no `_Atomic` patch for `call_count`: ext.cpp is C++, where `_Atomic` is not a keyword (use std::atomic there)"
    );
    let files = [
        source("ext.h", "typedef struct { long n; } state;\n"),
        source(
            "ext.cc",
            "#include \"ext.h\"\nvoid f(state *s) { s->n++; }\n",
        ),
    ];
    assert_eq!(
        super::refusal(atomic_patch(&files, &field("n"))),
        "no `_Atomic` patch for field `n`: ext.cc is C++, where `_Atomic` is not a keyword (use std::atomic there)"
    );
}

#[test]
fn refuses_a_use_that_takes_the_address() {
    let global_address = format!(
        "{COUNTER}void parse(PyObject *a) {{ PyArg_ParseTuple(a, \"l\", &call_count); }}\n"
    );
    assert_eq!(
        refused(&global_address, &global("call_count")),
        "no `_Atomic` patch for `call_count`: its address is taken (`&call_count` at ext.c:11), and an `_Atomic` object's address does not convert to a plain pointer"
    );
    let field_address = format!(
        "{MODULE_STATE}uint64_t *slot(mod_state *state) {{ return &(state->global_version); }}\n"
    );
    assert_eq!(
        refused(&field_address, &field("global_version")),
        "no `_Atomic` patch for field `global_version`: its address is taken (`&(state->global_version)` at ext.c:14), and an `_Atomic` object's address does not convert to a plain pointer"
    );
}

#[test]
fn refuses_a_write_computed_from_a_separate_read() {
    let text = "static long n;\nvoid f(void) {\n    n = (n + 1) % 8;\n}\n";
    assert_eq!(
        refused(text, &global("n")),
        "no `_Atomic` patch for `n`: `n = (n + 1) % 8` at ext.c:3 reads it and writes it back in two steps, and an update in between would be lost; make it one compound assignment (`+=`) or take a lock"
    );
    let field_text =
        "struct s { long acc; };\nvoid f(struct s *st, long d) { st->acc = st->acc * 31 + d; }\n";
    assert!(refused(field_text, &field("acc"))
        .contains("`st->acc = st->acc * 31 + d` at ext.c:2 reads it"));
}

#[test]
fn refuses_what_macros_hide() {
    let address = format!("{COUNTER}#define COUNTER_PTR (&call_count)\n");
    assert_eq!(
        refused(&address, &global("call_count")),
        "no `_Atomic` patch for `call_count`: its address is taken (`&call_count` at macro `COUNTER_PTR` in ext.c), and an `_Atomic` object's address does not convert to a plain pointer"
    );
    let alias = format!("{COUNTER}#define COUNT call_count\nlong *p(void) {{ return &COUNT; }}\n");
    assert_eq!(
        refused(&alias, &global("call_count")),
        "no `_Atomic` patch for `call_count`: its address is taken (`&COUNT` at ext.c:12), and an `_Atomic` object's address does not convert to a plain pointer"
    );
    let hidden = format!("{COUNTER}#define STORE(dst, v) ((dst) = (v))\nvoid f(void) {{ STORE(call_count, call_count + 1); }}\n");
    assert_eq!(
        refused(&hidden, &global("call_count")),
        "no `_Atomic` patch for `call_count`: it is passed to macro `STORE` at ext.c:12, whose body takes an address or assigns, so what it does with it cannot be checked"
    );
    let pasted = format!("{COUNTER}#define GLUE(x) x ## call_count\n");
    assert_eq!(
        refused(&pasted, &global("call_count")),
        "no `_Atomic` patch for `call_count`: macro `GLUE` in ext.c uses it in a form that cannot be parsed and checked"
    );
}

#[test]
fn refuses_when_a_use_sits_in_code_that_does_not_parse() {
    // tree-sitter keeps `n` out of the ERROR node, which holds only the `&`.
    let text = "static long n;\nvoid f(void) {\n    FOO(x) BAR(&n) { }\n}\n";
    assert_eq!(
        refused(text, &global("n")),
        "no `_Atomic` patch for `n`: ext.c:3 does not parse around a use, so not every use can be checked"
    );
}
