//! A ready-to-file issue for one problem, in the shape maintainers asked for: title, what is
//! shared, both source excerpts, the reproducer with its rate, the fix, and the environment
//! in three lines.

use super::problems::{racing_lines, reproducer_block, shared};
use super::*;

/// The issue body of `problem_id`, or `None` when the run has no such problem.
pub fn issue_body(a: &Analysis, problem_id: &str) -> Option<String> {
    let problem = a
        .results
        .findings
        .iter()
        .find(|f| f.id == problem_id && f.category == Category::Race)?;
    let run = a.run;
    let mut out = String::new();
    let _ = writeln!(out, "# Free-threading: {}\n", problem.title);
    if let Some(owner) = &problem.owner {
        let _ = writeln!(
            out,
            "Under free-threaded CPython (no GIL), {} without synchronization.\n",
            shared(owner, problem.variable.as_deref())
        );
    }
    if !problem.operations.is_empty() {
        let _ = writeln!(
            out,
            "Calling {} from several threads at once races: ThreadSanitizer reported {} pair(s) of racing lines ({} report(s)). The first pair:\n",
            problem
                .operations
                .iter()
                .map(|o| format!("`{o}`"))
                .collect::<Vec<_>>()
                .join(", "),
            problem.sites.len(),
            problem.count
        );
    }
    let leading = problem.sites.first().map(|s| s.id.as_str());
    if let Some(rc) = a
        .run
        .triage
        .root_causes
        .iter()
        .find(|rc| Some(rc.id.as_str()) == leading)
    {
        racing_lines(&mut out, a, rc);
    }
    if let Some(reproducer) = &problem.reproducer {
        reproducer_block(&mut out, a, reproducer);
    }
    super::problems::fix_paragraph(&mut out, &problem.fix);
    let version = run.target.version.as_deref().unwrap_or("(local tree)");
    let _ = writeln!(
        out,
        "**Environment:**\n- {} {version}\n- CPython {} free-threaded with ThreadSanitizer ({}), `PYTHON_GIL=0`\n- {}, found by ftreview {} (`{}`)",
        run.target.name,
        run.interpreter.version,
        run.interpreter.compiler,
        run.environment.host,
        run.environment.ftreview_version,
        problem.id
    );
    Some(out)
}
