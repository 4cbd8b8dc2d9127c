//! What the build supplied, retried and left out, with the log lines telling why and the fix.

use super::*;

/// One line under the verdict when the wheel lacks C modules the sources declare: nothing
/// else in the plan speaks for their code.
pub(super) fn missing_modules_banner(out: &mut String, a: &Analysis) {
    let Some(build) = (a.run.build.as_ref()).filter(|b| !b.missing_modules().is_empty()) else {
        return;
    };
    let fix = (build.fixes.first())
        .map(|fix| format!("; fix: {fix}"))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "> **The build left out `{}`**: see [Build](#build) for the log lines that tell why{fix}.\n",
        build.missing_modules().join("`, `"),
    );
}

pub(super) fn build_notes(out: &mut String, a: &Analysis) {
    let Some(build) = &a.run.build else { return };
    if build.supplied_tools.is_empty() && build.retry.is_none() && build.causes.is_empty() {
        return;
    }
    out.push_str("## Build\n\n");
    for tool in &build.supplied_tools {
        let _ = writeln!(
            out,
            "- ftreview supplied `{}` from PyPI: `{}` runs it and the build host had none on PATH.",
            tool.package, tool.used_at
        );
    }
    if let Some(retry) = &build.retry {
        let outcome = match (&retry.error, retry.built_modules.as_slice()) {
            (Some(error), _) => format!("the build failed ({error})"),
            (None, []) => "it built no extension module either".into(),
            (None, built) => format!("it built `{}`", built.join("`, `")),
        };
        let _ = writeln!(
            out,
            "- Rebuilt with `{}={}` (`{}` reads it to require the C extension): {outcome}.",
            retry.variable, retry.value, retry.read_at
        );
    }
    let missing = build.missing_modules();
    if !missing.is_empty() {
        let _ = writeln!(
            out,
            "- **The wheel lacks {} of the {} extension module(s) the sources declare: `{}`.** TSan checked none of their code.",
            missing.len(),
            build.declared_modules.len(),
            missing.join("`, `")
        );
    }
    if !build.causes.is_empty() {
        if !out.ends_with("## Build\n\n") {
            out.push('\n');
        }
        out.push_str("The build log says:\n\n```text\n");
        for cause in &build.causes {
            let _ = writeln!(out, "{cause}");
        }
        out.push_str("```\n");
    }
    if !build.fixes.is_empty() {
        out.push_str("\nFix:\n\n");
        for fix in &build.fixes {
            let _ = writeln!(out, "- [ ] {}", capitalize(&fix.to_string()));
        }
    }
    out.push('\n');
}
