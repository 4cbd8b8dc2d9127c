//! What the built wheel installed: its extension modules and top-level packages, and whether
//! each module really carries ThreadSanitizer instrumentation (a build backend that ignored the
//! sanitizer flags yields modules TSan cannot see into).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};
use ftreview_reports::model::ModuleInstrumentation;
use serde::{Deserialize, Serialize};

/// What the installed distribution contains.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Installed {
    pub name: String,
    pub version: String,
    pub extensions: Vec<ExtensionModule>,
    pub top_level: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExtensionModule {
    pub module: String,
    pub path: PathBuf,
}

/// Whether a shared object calls into the TSan runtime.
pub fn is_instrumented(path: &Path) -> anyhow::Result<bool> {
    let out = Command::new("nm")
        .args(["-D", "--undefined-only"])
        .arg(path)
        .output()
        .context("cannot run nm (binutils) to check TSan instrumentation")?;
    if !out.status.success() {
        bail!(
            "nm failed on {}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.contains("__tsan_")))
}

/// Each extension module and whether it is instrumented.
pub fn instrumentation(installed: &Installed) -> Vec<ModuleInstrumentation> {
    installed
        .extensions
        .iter()
        .map(|e| ModuleInstrumentation {
            path: e.path.clone(),
            instrumented: is_instrumented(&e.path).unwrap_or(false),
        })
        .collect()
}

/// Why a build cannot yield a trustworthy "no races", if it cannot.
pub fn instrumentation_problem(
    installed: &Installed,
    instrumented: &[ModuleInstrumentation],
) -> Option<String> {
    if installed.extensions.is_empty() {
        return Some(format!(
            "{} installed no extension module: the build produced pure Python (an optional C extension that failed to compile, or a pure-Python fallback); there is nothing for TSan to check",
            installed.name
        ));
    }
    let missing: Vec<String> = instrumented
        .iter()
        .filter(|m| !m.instrumented)
        .map(|m| m.path.display().to_string())
        .collect();
    (!missing.is_empty()).then(|| {
        format!(
            "extension modules built without ThreadSanitizer (no __tsan_* symbols): {}; the build backend ignored the sanitizer flags, so races in them are invisible",
            missing.join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module(path: &str, instrumented: bool) -> ModuleInstrumentation {
        ModuleInstrumentation {
            path: path.into(),
            instrumented,
        }
    }

    #[test]
    fn refuses_pure_python_and_uninstrumented_builds() {
        let mut installed = Installed {
            name: "pkg".into(),
            ..Default::default()
        };
        assert!(instrumentation_problem(&installed, &[])
            .unwrap()
            .contains("no extension module"));
        installed.extensions.push(ExtensionModule {
            module: "pkg._c".into(),
            path: "/x/_c.so".into(),
        });
        let problem = instrumentation_problem(&installed, &[module("/x/_c.so", false)]).unwrap();
        assert!(problem.contains("/x/_c.so"), "{problem}");
        assert!(instrumentation_problem(&installed, &[module("/x/_c.so", true)]).is_none());
    }

    #[test]
    fn nm_tells_instrumented_from_plain_objects() {
        // The test binary itself is not built with TSan.
        let me = std::env::current_exe().unwrap();
        assert!(!is_instrumented(&me).unwrap());
    }
}
