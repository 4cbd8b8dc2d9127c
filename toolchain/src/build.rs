//! configure, make, make install: each step logged to its own file, shown as a progress
//! phase, and on failure reported with the log's last lines.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::host::{self, CompilerInfo};
use crate::progress::Progress;

/// Lines of a failing step's log quoted in the error.
const TAIL_LINES: usize = 25;

/// What is built, where, and how.
pub struct BuildPlan<'a> {
    pub tree: &'a Path,
    /// Final install prefix (baked into the interpreter).
    pub prefix: &'a Path,
    /// `make install DESTDIR=`: the install lands in `staging/<prefix>`.
    pub staging: &'a Path,
    pub compiler: &'a CompilerInfo,
    pub jobs: usize,
    pub logs: &'a Path,
}

/// The configure arguments: free-threaded, TSan, and no test suite or bundled pip in the
/// base install (the two slowest parts of `make install`, done by a TSan interpreter;
/// `venv` still installs pip from the bundled wheel).
pub fn configure_args(prefix: &Path) -> Vec<String> {
    vec![
        format!("--prefix={}", prefix.display()),
        "--disable-gil".into(),
        "--with-thread-sanitizer".into(),
        "--disable-test-modules".into(),
        "--without-ensurepip".into(),
    ]
}

/// Runs the three steps and returns each one's wall time.
pub fn build(plan: &BuildPlan, progress: &Progress) -> Result<Vec<(String, f64)>> {
    let mut timings = Vec::new();
    if plan.tree.join("Makefile").is_file() {
        // A copied source directory that was built in place: start from a clean tree.
        let mut clean = step_command(plan, "make");
        clean.arg("distclean");
        timings.push(run_step(
            progress,
            "make distclean",
            &plan.logs.join("distclean.log"),
            clean,
        )?);
    }
    let mut configure = step_command(plan, "./configure");
    configure.args(configure_args(plan.prefix));
    let configure_log = plan.logs.join("configure.log");
    let configured = run_step(progress, "configure", &configure_log, configure);
    if configured.is_err() {
        // config.log says which check failed; keep it next to our log.
        let _ = fs::copy(plan.tree.join("config.log"), plan.logs.join("config.log"));
    }
    timings.push(configured?);

    let mut make = step_command(plan, "make");
    make.arg(format!("-j{}", plan.jobs));
    timings.push(run_step(
        progress,
        &format!("make -j{}", plan.jobs),
        &plan.logs.join("make.log"),
        make,
    )?);

    let mut install = step_command(plan, "make");
    install
        .arg("install")
        .arg(format!("DESTDIR={}", plan.staging.display()))
        // `make install` byte-compiles the standard library three times (-o 0, 1, 2) with
        // the TSan interpreter, the slowest part of the install. Its only other use of
        // PYTHON_FOR_BUILD after `make` is a phony module check, so `true` skips exactly
        // that; `byte_compile` then does the one level that gets used.
        .arg("PYTHON_FOR_BUILD=true");
    timings.push(run_step(
        progress,
        "make install",
        &plan.logs.join("install.log"),
        install,
    )?);
    Ok(timings)
}

/// Byte-compiles the installed standard library at optimization level 0 only, in parallel,
/// recording the final (not the staging) paths in the `.pyc` files.
pub fn byte_compile(
    plan: &BuildPlan,
    python: &Path,
    lib_dir: &Path,
    final_lib_dir: &Path,
    progress: &Progress,
) -> Result<(String, f64)> {
    let mut compile = host::command(python);
    compile
        .args([
            "-E",
            "-Wi",
            "-m",
            "compileall",
            "-q",
            "-j0",
            "-o",
            "0",
            "-d",
        ])
        .arg(final_lib_dir)
        .args(["-x", "bad_coding|badsyntax|site-packages"])
        .arg(lib_dir)
        .current_dir(plan.tree)
        .env("TSAN_OPTIONS", "report_bugs=0")
        .env_remove("PYTHON_GIL");
    run_step(
        progress,
        "byte-compiling the standard library",
        &plan.logs.join("compileall.log"),
        compile,
    )
}

/// A build command in the source tree with the chosen compiler, TSan reports off (the build
/// runs the freshly built interpreter, whose own races are not ours to report), and
/// `setarch -R` when the machine's ASLR would make TSan abort.
fn step_command(plan: &BuildPlan, program: &str) -> Command {
    let mut cmd = host::command(program);
    cmd.current_dir(plan.tree)
        .env("CC", &plan.compiler.cc)
        .env("TSAN_OPTIONS", "report_bugs=0")
        .env_remove("PYTHON_GIL")
        .env_remove("PYTHONPATH")
        .env_remove("PYTHONHOME");
    if let Some(cxx) = &plan.compiler.cxx {
        cmd.env("CXX", cxx);
    }
    cmd
}

/// Runs one step with stdout and stderr appended to `log`; the step stays in ftreview's
/// process group so Ctrl-C stops it together with ftreview.
pub fn run_step(
    progress: &Progress,
    name: &str,
    log: &Path,
    mut cmd: Command,
) -> Result<(String, f64)> {
    let file = File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
    let phase = progress.phase(name, Some(log));
    let status = cmd
        .stdout(file.try_clone()?)
        .stderr(file)
        .status()
        .with_context(|| format!("cannot start {name}"))?;
    if !status.success() {
        drop(phase);
        bail!(
            "{name} failed ({status}). Last lines of {}:\n{}",
            log.display(),
            tail(log, TAIL_LINES)
        );
    }
    Ok((name.to_string(), phase.done()))
}

/// The last `n` lines of a file, indented for quoting.
pub fn tail(path: &Path, n: usize) -> String {
    let text = fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Moves the staged install (`staging/<prefix>`) to `dest` and the matching TSan
/// suppression files to `tsan_dir`; returns the free-threading suppression files.
pub fn collect_install(plan: &BuildPlan, dest: &Path, tsan_dir: &Path) -> Result<Vec<PathBuf>> {
    let relative = plan.prefix.strip_prefix("/").unwrap_or(plan.prefix);
    let staged = plan.staging.join(relative);
    fs::rename(&staged, dest).with_context(|| {
        format!(
            "make install put nothing at {} (expected the install prefix)",
            staged.display()
        )
    })?;
    fs::create_dir_all(tsan_dir)?;
    let mut kept = Vec::new();
    let source_dir = plan.tree.join("Tools/tsan");
    for entry in fs::read_dir(&source_dir)
        .with_context(|| format!("cannot read {}", source_dir.display()))?
    {
        let path = entry?.path();
        let name = path
            .file_name()
            .expect("read_dir entries have names")
            .to_owned();
        fs::copy(&path, tsan_dir.join(&name))?;
        if name.to_string_lossy().contains("free_threading") {
            kept.push(tsan_dir.join(name));
        }
    }
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configure_asks_for_free_threading_and_tsan_without_the_slow_extras() {
        let args = configure_args(Path::new("/c/pythons/x/install"));
        assert_eq!(args[0], "--prefix=/c/pythons/x/install");
        for flag in [
            "--disable-gil",
            "--with-thread-sanitizer",
            "--disable-test-modules",
            "--without-ensurepip",
        ] {
            assert!(args.iter().any(|a| a == flag), "{flag}");
        }
    }

    #[test]
    fn a_failing_step_quotes_the_end_of_its_log() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("configure.log");
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "for i in $(seq 1 40); do echo line $i; done; echo 'configure: error: no ffi.h' >&2; exit 1"]);
        let err = run_step(&Progress::hidden(), "configure", &log, cmd)
            .unwrap_err()
            .to_string();
        assert!(err.contains("configure failed (exit status: 1)"), "{err}");
        assert!(err.contains(&log.display().to_string()), "{err}");
        assert!(err.contains("configure: error: no ffi.h"), "{err}");
        assert!(
            err.contains("line 40") && !err.contains("line 10\n"),
            "{err}"
        );
    }
}
