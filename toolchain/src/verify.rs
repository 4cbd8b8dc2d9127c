//! Proof that a freshly built interpreter does its job, run before it is published:
//! free-threaded, compiled with TSan, TSan really reports a race in an extension built
//! against it (the canary), and `venv` + `pip` work.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{bail, Context, Result};

use crate::cache::Verification;
use crate::host::{self, CompilerInfo};
use crate::interpreter::{self, Introspection};

/// A module with an unsynchronized global counter. The threads meet (with relaxed atomics,
/// which give TSan no happens-before edge) before and after their increments, so the racy
/// accesses always overlap and no refcount or lock traffic of one thread's exit can order
/// them: TSan must report a data race in `canary_bump`.
const CANARY_C: &str = r#"
#include <Python.h>
#include <sched.h>

static long counter;
static int arrived, finished;

static void rendezvous(int *count, long threads) {
    __atomic_fetch_add(count, 1, __ATOMIC_RELAXED);
    for (long spins = 0; __atomic_load_n(count, __ATOMIC_RELAXED) < threads && spins < 1000000; spins++) {
        sched_yield();
    }
}

static PyObject *canary_bump(PyObject *self, PyObject *arg) {
    long threads = PyLong_AsLong(arg);
    rendezvous(&arrived, threads);
    for (int i = 0; i < 1000; i++) {
        counter++;
    }
    rendezvous(&finished, threads);
    return PyLong_FromLong(counter);
}

static PyMethodDef methods[] = {
    {"bump", canary_bump, METH_O, "Increment a shared counter without a lock."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "ftreview_canary", NULL, -1, methods};

PyMODINIT_FUNC PyInit_ftreview_canary(void) {
    PyObject *m = PyModule_Create(&module);
#ifdef Py_GIL_DISABLED
    if (m != NULL) {
        PyUnstable_Module_SetGIL(m, Py_MOD_GIL_NOT_USED);
    }
#endif
    return m;
}
"#;

const CANARY_PY: &str = r#"
import threading, ftreview_canary
threads = [threading.Thread(target=ftreview_canary.bump, args=(4,)) for _ in range(4)]
for t in threads: t.start()
for t in threads: t.join()
print("canary ran")
"#;

/// Canary runs before concluding TSan sees nothing (a loaded machine can starve a thread
/// past the rendezvous limit).
const CANARY_ATTEMPTS: usize = 3;

/// Runs every check against the interpreter at `python` (which may still sit in its staging
/// directory). The canary (source, module, TSan logs) is kept in `canary_dir`; the venv
/// goes to `venv_dir`.
pub fn verify(
    python: &Path,
    compiler: &CompilerInfo,
    canary_dir: &Path,
    venv_dir: &Path,
    log: &Path,
) -> Result<Verification> {
    let info = interpreter::introspect(python)?;
    interpreter::ensure_tsan_free_threaded(&info, python)?;
    let canary_report = canary(python, &info, compiler, canary_dir, log)?;
    let pip_version = venv_and_pip(python, venv_dir, log)?;
    Ok(Verification {
        gil_disabled: !info.gil_enabled,
        cflags: info.cflags,
        canary_report,
        pip_version,
    })
}

fn canary(
    python: &Path,
    info: &Introspection,
    compiler: &CompilerInfo,
    dir: &Path,
    log: &Path,
) -> Result<String> {
    fs::create_dir_all(dir)?;
    let source = dir.join("ftreview_canary.c");
    fs::write(&source, CANARY_C)?;
    let module = dir.join(format!("ftreview_canary{}", info.ext_suffix));
    let compiled = Command::new(&compiler.cc)
        .args(["-shared", "-fPIC", "-fsanitize=thread", "-g", "-O1"])
        .arg(format!("-I{}", info.include.display()))
        .arg(&source)
        .arg("-o")
        .arg(&module)
        .output()
        .with_context(|| format!("cannot run {}", compiler.cc))?;
    append_log(log, "canary: compile", &compiled);
    if !compiled.status.success() {
        bail!(
            "the canary extension does not compile against the new interpreter's headers \
             ({}): {}",
            info.include.display(),
            String::from_utf8_lossy(&compiled.stderr).trim()
        );
    }
    let reports = dir.join("tsan");
    let mut tsan_options = format!(
        "log_path={} exitcode=0 halt_on_error=0 report_bugs=1",
        reports.display()
    );
    if let Some(symbolizer) = host::symbolizer_for(compiler.family) {
        tsan_options.push_str(&format!(
            " external_symbolizer_path={}",
            symbolizer.display()
        ));
    }
    for _attempt in 0..CANARY_ATTEMPTS {
        let ran = python_command(python)
            .args(["-c", CANARY_PY])
            .current_dir(dir)
            .env("PYTHONPATH", dir)
            .env("PYTHON_GIL", "0")
            .env("TSAN_OPTIONS", &tsan_options)
            .output()
            .context("cannot run the canary")?;
        append_log(log, "canary: run", &ran);
        if !ran.status.success() {
            bail!(
                "the canary script failed ({}): {}",
                ran.status,
                String::from_utf8_lossy(&ran.stderr).trim()
            );
        }
        if let Some(race) = find_canary_race(dir) {
            return Ok(race);
        }
    }
    bail!(
        "TSan reported no data race in the canary extension in {CANARY_ATTEMPTS} runs \
         (reports looked for in {}.*): the interpreter is not usable for race detection",
        reports.display()
    )
}

/// The race header and the frame naming the canary, from the TSan logs in `dir`.
fn find_canary_race(dir: &Path) -> Option<String> {
    let logs: Vec<PathBuf> = fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("tsan."))
        })
        .collect();
    logs.iter().find_map(|path| {
        let text = fs::read_to_string(path).ok()?;
        text.split("==================")
            .filter(|report| report.contains("WARNING: ThreadSanitizer: data race"))
            .find_map(|report| {
                let header = report
                    .lines()
                    .find(|l| l.contains("WARNING: ThreadSanitizer"))?;
                let frame = report.lines().find(|l| l.contains("canary"))?;
                Some(format!("{} / {}", header.trim(), frame.trim()))
            })
    })
}

fn venv_and_pip(python: &Path, venv: &Path, log: &Path) -> Result<String> {
    let created = python_command(python)
        .args(["-m", "venv"])
        .arg(venv)
        .env("TSAN_OPTIONS", "report_bugs=0")
        .output()
        .context("cannot run python -m venv")?;
    append_log(log, "venv", &created);
    if !created.status.success() {
        bail!(
            "`python -m venv` failed ({}): {}",
            created.status,
            String::from_utf8_lossy(&created.stderr).trim()
        );
    }
    let pip = python_command(&venv.join("bin/python"))
        .args(["-m", "pip", "--version"])
        .env("TSAN_OPTIONS", "report_bugs=0")
        .output()
        .context("cannot run pip in the venv")?;
    append_log(log, "pip --version", &pip);
    let version = String::from_utf8_lossy(&pip.stdout).trim().to_string();
    if !pip.status.success() || !version.starts_with("pip ") {
        bail!(
            "pip does not work in a venv of the new interpreter ({}): {}",
            pip.status,
            String::from_utf8_lossy(&pip.stderr).trim()
        );
    }
    Ok(version
        .split(" from ")
        .next()
        .unwrap_or(&version)
        .to_string())
}

fn python_command(python: &Path) -> Command {
    let mut cmd = host::command(python);
    cmd.env_remove("PYTHONHOME");
    cmd
}

fn append_log(log: &Path, what: &str, output: &Output) {
    use std::io::Write;
    if let Ok(mut file) = fs::OpenOptions::new().create(true).append(true).open(log) {
        let _ = writeln!(
            file,
            "== {what} ({})\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::{find_compiler, Compiler};

    /// Runs the real checks against `FTREVIEW_PYTHON` when it is set (skips loudly otherwise):
    /// the canary must race and pip must work.
    #[test]
    fn a_real_tsan_interpreter_passes_every_check() {
        let Some(python) = ftreview_testkit::tsan_python() else {
            return;
        };
        let info = interpreter::introspect(&python).unwrap();
        let compiler = find_compiler(Compiler::from_cc(&info.cc)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("verify.log");
        let checks = verify(
            &python,
            &compiler,
            &dir.path().join("canary"),
            &dir.path().join("venv"),
            &log,
        )
        .unwrap();
        // verify() itself fails unless the GIL is off and CFLAGS carry -fsanitize=thread.
        let report = &checks.canary_report;
        assert!(
            report.starts_with("WARNING: ThreadSanitizer: data race"),
            "{report}"
        );
        assert!(
            report.contains("canary_bump"),
            "the racing frame is named: {report}"
        );
        assert!(
            checks.pip_version.starts_with("pip "),
            "{}",
            checks.pip_version
        );
    }
}
