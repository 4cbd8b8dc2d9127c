//! The environment every instrumented run gets: `PYTHON_GIL=0`, `TSAN_OPTIONS` writing reports
//! to a per-phase log directory, and one merged suppressions file.
//!
//! Suppressions are filtered: a `race:` entry matches any frame of either stack, so CPython's
//! `race:_PyEval_EvalFrameDefault`-style entries would hide every extension race called from
//! Python. Only `race_top:` (top frame) and `thread:` entries are kept.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context;

/// `PYTHON_GIL=0` and `TSAN_OPTIONS` for a process whose reports go to `log_dir/tsan.<pid>`.
pub fn run_env(
    log_dir: &Path,
    suppressions: Option<&Path>,
    symbolizer: Option<&Path>,
) -> Vec<(String, String)> {
    vec![
        ("PYTHON_GIL".to_string(), "0".to_string()),
        ("PYTHONFAULTHANDLER".to_string(), "1".to_string()),
        (
            "TSAN_OPTIONS".to_string(),
            tsan_options(log_dir, suppressions, symbolizer),
        ),
    ]
}

/// Where TSan writes a process's reports under `log_dir`: `tsan.<pid>` (its `log_path`).
pub fn tsan_log_prefix(log_dir: &Path) -> PathBuf {
    log_dir.join("tsan")
}

/// `TSAN_OPTIONS` for collecting every report without changing the program's exit status.
pub fn tsan_options(
    log_dir: &Path,
    suppressions: Option<&Path>,
    symbolizer: Option<&Path>,
) -> String {
    let mut options = vec![
        format!("log_path={}", tsan_log_prefix(log_dir).display()),
        "halt_on_error=0".to_string(),
        "exitcode=0".to_string(),
        "second_deadlock_stack=1".to_string(),
        // SEGV inside the extension must still end as a TSan DEADLYSIGNAL report with a stack.
        "handle_segv=1".to_string(),
        // faulthandler prints Python stacks on SIGABRT (hangs, aborts).
        "handle_abort=0".to_string(),
        "history_size=4".to_string(),
    ];
    if let Some(path) = suppressions {
        options.push(format!("suppressions={}", path.display()));
    }
    if let Some(path) = symbolizer {
        options.push(format!("external_symbolizer_path={}", path.display()));
    }
    options.join(" ")
}

/// For pip and build steps: the interpreter races in its own allocator while pip runs.
pub fn quiet_env() -> Vec<(String, String)> {
    vec![("TSAN_OPTIONS".to_string(), "report_bugs=0".to_string())]
}

/// Suppression lines that are safe for extension work, with a note per dropped entry.
pub fn safe_suppressions(text: &str) -> (Vec<String>, Vec<String>) {
    let mut kept = Vec::new();
    let mut dropped = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with("race_top:") || line.starts_with("thread:") {
            kept.push(line.to_string());
        } else {
            dropped.push(line.to_string());
        }
    }
    (kept, dropped)
}

/// Writes the merged suppressions file (interpreter's + user's, safe entries only) and returns
/// its path and the entries that were dropped (reported in the run record).
pub fn write_suppressions(
    dest: &Path,
    sources: &[PathBuf],
) -> anyhow::Result<(PathBuf, Vec<String>)> {
    let mut out = String::from("# Merged by ftreview: only race_top: and thread: entries are kept;\n# race: entries match any frame and would hide extension races.\n");
    let mut all_dropped = Vec::new();
    for source in sources {
        let text = fs::read_to_string(source)
            .with_context(|| format!("cannot read suppressions {}", source.display()))?;
        let (kept, dropped) = safe_suppressions(&text);
        out.push_str(&format!("# from {}\n", source.display()));
        for line in kept {
            out.push_str(&line);
            out.push('\n');
        }
        all_dropped.extend(
            dropped
                .into_iter()
                .map(|d| format!("{d} (from {})", source.display())),
        );
    }
    fs::write(dest, out).with_context(|| format!("cannot write {}", dest.display()))?;
    Ok((dest.to_path_buf(), all_dropped))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_top_frame_and_thread_entries() {
        let text = "# CPython\nrace:_PyEval_EvalFrameDefault\nrace_top:set_allocator_unlocked\n\nthread:pthread_create\ncalled_from_lib:libfoo.so\n";
        let (kept, dropped) = safe_suppressions(text);
        assert_eq!(
            kept,
            ["race_top:set_allocator_unlocked", "thread:pthread_create"]
        );
        assert_eq!(
            dropped,
            ["race:_PyEval_EvalFrameDefault", "called_from_lib:libfoo.so"]
        );
    }

    #[test]
    fn merges_files_and_names_dropped_entries() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.txt");
        let b = dir.path().join("b.txt");
        fs::write(&a, "race_top:foo\nrace:bar\n").unwrap();
        fs::write(&b, "race_top:baz\n").unwrap();
        let (path, dropped) = write_suppressions(&dir.path().join("merged.txt"), &[a, b]).unwrap();
        let merged = fs::read_to_string(path).unwrap();
        assert!(merged.contains("race_top:foo\n") && merged.contains("race_top:baz\n"));
        assert!(!merged.contains("race:bar"));
        assert_eq!(dropped.len(), 1);
        assert!(dropped[0].starts_with("race:bar (from "));
    }

    #[test]
    fn options_capture_everything_into_the_log_dir() {
        let options = tsan_options(
            Path::new("/r/logs/suite"),
            Some(Path::new("/r/supp.txt")),
            None,
        );
        assert!(options.starts_with("log_path=/r/logs/suite/tsan "));
        for flag in [
            "halt_on_error=0",
            "exitcode=0",
            "second_deadlock_stack=1",
            "suppressions=/r/supp.txt",
        ] {
            assert!(options.contains(flag), "{options}");
        }
    }
}
