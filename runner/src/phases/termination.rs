//! How an instrumented process ended, decided once for the suites and the scenarios alike:
//! finished, crashed (a signal, a deadly-signal report, a process that died mid-run), stuck
//! (a possible deadlock, or no progress), or stopped because its time was up.
//!
//! A timed-out process is not assumed to be a hang: TSan's deadly-signal handler can deadlock
//! (`SignalUnsafeCall` → `realloc`) after a worker segfaulted, so the process looks hung while
//! it is a crash. The native stacks taken before the kill tell them apart.

use std::sync::OnceLock;

use ftreview_reports::model::{CrashRecord, HangKind, HangRecord, Origin, Reproducer};
use regex::Regex;
use tsan_parse::Report;

use crate::process::{signal_name, StepResult, Termination};

/// What the process's end means.
#[derive(Debug)]
pub(crate) struct Ending {
    pub kind: EndKind,
    pub crashes: Vec<CrashRecord>,
    pub hangs: Vec<HangRecord>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EndKind {
    /// Ran to its end (whatever its own exit code says).
    Finished,
    Crashed,
    Hung,
    /// Killed at its time limit while still making progress (a slow suite).
    OutOfTime,
    Interrupted,
}

/// The evidence about one finished process.
pub(crate) struct ProcessEvidence<'a> {
    pub result: &'a StepResult,
    /// The process's combined output (faulthandler writes there).
    pub output: &'a str,
    pub reports: &'a [Report],
    pub origin: Origin,
    pub reproducer: Reproducer,
    /// The process said it started its work and never said it finished (a scenario's
    /// outcome file still reads `started`).
    pub died_mid_run: bool,
    /// A timeout came while the process was still making progress (tests still finishing).
    pub progressing: bool,
}

/// Decides how the process ended and builds its crash and hang records.
pub(crate) fn classify(evidence: ProcessEvidence<'_>) -> Ending {
    let python_stack = faulthandler_dump(evidence.output);
    let deadly = deadly_reports(&evidence);
    // A subprocess the suite or scenario started can die while the process itself goes on.
    let died_itself = deadly.iter().any(|(in_subprocess, _)| !in_subprocess);
    let mut crashes: Vec<CrashRecord> = deadly.into_iter().map(|(_, c)| c).collect();
    let crash = |kind: String, signal: Option<i32>, native: Option<String>| CrashRecord {
        origin: evidence.origin.clone(),
        kind,
        signal,
        python_stack: python_stack.clone(),
        native_stack: native,
        reproducer: Some(evidence.reproducer.clone()),
    };
    let mut hangs = Vec::new();
    let kind = match evidence.result.termination {
        Termination::Interrupted => EndKind::Interrupted,
        Termination::TimedOut => {
            let stacks = hang_stacks(evidence.result);
            let deadlocked = hang_kind(&stacks) == HangKind::PossibleDeadlock;
            match stuck_in_signal_handler(&stacks) {
                Some(fault) if crashes.is_empty() => {
                    crashes.push(crash(fault.kind, fault.signal, Some(fault.stack)));
                    EndKind::Crashed
                }
                Some(_) => EndKind::Crashed,
                None if died_itself => EndKind::Crashed,
                None if evidence.progressing && !deadlocked => EndKind::OutOfTime,
                None => {
                    hangs.push(HangRecord {
                        origin: evidence.origin.clone(),
                        timeout_secs: evidence.result.seconds,
                        kind: hang_kind(&stacks),
                        python_stacks: python_stack.clone(),
                        native_stacks: (!stacks.is_empty()).then_some(stacks),
                        reproducer: Some(evidence.reproducer.clone()),
                    });
                    EndKind::Hung
                }
            }
        }
        Termination::Signaled { signal } => {
            if crashes.is_empty() {
                crashes.push(crash(signal_name(signal).to_string(), Some(signal), None));
            }
            EndKind::Crashed
        }
        Termination::Exited { .. } if died_itself => EndKind::Crashed,
        Termination::Exited { code } if evidence.died_mid_run => {
            crashes.push(crash(format!("died (exit code {code})"), None, None));
            EndKind::Crashed
        }
        Termination::Exited { .. } => EndKind::Finished,
    };
    for record in &mut crashes {
        if record.python_stack.is_none() {
            record.python_stack = python_stack.clone();
        }
    }
    Ending {
        kind,
        crashes,
        hangs,
    }
}

/// Whether a process killed at its timeout was hung rather than crashed: no deadly signal of
/// its own in its reports and no thread stuck in TSan's signal handler in the stacks taken
/// before the kill (the handler can deadlock after a fault).
pub(crate) fn killed_while_hung(result: &StepResult, reports: &[Report]) -> bool {
    result.termination == Termination::TimedOut
        && !reports
            .iter()
            .any(|r| r.crash.is_some() && subprocess_pid(r, result).is_none())
        && stuck_in_signal_handler(&hang_stacks(result)).is_none()
}

/// The native stacks taken before a timed-out process was killed, empty when none were.
fn hang_stacks(result: &StepResult) -> String {
    result
        .hang_stacks
        .as_ref()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .unwrap_or_default()
}

/// The pid of the subprocess a report came from, `None` when it is the process's own.
fn subprocess_pid(report: &Report, result: &StepResult) -> Option<u32> {
    report
        .pid
        .filter(|pid| result.pid != 0 && *pid != result.pid)
}

/// Crash records for the deadly signals TSan caught (`ThreadSanitizer:DEADLYSIGNAL`), each
/// with whether a subprocess died rather than the process itself (its kind says so too).
fn deadly_reports(evidence: &ProcessEvidence<'_>) -> Vec<(bool, CrashRecord)> {
    let (origin, reproducer) = (&evidence.origin, &evidence.reproducer);
    evidence
        .reports
        .iter()
        .filter_map(|r| {
            let crash = r.crash.as_ref()?;
            let native = r.stacks.first().map(|s| {
                s.frames
                    .iter()
                    .map(|f| f.describe())
                    .collect::<Vec<_>>()
                    .join("\n")
            });
            let kind = r.kind.header_text();
            let subprocess = subprocess_pid(r, evidence.result);
            Some((
                subprocess.is_some(),
                CrashRecord {
                    origin: r.origin.clone().unwrap_or_else(|| origin.clone()),
                    kind: match subprocess {
                        Some(pid) => format!("{kind} in a subprocess (pid {pid})"),
                        None => kind.to_string(),
                    },
                    signal: signal_number(kind),
                    python_stack: None,
                    native_stack: native.or_else(|| Some(crash.description.clone())),
                    reproducer: Some(reproducer.clone()),
                },
            ))
        })
        .collect()
}

fn signal_number(name: &str) -> Option<i32> {
    Some(match name.trim_start_matches("SIG") {
        "SEGV" => libc::SIGSEGV,
        "BUS" => libc::SIGBUS,
        "FPE" => libc::SIGFPE,
        "ILL" => libc::SIGILL,
        "ABRT" => libc::SIGABRT,
        _ => return None,
    })
}

/// A crash found in the native stacks of a process that looked hung.
#[derive(Debug, PartialEq)]
struct StuckFault {
    kind: String,
    signal: Option<i32>,
    /// The faulting thread's stack, from the frame that faulted down.
    stack: String,
}

/// The first thread of the Python process whose stack runs through a signal handler
/// (`<signal handler called>`, TSan's `HandleDeadlySignal`/`ReportDeadlySignal`) above
/// ordinary frames: the frame right below the handler faulted.
fn stuck_in_signal_handler(stacks: &str) -> Option<StuckFault> {
    for thread in python_process_threads(stacks) {
        let frames: Vec<&str> = thread.lines().filter(|l| l.starts_with('#')).collect();
        let Some(handler) = frames.iter().rposition(|f| {
            f.contains("<signal handler called>")
                || f.contains("HandleDeadlySignal")
                || f.contains("ReportDeadlySignal")
        }) else {
            continue;
        };
        let below = &frames[handler + 1..];
        let Some(faulting) = below
            .iter()
            .position(|f| !f.contains("<signal handler called>"))
        else {
            continue;
        };
        let signal = signal_argument(&frames[..handler]).unwrap_or(libc::SIGSEGV);
        return Some(StuckFault {
            kind: format!(
                "{} (the process then hung in TSan's signal handler)",
                signal_name(signal)
            ),
            signal: Some(signal),
            stack: below[faulting..].join("\n"),
        });
    }
    None
}

/// `sig=11` / `signo=11` in a handler frame's arguments.
fn signal_argument(frames: &[&str]) -> Option<i32> {
    static SIG: OnceLock<Regex> = OnceLock::new();
    let re = SIG.get_or_init(|| Regex::new(r"\bsig(?:no|num)?=(\d+)").expect("static regex"));
    frames
        .iter()
        .find_map(|f| re.captures(f).and_then(|c| c[1].parse().ok()))
}

/// Threads blocked on a lock make a possible deadlock; anything else is no progress.
fn hang_kind(stacks: &str) -> HangKind {
    const WAITS: &[&str] = &[
        "__lll_lock_wait",
        "futex_wait",
        "pthread_mutex_lock",
        "pthread_rwlock_",
        "_PyMutex_LockTimed",
        "PyMutex_Lock",
        "_PySemaphore_Wait",
        "_PyCriticalSection_BeginSlow",
        "_PyCriticalSection2_BeginSlow",
        "_PyParkingLot_Park",
        "sem_wait",
    ];
    let waiting = python_process_threads(stacks)
        .filter(|thread| {
            let frames: Vec<&str> = thread.lines().filter(|l| l.starts_with('#')).collect();
            let innermost = frames.iter().take(8);
            innermost
                .clone()
                .any(|f| WAITS.iter().any(|w| f.contains(w)))
                && !frames.iter().any(|f| f.contains("take_gil"))
        })
        .count();
    if waiting >= 2 {
        HangKind::PossibleDeadlock
    } else {
        HangKind::NoProgress
    }
}

/// The per-thread sections of the first process's stacks (the Python process the step ran;
/// children such as llvm-symbolizer come after it).
fn python_process_threads(stacks: &str) -> impl Iterator<Item = &str> {
    let first = stacks
        .split("=== native stacks of pid")
        .find(|section| !section.trim().is_empty() && section.contains("python"))
        .unwrap_or("");
    first.split("\nThread ").skip(1)
}

/// The last faulthandler dump in a process's output: `Fatal Python error: …` and the
/// tracebacks of every thread, and nothing after them (a child's crash dump that follows
/// in the same log is not the Python process's).
pub(crate) fn faulthandler_dump(output: &str) -> Option<String> {
    let start = output.rfind("Fatal Python error:")?;
    let mut lines = output[start..].lines();
    let mut dump = vec![lines.next()?];
    for line in lines {
        let part_of_dump = line.is_empty()
            || line.starts_with("Thread 0x")
            || line.starts_with("Current thread 0x")
            || line.starts_with("  File \"")
            || line.starts_with("  <no Python frame>")
            || line.starts_with("  Garbage-collecting")
            || line.starts_with("Python runtime state")
            || line.starts_with("Extension modules:")
            || line.starts_with("Stack (most recent call first)");
        if !part_of_dump {
            break;
        }
        dump.push(line);
    }
    Some(dump.join("\n").trim_end().to_string())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// gdb's stacks of a pytest process whose worker segfaulted while TSan's handler
    /// deadlocked in `realloc` (shape as captured on this machine), followed by a child.
    const STUCK: &str = "=== native stacks of pid 4242: /venv/bin/python -m pytest tests
Thread 3 (Thread 0x7f00 (LWP 4250) \"python\"):
#0  0x00007f in syscall () from /lib/x86_64-linux-gnu/libc.so.6
#1  0x000055 in __sanitizer::FutexWait(__sanitizer::atomic_uint32_t*, unsigned int) ()
#2  0x000055 in __sanitizer::Semaphore::Wait() ()
#3  0x000055 in __tsan::user_realloc(__tsan::ThreadState*, unsigned long, void*, unsigned long) ()
#4  0x000055 in __sanitizer::SignalUnsafeCall ()
#5  0x000055 in __sanitizer::HandleDeadlySignal(void*, void*, unsigned int, void (*)(), void*) ()
#6  0x000055 in __tsan::rtl_sighandler(int, __sanitizer::__sanitizer_siginfo*, void*) (sig=11)
#7  <signal handler called>
#8  0x00007e in vector_push (self=0x7e0, value=3) at src/ftfixture_racy.c:140
#9  0x00007e in Vector_append (self=0x7e0, arg=0x7e1) at src/ftfixture_racy.c:151

Thread 1 (Thread 0x7f01 (LWP 4242) \"python\"):
#0  0x00007f in __futex_abstimed_wait_common64 () from libc
#1  0x000055 in pthread_join ()

=== native stacks of pid 4300: /usr/bin/llvm-symbolizer-19
Thread 1 (Thread 0x7f02 (LWP 4300)):
#0  0x00007f in read ()
";

    #[test]
    fn a_worker_stuck_in_the_deadly_signal_handler_is_a_crash_with_its_faulting_frame() {
        let fault = stuck_in_signal_handler(STUCK).unwrap();
        assert_eq!(fault.signal, Some(libc::SIGSEGV));
        assert!(fault.kind.starts_with("SIGSEGV"), "{}", fault.kind);
        assert!(
            fault.stack.starts_with("#8  0x00007e in vector_push"),
            "{}",
            fault.stack
        );
    }

    #[test]
    fn threads_waiting_on_locks_make_a_possible_deadlock_and_the_rest_no_progress() {
        let waiting = "=== native stacks of pid 1: /venv/bin/python s.py
Thread 2 (Thread 0x1 (LWP 2) \"python\"):
#0  0x1 in __lll_lock_wait () from libc
#1  0x1 in pthread_mutex_lock ()
#2  0x1 in fixture_audit () at src/ftfixture_racy.c:108

Thread 1 (Thread 0x2 (LWP 1) \"python\"):
#0  0x1 in futex_wait () from libc
#1  0x1 in pthread_mutex_lock ()
#2  0x1 in fixture_deposit () at src/ftfixture_racy.c:93
";
        assert_eq!(hang_kind(waiting), HangKind::PossibleDeadlock);
        assert!(stuck_in_signal_handler(waiting).is_none());
        let spinning = "=== native stacks of pid 1: /venv/bin/python s.py
Thread 1 (Thread 0x2 (LWP 1) \"python\"):
#0  0x1 in vector_sum () at src/ftfixture_racy.c:200
";
        assert_eq!(hang_kind(spinning), HangKind::NoProgress);
    }

    #[test]
    fn the_faulthandler_dump_stops_where_another_process_starts_talking() {
        let out = "collected 3 items\nFatal Python error: Aborted\n\nThread 0x1 (most recent call first):\n  File \"t.py\", line 3 in test_hang\n\nPLEASE submit a bug report to https://github.com/llvm/llvm-project/issues/\nStack dump:\n0. Program arguments: llvm-symbolizer\n";
        let dump = faulthandler_dump(out).unwrap();
        assert!(dump.starts_with("Fatal Python error: Aborted"));
        assert!(dump.ends_with("line 3 in test_hang"), "{dump}");
        assert!(!dump.contains("llvm"));
        assert!(faulthandler_dump("all good").is_none());
    }

    /// A real clang TSan report of a SEGV (pid 13205).
    fn segv_reports() -> Vec<Report> {
        tsan_parse::parse_str(include_str!(
            "../../../tsan-parse/tests/fixtures/logs/clang/segv.log"
        ))
    }

    fn result_of(pid: u32, termination: Termination, hang_stacks: Option<&Path>) -> StepResult {
        StepResult {
            label: "tests".into(),
            phase: None,
            command: String::new(),
            argv: Vec::new(),
            cwd: ".".into(),
            env: Vec::new(),
            termination,
            seconds: 1.0,
            log: "output.log".into(),
            hang_stacks: hang_stacks.map(Path::to_path_buf),
            pid,
        }
    }

    /// How a process with `pid` that ended as `termination` and saw the SEGV is classified.
    fn classify_segv_seen_by(pid: u32, termination: Termination) -> Ending {
        let result = result_of(pid, termination, None);
        let origin = Origin::new(ftreview_reports::model::Phase::Tests, "t.py::test");
        classify(ProcessEvidence {
            result: &result,
            output: "",
            reports: &segv_reports(),
            origin,
            reproducer: Reproducer {
                command: "pytest".into(),
                cwd: ".".into(),
                script: None,
            },
            died_mid_run: false,
            progressing: false,
        })
    }

    #[test]
    fn a_deadly_signal_of_the_process_itself_is_its_crash_and_a_subprocesss_is_not() {
        let itself = classify_segv_seen_by(13205, Termination::Exited { code: 0 });
        assert_eq!(itself.kind, EndKind::Crashed);
        assert_eq!(itself.crashes[0].kind, "SEGV");
        let parent = classify_segv_seen_by(4000, Termination::Exited { code: 0 });
        assert_eq!(parent.kind, EndKind::Finished, "the suite went on");
        assert_eq!(parent.crashes[0].kind, "SEGV in a subprocess (pid 13205)");
    }

    #[test]
    fn a_process_killed_after_its_own_deadly_signal_crashed_and_only_a_plain_timeout_hung() {
        let killed = Termination::TimedOut;
        let segv = segv_reports();
        let itself = classify_segv_seen_by(13205, killed);
        assert_eq!(itself.kind, EndKind::Crashed, "no stacks, but its own SEGV");
        assert!(itself.hangs.is_empty());
        assert!(!killed_while_hung(&result_of(13205, killed, None), &segv));
        assert!(
            killed_while_hung(&result_of(4000, killed, None), &segv),
            "a subprocess's SEGV does not explain the parent's timeout"
        );
        let dir = tempfile::tempdir().unwrap();
        let stacks = dir.path().join("stacks.txt");
        std::fs::write(&stacks, STUCK).unwrap();
        let stuck = result_of(4242, killed, Some(&stacks));
        assert!(!killed_while_hung(&stuck, &[]), "stuck in TSan's handler");
        assert!(killed_while_hung(&result_of(1, killed, None), &[]));
        let finished = result_of(1, Termination::Exited { code: 0 }, None);
        assert!(!killed_while_hung(&finished, &[]));
    }
}
