//! Crashes, hangs and corrupted state that stand alone (not linked to a problem).

use super::*;

pub(super) fn crashes_and_hangs(out: &mut String, a: &Analysis) {
    out.push_str("## Crashes, hangs and corrupted state\n\n");
    let events: Vec<&Finding> =
        findings_in(a, &[Category::Crash, Category::Hang, Category::Anomaly])
            .into_iter()
            .filter(|f| f.related.iter().all(|id| !id.starts_with("problem-")))
            .collect();
    if events.is_empty() {
        out.push_str("No process crashed or hung, and no scenario saw its object's state break, apart from what is listed with its problem above.\n\n");
        return;
    }
    for finding in events {
        let origins: Vec<String> = finding
            .origins
            .iter()
            .take(4)
            .map(|o| format!("`{o}`"))
            .collect();
        let _ = writeln!(
            out,
            "### {} (`{}`)\n\nFrom {}.\n",
            finding.title,
            finding.id,
            origins.join(", ")
        );
        event_dumps(out, a, finding);
        if let Some(reproducer) = &finding.reproducer {
            let _ = writeln!(
                out,
                "**Reproduce:**\n\n```sh\n{}\n```\n",
                reproducer.command
            );
        }
    }
}

/// The Python and native stacks the runner kept for a crash or hang.
pub(super) fn event_dumps(out: &mut String, a: &Analysis, finding: &Finding) {
    let origin = finding.origins.first();
    let matches = |o: &crate::model::Origin| Some(o) == origin;
    let dumps: Vec<(&str, &Option<String>)> = match finding.category {
        Category::Crash => a
            .run
            .crashes
            .iter()
            .filter(|c| matches(&c.origin) && c.kind == finding.kind)
            .flat_map(|c| {
                [
                    ("Python stack", &c.python_stack),
                    ("Native stack", &c.native_stack),
                ]
            })
            .collect(),
        Category::Anomaly => Vec::new(),
        _ => a
            .run
            .hangs
            .iter()
            .filter(|h| matches(&h.origin))
            .flat_map(|h| {
                [
                    ("Python stacks", &h.python_stacks),
                    ("Native stacks", &h.native_stacks),
                ]
            })
            .collect(),
    };
    for (title, dump) in dumps {
        if let Some(text) = dump {
            let native = title.starts_with("Native");
            let lines: Vec<&str> = text
                .lines()
                .filter(|line| !native || native_line_kept(line, &a.tree))
                .collect();
            let kept = &lines[..lines.len().min(MAX_DUMP_LINES)];
            let cut = lines.len() - kept.len();
            let _ = writeln!(
                out,
                "<details><summary>{title}</summary>\n\n```text\n{}",
                kept.join("\n")
            );
            if cut > 0 {
                let _ = writeln!(out, "… {cut} more line(s) in the run directory");
            }
            out.push_str("```\n\n</details>\n\n");
        }
    }
}

/// Of a debugger's native stacks, the lines a maintainer reads: thread headers, each thread's
/// innermost frame, and frames in the extension's own sources. The debugger's chatter and the
/// interpreter's frames go (the run directory keeps the whole dump).
fn native_line_kept(line: &str, tree: &SourceTree) -> bool {
    const CHATTER: [&str; 3] = ["[New LWP", "[Thread debugging", "Using host libthread_db"];
    if CHATTER.iter().any(|c| line.starts_with(c)) {
        return false;
    }
    let Some(frame) = line.strip_prefix('#') else {
        return true;
    };
    if frame.starts_with("0 ") {
        return true;
    }
    let file = frame
        .rsplit_once(" at ")
        .and_then(|(_, at)| at.rsplit_once(':'))
        .map(|(file, _)| file);
    file.is_some_and(|file| tree.resolve(file).is_some())
}

/// Bugs one thread is enough for: worth fixing, outside the free-threading verdict.
pub(super) fn single_threaded(out: &mut String, a: &Analysis) {
    let bugs = findings_in(a, &[Category::SingleThreaded]);
    if bugs.is_empty() {
        return;
    }
    out.push_str("## Single-threaded bugs\n\n");
    out.push_str("These need no threads: one call in one thread fails (introspection's trial calls, or a scenario's anomaly that its single-threaded control run showed again). They are bugs with or without the GIL and do not count in the free-threading verdict.\n\n");
    out.push_str("| ID | What | Found by | Reproduce | Detail |\n|---|---|---|---|---|\n");
    for bug in bugs {
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {} |",
            bug.id,
            cell(&bug.title),
            bug.origins
                .first()
                .map(|o| o.to_string())
                .unwrap_or_default(),
            bug.reproducer
                .as_ref()
                .map(|r| format!("`{}`", cell(&r.command)))
                .unwrap_or_default(),
            cell(&bug.fix.action)
        );
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_stacks_keep_thread_headers_top_frames_and_the_extensions_frames() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("pkg")).unwrap();
        std::fs::write(dir.path().join("pkg/table.h"), "").unwrap();
        let tree = SourceTree::new(dir.path());
        let dump = "[New LWP 4998]\n\
            Using host libthread_db library \"/lib/x86_64-linux-gnu/libthread_db.so.1\".\n\
            Thread 2 (Thread 0x7f (LWP 5002) \"python\"):\n\
            #0  0x000055a310d44d22 in __tsan_read2 ()\n\
            #1  0x00007f6fe13406d2 in get_index (keys=0x7f, i=191) at pkg/table.h:112\n\
            #2  0x000055a310e01397 in method_vectorcall (func=0x7f) at Objects/descrobject.c:420\n";
        let kept: Vec<&str> = dump
            .lines()
            .filter(|l| native_line_kept(l, &tree))
            .collect();
        assert_eq!(kept.len(), 3, "{kept:#?}");
        assert!(kept[0].starts_with("Thread 2"));
        assert!(kept[1].contains("__tsan_read2"));
        assert!(kept[2].contains("pkg/table.h:112"));
    }
}
