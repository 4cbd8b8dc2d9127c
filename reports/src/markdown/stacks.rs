//! Source excerpts and trimmed stacks.

use super::*;

pub(super) fn code_block(out: &mut String, tree: &SourceTree, frame: &Frame, caption: &str) {
    let Some(file) = frame.file.as_deref() else {
        return;
    };
    let location = frame_location(frame, tree)
        .map(|l| l.display())
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "`{location}` — {caption}, in `{}`:\n",
        frame.function.as_deref().unwrap_or("?")
    );
    let Some(line) = frame.line else {
        out.push_str("*(the report gives no line number for this frame)*\n\n");
        return;
    };
    match tree.snippet(file, line) {
        Some(snippet) => {
            let _ = writeln!(out, "```c\n{}\n```\n", snippet.render());
            if frame.line_approximate {
                out.push_str("*(approximate line: the compiler put this access on line 0; shown is the nearest earlier line of the same function in the debug line table)*\n\n");
            }
        }
        None => out.push_str("*(this file is not in the kept source tree)*\n\n"),
    }
}

/// The stacks that show what each side did, with a caption.
pub(super) fn side_stacks(rc: &RootCause) -> Vec<(String, &Stack)> {
    let report = &rc.representative;
    let accesses = report.accesses.iter().map(|access| {
        let previous = if access.previous { "previous " } else { "" };
        let size = access
            .size
            .map(|n| format!(" of size {n}"))
            .unwrap_or_default();
        (
            format!(
                "{previous}{}{size} by thread T{}",
                access.kind, access.thread
            ),
            &access.stack,
        )
    });
    let locks = report.lock_edges.iter().flat_map(|edge| {
        let acquired = (
            format!(
                "thread T{} acquires M{} while holding M{}",
                edge.thread, edge.acquired, edge.held
            ),
            &edge.stack,
        );
        let held = edge.previous_stack.iter().map(move |stack| {
            (
                format!("thread T{} acquired M{} here", edge.thread, edge.held),
                stack,
            )
        });
        std::iter::once(acquired).chain(held)
    });
    let bare = report
        .stacks
        .iter()
        .map(|stack| ("stack".to_string(), stack));
    accesses.chain(locks).chain(bare).collect()
}

pub(super) fn stacks(out: &mut String, a: &Analysis, rc: &RootCause) {
    out.push_str(
        "<details><summary>Stacks (extension frames and the entry point)</summary>\n\n```text\n",
    );
    for (caption, stack) in side_stacks(rc) {
        let _ = writeln!(out, "{caption}:");
        out.push_str(&trimmed_stack(a, stack));
    }
    for location in &rc.representative.locations {
        if let tsan_parse::Location::Heap { size, stack, .. } = location {
            let _ = writeln!(out, "heap block of size {size} allocated at:");
            out.push_str(&trimmed_stack(a, stack));
        }
    }
    out.push_str("```\n\n</details>\n\n");
}

/// The extension frames of a stack, then the frame that called into them (the entry point)
/// and, when the static pass knows it, the Python name bound to the outermost one.
pub(super) fn trimmed_stack(a: &Analysis, stack: &Stack) -> String {
    let mut out = String::new();
    let frames = &stack.frames;
    let Some(last) = frames
        .iter()
        .rposition(|f| f.origin == FrameOrigin::Extension)
    else {
        for frame in frames
            .iter()
            .filter(|f| f.origin != FrameOrigin::TsanRuntime)
            .take(CRASH_CONTEXT_FRAMES)
        {
            let _ = writeln!(out, "  {}", describe(a, frame));
        }
        return out;
    };
    for frame in frames[..=last]
        .iter()
        .filter(|f| f.origin == FrameOrigin::Extension)
    {
        let _ = writeln!(out, "  {}", describe(a, frame));
    }
    let python = frames[last]
        .function
        .as_deref()
        .map(|f| python_names(a.run, f))
        .unwrap_or_default();
    if !python.is_empty() {
        let _ = writeln!(out, "  ↑ called from Python as {}", python.join(", "));
    } else if let Some(caller) = frames.get(last + 1) {
        let _ = writeln!(out, "  ↑ entered from {}", describe(a, caller));
    }
    out
}

fn describe(a: &Analysis, frame: &Frame) -> String {
    let function = frame.function.as_deref().unwrap_or("??");
    match frame_location(frame, &a.tree) {
        Some(location) => format!("{function}  {}", location.display()),
        None => frame.describe(),
    }
}
