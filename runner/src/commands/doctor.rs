//! `ftreview doctor`: is this machine ready to build and run TSan interpreters?
//! Checks compilers and their TSan runtimes, the symbolizer, ASLR, build prerequisites,
//! the cache, and `FTREVIEW_PYTHON` when set.

use std::path::PathBuf;

use clap::Args;
use ftreview_toolchain::{
    choose_compiler, default_cache_dir, list_cached, mmap_rnd_bits, needs_setarch, prerequisites,
    symbolizer_for, Compiler, CompilerChoice, Interpreter,
};

use crate::exit::Outcome;

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Cache directory to check (default: $FTREVIEW_CACHE_DIR, else ~/.cache/ftreview).
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
}

/// Collects check lines and whether any blocking problem was seen.
#[derive(Default)]
struct Report {
    problems: usize,
}

impl Report {
    fn ok(&self, what: &str, detail: impl std::fmt::Display) {
        println!("  ok    {what}: {detail}");
    }
    fn warn(&self, what: &str, detail: impl std::fmt::Display) {
        println!("  warn  {what}: {detail}");
    }
    fn fail(&mut self, what: &str, detail: impl std::fmt::Display) {
        self.problems += 1;
        println!("  FAIL  {what}: {detail}");
    }
}

pub fn run(args: DoctorArgs) -> anyhow::Result<Outcome> {
    let mut report = Report::default();
    println!("compilers");
    check_compilers(&mut report);
    println!("ASLR");
    check_aslr(&mut report);
    println!("cache");
    check_cache(
        &mut report,
        args.cache_dir.unwrap_or_else(default_cache_dir),
    );
    if let Some(python) = std::env::var_os("FTREVIEW_PYTHON").filter(|p| !p.is_empty()) {
        println!("FTREVIEW_PYTHON");
        match Interpreter::from_python(&PathBuf::from(&python)) {
            Ok(i) => report.ok(
                "interpreter",
                format!("CPython {} ({}), free-threaded + TSan", i.version, i.cc),
            ),
            Err(e) => report.fail("interpreter", format!("{e:#}")),
        }
    }
    if report.problems == 0 {
        println!("ready");
        Ok(Outcome::Clean)
    } else {
        println!("{} problem(s) found", report.problems);
        Ok(Outcome::HarnessError)
    }
}

fn check_compilers(report: &mut Report) {
    for family in [Compiler::Clang, Compiler::Gcc] {
        match choose_compiler(CompilerChoice::Exactly(family)) {
            Ok(info) => report.ok(
                family.name(),
                format!("{} ({}), TSan runtime links", info.cc, info.version),
            ),
            Err(e) => report.warn(family.name(), format!("{e:#}")),
        }
    }
    match symbolizer_for(Compiler::Clang) {
        Some(path) => report.ok("llvm-symbolizer", path.display()),
        None => report.warn(
            "llvm-symbolizer",
            "not found: clang's TSan reports will lack file:line (`apt-get install llvm-19`)",
        ),
    }
    match choose_compiler(CompilerChoice::Auto) {
        Ok(info) => {
            report.ok("--cc auto picks", &info.cc);
            println!("prerequisites (for {})", info.cc);
            check_prerequisites(report, &info.cc);
        }
        Err(e) => report.fail("compiler", format!("{e:#}")),
    }
}

fn check_prerequisites(report: &mut Report, cc: &str) {
    let all = prerequisites(cc);
    let mut missing = Vec::new();
    for p in &all {
        if p.present {
            report.ok(p.what, p.package);
        } else if p.required {
            report.fail(p.what, format!("missing (package {})", p.package));
            missing.push(p.package);
        } else {
            report.warn(
                p.what,
                format!(
                    "missing, the module will be skipped (package {})",
                    p.package
                ),
            );
            missing.push(p.package);
        }
    }
    if !missing.is_empty() {
        println!("  install: apt-get install {}", missing.join(" "));
    }
}

fn check_aslr(report: &mut Report) {
    let bits = mmap_rnd_bits().map_or("unknown".to_string(), |b| b.to_string());
    if needs_setarch() {
        report.warn(
            "vm.mmap_rnd_bits",
            format!(
                "{bits} (> 28): TSan aborts unless runs use `setarch -R`; ftreview does that \
                 itself. Or, as root: `sysctl vm.mmap_rnd_bits=28`"
            ),
        );
    } else {
        report.ok(
            "vm.mmap_rnd_bits",
            format!("{bits}, TSan starts without setarch"),
        );
    }
}

fn check_cache(report: &mut Report, dir: PathBuf) {
    let writable = std::fs::create_dir_all(&dir).is_ok() && is_writable(&dir);
    if !writable {
        report.fail(
            "directory",
            format!(
                "{} is not writable (set --cache-dir or FTREVIEW_CACHE_DIR)",
                dir.display()
            ),
        );
        return;
    }
    report.ok("directory", dir.display());
    match list_cached(&dir) {
        Ok(list) if list.is_empty() => {
            report.warn("interpreters", "none yet; run `ftreview build-python`")
        }
        Ok(list) => {
            let names: Vec<String> = list
                .iter()
                .map(|i| format!("{} ({})", i.version, i.compiler))
                .collect();
            report.ok("interpreters", names.join(", "));
        }
        Err(e) => report.fail("interpreters", format!("{e:#}")),
    }
}

fn is_writable(dir: &std::path::Path) -> bool {
    let probe = dir.join(format!(".doctor-{}", std::process::id()));
    let ok = std::fs::write(&probe, b"").is_ok();
    let _ = std::fs::remove_file(&probe);
    ok
}
