//! Frame origin classification: whose code a frame is in.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::model::{Frame, FrameOrigin, Report};

/// Decides each frame's [`FrameOrigin`] from its module, file and function.
///
/// The extension is whatever the caller names: module or file paths containing one of
/// `extension_patterns`, or files under one of `source_roots`. With neither given, every
/// frame that is not the runtime, CPython, libc or a well-known system library counts as
/// the extension (the right default for triaging a user's own program or extension logs).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Classifier {
    /// Substrings of module names/paths or source paths, e.g. `_multidict` or `multidict/`.
    pub extension_patterns: Vec<String>,
    /// Source trees of the extension; files under them are extension code.
    pub source_roots: Vec<PathBuf>,
}

/// Functions TSan intercepts (besides `pthread_*`); clang links the runtime into the executable without debug
/// info, so its interceptors show as `malloc <null> (python3.13t+0x…)`.
const INTERCEPTED: &[&str] = &[
    "malloc",
    "calloc",
    "realloc",
    "free",
    "posix_memalign",
    "aligned_alloc",
    "memalign",
    "valloc",
    "memcpy",
    "memmove",
    "memset",
    "memcmp",
    "strlen",
    "strcmp",
    "strncmp",
    "strcpy",
    "strncpy",
    "strdup",
    "close",
    "read",
    "write",
    "open",
    "pipe",
    "dup",
    "dup2",
    "usleep",
    "nanosleep",
    "sleep",
    "pthread_create",
    "pthread_join",
    "pthread_detach",
    "pthread_kill",
    "pthread_cond_wait",
    "pthread_cond_timedwait",
    "pthread_cond_signal",
    "pthread_cond_broadcast",
    "pthread_once",
    "sem_wait",
    "sem_post",
    "kill",
    "raise",
    "signal",
    "sigaction",
    "operator new",
    "operator delete",
];

impl Classifier {
    pub fn new(extension_patterns: Vec<String>, source_roots: Vec<PathBuf>) -> Classifier {
        Classifier {
            extension_patterns,
            source_roots,
        }
    }

    /// Sets the origin of every frame of `report`.
    pub fn classify_report(&self, report: &mut Report) {
        for stack in report.all_stacks_mut() {
            for frame in &mut stack.frames {
                frame.origin = self.classify(frame);
            }
        }
    }

    pub fn classify(&self, frame: &Frame) -> FrameOrigin {
        let module = frame.module.as_deref().unwrap_or_default();
        let module_name = base_name(module);
        let file = frame.file.as_deref().unwrap_or_default();
        let function = frame.function.as_deref().unwrap_or_default();
        if module_name.starts_with("libtsan") || is_runtime_function(function, file) {
            FrameOrigin::TsanRuntime
        } else if is_interpreter_module(module_name) {
            // Fast path: the interpreter binary holds no extension code.
            FrameOrigin::Cpython
        } else if is_runtime_source(file) {
            FrameOrigin::TsanRuntime
        } else if is_cpython_header(file) {
            // Inlined interpreter code (Py_INCREF, atomics) inside the extension's module.
            FrameOrigin::Cpython
        } else if self.is_named_extension(module, file) {
            FrameOrigin::Extension
        } else if is_cpython(module, file) {
            FrameOrigin::Cpython
        } else if is_libc(module_name) {
            FrameOrigin::Libc
        } else if self.names_nothing()
            && !file.is_empty()
            && !is_system_library(module, module_name, file)
        {
            FrameOrigin::Extension
        } else {
            FrameOrigin::Other
        }
    }

    fn names_nothing(&self) -> bool {
        self.extension_patterns.is_empty() && self.source_roots.is_empty()
    }

    fn is_named_extension(&self, module: &str, file: &str) -> bool {
        let matches_pattern = |pattern: &String| {
            !pattern.is_empty()
                && (module.contains(pattern.as_str()) || file.contains(pattern.as_str()))
        };
        self.extension_patterns.iter().any(matches_pattern)
            || (!file.is_empty()
                && self
                    .source_roots
                    .iter()
                    .any(|root| std::path::Path::new(file).starts_with(root)))
    }
}

fn base_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Runtime frames recognisable by name: the runtime's own functions, and interceptors, which
/// clang's static runtime prints without a file.
fn is_runtime_function(function: &str, file: &str) -> bool {
    [
        "__tsan",
        "__interceptor_",
        "___interceptor_",
        "__sanitizer",
        "__ubsan",
    ]
    .iter()
    .any(|prefix| function.starts_with(prefix))
        || file.starts_with("tsan_")
        || (file.is_empty()
            && (function.starts_with("pthread_")
                || INTERCEPTED
                    .iter()
                    .any(|name| is_function_named(function, name))))
}

/// gcc's libtsan sources and compiler-rt's. A `tsan/` directory alone is not enough: user
/// code may live under one (`/home/me/tsan/ext.c`).
fn is_runtime_source(file: &str) -> bool {
    ["/libsanitizer/", "/sanitizer_common/", "compiler-rt/"]
        .iter()
        .any(|dir| file.contains(dir))
        || (file.contains("/tsan/") && base_name(file).starts_with("tsan_"))
}

fn is_interpreter_module(module_name: &str) -> bool {
    module_name.starts_with("python3") || module_name.starts_with("libpython3")
}

/// `malloc` or `operator new(unsigned long)` matches `malloc` / `operator new`.
fn is_function_named(function: &str, name: &str) -> bool {
    function
        .strip_prefix(name)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('('))
}

pub(crate) fn is_cpython_header(file: &str) -> bool {
    file.contains("/include/python3") || file.contains("/Include/")
}

/// The top-level directories of CPython's source tree that its compiled code comes from.
const CPYTHON_SOURCE_DIRS: [&str; 5] = ["Objects", "Python", "Modules", "Parser", "Include"];

fn is_cpython(module: &str, file: &str) -> bool {
    module.contains("/lib-dynload/")
        || CPYTHON_SOURCE_DIRS
            .iter()
            .any(|dir| file.contains(&format!("/{dir}/")))
        || CPYTHON_SOURCE_DIRS[..4]
            .iter()
            .any(|dir| file.starts_with(&format!("{dir}/")))
}

/// A CPython file as its source tree names it (`Python/ceval.c`, `Include/object.h`),
/// whatever directory it was built in; installed headers (`include/python3.13t/…`) come from
/// `Include/`. Other paths keep only their file name.
pub fn cpython_relative(file: &str) -> String {
    let parts: Vec<&str> = file.split('/').collect();
    let installed_header = parts
        .windows(2)
        .rposition(|w| w[0] == "include" && w[1].starts_with("python3"))
        .filter(|at| at + 2 < parts.len());
    if let Some(at) = installed_header {
        return format!("Include/{}", parts[at + 2..].join("/"));
    }
    match parts.iter().rposition(|p| CPYTHON_SOURCE_DIRS.contains(p)) {
        Some(root) if root + 1 < parts.len() => parts[root..].join("/"),
        _ => parts.last().copied().unwrap_or(file).to_string(),
    }
}

fn is_libc(module_name: &str) -> bool {
    [
        "libc.so",
        "libc-",
        "libpthread",
        "ld-linux",
        "libm.so",
        "libdl.so",
        "librt.so",
    ]
    .iter()
    .any(|prefix| module_name.starts_with(prefix))
}

/// Libraries that are never the code under review when the caller named no extension.
fn is_system_library(module: &str, module_name: &str, file: &str) -> bool {
    const SYSTEM: &[&str] = &[
        "libstdc++",
        "libc++",
        "libgcc_s",
        "libz.so",
        "libffi",
        "libssl",
        "libcrypto",
        "libgomp",
        "libomp",
        "[stack]",
        "[vdso]",
        "linux-vdso",
    ];
    SYSTEM.iter().any(|prefix| module_name.starts_with(prefix))
        || ["/lib/", "/lib64/", "/usr/lib/", "/usr/lib64/"]
            .iter()
            .any(|dir| module.starts_with(dir))
        || file.starts_with("/usr/include/")
        || file.contains("/include/c++/")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(function: &str, file: &str, module: &str) -> Frame {
        let some = |s: &str| (!s.is_empty()).then(|| s.into());
        Frame {
            function: some(function),
            file: some(file),
            module: some(module),
            ..Frame::default()
        }
    }

    #[test]
    fn runtime_frames_of_both_runtimes() {
        let classifier = Classifier::default();
        for f in [
            frame(
                "free",
                "../../../../src/libsanitizer/tsan/tsan_interceptors_posix.cpp",
                "libtsan.so.2",
            ),
            frame("malloc", "", "python3.13t"),
            frame("operator new(unsigned long)", "", "a.out"),
            frame(
                "__tsan::CallUserSignalHandler(int)",
                "tsan_interceptors_posix.cpp.o",
                "a.out",
            ),
        ] {
            assert_eq!(classifier.classify(&f), FrameOrigin::TsanRuntime, "{f:?}");
        }
    }

    #[test]
    fn named_extension_cpython_and_libc() {
        let classifier = Classifier::new(vec!["_multidict".into()], vec![]);
        let ext = frame(
            "md_get",
            "/src/multidict/_multidict.c",
            "_multidict.cpython-313t-x86_64-linux-gnu.so",
        );
        assert_eq!(classifier.classify(&ext), FrameOrigin::Extension);
        let inlined = frame(
            "Py_INCREF",
            "/opt/py/include/python3.13t/object.h",
            "_multidict.cpython-313t-x86_64-linux-gnu.so",
        );
        assert_eq!(classifier.classify(&inlined), FrameOrigin::Cpython);
        let interp = frame(
            "PyDict_SetItem",
            "/build/Objects/dictobject.c",
            "python3.13t",
        );
        assert_eq!(classifier.classify(&interp), FrameOrigin::Cpython);
        let libc = frame("start_thread", "nptl/pthread_create.c", "libc.so.6");
        assert_eq!(classifier.classify(&libc), FrameOrigin::Libc);
        let other = frame("helper", "/src/other.c", "libother.so");
        assert_eq!(classifier.classify(&other), FrameOrigin::Other);
    }

    #[test]
    fn without_names_user_code_is_the_extension() {
        let classifier = Classifier::default();
        assert_eq!(
            classifier.classify(&frame("worker", "programs/race.c", "race")),
            FrameOrigin::Extension
        );
        assert_eq!(
            classifier.classify(&frame("worker", "/home/me/tsan/programs/race.c", "race")),
            FrameOrigin::Extension,
            "a checkout under a directory named tsan"
        );
        assert_eq!(
            classifier.classify(&frame(
                "std::thread::_M_start",
                "/usr/include/c++/12/thread",
                "a.out"
            )),
            FrameOrigin::Other
        );
    }

    #[test]
    fn cpython_files_are_named_from_their_source_root() {
        for (printed, named) in [
            (
                "/root/.cache/x/work/build-1/src/Python-3.13.15/Python/generated_cases.c.h",
                "Python/generated_cases.c.h",
            ),
            (
                "/src/cpython/./Include/internal/pycore_call.h",
                "Include/internal/pycore_call.h",
            ),
            (
                "/opt/py/include/python3.13t/cpython/pyatomic_gcc.h",
                "Include/cpython/pyatomic_gcc.h",
            ),
            ("ceval.c", "ceval.c"),
        ] {
            assert_eq!(cpython_relative(printed), named);
        }
    }
}
